/* ohm_compress: what a sender puts on the wire instead of its whole model
 * (docs/protocol.md, section "Compressed gossip and censoring").
 *
 * A sender keeps a public copy x̂ of its model, which every neighbour tracks
 * identically. Each round it either says "unchanged" (censoring: the model
 * moved too little since x̂ was last updated), or sends the compressed
 * difference q = C(x - x̂) and adds the decoded q to x̂ itself. What the
 * compressor leaves out stays in x - x̂ and is sent in a later round (error
 * feedback, as in CHOCO-SGD, Koloskova, Stich and Jaggi, ICML 2019), so the
 * compression error never accumulates. The compressors:
 *   f16, bf16  every coordinate as a 16-bit float;
 *   q8         int8 codes with one float32 scale per block of OHM_Q8_BLOCK;
 *   q4         4-bit codes (-7..7, two per byte), the same blocks and scales;
 *   topk       the m = ratio n coordinates of largest magnitude;
 *   randk      m coordinates drawn uniformly without replacement
 *              (seeded by run seed, peer and round).
 * Sparse values travel as bfloat16. An optional lossless entropy stage
 * (comm.entropy = deflate) sends q8's codes deflated (kind q8z) when that is
 * shorter. Pure functions over float arrays, plus the scratch a compressor
 * needs. */
#ifndef OHM_COMPRESS_H
#define OHM_COMPRESS_H

#include "ohm_payload.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    OHM_COMPRESS_NONE,
    OHM_COMPRESS_F16,
    OHM_COMPRESS_BF16,
    OHM_COMPRESS_Q8,
    OHM_COMPRESS_TOPK,
    OHM_COMPRESS_RANDK,
    OHM_COMPRESS_Q4,
    OHM_COMPRESS_COUNT
} ohm_compressor_t;

/* The compressor called `name` (the comm.compress values), or -1. */
int ohm_compress_from_name(const char *name);
const char *ohm_compress_name(ohm_compressor_t c);

/* The payload kind compressor c writes (OHM_KIND_F32 for none). */
ohm_kind_t ohm_compress_kind(ohm_compressor_t c);

/* Coordinates a sparsifier keeps of n at `ratio`: round(ratio n), at least 1
 * and at most n/2 (the wire's bound); 0 for the other compressors. */
uint32_t ohm_compress_entries(ohm_compressor_t c, uint32_t n, double ratio);

/* The lossless stage after q8 (comm.entropy). */
typedef enum { OHM_ENTROPY_NONE, OHM_ENTROPY_DEFLATE, OHM_ENTROPY_COUNT } ohm_entropy_t;

/* The entropy stage called `name` (the comm.entropy values), or -1. */
int ohm_entropy_from_name(const char *name);
const char *ohm_entropy_name(ohm_entropy_t e);

typedef struct ohm_compress ohm_compress_t;

/* A compressor for vectors of n floats. seed and peer seed randk's draws.
 * Errors: OHM_EINVAL (c is none or unknown, ratio outside (0, 1]),
 * OHM_ENOMEM. Caller owns *out. */
int ohm_compress_new(ohm_compressor_t c, double ratio, uint32_t n, uint64_t seed, uint32_t peer,
                     ohm_compress_t **out);

/* NULL-safe; clears the caller's pointer. */
void ohm_compress_destroy(ohm_compress_t **c);

ohm_kind_t ohm_compress_payload_kind(const ohm_compress_t *c);

/* Bytes of the payload it writes (every round the same). */
size_t ohm_compress_payload_size(const ohm_compress_t *c);

/* Encodes the difference d[n] of round `round` into buf[payload_size];
 * *entries receives the sparse entry count (0 for the dense kinds). Finite
 * inputs give finite codes (16-bit floats saturate). */
void ohm_compress_encode(ohm_compress_t *c, const float *d, uint32_t round, uint8_t *buf,
                         uint32_t *entries);

/* Turns the entropy stage e on for c's later ohm_compress_step_packed calls
 * (it acts on q8 only; the default is none). Errors: OHM_EINVAL (unknown e),
 * OHM_ENOMEM. */
int ohm_compress_set_entropy(ohm_compress_t *c, ohm_entropy_t e);

/* A payload ready for the wire, owned by the compressor that made it. */
typedef struct {
    ohm_kind_t kind;
    uint32_t entries; /* the message's m: sparse entries, q8z's deflated bytes */
    const uint8_t *bytes;
    size_t len; /* ohm_payload_size(kind, n, entries) */
} ohm_compress_out_t;

/* ohm_compress_step into c's own buffer, then the entropy stage: a q8
 * payload goes out as q8z (the same scales, the codes deflated) when the
 * deflated codes are shorter than n bytes, else as q8. xhat is updated from
 * the q8 codes, which q8z receivers inflate and apply alike, so their copies
 * stay bit-identical. *out is valid until the next call on c. Returns what
 * ohm_compress_step returns. */
int ohm_compress_step_packed(ohm_compress_t *c, const float *x, float *xhat, float *scratch,
                             uint32_t round, ohm_compress_out_t *out);

/* One error-feedback step: d = x - xhat, encode d into buf, then xhat += the
 * decoded payload (the receivers' ohm_payload_apply on the same bytes, so
 * their copies stay bit-identical to xhat). scratch[n] receives d.
 * Returns OHM_ENONFINITE when xhat is no longer finite (x was not). */
int ohm_compress_step(ohm_compress_t *c, const float *x, float *xhat, float *scratch,
                      uint32_t round, uint8_t *buf, uint32_t *entries);

/* Censoring (after CSGD, Li, Wu, Chen, Li and Ling, IEEE TNNLS 2021): a
 * sender may say "unchanged" in round r when ||x - xhat|| <= tau0 decay^r ||x||
 * and its public copy, made in round `version`, is at most max_staleness
 * rounds old in round r. Returns 1 when it may. */
typedef struct {
    double tau0, decay;
    uint32_t max_staleness;
} ohm_censor_t;
int ohm_censor_skip(const ohm_censor_t *c, uint32_t round, uint32_t version, double dnorm,
                    double xnorm);

/* ||a - b|| and ||a|| over n floats (double accumulation, fixed order). */
void ohm_compress_norms(const float *a, const float *b, size_t n, double *diff, double *norm);

#endif
