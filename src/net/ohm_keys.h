/* ohm_keys: CURVE key pairs and their files.
 *
 * A peer's long-term identity is a CURVE key pair. The secret half lives in a
 * file of mode 0600 (refused if wider) and is held in locked memory where
 * libsodium allows; it is never logged. Keys travel as 40-character Z85 text. */
#ifndef OHM_KEYS_H
#define OHM_KEYS_H

#include <stdint.h>

#define OHM_KEY_BYTES 32

/* Generates a CURVE key pair (raw 32-byte keys). Errors: OHM_EUNSUPPORTED without CURVE. */
int ohm_keys_generate(uint8_t pub[OHM_KEY_BYTES], uint8_t sec[OHM_KEY_BYTES]);

/* Writes PREFIX.key (secret, one Z85 line, mode 0600) and PREFIX.pub (one Z85 line,
 * mode 0644), each atomically (exclusive temp file, fsync, rename), replacing files
 * of those names. Errors: OHM_EIO naming the path. */
int ohm_keys_write(const char *prefix, const uint8_t pub[OHM_KEY_BYTES],
                   const uint8_t sec[OHM_KEY_BYTES]);

/* Reads a secret key file; refuses (OHM_EPERM, naming the file and its mode or
 * owner) a file with any group/other permission or owned by another user. The
 * public key is derived from the secret; temporary copies are wiped.
 * Errors: OHM_EIO (cannot open/read), OHM_EAUTH (content is not a key). */
int ohm_keys_read_secret(const char *path, uint8_t pub[OHM_KEY_BYTES], uint8_t sec[OHM_KEY_BYTES]);

/* Decodes a 40-character Z85 key (exactly 40, canonical spelling). Errors: OHM_EINVAL. */
int ohm_keys_decode(const char *z85, uint8_t key[OHM_KEY_BYTES]);

/* Encodes a key as 40 Z85 characters plus NUL into out[41]. Never fails. */
void ohm_keys_encode(const uint8_t key[OHM_KEY_BYTES], char out[41]);

#endif
