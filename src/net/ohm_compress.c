/* ohm_compress: compressors with error feedback, and the censoring rule
 * (see ohm_compress.h and docs/protocol.md, section "Compressed gossip and censoring"). */
#include "ohm_compress.h"

#include "ohm_error.h"
#include "ohm_rng.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *const names[OHM_COMPRESS_COUNT] = {"none", "f16",   "bf16", "q8",
                                                            "topk", "randk", "q4"};
static const char *const entropy_names[OHM_ENTROPY_COUNT] = {"none", "deflate"};

struct ohm_compress {
    ohm_compressor_t c;
    uint32_t n, m;
    uint64_t seed;
    uint32_t peer;
    float *mag;    /* topk: magnitudes, reordered by the selection */
    uint8_t *raw;  /* step_packed: the payload as the compressor writes it */
    uint8_t *pack; /* entropy stage: q8z's scales and deflated codes */
    z_stream zs;   /* entropy stage: reset per message, not made anew */
    int zs_on;
};

int ohm_entropy_from_name(const char *name)
{
    for (int i = 0; i < OHM_ENTROPY_COUNT; i++)
        if (strcmp(name, entropy_names[i]) == 0) return i;
    return -1;
}

const char *ohm_entropy_name(ohm_entropy_t e)
{
    assert(e >= 0 && e < OHM_ENTROPY_COUNT);
    return entropy_names[e];
}

