/* test_compress: the payload layouts (16-bit floats, q8, sparse), every
 * compressor's encode and decode, error feedback (the sender's public copy and
 * a receiver's stay bit-identical, and the error does not accumulate), the
 * entropy stage (q8z: lossless, and every hostile stream rejected), and the
 * censoring rule. */
#include "ohm_compress.h"
#include "ohm_error.h"
#include "ohm_payload.h"
#include "ohm_rng.h"

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint32_t bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static float *randn(uint32_t n, uint64_t seed, float scale)
{
    float *x = malloc(sizeof(float) * n);
    cr_assert_not_null(x);
    ohm_rng_t r;
    ohm_rng_seed(&r, seed, 0, 77);
    for (uint32_t i = 0; i < n; i++)
        x[i] = scale * (float)ohm_rng_normal(&r);
    return x;
}

/* ---- 16-bit floats ------------------------------------------------------- */

Test(payload, f16_is_exact_where_it_can_be_and_rounds_to_nearest_even)
{
    /* every finite f16 reads back exactly */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        float f = ohm_f16_to_float((uint16_t)h);
        cr_assert_eq(ohm_f16_from_float(f), (uint16_t)h, "f16 %04x -> %g", h, (double)f);
    }
    cr_expect_eq(ohm_f16_from_float(1.0f), 0x3c00);
    cr_expect_eq(ohm_f16_from_float(-2.0f), 0xc000);
    cr_expect_eq(ohm_f16_from_float(65504.0f), 0x7bff);
    cr_expect_eq(ohm_f16_from_float(1e9f), 0x7bff, "finite saturates");
    cr_expect_eq(ohm_f16_from_float(-1e9f), 0xfbff);
    cr_expect_eq(ohm_f16_from_float(INFINITY), 0x7c00);
    cr_expect_eq(ohm_f16_from_float(5.9604645e-8f), 0x0001, "smallest subnormal");
    cr_expect_eq(ohm_f16_from_float(1e-9f), 0x0000);
    /* halfway between 1 and the next f16 (1 + 2^-10) goes to the even one */
    cr_expect_eq(ohm_f16_from_float(1.0f + 0x1p-11f), 0x3c00);
    cr_expect_eq(ohm_f16_from_float(1.0f + 3 * 0x1p-11f), 0x3c02);
    /* relative error of a normal value at most 2^-11 */
    float *x = randn(10000, 1, 3.0f);
    for (int i = 0; i < 10000; i++) {
        float y = ohm_f16_to_float(ohm_f16_from_float(x[i]));
        if (fabsf(x[i]) > 6.2e-5f) cr_assert_leq(fabsf(y - x[i]), fabsf(x[i]) * 0x1p-11f);
    }
    free(x);
}

Test(payload, bf16_rounds_to_nearest_even_and_saturates)
{
    for (uint32_t h = 0; h < 0x10000; h += 7) {
        if ((h & 0x7f80) == 0x7f80) continue;
        cr_assert_eq(ohm_bf16_from_float(ohm_bf16_to_float((uint16_t)h)), (uint16_t)h);
    }
    cr_expect_eq(ohm_bf16_from_float(1.0f), 0x3f80);
    cr_expect_eq(ohm_bf16_from_float(1.0f + 0x1p-8f), 0x3f80, "halfway to even");
    cr_expect_eq(ohm_bf16_from_float(1.0f + 3 * 0x1p-8f), 0x3f82);
    cr_expect_eq(ohm_bf16_from_float(FLT_MAX), 0x7f7f, "finite saturates");
    cr_expect_eq(ohm_bf16_from_float(-FLT_MAX), 0xff7f);
    cr_expect(isnan(ohm_bf16_to_float(ohm_bf16_from_float(NAN))));
}

