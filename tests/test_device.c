/* Response functions, per-device spread and pulse arithmetic of ohm_device. */
#include "ohm_device.h"
#include "ohm_error.h"
#include "ohm_rng.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ohm_device_model_t model(int resp, double tau, double gamma, double c)
{
    ohm_device_model_t m;
    ohm_device_model_default(&m);
    m.response = resp;
    m.tau = tau;
    m.gamma = gamma;
    m.c = c;
    return m;
}

static void expect_q(const ohm_device_model_t *m, double a, double w, double qp, double qm)
{
    ohm_device_t d = ohm_device_nominal(m);
    d.a = (float)a;
    double p, n;
    ohm_device_q(m, &d, w, &p, &n);
    cr_expect(fabs(p - qp) < 1e-6, "q+(%g) = %.9g, expected %.9g", w, p, qp);
    cr_expect(fabs(n - qm) < 1e-6, "q-(%g) = %.9g, expected %.9g", w, n, qm);
    cr_expect(fabs(ohm_device_F(m, &d, w) - 0.5 * (qm + qp)) < 1e-6);
    cr_expect(fabs(ohm_device_G(m, &d, w) - 0.5 * (qm - qp)) < 1e-6);
}

Test(device, ideal_values)
{
    ohm_device_model_t m = model(OHM_RESP_IDEAL, 1, 1, 0);
    expect_q(&m, 0, 0.7, 1, 1);
    expect_q(&m, 0, -0.3, 1, 1);
    /* up/down asymmetry a = 0.1: up pulses 1.1, down 0.9, G = -0.1 everywhere */
    expect_q(&m, 0.1, 0.5, 1.1, 0.9);
}

Test(device, softbounds_values)
{
    /* tau 2, c 0.2 at w 0.5: q+ = 1.2 * 0.75 = 0.9, q- = 0.8 * 1.25 = 1.0; F 0.95, G 0.05 */
    ohm_device_model_t m = model(OHM_RESP_SOFTBOUNDS, 2, 1, 0.2);
    expect_q(&m, 0, 0.5, 0.9, 1.0);
    ohm_device_t d = ohm_device_nominal(&m);
    cr_expect(fabs(ohm_device_F(&m, &d, 0.5) - 0.95) < 1e-9);
    cr_expect(fabs(ohm_device_G(&m, &d, 0.5) - 0.05) < 1e-9);
    /* at the bounds the device cannot move further out */
    expect_q(&m, 0, 2.0, 0.0, 1.6);
    expect_q(&m, 0, -2.0, 2.4, 0.0);
    /* with a = 0.1: q+ = 0.9 * 1.1, q- = 1.0 * 0.9 */
    expect_q(&m, 0.1, 0.5, 0.99, 0.9);
    /* c = 0: the plain linear response, G(w) = w / tau */
    ohm_device_model_t m0 = model(OHM_RESP_SOFTBOUNDS, 3.5, 1, 0);
    ohm_device_t d0 = ohm_device_nominal(&m0);
    cr_expect(fabs(ohm_device_G(&m0, &d0, 1.4) - 0.4) < 1e-9);
    cr_expect(fabs(ohm_device_F(&m0, &d0, 1.4) - 1.0) < 1e-9);
}

Test(device, pow_values)
{
    /* tau 1, gamma 2: q+(0.5) = 0.25, q-(0.5) = 2.25; F 1.25, G 1 */
    ohm_device_model_t m = model(OHM_RESP_POW, 1, 2, 0);
    expect_q(&m, 0, 0.5, 0.25, 2.25);
    expect_q(&m, 0, -0.5, 2.25, 0.25);
    expect_q(&m, 0, 0.0, 1.0, 1.0);
    ohm_device_t d = ohm_device_nominal(&m);
    cr_expect(fabs(ohm_device_G(&m, &d, 0.5) - 1.0) < 1e-9);
}

Test(device, exp_values)
{
    /* tau 1, gamma 1: q+(0.5) = (e^0.5 - 1)/(e - 1), q-(0.5) = (e^1.5 - 1)/(e - 1) */
    ohm_device_model_t m = model(OHM_RESP_EXP, 1, 1, 0);
    expect_q(&m, 0, 0.5, 0.3775406688, 2.0262619395);
    expect_q(&m, 0, 0.0, 1.0, 1.0);
    /* tau 2, gamma 2, w 1.5: x = 0.75 */
    ohm_device_model_t m2 = model(OHM_RESP_EXP, 2, 2, 0);
    expect_q(&m2, 0, 1.5, 0.1015363241, 5.0266348364);
}