int ohm_compress_from_name(const char *name)
{
    for (int i = 0; i < OHM_COMPRESS_COUNT; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

const char *ohm_compress_name(ohm_compressor_t c)
{
    assert(c >= 0 && c < OHM_COMPRESS_COUNT);
    return names[c];
}

ohm_kind_t ohm_compress_kind(ohm_compressor_t c)
{
    switch (c) {
    case OHM_COMPRESS_F16:
        return OHM_KIND_F16;
    case OHM_COMPRESS_BF16:
        return OHM_KIND_BF16;
    case OHM_COMPRESS_Q8:
        return OHM_KIND_Q8;
    case OHM_COMPRESS_Q4:
        return OHM_KIND_Q4;
    case OHM_COMPRESS_TOPK:
    case OHM_COMPRESS_RANDK:
        return OHM_KIND_SPARSE;
    default:
        return OHM_KIND_F32;
    }
}

uint32_t ohm_compress_entries(ohm_compressor_t c, uint32_t n, double ratio)
{
    if (c != OHM_COMPRESS_TOPK && c != OHM_COMPRESS_RANDK) return 0;
    double m = floor(ratio * (double)n + 0.5);
    uint32_t cap = n / 2;
    if (m < 1) m = 1;
    return m > cap ? cap : (uint32_t)m;
}

int ohm_compress_new(ohm_compressor_t c, double ratio, uint32_t n, uint64_t seed, uint32_t peer,
                     ohm_compress_t **out)
{
    *out = NULL;
    if (c <= OHM_COMPRESS_NONE || c >= OHM_COMPRESS_COUNT || !(ratio > 0 && ratio <= 1))
        return ohm_error_set(OHM_EINVAL, "compressor %d with ratio %g", (int)c, ratio);
    ohm_compress_t *z = calloc(1, sizeof *z);
    if (!z) return ohm_error_set(OHM_ENOMEM, "compressor");
    z->c = c;
    z->n = n;
    z->m = ohm_compress_entries(c, n, ratio);
    z->seed = seed;
    z->peer = peer;
    if (c == OHM_COMPRESS_TOPK && !(z->mag = malloc(sizeof(float) * (n ? n : 1)))) {
        free(z);
        return ohm_error_set(OHM_ENOMEM, "compressor: %u floats", n);
    }
    *out = z;
    return OHM_OK;
}

void ohm_compress_destroy(ohm_compress_t **pz)
{
    if (!pz || !*pz) return;
    if ((*pz)->zs_on) deflateEnd(&(*pz)->zs);
    free((*pz)->raw);
    free((*pz)->pack);
    free((*pz)->mag);
    free(*pz);
    *pz = NULL;
}

ohm_kind_t ohm_compress_payload_kind(const ohm_compress_t *z)
{
    return ohm_compress_kind(z->c);
}

size_t ohm_compress_payload_size(const ohm_compress_t *z)
{
    return ohm_payload_size(ohm_compress_kind(z->c), z->n, z->m);
}

/* ---------------------------------------------------------------- bytes */

static void store32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void store16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void store_float(uint8_t *p, float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    store32(p, b);
}

/* ---------------------------------------------------------------- q8 */

#define Q8_SCALE_MAX (FLT_MAX / 128.0f)

/* The largest magnitude of d[lo..hi) (finite inputs), as the maximum of
 * the magnitudes' bit patterns: for non-negative floats the integer order is
 * the float order, and an integer maximum vectorizes where a float one (or a
 * call to fmaxf per coordinate, which showed in profiles) does not. */
static float block_amax(const float *d, size_t lo, size_t hi)
{
    int32_t m = 0;
    for (size_t i = lo; i < hi; i++) {
        int32_t b;
        memcpy(&b, &d[i], 4);
        b &= 0x7fffffff;
        m = b > m ? b : m;
    }
    float amax;
    memcpy(&amax, &m, 4);
    return amax;
}

/* The code of v = d / s clamped to -max..max, v rounded to nearest even as
 * lrintf does in the default rounding mode: adding and subtracting 1.5 2^23
 * rounds any |v| < 2^22 (larger ones are clamped anyway), with no library
 * call per coordinate, so the encoders' loops vectorize. */
static inline int code_of(float v, float max)
{
    const float magic = 12582912.0f;
    float r = (v + magic) - magic;
    r = r > max ? max : r < -max ? -max : r;
    return (int)r;
}

/* The codes of d[0..len) at scale s > 0, clamped to -max..max. */
static void block_codes(const float *restrict d, size_t len, float s, float max,
                        int8_t *restrict codes)
{
    for (size_t i = 0; i < len; i++)
        codes[i] = (int8_t)code_of(d[i] / s, max);
}

static void encode_q8(const float *d, uint32_t n, uint8_t *buf)
{
    size_t nb = ((size_t)n + OHM_Q8_BLOCK - 1) / OHM_Q8_BLOCK;
    int8_t *codes = (int8_t *)(void *)(buf + 4 * nb);
    for (size_t b = 0; b < nb; b++) {
        size_t lo = b * OHM_Q8_BLOCK, hi = lo + OHM_Q8_BLOCK < n ? lo + OHM_Q8_BLOCK : n;
        float s = block_amax(d, lo, hi) / 127.0f;
        if (s > Q8_SCALE_MAX) s = Q8_SCALE_MAX;
        store_float(buf + 4 * b, s);
        if (s > 0)
            block_codes(d + lo, hi - lo, s, 127.0f, codes + lo);
        else
            memset(codes + lo, 0, hi - lo);
    }
}

/* q4: codes round(d / s) in -7..7 with s = amax / 7 per block, coordinate 2j
 * in the low nibble of byte j and 2j+1 in the high one (two's complement);
 * an odd n leaves the last high nibble zero. */
static void encode_q4(const float *d, uint32_t n, uint8_t *buf)
{
    size_t nb = ((size_t)n + OHM_Q8_BLOCK - 1) / OHM_Q8_BLOCK;
    uint8_t *packed = buf + 4 * nb;
    int8_t t[OHM_Q8_BLOCK + 1];
    for (size_t b = 0; b < nb; b++) {
        size_t lo = b * OHM_Q8_BLOCK, hi = lo + OHM_Q8_BLOCK < n ? lo + OHM_Q8_BLOCK : n;
        size_t len = hi - lo;
        float s = block_amax(d, lo, hi) / (float)OHM_Q4_MAX;
        if (s > Q8_SCALE_MAX) s = Q8_SCALE_MAX;
        store_float(buf + 4 * b, s);
        if (s > 0)
            block_codes(d + lo, len, s, (float)OHM_Q4_MAX, t);
        else
            memset(t, 0, len);
        t[len] = 0; /* n odd: the unused last nibble */
        for (size_t j = 0; j < (len + 1) / 2; j++) /* lo is even */
            packed[lo / 2 + j] = (uint8_t)((t[2 * j] & 0x0f) | (t[2 * j + 1] & 0x0f) << 4);
    }
}

/* ---------------------------------------------------------------- topk */

/* The k-th largest of a[n] (1 <= k <= n); a is reordered. Quickselect with a
 * median-of-three pivot: linear on average, on data that is not crafted
 * (a sender selects from its own model's difference). */
static float kth_largest(float *a, size_t n, size_t k)
{
    assert(k >= 1 && k <= n);
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, t = (ptrdiff_t)(n - k);
    while (lo < hi) {
        float x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi];
        float pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j) {
                float tmp = a[i];
                a[i++] = a[j];
                a[j--] = tmp;
            }
        }
        if (t <= j)
            hi = j;
        else if (t >= i)
            lo = i;
        else
            return a[t];
    }
    return a[t];
}