Test(payload, sizes_of_every_kind)
{
    cr_expect_eq(ohm_payload_size(OHM_KIND_F32, 10, 0), 40);
    cr_expect_eq(ohm_payload_size(OHM_KIND_F16, 10, 0), 20);
    cr_expect_eq(ohm_payload_size(OHM_KIND_BF16, 10, 0), 20);
    cr_expect_eq(ohm_payload_size(OHM_KIND_Q8, 10, 0), 14);
    cr_expect_eq(ohm_payload_size(OHM_KIND_Q8, 512, 0), 520);
    cr_expect_eq(ohm_payload_size(OHM_KIND_Q8, 513, 0), 525);
    cr_expect_eq(ohm_payload_size(OHM_KIND_Q4, 10, 0), 9);
    cr_expect_eq(ohm_payload_size(OHM_KIND_Q4, 512, 0), 264);
    cr_expect_eq(ohm_payload_size(OHM_KIND_Q4, 513, 0), 269);
    cr_expect_eq(ohm_payload_size(OHM_KIND_SPARSE, 10, 5), 30);
    cr_expect_eq(ohm_payload_size(OHM_KIND_SPARSE, 10, 6), SIZE_MAX, "m over n/2");
    cr_expect_eq(ohm_payload_size(OHM_KIND_F32, 10, 1), SIZE_MAX, "m of a dense kind");
    cr_expect_eq(ohm_payload_size(OHM_KIND_SAME, 10, 0), 0);
    cr_expect_eq(ohm_payload_size(OHM_KIND_COUNT, 10, 0), SIZE_MAX);
    cr_expect_eq(ohm_payload_size(OHM_KIND_SPARSE, 10, 1ull << 40), SIZE_MAX);
    cr_expect_eq(ohm_payload_size(OHM_KIND_Q8Z, 10, 3), 7, "scales, then m deflated bytes");
    cr_expect_eq(ohm_payload_size(OHM_KIND_Q8Z, 513, 512), 524);
    cr_expect_eq(ohm_payload_size(OHM_KIND_Q8Z, 10, 0), SIZE_MAX, "no stream");
    cr_expect_eq(ohm_payload_size(OHM_KIND_Q8Z, 10, 10), SIZE_MAX, "not shorter than q8");
    /* every kind fits in 4n + 4 */
    for (uint32_t n = 1; n < 2000; n += 37)
        for (int k = 0; k < OHM_KIND_COUNT; k++)
            if (k != OHM_KIND_Q8Z || n > 1) /* q8z of one code does not exist */
                cr_assert_leq(ohm_payload_size((uint32_t)k, n,
                                               k == OHM_KIND_SPARSE ? n / 2
                                               : k == OHM_KIND_Q8Z  ? (n > 1 ? n - 1 : 0)
                                                                    : 0),
                              4 * (size_t)n + 4);
}

Test(payload, apply_reports_an_overflowing_copy)
{
    float x[4] = {FLT_MAX, 0, 0, 0};
    uint8_t q[8];
    float s = FLT_MAX / 128.0f;
    memcpy(q, &s, 4);
    q[4] = 127, q[5] = 0, q[6] = 0, q[7] = 0;
    cr_expect_eq(ohm_payload_check_values(OHM_KIND_Q8, 4, 0, q), OHM_OK);
    cr_expect_eq(ohm_payload_apply(OHM_KIND_Q8, 4, 0, q, x), OHM_ENONFINITE);
    cr_expect(strstr(ohm_error_detail(), "coordinate 0") != NULL, "%s", ohm_error_detail());
}

Test(payload, q4_codes_are_minus_seven_to_seven)
{
    enum { N = 5 };
    uint8_t q[4 + 3];
    float s = 0.5f, x[N] = {0};
    memcpy(q, &s, 4);
    q[4] = 0x79, q[5] = 0x09, q[6] = 0x01; /* 7 and 9 = -7, -7 and 0, 1 and the unused nibble */
    cr_assert_eq(ohm_payload_check_structure(OHM_KIND_Q4, N, 0, q), OHM_OK, "%s",
                 ohm_error_detail());
    cr_assert_eq(ohm_payload_apply(OHM_KIND_Q4, N, 0, q, x), OHM_OK);
    float want[N] = {-3.5f, 3.5f, -3.5f, 0.0f, 0.5f};
    cr_expect_arr_eq(x, want, sizeof x);
    q[5] = 0x80; /* the code -8 in coordinate 3 */
    cr_expect_eq(ohm_payload_check_structure(OHM_KIND_Q4, N, 0, q), OHM_EFORMAT);
    cr_expect(strstr(ohm_error_detail(), "coordinate 3") != NULL, "%s", ohm_error_detail());
    q[5] = 0x08; /* ... in coordinate 2 */
    cr_expect_eq(ohm_payload_check_structure(OHM_KIND_Q4, N, 0, q), OHM_EFORMAT);
    cr_expect(strstr(ohm_error_detail(), "coordinate 2") != NULL, "%s", ohm_error_detail());
    q[5] = 0x09, q[6] = 0x11; /* the unused high nibble of an odd n must be zero */
    cr_expect_eq(ohm_payload_check_structure(OHM_KIND_Q4, N, 0, q), OHM_EFORMAT);
    cr_expect_eq(ohm_payload_check_structure(OHM_KIND_Q4, N + 1, 0, q), OHM_OK,
                 "with an even n it is a code");
    s = INFINITY;
    memcpy(q, &s, 4);
    cr_expect_eq(ohm_payload_check_values(OHM_KIND_Q4, N, 0, q), OHM_ENONFINITE);
}

