/* ohm_topo_spectral: the spectral gap 1 - |lambda_2| of the combination
 * matrix A. A reversible A (pi_i a_ij = pi_j a_ji for some pi > 0: every
 * symmetric A, Metropolis and uniform weights) of at most OHM_TOPO_DENSE_MAX
 * peers is symmetrized and its extreme eigenvalues computed exactly: by
 * LAPACK's dsyevr when the build found LAPACKE, else by the hand-written
 * Householder tridiagonalization and Sturm bisection below (kept as the
 * fallback, and tested against LAPACK). Any other A gets a power-iteration
 * estimate. */
#include "ohm_topology.h"

#include "ohm_error.h"
#include "ohm_rng.h"
#include "ohm_topo_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef OHM_HAVE_LAPACKE
#include <lapacke.h>
#endif

/* Finds pi > 0 with pi_i a_ij = pi_j a_ji on every edge (A reversible), by
 * walking the positive-weight edges from each unvisited peer. Writes sqrt(pi)
 * into sq and sets *reversible; *reversible = 0 when no such pi exists.
 * Errors: OHM_ENOMEM. */
static int reversible_sqrt_pi(const ohm_topology_t *t, double *sq, int *reversible)
{
    int n = t->n;
    double *pi = malloc((size_t)n * sizeof *pi);
    uint32_t *queue = malloc((size_t)n * sizeof *queue);
    if (!pi || !queue) {
        free(pi);
        free(queue);
        return ohm_error_set(OHM_ENOMEM, "spectral gap: reversibility of %d peers", n);
    }
    int ok = 1;
    for (int i = 0; i < n; i++)
        pi[i] = -1;
    for (int r = 0; ok && r < n; r++) {
        if (pi[r] > 0) continue;
        size_t head = 0, tail = 0;
        pi[r] = 1;
        queue[tail++] = (uint32_t)r;
        while (ok && head < tail) {
            uint32_t u = queue[head++];
            for (uint32_t s = t->off[u]; s < t->off[u + 1]; s++) {
                uint32_t v = t->adj[s];
                double auv = t->w[s], avu = ohm_topology_weight(t, v, u);
                if ((auv > 0) != (avu > 0)) {
                    ok = 0;
                    break;
                }
                if (auv == 0 || pi[v] > 0) continue;
                pi[v] = pi[u] * auv / avu;
                if (!isfinite(pi[v]) || pi[v] < 1e-150 || pi[v] > 1e150) ok = 0;
                queue[tail++] = v;
            }
        }
    }
    for (int u = 0; ok && u < n; u++)
        for (uint32_t s = t->off[u]; s < t->off[u + 1]; s++) {
            uint32_t v = t->adj[s];
            double x = pi[u] * t->w[s], y = pi[v] * ohm_topology_weight(t, v, (uint32_t)u);
            if (fabs(x - y) > 1e-12 * fmax(x, y)) ok = 0;
        }
    for (int i = 0; ok && i < n; i++)
        sq[i] = sqrt(pi[i]);
    free(pi);
    free(queue);
    *reversible = ok;
    return OHM_OK;
}

/* Householder reduction of the symmetric n x n matrix a (row-major, destroyed)
 * to tridiagonal form: diagonal d[n], off-diagonal e[n-1]; v and p are n-entry
 * work arrays. Each step reflects
 * column k below the diagonal onto its first entry; with v a unit vector,
 * H A H = A - 2 (v w^T + w v^T), w = A v - (v^T A v) v. */
static void tridiagonalize(double *a, int n, double *d, double *e, double *v, double *p)
{
    for (int k = 0; k + 2 < n; k++) {
        int m = n - k - 1; /* size of the trailing block */
        double *x = v;
        double nrm = 0;
        for (int i = 0; i < m; i++) {
            x[i] = a[(size_t)(k + 1 + i) * n + k];
            nrm += x[i] * x[i];
        }
        nrm = sqrt(nrm);
        d[k] = a[(size_t)k * n + k];
        if (nrm == 0) {
            e[k] = 0;
            continue;
        }
        double alpha = x[0] > 0 ? -nrm : nrm;
        e[k] = alpha;
        x[0] -= alpha;
        double vn = 0;
        for (int i = 0; i < m; i++)
            vn += x[i] * x[i];
        vn = sqrt(vn);
        if (vn == 0) continue;
        for (int i = 0; i < m; i++)
            x[i] /= vn;
        double K = 0;
        for (int i = 0; i < m; i++) {
            const double *row = a + (size_t)(k + 1 + i) * n + k + 1;
            double s = 0;
            for (int j = 0; j < m; j++)
                s += row[j] * x[j];
            p[i] = s;
            K += x[i] * s;
        }
        for (int i = 0; i < m; i++)
            p[i] -= K * x[i];
        for (int i = 0; i < m; i++) {
            double *row = a + (size_t)(k + 1 + i) * n + k + 1;
            double vi = 2 * x[i], wi = 2 * p[i];
            for (int j = 0; j < m; j++)
                row[j] -= vi * p[j] + wi * x[j];
        }
    }
    if (n >= 2) {
        d[n - 2] = a[(size_t)(n - 2) * n + n - 2];
        e[n - 2] = a[(size_t)(n - 1) * n + n - 2];
    }
    d[n - 1] = a[(size_t)(n - 1) * n + n - 1];
}

