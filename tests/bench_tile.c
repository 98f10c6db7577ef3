/* ohmbench tile: cost of one analog tile update.
 *
 *   ohmbench tile [--rows 512] [--cols 512] [--bl 31] [--lr 0.01] [--n 32]
 *
 * Stochastic mode (pulse trains, popcount coincidences, closed-form counts) is
 * timed against the naive reference loop over every cell and slot, on the same
 * trains; expected mode against a digital tile's GEMM update. Softbounds
 * device, dw_min 0.001, x and d uniform (d carrying the 1/n of a mean loss). */
#include "ohm_analog.h"
#include "ohm_analog_tile.h"
#include "ohm_dense.h"
#include "ohmbench.h"

#include <stdio.h>
#include <stdlib.h>

/* Seconds per update, repeating until at least `min_s` have passed (and at least twice). */
static double time_updates(ohm_tile_t *t, const float *x, const float *d, int n, float lr,
                           double min_s)
{
    long reps = 0;
    double t0 = ohm_bench_now(), el;
    do {
        ohm_tile_update(t, x, d, n, lr);
        reps++;
        el = ohm_bench_now() - t0;
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
    if (rows < 1 || cols < 1 || n < 1 || bl < 1 || bl > 32 || !(lr > 0)) {
        fprintf(stderr, "ohmbench tile: need rows, cols, n >= 1, bl in 1..32, lr > 0\n");
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
    p.dev.response = OHM_RESP_SOFTBOUNDS;
    p.update = OHM_UPDATE_STOCHASTIC;
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

    double t_fast = time_updates(fast, x, d, n, lr, 0.5);
    double t_naive = time_updates(naive, x, d, n, lr, 0.5);
    double t_exp = time_updates(expd, x, d, n, lr, 0.5);
    double t_dig = time_updates(dig, x, d, n, lr, 0.5);
    ohm_bench_emit("tile_stochastic_update", 1e3 * t_fast, "ms/update", "naive_per_pulse_loop",
                   1e3 * t_naive);
    ohm_bench_emit("tile_expected_update", 1e3 * t_exp, "ms/update", "digital_gemm_update",
                   1e3 * t_dig);
    for (int k = 0; k < 4; k++)
        ohm_tile_destroy(&all[k]);
    free(x);
    free(d);
    free(w);
    return 0;
}