/* ---- compressors ---------------------------------------------------------- */

/* Decodes payload pl of compressor c into a zero vector. */
static void decode_into(ohm_compressor_t c, uint32_t n, uint32_t m, const uint8_t *pl, float *out)
{
    memset(out, 0, sizeof(float) * n);
    ohm_kind_t k = ohm_compress_kind(c);
    cr_assert_eq(ohm_payload_check_structure(k, n, m, pl), OHM_OK, "%s", ohm_error_detail());
    cr_assert_eq(ohm_payload_check_values(k, n, m, pl), OHM_OK, "%s", ohm_error_detail());
    cr_assert_eq(ohm_payload_apply(k, n, m, pl, out), OHM_OK);
}

Test(compress, names_and_entries)
{
    for (int c = 0; c < OHM_COMPRESS_COUNT; c++)
        cr_expect_eq(ohm_compress_from_name(ohm_compress_name((ohm_compressor_t)c)), c);
    cr_expect_eq(ohm_compress_from_name("zip"), -1);
    cr_expect_eq(ohm_compress_entries(OHM_COMPRESS_TOPK, 1000, 0.05), 50);
    cr_expect_eq(ohm_compress_entries(OHM_COMPRESS_RANDK, 1000, 0.0001), 1, "at least one");
    cr_expect_eq(ohm_compress_entries(OHM_COMPRESS_TOPK, 1000, 1.0), 500, "at most n/2");
    cr_expect_eq(ohm_compress_entries(OHM_COMPRESS_Q8, 1000, 0.05), 0);
    ohm_compress_t *z = NULL;
    cr_expect_eq(ohm_compress_new(OHM_COMPRESS_NONE, 0.1, 10, 1, 0, &z), OHM_EINVAL);
    cr_expect_eq(ohm_compress_new(OHM_COMPRESS_TOPK, 0, 10, 1, 0, &z), OHM_EINVAL);
    cr_expect_null(z);
    ohm_compress_destroy(&z); /* NULL-safe */
}

Test(compress, dense_compressors_bound_their_error)
{
    enum { N = 1000 };
    float *d = randn(N, 2, 0.01f), out[N];
    uint8_t pl[4 * N + 8];
    static const ohm_compressor_t dense[] = {OHM_COMPRESS_F16, OHM_COMPRESS_BF16, OHM_COMPRESS_Q8,
                                             OHM_COMPRESS_Q4};
    for (size_t t = 0; t < sizeof dense / sizeof *dense; t++) {
        ohm_compressor_t c = dense[t];
        ohm_compress_t *z = NULL;
        cr_assert_eq(ohm_compress_new((ohm_compressor_t)c, 0.5, N, 1, 0, &z), OHM_OK);
        uint32_t m = 7;
        ohm_compress_encode(z, d, 3, pl, &m);
        cr_expect_eq(m, 0);
        decode_into((ohm_compressor_t)c, N, m, pl, out);
        for (int b = 0; b < N; b += OHM_Q8_BLOCK) {
            float amax = 0;
            for (int i = b; i < b + OHM_Q8_BLOCK && i < N; i++)
                amax = fmaxf(amax, fabsf(d[i]));
            for (int i = b; i < b + OHM_Q8_BLOCK && i < N; i++) {
                float err = fabsf(out[i] - d[i]);
                float bound = c == OHM_COMPRESS_Q8    ? amax / 127.0f * 0.5001f
                              : c == OHM_COMPRESS_Q4  ? amax / 7.0f * 0.5001f
                              : c == OHM_COMPRESS_F16 ? fmaxf(fabsf(d[i]) * 0x1p-11f, 3e-8f)
                                                      : fabsf(d[i]) * 0x1p-8f;
                cr_assert_leq(err, bound, "%s: coordinate %d: %g for %g",
                              ohm_compress_name((ohm_compressor_t)c), i, (double)out[i],
                              (double)d[i]);
            }
        }
        ohm_compress_destroy(&z);
    }
    free(d);
}

