/* Integration: real Byzantine peer processes, declared in the topology, next
 * to honest ones on a ring and on an Erdos-Renyi graph. Value attacks (the
 * robust rules' business) and control-plane attacks (lies about rounds,
 * replays, hello floods, silence then bursts: the protocol's business). In
 * every run each honest peer must finish every round without skipping any
 * (rounds_skipped = 0), with accuracy within ACC_BOUND of the attack-free run
 * on the same graph and rule, and the time an attacker can cost it bounded:
 * deadlines missed because of it at most a logarithmic number of times, holds
 * within their budget (docs/protocol.md, section "Control plane"). */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ohm_error.h"
#include "ohm_testproc.h"
#include "ohm_topology.h"

#define ROUNDS 100
#define ACC_BOUND 0.05
#define HOLD_BURST_S 1.0
#define HOLD_SHARE 0.05

typedef struct {
    int n;
    int byz[64];
    double acc_mean;
    double wall_max;
} run_t;

/* Rounds an honest peer may skip in the next run (0 unless an attack says
 * why). A neighbour muted for m rounds stalls its honest neighbour for up to
 * m deadlines; that peer's other neighbours stop waiting for it and move on,
 * and when it is heard again it catches up to them (on the evidence of a
 * quorum, the attacker's burst alone cannot move it): at most m rounds. */
static int skip_bound = 0;

/* Runs every peer of topology `topo` (honest and Byzantine) into a fresh
 * folder under dir with the common settings plus `extra`, and checks what
 * holds in every run: each honest peer exits 0 after all rounds, none skipped,
 * and the time an attacker can cost it is bounded. */
static run_t run(const char *dir, const char *name, const char *topo, const char *const *extra)
{
    char out[512];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    cr_assert_eq(mkdir(out, 0755), 0);
    const char *sets[48] = {"data.name=synthetic",
                            "data.dim=16",
                            "data.classes=4",
                            "data.train_size=2400",
                            "data.test_size=400",
                            "model.hidden=16",
                            "optimizer.lr=0.1",
                            "optimizer.batch=16",
                            "train.rounds=100",
                            "train.eval_every=50",
                            "train.checkpoint_every=0",
                            "net.insecure=true",
                            "net.round_timeout_ms=1500",
                            "net.startup_timeout_ms=5000",
                            "net.hold_burst_s=1",
                            "net.hold_share=0.05"};
    int k = 0;
    while (sets[k])
        k++;
    for (int i = 0; extra && extra[i] && k < 47; i++)
        sets[k++] = extra[i];
    sets[k] = NULL;

    ohm_topology_t *t = NULL;
    cr_assert_eq(ohm_topology_load(topo, &t), 0, "%s", ohm_error_detail());
    run_t r = {.n = ohm_topology_size(t)};
    for (int i = 0; i < r.n; i++)
        r.byz[i] = ohm_topology_peer(t, (uint32_t)i)->byzantine;
    ohm_topology_destroy(&t);

    int bad = -1;
    cr_assert_eq(ohm_test_run(topo, r.n, out, sets, 300000, &bad), 0, "%s: peer %d%s failed", name,
                 bad, bad >= 0 && r.byz[bad] ? " (Byzantine)" : "");
    int honest = 0;
    for (int i = 0; i < r.n; i++) {
        if (r.byz[i]) continue;
        double acc = 0, round = 0, skipped = -1, timed_out = -1, hold = -1, wall = 0;
        cr_assert_eq(ohm_test_final(out, i, "test_acc", &acc), 0, "%s: peer %d: no final line",
                     name, i);
        ohm_test_final(out, i, "round", &round);
        ohm_test_final(out, i, "rounds_skipped", &skipped);
        ohm_test_final(out, i, "rounds_timed_out", &timed_out);
        ohm_test_final(out, i, "hold_s", &hold);
        ohm_test_final(out, i, "wall_s", &wall);
        cr_expect_eq((int)round, ROUNDS, "%s: peer %d ended at round %g", name, i, round);
        cr_expect_leq(skipped, skip_bound, "%s: peer %d skipped %g rounds", name, i, skipped);
        /* A neighbour that misses deadlines gets a probation that doubles:
         * log2(ROUNDS) + 2 misses at most per attacker, two attackers here at
         * most, plus the start-up. */
        cr_expect_leq(timed_out, 2 * (log2(ROUNDS) + 2) + 1, "%s: peer %d waited out %g deadlines",
                      name, i, timed_out);
        /* Holds: the burst and the refill, per attacker. */
        cr_expect_leq(hold, 2 * (HOLD_BURST_S + HOLD_SHARE * wall) + 0.5,
                      "%s: peer %d held %.2f s in %.1f s", name, i, hold, wall);
        if (wall > r.wall_max) r.wall_max = wall;
        r.acc_mean += acc;
        honest++;
    }
    r.acc_mean /= honest;
    cr_log_info("%s: %d honest peers, mean accuracy %.4f, slowest %.1f s", name, honest, r.acc_mean,
                r.wall_max);
    return r;
}

