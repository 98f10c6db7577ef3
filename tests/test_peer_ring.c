/* Integration: 8 real ohmpeer processes on a ring over loopback learn the
 * synthetic Gaussian-mixture task together. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "ohm_testproc.h"

#define N 8

Test(peer_ring, eight_peers_converge, .timeout = 240)
{
    char dir[128], topo[256];
    ohm_test_tmpdir(dir, sizeof dir, "ring");
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    ohm_test_topology(topo, "ring", N, 0, NULL, 1);
    const char *sets[] = {"data.name=synthetic",
                          "data.dim=16",
                          "data.classes=4",
                          "data.noise=1.0",
                          "model.hidden=16",
                          "optimizer.lr=0.1",
                          "optimizer.batch=16",
                          "train.rounds=150",
                          "train.eval_every=50",
                          "net.insecure=true",
                          "net.round_timeout_ms=5000",
                          NULL};
    int bad = -1;
    cr_assert_eq(ohm_test_run(topo, N, dir, sets, 180000, &bad), 0, "peer %d failed", bad);
    for (int i = 0; i < N; i++) {
        double acc = 0, round = 0, dropped = -1, first = 0, last = 0;
        cr_assert_eq(ohm_test_final(dir, i, "test_acc", &acc), 0, "peer %d: no final line", i);
        ohm_test_final(dir, i, "round", &round);
        ohm_test_final(dir, i, "msgs_dropped", &dropped);
        cr_expect_eq((int)round, 150);
        cr_expect_gt(acc, 0.85, "peer %d accuracy %.3f", i, acc);
        cr_expect_eq(dropped, 0, "peer %d dropped %g messages", i, dropped);
        /* The loss went down between the first and the last evaluation. */
        char path[300];
        snprintf(path, sizeof path, "%s/peer-%d.jsonl", dir, i);
        FILE *f = fopen(path, "r");
        char line[8192];
        int n = 0;
        while (f && fgets(line, sizeof line, f)) {
            const char *p = strstr(line, "\"test_loss\":");
            if (p) {
                double v = strtod(p + 12, NULL);
                if (n++ == 0) first = v;
                last = v;
            }
        }
        if (f) fclose(f);
        cr_expect_lt(last, first, "peer %d: test loss %.3f -> %.3f", i, first, last);
    }
    ohm_test_rmdir(dir);
}
