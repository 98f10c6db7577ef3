/* Integration: asynchronous gossip (train.mode = async), stragglers, late
 * joiners and clean departures with real ohmpeer processes on loopback
 * (docs/protocol.md, section "Asynchronous mode"). */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ohm_testproc.h"

#define N 8

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *const common[] = {"data.name=synthetic",
                                     "data.dim=16",
                                     "data.classes=4",
                                     "data.noise=1.0",
                                     "model.hidden=16",
                                     "optimizer.lr=0.1",
                                     "optimizer.batch=16",
                                     "net.insecure=true",
                                     "net.round_timeout_ms=3000",
                                     "net.startup_timeout_ms=20000",
                                     NULL};

/* common, then `extra`, into out[cap] */
static void settings(const char **out, int cap, const char *const *extra)
{
    ohm_test_sets(out, cap, common, extra);
}

static void wait_ok(const char *dir, pid_t pid, int id)
{
    int st = ohm_test_wait(pid, 240000);
    if (st != 0) ohm_test_show_log(dir, id);
    cr_assert_eq(st, 0, "peer %d exit status %d", id, st);
}

static double final(const char *dir, int id, const char *key)
{
    double v = -1;
    cr_assert_eq(ohm_test_final(dir, id, key, &v), 0, "peer %d: no final %s", id, key);
    return v;
}

Test(peer_async, ring_converges_without_waiting, .timeout = 240)
{
    char dir[128], topo[256];
    ohm_test_tmpdir(dir, sizeof dir, "async");
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    ohm_test_topology(topo, "ring", N, 0, NULL, 4);
    /* Steps of a few milliseconds: long enough for models to cross. */
    const char *extra[] = {"train.mode=async",
                           "train.rounds=400",
                           "train.eval_every=100",
                           "train.local_steps=16",
                           "data.dim=64",
                           "model.hidden=64",
                           "async.staleness_weight=poly:0.5",
                           NULL};
    const char *sets[40];
    settings(sets, 40, extra);
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = ohm_test_peer(topo, i, dir, sets, 0);
    for (int i = 0; i < N; i++)
        wait_ok(dir, pids[i], i);
    for (int i = 0; i < N; i++) {
        double acc = final(dir, i, "test_acc"), comb = final(dir, i, "combined_per_step");
        cr_expect_eq((int) final(dir, i, "round"), 400);
        cr_expect_gt(acc, 0.85, "peer %d accuracy %.3f", i, acc);
        cr_expect_gt(comb, 0, "peer %d combined no neighbour model", i);
        cr_expect_leq(final(dir, i, "staleness_max"), 20, "peer %d combined a model too old", i);
    }
    ohm_test_rmdir(dir);
}

/* Steps far shorter than a message's trip: without the start (every peer
 * first waits for one model of each neighbour) the first peer out of its
 * barrier ran through all its steps alone. */
Test(peer_async, nobody_runs_alone_at_the_start, .timeout = 240)
{
    char dir[128], topo[256];
    ohm_test_tmpdir(dir, sizeof dir, "asyncstart");
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    ohm_test_topology(topo, "ring", N, 0, NULL, 4);
    const char *extra[] = {"train.mode=async", "train.rounds=100", "train.eval_every=100",
                           "data.dim=16",      "model.hidden=0",   NULL};
    const char *sets[40];
    settings(sets, 40, extra);
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = ohm_test_peer(topo, i, dir, sets, 0);
    for (int i = 0; i < N; i++)
        wait_ok(dir, pids[i], i);
    for (int i = 0; i < N; i++)
        cr_expect_gt(final(dir, i, "combined_per_step"), 0, "peer %d combined no neighbour model",
                     i);
    ohm_test_rmdir(dir);
}

