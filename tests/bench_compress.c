/* ohmbench compress: what the q8 entropy stage (comm.entropy = deflate)
 * costs and saves per message.
 *
 *   ohmbench compress [--d 101770] [--iters 200] [--tail 0.3]
 *
 * For one q8 message of d parameters (the demo's MLP by default): the
 * sender's error-feedback step (encode, apply to its public copy) and a
 * receiver's check on arrival and apply, with the entropy stage (q8z) and
 * without it (q8, the baseline), in the same process, alternating. The
 * differences are gaussian times exp(tail x gaussian), heavier-tailed for a
 * larger --tail; the entropy of their q8 codes is printed (the demo ring's
 * differences have 7.1-7.3 bits per code, docs/results/comm.md). Also q4
 * (half of q8's codes) against the same baseline. Times are CPU time of the
 * calling thread, the best of 3 passes. */
#include "ohm_compress.h"
#include "ohm_error.h"
#include "ohm_payload.h"
#include "ohm_rng.h"
#include "ohmbench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { VECS = 8 };

typedef struct {
    double enc_us, dec_us, bytes;
} cost_t;

/* Sends each of the VECS differences in turn, iters times in all. */
static int one_pass(ohm_compress_t *z, float *const *d, uint32_t n, int iters, float *pub,
                    float *recv, float *scratch, cost_t *c)
{
    double enc = 0, dec = 0, bytes = 0;
    for (int it = 0; it < iters; it++) {
        memset(pub, 0, sizeof(float) * n);
        memset(recv, 0, sizeof(float) * n);
        ohm_compress_out_t out;
        double t0 = ohm_bench_cpu_now();
        if (ohm_compress_step_packed(z, d[it % VECS], pub, scratch, (uint32_t)it, &out)) return 1;
        double t1 = ohm_bench_cpu_now();
        if (ohm_payload_check_structure(out.kind, n, out.entries, out.bytes) ||
            ohm_payload_check_values(out.kind, n, out.entries, out.bytes) ||
            ohm_payload_apply(out.kind, n, out.entries, out.bytes, recv))
            return 1;
        double t2 = ohm_bench_cpu_now();
        if (memcmp(pub, recv, sizeof(float) * n) != 0) return 1;
        enc += t1 - t0, dec += t2 - t1, bytes += (double)out.len;
    }
    *c = (cost_t){1e6 * enc / iters, 1e6 * dec / iters, bytes / iters};
    return 0;
}

/* Order-0 entropy of the q8 codes of d[n], bits per code. */
static double code_entropy(const float *d, uint32_t n)
{
    ohm_compress_t *z = NULL;
    if (ohm_compress_new(OHM_COMPRESS_Q8, 0.1, n, 1, 0, &z)) return -1;
    uint8_t *pl = malloc(ohm_compress_payload_size(z));
    uint32_t m = 0;
    ohm_compress_encode(z, d, 0, pl, &m);
    double count[256] = {0}, h = 0;
    const uint8_t *codes = pl + 4 * (((size_t)n + OHM_Q8_BLOCK - 1) / OHM_Q8_BLOCK);
    for (uint32_t i = 0; i < n; i++)
        count[codes[i]]++;
    for (int k = 0; k < 256; k++)
        if (count[k] > 0) h -= count[k] / n * log2(count[k] / n);
    free(pl);
    ohm_compress_destroy(&z);
    return h;
}

int ohm_bench_compress(int argc, char **argv)
{
    uint32_t n = (uint32_t)ohm_bench_opt_int(argc, argv, "--d", 101770);
    int iters = (int)ohm_bench_opt_int(argc, argv, "--iters", 200);
    double tail = ohm_bench_opt_double(argc, argv, "--tail", 0.3);
    if (n < 2 || iters < 1) {
        fprintf(stderr, "ohmbench compress: --d at least 2, --iters at least 1\n");
        return 2;
    }
    float *d[VECS], *pub = malloc(sizeof(float) * n), *recv = malloc(sizeof(float) * n),
                    *scratch = malloc(sizeof(float) * n);
    ohm_rng_t r;
    ohm_rng_seed(&r, 11, 0, 1);
    for (int v = 0; v < VECS; v++) {
        d[v] = malloc(sizeof(float) * n);
        for (uint32_t i = 0; i < n; i++)
            d[v][i] = 1e-3f * (float)(ohm_rng_normal(&r) * exp(tail * ohm_rng_normal(&r)));
    }
    ohm_compress_t *zq = NULL, *zz = NULL, *z4 = NULL;
    if (ohm_compress_new(OHM_COMPRESS_Q8, 0.1, n, 1, 0, &zq) ||
        ohm_compress_new(OHM_COMPRESS_Q4, 0.1, n, 1, 0, &z4) ||
        ohm_compress_new(OHM_COMPRESS_Q8, 0.1, n, 1, 0, &zz) ||
        ohm_compress_set_entropy(zz, OHM_ENTROPY_DEFLATE)) {
        fprintf(stderr, "ohmbench compress: %s\n", ohm_error_detail());
        return 1;
    }
    cost_t best_q = {1e30, 1e30, 0}, best_z = {1e30, 1e30, 0}, best_4 = {1e30, 1e30, 0};
    for (int rep = 0; rep < 3; rep++) {
        cost_t q, z, f;
        if (one_pass(zq, d, n, iters, pub, recv, scratch, &q) ||
            one_pass(zz, d, n, iters, pub, recv, scratch, &z) ||
            one_pass(z4, d, n, iters, pub, recv, scratch, &f)) {
            fprintf(stderr, "ohmbench compress: a message failed or copies differ\n");
            return 1;
        }
        if (q.enc_us + q.dec_us < best_q.enc_us + best_q.dec_us) best_q = q;
        if (z.enc_us + z.dec_us < best_z.enc_us + best_z.dec_us) best_z = z;
        if (f.enc_us + f.dec_us < best_4.enc_us + best_4.dec_us) best_4 = f;
    }
    printf("# q8 codes: %.3f bits per code (order-0 entropy), d = %u\n", code_entropy(d[0], n), n);
    ohm_bench_emit("q8z_bytes_per_message", best_z.bytes, "B", "q8", best_q.bytes);
    ohm_bench_emit("q8z_encode_us", best_z.enc_us, "us", "q8", best_q.enc_us);
    ohm_bench_emit("q8z_check_apply_us", best_z.dec_us, "us", "q8", best_q.dec_us);
    ohm_bench_emit("q8z_encode_decode_us", best_z.enc_us + best_z.dec_us, "us", "q8",
                   best_q.enc_us + best_q.dec_us);
    /* q4: half of q8's codes, the same blocks and scales, no entropy stage */
    ohm_bench_emit("q4_bytes_per_message", best_4.bytes, "B", "q8", best_q.bytes);
    ohm_bench_emit("q4_encode_us", best_4.enc_us, "us", "q8", best_q.enc_us);
    ohm_bench_emit("q4_check_apply_us", best_4.dec_us, "us", "q8", best_q.dec_us);
    for (int v = 0; v < VECS; v++)
        free(d[v]);
    free(pub), free(recv), free(scratch);
    ohm_compress_destroy(&zq);
    ohm_compress_destroy(&zz);
    ohm_compress_destroy(&z4);
    return 0;
}