Test(compress, q8_keeps_zero_blocks_and_saturated_codes)
{
    enum { N = 300 };
    float d[N] = {0}, out[N];
    d[OHM_Q8_BLOCK] = -5.0f; /* the second block: one value, the code -127 */
    d[OHM_Q8_BLOCK + 1] = 2.5f;
    uint8_t pl[4 * N];
    ohm_compress_t *z = NULL;
    cr_assert_eq(ohm_compress_new(OHM_COMPRESS_Q8, 0.5, N, 1, 0, &z), OHM_OK);
    uint32_t m;
    ohm_compress_encode(z, d, 0, pl, &m);
    float s0;
    memcpy(&s0, pl, 4);
    cr_expect_eq(s0, 0.0f, "an all-zero block has scale 0");
    cr_expect_eq((int8_t)pl[8 + OHM_Q8_BLOCK], -127);
    decode_into(OHM_COMPRESS_Q8, N, m, pl, out);
    cr_expect_float_eq(out[OHM_Q8_BLOCK], -5.0f, 1e-6);
    cr_expect_float_eq(out[OHM_Q8_BLOCK + 1], 2.5f, 0.03);
    cr_expect_eq(out[0], 0.0f);
    ohm_compress_destroy(&z);
}

Test(compress, topk_keeps_the_largest_in_order)
{
    enum { N = 1000 };
    float *d = randn(N, 3, 1.0f), out[N];
    d[17] = 50.0f, d[900] = -60.0f; /* surely among the largest */
    uint8_t pl[6 * N];
    ohm_compress_t *z = NULL;
    cr_assert_eq(ohm_compress_new(OHM_COMPRESS_TOPK, 0.05, N, 1, 0, &z), OHM_OK);
    uint32_t m;
    ohm_compress_encode(z, d, 0, pl, &m);
    cr_assert_eq(m, 50);
    decode_into(OHM_COMPRESS_TOPK, N, m, pl, out);
    /* the kept ones are exactly those >= the 50th largest magnitude */
    float mags[N];
    for (int i = 0; i < N; i++)
        mags[i] = fabsf(d[i]);
    int above = 0;
    float kth = 0;
    for (int i = 0; i < N; i++) {
        int larger = 0;
        for (int j = 0; j < N; j++)
            larger += mags[j] > mags[i];
        if (larger == 49) kth = mags[i];
    }
    for (int i = 0; i < N; i++) {
        int kept = out[i] != 0.0f;
        above += kept;
        cr_assert_eq(kept, mags[i] >= kth, "coordinate %d (|d| %g, 50th %g)", i, (double)mags[i],
                     (double)kth);
        if (kept) cr_assert_eq(out[i], ohm_bf16_to_float(ohm_bf16_from_float(d[i])));
    }
    cr_expect_eq(above, 50);
    /* ties at the threshold go to the lowest indices: all equal, keep the first m */
    float flat[N];
    for (int i = 0; i < N; i++)
        flat[i] = 1.0f;
    ohm_compress_encode(z, flat, 0, pl, &m);
    for (uint32_t j = 0; j < m; j++)
        cr_assert_eq(pl[4 * j] | pl[4 * j + 1] << 8, (int)j);
    ohm_compress_destroy(&z);
    free(d);
}

Test(compress, randk_draws_distinct_seeded_indices)
{
    enum { N = 2000 };
    float *d = randn(N, 4, 1.0f);
    uint8_t a[6 * N], b[6 * N];
    ohm_compress_t *z = NULL, *w = NULL;
    cr_assert_eq(ohm_compress_new(OHM_COMPRESS_RANDK, 0.1, N, 9, 3, &z), OHM_OK);
    cr_assert_eq(ohm_compress_new(OHM_COMPRESS_RANDK, 0.1, N, 9, 3, &w), OHM_OK);
    uint32_t ma, mb;
    ohm_compress_encode(z, d, 5, a, &ma);
    ohm_compress_encode(w, d, 5, b, &mb);
    cr_assert_eq(ma, 200);
    cr_expect_arr_eq(a, b, 6 * (size_t)ma, "same seed, peer and round: same draw");
    cr_assert_eq(ohm_payload_check_structure(OHM_KIND_SPARSE, N, ma, a), OHM_OK);
    ohm_compress_encode(w, d, 6, b, &mb);
    cr_expect(memcmp(a, b, 4 * (size_t)ma) != 0, "another round, another draw");
    /* roughly uniform: each half of the vector gets about half the draws */
    int low = 0;
    for (int r = 0; r < 50; r++) {
        ohm_compress_encode(z, d, (uint32_t)r, a, &ma);
        for (uint32_t j = 0; j < ma; j++)
            low += (a[4 * j] | a[4 * j + 1] << 8) < N / 2;
    }
    cr_expect(low > 4700 && low < 5300, "%d of 10000 draws in the lower half", low);
    ohm_compress_destroy(&z);
    ohm_compress_destroy(&w);
    free(d);
}