/* The m coordinates of largest magnitude, in increasing order; ties at the
 * threshold go to the lowest indices, so the choice is deterministic. */
static void encode_topk(ohm_compress_t *z, const float *d, uint8_t *buf)
{
    uint32_t n = z->n, m = z->m;
    for (uint32_t i = 0; i < n; i++)
        z->mag[i] = fabsf(d[i]);
    float t = kth_largest(z->mag, n, m);
    uint32_t above = 0;
    for (uint32_t i = 0; i < n; i++)
        above += fabsf(d[i]) > t;
    uint32_t ties = m - above, k = 0;
    uint8_t *vals = buf + 4 * (size_t)m;
    for (uint32_t i = 0; i < n && k < m; i++) {
        float a = fabsf(d[i]);
        if (a > t || (a == t && ties > 0 && ties--)) {
            store32(buf + 4 * (size_t)k, i);
            store16(vals + 2 * (size_t)k, ohm_bf16_from_float(d[i]));
            k++;
        }
    }
    assert(k == m);
}

/* m coordinates drawn uniformly without replacement, in increasing order
 * (selection sampling, Knuth's Algorithm S). */
static void encode_randk(ohm_compress_t *z, const float *d, uint32_t round, uint8_t *buf)
{
    uint32_t n = z->n, m = z->m, k = 0;
    ohm_rng_t r;
    ohm_rng_seed(&r, ohm_hash64(&round, sizeof round, z->seed), z->peer, OHM_STREAM_COMM);
    uint8_t *vals = buf + 4 * (size_t)m;
    for (uint32_t i = 0; i < n && k < m; i++)
        if (ohm_rng_uniform(&r) * (double)(n - i) < (double)(m - k)) {
            store32(buf + 4 * (size_t)k, i);
            store16(vals + 2 * (size_t)k, ohm_bf16_from_float(d[i]));
            k++;
        }
    assert(k == m);
}

void ohm_compress_encode(ohm_compress_t *z, const float *d, uint32_t round, uint8_t *buf,
                         uint32_t *entries)
{
    assert(z && buf && entries && (d || z->n == 0));
    *entries = 0;
    switch (z->c) {
    case OHM_COMPRESS_F16:
        for (uint32_t i = 0; i < z->n; i++)
            store16(buf + 2 * (size_t)i, ohm_f16_from_float(d[i]));
        break;
    case OHM_COMPRESS_BF16:
        for (uint32_t i = 0; i < z->n; i++)
            store16(buf + 2 * (size_t)i, ohm_bf16_from_float(d[i]));
        break;
    case OHM_COMPRESS_Q8:
        encode_q8(d, z->n, buf);
        break;
    case OHM_COMPRESS_Q4:
        encode_q4(d, z->n, buf);
        break;
    case OHM_COMPRESS_TOPK:
        if (z->m) encode_topk(z, d, buf);
        *entries = z->m;
        break;
    case OHM_COMPRESS_RANDK:
        if (z->m) encode_randk(z, d, round, buf);
        *entries = z->m;
        break;
    default:
        assert(0 && "no compressor");
    }
}

