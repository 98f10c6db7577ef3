/* ohm_payload: payload layouts, their checks and their application to a copy
 * (see ohm_payload.h and docs/protocol.md, section "Payload kinds"). */
#include "ohm_payload.h"

#include "ohm_error.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <string.h>
#include <zlib.h>

static const char *const kind_names[OHM_KIND_COUNT] = {"f32",    "f16",  "bf16", "q8",
                                                       "sparse", "same", "q8z",  "q4"};

const char *ohm_kind_name(ohm_kind_t k)
{
    assert(k >= 0 && k < OHM_KIND_COUNT);
    return kind_names[k];
}

int ohm_kind_is_difference(ohm_kind_t k)
{
    return k == OHM_KIND_F16 || k == OHM_KIND_BF16 || k == OHM_KIND_Q8 || k == OHM_KIND_SPARSE ||
           k == OHM_KIND_Q8Z || k == OHM_KIND_Q4;
}

size_t ohm_payload_size(uint32_t k, uint64_t n, uint64_t m)
{
    if (k >= OHM_KIND_COUNT || n > UINT32_MAX) return SIZE_MAX;
    if (k == OHM_KIND_SPARSE ? m > n / 2 : k == OHM_KIND_Q8Z ? m < 1 || m >= n : m != 0)
        return SIZE_MAX;
    switch ((ohm_kind_t)k) {
    case OHM_KIND_F32:
        return 4 * (size_t)n;
    case OHM_KIND_F16:
    case OHM_KIND_BF16:
        return 2 * (size_t)n;
    case OHM_KIND_Q8:
        return 4 * (((size_t)n + OHM_Q8_BLOCK - 1) / OHM_Q8_BLOCK) + (size_t)n;
    case OHM_KIND_Q4:
        return 4 * (((size_t)n + OHM_Q8_BLOCK - 1) / OHM_Q8_BLOCK) + ((size_t)n + 1) / 2;
    case OHM_KIND_SPARSE:
        return 6 * (size_t)m;
    case OHM_KIND_Q8Z:
        return 4 * (((size_t)n + OHM_Q8_BLOCK - 1) / OHM_Q8_BLOCK) + (size_t)m;
    default:
        return 0;
    }
}

/* ---------------------------------------------------------------- bytes */

static uint32_t load32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t load16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static float load_float(const uint8_t *p)
{
    uint32_t b = load32(p);
    float f;
    memcpy(&f, &b, 4);
    return f;
}

/* ---------------------------------------------------------------- 16-bit floats */

uint16_t ohm_f16_from_float(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u);
    if (ax >= 0x477ff000u) return sign | 0x7bffu; /* would round to Inf: saturate at 65504 */
    if (ax < 0x38800000u) {
        /* Below the smallest normal half, 2^-14: a multiple of 2^-24. Scaling
         * by a power of two is exact; the default rounding is to nearest even. */
        float a;
        memcpy(&a, &ax, 4);
        return sign | (uint16_t)lrintf(a * 16777216.0f);
    }
    uint32_t h = ((ax >> 23) - 112u) << 10 | (ax & 0x7fffffu) >> 13;
    uint32_t rest = ax & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* a carry moves the exponent */
    return sign | (uint16_t)h;
}