/* Error feedback: a sender tracks a drifting model through every compressor;
 * a receiver applying the same bytes holds the same copy bit for bit, and the
 * copy stays close to the model (the error does not accumulate). */
Test(compress, error_feedback_keeps_copies_identical_and_close)
{
    enum { N = 2000, ROUNDS = 300 };
    for (int c = OHM_COMPRESS_F16; c < OHM_COMPRESS_COUNT; c++) {
        ohm_compress_t *z = NULL;
        cr_assert_eq(ohm_compress_new((ohm_compressor_t)c, 0.1, N, 1, 2, &z), OHM_OK);
        float *x = randn(N, 5, 1.0f), *step = randn(N, 6, 0.001f);
        float *pub = calloc(N, sizeof(float)), *recv = calloc(N, sizeof(float));
        float *scratch = malloc(sizeof(float) * N);
        uint8_t *pl = malloc(ohm_compress_payload_size(z) + 1);
        memcpy(pub, x, sizeof(float) * N); /* both start from the copy sent whole */
        memcpy(recv, x, sizeof(float) * N);
        double gap = 0;
        for (uint32_t r = 1; r <= ROUNDS; r++) {
            for (int i = 0; i < N; i++)
                x[i] += step[i] * (float)(1 + (r % 3)); /* a model that keeps moving */
            uint32_t m;
            cr_assert_eq(ohm_compress_step(z, x, pub, scratch, r, pl, &m), OHM_OK);
            ohm_kind_t k = ohm_compress_kind((ohm_compressor_t)c);
            cr_assert_eq(ohm_payload_check_values(k, N, m, pl), OHM_OK);
            cr_assert_eq(ohm_payload_apply(k, N, m, pl, recv), OHM_OK);
            for (int i = 0; i < N; i++)
                cr_assert_eq(bits(pub[i]), bits(recv[i]), "%s round %u coordinate %d",
                             ohm_compress_name((ohm_compressor_t)c), r, i);
            if (r == ROUNDS)
                for (int i = 0; i < N; i++)
                    gap += ((double)x[i] - pub[i]) * ((double)x[i] - pub[i]);
        }
        /* Without error feedback a sparsifier's copy would miss 90% of 300
         * rounds of drift (about 0.003 per round and coordinate); with it,
         * the copy trails by a few rounds' worth at most. */
        double rms = sqrt(gap / N);
        cr_expect_lt(rms, 0.05, "%s: copy %.4f from the model after %d rounds",
                     ohm_compress_name((ohm_compressor_t)c), rms, ROUNDS);
        free(x), free(step), free(pub), free(recv), free(scratch), free(pl);
        ohm_compress_destroy(&z);
    }
}

/* ---- entropy stage (q8z) ---------------------------------------------------- */

Test(entropy, names)
{
    for (int e = 0; e < OHM_ENTROPY_COUNT; e++)
        cr_expect_eq(ohm_entropy_from_name(ohm_entropy_name((ohm_entropy_t)e)), e);
    cr_expect_eq(ohm_entropy_from_name("zstd"), -1);
    ohm_compress_t *z = NULL;
    cr_assert_eq(ohm_compress_new(OHM_COMPRESS_Q8, 0.1, 10, 1, 0, &z), OHM_OK);
    cr_expect_eq(ohm_compress_set_entropy(z, OHM_ENTROPY_COUNT), OHM_EINVAL);
    ohm_compress_destroy(&z);
}

/* A sender with the entropy stage and one without track the same drifting
 * model: every q8z payload is shorter than q8, passes the checks, and a
 * receiver applying it holds the copy of both senders bit for bit. */
