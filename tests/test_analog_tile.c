/* The analog tile: reads, the two update modes, write-back, state, factory. */
#include "ohm_analog.h"
#include "ohm_analog_tile.h"
#include "ohm_config.h"
#include "ohm_dense.h"
#include "ohm_error.h"
#include "ohm_rng.h"
#include "ohm_tile.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ohm_analog_params_t params(int opt, int resp, double tau)
{
    ohm_analog_params_t p;
    ohm_analog_params_default(&p);
    p.opt = opt;
    p.dev.response = resp;
    p.dev.tau = tau;
    return p;
}

static void fill(ohm_rng_t *r, float *v, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(scale * (2 * ohm_rng_uniform(r) - 1));
}

Test(analog_tile, ideal_expected_equals_digital_sgd)
{
    enum { R = 7, C = 13, N = 5 };
    ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, OHM_RESP_IDEAL, 100.0);
    ohm_tile_t *a = ohm_analog_tile_new(&p, R, C, 1, 0, 0), *d = ohm_tile_digital_new(R, C);
    cr_assert(a && d);
    cr_expect_str_eq(ohm_tile_kind(a), "analog-sgd");
    ohm_rng_t r;
    ohm_rng_seed(&r, 1, 0, 77);
    float w[R * C], x[N * C], dd[N * R], ya[N * R], yd[N * R], za[N * C], zd[N * C];
    float wa[R * C], wd[R * C];
    fill(&r, w, R * C, 1.0);
    ohm_tile_set_weights(a, w, OHM_WB_EXACT);
    ohm_tile_set_weights(d, w, OHM_WB_EXACT);
    for (int step = 0; step < 50; step++) {
        fill(&r, x, N * C, 1.0);
        fill(&r, dd, N * R, 0.2);
        ohm_tile_forward(a, x, ya, N);
        ohm_tile_forward(d, x, yd, N);
        ohm_tile_backward(a, dd, za, N);
        ohm_tile_backward(d, dd, zd, N);
        ohm_tile_get_weights(a, wa);
        ohm_tile_get_weights(d, wd);
        /* Ideal reads are the GEMM itself: bit for bit on the same weights. */
        ohm_tile_set_weights(d, wa, OHM_WB_EXACT);
        ohm_tile_forward(d, x, yd, N);
        ohm_tile_backward(d, dd, zd, N);
        cr_assert(memcmp(ya, yd, sizeof ya) == 0, "forward differs at step %d", step);
        cr_assert(memcmp(za, zd, sizeof za) == 0, "backward differs at step %d", step);
        for (int i = 0; i < R * C; i++)
            cr_assert(fabsf(wa[i] - wd[i]) < 1e-5f, "weights differ at step %d", step);
        ohm_tile_update(a, x, dd, N, 0.05f);
        ohm_tile_update(d, x, dd, N, 0.05f);
    }
    ohm_tile_destroy(&a);
    ohm_tile_destroy(&d);
    cr_expect_null(a);
}

Test(analog_tile, expected_mode_is_uq_of_minus_lr_gradient)
{
    enum { R = 3, C = 4, N = 2 };
    ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, OHM_RESP_SOFTBOUNDS, 1.0);
    p.dev.c = 0.1;
    ohm_tile_t *t = ohm_analog_tile_new(&p, R, C, 1, 0, 0);
    ohm_rng_t r;
    ohm_rng_seed(&r, 2, 0, 77);
    float w[R * C], x[N * C], d[N * R], after[R * C];
    fill(&r, w, R * C, 0.8);
    fill(&r, x, N * C, 1.0);
    fill(&r, d, N * R, 0.5);
    ohm_tile_set_weights(t, w, OHM_WB_EXACT);
    ohm_tile_update(t, x, d, N, 0.1f);
    ohm_tile_get_weights(t, after);
    ohm_device_t dev = ohm_device_nominal(&p.dev);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) {
            double g = 0;
            for (int e = 0; e < N; e++)
                g += (double)d[e * R + i] * x[e * C + j];
            double dw = -0.1 * g, w0 = w[i * C + j];
            /* W' = W + dW F(W) - |dW| G(W) */
            double want = w0 + dw * ohm_device_F(&p.dev, &dev, w0) -
                          fabs(dw) * ohm_device_G(&p.dev, &dev, w0);
            cr_expect(fabs(after[i * C + j] - want) < 1e-6, "cell %d,%d: %g vs %g", i, j,
                      after[i * C + j], want);
        }
    ohm_tile_destroy(&t);
}

/* Mean change of one stochastic update over T trials against the expected-mode change.
 * A cell's pulse count is a sum of BL Bernoulli(lambda/BL) slots, variance
 * lambda (1 - lambda/BL); each pulse moves dw_min q(w) (to first order), so the
 * trial mean has std dw_min q sqrt(lambda (1 - lambda/BL) / T). */
