/* ohmbench aggregate: throughput of the robust aggregation rules.
 *
 *   ohmbench aggregate [--d 1000000] [--k 4,8,16,32] [--rule all|NAME] [--reps 5] [--b B]
 *                      [--clock cpu|wall]
 *
 * Single thread, timed in the thread's CPU time by default (on a shared
 * machine wall time also counts the time other processes held the core; on
 * an idle one the two agree), wall time with --clock wall. For each k and rule: GB/s of input read
 * (k*d*4 bytes over the best of `reps` timings) against the memcpy bandwidth of the same bytes
 * measured in the same run (each of the k rows copied into one d-float
 * buffer, i.e. the rule's own traffic: read k*d, write d). Median also against
 * a naive reference (per-coordinate qsort, timed on a slice of the coordinates
 * and scaled), and geomed per Weiszfeld iteration against one pass of `mean`:
 * as configured (stopping on the relative change, the median start included)
 * and with all T iterations run (tol = 0).
 * b defaults to max(1, k/4). Inputs: honest-looking rows (a common centre plus
 * unit noise per coordinate), uniform weights, tau adaptive for cc/scc. */
#include "ohm_robust.h"
#include "ohmbench.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* approximately N(0,1): sum of 4 uniforms, centred and scaled (cheap, enough here) */
static float noise(uint64_t *s)
{
    double u = 0;
    for (int i = 0; i < 4; i++)
        u += (double)(mix(s) >> 11) * 0x1.0p-53;
    return (float)((u - 2.0) * 1.7320508);
}

static volatile float sink;

static int use_wall; /* --clock wall */

static double now(void)
{
    return use_wall ? ohm_bench_now() : ohm_bench_cpu_now();
}

static double time_memcpy(const float *const *x, int k, size_t d, float *dst, int reps)
{
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int i = 0; i < k; i++)
            memcpy(dst, x[i], sizeof(float) * d);
        double t = now() - t0;
        sink = dst[d / 2];
        if (t < best) best = t;
    }
    return best;
}

static int cmpf(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Per coordinate: gather, qsort, midpoint. Timed on n coordinates. */
static double time_naive_median(const float *const *x, int k, size_t n, float *out)
{
    float *v = malloc(sizeof(float) * (size_t)k);
    if (!v) return -1;
    double t0 = now();
    for (size_t c = 0; c < n; c++) {
        for (int i = 0; i < k; i++)
            v[i] = x[i][c];
        qsort(v, (size_t)k, sizeof(float), cmpf);
        out[c] = 0.5f * v[(k - 1) / 2] + 0.5f * v[k / 2];
    }
    double t = now() - t0;
    free(v);
    return t;
}

static double time_rule(const ohm_rule_params_t *p, const float *const *x, const double *w, int k,
                        size_t d, float *out, int reps, ohm_rule_stats_t *st)
{
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        int rc = ohm_robust_aggregate(p, x, w, k, d, out, st);
        double t = now() - t0;
        if (rc) return -1;
        if (t < best) best = t;
    }
    return best;
}

