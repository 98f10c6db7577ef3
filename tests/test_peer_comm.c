/* Integration: public copies on a ring of real peers (docs/protocol.md,
 * section "Compressed gossip and censoring"). With q8, topk or censoring the
 * ring learns as well as with whole models for far fewer bytes, every copy
 * stays in sync (no message lost, so no peer ever asks for a copy whole), and
 * a censoring peer sends "unchanged" in a share of its rounds. A peer killed
 * mid-run and resumed has lost its copies: it asks its neighbours for theirs,
 * and the run still ends as well. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ohm_testproc.h"

#define N 8
#define ROUNDS 200

typedef struct {
    double acc, bytes, censored, rounds, unsynced, syncs_sent, whole_sent;
} result_t;

static const char *const common[] = {"data.name=synthetic",
                                     "data.dim=32",
                                     "data.classes=4",
                                     "data.noise=1.0",
                                     "data.train_size=4000",
                                     "data.test_size=800",
                                     "model.hidden=32",
                                     "optimizer.lr=0.1",
                                     "optimizer.batch=16",
                                     "train.rounds=200",
                                     "train.eval_every=100",
                                     "train.checkpoint_every=20",
                                     "net.insecure=true",
                                     "net.round_timeout_ms=3000",
                                     NULL};

static void sets_with(const char **sets, const char *const *extra)
{
    int k = 0;
    for (; common[k]; k++)
        sets[k] = common[k];
    for (int i = 0; extra && extra[i]; i++)
        sets[k++] = extra[i];
    sets[k] = NULL;
}

/* Waits for every peer and sums up their final lines. */
static result_t collect(const char *out, const pid_t *pids)
{
    for (int i = 0; i < N; i++) {
        int st = ohm_test_wait(pids[i], 180000);
        if (st != 0) ohm_test_show_log(out, i);
        cr_assert_eq(st, 0, "%s: peer %d exit status %d", out, i, st);
    }
    result_t r = {0};
    for (int i = 0; i < N; i++) {
        double acc = 0, round = 0, bytes = 0, v = 0;
        cr_assert_eq(ohm_test_final(out, i, "test_acc", &acc), 0, "%s: peer %d: no final line", out,
                     i);
        ohm_test_final(out, i, "round", &round);
        cr_expect_eq((int)round, ROUNDS, "%s: peer %d ended at round %g", out, i, round);
        ohm_test_final(out, i, "bytes_sent", &bytes);
        r.acc += acc / N;
        r.bytes += bytes;
        if (ohm_test_final(out, i, "censored", &v) == 0) r.censored += v;
        if (ohm_test_final(out, i, "rounds", &v) == 0) r.rounds += v;
        if (ohm_test_final(out, i, "unsynced", &v) == 0) r.unsynced += v;
        if (ohm_test_final(out, i, "syncs_sent", &v) == 0) r.syncs_sent += v;
        if (ohm_test_final(out, i, "whole_sent", &v) == 0) r.whole_sent += v;
    }
    return r;
}

static result_t run(const char *dir, const char *name, const char *topo, const char *const *extra)
{
    char out[512];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    cr_assert_eq(mkdir(out, 0755), 0);
    const char *sets[32];
    sets_with(sets, extra);
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = ohm_test_peer(topo, i, out, sets, 0);
    result_t r = collect(out, pids);
    cr_log_info("%s: accuracy %.4f, %.0f bytes sent, censored %.0f of %.0f rounds, %.0f copies "
                "out of sync",
                name, r.acc, r.bytes, r.censored, r.rounds, r.unsynced);
    return r;
}