static void stochastic_vs_expected(int um, int ublm)
{
    enum { R = 4, C = 5, T = 3000 };
    const float lr = 0.005f;
    ohm_analog_params_t pe = params(OHM_OPT_ANALOG_SGD, OHM_RESP_SOFTBOUNDS, 1.0);
    pe.dev.c = 0.2;
    pe.dev.dw_min = 0.001;
    ohm_analog_params_t ps = pe;
    ps.update = OHM_UPDATE_STOCHASTIC;
    ps.update_management = um;
    ps.update_bl_management = ublm;
    ohm_tile_t *te = ohm_analog_tile_new(&pe, R, C, 1, 0, 0),
               *ts = ohm_analog_tile_new(&ps, R, C, 1, 0, 0);
    ohm_rng_t r;
    ohm_rng_seed(&r, 3, 0, 77);
    float w[R * C], x[C], d[R], we[R * C], ws[R * C];
    double mean[R * C] = {0};
    fill(&r, w, R * C, 0.6);
    fill(&r, x, C, 1.0);
    fill(&r, d, R, 0.6);
    ohm_tile_set_weights(te, w, OHM_WB_EXACT);
    ohm_tile_update(te, x, d, 1, lr);
    ohm_tile_get_weights(te, we);
    for (int k = 0; k < T; k++) {
        ohm_tile_set_weights(ts, w, OHM_WB_EXACT); /* back to the start; RNG streams go on */
        ohm_tile_update(ts, x, d, 1, lr);
        ohm_tile_get_weights(ts, ws);
        for (int i = 0; i < R * C; i++)
            mean[i] += (double)(ws[i] - w[i]) / T;
    }
    ohm_device_t dev = ohm_device_nominal(&pe.dev);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) {
            int c = i * C + j;
            double lambda = lr * fabs((double)x[j] * d[i]) / pe.dev.dw_min;
            double qp, qm;
            ohm_device_q(&pe.dev, &dev, w[c], &qp, &qm);
            double q = fmax(qp, qm);
            double se = pe.dev.dw_min * q * sqrt(lambda * (1 - lambda / ps.bl) / T);
            /* 5 standard errors, plus float rounding of the weights (1e-7 each way). */
            double tol = 5 * se + 2e-7;
            cr_expect(fabs(mean[c] - (we[c] - w[c])) < tol,
                      "UM %d UBLM %d cell %d,%d: stochastic mean %.4g, expected %.4g (tol %.2g)",
                      um, ublm, i, j, mean[c], (double)(we[c] - w[c]), tol);
        }
    ohm_tile_destroy(&te);
    ohm_tile_destroy(&ts);
}

Test(analog_tile, stochastic_mean_equals_expected_with_um)
{
    stochastic_vs_expected(1, 0);
}

Test(analog_tile, stochastic_mean_equals_expected_without_um)
{
    stochastic_vs_expected(0, 0);
}

/* (BL management alone lets the trains of the larger side clip: it is meant
 * to go with update management, as in aihwkit's defaults.) */
Test(analog_tile, stochastic_mean_equals_expected_with_bl_management)
{
    stochastic_vs_expected(1, 1);
}

/* The kernel (column lists per slot, one pulse per entry; exact bursts for rows
 * firing in many slots) against the naive loop over every cell and slot, one
 * pulse at a time, on the same trains: every response, with and without
 * asymmetry, with plain trains, update management and BL management, at a
 * small rate (few slots per row) and a large one (bursts). */
Test(analog_tile, popcount_kernel_equals_naive_per_pulse_loop)
{
    enum { R = 9, C = 70, N = 4 };
    int resp[] = {OHM_RESP_IDEAL, OHM_RESP_SOFTBOUNDS, OHM_RESP_LINEAR, OHM_RESP_POW, OHM_RESP_EXP};
    double gam[] = {1, 1, 0.5, 2, 2};
    int runs = 0;
    for (int k = 0; k < 5; k++)
        for (int asym = 0; asym < 2; asym++)
            for (int mode = 0; mode < 3; mode++)
                for (int big = 0; big < 2; big++) {
                    ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, resp[k], 1.0);
                    p.update = OHM_UPDATE_STOCHASTIC;
                    p.dev.gamma = k == 3 && asym ? 1.5 : gam[k]; /* pow also off its fast path */
                    p.dev.dw_min = 0.01;
                    p.dev.dw_min_dtod = 0.3;
                    p.dev.tau_dtod = 0.2;
                    if (asym) {
                        p.dev.up_down = 0.1;
                        p.dev.up_down_dtod = 0.1;
                        p.dev.c = 0.2;
                    }
                    p.update_management = mode != 0;
                    p.update_bl_management = mode == 2;
                    ohm_tile_t *a = ohm_analog_tile_new(&p, R, C, 4, 1, 2),
                               *b = ohm_analog_tile_new(&p, R, C, 4, 1, 2);
                    ohm_analog_tile_set_naive(b, 1);
                    ohm_rng_t r;
                    ohm_rng_seed(&r, 4, 0, 77);
                    float w[R * C], x[N * C], d[N * R], wa[R * C], wb[R * C];
                    fill(&r, w, R * C, 0.5);
                    ohm_tile_set_weights(a, w, OHM_WB_EXACT);
                    ohm_tile_set_weights(b, w, OHM_WB_EXACT);
                    float lr = big ? 2.0f : 0.1f;
                    for (int s = 0; s < 10; s++) {
                        fill(&r, x, N * C, 1.0);
                        fill(&r, d, N * R, 1.0);
                        ohm_tile_update(a, x, d, N, lr);
                        ohm_tile_update(b, x, d, N, lr);
                    }
                    ohm_tile_get_weights(a, wa);
                    ohm_tile_get_weights(b, wb);
                    int moved = 0;
                    for (int i = 0; i < R * C; i++) {
                        cr_assert(fabsf(wa[i] - wb[i]) < 2e-6f,
                                  "response %d asym %d mode %d big %d cell %d: %.9g vs %.9g",
                                  resp[k], asym, mode, big, i, wa[i], wb[i]);
                        moved += wa[i] != w[i];
                    }
                    cr_expect(moved > R * C / 2, "only %d cells moved", moved);
                    ohm_analog_counters_t ca = ohm_analog_tile_counters(a),
                                          cb = ohm_analog_tile_counters(b);
                    cr_expect_eq(ca.update_pulses, cb.update_pulses);
                    cr_expect_eq(ca.train_slots, cb.train_slots);
                    cr_expect_eq(ca.line_pulses, cb.line_pulses);
                    ohm_tile_destroy(&a);
                    ohm_tile_destroy(&b);
                    runs++;
                }
    cr_expect_eq(runs, 60);
}

