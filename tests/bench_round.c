/* ohmbench round: the median round time of N real ohmpeer processes on a
 * ring or the exponential graph (CURVE on, loopback), split into compute,
 * crypto and wire (encoding and compressing in the round loop, plus the CPU
 * time of ZeroMQ's threads: encryption, TCP), communication wait and combine,
 * next to the machine's compute floor measured in the same run (the time of N
 * peers' local steps done back to back, divided by the cores). --set k=v
 * (repeated) goes to every peer, e.g. --set comm.compress=topk. */
#include "ohmbench.h"
#include "ohm_testproc.h"

#include "ohm_config.h"
#include "ohm_data.h"
#include "ohm_dense.h"
#include "ohm_error.h"
#include "ohm_keys.h"
#include "ohm_model.h"
#include "ohm_topology.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 256 peers of the exponential graph on one box, and some room. */
#define MAX_PEERS 512

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

/* Writes dir/net.topo: a generated graph (ring, exp, ...) of n peers on fresh
 * loopback endpoints, with freshly generated CURVE keys when secure. */
static int write_graph(const char *dir, const char *kind, int n, int secure)
{
    char host[16], path[512];
    int port;
    ohm_test_endpoints(host, &port, n);
    ohm_topogen_t g = {.kind = kind, .n = n, .seed = 1, .host = host, .port = port};
    ohm_topology_t *t = NULL;
    if (ohm_topology_generate(&g, &t)) {
        fprintf(stderr, "ohmbench round: %s\n", ohm_error_detail());
        return -1;
    }
    snprintf(path, sizeof path, "%s/keys", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/net.topo", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        ohm_topology_destroy(&t);
        return -1;
    }
    fprintf(f, "# %d-peer %s for ohmbench round\n", n, kind);
    for (int i = 0; i < n; i++) {
        fprintf(f, "peer %d %s", i, ohm_topology_peer(t, (uint32_t)i)->endpoint);
        if (secure) {
            uint8_t pub[OHM_KEY_BYTES], sec[OHM_KEY_BYTES];
            char prefix[512], z[41];
            snprintf(prefix, sizeof prefix, "%s/keys/peer-%d", dir, i);
            if (ohm_keys_generate(pub, sec) || ohm_keys_write(prefix, pub, sec)) {
                fclose(f);
                ohm_topology_destroy(&t);
                return -1;
            }
            ohm_keys_encode(pub, z);
            fprintf(f, " key=%s", z);
        }
        fprintf(f, "\n");
    }
    for (int i = 0; i < n; i++) {
        const uint32_t *nb;
        int d = ohm_topology_neighbors(t, (uint32_t)i, &nb);
        for (int k = 0; k < d; k++)
            if ((int)nb[k] > i) fprintf(f, "edge %d %u\n", i, nb[k]);
    }
    ohm_topology_destroy(&t);
    return fclose(f) == 0 ? 0 : -1;
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
    const char *graph = ohm_bench_opt_str(argc, argv, "--graph", "ring");
    const char *data = ohm_bench_opt_str(
        argc, argv, "--data",
        access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) == 0
            ? "fashion-mnist"
            : "synthetic");
    if (n < 2 || n > MAX_PEERS || rounds < 10) {
        fprintf(stderr, "ohmbench round: --n in 2..%d, --rounds >= 10\n", MAX_PEERS);
        return 2;
    }
    ohm_dense_single_thread();
    double step = step_seconds(data, hidden, batch);
    if (step < 0) return 1;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    double floor_ms = 1000.0 * step * n / (double)(cores > 0 ? cores : 1);

    char dir[128], topo[256];
    ohm_test_tmpdir(dir, sizeof dir, "bench-round");
    if (write_graph(dir, graph, n, secure)) {
        fprintf(stderr, "ohmbench round: cannot write the topology in %s\n", dir);
        return 1;
    }
    snprintf(topo, sizeof topo, "%s/net.topo", dir);
    char s_rounds[64], s_hidden[64], s_batch[64], s_data[64], s_eval[64];
    snprintf(s_rounds, sizeof s_rounds, "train.rounds=%d", rounds);
    snprintf(s_hidden, sizeof s_hidden, "model.hidden=%d", hidden);
    snprintf(s_batch, sizeof s_batch, "optimizer.batch=%d", batch);
    snprintf(s_data, sizeof s_data, "data.name=%s", data);
    snprintf(s_eval, sizeof s_eval, "train.eval_every=%d", rounds);
    const char *sets[64] = {s_rounds, s_hidden, s_batch, s_data, s_eval,
                            !strcmp(data, "synthetic") ? "data.dim=784" : "data.partition=iid",
                            secure ? "net.insecure=false" : "net.insecure=true",
                            "train.checkpoint_every=0",
                            /* many processes on few cores: a round may take seconds */
                            "net.round_timeout_ms=30000", "net.startup_timeout_ms=120000"};
    int ns = 0;
    while (sets[ns])
        ns++;
    for (int i = 1; i + 1 < argc && ns < 63; i++)
        if (!strcmp(argv[i], "--set")) sets[ns++] = argv[++i];
    sets[ns] = NULL;
    static pid_t pids[MAX_PEERS];
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
    static double rm[MAX_PEERS], cm[MAX_PEERS], sm[MAX_PEERS], io[MAX_PEERS], wm[MAX_PEERS],
        bm[MAX_PEERS], rss[MAX_PEERS], sent[MAX_PEERS];
    double cpu_all = 0, bytes = 0;
    for (int i = 0; i < n; i++) {
        double main_s = 0, io_s = 0;
        ohm_test_final(dir, i, "round_ms_median", &rm[i]);
        ohm_test_final(dir, i, "compute_ms_median", &cm[i]);
        ohm_test_final(dir, i, "send_ms_median", &sm[i]);
        ohm_test_final(dir, i, "wait_ms_median", &wm[i]);
        ohm_test_final(dir, i, "combine_ms_median", &bm[i]);
        ohm_test_final(dir, i, "rss_max_kb", &rss[i]);
        ohm_test_final(dir, i, "bytes_sent", &sent[i]);
        ohm_test_final(dir, i, "cpu_main_s", &main_s);
        ohm_test_final(dir, i, "cpu_io_s", &io_s);
        /* ZeroMQ's threads over the whole run, per round: encryption and TCP */
        io[i] = 1000.0 * io_s / rounds;
        cpu_all += main_s + io_s;
        bytes += sent[i];
    }
    double round_ms = median(rm, n);
    ohm_bench_emit("round_ms_median", round_ms, "ms", "compute_floor_ms", floor_ms);
    ohm_bench_emit("compute_ms_median", median(cm, n), "ms", NULL, 0);
    /* crypto+wire: the round loop's encoding and compression, plus the CPU
     * time of ZeroMQ's threads per round (both per peer, medians) */
    ohm_bench_emit("send_ms_median", median(sm, n), "ms", NULL, 0);
    ohm_bench_emit("io_thread_cpu_ms_per_round", median(io, n), "ms", NULL, 0);
    for (int i = 0; i < n; i++)
        io[i] += sm[i];
    ohm_bench_emit("crypto_wire_ms_median", median(io, n), "ms", NULL, 0);
    ohm_bench_emit("wait_ms_median", median(wm, n), "ms", NULL, 0);
    ohm_bench_emit("combine_ms_median", median(bm, n), "ms", NULL, 0);
    /* all peers' CPU per round over the cores: what the machine must do per round */
    ohm_bench_emit("cpu_ms_per_round_over_cores", 1000.0 * cpu_all / rounds / (double)cores, "ms",
                   "compute_floor_ms", floor_ms);
    ohm_bench_emit("mb_sent_per_round", bytes / rounds / 1e6, "MB", NULL, 0);
    ohm_bench_emit("local_step_ms", 1000.0 * step, "ms", NULL, 0);
    ohm_bench_emit("wall_ms_per_round", 1000.0 * wall / rounds, "ms", "compute_floor_ms", floor_ms);
    qsort(rss, (size_t)n, sizeof *rss, cmp_double);
    ohm_bench_emit("peer_rss_max_mb", rss[n - 1] / 1024.0, "MB", NULL, 0);
    ohm_test_rmdir(dir);
    return 0;
}