float ohm_f16_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0) {
        float v = (float)m * 5.9604644775390625e-8f; /* m 2^-24, exact */
        memcpy(&x, &v, 4);
        x |= sign;
    } else if (e == 31) {
        x = sign | 0x7f800000u | m << 13;
    } else {
        x = sign | (e + 112u) << 23 | m << 13;
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t ohm_bf16_from_float(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(x >> 16 | 0x40u); /* NaN stays NaN */
    if (ax == 0x7f800000u) return (uint16_t)(x >> 16);
    uint32_t r = x + 0x7fffu + ((x >> 16) & 1u);
    if ((r & 0x7f800000u) == 0x7f800000u) return (uint16_t)((x >> 16 & 0x8000u) | 0x7f7fu);
    return (uint16_t)(r >> 16);
}

float ohm_bf16_to_float(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* ---------------------------------------------------------------- q8z */

/* Bit 31 of the result is set exactly when y is NaN or infinite: the exponent
 * field all ones carries into it. OR-ed over a loop, it checks the values the
 * loop wrote without a second pass over them. */
static inline uint32_t nonfinite_bit(float y)
{
    uint32_t b;
    memcpy(&b, &y, 4);
    return (b & 0x7f800000u) + 0x00800000u;
}

/* x[i] += s code[i] for i < len: the one place q8 and q4 codes become floats
 * (q8, q8z and q4 alike). Returns the nonfinite bits of what it wrote. A loop
 * of its own, over restrict pointers, so that it vectorizes. */
static uint32_t add_scaled(float *restrict x, const int8_t *restrict code, size_t len, float s)
{
    uint32_t acc = 0;
    if (s == 0.0f) return 0; /* adds only zeros */
    for (size_t i = 0; i < len; i++) {
        /* computed in its own statement: see ohm_payload_apply */
        float v = s * (float)code[i];
        float y = x[i] + v;
        x[i] = y;
        acc |= nonfinite_bit(y);
    }
    return acc;
}

/* The q4 codes of len coordinates (two per byte, low nibble first) as int8. */
static void unpack_q4(const uint8_t *restrict in, size_t len, int8_t *restrict out)
{
    for (size_t j = 0; j < len / 2; j++) {
        out[2 * j] = (int8_t)(((in[j] & 0x0f) ^ 8) - 8);
        out[2 * j + 1] = (int8_t)(((in[j] >> 4) ^ 8) - 8);
    }
    if (len & 1) out[len - 1] = (int8_t)(((in[len / 2] & 0x0f) ^ 8) - 8);
}

/* Codes are inflated and used this many at a time (a multiple of the block). */
#define Q8Z_CHUNK (16 * OHM_Q8_BLOCK)

/* Inflates the m-byte raw deflate stream z, which must give exactly n codes
 * in [-127, 127] and end with its last byte; with scales and x, adds the
 * codes as q8 does. The output is bounded by n + 1 bytes whatever the stream
 * says (no bombs): output space is never offered beyond it. */
static int inflate_codes(uint32_t n, uint32_t m, const uint8_t *z, const uint8_t *scales, float *x,
                         uint32_t *acc)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, -MAX_WBITS) != Z_OK)
        return ohm_error_set(OHM_ENOMEM, "wire: q8z: no memory for inflate");
    int8_t chunk[Q8Z_CHUNK + 1];
    s.next_in = (Bytef *)(uintptr_t)z; /* zlib does not write through next_in */
    s.avail_in = m;
    size_t done = 0; /* codes inflated and used */
    int rc = OHM_OK, zr = Z_OK;
    while (zr != Z_STREAM_END) {
        /* one byte more than may come: a stream that runs past n shows */
        size_t want = n - done < Q8Z_CHUNK ? n - done + 1 : Q8Z_CHUNK;
        s.next_out = (Bytef *)chunk;
        s.avail_out = (uInt)want;
        zr = inflate(&s, Z_NO_FLUSH);
        size_t got = want - s.avail_out;
        if (zr == Z_MEM_ERROR) {
            rc = ohm_error_set(OHM_ENOMEM, "wire: q8z: no memory for inflate");
            break;
        }
        if (zr != Z_OK && zr != Z_STREAM_END) {
            /* Z_BUF_ERROR: no progress, the input ended early */
            rc = ohm_error_set(OHM_EFORMAT, "wire: q8z: codes %s after %zu of %u bytes",
                               zr == Z_BUF_ERROR ? "truncated" : "corrupt", done + got, n);
            break;
        }
        if (done + got > n) {
            rc = ohm_error_set(OHM_EFORMAT, "wire: q8z: codes inflate to more than %u bytes", n);
            break;
        }
        for (size_t j = 0; j < got; j++)
            if (chunk[j] == INT8_MIN) {
                rc = ohm_error_set(OHM_ERANGE, "wire: q8z: code %zu is -128", done + j);
                break;
            }
        if (rc) break;
        for (size_t i = done, end = done + got; x && i < end;) {
            size_t b = i / OHM_Q8_BLOCK,
                   hi = (b + 1) * OHM_Q8_BLOCK < end ? (b + 1) * OHM_Q8_BLOCK : end;
            *acc |= add_scaled(x + i, chunk + (i - done), hi - i, load_float(scales + 4 * b));
            i = hi;
        }
        done += got;
        if (zr == Z_OK && got == 0 && s.avail_in == 0) {
            rc = ohm_error_set(OHM_EFORMAT, "wire: q8z: codes truncated after %zu of %u bytes",
                               done, n);
            break;
        }
    }
    if (!rc && done != n)
        rc = ohm_error_set(OHM_EFORMAT, "wire: q8z: codes inflate to %zu bytes, not %u", done, n);
    if (!rc && s.avail_in != 0)
        rc = ohm_error_set(OHM_EFORMAT, "wire: q8z: %u bytes after the end of the codes",
                           s.avail_in);
    inflateEnd(&s);
    return rc;
}