/* train.slowdown = F on three peers of a ring, one per basis. Basis cpu: the
 * peer's sleeps add up to (F - 1) times the process CPU time it counted, and
 * that count is CPU, not wall time: never more than the CPU its threads used
 * in all (/proc), although in sync mode its rounds wait for its neighbour of
 * basis compute (64 steps a round, each slept 20 times over); and more than
 * its gradient steps alone (one step a round: the sends, receives and
 * combinations dominate). Basis runnable counts at least that CPU (it adds
 * the waits for a core) and, like cpu, not the waits for the neighbours (in
 * sync mode, most of its time awake). Basis compute keeps the old meaning: (F - 1)
 * times the wall time of its gradient steps. Every bound compares the peer's
 * own figures. */
static void slowdown_bases(const char *mode)
{
    enum { P = 4, CPU = 1, COMPUTE = 2, RUNNABLE = 3 };
    const double F = 21;
    char dir[128], topo[256], m[32];
    ohm_test_tmpdir(dir, sizeof dir, "slowbasis");
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    ohm_test_topology(topo, "ring", P, 0, NULL, 7);
    snprintf(m, sizeof m, "train.mode=%s", mode);
#define SLOW_COMMON                                                                                \
    m, "train.rounds=400", "train.eval_every=200", "data.dim=64", "model.hidden=64",               \
        "train.slowdown=21"
    const char *plain[] = {
        m, "train.rounds=400", "train.eval_every=200", "data.dim=64", "model.hidden=64", NULL};
    const char *cpu[] = {SLOW_COMMON, "train.slowdown_basis=cpu", NULL};
    const char *runnable[] = {SLOW_COMMON, "train.slowdown_basis=runnable", NULL};
    const char *compute[] = {SLOW_COMMON, "train.slowdown_basis=compute", "train.local_steps=64",
                             NULL};
#undef SLOW_COMMON
    const char *s_plain[40], *s_cpu[40], *s_compute[40], *s_runnable[40];
    settings(s_plain, 40, plain);
    settings(s_cpu, 40, cpu);
    settings(s_compute, 40, compute);
    settings(s_runnable, 40, runnable);
    const char *const *sets[P] = {s_plain, s_cpu, s_compute, s_runnable};
    pid_t pids[P];
    for (int i = 0; i < P; i++)
        pids[i] = ohm_test_peer(topo, i, dir, sets[i], 0);
    for (int i = 0; i < P; i++)
        wait_ok(dir, pids[i], i);

    double slept = final(dir, CPU, "slow_s"), counted = final(dir, CPU, "slow_basis_s");
    double steps = final(dir, CPU, "slow_compute_s");
    double used = final(dir, CPU, "cpu_main_s") + final(dir, CPU, "cpu_io_s");
    cr_log_info("%s, basis cpu: slept %.3f s on %.3f CPU s counted (%.3f CPU s used in all, "
                "%.3f s of gradient steps, %.3f s wall)",
                mode, slept, counted, used, steps, final(dir, CPU, "wall_s"));
    cr_assert_gt(counted, 0, "%s: basis cpu counted no CPU time", mode);
    cr_expect_float_eq(slept, (F - 1) * counted, 1e-6 + 1e-6 * slept,
                       "%s: slept %.3f s for %.3f CPU s", mode, slept, counted);
    /* /proc counts in clock ticks per thread: a few ticks of slack */
    cr_expect_leq(counted, used + 0.05, "%s: counted %.3f CPU s of %.3f used", mode, counted, used);
    cr_expect_gt(counted, 1.5 * steps, "%s: counted %.3f CPU s, the steps alone took %.3f s", mode,
                 counted, steps);

    slept = final(dir, RUNNABLE, "slow_s");
    counted = final(dir, RUNNABLE, "slow_basis_s");
    used = final(dir, RUNNABLE, "cpu_main_s") + final(dir, RUNNABLE, "cpu_io_s");
    double wall = final(dir, RUNNABLE, "wall_s"), work = final(dir, RUNNABLE, "work_s");
    cr_log_info("%s, basis runnable: slept %.3f s on %.3f runnable s counted (%.3f CPU s used, "
                "%.3f s wall of which %.3f s slept or worked)",
                mode, slept, counted, used, wall, work);
    cr_expect_float_eq(slept, (F - 1) * counted, 1e-6 + 1e-6 * slept,
                       "%s: slept %.3f s for %.3f runnable s", mode, slept, counted);
    cr_expect_gt(counted, 0.5 * (used - 0.05) - 0.05, "%s: counted %.3f runnable s of %.3f CPU s",
                 mode, counted, used);
    if (strcmp(mode, "sync") == 0) /* most of its rounds it waits for the compute peer */
        cr_expect_lt(counted, 0.5 * (wall - slept), "%s: counted %.3f runnable s in %.3f s awake",
                     mode, counted, wall - slept);

    slept = final(dir, COMPUTE, "slow_s");
    steps = final(dir, COMPUTE, "slow_compute_s");
    cr_log_info("%s, basis compute: slept %.3f s on %.3f s of gradient steps", mode, slept, steps);
    cr_assert_gt(steps, 0, "%s: basis compute timed no step", mode);
    cr_expect_float_eq(slept, (F - 1) * steps, 1e-6 + 1e-6 * slept,
                       "%s: slept %.3f s for %.3f s of steps", mode, slept, steps);
    cr_expect_float_eq(final(dir, COMPUTE, "slow_basis_s"), steps, 1e-6 + 1e-6 * steps,
                       "%s: basis compute counted something else", mode);
    ohm_test_rmdir(dir);
}