/* Saturated trains (every column in every slot) fill the kernel's column lists
 * before a chunk of 32 examples is complete: the chunk is applied early, and
 * batches longer than a chunk are applied chunk by chunk, as the naive loop. */
Test(analog_tile, kernel_chunks_and_full_lists)
{
    enum { R = 3, C = 200, N = 40 };
    ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, OHM_RESP_POW, 1.0);
    p.update = OHM_UPDATE_STOCHASTIC;
    p.dev.gamma = 2;
    p.dev.dw_min = 0.002;
    ohm_tile_t *a = ohm_analog_tile_new(&p, R, C, 4, 1, 2), *b = ohm_analog_tile_new(&p, R, C, 4, 1, 2);
    ohm_analog_tile_set_naive(b, 1);
    ohm_rng_t r;
    ohm_rng_seed(&r, 14, 0, 77);
    float *x = malloc(sizeof(float) * N * C), d[N * R], wa[R * C], wb[R * C];
    for (int i = 0; i < N * C; i++)
        x[i] = ohm_rng_uniform(&r) < 0.5 ? 1.0f : -1.0f;
    fill(&r, d, N * R, 0.5);
    for (int i = 0; i < N * R; i++)
        d[i] += d[i] < 0 ? -0.5f : 0.5f; /* |d| >= 0.5: every row saturates too */
    ohm_tile_update(a, x, d, N, 50.0f);
    ohm_tile_update(b, x, d, N, 50.0f);
    ohm_tile_get_weights(a, wa);
    ohm_tile_get_weights(b, wb);
    for (int i = 0; i < R * C; i++)
        cr_assert(fabsf(wa[i] - wb[i]) < 2e-6f, "cell %d: %.9g vs %.9g", i, wa[i], wb[i]);
    cr_expect_eq(ohm_analog_tile_counters(a).update_pulses, ohm_analog_tile_counters(b).update_pulses);
    cr_expect_eq(ohm_analog_tile_counters(a).line_pulses, (uint64_t)N * (C + R) * 31);
    free(x);
    ohm_tile_destroy(&a);
    ohm_tile_destroy(&b);
}

/* The counter of applied pulses is the sum of |pulse counts|: on an ideal
 * device with pulses of 1/64 (exact in float) and no clipping, every pulse of
 * a one-signed update moves a cell by exactly one step. Reads count vectors
 * and conversions; transfers and write-back count cells and pulses. */
