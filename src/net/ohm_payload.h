/* ohm_payload: the byte layouts of a model message's payload, one per kind
 * (docs/protocol.md, section "Payload kinds"), and what a receiver does with
 * them: check, then apply to its copy of the sender's public model.
 *
 * Every layout is little-endian and of a size fixed by (kind, n, m), so the
 * wire decoder can check the declared counts against the bytes before it
 * reads any (for q8z, m is the length of the deflated codes). f32 is the public copy itself; f16,
 * bf16, q8 and sparse are a difference to add to the copy of a given version; same says the copy is
 * unchanged. Applying is the one place sender and receivers turn bytes into
 * floats: both call ohm_payload_apply on the same bytes, so their copies stay
 * bit-identical. Pure functions; only q8z allocates (zlib's inflate state,
 * for the length of one call). */
#ifndef OHM_PAYLOAD_H
#define OHM_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    OHM_KIND_F32 = 0,    /* the public copy: n float32 */
    OHM_KIND_F16 = 1,    /* a difference: n IEEE binary16 */
    OHM_KIND_BF16 = 2,   /* a difference: n bfloat16 */
    OHM_KIND_Q8 = 3,     /* a difference: ceil(n/B) float32 scales, then n int8 codes */
    OHM_KIND_SPARSE = 4, /* a difference on m coordinates: m uint32 indices, then m bfloat16 */
    OHM_KIND_SAME = 5,   /* no payload: the public copy is unchanged */
    OHM_KIND_Q8Z = 6,    /* q8 with its codes deflated: ceil(n/B) float32 scales, then m bytes
                            of a raw deflate stream that inflates to the n int8 codes */
    OHM_KIND_Q4 = 7,     /* a difference: ceil(n/B) float32 scales, then ceil(n/2) bytes of
                            4-bit codes, two per byte */
    OHM_KIND_COUNT
} ohm_kind_t;

/* Coordinates per q8 and q4 scale. */
#define OHM_Q8_BLOCK 256

/* The largest q4 code magnitude: codes are -7..7 (the nibble 0x8, -8, is not a
 * code, so the scale means the same for both signs). */
#define OHM_Q4_MAX 7

/* Stable name of a kind ("f32", "f16", "bf16", "q8", "sparse", "same", "q8z", "q4"). */
const char *ohm_kind_name(ohm_kind_t k);

/* Whether the payload is a difference to add to a copy of a given version. */
int ohm_kind_is_difference(ohm_kind_t k);

/* Bytes of the payload of kind k for n parameters and m sparse entries (for
 * q8z: m bytes of deflated codes), or SIZE_MAX when no such payload exists
 * (unknown kind, m != 0 for a kind that is neither sparse nor q8z, m > n/2
 * for sparse, m outside [1, n) for q8z: deflated codes are sent only when
 * shorter). At most 4n + 4 for every kind. */
size_t ohm_payload_size(uint32_t k, uint64_t n, uint64_t m);

/* The structure of a sparse payload p (its size already checked): indices
 * strictly increasing (OHM_EFORMAT) and below n (OHM_ERANGE); of a q4
 * payload, every code in -7..7 and the unused last nibble (n odd) zero
 * (OHM_EFORMAT). OHM_OK for every other kind. The detail names the first bad
 * entry. */
int ohm_payload_check_structure(ohm_kind_t k, uint32_t n, uint32_t m, const uint8_t *p);

/* The values of payload p: every value finite (f32, f16, bf16, sparse), every
 * q8, q8z and q4 scale finite with 128 |scale| finite. OHM_ENONFINITE names the
 * first bad index (any alignment of p). For q8z also the stream: its m bytes
 * must inflate to exactly n bytes, every code in [-127, 127], and end there;
 * else OHM_EFORMAT (a lying length, a truncated or corrupt stream, trailing
 * bytes; the work is bounded by n + 1 bytes of output), OHM_ENOMEM. */
int ohm_payload_check_values(ohm_kind_t k, uint32_t n, uint32_t m, const uint8_t *p);

/* Applies a checked payload to x[n]: f32 sets x to it, a difference is added
 * to x coordinate by coordinate (q8z exactly as the q8 of the same codes),
 * same leaves x as it is. Returns OHM_ENONFINITE when a coordinate it changed
 * is not finite afterwards (an addition overflowed); x is changed anyway. A q8z
 * that fails to inflate (it was not checked) gives OHM_EFORMAT or
 * OHM_ENOMEM, x then partly changed. */
int ohm_payload_apply(ohm_kind_t k, uint32_t n, uint32_t m, const uint8_t *p, float *x);

/* 16-bit floats, round to nearest even. Finite inputs never give Inf: they
 * saturate at the largest finite value (65504 for f16). */
uint16_t ohm_f16_from_float(float f);
float ohm_f16_to_float(uint16_t h);
uint16_t ohm_bf16_from_float(float f);
float ohm_bf16_to_float(uint16_t h);

#endif
