/* ohmbench round: the median round time of an N-peer ring of real ohmpeer
 * processes (CURVE on, loopback), split into compute, communication wait and
 * combine, next to the machine's compute floor measured in the same run (the
 * time of N peers' local steps done back to back, divided by the cores). */
#include "ohmbench.h"
#include "ohm_testproc.h"

#include "ohm_config.h"
#include "ohm_data.h"
#include "ohm_dense.h"
#include "ohm_error.h"
#include "ohm_keys.h"
#include "ohm_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Writes a ring topology with freshly generated CURVE keys into dir. */
static int write_ring(const char *dir, int n, int secure)
{
    char host[16], path[512];
    int port;
    ohm_test_endpoints(host, &port, n);
    snprintf(path, sizeof path, "%s/keys", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/ring.topo", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "# %d-peer ring for ohmbench round\n", n);
    for (int i = 0; i < n; i++) {
        fprintf(f, "peer %d tcp://%s:%d", i, host, port + i);
        if (secure) {
            uint8_t pub[OHM_KEY_BYTES], sec[OHM_KEY_BYTES];
            char prefix[512], z[41];
            snprintf(prefix, sizeof prefix, "%s/keys/peer-%d", dir, i);
            if (ohm_keys_generate(pub, sec) || ohm_keys_write(prefix, pub, sec)) {
                fclose(f);
                return -1;
            }
            ohm_keys_encode(pub, z);
            fprintf(f, " key=%s", z);
        }
        fprintf(f, "\n");
    }
    for (int i = 0; i < n; i++)
        fprintf(f, "edge %d %d\n", i, (i + 1) % n);
    fclose(f);
    return 0;
}

/* Seconds per local step of one peer, measured in this process. */
static double step_seconds(const char *data_name, int hidden, int batch)
{
    ohm_config_t *cfg = ohm_config_new();
    char s1[64], s2[64], s3[64];
    snprintf(s1, sizeof s1, "data.name=%s", data_name);
    snprintf(s2, sizeof s2, "model.hidden=%d", hidden);
    snprintf(s3, sizeof s3, "optimizer.batch=%d", batch);
    ohm_config_set(cfg, s1, "bench");
    ohm_config_set(cfg, s2, "bench");
    ohm_config_set(cfg, s3, "bench");
    if (!strcmp(data_name, "synthetic")) ohm_config_set(cfg, "data.dim=784", "bench");
    ohm_data_t *d = NULL;
    if (ohm_data_open(cfg, 16, 0, &d)) {
        fprintf(stderr, "ohmbench round: %s\n", ohm_error_detail());
        ohm_config_destroy(&cfg);
        return -1;
    }
    ohm_model_spec_t s = {.n_in = ohm_data_dim(d),
                          .n_out = ohm_data_outputs(d),
                          .n_hidden = 1,
                          .hidden = {hidden},
                          .act = OHM_ACT_RELU,
                          .loss = OHM_LOSS_XENT,
                          .bias = 1};
    ohm_model_t *m = NULL;
    ohm_model_new(&s, NULL, NULL, &m);
    ohm_rng_t r;
    ohm_rng_seed(&r, 1, 0, OHM_STREAM_INIT);
    ohm_model_init(m, &r);
    ohm_batchbuf_t *bb = ohm_batchbuf_new(d, batch);
    ohm_sampler_t smp;
    ohm_sampler_init(&smp, 1, 0);
    uint32_t *idx = calloc((size_t)batch, sizeof *idx);
    float *w = malloc(sizeof(float) * ohm_model_nparams(m));
    int reps = 300;
    double t0 = ohm_bench_now();
    for (int i = 0; i < reps; i++) {
        ohm_sampler_next(&smp, d, idx, batch);
        ohm_model_train_step(m, ohm_data_train_batch(d, bb, idx, batch), 0.05f, NULL);
        ohm_model_get_params(m, w); /* the read-out a round does too */
    }
    double per = (ohm_bench_now() - t0) / reps;
    free(idx);
    free(w);
    ohm_batchbuf_destroy(&bb);
    ohm_model_destroy(&m);
    ohm_data_destroy(&d);
    ohm_config_destroy(&cfg);
    return per;
}

int ohm_bench_round(int argc, char **argv)
{
    int n = (int)ohm_bench_opt_int(argc, argv, "--n", 16);
    int rounds = (int)ohm_bench_opt_int(argc, argv, "--rounds", 400);
    int hidden = (int)ohm_bench_opt_int(argc, argv, "--hidden", 128);
    int batch = (int)ohm_bench_opt_int(argc, argv, "--batch", 32);
    int secure = !ohm_bench_opt_int(argc, argv, "--insecure", 0);
    const char *data = ohm_bench_opt_str(
        argc, argv, "--data",
        access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) == 0
            ? "fashion-mnist"
            : "synthetic");
    if (n < 2 || n > 64 || rounds < 10) {
        fprintf(stderr, "ohmbench round: --n in 2..64, --rounds >= 10\n");
        return 2;
    }
    ohm_dense_single_thread();
    double step = step_seconds(data, hidden, batch);
    if (step < 0) return 1;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    double floor_ms = 1000.0 * step * n / (double)(cores > 0 ? cores : 1);

    char dir[128], topo[256];
    ohm_test_tmpdir(dir, sizeof dir, "bench-round");
    if (write_ring(dir, n, secure)) {
        fprintf(stderr, "ohmbench round: cannot write the topology in %s\n", dir);
        return 1;
    }
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    char s_rounds[64], s_hidden[64], s_batch[64], s_data[64], s_eval[64];
    snprintf(s_rounds, sizeof s_rounds, "train.rounds=%d", rounds);
    snprintf(s_hidden, sizeof s_hidden, "model.hidden=%d", hidden);
    snprintf(s_batch, sizeof s_batch, "optimizer.batch=%d", batch);
    snprintf(s_data, sizeof s_data, "data.name=%s", data);
    snprintf(s_eval, sizeof s_eval, "train.eval_every=%d", rounds);
    const char *sets[] = {s_rounds,
                          s_hidden,
                          s_batch,
                          s_data,
                          s_eval,
                          !strcmp(data, "synthetic") ? "data.dim=784" : "data.partition=iid",
                          secure ? "net.insecure=false" : "net.insecure=true",
                          "train.checkpoint_every=0",
                          NULL};
    pid_t pids[64];
    double t0 = ohm_bench_now();
    for (int i = 0; i < n; i++)
        pids[i] = ohm_test_peer(topo, i, dir, sets, 0);
    int failed = 0;
    for (int i = 0; i < n; i++)
        if (ohm_test_wait(pids[i], 600000) != 0) {
            ohm_test_show_log(dir, i);
            failed = 1;
        }
    double wall = ohm_bench_now() - t0;
    if (failed) {
        fprintf(stderr, "ohmbench round: a peer failed; logs in %s\n", dir);
        return 1;
    }
    double rm[64], cm[64], wm[64], bm[64], rss[64];
    for (int i = 0; i < n; i++) {
        ohm_test_final(dir, i, "round_ms_median", &rm[i]);
        ohm_test_final(dir, i, "compute_ms_median", &cm[i]);
        ohm_test_final(dir, i, "wait_ms_median", &wm[i]);
        ohm_test_final(dir, i, "combine_ms_median", &bm[i]);
        ohm_test_final(dir, i, "rss_max_kb", &rss[i]);
    }
    double round_ms = median(rm, n);
    ohm_bench_emit("round_ms_median", round_ms, "ms", "compute_floor_ms", floor_ms);
    ohm_bench_emit("compute_ms_median", median(cm, n), "ms", NULL, 0);
    ohm_bench_emit("wait_ms_median", median(wm, n), "ms", NULL, 0);
    ohm_bench_emit("combine_ms_median", median(bm, n), "ms", NULL, 0);
    ohm_bench_emit("local_step_ms", 1000.0 * step, "ms", NULL, 0);
    ohm_bench_emit("wall_ms_per_round", 1000.0 * wall / rounds, "ms", "compute_floor_ms", floor_ms);
    qsort(rss, (size_t)n, sizeof *rss, cmp_double);
    ohm_bench_emit("peer_rss_max_mb", rss[n - 1] / 1024.0, "MB", NULL, 0);
    ohm_test_rmdir(dir);
    return 0;
}