Test(analog_tile, counters_count_what_was_applied)
{
    enum { R = 5, C = 12, N = 6 };
    for (int naive = 0; naive < 2; naive++) {
        ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, OHM_RESP_IDEAL, 1000.0);
        p.update = OHM_UPDATE_STOCHASTIC;
        p.dev.dw_min = 1.0 / 64;
        p.bl = 32;
        ohm_tile_t *t = ohm_analog_tile_new(&p, R, C, 3, 0, 0);
        ohm_analog_tile_set_naive(t, naive);
        ohm_rng_t r;
        ohm_rng_seed(&r, 8, 0, 77);
        float x[N * C], d[N * R], before[R * C], after[R * C];
        for (int i = 0; i < N * C; i++)
            x[i] = (float)ohm_rng_uniform(&r); /* x, d >= 0: every change is down */
        for (int i = 0; i < N * R; i++)
            d[i] = (float)ohm_rng_uniform(&r);
        ohm_tile_get_weights(t, before);
        uint64_t total = 0;
        for (int s = 0; s < 5; s++) {
            ohm_tile_update(t, x, d, N, 0.05f);
            ohm_tile_get_weights(t, after);
            for (int i = 0; i < R * C; i++) {
                double n = (before[i] - after[i]) * 64.0;
                cr_assert(fabs(n - nearbyint(n)) < 1e-3 && n >= 0, "cell %d moved %g pulses", i, n);
                total += (uint64_t)nearbyint(n);
            }
            memcpy(before, after, sizeof before);
        }
        ohm_analog_counters_t c = ohm_analog_tile_counters(t);
        cr_expect(total > 100, "only %llu pulses", (unsigned long long)total);
        cr_expect_eq(c.update_pulses, total, "naive %d: counted %llu, applied %llu", naive,
                     (unsigned long long)c.update_pulses, (unsigned long long)total);
        cr_expect_eq(c.train_slots, 5 * N * 32);
        cr_expect(c.line_pulses > 0 && c.program_pulses == 0 && c.cells_programmed == 0);
        float y[N * R], z[N * C];
        ohm_tile_forward(t, x, y, N);
        ohm_tile_backward(t, d, z, N);
        ohm_tile_backward(t, d, z, 2);
        c = ohm_analog_tile_counters(t);
        cr_expect_eq(c.forward_mvms, N);
        cr_expect_eq(c.backward_mvms, N + 2);
        cr_expect_eq(c.dac, N * C + (N + 2) * R);
        cr_expect_eq(c.adc, N * R + (N + 2) * C);
        /* Write-back: exact programming counts the cells that change. */
        float w[R * C];
        ohm_tile_get_weights(t, w);
        w[3] += 0.5f;
        w[7] -= 0.25f;
        ohm_tile_set_weights(t, w, OHM_WB_EXACT);
        cr_expect_eq(ohm_analog_tile_counters(t).cells_programmed, 2);
        /* Pulsed: 0.5 and -0.25 are 32 and 16 whole pulses. */
        w[3] -= 0.5f;
        w[7] += 0.25f;
        ohm_tile_set_weights(t, w, OHM_WB_PULSED);
        c = ohm_analog_tile_counters(t);
        cr_expect_eq(c.cells_programmed, 4);
        cr_expect_eq(c.program_pulses, 48);
        ohm_tile_destroy(&t);
    }
    /* Transfers: tiki-taka reads transfer_columns columns per transfer. */
    ohm_analog_params_t p = params(OHM_OPT_TIKI_TAKA, OHM_RESP_SOFTBOUNDS, 1.0);
    p.transfer_columns = 3;
    ohm_tile_t *t = ohm_analog_tile_new(&p, R, C, 3, 0, 0);
    float x[C] = {0}, d[R] = {0};
    x[0] = 1;
    d[0] = 1;
    ohm_tile_update(t, x, d, 1, 0.1f);
    ohm_tile_update(t, x, d, 1, 0.1f);
    ohm_analog_counters_t c = ohm_analog_tile_counters(t);
    cr_expect_eq(c.transfer_mvms, 6);
    cr_expect_eq(c.dac, 6 * C);
    cr_expect_eq(c.adc, 6 * R);
    cr_expect_eq(c.cells_programmed, 1); /* only A[0][0] moved, transferred once (column 0) */
    ohm_tile_destroy(&t);
}

/* Update management past BL (k = lr max|x| max|d| / dw_min > BL): aihwkit's
 * rule rescales only the error side, so the inputs keep their resolution
 * (p = |x| / max|x|) and the error trains saturate. A cell at half the
 * largest input then gets half the pulses of the largest. */
Test(analog_tile, update_management_over_bl_rescales_the_error_side)
{
    enum { T = 400 };
    ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, OHM_RESP_IDEAL, 1000.0);
    p.update = OHM_UPDATE_STOCHASTIC;
    p.dev.dw_min = 0.01;
    p.bl = 31;
    ohm_tile_t *t = ohm_analog_tile_new(&p, 1, 2, 3, 0, 0);
    float x[2] = {1.0f, 0.5f}, d[1] = {1.0f}, w0[2] = {0, 0}, w[2];
    double s0 = 0, s1 = 0;
    for (int k = 0; k < T; k++) {
        ohm_tile_set_weights(t, w0, OHM_WB_EXACT);
        ohm_tile_update(t, x, d, 1, 4 * 31 * 0.01f); /* k = 4 BL */
        ohm_tile_get_weights(t, w);
        s0 += -w[0] / 0.01;
        s1 += -w[1] / 0.01;
    }
    s0 /= T;
    s1 /= T;
    cr_expect(fabs(s0 - 31) < 1e-4, "largest product: %g pulses (every slot)", s0);
    /* half the slots on average: se sqrt(31/4 / T) */
    cr_expect(fabs(s1 - 15.5) < 5 * sqrt(31 * 0.25 / T), "half input: %g pulses", s1);
    ohm_tile_destroy(&t);
}

/* Reads of more vectors than one pass of the periphery scratch give what the
 * vectors give read one by one. */