Test(entropy, q8z_is_lossless_and_copies_stay_identical)
{
    enum { N = 3000, ROUNDS = 60 }; /* the last block partial */
    ohm_compress_t *z = NULL, *raw = NULL;
    cr_assert_eq(ohm_compress_new(OHM_COMPRESS_Q8, 0.1, N, 1, 2, &z), OHM_OK);
    cr_assert_eq(ohm_compress_set_entropy(z, OHM_ENTROPY_DEFLATE), OHM_OK);
    cr_assert_eq(ohm_compress_new(OHM_COMPRESS_Q8, 0.1, N, 1, 2, &raw), OHM_OK);
    float *x = randn(N, 5, 1.0f), *step = randn(N, 6, 0.001f);
    float *pub = malloc(sizeof(float) * N), *pub_raw = malloc(sizeof(float) * N);
    float *recv = malloc(sizeof(float) * N), *scratch = malloc(sizeof(float) * N);
    memcpy(pub, x, sizeof(float) * N);
    memcpy(pub_raw, x, sizeof(float) * N);
    memcpy(recv, x, sizeof(float) * N);
    size_t q8 = ohm_payload_size(OHM_KIND_Q8, N, 0), zbytes = 0;
    for (uint32_t r = 1; r <= ROUNDS; r++) {
        for (int i = 0; i < N; i++) /* heavy-tailed moves, as a model's differences are */
            x[i] += step[i] * step[(i * 7) % N] * 1000.0f * (float)(1 + r % 3);
        ohm_compress_out_t out, out_raw;
        cr_assert_eq(ohm_compress_step_packed(z, x, pub, scratch, r, &out), OHM_OK);
        cr_assert_eq(ohm_compress_step_packed(raw, x, pub_raw, scratch, r, &out_raw), OHM_OK);
        cr_assert_eq(out.kind, OHM_KIND_Q8Z, "round %u", r);
        cr_assert_eq(out_raw.kind, OHM_KIND_Q8);
        cr_assert_lt(out.entries, N);
        cr_assert_eq(out.len, ohm_payload_size(OHM_KIND_Q8Z, N, out.entries));
        cr_assert_eq(memcmp(out.bytes, out_raw.bytes, 4 * ((N + 255) / 256)), 0, "scales raw");
        zbytes += out.len;
        cr_assert_eq(ohm_payload_check_structure(out.kind, N, out.entries, out.bytes), OHM_OK);
        cr_assert_eq(ohm_payload_check_values(out.kind, N, out.entries, out.bytes), OHM_OK, "%s",
                     ohm_error_detail());
        cr_assert_eq(ohm_payload_apply(out.kind, N, out.entries, out.bytes, recv), OHM_OK);
        for (int i = 0; i < N; i++) {
            cr_assert_eq(bits(pub[i]), bits(recv[i]), "round %u coordinate %d", r, i);
            cr_assert_eq(bits(pub[i]), bits(pub_raw[i]), "round %u coordinate %d", r, i);
        }
    }
    cr_expect_lt(zbytes, ROUNDS * q8 * 95 / 100, "%zu bytes of q8z, %zu of q8", zbytes,
                 ROUNDS * q8);
    free(x), free(step), free(pub), free(pub_raw), free(recv), free(scratch);
    ohm_compress_destroy(&z);
    ohm_compress_destroy(&raw);
}

Test(entropy, falls_back_to_q8_when_deflate_is_not_shorter)
{
    /* one coordinate: no stream is shorter than its one code */
    ohm_compress_t *z = NULL;
    cr_assert_eq(ohm_compress_new(OHM_COMPRESS_Q8, 0.1, 1, 1, 2, &z), OHM_OK);
    cr_assert_eq(ohm_compress_set_entropy(z, OHM_ENTROPY_DEFLATE), OHM_OK);
    float x = 1.0f, pub = 0.0f, scratch;
    ohm_compress_out_t out;
    cr_assert_eq(ohm_compress_step_packed(z, &x, &pub, &scratch, 1, &out), OHM_OK);
    cr_expect_eq(out.kind, OHM_KIND_Q8);
    cr_expect_eq(out.len, 5);
    cr_expect_eq(pub, 1.0f);
    ohm_compress_destroy(&z);
    /* other compressors are left as they are */
    cr_assert_eq(ohm_compress_new(OHM_COMPRESS_TOPK, 0.1, 100, 1, 2, &z), OHM_OK);
    cr_assert_eq(ohm_compress_set_entropy(z, OHM_ENTROPY_DEFLATE), OHM_OK);
    float xs[100] = {0}, ps[100] = {0}, ss[100];
    xs[3] = 1;
    cr_assert_eq(ohm_compress_step_packed(z, xs, ps, ss, 1, &out), OHM_OK);
    cr_expect_eq(out.kind, OHM_KIND_SPARSE);
    cr_expect_eq(out.entries, 10);
    ohm_compress_destroy(&z);
}

