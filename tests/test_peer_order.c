/* Integration: the three orders of `[aggregate] order` on one code path.
 * Three real peers on a triangle with explicit, unequal (and asymmetric)
 * combination weights run a few rounds of each order; the test recomputes the
 * same rounds in this process from the formulas
 *   atc:       psi_i = w_i - mu g_i(w_i);  w_i <- sum_j a_ij psi_j
 *   cta:       phi_i = sum_j a_ij w_j;     w_i <- phi_i - mu g_i(phi_i)
 *   consensus: w_i <- sum_j a_ij w_j - mu g_i(w_i)
 * with the peers' own batches, and compares with their checkpointed params.
 * It also checks the three orders end in different places, so a peer that
 * ignored the order could not pass. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ohm_ckpt.h"
#include "ohm_config.h"
#include "ohm_data.h"
#include "ohm_error.h"
#include "ohm_model.h"
#include "ohm_testproc.h"

#define N 3
#define ROUNDS 6
#define B 8
#define LR 0.3f

enum { ATC, CTA, CONSENSUS, NORDERS };
static const char *const order_name[NORDERS] = {"atc", "cta", "consensus"};

/* a_ij, what peer i gives to j's model: unequal and not symmetric, so a test
 * that swapped i and j, or used uniform weights, would fail. Self weights are
 * the remainder of each row (the file leaves them implicit). */
static const double A[N][N] = {
    {0.30, 0.50, 0.20},
    {0.10, 0.30, 0.60},
    {0.30, 0.25, 0.45},
};

static const char *const base_sets[] = {"data.name=synthetic",
                                        "data.dim=10",
                                        "data.classes=3",
                                        "model.hidden=6",
                                        "model.activation=tanh",
                                        "optimizer.lr=0.3",
                                        "optimizer.batch=8",
                                        "train.rounds=6",
                                        "train.eval_every=3",
                                        "aggregate.rule=weighted",
                                        "aggregate.writeback=exact",
                                        "net.insecure=true",
                                        "net.round_timeout_ms=5000",
                                        NULL};

static void write_triangle(const char *path)
{
    char host[16];
    int port;
    ohm_test_endpoints(host, &port, N);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "# triangle with explicit directed weights a_ij\n");
    for (int i = 0; i < N; i++)
        fprintf(f, "peer %d tcp://%s:%d\n", i, host, port + i);
    fprintf(f, "edge 0 1\nedge 1 2\nedge 2 0\n");
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            if (i != j) fprintf(f, "weight %d %d %.2f\n", i, j, A[i][j]);
    fclose(f);
}

/* Runs the three peers with the given order; their final params go to got[i]. */
static void run_peers(int order, float *got[N], size_t P)
{
    char dir[128], topo[256], order_set[64];
    ohm_test_tmpdir(dir, sizeof dir, "order");
    snprintf(topo, sizeof topo, "%s/triangle.topo", dir);
    write_triangle(topo);
    snprintf(order_set, sizeof order_set, "aggregate.order=%s", order_name[order]);
    const char *sets[32], *own[] = {order_set, NULL};
    ohm_test_sets(sets, 32, base_sets, own);
    int bad = -1;
    cr_assert_eq(ohm_test_run(topo, N, dir, sets, 60000, &bad), 0, "%s: peer %d failed",
                 order_name[order], bad);
    for (int i = 0; i < N; i++) {
        size_t n = 0;
        got[i] = ohm_test_params(dir, i, &n);
        cr_assert_not_null(got[i], "%s: peer %d left no checkpoint", order_name[order], i);
        cr_assert_eq(n, P, "%s: peer %d has %zu params, expected %zu", order_name[order], i, n, P);
    }
    ohm_test_rmdir(dir);
}

/* The in-process reference: the same batches, the same initialisation. */
typedef struct {
    ohm_config_t *cfg;
    ohm_data_t *data[N];
    ohm_sampler_t smp[N];
    ohm_batchbuf_t *buf[N];
    ohm_model_t *m;
    size_t P;
} ref_t;

static void ref_open(ref_t *r)
{
    r->cfg = ohm_config_new();
    for (int i = 0; base_sets[i]; i++)
        cr_assert_eq(ohm_config_set(r->cfg, base_sets[i], "test"), OHM_OK, "%s",
                     ohm_error_detail());
    ohm_model_spec_t s = {.n_in = 10,
                          .n_out = 3,
                          .n_hidden = 1,
                          .hidden = {6},
                          .act = OHM_ACT_TANH,
                          .loss = OHM_LOSS_XENT,
                          .bias = 1};
    r->m = NULL;
    cr_assert_eq(ohm_model_new(&s, NULL, NULL, &r->m), OHM_OK);
    r->P = ohm_model_nparams(r->m);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(ohm_data_open(r->cfg, N, i, &r->data[i]), OHM_OK, "%s", ohm_error_detail());
        r->buf[i] = ohm_batchbuf_new(r->data[i], B);
    }
}

static void ref_close(ref_t *r)
{
    ohm_model_destroy(&r->m);
    for (int i = 0; i < N; i++) {
        ohm_batchbuf_destroy(&r->buf[i]);
        ohm_data_destroy(&r->data[i]);
    }
    ohm_config_destroy(&r->cfg);
}