/* ---------------------------------------------------------------- checks */

/* Every nibble of the q4 codes of n coordinates is a code (not -8), and the
 * last byte's unused high nibble (n odd) is zero: one payload per difference. */
static int check_q4(uint32_t n, const uint8_t *p)
{
    size_t nb = ((size_t)n + OHM_Q8_BLOCK - 1) / OHM_Q8_BLOCK, bytes = ((size_t)n + 1) / 2;
    const uint8_t *c = p + 4 * nb;
    unsigned bad = 0;
    for (size_t j = 0; j < bytes; j++)
        bad |= (c[j] & 0x0fu) == 0x08u || (c[j] & 0xf0u) == 0x80u;
    if (bad)
        for (size_t j = 0; j < bytes; j++)
            if ((c[j] & 0x0fu) == 0x08u || (c[j] & 0xf0u) == 0x80u)
                return ohm_error_set(OHM_EFORMAT, "wire: q4 coordinate %zu: the code -8",
                                     2 * j + ((c[j] & 0x0fu) == 0x08u ? 0 : 1));
    if ((n & 1u) && (c[bytes - 1] >> 4) != 0)
        return ohm_error_set(OHM_EFORMAT, "wire: q4: the unused last nibble is not zero");
    return OHM_OK;
}

int ohm_payload_check_structure(ohm_kind_t k, uint32_t n, uint32_t m, const uint8_t *p)
{
    if (k == OHM_KIND_Q4) return check_q4(n, p);
    if (k != OHM_KIND_SPARSE) return OHM_OK;
    assert(p || m == 0);
    uint64_t prev = 0;
    for (uint32_t j = 0; j < m; j++) {
        uint32_t idx = load32(p + 4 * (size_t)j);
        if (idx >= n)
            return ohm_error_set(OHM_ERANGE, "wire: sparse entry %u: index %u, the model has %u", j,
                                 idx, n);
        if (j > 0 && idx <= prev)
            return ohm_error_set(OHM_EFORMAT,
                                 "wire: sparse entry %u: index %u after %llu (indices must "
                                 "increase strictly)",
                                 j, idx, (unsigned long long)prev);
        prev = idx;
    }
    return OHM_OK;
}

/* The largest q8 scale: 128 of it is still finite. */
#define Q8_SCALE_MAX (FLT_MAX / 128.0f)

static int bad_value(size_t i)
{
    return ohm_error_set(OHM_ENONFINITE, "wire: payload value %zu is not finite", i);
}

int ohm_payload_check_values(ohm_kind_t k, uint32_t n, uint32_t m, const uint8_t *p)
{
    switch (k) {
    case OHM_KIND_F32:
        for (size_t i = 0; i < n; i++)
            if ((load32(p + 4 * i) & 0x7f800000u) == 0x7f800000u) return bad_value(i);
        return OHM_OK;
    case OHM_KIND_F16:
        for (size_t i = 0; i < n; i++)
            if ((load16(p + 2 * i) & 0x7c00u) == 0x7c00u) return bad_value(i);
        return OHM_OK;
    case OHM_KIND_BF16:
        for (size_t i = 0; i < n; i++)
            if ((load16(p + 2 * i) & 0x7f80u) == 0x7f80u) return bad_value(i);
        return OHM_OK;
    case OHM_KIND_Q8:
    case OHM_KIND_Q8Z:
    case OHM_KIND_Q4: {
        size_t nb = ((size_t)n + OHM_Q8_BLOCK - 1) / OHM_Q8_BLOCK;
        for (size_t b = 0; b < nb; b++) {
            float s = load_float(p + 4 * b);
            if (!(fabsf(s) <= Q8_SCALE_MAX))
                return ohm_error_set(OHM_ENONFINITE,
                                     "wire: q8 scale %zu is not finite or over %g (value %g)", b,
                                     (double)Q8_SCALE_MAX, (double)s);
        }
        return k == OHM_KIND_Q8Z ? inflate_codes(n, m, p + 4 * nb, NULL, NULL, NULL) : OHM_OK;
    }
    case OHM_KIND_SPARSE: {
        const uint8_t *v = p + 4 * (size_t)m;
        for (size_t j = 0; j < m; j++)
            if ((load16(v + 2 * j) & 0x7f80u) == 0x7f80u) return bad_value(j);
        return OHM_OK;
    }
    default:
        return OHM_OK;
    }
}

