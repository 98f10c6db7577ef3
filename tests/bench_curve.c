/* ohmbench curve: what CURVE encryption costs on the model stream.
 *
 *   ohmbench curve [--d 1000000] [--iters N] [--reps 3] [--hwm 8] [--pool 2]
 *
 * The round trip of `ohmbench wire` (encode, send_all, recv, decode,
 * read_params through ohm_transport over tcp loopback), once with CURVE keys
 * and the ZAP handler, once plain; alternating, best of --reps each. */
#include "bench_net.h"
#include "ohm_wire.h"
#include "ohmbench.h"

#include <stdio.h>

int ohm_bench_curve(int argc, char **argv)
{
    size_t d = (size_t)ohm_bench_opt_int(argc, argv, "--d", 1000000);
    if (d < 1 || d > OHM_WIRE_MAX_COUNT) {
        fprintf(stderr, "ohmbench curve: --d must be in 1..%u\n", (unsigned)OHM_WIRE_MAX_COUNT);
        return 2;
    }
    int iters = (int)ohm_bench_opt_int(argc, argv, "--iters", bench_net_default_iters(d));
    int reps = (int)ohm_bench_opt_int(argc, argv, "--reps", 3);
    int hwm = (int)ohm_bench_opt_int(argc, argv, "--hwm", 8);
    int npool = (int)ohm_bench_opt_int(argc, argv, "--pool", 2);
    if (iters < 2 || reps < 1 || hwm < 1 || npool < 1) {
        fprintf(stderr,
                "ohmbench curve: need --iters >= 2, --reps >= 1, --hwm >= 1, --pool >= 1\n");
        return 2;
    }
    double plain = 0, curve = 0;
    for (int r = 0; r < reps; r++) {
        double a = bench_net_roundtrip(d, iters, 0, hwm, npool),
               b = bench_net_roundtrip(d, iters, 1, hwm, npool);
        if (a < 0 || b < 0) return 1;
        if (a > plain) plain = a;
        if (b > curve) curve = b;
    }
    ohm_bench_emit("curve_plain_roundtrip", plain, "GB/s", NULL, 0);
    ohm_bench_emit("curve_roundtrip", curve, "GB/s", "curve_plain_roundtrip", plain);
    return 0;
}
