/* Analog optimizers: Tiki-Taka transfers, Residual Learning (plain and buffered),
 * zero-shifted fast arrays, write-back into the main array. */
#include "ohm_analog.h"
#include "ohm_analog_tile.h"
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

Test(analog_opt, tiki_taka_transfer_schedule_and_rate)
{
    enum { R = 3, C = 5 };
    ohm_analog_params_t p = params(OHM_OPT_TIKI_TAKA, OHM_RESP_IDEAL, 10.0);
    p.transfer_every = 3;
    p.transfer_columns = 2;
    p.beta = 0.5;
    p.gamma = 0.25;
    ohm_tile_t *t = ohm_analog_tile_new(&p, R, C, 1, 0, 0);
    cr_expect_str_eq(ohm_tile_kind(t), "tiki-taka");
    ohm_rng_t r;
    ohm_rng_seed(&r, 1, 0, 77);
    float x[C], d[R], c0[R * C], c1[R * C], a1[R * C], eff[R * C];
    int next = 0;
    for (int step = 1; step <= 12; step++) {
        ohm_analog_tile_read_array(t, OHM_ARRAY_MAIN, c0);
        fill(&r, x, C, 1.0);
        fill(&r, d, R, 1.0);
        ohm_tile_update(t, x, d, 1, 0.1f);
        ohm_analog_tile_read_array(t, OHM_ARRAY_MAIN, c1);
        ohm_analog_tile_read_array(t, OHM_ARRAY_FAST, a1);
        int moved[C] = {0};
        if (step % 3 == 0) {
            for (int k = 0; k < 2; k++) {
                moved[next] = 1;
                next = (next + 1) % C;
            }
        }
        for (int i = 0; i < R; i++)
            for (int j = 0; j < C; j++) {
                int c = i * C + j;
                /* C <- C + beta A[:, j] for the transferred columns, else unchanged */
                double want = moved[j] ? c0[c] + 0.5 * a1[c] : c0[c];
                cr_expect(fabs(c1[c] - want) < 1e-6, "step %d cell %d,%d: %g vs %g", step, i, j,
                          c1[c], want);
            }
        ohm_tile_get_weights(t, eff);
        for (int c = 0; c < R * C; c++)
            cr_expect(fabsf(eff[c] - (c1[c] + 0.25f * a1[c])) < 1e-6f, "effective C + gamma A");
    }
    cr_expect_eq(ohm_analog_tile_updates(t), 12);
    ohm_tile_destroy(&t);
}

Test(analog_opt, tiki_taka_transfer_reads_through_periphery)
{
    enum { R = 4, C = 3 };
    /* A 2-bit ADC over +-1 has levels -1, 0, 1: a column of A below 0.5 reads as 0
     * and so transfers nothing. */
    ohm_analog_params_t p = params(OHM_OPT_TIKI_TAKA, OHM_RESP_IDEAL, 10.0);
    p.out_bits = 2;
    p.out_bound = 1.0;
    p.transfer_columns = C;
    p.beta = 1.0;
    ohm_tile_t *t = ohm_analog_tile_new(&p, R, C, 1, 0, 0);
    float x[C] = {1, 1, 1}, d[R] = {-0.1f, 0.2f, -0.3f, -0.7f}, cc[R * C], a[R * C];
    ohm_tile_update(t, x, d, 1, 1.0f); /* A = -d x^T: 0.1, -0.2, 0.3, 0.7 per row */
    ohm_analog_tile_read_array(t, OHM_ARRAY_MAIN, cc);
    ohm_analog_tile_read_array(t, OHM_ARRAY_FAST, a);
    for (int j = 0; j < C; j++) {
        cr_expect(fabsf(a[3 * C + j] - 0.7f) < 1e-6f);
        cr_expect_eq(cc[0 * C + j], 0.0f);
        cr_expect_eq(cc[1 * C + j], 0.0f);
        cr_expect_eq(cc[2 * C + j], 0.0f);
        cr_expect(fabsf(cc[3 * C + j] - 1.0f) < 1e-6f, "0.7 reads as level 1: %g", cc[3 * C + j]);
    }
    ohm_tile_destroy(&t);
}