static void topology(const char *dir, const char *name, const char *kind, int n, int byz,
                     const char *attack, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s.topo", dir, name);
    ohm_test_topology(path, kind, n, byz, attack, 3);
}

static void expect_close(const run_t *attacked, const run_t *clean, const char *what)
{
    cr_expect_geq(attacked->acc_mean, clean->acc_mean - ACC_BOUND,
                  "%s: honest accuracy %.4f, attack-free %.4f", what, attacked->acc_mean,
                  clean->acc_mean);
}

/* The control-plane attacks on a ring of 8 with one Byzantine peer, at the
 * default aggregate.b = 0: the protocol alone must hold. */
Test(peer_byzantine, ring_control_plane_attacks, .timeout = 900)
{
    char dir[128], topo[512];
    ohm_test_tmpdir(dir, sizeof dir, "byzring");
    topology(dir, "clean", "ring", 8, 0, NULL, topo, sizeof topo);
    run_t clean = run(dir, "clean", topo, NULL);
    static const char *const attacks[] = {
        "roundlie",              /* valid models stamped near the end of the run */
        "roundlie:nan=1",        /* the same with NaN parameters */
        "roundlie:shift=-60",    /* stamped far behind: held for within budget */
        "stale:lag=10",          /* replays of its rounds of 10 rounds ago */
        "hello-flood:count=200", /* with a send queue that lets them through (below) */
        "mute-then-burst:mute=3,burst=6",
    };
    for (size_t a = 0; a < sizeof attacks / sizeof *attacks; a++) {
        char name[64];
        snprintf(name, sizeof name, "ring-%zu", a);
        topology(dir, name, "ring", 8, 1, attacks[a], topo, sizeof topo);
        const char *deep[] = {"net.hwm=1024", NULL};
        skip_bound = strncmp(attacks[a], "mute-then-burst", 15) ? 0 : 3; /* mute = 3 */
        run_t r = run(dir, name, topo, strncmp(attacks[a], "hello", 5) ? NULL : deep);
        skip_bound = 0;
        expect_close(&r, &clean, attacks[a]);
    }
    ohm_test_rmdir(dir);
}

/* roundlie again at the correct b (trimmed mean, b = 1), against the
 * attack-free run with the same rule. */
Test(peer_byzantine, ring_roundlie_at_the_correct_b, .timeout = 600)
{
    char dir[128], topo[512];
    ohm_test_tmpdir(dir, sizeof dir, "byzringb");
    const char *rule[] = {"aggregate.rule=trimmed-mean", "aggregate.b=1", NULL};
    topology(dir, "clean", "ring", 8, 0, NULL, topo, sizeof topo);
    run_t clean = run(dir, "clean", topo, rule);
    topology(dir, "roundlie", "ring", 8, 1, "roundlie", topo, sizeof topo);
    run_t r = run(dir, "roundlie", topo, rule);
    expect_close(&r, &clean, "roundlie, b = 1");
    ohm_test_rmdir(dir);
}

/* Two Byzantine peers on ER(12, 0.7): value attacks under IOS with the exact
 * b, and the round lie at b = 0 and at the exact b. */
Test(peer_byzantine, er_value_and_control_plane_attacks, .timeout = 900)
{
    char dir[128], topo[512];
    ohm_test_tmpdir(dir, sizeof dir, "byzer");
    const char *ios[] = {"aggregate.rule=ios", "aggregate.b=2", NULL};
    topology(dir, "clean", "er", 12, 0, NULL, topo, sizeof topo);
    run_t clean_ios = run(dir, "clean-ios", topo, ios);
    run_t clean = run(dir, "clean-weighted", topo, NULL);
    static const char *const value[] = {"signflip", "gaussian"};
    for (int a = 0; a < 2; a++) {
        char name[64];
        snprintf(name, sizeof name, "er-%s", value[a]);
        topology(dir, name, "er", 12, 2, value[a], topo, sizeof topo);
        run_t r = run(dir, name, topo, ios);
        expect_close(&r, &clean_ios, value[a]);
    }
    topology(dir, "er-roundlie", "er", 12, 2, "roundlie", topo, sizeof topo);
    run_t r0 = run(dir, "er-roundlie-b0", topo, NULL);
    expect_close(&r0, &clean, "roundlie, b = 0");
    run_t r2 = run(dir, "er-roundlie-b2", topo, ios);
    expect_close(&r2, &clean_ios, "roundlie, b = 2");
    ohm_test_rmdir(dir);
}