/* ---------------------------------------------------------------- apply */

/* OHM_ENONFINITE naming the first coordinate of x[n] that is not finite. */
static int first_nonfinite(const float *x, size_t n)
{
    size_t i = 0;
    while (i < n && isfinite(x[i]))
        i++;
    return ohm_error_set(OHM_ENONFINITE, "copy: coordinate %zu is not finite", i);
}

int ohm_payload_apply(ohm_kind_t k, uint32_t n, uint32_t m, const uint8_t *p, float *x)
{
    assert(x || n == 0);
    /* Each decoded value is computed in its own statement before it is added:
     * no compiler may fuse the two into one rounding (fp-contract works within
     * an expression), so every host computes the same copy. Each loop checks
     * the values it writes as it writes them (acc). */
    uint32_t acc = 0;
    switch (k) {
    case OHM_KIND_F32:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        for (size_t i = 0; i < n; i++)
            x[i] = load_float(p + 4 * i);
#else
        memcpy(x, p, 4 * (size_t)n);
#endif
        return OHM_OK; /* checked before it was applied */
    case OHM_KIND_F16:
        for (size_t i = 0; i < n; i++) {
            float v = ohm_f16_to_float(load16(p + 2 * i));
            float y = x[i] + v;
            x[i] = y;
            acc |= nonfinite_bit(y);
        }
        break;
    case OHM_KIND_BF16:
        for (size_t i = 0; i < n; i++) {
            float v = ohm_bf16_to_float(load16(p + 2 * i));
            float y = x[i] + v;
            x[i] = y;
            acc |= nonfinite_bit(y);
        }
        break;
    case OHM_KIND_Q8:
    case OHM_KIND_Q4: {
        size_t nb = ((size_t)n + OHM_Q8_BLOCK - 1) / OHM_Q8_BLOCK;
        const uint8_t *codes = p + 4 * nb;
        int8_t unpacked[OHM_Q8_BLOCK];
        for (size_t b = 0; b < nb; b++) {
            size_t lo = b * OHM_Q8_BLOCK, len = lo + OHM_Q8_BLOCK < n ? OHM_Q8_BLOCK : n - lo;
            const int8_t *c = (const int8_t *)(const void *)(codes + lo);
            if (k == OHM_KIND_Q4) { /* lo is even: a block holds whole bytes */
                unpack_q4(codes + lo / 2, len, unpacked);
                c = unpacked;
            }
            acc |= add_scaled(x + lo, c, len, load_float(p + 4 * b));
        }
        break;
    }
    case OHM_KIND_Q8Z: {
        size_t nb = ((size_t)n + OHM_Q8_BLOCK - 1) / OHM_Q8_BLOCK;
        int rc = inflate_codes(n, m, p + 4 * nb, p, x, &acc);
        if (rc) return rc;
        break;
    }
    case OHM_KIND_SPARSE: {
        const uint8_t *v = p + 4 * (size_t)m;
        for (size_t j = 0; j < m; j++) {
            uint32_t i = load32(p + 4 * j);
            assert(i < n);
            float d = ohm_bf16_to_float(load16(v + 2 * j));
            x[i] += d;
        }
        /* Only these coordinates changed. */
        for (size_t j = 0; j < m; j++) {
            uint32_t i = load32(p + 4 * j);
            if (!isfinite(x[i]))
                return ohm_error_set(OHM_ENONFINITE, "copy: coordinate %u is not finite", i);
        }
        return OHM_OK;
    }
    default:
        return OHM_OK;
    }
    return acc & 0x80000000u ? first_nonfinite(x, n) : OHM_OK;
}
