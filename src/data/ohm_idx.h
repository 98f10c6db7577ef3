/* ohm_idx: a streaming reader of IDX files (the format of MNIST-like data
 * sets), gzip-compressed or plain.
 *
 * An IDX file is a big-endian header (magic 0x00000801 for a vector of
 * uint8 labels, 0x00000803 for a count x rows x cols tensor of uint8 images,
 * then one uint32 per dimension) followed by the items. Items are read in
 * order a chunk at a time, so a caller can keep only the rows it needs and
 * never holds the whole file in memory. Every error names the file. */
#ifndef OHM_IDX_H
#define OHM_IDX_H

#include <stddef.h>
#include <stdint.h>

#define OHM_IDX_LABELS 0x00000801u
#define OHM_IDX_IMAGES 0x00000803u

typedef struct ohm_idx ohm_idx_t;

/* Opens `path` and reads its header, which must carry `magic` (OHM_IDX_LABELS
 * or OHM_IDX_IMAGES). Errors: OHM_EIO (cannot open), OHM_EFORMAT (other magic,
 * a zero or oversized dimension), OHM_ETRUNC (short header). Caller owns *out. */
int ohm_idx_open(const char *path, uint32_t magic, ohm_idx_t **out);

/* Closes; NULL-safe; clears the caller's pointer. */
void ohm_idx_close(ohm_idx_t **f);

size_t ohm_idx_count(const ohm_idx_t *f);     /* items the header announces */
size_t ohm_idx_rows(const ohm_idx_t *f);      /* 1 for labels */
size_t ohm_idx_cols(const ohm_idx_t *f);      /* 1 for labels */
size_t ohm_idx_item_size(const ohm_idx_t *f); /* bytes per item: rows * cols */
const char *ohm_idx_path(const ohm_idx_t *f);

/* Reads the next n items into buf[n * item_size]. OHM_ETRUNC (file shorter
 * than its header says) or OHM_EFORMAT (corrupt gzip stream), naming the file
 * and item; asking past the announced count is a programming error. */
int ohm_idx_read(ohm_idx_t *f, void *buf, size_t n);

/* From the current position, reads through to the last wanted item and keeps
 * items rows[0..nrows) (indices relative to the current position, strictly
 * ascending) in out[nrows * item_size], in that order. Same errors as ohm_idx_read. */
int ohm_idx_read_rows(ohm_idx_t *f, const uint32_t *rows, size_t nrows, uint8_t *out);

#endif