Test(analog_opt, residual_step_arithmetic)
{
    enum { R = 2, C = 3 };
    ohm_analog_params_t p = params(OHM_OPT_RESIDUAL, OHM_RESP_IDEAL, 10.0);
    p.beta = 0.2;
    p.gamma = 0.5;
    ohm_tile_t *t = ohm_analog_tile_new(&p, R, C, 1, 0, 0);
    cr_expect_str_eq(ohm_tile_kind(t), "residual");
    ohm_rng_t r;
    ohm_rng_seed(&r, 2, 0, 77);
    float w0[R * C], x[C], d[R], w1[R * C], p1[R * C], eff[R * C];
    fill(&r, w0, R * C, 1.0);
    ohm_tile_set_weights(t, w0, OHM_WB_EXACT); /* P = 0: W = w0 */
    double P[R * C] = {0}, W[R * C];
    for (int i = 0; i < R * C; i++)
        W[i] = w0[i];
    for (int step = 0; step < 5; step++) {
        fill(&r, x, C, 1.0);
        fill(&r, d, R, 1.0);
        ohm_tile_update(t, x, d, 1, 0.1f);
        /* P <- P - alpha d x^T; W <- W + beta P */
        for (int i = 0; i < R; i++)
            for (int j = 0; j < C; j++) {
                P[i * C + j] -= 0.1 * (double)d[i] * x[j];
                W[i * C + j] += 0.2 * P[i * C + j];
            }
        ohm_analog_tile_read_array(t, OHM_ARRAY_MAIN, w1);
        ohm_analog_tile_read_array(t, OHM_ARRAY_FAST, p1);
        ohm_tile_get_weights(t, eff);
        for (int c = 0; c < R * C; c++) {
            cr_expect(fabs(p1[c] - P[c]) < 1e-5, "P[%d] %g vs %g", c, p1[c], P[c]);
            cr_expect(fabs(w1[c] - W[c]) < 1e-5, "W[%d] %g vs %g", c, w1[c], W[c]);
            cr_expect(fabs(eff[c] - (W[c] + 0.5 * P[c])) < 1e-5, "effective W + gamma P");
        }
    }
    ohm_tile_destroy(&t);
}

/* docs/design.md, section "Analog tiles": with gamma = 0 residual learning equals
 * Tiki-Taka transferring every column after every update, on the same devices. */
Test(analog_opt, residual_with_all_columns_every_step_is_tiki_taka)
{
    enum { R = 5, C = 6, N = 3 };
    double gammas[] = {0.0, 0.4};
    for (int g = 0; g < 2; g++) {
        ohm_analog_params_t p = params(OHM_OPT_RESIDUAL, OHM_RESP_SOFTBOUNDS, 1.0);
        p.dev.c = 0.2;
        p.dev.dw_min_dtod = 0.3;
        p.dev.up_down_dtod = 0.05;
        p.beta = 0.3;
        p.gamma = gammas[g];
        ohm_analog_params_t q = p;
        q.opt = OHM_OPT_TIKI_TAKA;
        q.transfer_every = 1;
        q.transfer_columns = C;
        ohm_tile_t *a = ohm_analog_tile_new(&p, R, C, 3, 1, 0),
                   *b = ohm_analog_tile_new(&q, R, C, 3, 1, 0);
        ohm_rng_t r;
        ohm_rng_seed(&r, 3, 0, 77);
        float x[N * C], d[N * R], wa[R * C], wb[R * C];
        for (int s = 0; s < 40; s++) {
            fill(&r, x, N * C, 1.0);
            fill(&r, d, N * R, 0.5);
            ohm_tile_update(a, x, d, N, 0.2f);
            ohm_tile_update(b, x, d, N, 0.2f);
            ohm_tile_get_weights(a, wa);
            ohm_tile_get_weights(b, wb);
            for (int c = 0; c < R * C; c++)
                cr_assert(fabsf(wa[c] - wb[c]) < 1e-6f, "gamma %g step %d: %g vs %g", p.gamma, s,
                          wa[c], wb[c]);
        }
        ohm_tile_destroy(&a);
        ohm_tile_destroy(&b);
    }
}