static int parse_ks(const char *s, int *ks, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1024) return -1;
        ks[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

int ohm_bench_aggregate(int argc, char **argv)
{
    long dl = ohm_bench_opt_int(argc, argv, "--d", 1000000);
    const char *kspec = ohm_bench_opt_str(argc, argv, "--k", "4,8,16,32");
    const char *rname = ohm_bench_opt_str(argc, argv, "--rule", "all");
    int reps = (int)ohm_bench_opt_int(argc, argv, "--reps", 5);
    int bopt = (int)ohm_bench_opt_int(argc, argv, "--b", -1);
    const char *clock = ohm_bench_opt_str(argc, argv, "--clock", "cpu");
    use_wall = strcmp(clock, "wall") == 0;
    int ks[32];
    int nk = parse_ks(kspec, ks, 32);
    int only = strcmp(rname, "all") == 0 ? -1 : ohm_rule_from_name(rname);
    if (dl < 1 || nk < 1 || reps < 1 || (only < 0 && strcmp(rname, "all") != 0) ||
        (!use_wall && strcmp(clock, "cpu") != 0)) {
        fprintf(stderr, "ohmbench aggregate: need --d >= 1, --k like 4,8,16, --reps >= 1, "
                        "--rule all or a rule name, --clock cpu or wall\n");
        return 2;
    }
    size_t d = (size_t)dl;
    for (int ki = 0; ki < nk; ki++) {
        int k = ks[ki];
        int b = bopt >= 0 ? bopt : (k / 4 > 1 ? k / 4 : 1);
        float *data = malloc(sizeof(float) * d * (size_t)k);
        const float **x = malloc(sizeof(float *) * (size_t)k);
        double *w = malloc(sizeof(double) * (size_t)k);
        float *out = malloc(sizeof(float) * d), *dst = malloc(sizeof(float) * d);
        if (!data || !x || !w || !out || !dst) {
            fprintf(stderr, "ohmbench aggregate: out of memory for k=%d d=%zu\n", k, d);
            return 1;
        }
        uint64_t s = 42;
        for (size_t c = 0; c < d; c++) {
            float centre = 3 * noise(&s);
            for (int i = 0; i < k; i++)
                data[(size_t)i * d + c] = centre + noise(&s);
        }
        for (int i = 0; i < k; i++) {
            x[i] = data + (size_t)i * d;
            w[i] = 1.0 / k;
        }
        const double gb = (double)k * (double)d * sizeof(float) * 1e-9;
        double tcopy = time_memcpy(x, k, d, dst, reps + 2);
        const double copy_gbs = gb / tcopy;
        char name[96];
        snprintf(name, sizeof name, "aggregate.memcpy.k%d", k);
        ohm_bench_emit(name, copy_gbs, "GB/s", NULL, 0);

        double tmean = -1;
        for (int r = 0; r < OHM_RULE_COUNT; r++) {
            if (only >= 0 && r != only && !(r == OHM_RULE_MEAN && only == OHM_RULE_GEOMED))
                continue;
            ohm_rule_params_t p;
            ohm_rule_defaults(&p, (ohm_rule_t)r);
            p.b = b;
            p.tau = 0;
            ohm_rule_stats_t st;
            if (time_rule(&p, x, w, k, d, out, 1, &st) < 0) { /* warm-up and argument check */
                fprintf(stderr, "ohmbench aggregate: %s rejects k=%d b=%d\n",
                        ohm_rule_name((ohm_rule_t)r), k, b);
                continue;
            }
            double t = time_rule(&p, x, w, k, d, out, reps, &st);
            if (r == OHM_RULE_MEAN) tmean = t;
            if (only >= 0 && r != only) continue;
            snprintf(name, sizeof name, "aggregate.%s.k%d.b%d", ohm_rule_name((ohm_rule_t)r), k, b);
            ohm_bench_emit(name, gb / t, "GB/s", "memcpy", copy_gbs);
            if (r == OHM_RULE_MEDIAN) {
                size_t n = d < 131072 ? d : 131072;
                double tn = time_naive_median(x, k, n, dst) * (double)d / (double)n;
                snprintf(name, sizeof name, "aggregate.median.k%d.vs_naive", k);
                ohm_bench_emit(name, gb / t, "GB/s", "qsort_median", gb / tn);
            }
            if (r == OHM_RULE_GEOMED && tmean > 0 && st.iters > 0) {
                /* seconds per Weiszfeld iteration (the median start included)
                 * against one streaming pass of `mean` over the same input */
                snprintf(name, sizeof name, "aggregate.geomed.k%d.T%d.per_iter", k, st.iters);
                ohm_bench_emit(name, t / st.iters, "s", "mean_pass", tmean);
                /* and with every one of the T iterations run (tol = 0): the
                 * start is then spread over T passes, as in "T passes" */
                p.tol = 0;
                double tf = time_rule(&p, x, w, k, d, out, reps, &st);
                if (tf > 0 && st.iters > 0) {
                    snprintf(name, sizeof name, "aggregate.geomed.k%d.T%d.fixed_per_iter", k,
                             st.iters);
                    ohm_bench_emit(name, tf / st.iters, "s", "mean_pass", tmean);
                }
            }
        }
        free(data);
        free(x);
        free(w);
        free(out);
        free(dst);
    }
    return 0;
}
