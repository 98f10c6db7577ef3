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
                          "net.round_timeout_ms=300",
                          "net.startup_timeout_ms=1500",
                          NULL};
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        if (i != ABSENT) pids[i] = ohm_test_peer(topo, i, dir, sets, 0);
    for (int i = 0; i < N; i++) {
        if (i == ABSENT) continue;
        /* 40 rounds; the absent peer costs one start-up timeout and one round deadline. */
        int st = ohm_test_wait(pids[i], 60000);
        if (st != 0) ohm_test_show_log(dir, i);
        cr_assert_eq(st, 0, "peer %d exit status %d", i, st);
        double round = 0, live = -1;
        cr_assert_eq(ohm_test_final(dir, i, "round", &round), 0);
        cr_expect_eq((int)round, 40);
        ohm_test_final(dir, i, "live_neighbours", &live);
        int neighbour_of_absent = (i == ABSENT - 1 || i == ABSENT + 1);
        cr_expect_eq((int)live, neighbour_of_absent ? 1 : 2, "peer %d live neighbours %g", i, live);
        if (neighbour_of_absent) {
            /* Its per-neighbour record shows the absent peer: nothing accepted. */
            char path[300], line[16384], key[64];
            snprintf(path, sizeof path, "%s/peer-%d.jsonl", dir, i);
            snprintf(key, sizeof key, "\"%d\":{\"accepted\":0,\"missed\":40,", ABSENT);
            FILE *f = fopen(path, "r");
            int seen = 0;
            while (f && fgets(line, sizeof line, f))
                if (strstr(line, "\"final\":true") && strstr(line, key)) seen = 1;
            if (f) fclose(f);
            cr_expect(seen, "peer %d: no record of the absent neighbour", i);
        }
    }
    ohm_test_rmdir(dir);
}