Test(analog_opt, residual_buffered_fires_whole_pulses)
{
    enum { C = 4 };
    ohm_analog_params_t p = params(OHM_OPT_RESIDUAL, OHM_RESP_IDEAL, 10.0);
    p.buffered = 1;
    p.beta = 0.3;
    p.gamma = 0.0;
    p.dev.dw_min = 0.01;
    ohm_tile_t *t = ohm_analog_tile_new(&p, 1, C, 4, 0, 0);
    float x[C] = {1.0f, -0.5f, 0.02f, 0.0f}, d[1], w[C], h[C], pv[C];
    double P[C] = {0}, H[C] = {0}, W[C] = {0};
    int fired = 0;
    for (int s = 0; s < 60; s++) {
        d[0] = s < 30 ? 0.01f : -0.02f;
        ohm_tile_update(t, x, d, 1, 1.0f);
        for (int j = 0; j < C; j++) {
            P[j] -= (double)d[0] * x[j];
            H[j] = 0.7 * H[j] + 0.3 * P[j];
            double n = trunc(H[j] / 0.01);
            W[j] += n * 0.01;
            H[j] -= n * 0.01;
            fired += n != 0;
        }
        ohm_analog_tile_read_array(t, OHM_ARRAY_MAIN, w);
        ohm_analog_tile_read_array(t, OHM_ARRAY_BUFFER, h);
        ohm_analog_tile_read_array(t, OHM_ARRAY_FAST, pv);
        for (int j = 0; j < C; j++) {
            cr_assert(fabs(pv[j] - P[j]) < 1e-5, "P[%d] step %d", j, s);
            cr_assert(fabs(w[j] - W[j]) < 1e-5, "W[%d] step %d: %g vs %g", j, s, w[j], W[j]);
            cr_assert(fabs(h[j] - H[j]) < 1e-5, "H[%d] step %d", j, s);
            cr_assert(fabsf(h[j]) < 0.01f, "the buffer keeps less than one pulse");
            double n = w[j] / 0.01; /* W only moves by whole pulses */
            cr_assert(fabs(n - nearbyint(n)) < 1e-3);
        }
    }
    cr_expect(fired > 20);
    ohm_tile_destroy(&t);
}

Test(analog_opt, fast_arrays_are_zero_shifted)
{
    int opts[] = {OHM_OPT_TIKI_TAKA, OHM_OPT_RESIDUAL};
    for (int k = 0; k < 2; k++) {
        ohm_analog_params_t p = params(opts[k], OHM_RESP_SOFTBOUNDS, 2.0);
        p.dev.c = 0.3;
        p.dev.up_down_dtod = 0.1;
        ohm_tile_t *t = ohm_analog_tile_new(&p, 3, 4, 5, 0, 0);
        float v[12];
        cr_assert_eq(ohm_analog_tile_read_array(t, OHM_ARRAY_FAST, v), OHM_OK);
        const float *s = ohm_analog_tile_states(t, OHM_ARRAY_FAST);
        const float *ref = ohm_analog_tile_refs(t, OHM_ARRAY_FAST);
        const ohm_device_t *dev = ohm_analog_tile_devices(t, OHM_ARRAY_FAST);
        cr_assert(s && ref && dev);
        cr_expect_null(ohm_analog_tile_refs(t, OHM_ARRAY_MAIN));
        for (int i = 0; i < 12; i++) {
            cr_expect_eq(v[i], 0.0f);
            /* stored 0 is the symmetric point: G = 0 there, not at state 0 */
            cr_expect(fabs(ohm_device_G(&p.dev, &dev[i], s[i])) < 1e-6);
            cr_expect(fabs(ohm_device_G(&p.dev, &dev[i], 0.0)) > 0.05);
        }
        ohm_tile_destroy(&t);
    }
    /* analog-sgd has neither a fast array nor a buffer */
    ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, OHM_RESP_SOFTBOUNDS, 2.0);
    ohm_tile_t *t = ohm_analog_tile_new(&p, 2, 2, 5, 0, 0);
    float v[4];
    cr_expect_eq(ohm_analog_tile_read_array(t, OHM_ARRAY_FAST, v), OHM_ENOTFOUND);
    cr_expect_eq(ohm_analog_tile_read_array(t, OHM_ARRAY_BUFFER, v), OHM_ENOTFOUND);
    ohm_tile_destroy(&t);
}