Test(peer_async, slowdown_bases_sync, .timeout = 240)
{
    slowdown_bases("sync");
}

Test(peer_async, slowdown_bases_async, .timeout = 240)
{
    slowdown_bases("async");
}

/* One peer joins late (after a third of the run) and one leaves at half of it,
 * in `mode`: the joiner ends within 2 points of the others, the leaver stops
 * at its round, nobody else skips a round. The synthetic task takes well under
 * a millisecond per step: the others are slowed (train.slowdown, a sleep in
 * proportion to their gradient steps' time, train.slowdown_basis = compute) so that they are still
 * running, whatever the machine's speed, when the joiner has started and connected. */
static void join_and_leave(const char *mode)
{
    enum { ROUNDS = 600, JOINER = 3, LEAVER = 6 };
    char dir[128], topo[256];
    ohm_test_tmpdir(dir, sizeof dir, "joinleave");
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    ohm_test_topology(topo, "ring", N, 0, NULL, 5);
    char m[32], leave[32];
    snprintf(m, sizeof m, "train.mode=%s", mode);
    snprintf(leave, sizeof leave, "train.leave_at=%d", ROUNDS / 2);
    const char *extra[] = {m,
                           "train.rounds=600",
                           "train.eval_every=100",
                           "train.local_steps=16",
                           "net.late_joiners=3",
                           "train.slowdown=200",
                           "train.slowdown_basis=compute",
                           NULL};
    const char *sets[40], *sets_leave[40], *sets_join[40];
    settings(sets, 40, extra);
    const char *extra_leave[] = {m,
                                 "train.rounds=600",
                                 "train.eval_every=100",
                                 "train.local_steps=16",
                                 "net.late_joiners=3",
                                 leave,
                                 "train.slowdown=200",
                                 "train.slowdown_basis=compute",
                                 NULL};
    settings(sets_leave, 40, extra_leave);
    const char *extra_join[] = {
        m,   "train.rounds=600", "train.eval_every=100", "train.local_steps=16", "train.join=true",
        NULL};
    settings(sets_join, 40, extra_join);
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        if (i != JOINER) pids[i] = ohm_test_peer(topo, i, dir, i == LEAVER ? sets_leave : sets, 0);
    /* Start the joiner once the others are a third of the way (bounded). */
    double r = 0, t0 = mono_s();
    while ((ohm_test_last(dir, 0, "round", &r) || r < ROUNDS / 3) && mono_s() - t0 < 60)
        usleep(10000);
    cr_assert_geq(r, ROUNDS / 3, "peer 0 never reached a third of the run");
    pids[JOINER] = ohm_test_peer(topo, JOINER, dir, sets_join, 0);
    for (int i = 0; i < N; i++)
        wait_ok(dir, pids[i], i);
    double sum = 0;
    int n = 0;
    for (int i = 0; i < N; i++) {
        if (i == LEAVER) continue;
        double acc = final(dir, i, "test_acc");
        cr_expect_eq((int) final(dir, i, "round"), ROUNDS, "%s: peer %d", mode, i);
        if (i != JOINER) /* the joiner catches up to the others: it starts late */
            cr_expect_eq(final(dir, i, "rounds_skipped"), 0, "%s: peer %d skipped", mode, i);
        if (i != JOINER) {
            sum += acc;
            n++;
        }
    }
    double mean = sum / n, joiner = final(dir, JOINER, "test_acc");
    cr_expect_geq(final(dir, JOINER, "joined_from"), 1, "%s: the joiner started on its own", mode);
    cr_expect_leq(mean - joiner, 0.02, "%s: the joiner ends at %.4f, the others at %.4f", mode,
                  joiner, mean);
    cr_expect_eq((int) final(dir, LEAVER, "round"), ROUNDS / 2, "%s: the leaver left at round %g",
                 mode, final(dir, LEAVER, "round"));
    cr_log_info("%s: joiner %.4f (from %g neighbours), the rest %.4f; leaver left at round %g",
                mode, joiner, final(dir, JOINER, "joined_from"), mean, final(dir, LEAVER, "round"));
    ohm_test_rmdir(dir);
}

