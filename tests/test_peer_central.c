/* Integration: the centralized baseline on the decentralized code path.
 * With the complete graph, uniform weights, rule `mean`, exact write-back and a
 * common initialisation, every peer holds the same model after each round, and
 * the run equals single-process mini-batch SGD with the global batch N*B. We
 * check both numerically against an in-process SGD on the same batches. */
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

#define N 4
#define ROUNDS 30
#define B 8

static const char *const sets[] = {"data.name=synthetic",
                                   "data.dim=10",
                                   "data.classes=3",
                                   "model.hidden=6",
                                   "model.activation=tanh",
                                   "optimizer.lr=0.2",
                                   "optimizer.batch=8",
                                   "train.rounds=30",
                                   "train.eval_every=10",
                                   "aggregate.rule=mean",
                                   "aggregate.writeback=exact",
                                   "net.insecure=true",
                                   "net.round_timeout_ms=5000",
                                   NULL};

static void write_complete_uniform(const char *path)
{
    char host[16];
    int port;
    ohm_test_endpoints(host, &port, N);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "# complete graph, uniform weights 1/N: the centralized baseline\nweights uniform\n");
    for (int i = 0; i < N; i++)
        fprintf(f, "peer %d tcp://%s:%d\n", i, host, port + i);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            fprintf(f, "edge %d %d\n", i, j);
    fclose(f);
}

Test(peer_central, complete_uniform_mean_equals_large_batch_sgd, .timeout = 120)
{
    char dir[128], topo[256];
    ohm_test_tmpdir(dir, sizeof dir, "central");
    snprintf(topo, sizeof topo, "%s/complete.topo", dir);
    write_complete_uniform(topo);
    int bad = -1;
    cr_assert_eq(ohm_test_run(topo, N, dir, sets, 60000, &bad), 0, "peer %d failed", bad);

    /* The same run in one process: SGD on the mean of the N peers' batch gradients. */
    ohm_config_t *cfg = ohm_config_new();
    for (int i = 0; sets[i]; i++)
        cr_assert_eq(ohm_config_set(cfg, sets[i], "test"), OHM_OK, "%s", ohm_error_detail());
    ohm_data_t *data[N];
    ohm_sampler_t smp[N];
    ohm_batchbuf_t *buf[N];
    for (int i = 0; i < N; i++) {
        cr_assert_eq(ohm_data_open(cfg, N, i, &data[i]), OHM_OK, "%s", ohm_error_detail());
        ohm_sampler_init(&smp[i], (uint64_t)ohm_config_int(cfg, "train.seed"), (uint32_t)i);
        buf[i] = ohm_batchbuf_new(data[i], B);
    }
    ohm_model_spec_t s = {.n_in = 10,
                          .n_out = 3,
                          .n_hidden = 1,
                          .hidden = {6},
                          .act = OHM_ACT_TANH,
                          .loss = OHM_LOSS_XENT,
                          .bias = 1};
    ohm_model_t *m = NULL;
    cr_assert_eq(ohm_model_new(&s, NULL, NULL, &m), OHM_OK);
    ohm_rng_t r;
    ohm_rng_seed(&r, (uint64_t)ohm_config_int(cfg, "train.seed"), 0, OHM_STREAM_INIT);
    ohm_model_init(m, &r);
    size_t P = ohm_model_nparams(m);
    float *w = malloc(P * 4), *g = malloc(P * 4), *acc = malloc(P * 4);
    uint32_t idx[B];
    ohm_model_get_params(m, w);
    for (int round = 0; round < ROUNDS; round++) {
        memset(acc, 0, P * 4);
        for (int i = 0; i < N; i++) {
            ohm_sampler_next(&smp[i], data[i], idx, B);
            const ohm_batch_t *b = ohm_data_train_batch(data[i], buf[i], idx, B);
            ohm_model_loss_grad(m, b, NULL, g);
            for (size_t k = 0; k < P; k++)
                acc[k] += g[k] / N;
        }
        for (size_t k = 0; k < P; k++)
            w[k] -= 0.2f * acc[k];
        ohm_model_set_params(m, w, OHM_WB_EXACT);
    }

    size_t n0 = 0;
    float *w0 = ohm_test_params(dir, 0, &n0);
    cr_assert_not_null(w0);
    cr_assert_eq(n0, P);
    double scale = 0, dev_ref = 0, dev_peers = 0;
    for (size_t k = 0; k < P; k++) {
        scale = fmax(scale, fabs(w[k]));
        dev_ref = fmax(dev_ref, fabs(w0[k] - w[k]));
    }
    for (int i = 1; i < N; i++) {
        size_t ni = 0;
        float *wi = ohm_test_params(dir, i, &ni);
        cr_assert_not_null(wi);
        cr_assert_eq(ni, P);
        for (size_t k = 0; k < P; k++)
            dev_peers = fmax(dev_peers, fabs(wi[k] - w0[k]));
        free(wi);
    }
    /* Only float summation order differs (each peer sums its rows own-first). */
    cr_expect_lt(dev_peers, 1e-5 * fmax(1.0, scale), "peers differ by %g", dev_peers);
    cr_expect_lt(dev_ref, 1e-4 * fmax(1.0, scale),
                 "peers differ from large-batch SGD by %g (scale %g)", dev_ref, scale);
    /* And the model moved: the comparison is not between two initialisations. */
    ohm_rng_seed(&r, (uint64_t)ohm_config_int(cfg, "train.seed"), 0, OHM_STREAM_INIT);
    ohm_model_init(m, &r);
    ohm_model_get_params(m, g);
    double moved = 0;
    for (size_t k = 0; k < P; k++)
        moved = fmax(moved, fabs(g[k] - w[k]));
    cr_expect_gt(moved, 1e-2);

    free(w0);
    free(w);
    free(g);
    free(acc);
    ohm_model_destroy(&m);
    for (int i = 0; i < N; i++) {
        ohm_batchbuf_destroy(&buf[i]);
        ohm_data_destroy(&data[i]);
    }
    ohm_config_destroy(&cfg);
    ohm_test_rmdir(dir);
}