Test(analog_opt, write_back_targets_main_array_only)
{
    enum { R = 3, C = 4, RC = R * C };
    int opts[] = {OHM_OPT_TIKI_TAKA, OHM_OPT_RESIDUAL};
    for (int k = 0; k < 2; k++) {
        ohm_analog_params_t p = params(opts[k], OHM_RESP_SOFTBOUNDS, 2.0);
        p.gamma = 0.4;
        p.buffered = 1;
        ohm_tile_t *t = ohm_analog_tile_new(&p, R, C, 6, 0, 0);
        ohm_rng_t r;
        ohm_rng_seed(&r, 6, 0, 77);
        float x[C], d[R], target[RC], eff[RC], fast0[RC], fast1[RC], h0[RC], h1[RC], m0[RC], m1[RC];
        for (int s = 0; s < 5; s++) {
            fill(&r, x, C, 1.0);
            fill(&r, d, R, 1.0);
            ohm_tile_update(t, x, d, 1, 0.3f);
        }
        fill(&r, target, RC, 1.0);
        ohm_analog_tile_read_array(t, OHM_ARRAY_FAST, fast0);
        int has_h = ohm_analog_tile_read_array(t, OHM_ARRAY_BUFFER, h0) == OHM_OK;
        ohm_tile_set_weights(t, target, OHM_WB_EXACT);
        ohm_tile_get_weights(t, eff);
        ohm_analog_tile_read_array(t, OHM_ARRAY_FAST, fast1);
        cr_expect(memcmp(fast0, fast1, sizeof fast0) == 0, "fast array untouched");
        if (has_h) {
            ohm_analog_tile_read_array(t, OHM_ARRAY_BUFFER, h1);
            cr_expect(memcmp(h0, h1, sizeof h0) == 0, "buffer untouched");
        }
        for (int c = 0; c < RC; c++)
            cr_expect(fabsf(eff[c] - target[c]) < 1e-6f, "exact: effective = target");
        /* pulsed: main moves by U_q(main, target - effective) */
        float target2[RC];
        fill(&r, target2, RC, 1.0);
        ohm_analog_tile_read_array(t, OHM_ARRAY_MAIN, m0);
        ohm_tile_set_weights(t, target2, OHM_WB_PULSED);
        ohm_analog_tile_read_array(t, OHM_ARRAY_MAIN, m1);
        const ohm_device_t *dev = ohm_analog_tile_devices(t, OHM_ARRAY_MAIN);
        for (int c = 0; c < RC; c++) {
            double want = ohm_device_step(&p.dev, &dev[c], m0[c], (double)target2[c] - eff[c]);
            cr_expect(fabs(m1[c] - want) < 1e-5, "pulsed cell %d: %g vs %g", c, m1[c], want);
        }
        ohm_tile_destroy(&t);
    }
}

Test(analog_opt, analog_sgd_drifts_to_symmetric_point_under_zero_mean_gradient)
{
    /* The |dW| G(W) term: with a gradient of zero mean, a softbounds device
     * still moves towards its symmetric point c tau -- the implicit penalty. */
    ohm_analog_params_t p = params(OHM_OPT_ANALOG_SGD, OHM_RESP_SOFTBOUNDS, 1.0);
    p.dev.c = 0.4;
    ohm_tile_t *t = ohm_analog_tile_new(&p, 1, 1, 7, 0, 0);
    float w = -0.5f, x = 1.0f, d;
    ohm_tile_set_weights(t, &w, OHM_WB_EXACT);
    for (int s = 0; s < 20000; s++) {
        d = (s & 1) ? 1.0f : -1.0f;
        ohm_tile_update(t, &x, &d, 1, 0.01f);
    }
    ohm_tile_get_weights(t, &w);
    cr_expect(fabsf(w - 0.4f) < 0.02f, "ended at %g, symmetric point 0.4", w);
    ohm_tile_destroy(&t);
}