/* g = gradient of peer i's next mini-batch at the point x. */
static void ref_grad(ref_t *r, int i, const float *x, float *g)
{
    uint32_t idx[B];
    ohm_model_set_params(r->m, x, OHM_WB_EXACT);
    ohm_sampler_next(&r->smp[i], r->data[i], idx, B);
    const ohm_batch_t *b = ohm_data_train_batch(r->data[i], r->buf[i], idx, B);
    cr_assert_eq(ohm_model_loss_grad(r->m, b, NULL, g), OHM_OK, "%s", ohm_error_detail());
}

/* dst_i = sum_j a_ij src_j, in double. */
static void ref_mix(size_t P, float *const src[N], float *dst[N])
{
    for (int i = 0; i < N; i++)
        for (size_t k = 0; k < P; k++) {
            double s = 0;
            for (int j = 0; j < N; j++)
                s += A[i][j] * src[j][k];
            dst[i][k] = (float)s;
        }
}

/* Recomputes ROUNDS rounds of `order` from the common initialisation into w[i]. */
static void ref_run(ref_t *r, int order, float *w[N])
{
    size_t P = r->P;
    uint64_t seed = (uint64_t)ohm_config_int(r->cfg, "train.seed");
    ohm_rng_t rng;
    ohm_rng_seed(&rng, seed, 0, OHM_STREAM_INIT);
    ohm_model_init(r->m, &rng);
    float *tmp[N], *g = malloc(P * sizeof(float));
    cr_assert_not_null(g);
    for (int i = 0; i < N; i++) {
        ohm_sampler_init(&r->smp[i], seed, (uint32_t)i);
        ohm_model_get_params(r->m, w[i]);
        tmp[i] = malloc(P * sizeof(float));
        cr_assert_not_null(tmp[i]);
    }
    for (int round = 0; round < ROUNDS; round++) {
        switch (order) {
        case ATC: /* tmp = psi; w = A psi */
            for (int i = 0; i < N; i++) {
                ref_grad(r, i, w[i], g);
                for (size_t k = 0; k < P; k++)
                    tmp[i][k] = w[i][k] - LR * g[k];
            }
            ref_mix(P, tmp, w);
            break;
        case CTA: /* tmp = phi = A w; w = phi - mu g(phi) */
            ref_mix(P, w, tmp);
            for (int i = 0; i < N; i++) {
                ref_grad(r, i, tmp[i], g);
                for (size_t k = 0; k < P; k++)
                    w[i][k] = tmp[i][k] - LR * g[k];
            }
            break;
        case CONSENSUS: /* tmp = A w; w = A w - mu g(w) (gradients at the old w) */
            ref_mix(P, w, tmp);
            for (int i = 0; i < N; i++) {
                ref_grad(r, i, w[i], g);
                for (size_t k = 0; k < P; k++)
                    w[i][k] = tmp[i][k] - LR * g[k];
            }
            break;
        }
    }
    for (int i = 0; i < N; i++)
        free(tmp[i]);
    free(g);
}

static double max_abs_diff(const float *a, const float *b, size_t P)
{
    double d = 0;
    for (size_t k = 0; k < P; k++)
        d = fmax(d, fabs((double)a[k] - b[k]));
    return d;
}

Test(peer_order, atc_cta_consensus_match_hand_computed_rounds, .timeout = 240)
{
    ref_t r;
    ref_open(&r);
    size_t P = r.P;
    float *got[NORDERS][N], *want[NORDERS][N];
    for (int o = 0; o < NORDERS; o++) {
        run_peers(o, got[o], P);
        for (int i = 0; i < N; i++) {
            want[o][i] = malloc(P * sizeof(float));
            cr_assert_not_null(want[o][i]);
        }
        ref_run(&r, o, want[o]);
        for (int i = 0; i < N; i++) {
            double scale = 0;
            for (size_t k = 0; k < P; k++)
                scale = fmax(scale, fabs(want[o][i][k]));
            double dev = max_abs_diff(got[o][i], want[o][i], P);
            /* Only float rounding differs (summation order of the combination). */
            cr_expect_lt(dev, 1e-5 * fmax(1.0, scale), "%s: peer %d differs from the formula by %g",
                         order_name[o], i, dev);
        }
    }

    /* The orders must lead to different models, by far more than the tolerance
     * above; otherwise the comparison could not tell them apart. */
    for (int o = 0; o < NORDERS; o++)
        for (int q = o + 1; q < NORDERS; q++)
            for (int i = 0; i < N; i++) {
                double d = max_abs_diff(got[o][i], got[q][i], P);
                cr_expect_gt(d, 1e-3, "%s and %s give the same model on peer %d (diff %g)",
                             order_name[o], order_name[q], i, d);
            }
    /* And the peers disagree within each order: the weights really mixed
     * different models (a complete-consensus run would hide an a_ij mix-up). */
    for (int o = 0; o < NORDERS; o++)
        cr_expect_gt(max_abs_diff(got[o][0], got[o][1], P), 1e-4, "%s: peers 0 and 1 agree",
                     order_name[o]);

    for (int o = 0; o < NORDERS; o++)
        for (int i = 0; i < N; i++) {
            free(got[o][i]);
            free(want[o][i]);
        }
    ref_close(&r);
}