Test(analog_tile, long_reads_equal_reads_one_by_one)
{
    enum { R = 7, C = 9, N = 150 };
    ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, OHM_RESP_IDEAL, 1.0);
    p.in_bits = 6;
    p.out_bits = 8;
    p.out_bound = 4;
    ohm_tile_t *t = ohm_analog_tile_new(&p, R, C, 7, 0, 0);
    ohm_rng_t r;
    ohm_rng_seed(&r, 12, 0, 77);
    float w[R * C], *x = malloc(sizeof(float) * N * C), *y = malloc(sizeof(float) * N * R), one[C];
    float *z = malloc(sizeof(float) * N * C);
    fill(&r, w, R * C, 0.8);
    fill(&r, x, (size_t)N * C, 1.0);
    ohm_tile_set_weights(t, w, OHM_WB_EXACT);
    ohm_tile_forward(t, x, y, N);
    for (int e = 0; e < N; e++) {
        float ye[R];
        ohm_tile_forward(t, x + (size_t)e * C, ye, 1);
        cr_assert(memcmp(ye, y + (size_t)e * R, sizeof ye) == 0, "vector %d", e);
    }
    ohm_tile_backward(t, y, z, N);
    for (int e = 0; e < N; e++) {
        ohm_tile_backward(t, y + (size_t)e * R, one, 1);
        cr_assert(memcmp(one, z + (size_t)e * C, sizeof one) == 0, "backward vector %d", e);
    }
    free(x);
    free(y);
    free(z);
    ohm_tile_destroy(&t);
}

/* Granular rounding of a pow device: a whole request of 20 pulses is 20 exact
 * pulses, not one Euler step of 20 dw_min. */
Test(analog_tile, granular_pulses_are_exact_bursts)
{
    ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, OHM_RESP_POW, 1.0);
    p.dev.gamma = 2;
    p.dev.dw_min = 0.01;
    p.granular = 1;
    ohm_tile_t *t = ohm_analog_tile_new(&p, 1, 2, 6, 0, 0);
    float w0[2] = {-0.5f, 0.4f}, x[2] = {-0.2f, 0.2f}, d[1] = {1.0f}, w[2];
    ohm_tile_set_weights(t, w0, OHM_WB_EXACT);
    ohm_tile_update(t, x, d, 1, 1.0f); /* requests +0.2 and -0.2: 20 pulses each */
    ohm_tile_get_weights(t, w);
    ohm_device_t dev = ohm_device_nominal(&p.dev);
    for (int j = 0; j < 2; j++) {
        double want = ohm_device_pulses(&p.dev, &dev, w0[j], j == 0 ? 20 : -20);
        double euler = ohm_device_step(&p.dev, &dev, w0[j], j == 0 ? 0.2 : -0.2);
        cr_expect(fabs(w[j] - want) < 1e-6, "cell %d: %g vs %g", j, w[j], want);
        cr_expect(fabs(w[j] - euler) > 0.01, "cell %d is an Euler step", j);
    }
    cr_expect_eq(ohm_analog_tile_counters(t).update_pulses, 40);
    ohm_tile_destroy(&t);
}

Test(analog_tile, stochastic_pulses_are_whole_and_bounded)
{
    enum { R = 6, C = 8, N = 8 };
    ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, OHM_RESP_IDEAL, 0.25);
    p.update = OHM_UPDATE_STOCHASTIC;
    p.dev.dw_min = 1.0 / 64; /* exact in float, bound on the grid: states stay on it */
    p.bl = 32;
    ohm_tile_t *t = ohm_analog_tile_new(&p, R, C, 5, 0, 0);
    ohm_rng_t r;
    ohm_rng_seed(&r, 5, 0, 77);
    float x[N * C], d[N * R], w[R * C];
    for (int s = 0; s < 300; s++) {
        fill(&r, x, N * C, 1.0);
        fill(&r, d, N * R, 1.0);
        for (int i = 0; i < N * R; i++)
            d[i] += 0.3f; /* a drift that pushes every device into its bound */
        ohm_tile_update(t, x, d, N, 0.5f);
        ohm_tile_get_weights(t, w);
        for (int i = 0; i < R * C; i++) {
            cr_assert(fabsf(w[i]) <= 0.25f);
            cr_assert(fabsf(w[i] * 64 - nearbyintf(w[i] * 64)) < 1e-4f,
                      "state %g is not a whole number of pulses", w[i]);
        }
    }
    ohm_tile_destroy(&t);
}

