/* ohmbench tile: cost of one analog tile update.
 *
 *   ohmbench tile [--rows 512] [--cols 512] [--bl 31] [--lr 0.01] [--n 32]
 *                 [--response softbounds] [--gamma 2] [--c2c 0] [--d2d 0] [--ublm 0] [--um 1]
 *
 * Stochastic mode (pulse trains, coincidences by popcount, one exact burst per
 * pulsed cell) is timed against the naive reference loop over every cell and
 * slot, one pulse at a time, on the same trains, in the same run; figures are
 * microseconds per example (the update of a batch of n divided by n). Expected
 * mode is timed against a digital tile's GEMM update. Device: dw_min 0.001,
 * tau 1, the given response (gamma for pow/exp/linear), cycle-to-cycle noise
 * c2c (dw_min_std), device-to-device spread d2d of the pulse size and the bound;
 * x ~ U(-1, 1), d ~ U(-1, 1)/n (the 1/n of a mean loss). Times are the
 * thread's CPU time, so other work on the machine inflates them less. */
#include "ohm_analog.h"
#include "ohm_analog_tile.h"
#include "ohm_dense.h"
#include "ohmbench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* CPU seconds per update, repeating until at least `min_s` have passed (and at least twice). */
static double time_updates(ohm_tile_t *t, const float *x, const float *d, int n, float lr,
                           double min_s)
{
    long reps = 0;
    double t0 = ohm_bench_cpu_now(), el;
    do {
        ohm_tile_update(t, x, d, n, lr);
        reps++;
        el = ohm_bench_cpu_now() - t0;
    } while (el < min_s || reps < 2);
    return el / (double)reps;
}

int ohm_bench_tile(int argc, char **argv)
{
    int rows = (int)ohm_bench_opt_int(argc, argv, "--rows", 512);
    int cols = (int)ohm_bench_opt_int(argc, argv, "--cols", 512);
    int bl = (int)ohm_bench_opt_int(argc, argv, "--bl", 31);
    int n = (int)ohm_bench_opt_int(argc, argv, "--n", 32);
    float lr = (float)ohm_bench_opt_double(argc, argv, "--lr", 0.01);
    double c2c = ohm_bench_opt_double(argc, argv, "--c2c", 0.0);
    double d2d = ohm_bench_opt_double(argc, argv, "--d2d", 0.0);
    double gamma = ohm_bench_opt_double(argc, argv, "--gamma", 2.0);
    int ublm = (int)ohm_bench_opt_int(argc, argv, "--ublm", 0);
    int um = (int)ohm_bench_opt_int(argc, argv, "--um", 1);
    const char *rname = ohm_bench_opt_str(argc, argv, "--response", "softbounds");
    int resp = ohm_device_response_index(rname);
    if (rows < 1 || cols < 1 || n < 1 || bl < 1 || bl > 32 || !(lr > 0) || !(c2c >= 0) ||
        !(d2d >= 0) || !(gamma > 0) || resp < 0) {
        fprintf(stderr, "ohmbench tile: need rows, cols, n >= 1, bl in 1..32, lr > 0, c2c and "
                        "d2d >= 0, gamma > 0, response ideal|softbounds|pow|exp|linear\n");
        return 2;
    }
    ohm_dense_single_thread();
    float *x = malloc(sizeof(float) * (size_t)n * cols),
          *d = malloc(sizeof(float) * (size_t)n * rows);
    float *w = malloc(sizeof(float) * (size_t)rows * cols);
    if (!x || !d || !w) return 1;
    ohm_rng_t r;
    ohm_rng_seed(&r, 1, 0, 1000);
    for (size_t i = 0; i < (size_t)n * cols; i++)
        x[i] = (float)(2 * ohm_rng_uniform(&r) - 1);
    for (size_t i = 0; i < (size_t)n * rows; i++)
        d[i] = (float)((2 * ohm_rng_uniform(&r) - 1) / n);
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        w[i] = (float)(0.5 * (2 * ohm_rng_uniform(&r) - 1));

    ohm_analog_params_t p;
    ohm_analog_params_default(&p);
    p.opt = OHM_OPT_ANALOG_SGD;
    p.dev.response = resp;
    p.dev.gamma = resp == OHM_RESP_LINEAR && gamma > 1 ? 1.0 : gamma;
    p.dev.dw_min_std = c2c;
    p.dev.dw_min_dtod = d2d;
    p.dev.tau_dtod = d2d;
    p.update = OHM_UPDATE_STOCHASTIC;
    p.update_management = um != 0;
    p.update_bl_management = ublm != 0;
    p.bl = bl;
    ohm_tile_t *fast = ohm_analog_tile_new(&p, rows, cols, 1, 0, 0);
    ohm_tile_t *naive = ohm_analog_tile_new(&p, rows, cols, 1, 0, 0);
    p.update = OHM_UPDATE_EXPECTED;
    ohm_tile_t *expd = ohm_analog_tile_new(&p, rows, cols, 1, 0, 0);
    ohm_tile_t *dig = ohm_tile_digital_new(rows, cols);
    if (!fast || !naive || !expd || !dig) return 1;
    ohm_analog_tile_set_naive(naive, 1);
    ohm_tile_t *all[4] = {fast, naive, expd, dig};
    for (int k = 0; k < 4; k++)
        ohm_tile_set_weights(all[k], w, OHM_WB_EXACT);

    double t_fast = time_updates(fast, x, d, n, lr, 1.0);
    double t_naive = time_updates(naive, x, d, n, lr, 0.5);
    double t_exp = time_updates(expd, x, d, n, lr, 0.5);
    double t_dig = time_updates(dig, x, d, n, lr, 0.5);
    ohm_analog_counters_t c = ohm_analog_tile_counters(fast);
    printf("# %dx%d %s bl %d lr %g n %d c2c %g d2d %g um %d ublm %d: %.1f pulses per example, "
           "%.2f slots\n",
           rows, cols, rname, bl, (double)lr, n, c2c, d2d, um, ublm,
           (double)c.update_pulses / (double)(ohm_analog_tile_updates(fast) * (uint64_t)n),
           (double)c.train_slots / (double)(ohm_analog_tile_updates(fast) * (uint64_t)n));
    ohm_bench_emit("tile_stochastic_update", 1e6 * t_fast / n, "us/example",
                   "naive_per_pulse_loop", 1e6 * t_naive / n);
    ohm_bench_emit("tile_expected_update", 1e3 * t_exp, "ms/update", "digital_gemm_update",
                   1e3 * t_dig);
    for (int k = 0; k < 4; k++)
        ohm_tile_destroy(&all[k]);
    free(x);
    free(d);
    free(w);
    return 0;
}
