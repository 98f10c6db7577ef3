/* Integration: convolutional replicas on real ohmpeer processes. A ring of
 * CNN peers learns the synthetic task (one-row images) and `ohmpeer flatness`
 * measures their checkpoints; analog CNN peers (stochastic pulse trains)
 * checkpoint and resume; an MLP peer and a CNN peer refuse each other's
 * models by their fingerprints. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ohm_testproc.h"

/* A 1-D CNN for synthetic inputs of 1 x 1 x 16: 16 -> 14 x 4 -> 7 x 4 -> 5 x 6 -> 4. */
#define CNN_LAYERS "model.layers=conv:4x1x3/p0,pool:max1x2,conv:6x1x3,fc:4"
/* Its parameters: 4 x (3 + 1) + 6 x (12 + 1) + 4 x (5 x 6 + 1) = 16 + 78 + 124. */
#define CNN_PARAMS 218

static void run_peers(const char *topo, const char *dir, int n, const char *const *sets,
                      int resume)
{
    pid_t pids[8];
    for (int i = 0; i < n; i++)
        pids[i] = ohm_test_peer(topo, i, dir, sets, resume);
    for (int i = 0; i < n; i++) {
        int st = ohm_test_wait(pids[i], 180000);
        if (st != 0) ohm_test_show_log(dir, i);
        cr_assert_eq(st, 0, "peer %d exit status %d", i, st);
    }
}

/* Runs `ohmpeer flatness` with args into out (its stdout); returns the exit status. */
static int flatness(const char *dir, char *const extra[], char *out, size_t cap)
{
    char log[300];
    snprintf(log, sizeof log, "%s/flatness.out", dir);
    remove(log);
    char *argv[32] = {(char *)ohm_test_ohmpeer(), "flatness"};
    int k = 2;
    for (int i = 0; extra[i] && k < 31; i++)
        argv[k++] = extra[i];
    argv[k] = NULL;
    int st = ohm_test_wait(ohm_test_spawn(argv, log), 120000);
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = '\0';
    if (f) fclose(f);
    return st;
}

