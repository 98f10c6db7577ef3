/* Bulk random numbers of the pulse path: four-lane xoshiro words and Ziggurat normals. */
#include "ohm_bulk.h"
#include "ohm_rng.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

Test(bulk, normals_have_the_moments_and_tails_of_n01)
{
    enum { N = 2000000 };
    float *z = malloc(sizeof(float) * N);
    cr_assert(z);
    ohm_rng_t r;
    ohm_rng_seed(&r, 1, 0, OHM_STREAM_PULSE);
    ohm_bulk_t b;
    ohm_bulk_seed(&b, &r);
    ohm_bulk_normal(&b, z, N);
    double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
    long t1 = 0, t2 = 0, t3 = 0, t4 = 0;
    for (int i = 0; i < N; i++) {
        double v = z[i];
        m1 += v;
        m2 += v * v;
        m3 += v * v * v;
        m4 += v * v * v * v;
        t1 += fabs(v) > 1;
        t2 += fabs(v) > 2;
        t3 += fabs(v) > 3;
        t4 += fabs(v) > 3.442619855899; /* the Ziggurat's tail: its own code path */
    }
    m1 /= N;
    m2 /= N;
    m3 /= N;
    m4 /= N;
    /* Standard errors for N(0,1): mean 1/sqrt N, E z^2 sqrt(2/N), E z^3 sqrt(15/N),
     * E z^4 sqrt(96/N); tail counts binomial. 5 standard errors each. */
    cr_expect(fabs(m1) < 5 / sqrt(N), "mean %g", m1);
    cr_expect(fabs(m2 - 1) < 5 * sqrt(2.0 / N), "variance %g", m2);
    cr_expect(fabs(m3) < 5 * sqrt(15.0 / N), "third moment %g", m3);
    cr_expect(fabs(m4 - 3) < 5 * sqrt(96.0 / N), "fourth moment %g", m4);
    double p[4] = {0.31731050786291410, 0.04550026389635842, 0.0026997960632601866,
                   5.76e-4}; /* P(|z| > 1, 2, 3, 3.4426) */
    long t[4] = {t1, t2, t3, t4};
    for (int k = 0; k < 4; k++) {
        double want = p[k] * N, se = sqrt(N * p[k] * (1 - p[k]));
        cr_expect(fabs(t[k] - want) < 5 * se + 0.01 * want, "tail %d: %ld vs %g", k, t[k], want);
    }
    /* Histogram over 40 bins of width 0.2 on [-4, 4] against the normal CDF: chi-square. */
    int bins[40] = {0};
    for (int i = 0; i < N; i++) {
        int k = (int)floor((z[i] + 4.0) / 0.2);
        if (k >= 0 && k < 40) bins[k]++;
    }
    double chi = 0;
    for (int k = 0; k < 40; k++) {
        double lo = -4 + 0.2 * k, hi = lo + 0.2;
        double e = N * 0.5 * (erf(hi / sqrt(2)) - erf(lo / sqrt(2)));
        chi += (bins[k] - e) * (bins[k] - e) / e;
    }
    cr_expect(chi < 80, "chi-square %g over 40 bins (39 dof)", chi);
    free(z);
}

Test(bulk, words_are_uniform_and_reproducible)
{
    enum { N = 1 << 20 };
    uint32_t *u = malloc(sizeof(uint32_t) * N), *v = malloc(sizeof(uint32_t) * N);
    cr_assert(u && v);
    ohm_rng_t r1, r2;
    ohm_rng_seed(&r1, 5, 2, OHM_STREAM_PULSE);
    r2 = r1;
    ohm_bulk_t a, b;
    ohm_bulk_seed(&a, &r1);
    ohm_bulk_seed(&b, &r2);
    ohm_bulk_u32(&a, u, N);
    ohm_bulk_u32(&b, v, N);
    cr_expect(memcmp(u, v, sizeof(uint32_t) * N) == 0, "same seed, same words");
    cr_expect(memcmp(&r1, &r2, sizeof r1) == 0);
    /* Every bit is set half the time; 5 standard errors of sqrt(N)/2. */
    for (int bit = 0; bit < 32; bit++) {
        long c = 0;
        for (int i = 0; i < N; i++)
            c += (u[i] >> bit) & 1;
        cr_expect(fabs(c - N / 2.0) < 5 * sqrt(N) / 2, "bit %d set %ld of %d", bit, c, N);
    }
    /* Neighbouring words (other lanes) are not correlated: the mean of u_i u_{i+1}. */
    double s = 0;
    for (int i = 0; i + 1 < N; i++)
        s += ((double)u[i] / 4294967296.0 - 0.5) * ((double)u[i + 1] / 4294967296.0 - 0.5);
    s /= N - 1;
    cr_expect(fabs(s) < 5 * (1.0 / 12) / sqrt(N), "lag-1 covariance %g", s);
    free(u);
    free(v);
}