enum { HN = 1000, HNB = (HN + 255) / 256 };

/* A q8z payload of HN codes: unit scales, then `codes` (clen bytes) deflated
 * with the given strategy; the payload's m is returned. */
static uint32_t make_q8z(const int8_t *codes, size_t clen, int strategy, uint8_t *pl, size_t cap)
{
    for (int b = 0; b < HNB; b++) {
        float one = 1.0f;
        memcpy(pl + 4 * b, &one, 4);
    }
    z_stream s;
    memset(&s, 0, sizeof s);
    cr_assert_eq(deflateInit2(&s, 9, Z_DEFLATED, -MAX_WBITS, 8, strategy), Z_OK);
    s.next_in = (Bytef *)(uintptr_t)codes;
    s.avail_in = (uInt)clen;
    s.next_out = pl + 4 * HNB;
    s.avail_out = (uInt)(cap - 4 * HNB);
    cr_assert_eq(deflate(&s, Z_FINISH), Z_STREAM_END);
    uint32_t m = (uint32_t)s.total_out;
    deflateEnd(&s);
    return m;
}

/* Every way a q8z stream can lie is a counted rejection (an error code),
 * never a crash, an over-read or unbounded work; apply on such a stream
 * reports it too. */
Test(entropy, hostile_streams_are_rejected)
{
    static int8_t codes[1 << 18];
    static uint8_t pl[1 << 16];
    for (size_t i = 0; i < sizeof codes; i++)
        codes[i] = (int8_t)((i * 7919) % 9) - 4;
    float x[HN] = {0};
    /* the honest one */
    uint32_t m = make_q8z(codes, HN, Z_HUFFMAN_ONLY, pl, sizeof pl);
    cr_assert_lt(m, HN);
    cr_assert_eq(ohm_payload_check_values(OHM_KIND_Q8Z, HN, m, pl), OHM_OK, "%s",
                 ohm_error_detail());
    cr_assert_eq(ohm_payload_apply(OHM_KIND_Q8Z, HN, m, pl, x), OHM_OK);
    for (int i = 0; i < HN; i++)
        cr_assert_eq(x[i], (float)codes[i]);
    /* length lies: shorter (the stream truncated), longer (bytes after its end) */
    for (uint32_t k = 1; k < m; k += 5) {
        cr_expect_eq(ohm_payload_check_values(OHM_KIND_Q8Z, HN, k, pl), OHM_EFORMAT, "m=%u", k);
        cr_expect_eq(ohm_payload_apply(OHM_KIND_Q8Z, HN, k, pl, x), OHM_EFORMAT, "m=%u", k);
    }
    pl[4 * HNB + m] = 0;
    cr_expect_eq(ohm_payload_check_values(OHM_KIND_Q8Z, HN, m + 1, pl), OHM_EFORMAT);
    cr_expect(strstr(ohm_error_detail(), "after the end") != NULL, "%s", ohm_error_detail());
    /* a stream of n + 1 codes and one of n - 1 */
    m = make_q8z(codes, HN + 1, Z_HUFFMAN_ONLY, pl, sizeof pl);
    cr_expect_eq(ohm_payload_check_values(OHM_KIND_Q8Z, HN, m, pl), OHM_EFORMAT, "n + 1");
    cr_expect(strstr(ohm_error_detail(), "more than") != NULL, "%s", ohm_error_detail());
    m = make_q8z(codes, HN - 1, Z_HUFFMAN_ONLY, pl, sizeof pl);
    cr_expect_eq(ohm_payload_check_values(OHM_KIND_Q8Z, HN, m, pl), OHM_EFORMAT, "n - 1");
    cr_expect_eq(ohm_payload_apply(OHM_KIND_Q8Z, HN, m, pl, x), OHM_EFORMAT);
    /* a bomb: 256 kB of codes in a few hundred bytes stops at n + 1 */
    m = make_q8z(codes, sizeof codes, Z_DEFAULT_STRATEGY, pl, sizeof pl);
    cr_assert_lt(m, HN);
    cr_expect_eq(ohm_payload_check_values(OHM_KIND_Q8Z, HN, m, pl), OHM_EFORMAT, "bomb");
    /* a code of -128 */
    int8_t low[HN] = {0};
    low[700] = INT8_MIN;
    m = make_q8z(low, HN, Z_HUFFMAN_ONLY, pl, sizeof pl);
    cr_expect_eq(ohm_payload_check_values(OHM_KIND_Q8Z, HN, m, pl), OHM_ERANGE);
    cr_expect(strstr(ohm_error_detail(), "code 700") != NULL, "%s", ohm_error_detail());
    /* a scale that is not finite, before any inflating */
    m = make_q8z(codes, HN, Z_HUFFMAN_ONLY, pl, sizeof pl);
    float inf = INFINITY;
    memcpy(pl + 4, &inf, 4);
    cr_expect_eq(ohm_payload_check_values(OHM_KIND_Q8Z, HN, m, pl), OHM_ENONFINITE);
    float one = 1.0f;
    memcpy(pl + 4, &one, 4);
    /* garbage, and honest streams with a byte flipped: never accepted wrongly */
    ohm_rng_t r;
    ohm_rng_seed(&r, 3, 0, 77);
    for (int t = 0; t < 200; t++) {
        m = 1 + (uint32_t)(ohm_rng_uniform(&r) * (HN - 1));
        for (uint32_t j = 0; j < m; j++)
            pl[4 * HNB + j] = (uint8_t)(ohm_rng_uniform(&r) * 256);
        int rc = ohm_payload_check_values(OHM_KIND_Q8Z, HN, m, pl);
        cr_expect(rc == OHM_EFORMAT || rc == OHM_ERANGE, "garbage %d: %d", t, rc);
    }
    for (int t = 0; t < 200; t++) {
        m = make_q8z(codes, HN, Z_HUFFMAN_ONLY, pl, sizeof pl);
        uint32_t at = (uint32_t)(ohm_rng_uniform(&r) * m);
        pl[4 * HNB + at] ^= (uint8_t)(1u << (t % 8));
        int rc = ohm_payload_check_values(OHM_KIND_Q8Z, HN, m, pl);
        cr_expect(rc == OHM_OK || rc == OHM_EFORMAT || rc == OHM_ERANGE, "flip %d: %d", t, rc);
        if (rc == OHM_OK) /* a flip can make other valid codes: they apply */
            cr_expect_eq(ohm_payload_apply(OHM_KIND_Q8Z, HN, m, pl, x), OHM_OK);
    }
}