Test(device, step_is_uq_and_f_minus_g_form)
{
    int resp[] = {OHM_RESP_IDEAL, OHM_RESP_SOFTBOUNDS, OHM_RESP_POW, OHM_RESP_EXP};
    ohm_rng_t r;
    ohm_rng_seed(&r, 3, 0, 99);
    for (int k = 0; k < 4; k++) {
        ohm_device_model_t m = model(resp[k], 1.5, 1.7, resp[k] == OHM_RESP_SOFTBOUNDS ? -0.3 : 0);
        ohm_device_t d = ohm_device_nominal(&m);
        d.a = 0.05f;
        d.scale = 1.3f;
        for (int i = 0; i < 200; i++) {
            double w = (2 * ohm_rng_uniform(&r) - 1) * 1.4, dw = (ohm_rng_uniform(&r) - 0.5) * 0.02;
            double want =
                w + 1.3 * dw * ohm_device_F(&m, &d, w) - fabs(1.3 * dw) * ohm_device_G(&m, &d, w);
            double got = ohm_device_step(&m, &d, w, dw);
            cr_expect(fabs(got - want) < 1e-6, "response %d: %.9g vs %.9g", resp[k], got, want);
            /* the array form agrees with the scalar one */
            float wf = (float)w, dwf = (float)dw;
            ohm_device_step_array(&m, &d, &wf, &dwf, 1);
            cr_expect(fabs(wf - ohm_device_step(&m, &d, (float)w, (float)dw)) < 1e-6);
        }
    }
}

Test(device, softbounds_closed_form_equals_sequential_pulses)
{
    ohm_device_model_t m = model(OHM_RESP_SOFTBOUNDS, 1.0, 1, 0.25);
    m.dw_min = 0.01;
    ohm_device_t d = ohm_device_nominal(&m);
    d.a = -0.1f;
    d.scale = 0.8f;
    for (int k = 1; k <= 60; k += 7) {
        double up = 0.3, dn = 0.3;
        for (int i = 0; i < k; i++) {
            up = ohm_device_step(&m, &d, up, m.dw_min);
            dn = ohm_device_step(&m, &d, dn, -m.dw_min);
        }
        cr_expect(fabs(ohm_device_pulses(&m, &d, 0.3, k) - up) < 1e-9, "k=%d up", k);
        cr_expect(fabs(ohm_device_pulses(&m, &d, 0.3, -k) - dn) < 1e-9, "k=%d down", k);
    }
    /* ideal: k pulses are k dw_min scale (1 +- a) */
    ohm_device_model_t mi = model(OHM_RESP_IDEAL, 1.0, 1, 0);
    mi.dw_min = 0.01;
    cr_expect(fabs(ohm_device_pulses(&mi, &d, 0.0, 5) - 5 * 0.01 * 0.8 * 0.9) < 1e-7);
    cr_expect(fabs(ohm_device_pulses(&mi, &d, 0.0, -5) + 5 * 0.01 * 0.8 * 1.1) < 1e-7);
}

Test(device, bounds_never_crossed)
{
    int resp[] = {OHM_RESP_IDEAL, OHM_RESP_SOFTBOUNDS, OHM_RESP_POW, OHM_RESP_EXP};
    ohm_rng_t r;
    ohm_rng_seed(&r, 5, 0, 99);
    for (int k = 0; k < 4; k++) {
        ohm_device_model_t m = model(resp[k], 0.8, 2.5, resp[k] == OHM_RESP_SOFTBOUNDS ? 0.4 : 0);
        m.dw_min = 0.05;
        m.tau_dtod = 0.3;
        m.dw_min_dtod = 0.5;
        m.up_down_dtod = 0.3;
        ohm_device_t dev[16];
        ohm_device_draw(&m, &r, dev, 16);
        for (int i = 0; i < 16; i++) {
            double w = 0;
            /* Long random sequences with a drift towards one bound, big and tiny steps. */
            for (int s = 0; s < 20000; s++) {
                double u = ohm_rng_uniform(&r);
                double dir = s < 10000 ? 0.7 : 0.3;
                if (u < 0.5) {
                    double cnt =
                        floor(ohm_rng_uniform(&r) * 40) * (ohm_rng_uniform(&r) < dir ? 1 : -1);
                    w = ohm_device_pulses(&m, &dev[i], w, cnt);
                } else {
                    double dw = (ohm_rng_uniform(&r) - (1 - dir)) * 3.0;
                    w = ohm_device_step(&m, &dev[i], w, dw);
                }
                cr_assert(fabs(w) <= dev[i].tau, "response %d device %d: %g beyond %g", resp[k], i,
                          w, dev[i].tau);
            }
        }
    }
}

Test(device, symmetric_point_has_zero_asymmetry)
{
    struct {
        int resp;
        double c, a, gamma;
    } cs[] = {{OHM_RESP_SOFTBOUNDS, 0.3, 0, 1},
              {OHM_RESP_SOFTBOUNDS, -0.2, 0.15, 1},
              {OHM_RESP_POW, 0, 0.2, 2.0},
              {OHM_RESP_EXP, 0, -0.3, 1.5},
              {OHM_RESP_SOFTBOUNDS, 0, 0, 1}};
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        ohm_device_model_t m = model(cs[k].resp, 2.0, cs[k].gamma, cs[k].c);
        ohm_device_t d = ohm_device_nominal(&m);
        d.a = (float)cs[k].a;
        double s = ohm_device_symmetric_point(&m, &d);
        cr_expect(fabs(s) < 2.0);
        cr_expect(fabs(ohm_device_G(&m, &d, s)) < 1e-9, "case %zu: G(%g) = %g", k, s,
                  ohm_device_G(&m, &d, s));
    }
    /* softbounds, c alone: symmetric point c tau (docs/design.md, section "Analog tiles") */
    ohm_device_model_t m = model(OHM_RESP_SOFTBOUNDS, 2.0, 1, 0.3);
    ohm_device_t d = ohm_device_nominal(&m);
    cr_expect(fabs(ohm_device_symmetric_point(&m, &d) - 0.6) < 1e-12);
}