Test(peer_async, join_and_leave_sync, .timeout = 300)
{
    join_and_leave("sync");
}

Test(peer_async, join_and_leave_async, .timeout = 300)
{
    join_and_leave("async");
}

/* A receiver stopped with SIGSTOP for 5 s: its neighbours go on, and their
 * one-slot outboxes hold at most one model for it (newer ones replace it),
 * so their memory does not grow with the stop. */
Test(peer_async, outbox_holds_one_model_for_a_stopped_receiver, .timeout = 240)
{
    char dir[128], topo[256], calm[256], stop[256];
    ohm_test_tmpdir(dir, sizeof dir, "outbox");
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    snprintf(calm, sizeof calm, "%s/calm", dir);
    snprintf(stop, sizeof stop, "%s/stopped", dir);
    mkdir(calm, 0755);
    mkdir(stop, 0755);
    ohm_test_topology(topo, "ring", 3, 0, NULL, 6);
    /* A model of about 1 MB and rounds of a few ms: queuing for 5 s would
     * take gigabytes. */
    const char *extra[] = {
        "train.mode=async", "train.rounds=3000",        "train.eval_every=1000", "data.dim=512",
        "model.hidden=512", "train.checkpoint_every=0", "train.max_seconds=60",  NULL};
    const char *sets[40];
    settings(sets, 40, extra);
    pid_t pids[3];
    for (int i = 0; i < 3; i++)
        pids[i] = ohm_test_peer(topo, i, calm, sets, 0);
    for (int i = 0; i < 3; i++)
        wait_ok(calm, pids[i], i);
    for (int i = 0; i < 3; i++)
        pids[i] = ohm_test_peer(topo, i, stop, sets, 0);
    double r = 0, t0 = mono_s();
    while ((ohm_test_last(stop, 2, "round", &r) || r < 1000) && mono_s() - t0 < 60)
        usleep(5000);
    cr_assert_eq(kill(pids[2], SIGSTOP), 0);
    usleep(5000000);
    cr_assert_eq(kill(pids[2], SIGCONT), 0);
    for (int i = 0; i < 3; i++)
        wait_ok(stop, pids[i], i);
    for (int i = 0; i < 2; i++) {
        double rss_calm = final(calm, i, "rss_max_kb"), rss = final(stop, i, "rss_max_kb");
        double replaced = final(stop, i, "outbox_replaced");
        cr_log_info("peer %d: peak RSS %.0f kB with its neighbour stopped 5 s, %.0f kB without; "
                    "%.0f models replaced in its outboxes",
                    i, rss, rss_calm, replaced);
        cr_expect_leq(final(stop, i, "outbox_peak_waiting"), 1);
        cr_expect_leq(final(stop, i, "outbox_peak_inflight"), 1);
        cr_expect_gt(replaced, 0, "peer %d never replaced a waiting model", i);
        cr_expect_leq(rss, rss_calm + 32 * 1024, "peer %d: %.0f kB against %.0f kB", i, rss,
                      rss_calm);
    }
    ohm_test_rmdir(dir);
}