/* Number of eigenvalues of the tridiagonal (d, e) below x (Sturm sequence). */
static int sturm_below(const double *d, const double *e, int n, double x)
{
    int c = 0;
    double q = 1;
    for (int i = 0; i < n; i++) {
        double off = i > 0 ? e[i - 1] * e[i - 1] : 0;
        q = d[i] - x - (i > 0 ? off / q : 0);
        if (fabs(q) < 1e-300) q = -1e-300;
        if (q < 0) c++;
    }
    return c;
}

/* Smallest (want_max = 0) or largest eigenvalue of the tridiagonal by bisection. */
static double tridiag_extreme(const double *d, const double *e, int n, int want_max)
{
    double r = 0;
    for (int i = 0; i < n; i++) {
        double g = fabs(d[i]) + (i > 0 ? fabs(e[i - 1]) : 0) + (i + 1 < n ? fabs(e[i]) : 0);
        if (g > r) r = g;
    }
    double lo = -r - 1e-12, hi = r + 1e-12;
    for (int it = 0; it < 200 && hi - lo > 1e-15; it++) {
        double mid = 0.5 * (lo + hi);
        int c = sturm_below(d, e, n, mid);
        /* The wanted eigenvalue lies above mid iff fewer than n (largest) or
         * no (smallest) eigenvalues lie below it. */
        int above = want_max ? c < n : c == 0;
        if (above)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

int ohm_topo_have_lapack(void)
{
#ifdef OHM_HAVE_LAPACKE
    return 1;
#else
    return 0;
#endif
}

/* The hand-written path: tridiagonalize, then bisect for both ends. */
static int builtin_extremes(double *a, int n, double *lmin, double *lmax)
{
    double *work = malloc(4 * (size_t)n * sizeof *work);
    if (!work) return ohm_error_set(OHM_ENOMEM, "spectral gap: %d x %d eigenvalues", n, n);
    double *d = work, *e = work + n, *v = work + 2 * (size_t)n, *p = work + 3 * (size_t)n;
    tridiagonalize(a, n, d, e, v, p);
    *lmin = tridiag_extreme(d, e, n, 0);
    *lmax = tridiag_extreme(d, e, n, 1);
    free(work);
    return OHM_OK;
}

#ifdef OHM_HAVE_LAPACKE
/* dsyevr on the lower triangle (the matrix is symmetric, so the storage order
 * does not matter): all eigenvalues, no vectors, ascending. */
static int lapack_extremes(double *a, int n, double *lmin, double *lmax)
{
    double *w = malloc((size_t)n * sizeof *w);
    if (!w) return ohm_error_set(OHM_ENOMEM, "spectral gap: %d eigenvalues", n);
    double z[1];
    lapack_int isuppz[2], m = 0;
    lapack_int info = LAPACKE_dsyevr(LAPACK_COL_MAJOR, 'N', 'A', 'L', n, a, n, 0, 0, 0, 0,
                                     2 * LAPACKE_dlamch('S'), &m, w, z, 1, isuppz);
    int rc = OHM_OK;
    if (info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR)
        rc = ohm_error_set(OHM_ENOMEM, "spectral gap: dsyevr workspace for n = %d", n);
    else if (info != 0 || m != n)
        rc = ohm_error_set(OHM_ERANGE, "spectral gap: dsyevr failed (info %d, %d of %d values)",
                           (int)info, (int)m, n);
    else {
        *lmin = w[0];
        *lmax = w[n - 1];
    }
    free(w);
    return rc;
}
#endif

int ohm_topo_sym_extremes(double *a, int n, ohm_topo_eig_t method, double *lmin, double *lmax)
{
    if (method == OHM_TOPO_EIG_BUILTIN) return builtin_extremes(a, n, lmin, lmax);
#ifdef OHM_HAVE_LAPACKE
    return lapack_extremes(a, n, lmin, lmax);
#else
    return ohm_error_set(OHM_EUNSUPPORTED, "LAPACK (dsyevr) is not built in (liblapacke-dev)");
#endif
}

/* Reversible A: S = D^(1/2) A D^(-1/2) with D = diag(pi) is symmetric with A's
 * eigenvalues, and sqrt(pi) is its eigenvector for 1; S - u u^T (u = sqrt(pi)
 * normalized) moves that eigenvalue to 0, so the SLEM is the largest |eigenvalue|. */
static int slem_dense(const ohm_topology_t *t, const double *sq, ohm_topo_eig_t method,
                      double *slem)
{
    int n = t->n;
    double *a = calloc((size_t)n * n, sizeof *a);
    if (!a) return ohm_error_set(OHM_ENOMEM, "spectral gap: dense %d x %d matrix", n, n);
    double un = 0;
    for (int i = 0; i < n; i++)
        un += sq[i] * sq[i];
    un = sqrt(un);
    for (int i = 0; i < n; i++) {
        a[(size_t)i * n + i] = t->self_w[i];
        for (uint32_t s = t->off[i]; s < t->off[i + 1]; s++)
            a[(size_t)i * n + t->adj[s]] = sq[i] * t->w[s] / sq[t->adj[s]];
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0.5 * (a[(size_t)i * n + j] + a[(size_t)j * n + i]);
            s -= sq[i] * sq[j] / (un * un);
            a[(size_t)i * n + j] = a[(size_t)j * n + i] = s;
        }
    double lmin = 0, lmax = 0;
    int rc = ohm_topo_sym_extremes(a, n, method, &lmin, &lmax);
    free(a);
    if (rc == OHM_OK) *slem = fmax(fabs(lmin), fabs(lmax));
    return rc;
}

/* Any row-stochastic A: B = (I - 1 1^T / n) A has the spectrum of A with one
 * eigenvalue 1 replaced by 0 (A 1 = 1), so power iteration on B (multiply,
 * subtract the mean) grows like the SLEM. Complex or opposite-sign pairs make
 * single steps oscillate, so the rate is the geometric mean over windows of
 * 128 steps, until two windows agree to 1e-10 or the work budget (~5e8 slot
 * visits, at least 2000 steps) runs out. Converges like (|l3|/|l2|)^k: on
 * large rings it underestimates the SLEM (overestimates the gap). */
static int slem_power(const ohm_topology_t *t, double *out)
{
    int n = t->n;
    double *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        return ohm_error_set(OHM_ENOMEM, "spectral gap: power iteration over %d peers", n);
    }
    ohm_rng_t r;
    ohm_rng_seed(&r, 0x70777231, 0, 0);
    for (int i = 0; i < n; i++)
        x[i] = ohm_rng_uniform(&r) - 0.5;
    size_t work = t->off[n] + (size_t)n;
    long maxit = (long)(5e8 / (double)work);
    if (maxit < 2000) maxit = 2000;
    if (maxit > 1000000) maxit = 1000000;
    const int W = 128;
    double logsum = 0, prev = -1, slem = 0;
    int in_win = 0;
    for (long it = 0; it <= maxit; it++) {
        double mean = 0, nrm = 0;
        if (it == 0) {
            for (int i = 0; i < n; i++)
                y[i] = x[i];
        } else {
            for (int i = 0; i < n; i++) {
                double s = t->self_w[i] * x[i];
                for (uint32_t k = t->off[i]; k < t->off[i + 1]; k++)
                    s += t->w[k] * x[t->adj[k]];
                y[i] = s;
            }
        }
        for (int i = 0; i < n; i++)
            mean += y[i];
        mean /= n;
        for (int i = 0; i < n; i++) {
            y[i] -= mean;
            nrm += y[i] * y[i];
        }
        nrm = sqrt(nrm);
        if (nrm < 1e-250) {
            slem = 0;
            break;
        }
        for (int i = 0; i < n; i++)
            x[i] = y[i] / nrm;
        if (it == 0) continue;
        logsum += log(nrm);
        if (++in_win == W) {
            slem = exp(logsum / W);
            if (prev >= 0 && fabs(slem - prev) < 1e-10) break;
            prev = slem;
            logsum = 0;
            in_win = 0;
        }
    }
    free(x);
    free(y);
    *out = slem;
    return OHM_OK;
}

int ohm_topo_spectral_gap_with(const ohm_topology_t *t, ohm_topo_eig_t method, ohm_topo_gap_t *out)
{
    memset(out, 0, sizeof *out);
    if (t->n <= 1) {
        out->gap = 1.0;
        out->method = "single peer";
        return OHM_OK;
    }
    double slem = 0;
    int reversible = 0, rc = OHM_OK;
    if (t->n <= OHM_TOPO_DENSE_MAX) {
        double *sq = malloc((size_t)t->n * sizeof *sq);
        if (!sq) return ohm_error_set(OHM_ENOMEM, "spectral gap of %d peers", t->n);
        rc = reversible_sqrt_pi(t, sq, &reversible);
        if (!rc && reversible) rc = slem_dense(t, sq, method, &slem);
        free(sq);
        if (rc) return rc;
    }
    if (reversible) {
        out->method = method == OHM_TOPO_EIG_LAPACK ? "LAPACK dsyevr" : "Householder and bisection";
    } else {
        if ((rc = slem_power(t, &slem))) return rc;
        out->estimate = 1;
        out->method = "power iteration";
    }
    double gap = 1.0 - slem;
    out->gap = gap < 0 ? 0 : gap > 1 ? 1 : gap;
    return OHM_OK;
}

int ohm_topology_spectral_gap(const ohm_topology_t *t, ohm_topo_gap_t *out)
{
    return ohm_topo_spectral_gap_with(
        t, ohm_topo_have_lapack() ? OHM_TOPO_EIG_LAPACK : OHM_TOPO_EIG_BUILTIN, out);
}
