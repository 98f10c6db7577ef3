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
    int resp[] = {OHM_RESP_IDEAL, OHM_RESP_SOFTBOUNDS, OHM_RESP_POW, OHM_RESP_EXP, OHM_RESP_LINEAR};
    ohm_rng_t r;
    ohm_rng_seed(&r, 3, 0, 99);
    for (int k = 0; k < 5; k++) {
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

/* k single pulses by the definition of a pulse: U_q(w, +-dw_min) from ohm_device_step. */
static double one_by_one(const ohm_device_model_t *m, const ohm_device_t *d, double w, long k)
{
    for (long t = 0; t < (k > 0 ? k : -k); t++)
        w = ohm_device_step(m, d, w, k > 0 ? m->dw_min : -m->dw_min);
    return w;
}

/* A burst of k pulses is exactly k single pulses: every response, with and
 * without asymmetry (device a, and c for softbounds/linear), k = 1..32 both
 * ways, from states across the range, with pulses large enough to reach the
 * bounds; and long bursts (transfers, write-back) up to 1000. */
Test(device, burst_equals_pulses_one_by_one)
{
    int resp[] = {OHM_RESP_IDEAL, OHM_RESP_SOFTBOUNDS, OHM_RESP_LINEAR, OHM_RESP_POW, OHM_RESP_EXP};
    double gam[] = {1.0, 1.0, 0.4, 2.0, 2.0};
    double asym[][2] = {{0, 0}, {0.2, 0}, {-0.15, 0.25}}; /* (a, c) */
    double w0s[] = {-0.95, -0.4, 0.0, 0.3, 0.9};
    double dws[] = {0.001, 0.01, 0.05};
    int checked = 0;
    for (int r = 0; r < 5; r++)
        for (int g = 0; g < 2; g++) /* pow and exp also at another shape */
            for (int q = 0; q < 3; q++)
                for (int z = 0; z < 3; z++) {
                    double gamma = g == 0 ? gam[r] : (resp[r] == OHM_RESP_LINEAR ? 1.7 : 1.3);
                    ohm_device_model_t m = model(resp[r], 1.0, gamma, asym[q][1]);
                    m.dw_min = dws[z];
                    ohm_device_t d = ohm_device_nominal(&m);
                    d.a = (float)asym[q][0];
                    d.scale = 0.9f;
                    for (size_t i = 0; i < sizeof w0s / sizeof w0s[0]; i++)
                        for (long k = -32; k <= 32; k++) {
                            double want = one_by_one(&m, &d, w0s[i], k);
                            double got = ohm_device_pulses(&m, &d, w0s[i], k);
                            cr_assert(fabs(got - want) < 1e-6,
                                      "resp %d gamma %g a %g c %g dw %g w %g k %ld: %.9g vs %.9g",
                                      resp[r], gamma, asym[q][0], asym[q][1], dws[z], w0s[i], k,
                                      got, want);
                            checked++;
                        }
                    long big[] = {100, -250, 1000};
                    for (int t = 0; t < 3; t++) {
                        double want = one_by_one(&m, &d, 0.1, big[t]);
                        cr_assert(fabs(ohm_device_pulses(&m, &d, 0.1, big[t]) - want) < 1e-6,
                                  "resp %d k %ld", resp[r], big[t]);
                    }
                }
    cr_expect_eq(checked, 5 * 2 * 3 * 3 * 5 * 65);
}

/* The old shortcut (one Euler step of k dw_min) is far from k pulses for pow and
 * exp: the burst must not be it. */
Test(device, burst_is_not_an_euler_step)
{
    int resp[] = {OHM_RESP_POW, OHM_RESP_EXP};
    for (int r = 0; r < 2; r++) {
        ohm_device_model_t m = model(resp[r], 1.0, 2.0, 0);
        m.dw_min = 0.01;
        ohm_device_t d = ohm_device_nominal(&m);
        double euler = ohm_device_step(&m, &d, -0.5, 31 * m.dw_min);
        double exact = ohm_device_pulses(&m, &d, -0.5, 31);
        cr_expect(fabs(euler - exact) > 0.05, "resp %d: %g vs %g", resp[r], euler, exact);
    }
}

/* Cycle-to-cycle noise: one noisy pulse is w + dw q (1 + sigma xi); a burst
 * keeps the mean of k noisy pulses and (ideal device) their spread. */
Test(device, noisy_burst)
{
    ohm_device_model_t m = model(OHM_RESP_SOFTBOUNDS, 1.0, 1, 0.1);
    m.dw_min = 0.01;
    m.dw_min_std = 0.3;
    ohm_device_t d = ohm_device_nominal(&m);
    d.a = 0.1f;
    double up = ohm_device_pulses(&m, &d, 0.2, 1), xi = -1.7;
    cr_expect(fabs(ohm_device_pulses_noisy(&m, &d, 0.2, 1, xi) -
                   (0.2 + (up - 0.2) * (1 + 0.3 * xi))) < 1e-12);
    cr_expect_eq(ohm_device_pulses_noisy(&m, &d, 0.2, 0, xi), 0.2);
    /* k = 9 noisy pulses one by one vs one noisy burst, 20000 trials each. */
    enum { T = 20000, K = 9 };
    ohm_rng_t r;
    ohm_rng_seed(&r, 7, 0, 99);
    int resp[] = {OHM_RESP_IDEAL, OHM_RESP_SOFTBOUNDS};
    for (int q = 0; q < 2; q++) {
        m.response = resp[q];
        double s1 = 0, s2 = 0, b1 = 0, b2 = 0;
        for (int t = 0; t < T; t++) {
            double w = 0.2;
            for (int k = 0; k < K; k++)
                w = ohm_device_pulses_noisy(&m, &d, w, -1, ohm_rng_normal(&r));
            s1 += w;
            s2 += w * w;
            double v = ohm_device_pulses_noisy(&m, &d, 0.2, -K, ohm_rng_normal(&r));
            b1 += v;
            b2 += v * v;
        }
        double ms = s1 / T, mb = b1 / T, vs = s2 / T - ms * ms, vb = b2 / T - mb * mb;
        double want = ohm_device_pulses(&m, &d, 0.2, -K);
        /* se of a mean: sqrt(v / T); of a variance: v sqrt(2 / T) */
        cr_expect(fabs(ms - want) < 5 * sqrt(vs / T), "resp %d: mean %g vs %g", resp[q], ms, want);
        cr_expect(fabs(mb - want) < 5 * sqrt(vb / T), "resp %d: burst mean %g vs %g", resp[q], mb,
                  want);
        /* Ideal: the same distribution. Softbounds: the burst's variance is
         * larger by about (K-1) r, r the fraction of the distance one pulse moves. */
        double r1 = (0.2 - ohm_device_pulses(&m, &d, 0.2, -1)) / (0.2 + d.tau);
        double slack = resp[q] == OHM_RESP_IDEAL ? 0 : 2 * (K - 1) * r1;
        cr_expect(fabs(vb / vs - 1) < 5 * sqrt(4.0 / T) + slack, /* se of a ratio of variances */
                  "resp %d: variance %g vs %g", resp[q], vb, vs);
    }
}

Test(device, linear_values)
{
    /* gamma 0.5, c 0.2, tau 2 at w 1: x = 0.5, q+ = 1.2 (1 - 0.25), q- = 0.8 (1 + 0.25) */
    ohm_device_model_t m = model(OHM_RESP_LINEAR, 2, 0.5, 0.2);
    expect_q(&m, 0, 1.0, 0.9, 1.0);
    /* hard bounds: a small slope leaves the pulse non-zero at the bound; states stay inside */
    ohm_device_t d = ohm_device_nominal(&m);
    m.dw_min = 0.3;
    cr_expect_eq(ohm_device_pulses(&m, &d, 1.9, 5), 2.0);
    cr_expect_eq(ohm_device_pulses(&m, &d, -1.9, -5), -2.0);
    /* softbounds is linear with gamma 1 */
    ohm_device_model_t s = model(OHM_RESP_SOFTBOUNDS, 2, 7.0, 0.2), l = model(OHM_RESP_LINEAR, 2, 1, 0.2);
    for (double w = -1.9; w < 2; w += 0.35) {
        double a, b, c, e;
        ohm_device_q(&s, &d, w, &a, &b);
        ohm_device_q(&l, &d, w, &c, &e);
        cr_expect(fabs(a - c) < 1e-12 && fabs(b - e) < 1e-12);
    }
}

Test(device, aihwkit_asymmetry_convention)
{
    /* up_down u = 0.2: up pulses dw_min, down pulses dw_min (1 - 0.2); u = -0.2 the mirror. */
    ohm_device_model_t m = model(OHM_RESP_IDEAL, 10, 1, 0);
    m.dw_min = 0.01;
    m.convention = OHM_ASYM_AIHWKIT;
    for (int sgn = -1; sgn <= 1; sgn += 2) {
        m.up_down = 0.2 * sgn;
        ohm_device_t d = ohm_device_nominal(&m);
        double up = ohm_device_pulses(&m, &d, 0, 1), dn = -ohm_device_pulses(&m, &d, 0, -1);
        cr_expect(fabs(up - 0.01 * (sgn > 0 ? 1.0 : 0.8)) < 1e-8, "u %g: up %g", m.up_down, up);
        cr_expect(fabs(dn - 0.01 * (sgn > 0 ? 0.8 : 1.0)) < 1e-8, "u %g: down %g", m.up_down, dn);
    }
    /* The documented mapping: ohm a corresponds to aihwkit u = 2a/(1+|a|), dw_min (1+|a|). */
    ohm_device_model_t o = model(OHM_RESP_IDEAL, 10, 1, 0);
    o.dw_min = 0.01;
    o.up_down = 0.25;
    m.up_down = 2 * 0.25 / 1.25;
    m.dw_min = 0.01 * 1.25;
    ohm_device_t dn = ohm_device_nominal(&o), da = ohm_device_nominal(&m);
    cr_expect(fabs(ohm_device_pulses(&o, &dn, 0, 3) - ohm_device_pulses(&m, &da, 0, 3)) < 1e-7);
    cr_expect(fabs(ohm_device_pulses(&o, &dn, 0, -3) - ohm_device_pulses(&m, &da, 0, -3)) < 1e-7);
    /* Spreads: up = |g + r|, down = |g - r| with g = 1 + 0.3 xi, r = 0.1 xi' (u = 0). */
    enum { N = 40000 };
    m.up_down = 0;
    m.dw_min = 0.01;
    m.dw_min_dtod = 0.3;
    m.up_down_dtod = 0.1;
    ohm_device_t *dev = malloc(sizeof *dev * N);
    ohm_rng_t r;
    ohm_rng_seed(&r, 3, 0, OHM_STREAM_DEVICE);
    ohm_device_draw(&m, &r, dev, N);
    double su = 0, su2 = 0, sd = 0;
    for (int i = 0; i < N; i++) {
        double u = dev[i].scale * (1 + dev[i].a), v = dev[i].scale * (1 - dev[i].a);
        cr_assert(dev[i].scale > 0 && fabsf(dev[i].a) < 1);
        su += u;
        su2 += u * u;
        sd += v;
    }
    double mu = su / N, var = su2 / N - mu * mu, want = sqrt(0.09 + 0.01);
    /* E|N(1, s^2)| = 1 + tiny for s = 0.32 (folding at 0 is 3 sigma out) */
    cr_expect(fabs(mu - 1) < 5 * want / sqrt(N), "up mean %g", mu);
    cr_expect(fabs(sd / N - 1) < 5 * want / sqrt(N), "down mean %g", sd / N);
    cr_expect(fabs(sqrt(var) - want) < 5 * want / sqrt(2.0 * N), "up std %g vs %g", sqrt(var), want);
    free(dev);
}

Test(device, bounds_never_crossed)
{
    int resp[] = {OHM_RESP_IDEAL, OHM_RESP_SOFTBOUNDS, OHM_RESP_POW, OHM_RESP_EXP, OHM_RESP_LINEAR};
    ohm_rng_t r;
    ohm_rng_seed(&r, 5, 0, 99);
    for (int k = 0; k < 5; k++) {
        ohm_device_model_t m = model(resp[k], 0.8, k == 4 ? 0.3 : 2.5, k == 1 || k == 4 ? 0.4 : 0);
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
              {OHM_RESP_SOFTBOUNDS, 0, 0, 1},
              {OHM_RESP_LINEAR, 0.2, 0.05, 0.6}};
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