int ohm_compress_step(ohm_compress_t *z, const float *x, float *xhat, float *scratch,
                      uint32_t round, uint8_t *buf, uint32_t *entries)
{
    for (uint32_t i = 0; i < z->n; i++) {
        float v = x[i] - xhat[i];
        scratch[i] = fabsf(v) <= FLT_MAX ? v : copysignf(FLT_MAX, v);
    }
    ohm_compress_encode(z, scratch, round, buf, entries);
    return ohm_payload_apply(ohm_compress_kind(z->c), z->n, *entries, buf, xhat);
}

/* ---------------------------------------------------------------- entropy stage */

int ohm_compress_set_entropy(ohm_compress_t *z, ohm_entropy_t e)
{
    if (e < 0 || e >= OHM_ENTROPY_COUNT)
        return ohm_error_set(OHM_EINVAL, "entropy stage %d", (int)e);
    if (e == OHM_ENTROPY_NONE || z->c != OHM_COMPRESS_Q8 || z->zs_on) return OHM_OK;
    size_t size = ohm_compress_payload_size(z);
    if (!z->pack && !(z->pack = malloc(size ? size : 1)))
        return ohm_error_set(OHM_ENOMEM, "entropy stage: %zu bytes", size);
    /* Huffman codes alone: q8's codes have no repeats worth matching, and
     * deflate's match search took twice the time for 0-2 % fewer bytes
     * (docs/results/comm.md). A raw stream: CURVE already authenticates the
     * bytes, a checksum would add nothing. */
    memset(&z->zs, 0, sizeof z->zs);
    if (deflateInit2(&z->zs, 1, Z_DEFLATED, -MAX_WBITS, MAX_MEM_LEVEL, Z_HUFFMAN_ONLY) != Z_OK)
        return ohm_error_set(OHM_ENOMEM, "entropy stage: deflate");
    z->zs_on = 1;
    return OHM_OK;
}

/* raw (a q8 payload) as q8z into z->pack; 0 when the deflated codes would
 * not be shorter than the codes themselves, else their length. */
static uint32_t pack_q8z(ohm_compress_t *z, const uint8_t *raw)
{
    uint32_t n = z->n;
    size_t scales = 4 * (((size_t)n + OHM_Q8_BLOCK - 1) / OHM_Q8_BLOCK);
    if (n < 2 || deflateReset(&z->zs) != Z_OK) return 0;
    memcpy(z->pack, raw, scales);
    z->zs.next_in = (Bytef *)(uintptr_t)(raw + scales); /* zlib does not write through it */
    z->zs.avail_in = n;
    z->zs.next_out = z->pack + scales;
    z->zs.avail_out = n - 1; /* shorter, or not at all */
    if (deflate(&z->zs, Z_FINISH) != Z_STREAM_END) return 0;
    return (uint32_t)z->zs.total_out;
}

int ohm_compress_step_packed(ohm_compress_t *z, const float *x, float *xhat, float *scratch,
                             uint32_t round, ohm_compress_out_t *out)
{
    size_t size = ohm_compress_payload_size(z);
    if (!z->raw && !(z->raw = malloc(size ? size : 1)))
        return ohm_error_set(OHM_ENOMEM, "compressor: %zu bytes", size);
    uint32_t entries = 0;
    int rc = ohm_compress_step(z, x, xhat, scratch, round, z->raw, &entries);
    *out = (ohm_compress_out_t){ohm_compress_kind(z->c), entries, z->raw, size};
    uint32_t zlen = z->zs_on ? pack_q8z(z, z->raw) : 0;
    if (zlen) {
        out->kind = OHM_KIND_Q8Z;
        out->entries = zlen;
        out->bytes = z->pack;
        out->len = ohm_payload_size(OHM_KIND_Q8Z, z->n, zlen);
    }
    return rc;
}

/* ---------------------------------------------------------------- censoring */

int ohm_censor_skip(const ohm_censor_t *c, uint32_t round, uint32_t version, double dnorm,
                    double xnorm)
{
    if (round < version || round - version > c->max_staleness) return 0;
    double tau = c->tau0 * pow(c->decay, (double)round);
    return dnorm <= tau * xnorm;
}

void ohm_compress_norms(const float *a, const float *b, size_t n, double *diff, double *norm)
{
    double s = 0, t = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
        t += (double)a[i] * (double)a[i];
    }
    *diff = sqrt(s);
    *norm = sqrt(t);
}
