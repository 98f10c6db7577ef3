/* Tests of robust/ohm_robust: hand-computed cases per rule, agreement with
 * plain scalar references on random inputs, permutation invariance,
 * breakdown under +-1e30 / NaN / Inf rows, b = 0 reductions, NaN safety,
 * determinism and argument errors. */
#include "ohm_robust.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- helpers */

static uint64_t rs = 1;
static void rseed(uint64_t s)
{
    rs = s * 0x9E3779B97F4A7C15ull + 1;
}
static uint64_t rnext(void)
{
    uint64_t z = (rs += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double runif(void)
{
    return (double)(rnext() >> 11) * 0x1.0p-53;
}
static double rnorm(void)
{
    double u = runif(), v = runif();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

typedef struct {
    int k;
    size_t d;
    float *data;
    const float **rows;
    double *w;
    float *out;
} set_t;

static set_t set_new(int k, size_t d)
{
    set_t s = {k,
               d,
               calloc((size_t)k * (d ? d : 1), sizeof(float)),
               calloc((size_t)k, sizeof(float *)),
               calloc((size_t)k, sizeof(double)),
               calloc(d ? d : 1, sizeof(float))};
    cr_assert(s.data && s.rows && s.w && s.out);
    for (int i = 0; i < k; i++) {
        s.rows[i] = s.data + (size_t)i * d;
        s.w[i] = 1.0 / k;
    }
    return s;
}

static void set_free(set_t *s)
{
    free(s->data);
    free(s->rows);
    free(s->w);
    free(s->out);
}

static float *row(set_t *s, int i)
{
    return s->data + (size_t)i * s->d;
}

/* Honest rows: a common centre plus N(0, spread^2) per coordinate. */
static void fill_random(set_t *s, double spread)
{
    for (size_t c = 0; c < s->d; c++) {
        double centre = 3.0 * rnorm();
        for (int i = 0; i < s->k; i++)
            row(s, i)[c] = (float)(centre + spread * rnorm());
    }
}

/* Random weights summing to 1 (all > 0). */
static void random_weights(set_t *s)
{
    double sum = 0;
    for (int i = 0; i < s->k; i++)
        sum += (s->w[i] = 0.1 + runif());
    for (int i = 0; i < s->k; i++)
        s->w[i] /= sum;
}

static int agg(ohm_rule_t r, int b, set_t *s, ohm_rule_stats_t *st)
{
    ohm_rule_params_t p;
    ohm_rule_defaults(&p, r);
    p.b = b;
    return ohm_robust_aggregate(&p, s->rows, s->w, s->k, s->d, s->out, st);
}

static int aggp(const ohm_rule_params_t *p, set_t *s, ohm_rule_stats_t *st)
{
    return ohm_robust_aggregate(p, s->rows, s->w, s->k, s->d, s->out, st);
}

static void set_rows(set_t *s, const float *v)
{
    memcpy(s->data, v, sizeof(float) * (size_t)s->k * s->d);
}

static void expect_vec(const float *got, const double *want, size_t d, double tol)
{
    for (size_t c = 0; c < d; c++)
        cr_expect(fabs(got[c] - want[c]) <= tol * (1 + fabs(want[c])),
                  "coord %zu: got %.9g want %.9g", c, got[c], want[c]);
}

static int all_finite(const float *v, size_t d)
{
    for (size_t c = 0; c < d; c++)
        if (!isfinite(v[c])) return 0;
    return 1;
}

/* smallest rule-valid k >= want for b */
static int min_k(ohm_rule_t r, int b)
{
    switch (r) {
    case OHM_RULE_TRIMMED_MEAN:
        return 2 * b + 1;
    case OHM_RULE_KRUM:
    case OHM_RULE_MULTI_KRUM:
        return b + 3;
    case OHM_RULE_FABA:
    case OHM_RULE_IOS:
        return b + 1;
    default:
        return 1;
    }
}

/* ------------------------------------------------------------- names */

Test(robust, names_round_trip)
{
    for (int r = 0; r < OHM_RULE_COUNT; r++)
        cr_expect_eq(ohm_rule_from_name(ohm_rule_name((ohm_rule_t)r)), r);
    cr_expect_eq(ohm_rule_from_name("trimmed-mean"), OHM_RULE_TRIMMED_MEAN);
    cr_expect_eq(ohm_rule_from_name("bogus"), -1);
    cr_expect_eq(ohm_rule_from_name(NULL), -1);
    ohm_rule_params_t p;
    ohm_rule_defaults(&p, OHM_RULE_GEOMED);
    cr_expect(p.rule == OHM_RULE_GEOMED && p.b == 0 && p.tau == 1.0 && p.nu == 1e-6 &&
              p.iters == 8 && p.tol == 1e-5 && p.m == 0);
}

/* ------------------------------------------------------ hand-made cases */

Test(robust, mean_and_weighted_by_hand)
{
    set_t s = set_new(3, 2);
    set_rows(&s, (float[]){1, 2, 3, 4, 5, 9});
    cr_assert_eq(agg(OHM_RULE_MEAN, 0, &s, NULL), 0);
    expect_vec(s.out, (double[]){3, 5}, 2, 1e-7); /* (1+3+5)/3, (2+4+9)/3 */
    s.w[0] = 0.5, s.w[1] = 0.25, s.w[2] = 0.25;
    cr_assert_eq(agg(OHM_RULE_WEIGHTED, 0, &s, NULL), 0);
    /* .5*1 + .25*3 + .25*5 = 2.5;  .5*2 + .25*4 + .25*9 = 4.25 */
    expect_vec(s.out, (double[]){2.5, 4.25}, 2, 1e-7);
    set_free(&s);
}

Test(robust, median_by_hand)
{
    set_t s = set_new(3, 3);
    set_rows(&s, (float[]){1, 10, -1, 2, 0, 5, 3, 7, 6});
    cr_assert_eq(agg(OHM_RULE_MEDIAN, 0, &s, NULL), 0);
    /* {1,2,3} -> 2; {10,0,7} -> 7; {-1,5,6} -> 5 */
    expect_vec(s.out, (double[]){2, 7, 5}, 3, 0);
    set_free(&s);

    s = set_new(4, 1); /* even k: midpoint of the two middle values */
    set_rows(&s, (float[]){10, 1, 3, 2});
    cr_assert_eq(agg(OHM_RULE_MEDIAN, 0, &s, NULL), 0);
    expect_vec(s.out, (double[]){2.5}, 1, 0); /* sorted 1 2 3 10 -> (2+3)/2 */
    set_free(&s);
}

Test(robust, trimmed_mean_by_hand_self_is_trimmed)
{
    set_t s = set_new(5, 2);
    /* coordinate 0: self = 100 is the largest and is trimmed with the
     * smallest (1): mean(2,3,4) = 3. coordinate 1: {-50,0,1,2,3} -> mean(0,1,2) = 1 */
    set_rows(&s, (float[]){100, 0, 1, -50, 2, 1, 3, 2, 4, 3});
    ohm_rule_stats_t st;
    cr_assert_eq(agg(OHM_RULE_TRIMMED_MEAN, 1, &s, &st), 0);
    expect_vec(s.out, (double[]){3, 1}, 2, 1e-7);
    cr_expect_eq(st.discarded, 2);
    set_free(&s);
}

Test(robust, krum_and_multi_krum_by_hand)
{
    set_t s = set_new(5, 1);
    set_rows(&s, (float[]){0, 1, 2, 10, 11});
    /* b = 1: each score sums the k-b-2 = 2 smallest squared distances:
     * 0: 1+4 = 5; 1: 1+1 = 2; 2: 1+4 = 5; 10: 1+64 = 65; 11: 1+81 = 82 */
    ohm_rule_stats_t st;
    cr_assert_eq(agg(OHM_RULE_KRUM, 1, &s, &st), 0);
    expect_vec(s.out, (double[]){1}, 1, 0);
    cr_expect_eq(st.discarded, 4);
    ohm_rule_params_t p;
    ohm_rule_defaults(&p, OHM_RULE_MULTI_KRUM);
    p.b = 1;
    p.m = 3; /* scores 2, 5, 5 -> rows 1, 0, 2 -> (1+0+2)/3 */
    cr_assert_eq(aggp(&p, &s, &st), 0);
    expect_vec(s.out, (double[]){1}, 1, 1e-7);
    cr_expect_eq(st.discarded, 2);
    p.m = 0; /* k - b = 4: adds row 3 (score 65) -> (0+1+2+10)/4 */
    cr_assert_eq(aggp(&p, &s, &st), 0);
    expect_vec(s.out, (double[]){3.25}, 1, 1e-7);
    set_free(&s);
}

Test(robust, cc_by_hand)
{
    set_t s = set_new(3, 1);
    set_rows(&s, (float[]){0, 0.5f, 10});
    ohm_rule_params_t p;
    ohm_rule_defaults(&p, OHM_RULE_CC);
    p.tau = 1;
    p.iters = 1;
    ohm_rule_stats_t st;
    /* m = 0 + (0 + 0.5 + clip(10, 1) = 1)/3 = 0.5 */
    cr_assert_eq(aggp(&p, &s, &st), 0);
    expect_vec(s.out, (double[]){0.5}, 1, 1e-7);
    cr_expect_eq(st.clipped, 1);
    cr_expect_eq(st.iters, 1);
    /* second round from m = 0.5: (-0.5 + 0 + clip(9.5, 1) = 1)/3 = 1/6 -> 2/3 */
    p.iters = 2;
    cr_assert_eq(aggp(&p, &s, &st), 0);
    expect_vec(s.out, (double[]){2.0 / 3.0}, 1, 1e-6);
    set_free(&s);
}

Test(robust, scc_by_hand)
{
    set_t s = set_new(3, 1);
    set_rows(&s, (float[]){0, 0.5f, 10});
    s.w[0] = 0.5, s.w[1] = 0.25, s.w[2] = 0.25;
    ohm_rule_params_t p;
    ohm_rule_defaults(&p, OHM_RULE_SCC);
    p.tau = 1; /* 0 + .25*0.5 + .25*clip(10, 1) = 0.125 + 0.25 */
    ohm_rule_stats_t st;
    cr_assert_eq(aggp(&p, &s, &st), 0);
    expect_vec(s.out, (double[]){0.375}, 1, 1e-7);
    cr_expect_eq(st.clipped, 1);
    p.tau = 0; /* adaptive, b = 1: the 2nd largest distance, 0.5, is tau */
    p.b = 1;
    cr_assert_eq(aggp(&p, &s, &st), 0);
    expect_vec(s.out, (double[]){0.25}, 1, 1e-7); /* .25*.5 + .25*.5 */
    cr_expect_eq(st.clipped, 1);
    set_free(&s);

    s = set_new(2, 2); /* clipping keeps the direction: (3,4) has norm 5 */
    set_rows(&s, (float[]){0, 0, 3, 4});
    s.w[0] = s.w[1] = 0.5;
    p.tau = 1;
    cr_assert_eq(aggp(&p, &s, NULL), 0);
    expect_vec(s.out, (double[]){0.3, 0.4}, 2, 1e-6);
    set_free(&s);
}

Test(robust, faba_by_hand)
{
    set_t s = set_new(4, 1);
    set_rows(&s, (float[]){0, 1, 2, 100});
    ohm_rule_stats_t st;
    /* mean 25.75: 100 is farthest -> mean(0,1,2) = 1 */
    cr_assert_eq(agg(OHM_RULE_FABA, 1, &s, &st), 0);
    expect_vec(s.out, (double[]){1}, 1, 1e-7);
    cr_expect_eq(st.discarded, 1);
    /* then from mean 1: row 2 (dist 1) beats row 1 (0); self is never dropped */
    cr_assert_eq(agg(OHM_RULE_FABA, 2, &s, &st), 0);
    expect_vec(s.out, (double[]){0.5}, 1, 1e-7);
    cr_expect_eq(st.discarded, 2);
    set_free(&s);
}

Test(robust, ios_by_hand_never_drops_self)
{
    set_t s = set_new(4, 1);
    set_rows(&s, (float[]){0, 1, 2, 100});
    s.w[0] = 0.4, s.w[1] = s.w[2] = s.w[3] = 0.2;
    /* weighted mean .2 + .4 + 20 = 20.6: drop 100 -> (.2*1 + .2*2)/.8 = 0.75 */
    cr_assert_eq(agg(OHM_RULE_IOS, 1, &s, NULL), 0);
    expect_vec(s.out, (double[]){0.75}, 1, 1e-7);
    /* self is the outlier: mean 40 + .2 + .4 = 40.6; the farthest neighbour is
     * the 0 (not self, at 59.4) -> (40 + .2 + .4)/(.4 + .2 + .2) = 50.75 */
    set_rows(&s, (float[]){100, 0, 1, 2});
    cr_assert_eq(agg(OHM_RULE_IOS, 1, &s, NULL), 0);
    expect_vec(s.out, (double[]){50.75}, 1, 1e-6);
    set_free(&s);
}

Test(robust, geomed_by_hand)
{
    set_t s = set_new(3, 2); /* equilateral triangle: the Fermat point is the centroid */
    set_rows(&s, (float[]){0, 0, 2, 0, 1, (float)sqrt(3.0)});
    ohm_rule_params_t p;
    ohm_rule_defaults(&p, OHM_RULE_GEOMED);
    p.iters = 200;
    p.tol = 1e-9;
    ohm_rule_stats_t st;
    cr_assert_eq(aggp(&p, &s, &st), 0);
    expect_vec(s.out, (double[]){1, sqrt(3.0) / 3}, 2, 1e-4);
    cr_expect(st.iters >= 1 && st.iters <= 200);
    set_free(&s);

    s = set_new(3, 1); /* 1-D: the median, where Weiszfeld starts and stays */
    set_rows(&s, (float[]){10, 0, 1});
    cr_assert_eq(aggp(&p, &s, &st), 0);
    expect_vec(s.out, (double[]){1}, 1, 1e-5);
    set_free(&s);
}

/* ----------------------------------------------- references on random data */

static int cmpf(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Scalar median / trimmed mean per coordinate, same arithmetic as documented. */
static void ref_coordwise(set_t *s, int b, int median, float *want)
{
    float *v = malloc(sizeof(float) * (size_t)s->k);
    for (size_t c = 0; c < s->d; c++) {
        for (int i = 0; i < s->k; i++)
            v[i] = row(s, i)[c];
        qsort(v, (size_t)s->k, sizeof(float), cmpf);
        if (median) {
            want[c] = 0.5f * v[(s->k - 1) / 2] + 0.5f * v[s->k / 2];
        } else {
            double sum = 0;
            for (int i = b; i < s->k - b; i++)
                sum += v[i];
            want[c] = (float)(sum * (1.0 / (s->k - 2 * b)));
        }
    }
    free(v);
}

Test(robust, coordinatewise_match_sort_reference_bitwise)
{
    rseed(11);
    size_t dims[] = {1, 7, 128, 129, 300};
    for (int k = 1; k <= 40; k++)
        for (int di = 0; di < 5; di++) {
            set_t s = set_new(k, dims[di]);
            fill_random(&s, 1.0);
            float *want = malloc(sizeof(float) * s.d);
            cr_assert_eq(agg(OHM_RULE_MEDIAN, 0, &s, NULL), 0);
            ref_coordwise(&s, 0, 1, want);
            cr_expect_arr_eq(s.out, want, sizeof(float) * s.d, "median k=%d d=%zu", k, s.d);
            for (int b = 0; 2 * b < k; b += (k > 12 ? 3 : 1)) {
                cr_assert_eq(agg(OHM_RULE_TRIMMED_MEAN, b, &s, NULL), 0);
                ref_coordwise(&s, b, 0, want);
                /* the kept values are summed in double in another order: at
                 * most one float rounding apart */
                for (size_t c = 0; c < s.d; c++)
                    cr_expect(fabsf(s.out[c] - want[c]) <= 0x1p-23f * fabsf(want[c]),
                              "trimmed k=%d b=%d d=%zu c=%zu", k, b, s.d, c);
            }
            free(want);
            set_free(&s);
        }
}

/* faba / ios by the definition: recompute the mean and all distances each time. */
static void ref_faba_ios(set_t *s, int b, int ios, double *want)
{
    int k = s->k;
    size_t d = s->d;
    int *act = malloc(sizeof(int) * (size_t)k);
    for (int i = 0; i < k; i++)
        act[i] = 1;
    for (int t = 0; t <= b; t++) {
        double sw = 0;
        for (int i = 0; i < k; i++)
            if (act[i]) sw += ios ? s->w[i] : 1.0;
        for (size_t c = 0; c < d; c++) {
            double m = 0;
            for (int i = 0; i < k; i++)
                if (act[i]) m += (ios ? s->w[i] : 1.0) * row(s, i)[c];
            want[c] = m / sw;
        }
        if (t == b) break;
        int far = -1;
        double fd = -1;
        for (int i = 1; i < k; i++) {
            if (!act[i]) continue;
            double dd = 0;
            for (size_t c = 0; c < d; c++)
                dd += (row(s, i)[c] - want[c]) * (row(s, i)[c] - want[c]);
            if (dd > fd) fd = dd, far = i;
        }
        act[far] = 0;
    }
    free(act);
}

Test(robust, faba_ios_match_direct_definition)
{
    rseed(12);
    for (int k = 2; k <= 12; k++)
        for (int b = 0; b < k; b++) {
            set_t s = set_new(k, 37);
            fill_random(&s, 1.0);
            random_weights(&s);
            double *want = malloc(sizeof(double) * s.d);
            for (int ios = 0; ios < 2; ios++) {
                cr_assert_eq(agg(ios ? OHM_RULE_IOS : OHM_RULE_FABA, b, &s, NULL), 0);
                ref_faba_ios(&s, b, ios, want);
                expect_vec(s.out, want, s.d, 1e-5);
            }
            free(want);
            set_free(&s);
        }
}

/* cc and scc by their formulas, in double. */
static void ref_clip(set_t *s, const ohm_rule_params_t *p, double *want)
{
    int k = s->k;
    size_t d = s->d;
    double *m = malloc(sizeof(double) * d), *dist = malloc(sizeof(double) * (size_t)k);
    for (size_t c = 0; c < d; c++)
        m[c] = row(s, 0)[c];
    int rounds = p->rule == OHM_RULE_CC ? p->iters : 1;
    for (int t = 0; t < rounds; t++) {
        for (int i = 0; i < k; i++) {
            double dd = 0;
            for (size_t c = 0; c < d; c++)
                dd += (row(s, i)[c] - m[c]) * (row(s, i)[c] - m[c]);
            dist[i] = sqrt(dd);
        }
        for (size_t c = 0; c < d; c++) {
            double acc = m[c];
            for (int i = p->rule == OHM_RULE_CC ? 0 : 1; i < k; i++) {
                double sc = dist[i] <= p->tau ? 1.0 : p->tau / dist[i];
                acc += s->w[i] * sc * (row(s, i)[c] - m[c]);
            }
            want[c] = acc;
        }
        for (size_t c = 0; c < d; c++)
            m[c] = want[c];
    }
    free(m);
    free(dist);
}

Test(robust, cc_scc_match_formula)
{
    rseed(13);
    for (int k = 1; k <= 9; k++)
        for (int r = 0; r < 2; r++) {
            set_t s = set_new(k, 300);
            fill_random(&s, 1.0);
            random_weights(&s);
            ohm_rule_params_t p;
            ohm_rule_defaults(&p, r ? OHM_RULE_SCC : OHM_RULE_CC);
            p.tau = 10.0; /* distances are ~ sqrt(2*300) = 24: most are clipped */
            p.iters = 3;
            double *want = malloc(sizeof(double) * s.d);
            cr_assert_eq(aggp(&p, &s, NULL), 0);
            ref_clip(&s, &p, want);
            expect_vec(s.out, want, s.d, 1e-4);
            free(want);
            set_free(&s);
        }
}

/* Weiszfeld in double from the same start, same stop. */
Test(robust, geomed_matches_weiszfeld_reference)
{
    rseed(14);
    for (int k = 3; k <= 11; k += 2) {
        set_t s = set_new(k, 50);
        fill_random(&s, 1.0); /* uniform weights: no point holds half the weight */
        ohm_rule_params_t p;
        ohm_rule_defaults(&p, OHM_RULE_GEOMED);
        p.iters = 100;
        p.tol = 1e-9;
        cr_assert_eq(aggp(&p, &s, NULL), 0);
        /* the minimizer of sum w_i ||z - x_i|| checked by first-order optimality:
         * || sum w_i (z - x_i)/||z - x_i|| || ~ 0 */
        double g[50] = {0};
        for (int i = 0; i < k; i++) {
            double n2 = 0;
            for (size_t c = 0; c < s.d; c++)
                n2 += (s.out[c] - row(&s, i)[c]) * (s.out[c] - row(&s, i)[c]);
            for (size_t c = 0; c < s.d; c++)
                g[c] += s.w[i] * (s.out[c] - row(&s, i)[c]) / sqrt(n2);
        }
        double gn = 0;
        for (size_t c = 0; c < s.d; c++)
            gn += g[c] * g[c];
        cr_expect(sqrt(gn) < 1e-3, "k=%d gradient norm %g", k, sqrt(gn));
        set_free(&s);
    }
}

/* Selects vector path ii of N_ISA (OHM_ROBUST_ISA: generic, avx2, then what
 * the CPU has) and returns its name. */
#define N_ISA 3
static const char *use_isa(int ii)
{
    static const char *const isas[N_ISA] = {"generic", "avx2", NULL};
    if (isas[ii])
        setenv("OHM_ROBUST_ISA", isas[ii], 1);
    else
        unsetenv("OHM_ROBUST_ISA");
    return isas[ii] ? isas[ii] : "native";
}

/* geomed runs its updates on the Gram matrix up to 16 rows and one pass per
 * update beyond: both must follow the plain double-precision Weiszfeld from
 * the coordinate median, on every vector path, with NaN and 1e30 rows among
 * the inputs (skipped, or weighted down, exactly as the reference does). */
Test(robust, geomed_gram_and_passes_match_reference)
{
    const int ks[] = {2, 3, 5, 8, 9, 16, 17, 24};
    rseed(31);
    for (int ii = 0; ii < N_ISA; ii++) {
        const char *isa = use_isa(ii);
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
            for (int hostile = 0; hostile < 2; hostile++) {
                const int k = ks[ki];
                set_t s = set_new(k, 777);
                fill_random(&s, 1.0);
                random_weights(&s);
                if (hostile && k >= 5) {
                    row(&s, 1)[5] = NAN; /* skipped */
                    for (size_t c = 0; c < s.d; c++)
                        row(&s, k - 1)[c] = 1e30f; /* finite, far */
                }
                ohm_rule_params_t p;
                ohm_rule_defaults(&p, OHM_RULE_GEOMED);
                p.iters = 5;
                p.tol = 0;
                ohm_rule_stats_t st;
                cr_assert_eq(aggp(&p, &s, &st), 0);
                /* reference: median start over every row, then 5 updates on the finite ones */
                double *z = malloc(sizeof(double) * s.d), *zn = malloc(sizeof(double) * s.d);
                float *col = malloc(sizeof(float) * (size_t)k);
                int *fin = malloc(sizeof(int) * (size_t)k);
                for (int i = 0; i < k; i++) {
                    fin[i] = 1;
                    for (size_t c = 0; c < s.d; c++)
                        fin[i] &= isfinite(row(&s, i)[c]);
                }
                for (size_t c = 0; c < s.d; c++) {
                    for (int i = 0; i < k; i++)
                        col[i] = isnan(row(&s, i)[c]) ? INFINITY : row(&s, i)[c];
                    qsort(col, (size_t)k, sizeof(float), cmpf);
                    z[c] = 0.5 * col[(k - 1) / 2] + 0.5 * col[k / 2];
                }
                for (int t = 0; t < p.iters; t++) {
                    double sb = 0;
                    for (size_t c = 0; c < s.d; c++)
                        zn[c] = 0;
                    for (int i = 0; i < k; i++) {
                        if (!fin[i]) continue;
                        double d2 = 0;
                        for (size_t c = 0; c < s.d; c++)
                            d2 += (z[c] - row(&s, i)[c]) * (z[c] - row(&s, i)[c]);
                        double b = s.w[i] / fmax(sqrt(d2), p.nu);
                        sb += b;
                        for (size_t c = 0; c < s.d; c++)
                            zn[c] += b * row(&s, i)[c];
                    }
                    for (size_t c = 0; c < s.d; c++)
                        z[c] = zn[c] / sb;
                }
                cr_expect_eq(st.iters, p.iters);
                cr_expect_eq(st.nonfinite, hostile && k >= 5);
                for (size_t c = 0; c < s.d; c++)
                    cr_expect(fabs(s.out[c] - z[c]) <= 1e-4 * (1 + fabs(z[c])),
                              "%s k=%d hostile=%d c=%zu: %g, reference %g", isa, k, hostile, c,
                              s.out[c], z[c]);
                free(z);
                free(zn);
                free(col);
                free(fin);
                set_free(&s);
            }
    }
    unsetenv("OHM_ROBUST_ISA");
}

/* --------------------------------------------------- permutation invariance */

static void permute_neighbours(set_t *s, int with_weights)
{
    for (int i = s->k - 1; i > 1; i--) {
        int j = 1 + (int)(rnext() % (uint64_t)i);
        const float *t = s->rows[i];
        s->rows[i] = s->rows[j];
        s->rows[j] = t;
        if (with_weights) {
            double tw = s->w[i];
            s->w[i] = s->w[j];
            s->w[j] = tw;
        }
    }
}

Test(robust, permutation_invariance)
{
    rseed(15);
    for (int r = 0; r < OHM_RULE_COUNT; r++)
        for (int k = 5; k <= 9; k += 4) {
            set_t s = set_new(k, 333);
            fill_random(&s, 1.0);
            random_weights(&s);
            ohm_rule_params_t p;
            ohm_rule_defaults(&p, (ohm_rule_t)r);
            p.b = 1;
            p.tau = 20;
            cr_assert_eq(aggp(&p, &s, NULL), 0);
            float *first = malloc(sizeof(float) * s.d);
            memcpy(first, s.out, sizeof(float) * s.d);
            for (int rep = 0; rep < 3; rep++) {
                permute_neighbours(&s, 1);
                cr_assert_eq(aggp(&p, &s, NULL), 0);
                int exact = r == OHM_RULE_MEDIAN || r == OHM_RULE_KRUM;
                for (size_t c = 0; c < s.d; c++)
                    if (exact)
                        cr_expect_eq(s.out[c], first[c], "%s k=%d", ohm_rule_name((ohm_rule_t)r),
                                     k);
                    else
                        cr_expect(fabsf(s.out[c] - first[c]) <= 1e-5f * (1 + fabsf(first[c])),
                                  "%s k=%d c=%zu %g vs %g", ohm_rule_name((ohm_rule_t)r), k, c,
                                  s.out[c], first[c]);
            }
            free(first);
            set_free(&s);
        }
}

/* ------------------------------------------------------------ breakdown */

static void make_bad(set_t *s, int i, int kind)
{
    float *v = row(s, i);
    for (size_t c = 0; c < s->d; c++)
        switch (kind) {
        case 0:
            v[c] = 1e30f;
            break;
        case 1:
            v[c] = -1e30f;
            break;
        case 2:
            v[c] = (c % 2) ? 1e30f : -1e30f;
            break;
        case 3:
            v[c] = (c % 3) ? 0.5f : NAN;
            break;
        case 4:
            v[c] = (c % 2) ? INFINITY : -INFINITY;
            break;
        default:
            v[c] = (c == s->d / 2) ? NAN : 0.0f;
            break; /* one NaN, else innocent */
        }
}

Test(robust, breakdown_outputs_stay_in_honest_range)
{
    const ohm_rule_t rules[] = {OHM_RULE_TRIMMED_MEAN, OHM_RULE_MEDIAN, OHM_RULE_GEOMED,
                                OHM_RULE_IOS,          OHM_RULE_FABA,   OHM_RULE_KRUM};
    rseed(16);
    size_t dims[] = {1, 50, 1000};
    for (int ri = 0; ri < 6; ri++)
        for (int di = 0; di < 3; di++)
            for (int b = 1; b <= 3; b++)
                for (int trial = 0; trial < 4; trial++) {
                    int k = 2 * b + 3 + trial;      /* honest majority, krum's 2b+3 */
                    set_t s = set_new(k, dims[di]); /* uniform weights: honest majority */
                    fill_random(&s, 1.0);
                    double *lo = malloc(sizeof(double) * s.d), *hi = malloc(sizeof(double) * s.d);
                    /* the bad rows: b neighbours at random positions */
                    int *bad = calloc((size_t)k, sizeof(int));
                    for (int n = 0; n < b;) {
                        int i = 1 + (int)(rnext() % (uint64_t)(k - 1));
                        if (!bad[i]) bad[i] = 1, n++;
                    }
                    for (size_t c = 0; c < s.d; c++) {
                        lo[c] = INFINITY, hi[c] = -INFINITY;
                        for (int i = 0; i < k; i++)
                            if (!bad[i]) {
                                lo[c] = fmin(lo[c], row(&s, i)[c]);
                                hi[c] = fmax(hi[c], row(&s, i)[c]);
                            }
                    }
                    for (int i = 0, j = 0; i < k; i++)
                        if (bad[i]) make_bad(&s, i, (int)((trial + j++ + b) % 6));
                    ohm_rule_stats_t st;
                    cr_assert_eq(agg(rules[ri], b, &s, &st), 0);
                    if (rules[ri] == OHM_RULE_GEOMED) {
                        /* the geometric median is pulled towards far rows by a
                         * bounded amount, not into the coordinate box: it must
                         * stay in the ball around the honest mean that holds
                         * every honest row */
                        double r2max = 0, z2 = 0;
                        int nh = k - b;
                        for (int i = 0; i < k; i++) {
                            if (bad[i]) continue;
                            double r2 = 0;
                            for (size_t c = 0; c < s.d; c++) {
                                double mu = 0;
                                for (int j = 0; j < k; j++)
                                    if (!bad[j]) mu += row(&s, j)[c] / nh;
                                r2 += (row(&s, i)[c] - mu) * (row(&s, i)[c] - mu);
                                if (i == 0) z2 += (s.out[c] - mu) * (s.out[c] - mu);
                            }
                            r2max = fmax(r2max, r2);
                        }
                        cr_expect(z2 <= r2max, "geomed k=%d b=%d d=%zu: %g outside %g", k, b, s.d,
                                  sqrt(z2), sqrt(r2max));
                        cr_expect(!bad[0]);
                    }
                    for (size_t c = 0; c < s.d && rules[ri] != OHM_RULE_GEOMED; c++) {
                        cr_expect(s.out[c] >= lo[c] - 1e-6 && s.out[c] <= hi[c] + 1e-6,
                                  "%s k=%d b=%d d=%zu c=%zu: %g not in [%g, %g]",
                                  ohm_rule_name(rules[ri]), k, b, s.d, c, s.out[c], lo[c], hi[c]);
                    }
                    free(lo);
                    free(hi);
                    free(bad);
                    set_free(&s);
                }
}

Test(robust, nan_rows_never_reach_the_output)
{
    rseed(17);
    for (int r = 0; r < OHM_RULE_COUNT; r++)
        for (int b = 1; b <= 2; b++) {
            int k = min_k((ohm_rule_t)r, b) + 2 * b + 1;
            set_t s = set_new(k, 200);
            fill_random(&s, 1.0);
            random_weights(&s);
            for (int i = 1; i <= b; i++)
                make_bad(&s, k - i, i == 1 ? 3 : 4);
            ohm_rule_stats_t st;
            ohm_rule_params_t p;
            ohm_rule_defaults(&p, (ohm_rule_t)r);
            p.b = b;
            p.tau = 0; /* adaptive radius for cc/scc */
            cr_assert_eq(aggp(&p, &s, &st), 0, "%s", ohm_rule_name((ohm_rule_t)r));
            cr_expect(all_finite(s.out, s.d), "%s b=%d", ohm_rule_name((ohm_rule_t)r), b);
            cr_expect_eq(st.nonfinite, b, "%s: nonfinite %d", ohm_rule_name((ohm_rule_t)r),
                         st.nonfinite);
            set_free(&s);
        }
}

Test(robust, mean_drops_nonfinite_rows_and_renormalizes)
{
    set_t s = set_new(3, 300);
    for (size_t c = 0; c < s.d; c++) {
        row(&s, 0)[c] = 1;
        row(&s, 1)[c] = 3;
        row(&s, 2)[c] = 0;
    }
    row(&s, 2)[299] = NAN; /* found in the last block: the pass restarts */
    s.w[0] = 0.5, s.w[1] = 0.25, s.w[2] = 0.25;
    ohm_rule_stats_t st;
    cr_assert_eq(agg(OHM_RULE_WEIGHTED, 0, &s, &st), 0);
    for (size_t c = 0; c < s.d; c++)
        cr_expect_float_eq(s.out[c], (0.5f + 0.75f) / 0.75f, 1e-6); /* row 2 gone */
    cr_expect_eq(st.nonfinite, 1);
    cr_expect_eq(st.discarded, 1);
    cr_assert_eq(agg(OHM_RULE_MEAN, 0, &s, &st), 0);
    cr_expect_float_eq(s.out[0], 2.0f, 1e-6);
    /* own vector non-finite too and nothing left: zeros, never NaN */
    make_bad(&s, 0, 3);
    make_bad(&s, 1, 4);
    cr_assert_eq(agg(OHM_RULE_MEAN, 0, &s, &st), 0);
    cr_expect(all_finite(s.out, s.d));
    set_free(&s);
}

Test(robust, median_beyond_tolerance_falls_back_to_own)
{
    set_t s = set_new(3, 2); /* 2 of 3 infinite: the median would be +Inf */
    set_rows(&s, (float[]){5, 6, INFINITY, NAN, INFINITY, NAN});
    cr_assert_eq(agg(OHM_RULE_MEDIAN, 0, &s, NULL), 0);
    expect_vec(s.out, (double[]){5, 6}, 2, 0);
    set_free(&s);
}

/* ---------------------------------------------------------- b = 0 reductions */

/* Metropolis-Hastings weights of node 0 in a small graph: degrees (counting
 * the node itself) of node 0 and its neighbours. */
static void metropolis(set_t *s, const int *deg)
{
    double sum = 0;
    for (int j = 1; j < s->k; j++) {
        s->w[j] = 1.0 / (deg[0] > deg[j] ? deg[0] : deg[j]);
        sum += s->w[j];
    }
    s->w[0] = 1.0 - sum;
}

Test(robust, b0_reduces_to_weighted_or_plain_mean)
{
    rseed(18);
    set_t s = set_new(5, 777);
    fill_random(&s, 1.0);
    metropolis(&s, (int[]){5, 3, 6, 5, 2});
    float *wm = malloc(sizeof(float) * s.d), *pm = malloc(sizeof(float) * s.d);
    cr_assert_eq(agg(OHM_RULE_WEIGHTED, 0, &s, NULL), 0);
    memcpy(wm, s.out, sizeof(float) * s.d);
    /* weighted mean by hand */
    for (size_t c = 0; c < s.d; c++) {
        double m = 0;
        for (int i = 0; i < s.k; i++)
            m += s.w[i] * row(&s, i)[c];
        cr_expect(fabs(wm[c] - m) <= 1e-6 * (1 + fabs(m)));
    }
    cr_assert_eq(agg(OHM_RULE_MEAN, 0, &s, NULL), 0);
    memcpy(pm, s.out, sizeof(float) * s.d);
    cr_assert_eq(agg(OHM_RULE_IOS, 0, &s, NULL), 0);
    cr_expect_arr_eq(s.out, wm, sizeof(float) * s.d);
    cr_assert_eq(agg(OHM_RULE_FABA, 0, &s, NULL), 0);
    cr_expect_arr_eq(s.out, pm, sizeof(float) * s.d);
    cr_assert_eq(agg(OHM_RULE_TRIMMED_MEAN, 0, &s, NULL), 0);
    for (size_t c = 0; c < s.d; c++)
        cr_expect(fabsf(s.out[c] - pm[c]) <= 1e-6f * (1 + fabsf(pm[c])));
    /* scc with an unreachable radius is the weighted mean too */
    ohm_rule_params_t p;
    ohm_rule_defaults(&p, OHM_RULE_SCC);
    p.tau = 1e9;
    cr_assert_eq(aggp(&p, &s, NULL), 0);
    for (size_t c = 0; c < s.d; c++)
        cr_expect(fabsf(s.out[c] - wm[c]) <= 1e-5f * (1 + fabsf(wm[c])));
    free(wm);
    free(pm);
    set_free(&s);
}

/* -------------------------------------------------- determinism, errors, stats */

Test(robust, deterministic_bitwise)
{
    rseed(19);
    for (int r = 0; r < OHM_RULE_COUNT; r++) {
        set_t s = set_new(9, 1001);
        fill_random(&s, 1.0);
        random_weights(&s);
        make_bad(&s, 8, 0);
        ohm_rule_params_t p;
        ohm_rule_defaults(&p, (ohm_rule_t)r);
        p.b = 2;
        p.tau = 0;
        cr_assert_eq(aggp(&p, &s, NULL), 0);
        float *first = malloc(sizeof(float) * s.d);
        memcpy(first, s.out, sizeof(float) * s.d);
        memset(s.out, 0xff, sizeof(float) * s.d);
        cr_assert_eq(aggp(&p, &s, NULL), 0);
        cr_expect_arr_eq(s.out, first, sizeof(float) * s.d, "%s", ohm_rule_name((ohm_rule_t)r));
        cr_expect(all_finite(s.out, s.d));
        free(first);
        set_free(&s);
    }
}

Test(robust, invalid_arguments)
{
    set_t s = set_new(4, 3);
    ohm_rule_params_t p;
    ohm_rule_defaults(&p, OHM_RULE_TRIMMED_MEAN);
    p.b = 2; /* k = 4 <= 2b */
    cr_expect_eq(aggp(&p, &s, NULL), OHM_ROBUST_EARGS);
    p.b = 1;
    cr_expect_eq(aggp(&p, &s, NULL), OHM_ROBUST_OK);
    p.b = -1;
    cr_expect_eq(aggp(&p, &s, NULL), OHM_ROBUST_EARGS);
    ohm_rule_defaults(&p, OHM_RULE_KRUM);
    p.b = 2; /* k = 4 < b + 3 */
    cr_expect_eq(aggp(&p, &s, NULL), OHM_ROBUST_EARGS);
    p.b = 1;
    cr_expect_eq(aggp(&p, &s, NULL), OHM_ROBUST_OK);
    ohm_rule_defaults(&p, OHM_RULE_MULTI_KRUM);
    p.m = 5;
    cr_expect_eq(aggp(&p, &s, NULL), OHM_ROBUST_EARGS);
    ohm_rule_defaults(&p, OHM_RULE_IOS);
    p.b = 4; /* only 3 neighbours to drop */
    cr_expect_eq(aggp(&p, &s, NULL), OHM_ROBUST_EARGS);
    p.b = 3; /* drops all of them: the own vector */
    set_rows(&s, (float[]){1, 2, 3, 9, 9, 9, 8, 8, 8, 7, 7, 7});
    cr_expect_eq(aggp(&p, &s, NULL), OHM_ROBUST_OK);
    expect_vec(s.out, (double[]){1, 2, 3}, 3, 0);
    s.w[1] = -0.1; /* negative weight */
    cr_expect_eq(aggp(&p, &s, NULL), OHM_ROBUST_EARGS);
    s.w[1] = NAN;
    cr_expect_eq(aggp(&p, &s, NULL), OHM_ROBUST_EARGS);
    s.w[1] = 0.25;
    ohm_rule_defaults(&p, OHM_RULE_GEOMED);
    p.nu = 0;
    cr_expect_eq(aggp(&p, &s, NULL), OHM_ROBUST_EARGS);
    ohm_rule_defaults(&p, OHM_RULE_CC);
    p.iters = 0;
    cr_expect_eq(aggp(&p, &s, NULL), OHM_ROBUST_EARGS);
    ohm_rule_defaults(&p, OHM_RULE_MEAN);
    cr_expect_eq(ohm_robust_aggregate(&p, s.rows, s.w, 0, s.d, s.out, NULL), OHM_ROBUST_EARGS);
    cr_expect_eq(ohm_robust_aggregate(&p, s.rows, s.w, 4, s.d, NULL, NULL), OHM_ROBUST_EARGS);
    s.rows[2] = NULL;
    cr_expect_eq(aggp(&p, &s, NULL), OHM_ROBUST_EARGS);
    cr_expect_eq(ohm_robust_aggregate(&p, s.rows, s.w, 4, 0, s.out, NULL), OHM_ROBUST_OK);
    p.rule = OHM_RULE_COUNT;
    cr_expect_eq(ohm_robust_aggregate(&p, s.rows, s.w, 4, s.d, s.out, NULL), OHM_ROBUST_EARGS);
    cr_expect_str_eq(ohm_rule_name(OHM_RULE_COUNT), "unknown");
    set_free(&s);
}

Test(robust, weights_null_means_uniform)
{
    rseed(20);
    set_t s = set_new(6, 100);
    fill_random(&s, 1.0);
    cr_assert_eq(agg(OHM_RULE_WEIGHTED, 0, &s, NULL), 0); /* w = 1/6 each */
    float *a = malloc(sizeof(float) * s.d);
    memcpy(a, s.out, sizeof(float) * s.d);
    ohm_rule_params_t p;
    ohm_rule_defaults(&p, OHM_RULE_WEIGHTED);
    cr_assert_eq(ohm_robust_aggregate(&p, s.rows, NULL, s.k, s.d, s.out, NULL), 0);
    cr_expect_arr_eq(s.out, a, sizeof(float) * s.d);
    free(a);
    set_free(&s);
}

Test(robust, geomed_stops_early_and_cc_counts)
{
    set_t s = set_new(5, 4);
    for (int i = 0; i < 5; i++)
        for (int c = 0; c < 4; c++)
            row(&s, i)[c] = 2.0f; /* identical rows: converged at once */
    ohm_rule_stats_t st;
    cr_assert_eq(agg(OHM_RULE_GEOMED, 0, &s, &st), 0);
    cr_expect_eq(st.iters, 1);
    expect_vec(s.out, (double[]){2, 2, 2, 2}, 4, 0);
    ohm_rule_params_t p;
    ohm_rule_defaults(&p, OHM_RULE_CC);
    p.iters = 3;
    cr_assert_eq(aggp(&p, &s, &st), 0);
    cr_expect_eq(st.iters, 3);
    cr_expect_eq(st.clipped, 0);
    set_free(&s);
}

/* The coordinate-wise rules have a portable path and AVX2 / AVX-512VL kernels
 * (one sorted group, two sorted groups, or groups plus a merge network),
 * picked by k and the CPU. OHM_ROBUST_ISA lowers the choice, so every path
 * this machine can run is checked here against the sort reference, with and
 * without hostile rows of magnitude 1e30 (which must not cancel the honest
 * values away). */
Test(robust, every_vector_path_matches_reference)
{
    rseed(23);
    for (int ii = 0; ii < N_ISA; ii++) {
        const char *isa = use_isa(ii);
        for (int k = 1; k <= 40; k++)
            for (int hostile = 0; hostile < 2; hostile++) {
                set_t s = set_new(k, 384);
                fill_random(&s, 1.0);
                int nb = hostile ? (k - 1) / 3 : 0;
                for (int i = 0; i < nb; i++)
                    make_bad(&s, k - 1 - i, i % 3); /* +-1e30, finite */
                float *want = malloc(sizeof(float) * s.d);
                cr_assert_eq(agg(OHM_RULE_MEDIAN, nb, &s, NULL), 0);
                ref_coordwise(&s, 0, 1, want);
                cr_expect_arr_eq(s.out, want, sizeof(float) * s.d, "%s median k=%d hostile=%d", isa,
                                 k, hostile);
                for (int b = nb; 2 * b < k; b += (k > 12 ? 3 : 1)) {
                    cr_assert_eq(agg(OHM_RULE_TRIMMED_MEAN, b, &s, NULL), 0);
                    ref_coordwise(&s, b, 0, want);
                    for (size_t c = 0; c < s.d; c++)
                        cr_expect(fabsf(s.out[c] - want[c]) <= 0x1p-22f * fabsf(want[c]) + 1e-30f,
                                  "%s trimmed k=%d b=%d hostile=%d c=%zu: %g vs %g", isa, k, b,
                                  hostile, c, s.out[c], want[c]);
                }
                free(want);
                set_free(&s);
            }
    }
    unsetenv("OHM_ROBUST_ISA");
}

/* ---------------------------------------- faba without self; dropped rows */

/* Self 100, neighbours 0, 10, 60, b = 1. With self in the screening mean
 * (42.5) the farthest neighbour is 0; without it (the IOS paper's FABA, mean
 * 23.33) it is 60. Either way the output is the mean of self and the rest. */
Test(robust, faba_exclude_self_by_hand)
{
    set_t s = set_new(4, 1);
    set_rows(&s, (float[]){100, 0, 10, 60});
    ohm_rule_params_t p;
    ohm_rule_defaults(&p, OHM_RULE_FABA);
    p.b = 1;
    ohm_rule_stats_t st;
    cr_assert_eq(aggp(&p, &s, &st), 0);
    expect_vec(s.out, (double[]){170.0 / 3}, 1, 1e-6);
    cr_expect_eq(st.dropped_rows, 1u << 1);
    p.exclude_self = 1;
    cr_assert_eq(aggp(&p, &s, &st), 0);
    expect_vec(s.out, (double[]){110.0 / 3}, 1, 1e-6);
    cr_expect_eq(st.dropped_rows, 1u << 3);
    /* ios ignores the flag: self keeps its weight in the screening */
    p.rule = OHM_RULE_IOS;
    ohm_rule_params_t q = p;
    q.exclude_self = 0;
    set_t t = set_new(4, 1);
    set_rows(&t, (float[]){100, 0, 10, 60});
    cr_assert_eq(aggp(&p, &s, NULL), 0);
    cr_assert_eq(aggp(&q, &t, NULL), 0);
    cr_expect_eq(s.out[0], t.out[0]);
    set_free(&s);
    set_free(&t);
}

/* faba with exclude_self against its definition on random sets: b times the
 * plain mean of the active neighbours, drop the farthest; then the mean of
 * self and the active neighbours. */
Test(robust, faba_exclude_self_matches_definition)
{
    rseed(31);
    for (int k = 2; k <= 10; k++)
        for (int b = 0; b < k; b++) {
            set_t s = set_new(k, 23);
            fill_random(&s, 1.0);
            ohm_rule_params_t p;
            ohm_rule_defaults(&p, OHM_RULE_FABA);
            p.b = b;
            p.exclude_self = 1;
            ohm_rule_stats_t st;
            cr_assert_eq(aggp(&p, &s, &st), 0);
            int act[16];
            for (int i = 0; i < k; i++)
                act[i] = 1;
            double m[23];
            uint64_t dropped = 0;
            for (int t = 0; t < b; t++) {
                int n = 0;
                for (size_t c = 0; c < s.d; c++)
                    m[c] = 0;
                for (int i = 1; i < k; i++)
                    if (act[i]) {
                        n++;
                        for (size_t c = 0; c < s.d; c++)
                            m[c] += row(&s, i)[c];
                    }
                if (!n) break;
                int far = -1;
                double fd = -1;
                for (int i = 1; i < k; i++) {
                    if (!act[i]) continue;
                    double dd = 0;
                    for (size_t c = 0; c < s.d; c++) {
                        double e = row(&s, i)[c] - m[c] / n;
                        dd += e * e;
                    }
                    if (dd > fd) fd = dd, far = i;
                }
                act[far] = 0;
                dropped |= 1ULL << far;
            }
            double want[23];
            int n = 0;
            for (size_t c = 0; c < s.d; c++)
                want[c] = 0;
            for (int i = 0; i < k; i++)
                if (act[i]) {
                    n++;
                    for (size_t c = 0; c < s.d; c++)
                        want[c] += row(&s, i)[c];
                }
            for (size_t c = 0; c < s.d; c++)
                want[c] /= n;
            expect_vec(s.out, want, s.d, 1e-5);
            cr_expect_eq(st.dropped_rows, dropped, "k %d b %d", k, b);
            set_free(&s);
        }
}

/* The dropped rows are reported by the selecting rules, krum included. */
Test(robust, dropped_rows_name_the_rows)
{
    set_t s = set_new(5, 1);
    set_rows(&s, (float[]){0, 1, -1, 50, 2});
    ohm_rule_stats_t st;
    cr_assert_eq(agg(OHM_RULE_IOS, 1, &s, &st), 0);
    cr_expect_eq(st.dropped_rows, 1u << 3);
    cr_assert_eq(agg(OHM_RULE_FABA, 2, &s, &st), 0);
    cr_expect(st.dropped_rows & (1u << 3));
    cr_expect_eq(__builtin_popcountll(st.dropped_rows), 2);
    cr_assert_eq(agg(OHM_RULE_MULTI_KRUM, 1, &s, &st), 0);
    cr_expect_eq(st.dropped_rows, 1u << 3);
    cr_assert_eq(agg(OHM_RULE_MEDIAN, 1, &s, &st), 0);
    cr_expect_eq(st.dropped_rows, 0u, "coordinate-wise rules drop no row");
    set_free(&s);
}
