/* ohm_ckpt: checkpoint files: a set of named binary sections written atomically.
 *
 * A checkpoint is written to a temporary file in the same directory, fsync'ed,
 * renamed over the old one and the directory fsync'ed: a crash at any moment
 * leaves either the old or the new checkpoint, never a half-written one. Every
 * section carries a CRC32, checked on read, so a damaged file is refused with a
 * clear error instead of restoring garbage.
 *
 * Layout: magic "OHMCKPT1", uint32 section count, then per section: uint16 name
 * length, name bytes, uint64 data length, uint32 crc32, data. Little-endian. */
#ifndef OHM_CKPT_H
#define OHM_CKPT_H

#include <stddef.h>

typedef struct ohm_ckpt ohm_ckpt_t;

/* An empty checkpoint to fill. Caller owns it; NULL on OOM. */
ohm_ckpt_t *ohm_ckpt_new(void);

/* Frees; NULL-safe; clears the caller's pointer. */
void ohm_ckpt_destroy(ohm_ckpt_t **ck);

/* Adds (copies) a section; a repeated name replaces the earlier data. OHM_ENOMEM/OHM_EINVAL. */
int ohm_ckpt_put(ohm_ckpt_t *ck, const char *name, const void *data, size_t len);

/* Writes atomically to `path` (see above). OHM_EIO with the failing step and errno in the detail.
 */
int ohm_ckpt_write(const ohm_ckpt_t *ck, const char *path);

/* Reads and verifies a checkpoint. OHM_EIO, OHM_EFORMAT (magic, structure, CRC)
 * or OHM_ETRUNC, naming the file. Caller owns the result. */
int ohm_ckpt_read(const char *path, ohm_ckpt_t **out);

/* Looks a section up: OHM_OK with data and len set (owned by ck) or OHM_ENOTFOUND. */
int ohm_ckpt_get(const ohm_ckpt_t *ck, const char *name, const void **data, size_t *len);

#endif