/* Byzantine peers hold no data under data.partition=label-honest: every attack
 * that crafts vectors (the value attacks with the target's view, and zero,
 * nan, crash) still runs, and the honest peers' rule sees (and counts) the
 * attackers' models. A ring of 6 with one Byzantine peer, IOS with b = 1. */
Test(peer_byzantine, attacks_without_local_data, .timeout = 900)
{
    char dir[128], topo[512];
    ohm_test_tmpdir(dir, sizeof dir, "byznodata");
    const char *sets[] = {"aggregate.rule=ios",          "aggregate.b=1",
                          "data.partition=label-honest", "model.init=normal",
                          "model.init_per_peer=true",    NULL};
    static const char *const attacks[] = {"gaussian:view=target",
                                          "signflip:view=target",
                                          "isolation:view=target",
                                          "duplicate:view=target",
                                          "alie:view=target",
                                          "ipm:view=target",
                                          "zero",
                                          "nan",
                                          "crash"};
    for (size_t a = 0; a < sizeof attacks / sizeof *attacks; a++) {
        char name[64];
        snprintf(name, sizeof name, "nodata-%zu", a);
        topology(dir, name, "ring", 6, 1, attacks[a], topo, sizeof topo);
        run_t r = run(dir, name, topo, sets);
        char out[512];
        snprintf(out, sizeof out, "%s/%s", dir, name);
        double rows = 0;
        for (int i = 0; i < r.n; i++) {
            if (r.byz[i]) continue;
            double v = 0;
            if (ohm_test_final(out, i, "rule_byz_rows", &v) == 0) rows += v;
        }
        if (strcmp(attacks[a], "crash") == 0 || strcmp(attacks[a], "nan") == 0)
            cr_expect_eq(rows, 0, "%s: no attacker model reached a rule (%g)", attacks[a], rows);
        else
            cr_expect_eq(rows, 2 * ROUNDS, "%s: each of 2 neighbours saw it every round (%g)",
                         attacks[a], rows);
    }
    ohm_test_rmdir(dir);
}

/* Value attacks through compressed gossip (docs/protocol.md, section
 * "Compressed gossip and censoring"): each attacker keeps, per target, the
 * copy the target holds of it, and sends the compressed difference between
 * the vector its attack crafts and that copy, so the crafted vector reaches
 * the target through the same channel as honest models. The robust rules
 * combine the reconstructed copies: with IOS and the trimmed mean at the
 * exact b the honest peers stay within ACC_BOUND of the attack-free run with
 * the same compressor and rule, while the plain weighted mean, which screens
 * nothing, is hurt far more: the attack does arrive. */
Test(peer_byzantine, er_value_attacks_through_compression, .timeout = 1200)
{
    char dir[128], topo[512];
    ohm_test_tmpdir(dir, sizeof dir, "byzcomm");
    static const char *const comps[] = {"comm.compress=q8", "comm.compress=topk"};
    static const char *const rules[] = {"aggregate.rule=ios", "aggregate.rule=trimmed-mean"};
    static const char *const value[] = {"signflip", "gaussian"};
    char clean_topo[512], atk_topo[2][512];
    topology(dir, "clean", "er", 12, 0, NULL, clean_topo, sizeof clean_topo);
    for (int a = 0; a < 2; a++)
        topology(dir, value[a], "er", 12, 2, value[a], atk_topo[a], sizeof atk_topo[a]);
    for (int c = 0; c < 2; c++) {
        for (int r = 0; r < 2; r++) {
            const char *extra[] = {comps[c], rules[r], "aggregate.b=2", NULL};
            char name[96];
            snprintf(name, sizeof name, "clean-%d-%d", c, r);
            run_t clean = run(dir, name, clean_topo, extra);
            for (int a = 0; a < 2; a++) {
                snprintf(name, sizeof name, "%s-%d-%d", value[a], c, r);
                run_t got = run(dir, name, atk_topo[a], extra);
                char what[160];
                snprintf(what, sizeof what, "%s through %s with %s", value[a], comps[c], rules[r]);
                expect_close(&got, &clean, what);
            }
        }
        /* The weighted mean under sign flipping, against its own attack-free run. */
        const char *plain[] = {comps[c], NULL};
        char name[96];
        snprintf(name, sizeof name, "clean-%d-weighted", c);
        run_t clean = run(dir, name, clean_topo, plain);
        snprintf(name, sizeof name, "signflip-%d-weighted", c);
        run_t hurt = run(dir, name, atk_topo[0], plain);
        cr_expect_lt(hurt.acc_mean, clean.acc_mean - 2 * ACC_BOUND,
                     "signflip through %s with the weighted mean: %.4f, attack-free %.4f (the "
                     "attack does not arrive)",
                     comps[c], hurt.acc_mean, clean.acc_mean);
    }
    (void)topo;
    ohm_test_rmdir(dir);
}
