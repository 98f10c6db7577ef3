/* Integration: one peer of a ring never starts; its neighbours finish anyway,
 * counting the rounds it missed, and nobody waits for it beyond the deadlines. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ohm_testproc.h"

#define N 6
#define ABSENT 3

Test(peer_missing, neighbours_finish_without_the_absent_peer, .timeout = 120)
{
    char dir[128], topo[256];
    ohm_test_tmpdir(dir, sizeof dir, "missing");
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    ohm_test_topology(topo, "ring", N, 0, NULL, 2);
    const char *sets[] = {"data.name=synthetic",
                          "data.dim=8",
                          "data.classes=3",
                          "model.hidden=8",
                          "train.rounds=40",
                          "train.eval_every=10",
                          "net.insecure=true",
                          "net.round_timeout_ms=2000",
                          "net.startup_timeout_ms=5000",
                          NULL};
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        if (i != ABSENT) pids[i] = ohm_test_peer(topo, i, dir, sets, 0);
    for (int i = 0; i < N; i++) {
        if (i == ABSENT) continue;
        /* 40 rounds; the absent peer costs the start-up window once (it is never heard, so
         * never waited for); a generous round deadline keeps slow machines in step. */
        int st = ohm_test_wait(pids[i], 60000);
        if (st != 0) ohm_test_show_log(dir, i);
        cr_assert_eq(st, 0, "peer %d exit status %d", i, st);
        double round = 0;
        cr_assert_eq(ohm_test_final(dir, i, "round", &round), 0);
        cr_expect_eq((int)round, 40);
        /* The final line's per-neighbour record: the absent peer gave nothing and
         * missed every round; the others delivered (almost) every round. */
        char final[16384], obj[1024];
        cr_assert_eq(ohm_test_final_line(dir, i, final, sizeof final), 0);
        int nbs[2] = {(i + N - 1) % N, (i + 1) % N};
        for (int k = 0; k < 2; k++) {
            cr_assert_eq(ohm_test_neighbour(final, nbs[k], obj, sizeof obj), 0,
                         "peer %d: no record of neighbour %d", i, nbs[k]);
            long accepted = ohm_test_counter(obj, "accepted"),
                 missed = ohm_test_counter(obj, "missed");
            if (nbs[k] == ABSENT) {
                cr_expect_eq(accepted, 0);
                cr_expect_eq(missed, 40, "peer %d: absent neighbour missed %ld rounds", i, missed);
            } else {
                cr_expect_geq(accepted, 39, "peer %d: neighbour %d accepted %ld", i, nbs[k],
                              accepted);
            }
        }
    }
    ohm_test_rmdir(dir);
}