static void mean_std(const double *v, int n, double *mean, double *std)
{
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++)
        s2 += (v[i] - *mean) * (v[i] - *mean);
    *std = sqrt(s2 / (n - 1));
}

Test(device, device_to_device_spread_statistics)
{
    enum { N = 40000 };
    ohm_device_model_t m = model(OHM_RESP_SOFTBOUNDS, 2.0, 1, 0);
    m.dw_min_dtod = 0.2;
    m.tau_dtod = 0.1;
    m.up_down = 0.05;
    m.up_down_dtod = 0.02;
    ohm_device_t *dev = malloc(sizeof *dev * N);
    double *v = malloc(sizeof(double) * N);
    ohm_rng_t r;
    ohm_rng_seed(&r, 11, 2, OHM_STREAM_DEVICE);
    ohm_device_draw(&m, &r, dev, N);
    double mean, std;
    /* Tolerances: 5 standard errors; se(mean) = s/sqrt(N), se(std) = s/sqrt(2N). */
    for (int i = 0; i < N; i++)
        v[i] = dev[i].scale * m.dw_min;
    mean_std(v, N, &mean, &std);
    cr_expect(fabs(mean - 0.001) < 5 * 0.0002 / sqrt(N), "dw_min mean %g", mean);
    cr_expect(fabs(std - 0.0002) < 5 * 0.0002 / sqrt(2.0 * N), "dw_min std %g", std);
    for (int i = 0; i < N; i++)
        v[i] = dev[i].tau;
    mean_std(v, N, &mean, &std);
    cr_expect(fabs(mean - 2.0) < 5 * 0.2 / sqrt(N), "tau mean %g", mean);
    cr_expect(fabs(std - 0.2) < 5 * 0.2 / sqrt(2.0 * N), "tau std %g", std);
    for (int i = 0; i < N; i++)
        v[i] = dev[i].a;
    mean_std(v, N, &mean, &std);
    cr_expect(fabs(mean - 0.05) < 5 * 0.02 / sqrt(N), "a mean %g", mean);
    cr_expect(fabs(std - 0.02) < 5 * 0.02 / sqrt(2.0 * N), "a std %g", std);
    for (int i = 0; i < N; i++)
        cr_assert(dev[i].scale > 0 && dev[i].tau > 0 && fabsf(dev[i].a) < 1);
    /* A huge spread still gives physical devices (truncated, not clipped to 0). */
    m.dw_min_dtod = 3.0;
    m.tau_dtod = 3.0;
    m.up_down_dtod = 5.0;
    ohm_device_draw(&m, &r, dev, N);
    for (int i = 0; i < N; i++)
        cr_assert(dev[i].scale > 0 && dev[i].tau > 0 && fabsf(dev[i].a) < 1);
    free(dev);
    free(v);
}

Test(device, zero_spread_draws_nothing)
{
    ohm_device_model_t m = model(OHM_RESP_POW, 1.5, 2, 0);
    m.up_down = 0.1;
    ohm_rng_t r, before;
    ohm_rng_seed(&r, 1, 1, OHM_STREAM_DEVICE);
    before = r;
    ohm_device_t dev[8];
    ohm_device_draw(&m, &r, dev, 8);
    cr_expect(memcmp(&r, &before, sizeof r) == 0);
    for (int i = 0; i < 8; i++)
        cr_expect(dev[i].tau == 1.5f && dev[i].scale == 1.0f && dev[i].a == 0.1f);
}

Test(device, model_check)
{
    ohm_device_model_t m;
    ohm_device_model_default(&m);
    cr_expect_eq(ohm_device_model_check(&m), OHM_OK);
    m.tau = 0;
    cr_expect_eq(ohm_device_model_check(&m), OHM_ERANGE);
    cr_expect(strstr(ohm_error_detail(), "device.tau") != NULL);
    ohm_device_model_default(&m);
    m.c = 1.0;
    cr_expect_eq(ohm_device_model_check(&m), OHM_ERANGE);
    ohm_device_model_default(&m);
    m.dw_min = NAN;
    cr_expect_eq(ohm_device_model_check(&m), OHM_ERANGE);
    ohm_device_model_default(&m);
    m.dw_min_std = -0.1;
    cr_expect_eq(ohm_device_model_check(&m), OHM_ERANGE);
    ohm_device_model_default(&m);
    m.up_down = -1.0;
    cr_expect_eq(ohm_device_model_check(&m), OHM_ERANGE);
}
