/* The spectral computation of topology/ohm_topo_spectral.c: the hand-written
 * eigensolver (Householder tridiagonalization, Sturm bisection) against
 * LAPACK's dsyevr when the build has it, on random symmetric matrices and on
 * the generated graphs, and the errors of each path. The exact values for
 * known graphs are checked in test_topology.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ohm_error.h"
#include "ohm_rng.h"
#include "ohm_topo_internal.h"
#include "ohm_topology.h"

/* A random symmetric n x n matrix with entries uniform in [-1, 1), row-major. */
static double *random_symmetric(ohm_rng_t *r, int n)
{
    double *a = malloc((size_t)n * n * sizeof *a);
    cr_assert_not_null(a);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++)
            a[(size_t)i * n + j] = a[(size_t)j * n + i] = 2 * ohm_rng_uniform(r) - 1;
    return a;
}

static void extremes(const double *src, int n, ohm_topo_eig_t m, double *lo, double *hi)
{
    double *a = malloc((size_t)n * n * sizeof *a);
    cr_assert_not_null(a);
    memcpy(a, src, (size_t)n * n * sizeof *a);
    int rc = ohm_topo_sym_extremes(a, n, m, lo, hi);
    cr_assert_eq(rc, 0, "n = %d, method %d: %s", n, (int)m, ohm_error_detail());
    free(a);
}

Test(topo_spectral, builtin_matches_lapack_on_random_matrices)
{
    if (!ohm_topo_have_lapack()) cr_skip_test("built without LAPACKE: nothing to compare with");
    ohm_rng_t r;
    ohm_rng_seed(&r, 20240611, 0, 0);
    static const int sizes[] = {1, 2, 3, 4, 5, 7, 8, 16, 31, 64, 100, 257};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int n = sizes[k];
        for (int rep = 0; rep < 3; rep++) {
            double *a = random_symmetric(&r, n);
            double blo, bhi, llo, lhi;
            extremes(a, n, OHM_TOPO_EIG_BUILTIN, &blo, &bhi);
            extremes(a, n, OHM_TOPO_EIG_LAPACK, &llo, &lhi);
            /* Both are backward stable: they agree to a few ulps of the norm
             * (at most about n here) times n. */
            double tol = 1e-12 * n;
            cr_assert_float_eq(blo, llo, tol, "n = %d: smallest %.17g vs LAPACK %.17g", n, blo,
                               llo);
            cr_assert_float_eq(bhi, lhi, tol, "n = %d: largest %.17g vs LAPACK %.17g", n, bhi, lhi);
            free(a);
        }
    }
}

Test(topo_spectral, builtin_matches_lapack_on_generated_graphs)
{
    if (!ohm_topo_have_lapack()) cr_skip_test("built without LAPACKE: nothing to compare with");
    static const char *const kinds[] = {"ring", "torus", "complete", "er",
                                        "exp",  "star",  "clusters"};
    static const int sizes[] = {3, 12, 40, 150};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int uniform = 0; uniform < 2; uniform++) {
                ohm_topogen_t g = {.kind = kinds[k],
                                   .n = sizes[s],
                                   .seed = 7,
                                   .p = 0.2,
                                   .weights = uniform ? "uniform" : NULL};
                if (sizes[s] == 3 && (!strcmp(g.kind, "torus") || !strcmp(g.kind, "clusters")))
                    g.n = 4;
                ohm_topology_t *t = NULL;
                cr_assert_eq(ohm_topology_generate(&g, &t), 0, "%s n=%d: %s", g.kind, g.n,
                             ohm_error_detail());
                ohm_topo_gap_t b, l;
                cr_assert_eq(ohm_topo_spectral_gap_with(t, OHM_TOPO_EIG_BUILTIN, &b), 0);
                cr_assert_eq(ohm_topo_spectral_gap_with(t, OHM_TOPO_EIG_LAPACK, &l), 0);
                cr_assert_not(b.estimate, "%s n=%d: reversible weights, yet estimated", g.kind,
                              g.n);
                cr_assert_float_eq(b.gap, l.gap, 1e-11, "%s n=%d %s: gap %.17g vs LAPACK %.17g",
                                   g.kind, g.n, uniform ? "uniform" : "metropolis", b.gap, l.gap);
                cr_assert(strstr(l.method, "LAPACK"), "method '%s'", l.method);
                cr_assert_null(strstr(b.method, "LAPACK"), "method '%s'", b.method);
                ohm_topology_destroy(&t);
            }
}

/* The public call uses LAPACK exactly when the build has it, and says so. */
Test(topo_spectral, default_method_follows_the_build)
{
    ohm_topogen_t g = {.kind = "ring", .n = 8};
    ohm_topology_t *t = NULL;
    cr_assert_eq(ohm_topology_generate(&g, &t), 0);
    ohm_topo_gap_t gap;
    cr_assert_eq(ohm_topology_spectral_gap(t, &gap), 0);
    cr_assert_eq(strstr(gap.method, "LAPACK") != NULL, ohm_topo_have_lapack(), "method '%s'",
                 gap.method);
    double expect = 1 - (1.0 / 3 + 2.0 / 3 * cos(2 * M_PI / 8));
    cr_assert_float_eq(gap.gap, expect, 1e-12);
    ohm_topology_destroy(&t);
}

Test(topo_spectral, lapack_when_not_built_in_is_an_error)
{
    double a[4] = {1, 0, 0, 2}, lo = 0, hi = 0;
    int rc = ohm_topo_sym_extremes(a, 2, OHM_TOPO_EIG_LAPACK, &lo, &hi);
    if (ohm_topo_have_lapack()) {
        cr_assert_eq(rc, 0, "%s", ohm_error_detail());
        cr_assert_float_eq(lo, 1, 1e-15);
        cr_assert_float_eq(hi, 2, 1e-15);
    } else {
        cr_assert_eq(rc, OHM_EUNSUPPORTED);
        cr_assert(strstr(ohm_error_detail(), "LAPACK"), "detail '%s'", ohm_error_detail());
    }
}

/* A diagonal matrix and a matrix with repeated eigenvalues: exact ends. */
Test(topo_spectral, builtin_on_known_spectra)
{
    enum { N = 6 };
    double a[N * N] = {0}, lo, hi;
    for (int i = 0; i < N; i++)
        a[i * N + i] = i - 2.5;
    cr_assert_eq(ohm_topo_sym_extremes(a, N, OHM_TOPO_EIG_BUILTIN, &lo, &hi), 0);
    cr_assert_float_eq(lo, -2.5, 1e-14);
    cr_assert_float_eq(hi, 2.5, 1e-14);
    /* J (all ones): eigenvalues N (once) and 0 (N - 1 times). */
    for (int i = 0; i < N * N; i++)
        a[i] = 1;
    cr_assert_eq(ohm_topo_sym_extremes(a, N, OHM_TOPO_EIG_BUILTIN, &lo, &hi), 0);
    cr_assert_float_eq(lo, 0, 1e-13);
    cr_assert_float_eq(hi, N, 1e-13);
}