static double json_num(const char *s, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(s, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

Test(peer_cnn, cnn_ring_learns_and_flatness_measures_it, .timeout = 300)
{
    char dir[128], topo[256];
    ohm_test_tmpdir(dir, sizeof dir, "cnn");
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    ohm_test_topology(topo, "ring", 3, 0, NULL, 1);
    const char *sets[] = {"data.name=synthetic",
                          "data.dim=16",
                          "data.classes=4",
                          "data.train_size=3000",
                          "data.test_size=500",
                          "model.arch=custom",
                          CNN_LAYERS,
                          "optimizer.lr=0.1",
                          "optimizer.batch=16",
                          "train.rounds=200",
                          "train.eval_every=100",
                          "net.insecure=true",
                          "net.round_timeout_ms=5000",
                          NULL};
    run_peers(topo, dir, 3, sets, 0);
    for (int i = 0; i < 3; i++) {
        double acc = 0, round = 0;
        cr_assert_eq(ohm_test_final(dir, i, "test_acc", &acc), 0, "peer %d: no final line", i);
        ohm_test_final(dir, i, "round", &round);
        cr_expect_eq((int)round, 200);
        cr_expect_gt(acc, 0.8, "peer %d accuracy %.3f", i, acc);
        size_t np = 0;
        float *w = ohm_test_params(dir, i, &np);
        cr_expect_eq(np, (size_t)CNN_PARAMS, "peer %d exchanged %zu parameters", i, np);
        free(w);
    }
    /* The flatness of the three peers' models: measured on the CNN. */
    char c0[300], c1[300], c2[300], out[16384];
    snprintf(c0, sizeof c0, "%s/peer-0.ckpt", dir);
    snprintf(c1, sizeof c1, "%s/peer-1.ckpt", dir);
    snprintf(c2, sizeof c2, "%s/peer-2.ckpt", dir);
    char *args[] = {"--checkpoint", c0, "--checkpoint", c1, "--checkpoint", c2, "--samples", "400",
                    "--probes", "4", "--iters", "5", "--draws", "2", NULL};
    int st = flatness(dir, args, out, sizeof out);
    cr_assert_eq(st, 0, "ohmpeer flatness: %s", out);
    cr_expect_eq(json_num(out, "models"), 3, "%s", out);
    cr_expect_eq(json_num(out, "params"), CNN_PARAMS, "%s", out);
    cr_expect(isfinite(json_num(out, "hessian_trace")), "%s", out);
    cr_expect_gt(json_num(out, "top_eigenvalue"), 0, "%s", out);
    cr_expect_gt(json_num(out, "train_acc"), 0.8, "%s", out);
    /* Read as another architecture with as many parameters (average pooling), the
     * checkpoint is refused by its fingerprint. */
    char *other[] = {"--checkpoint", c0, "--set",
                     "model.layers=conv:4x1x3,pool:avg1x2,conv:6x1x3,fc:4", NULL};
    st = flatness(dir, other, out, sizeof out);
    cr_expect_eq(st, 1, "%s", out);
    cr_expect(strstr(out, "fingerprint") != NULL, "%s", out);
    ohm_test_rmdir(dir);
}

/* Analog CNN peers with stochastic updates checkpoint every tile's whole state:
 * stopped at round 40 and resumed to 80, they end where an uninterrupted run of
 * 80 rounds ends, bit for bit. */
Test(peer_cnn, analog_cnn_peers_resume_exactly, .timeout = 300)
{
    char dir[128], dir2[128], topo[256], topo2[256];
    ohm_test_tmpdir(dir, sizeof dir, "cnna");
    ohm_test_tmpdir(dir2, sizeof dir2, "cnnb");
    snprintf(topo, sizeof topo, "%s/pair.topo", dir);
    snprintf(topo2, sizeof topo2, "%s/pair.topo", dir2);
    ohm_test_topology(topo, "complete", 2, 0, NULL, 2);
    ohm_test_topology(topo2, "complete", 2, 0, NULL, 2);
    const char *base[] = {"data.name=synthetic",       "data.dim=16",
                          "data.classes=4",            "data.train_size=1000",
                          "data.test_size=200",        "model.arch=custom",
                          CNN_LAYERS,                  "optimizer.name=tiki-taka",
                          "optimizer.lr=0.1",          "optimizer.batch=16",
                          "device.response=softbounds", "device.update=stochastic",
                          "train.eval_every=20",       "train.checkpoint_every=20",
                          "net.insecure=true",         "net.round_timeout_ms=5000",
                          "train.rounds=80",           NULL};
    run_peers(topo2, dir2, 2, base, 0);
    const char *first[32];
    int n = 0;
    for (; base[n]; n++)
        first[n] = base[n];
    first[n - 1] = "train.rounds=40";
    first[n] = NULL;
    run_peers(topo, dir, 2, first, 0);
    run_peers(topo, dir, 2, base, 1);
    for (int i = 0; i < 2; i++) {
        double acc = 0, round = 0;
        cr_assert_eq(ohm_test_final(dir, i, "test_acc", &acc), 0);
        ohm_test_final(dir, i, "round", &round);
        cr_expect_eq((int)round, 80, "peer %d resumed to round %g", i, round);
        cr_expect(acc > 0.25 && acc <= 1, "peer %d accuracy %.3f (4 classes)", i, acc);
        size_t na = 0, nb = 0;
        float *wa = ohm_test_params(dir, i, &na), *wb = ohm_test_params(dir2, i, &nb);
        cr_assert(wa && wb && na == (size_t)CNN_PARAMS && nb == na);
        cr_expect_eq(memcmp(wa, wb, sizeof(float) * na), 0,
                     "peer %d: the resumed run differs from the uninterrupted one", i);
        free(wa);
        free(wb);
    }
    ohm_test_rmdir(dir);
    ohm_test_rmdir(dir2);
}

/* An MLP peer and a CNN peer (the same data) drop each other's models as
 * "shape": the fingerprint covers the architecture. */
Test(peer_cnn, mlp_and_cnn_peers_do_not_mix, .timeout = 180)
{
    char dir[128], topo[256];
    ohm_test_tmpdir(dir, sizeof dir, "mix");
    snprintf(topo, sizeof topo, "%s/pair.topo", dir);
    ohm_test_topology(topo, "complete", 2, 0, NULL, 3);
    const char *mlp[] = {"data.name=synthetic",     "data.dim=16",         "data.classes=4",
                         "data.train_size=500",     "data.test_size=100",  "model.hidden=8",
                         "train.rounds=6",          "train.eval_every=3",  "net.insecure=true",
                         "net.round_timeout_ms=400", "net.startup_timeout_ms=20000", NULL};
    const char *cnn[] = {"data.name=synthetic",     "data.dim=16",         "data.classes=4",
                         "data.train_size=500",     "data.test_size=100",  "model.arch=custom",
                         CNN_LAYERS,                "train.rounds=6",      "train.eval_every=3",
                         "net.insecure=true",       "net.round_timeout_ms=400",
                         "net.startup_timeout_ms=20000", NULL};
    pid_t a = ohm_test_peer(topo, 0, dir, mlp, 0), b = ohm_test_peer(topo, 1, dir, cnn, 0);
    int sa = ohm_test_wait(a, 120000), sb = ohm_test_wait(b, 120000);
    if (sa) ohm_test_show_log(dir, 0);
    if (sb) ohm_test_show_log(dir, 1);
    cr_assert(sa == 0 && sb == 0, "exit status %d, %d", sa, sb);
    for (int i = 0; i < 2; i++) {
        char path[300], line[16384], last[16384] = "";
        snprintf(path, sizeof path, "%s/peer-%d.jsonl", dir, i);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f);
        while (fgets(line, sizeof line, f))
            if (strstr(line, "\"final\":true")) memcpy(last, line, sizeof line);
        fclose(f);
        const char *d = strstr(last, "\"drops\":");
        cr_assert_not_null(d, "peer %d: %s", i, last);
        cr_expect_gt(json_num(d, "shape"), 0, "peer %d dropped no model as shape: %.300s", i, d);
        cr_expect_gt(json_num(last, "msgs_dropped"), 0);
    }
    ohm_test_rmdir(dir);
}