Test(peer_comm, ring_learns_with_compression_and_censoring, .timeout = 600)
{
    char dir[128], topo[256];
    ohm_test_tmpdir(dir, sizeof dir, "comm");
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    ohm_test_topology(topo, "ring", N, 0, NULL, 1);
    result_t whole = run(dir, "whole", topo, NULL);
    cr_expect_gt(whole.acc, 0.8, "the reference run did not learn (%.4f)", whole.acc);

    const char *q8[] = {"comm.compress=q8", NULL}; /* with the default comm.entropy = deflate */
    const char *q8raw[] = {"comm.compress=q8", "comm.entropy=none", NULL};
    const char *topk[] = {"comm.compress=topk", "comm.ratio=0.05", NULL};
    const char *cens[] = {"comm.censor=threshold", "comm.censor_tau0=0.05", "comm.censor_decay=1",
                          "comm.max_staleness=4", NULL};
    const char *both[] = {"comm.compress=q8", "comm.censor=threshold", "comm.censor_tau0=0.05",
                          "comm.censor_decay=1", NULL};
    const char *const *modes[] = {q8raw, q8, topk, cens, both};
    const char *names[] = {"q8-raw", "q8", "topk", "censor", "q8+censor"};
    /* The least reduction of bytes each must reach: q8 without its entropy
     * stage sends a byte per parameter and a scale per 256, with it fewer;
     * topk 6 bytes for 5% of them. */
    const double min_ratio[] = {3.5, 3.9, 8.0, 1.0, 3.5};
    double q8raw_bytes = 0, q8raw_acc = 0;
    for (int k = 0; k < 5; k++) {
        result_t r = run(dir, names[k], topo, modes[k]);
        cr_log_info("%s: accuracy %.4f, %.2f times fewer bytes", names[k], r.acc,
                    whole.bytes / r.bytes);
        if (k == 0) q8raw_bytes = r.bytes, q8raw_acc = r.acc;
        if (k == 1) {
            /* The codes deflated: lossless, so the same models (the run is
             * seeded and in step) for fewer bytes. */
            cr_expect_lt(r.bytes, 0.97 * q8raw_bytes, "q8 %.0f bytes, q8-raw %.0f", r.bytes,
                         q8raw_bytes);
            cr_expect_eq(r.acc, q8raw_acc, "q8 %.6f, q8-raw %.6f", r.acc, q8raw_acc);
        }
        cr_expect_geq(r.acc, whole.acc - 0.03, "%s: accuracy %.4f, whole models %.4f", names[k],
                      r.acc, whole.acc);
        cr_expect_geq(whole.bytes / r.bytes, min_ratio[k], "%s: %.1f times fewer bytes", names[k],
                      whole.bytes / r.bytes);
        cr_expect_eq(r.rounds, N * ROUNDS, "%s: every round sends", names[k]);
        /* Nothing is lost on loopback: every copy follows its sender. */
        cr_expect_eq(r.unsynced, 0, "%s: %.0f copies out of sync", names[k], r.unsynced);
        cr_expect_eq(r.syncs_sent, 0, "%s", names[k]);
        cr_expect_eq(r.whole_sent, 2 * N, "%s: only the first round is sent whole", names[k]);
        if (k >= 3) {
            cr_expect_gt(r.censored, 0.1 * N * ROUNDS, "%s: only %.0f rounds censored", names[k],
                         r.censored);
            cr_expect_lt(whole.bytes / r.bytes, k == 3 ? 100.0 : 400.0);
        } else {
            cr_expect_eq(r.censored, 0, "%s: censoring is off", names[k]);
        }
    }
    ohm_test_rmdir(dir);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A peer killed and resumed starts with no copies: its first round sends its
 * public copy whole, and it asks each neighbour for theirs. */
Test(peer_comm, resumed_peer_resyncs_its_copies, .timeout = 300)
{
    char dir[128], topo[256], out[256];
    ohm_test_tmpdir(dir, sizeof dir, "commkill");
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    ohm_test_topology(topo, "ring", N, 0, NULL, 1);
    cr_assert_eq(mkdir(out, 0755), 0);
    /* The rounds take well under a millisecond: every peer is slowed
     * (train.slowdown, a sleep in proportion to its gradient steps' time) so that the
     * neighbours are still running, on any machine, when the victim is back. */
    const char *extra[] = {
        "comm.compress=topk",          "train.local_steps=8",      "train.eval_every=10",
        "train.checkpoint_every=10",   "train.slowdown=300",       "train.slowdown_basis=compute",
        "net.startup_timeout_ms=1000", "net.round_timeout_ms=500", NULL};
    const char *sets[32];
    sets_with(sets, extra);
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = ohm_test_peer(topo, i, out, sets, 0);
    enum { VICTIM = 3 };
    double round = 0, t0 = mono_s();
    while (mono_s() - t0 < 60 && (ohm_test_last(out, VICTIM, "round", &round) || round < 40))
        usleep(20000);
    cr_assert_geq(round, 40, "peer %d never reached round 40", VICTIM);
    cr_assert_eq(kill(pids[VICTIM], SIGKILL), 0);
    int st;
    cr_assert_eq(waitpid(pids[VICTIM], &st, 0), pids[VICTIM]);
    double others = 0;
    for (t0 = mono_s(); mono_s() - t0 < 30 && others < round + 10; usleep(20000))
        ohm_test_last(out, VICTIM + 1, "round", &others);
    pids[VICTIM] = ohm_test_peer(topo, VICTIM, out, sets, 1);
    result_t r = collect(out, pids);
    double asked = 0, whole = 0;
    ohm_test_final(out, VICTIM, "syncs_sent", &asked);
    for (int nb = VICTIM - 1; nb <= VICTIM + 1; nb += 2) {
        double w = 0;
        ohm_test_final(out, nb, "whole_sent", &w);
        whole += w;
    }
    cr_log_info("resume: accuracy %.4f; the resumed peer asked %.0f times for a copy; its two "
                "neighbours sent %.0f copies whole; %.0f copies out of sync in all",
                r.acc, asked, whole, r.unsynced);
    cr_expect_geq(asked, 2, "the resumed peer did not ask both neighbours");
    /* Each neighbour: its first round (2 copies) plus at least one answer. */
    cr_expect_geq(whole, 2 * 2 + 2, "the neighbours answered %.0f times", whole - 4);
    cr_expect_gt(r.acc, 0.75, "accuracy %.4f after the restart", r.acc);
    ohm_test_rmdir(dir);
}