/* Honest mean final accuracy of a run of topology `topo` with `rule` (b = 2)
 * in async mode; Byzantine peers (from the topology) are left out. */
static double async_byzantine_run(const char *dir, const char *name, const char *topo,
                                  const char *rule, const int *byz)
{
    char out[300], r[64];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    mkdir(out, 0755);
    snprintf(r, sizeof r, "aggregate.rule=%s", rule);
    const char *extra[] = {"train.mode=async",
                           "train.rounds=300",
                           "train.eval_every=100",
                           "train.local_steps=8",
                           "data.dim=32",
                           "model.hidden=32",
                           "aggregate.b=2",
                           r,
                           NULL};
    const char *sets[40];
    settings(sets, 40, extra);
    pid_t pids[12];
    for (int i = 0; i < 12; i++)
        pids[i] = ohm_test_peer(topo, i, out, sets, 0);
    for (int i = 0; i < 12; i++)
        wait_ok(out, pids[i], i);
    double sum = 0;
    int n = 0;
    for (int i = 0; i < 12; i++)
        if (!byz[i]) {
            sum += final(out, i, "test_acc");
            n++;
        }
    return sum / n;
}

/* Two Byzantine peers on ER(12, 0.7) in async mode: the robust rules keep the
 * honest peers within 3 points of the attack-free run. */
Test(peer_async, robust_rules_hold_in_async_mode, .timeout = 600)
{
    char dir[128], clean[256], topo[256];
    ohm_test_tmpdir(dir, sizeof dir, "asyncbyz");
    snprintf(clean, sizeof clean, "%s/clean.topo", dir);
    ohm_test_topology(clean, "er", 12, 0, NULL, 8);
    static const char *const attacks[] = {"signflip", "gaussian"};
    static const char *const rules[] = {"trimmed-mean", "ios"};
    int none[12] = {0};
    for (int r = 0; r < 2; r++) {
        char name[64];
        snprintf(name, sizeof name, "clean-%s", rules[r]);
        double base = async_byzantine_run(dir, name, clean, rules[r], none);
        for (int a = 0; a < 2; a++) {
            snprintf(topo, sizeof topo, "%s/%s.topo", dir, attacks[a]);
            ohm_test_topology(topo, "er", 12, 2, attacks[a], 8);
            /* the attacked peers: those the topology marks */
            int byz[12] = {0};
            FILE *f = fopen(topo, "r");
            char line[512];
            while (f && fgets(line, sizeof line, f)) {
                int id;
                if (sscanf(line, "peer %d", &id) == 1 && strstr(line, "role=byzantine") && id < 12)
                    byz[id] = 1;
            }
            if (f) fclose(f);
            snprintf(name, sizeof name, "%s-%s", rules[r], attacks[a]);
            double acc = async_byzantine_run(dir, name, topo, rules[r], byz);
            cr_log_info("async, %s under %s: honest accuracy %.4f, attack-free %.4f", rules[r],
                        attacks[a], acc, base);
            cr_expect_geq(acc, base - 0.03, "async %s under %s: %.4f against %.4f", rules[r],
                          attacks[a], acc, base);
        }
    }
    ohm_test_rmdir(dir);
}