Test(analog_tile, granular_rounding)
{
    enum { C = 40, T = 2000 };
    ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, OHM_RESP_IDEAL, 10.0);
    p.granular = 1;
    p.dev.dw_min = 0.01;
    ohm_tile_t *t = ohm_analog_tile_new(&p, 1, C, 6, 0, 0);
    float x[C], d[1] = {1.0f}, w0[C] = {0}, w[C];
    /* requests of 2.3 and 0.4 pulses: lr = 1, -x d = dw */
    for (int j = 0; j < C; j++)
        x[j] = j < C / 2 ? -0.023f : 0.004f;
    double mean_hi = 0, mean_lo = 0;
    for (int k = 0; k < T; k++) {
        ohm_tile_set_weights(t, w0, OHM_WB_EXACT);
        ohm_tile_update(t, x, d, 1, 1.0f);
        ohm_tile_get_weights(t, w);
        for (int j = 0; j < C; j++) {
            double n = w[j] / 0.01;
            cr_assert(fabs(n - nearbyint(n)) < 1e-4, "not whole pulses: %g", n);
            if (j < C / 2) {
                cr_assert(nearbyint(n) == 2 || nearbyint(n) == 3, "2.3 pulses gave %g", n);
                mean_hi += n / (T * (C / 2));
            } else {
                cr_assert(nearbyint(n) == 0 || nearbyint(n) == -1, "-0.4 pulses gave %g", n);
                mean_lo += n / (T * (C / 2));
            }
        }
    }
    /* Stochastic rounding is unbiased: mean count = request; se = sqrt(f(1-f)/M). */
    cr_expect(fabs(mean_hi - 2.3) < 5 * sqrt(0.21 / (T * C / 2)), "mean %g", mean_hi);
    cr_expect(fabs(mean_lo + 0.4) < 5 * sqrt(0.24 / (T * C / 2)), "mean %g", mean_lo);
    ohm_tile_destroy(&t);
}

Test(analog_tile, read_periphery_quantisation_levels)
{
    ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, OHM_RESP_IDEAL, 1.0);
    p.in_bits = 3; /* 3 levels a side: x / max in {0, 1/3, 2/3, 1} */
    ohm_tile_t *t = ohm_analog_tile_new(&p, 4, 4, 7, 0, 0);
    float eye[16] = {0};
    for (int i = 0; i < 4; i++)
        eye[i * 5] = 1;
    ohm_tile_set_weights(t, eye, OHM_WB_EXACT);
    float x[4] = {2.0f, 1.0f, 0.4f, -1.4f}, y[4];
    ohm_tile_forward(t, x, y, 1);
    /* scaled by max 2: 1, 0.5, 0.2, -0.7 -> round(3u)/3: 1, 2/3 (half to even), 1/3, -2/3 */
    float want[4] = {2.0f, 4.0f / 3, 2.0f / 3, -4.0f / 3};
    for (int i = 0; i < 4; i++)
        cr_expect(fabsf(y[i] - want[i]) < 1e-6f, "y[%d] = %g, expected %g", i, y[i], want[i]);
    ohm_tile_backward(t, x, y, 1); /* same periphery on the backward read */
    for (int i = 0; i < 4; i++)
        cr_expect(fabsf(y[i] - want[i]) < 1e-6f);
    ohm_tile_destroy(&t);

    /* ADC: 4 bits over +-2 -> 7 levels a side, step 2/7; bound 2 saturates. */
    p.in_bits = 0;
    p.out_bits = 4;
    p.out_bound = 2.0;
    t = ohm_analog_tile_new(&p, 4, 4, 7, 0, 0);
    float w[16] = {0.9f, 0.1f, 0, 0, 0.5f, 0.5f, 0.5f, 0.5f, -0.3f, 0, 0, 0, 0.05f, 0, 0, 0};
    ohm_tile_set_weights(t, w, OHM_WB_EXACT);
    float x2[4] = {1, 1, 1, 1};
    ohm_tile_forward(t, x2, y, 1);
    float want2[4] = {2.0f / 7 * 4, 2.0f, -2.0f / 7 * 1, 0.0f}; /* 1.0, 2 (sat), -0.3, 0.05 */
    for (int i = 0; i < 4; i++)
        cr_expect(fabsf(y[i] - want2[i]) < 1e-6f, "y[%d] = %g, expected %g", i, y[i], want2[i]);
    /* Scaling: the same read of 0.5 x gives half (noise management rescales). */
    float x3[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    ohm_tile_forward(t, x3, y, 1);
    for (int i = 0; i < 4; i++)
        cr_expect(fabsf(y[i] - 0.5f * want2[i]) < 1e-6f);
    ohm_tile_destroy(&t);
}

Test(analog_tile, read_noise_std)
{
    enum { N = 20000 };
    ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, OHM_RESP_IDEAL, 1.0);
    p.out_noise = 0.06;
    ohm_tile_t *t = ohm_analog_tile_new(&p, 2, 3, 8, 0, 0);
    float w[6] = {0.2f, -0.1f, 0.4f, 0.3f, 0.3f, 0.3f};
    ohm_tile_set_weights(t, w, OHM_WB_EXACT);
    float *x = malloc(sizeof(float) * 3 * N), *y = malloc(sizeof(float) * 2 * N);
    for (int e = 0; e < N; e++) {
        x[e * 3] = 0.5f; /* max |x| = 0.5: noise std in output units 0.06 * 0.5 */
        x[e * 3 + 1] = -0.25f;
        x[e * 3 + 2] = 0.1f;
    }
    ohm_tile_forward(t, x, y, N);
    double exact[2] = {0.2 * 0.5 + 0.1 * 0.25 + 0.4 * 0.1, 0.3 * 0.35};
    for (int i = 0; i < 2; i++) {
        double s = 0, s2 = 0;
        for (int e = 0; e < N; e++) {
            double v = y[e * 2 + i] - exact[i];
            s += v;
            s2 += v * v;
        }
        double mean = s / N, std = sqrt(s2 / N - mean * mean), sd = 0.03;
        cr_expect(fabs(mean) < 5 * sd / sqrt(N), "noise mean %g", mean);
        cr_expect(fabs(std - sd) < 5 * sd / sqrt(2.0 * N), "noise std %g, expected %g", std, sd);
    }
    free(x);
    free(y);
    ohm_tile_destroy(&t);
}