/* ---- censoring ------------------------------------------------------------ */

Test(censor, threshold_decays_and_staleness_forces_a_send)
{
    ohm_censor_t c = {.tau0 = 0.1, .decay = 0.5, .max_staleness = 3};
    /* round 0: threshold 0.1 relative */
    cr_expect_eq(ohm_censor_skip(&c, 1, 0, 0.04, 1.0), 1, "0.04 <= 0.1 * 0.5");
    cr_expect_eq(ohm_censor_skip(&c, 1, 0, 0.06, 1.0), 0, "0.06 > 0.05");
    cr_expect_eq(ohm_censor_skip(&c, 3, 2, 0.0125, 1.0), 1, "0.1 * 0.5^3");
    cr_expect_eq(ohm_censor_skip(&c, 3, 2, 0.013, 1.0), 0);
    cr_expect_eq(ohm_censor_skip(&c, 2, 0, 0.0, 1.0), 1, "unchanged: age 2");
    cr_expect_eq(ohm_censor_skip(&c, 3, 0, 0.0, 1.0), 1, "age 3 = max_staleness");
    cr_expect_eq(ohm_censor_skip(&c, 4, 0, 0.0, 1.0), 0, "age 4: must send");
    cr_expect_eq(ohm_censor_skip(&c, 1, 2, 0.0, 1.0), 0, "a version after the round");
    ohm_censor_t off = {.tau0 = 0, .decay = 1, .max_staleness = 10};
    cr_expect_eq(ohm_censor_skip(&off, 5, 4, 1e-12, 1.0), 0, "tau0 = 0: only an exact repeat");
    cr_expect_eq(ohm_censor_skip(&off, 5, 4, 0.0, 1.0), 1);
    double dn, xn;
    float a[3] = {3, 4, 0}, b[3] = {3, 4, 1};
    ohm_compress_norms(a, b, 3, &dn, &xn);
    cr_expect_float_eq(dn, 1.0, 1e-12);
    cr_expect_float_eq(xn, 5.0, 1e-12);
}