Test(analog_tile, write_back_exact_and_pulsed)
{
    enum { R = 3, C = 5 };
    ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, OHM_RESP_SOFTBOUNDS, 1.0);
    ohm_tile_t *t = ohm_analog_tile_new(&p, R, C, 9, 0, 0);
    ohm_rng_t r;
    ohm_rng_seed(&r, 9, 0, 77);
    float w0[R * C], target[R * C], got[R * C];
    fill(&r, w0, R * C, 0.5);
    fill(&r, target, R * C, 0.5);
    target[0] = 3.0f; /* outside the bound: exact programming clips */
    ohm_tile_set_weights(t, w0, OHM_WB_EXACT);
    ohm_tile_set_weights(t, target, OHM_WB_PULSED);
    ohm_tile_get_weights(t, got);
    ohm_device_t dev = ohm_device_nominal(&p.dev);
    for (int i = 0; i < R * C; i++) {
        /* pulsed: the difference goes through the response, U_q(w0, target - w0) */
        double want = ohm_device_step(&p.dev, &dev, w0[i], (double)target[i] - w0[i]);
        cr_expect(fabs(got[i] - want) < 1e-6, "cell %d: %g vs %g", i, got[i], want);
    }
    cr_expect(got[0] <= 1.0f);
    ohm_tile_set_weights(t, target, OHM_WB_EXACT);
    ohm_tile_get_weights(t, got);
    cr_expect_eq(got[0], 1.0f);
    for (int i = 1; i < R * C; i++)
        cr_expect_eq(got[i], target[i]);
    ohm_tile_destroy(&t);
}

static void run_some(ohm_tile_t *t, ohm_rng_t *r, int steps, int rows, int cols)
{
    float x[3 * 64], d[3 * 64], y[3 * 64];
    for (int s = 0; s < steps; s++) {
        fill(r, x, (size_t)3 * cols, 1.0);
        ohm_tile_forward(t, x, y, 3);
        fill(r, d, (size_t)3 * rows, 0.3);
        ohm_tile_backward(t, d, x, 3);
        fill(r, x, (size_t)3 * cols, 1.0);
        ohm_tile_update(t, x, d, 3, 0.05f);
    }
}

Test(analog_tile, checkpoint_round_trip_is_bitwise)
{
    int opts[] = {OHM_OPT_ANALOG_SGD, OHM_OPT_TIKI_TAKA, OHM_OPT_RESIDUAL};
    for (int k = 0; k < 3; k++) {
        ohm_analog_params_t p = params(opts[k], OHM_RESP_SOFTBOUNDS, 1.0);
        p.update = k == 1 ? OHM_UPDATE_EXPECTED : OHM_UPDATE_STOCHASTIC;
        p.granular = 1;
        p.dev.c = 0.2;
        p.dev.dw_min = 0.01;
        p.dev.dw_min_dtod = 0.3;
        p.dev.dw_min_std = 0.3;
        p.dev.tau_dtod = 0.2;
        p.dev.up_down_dtod = 0.05;
        p.out_noise = 0.02;
        p.in_bits = 7;
        p.out_bits = 9;
        p.out_bound = 12;
        p.transfer_every = 2;
        p.transfer_columns = 2;
        p.buffered = 1;
        p.gamma = 0.3;
        ohm_tile_t *a = ohm_analog_tile_new(&p, 6, 7, 1, 0, 0);
        ohm_tile_t *b = ohm_analog_tile_new(&p, 6, 7, 99, 5, 3); /* other devices and streams */
        ohm_rng_t r;
        ohm_rng_seed(&r, 10, 0, 77);
        run_some(a, &r, 7, 6, 7);
        size_t n = ohm_tile_state_size(a);
        cr_assert_eq(n, ohm_tile_state_size(b));
        void *sa = malloc(n), *sb = malloc(n);
        ohm_tile_state_save(a, sa);
        cr_assert_eq(ohm_tile_state_load(b, sa, n), OHM_OK, "%s", ohm_error_detail());
        ohm_rng_t r1 = r, r2 = r;
        run_some(a, &r1, 9, 6, 7);
        run_some(b, &r2, 9, 6, 7);
        ohm_tile_state_save(a, sa);
        ohm_tile_state_save(b, sb);
        cr_expect(memcmp(sa, sb, n) == 0, "%s: states diverge after restore", ohm_tile_kind(a));
        float wa[42], wb[42];
        ohm_tile_get_weights(a, wa);
        ohm_tile_get_weights(b, wb);
        cr_expect(memcmp(wa, wb, sizeof wa) == 0);
        free(sa);
        free(sb);
        ohm_tile_destroy(&a);
        ohm_tile_destroy(&b);
    }
}

Test(analog_tile, checkpoint_load_rejects_mismatch)
{
    ohm_analog_params_t p = params(OHM_OPT_TIKI_TAKA, OHM_RESP_SOFTBOUNDS, 1.0);
    ohm_tile_t *a = ohm_analog_tile_new(&p, 4, 5, 1, 0, 0);
    ohm_tile_t *other_shape = ohm_analog_tile_new(&p, 5, 4, 1, 0, 0);
    p.opt = OHM_OPT_RESIDUAL;
    ohm_tile_t *other_kind = ohm_analog_tile_new(&p, 4, 5, 1, 0, 0);
    ohm_rng_t r;
    ohm_rng_seed(&r, 11, 0, 77);
    run_some(a, &r, 3, 4, 5);
    size_t n = ohm_tile_state_size(a);
    unsigned char *s = malloc(n);
    ohm_tile_state_save(a, s);
    cr_expect_eq(ohm_tile_state_load(other_shape, s, n), OHM_ESHAPE);
    cr_expect_eq(ohm_tile_state_load(other_kind, s, n), OHM_EFORMAT);
    cr_expect_eq(ohm_tile_state_load(a, s, 10), OHM_ETRUNC);
    cr_expect_eq(ohm_tile_state_load(a, s, n - 4), OHM_ESHAPE);
    /* Unchanged after a failed load: corrupt a state beyond its bound. */
    float before[20], after[20];
    ohm_tile_get_weights(a, before);
    unsigned char *bad = malloc(n);
    memcpy(bad, s, n);
    bad[0] ^= 0xff;
    cr_expect_eq(ohm_tile_state_load(a, bad, n), OHM_EFORMAT);
    /* Layout: header, then per array states, devices (and refs for the fast
     * array); the main array's first state follows the header. */
    size_t arrays = 2 * 20 * (sizeof(float) + sizeof(ohm_device_t)) + 20 * sizeof(float);
    memcpy(bad, s, n);
    float big = 5.0f; /* beyond the bound tau = 1 */
    memcpy(bad + (n - arrays), &big, sizeof big);
    cr_expect_eq(ohm_tile_state_load(a, bad, n), OHM_EFORMAT);
    ohm_tile_get_weights(a, after);
    cr_expect(memcmp(before, after, sizeof before) == 0);
    cr_expect_eq(ohm_tile_state_load(a, s, n), OHM_OK);
    free(bad);
    free(s);
    ohm_tile_destroy(&a);
    ohm_tile_destroy(&other_shape);
    ohm_tile_destroy(&other_kind);
}

Test(analog_tile, devices_depend_on_seed_peer_and_layer)
{
    ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, OHM_RESP_SOFTBOUNDS, 1.0);
    p.dev.dw_min_dtod = 0.3;
    ohm_tile_t *t[5] = {
        ohm_analog_tile_new(&p, 3, 3, 1, 0, 0), ohm_analog_tile_new(&p, 3, 3, 1, 0, 0),
        ohm_analog_tile_new(&p, 3, 3, 2, 0, 0), ohm_analog_tile_new(&p, 3, 3, 1, 1, 0),
        ohm_analog_tile_new(&p, 3, 3, 1, 0, 1)};
    size_t sz = 9 * sizeof(ohm_device_t);
    const ohm_device_t *d0 = ohm_analog_tile_devices(t[0], OHM_ARRAY_MAIN);
    cr_expect(memcmp(d0, ohm_analog_tile_devices(t[1], OHM_ARRAY_MAIN), sz) == 0);
    for (int k = 2; k < 5; k++)
        cr_expect(memcmp(d0, ohm_analog_tile_devices(t[k], OHM_ARRAY_MAIN), sz) != 0, "tile %d", k);
    cr_expect_null(ohm_analog_tile_devices(t[0], OHM_ARRAY_FAST));
    for (int k = 0; k < 5; k++)
        ohm_tile_destroy(&t[k]);
}

/* Analog weights are device states: decay is refused, and nothing changes. */
Test(analog_tile, decay_is_unsupported)
{
    enum { R = 3, C = 4 };
    ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, OHM_RESP_IDEAL, 100.0);
    ohm_tile_t *a = ohm_analog_tile_new(&p, R, C, 1, 0, 0), *d = ohm_tile_digital_new(R, C);
    cr_assert(a && d);
    float w[R * C], w2[R * C];
    for (int i = 0; i < R * C; i++)
        w[i] = 0.01f * (float)(i - 5);
    ohm_tile_set_weights(a, w, OHM_WB_EXACT);
    ohm_tile_get_weights(a, w);
    cr_expect_eq(ohm_tile_decay(a, 0.5f), OHM_EUNSUPPORTED);
    ohm_tile_get_weights(a, w2);
    cr_expect_arr_eq(w, w2, sizeof w);
    cr_expect_eq(ohm_tile_decay(d, 0.5f), OHM_OK);
    ohm_tile_destroy(&a);
    ohm_tile_destroy(&d);
}
