/* ohm_flatness: Hutchinson trace, Lanczos top eigenvalue, perturbation sharpness. */
#include "ohm_flatness.h"

#include "ohm_error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Sub-streams of OHM_STREAM_FLAT (passed as the "peer" of the stream), so that
 * running one measure more or less never changes the draws of another. */
enum { SUB_TRACE = 1, SUB_EIG = 2, SUB_SHARP = 3 };

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int ohm_flat_trace(ohm_flat_matvec_fn f, void *ctx, size_t n, int probes, ohm_rng_t *rng,
                   double *trace, double *se)
{
    if (n == 0 || probes < 2)
        return ohm_error_set(OHM_EINVAL, "trace: need n > 0 and at least 2 probes (got %d)",
                             probes);
    double *v = malloc(sizeof(double) * n), *y = malloc(sizeof(double) * n);
    if (!v || !y) {
        free(v);
        free(y);
        return ohm_error_set(OHM_ENOMEM, "trace: %zu-vectors", n);
    }
    /* Welford's running mean and variance of the probe values v^T A v. */
    double mean = 0.0, m2 = 0.0;
    int rc = OHM_OK;
    for (int p = 0; p < probes; p++) {
        uint64_t bits = 0;
        for (size_t i = 0; i < n; i++) {
            if (i % 64 == 0) bits = ohm_rng_next(rng);
            v[i] = (bits & 1) ? 1.0 : -1.0;
            bits >>= 1;
        }
        f(ctx, v, y);
        double s = dot(v, y, n);
        if (!isfinite(s)) {
            rc = ohm_error_set(OHM_ENONFINITE, "trace: probe %d gave a non-finite value", p);
            break;
        }
        double d = s - mean;
        mean += d / (p + 1);
        m2 += d * (s - mean);
    }
    free(v);
    free(y);
    if (rc) return rc;
    *trace = mean;
    *se = sqrt(m2 / (probes - 1) / probes);
    return OHM_OK;
}

/* Number of eigenvalues below x of the symmetric tridiagonal matrix with
 * diagonal a[k] and off-diagonal b[k-1] (Sturm count through the LDL^T pivots). */
static int sturm_below(const double *a, const double *b, int k, double x)
{
    int cnt = 0;
    double d = 1.0;
    for (int i = 0; i < k; i++) {
        d = a[i] - x - (i ? b[i - 1] * b[i - 1] / d : 0.0);
        if (d == 0.0) d = -1e-300; /* a pivot exactly 0: nudge, counts as below */
        if (d < 0) cnt++;
    }
    return cnt;
}

/* Largest eigenvalue of that tridiagonal matrix, by bisection on Gershgorin bounds. */
static double tridiag_top(const double *a, const double *b, int k)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < k; i++) {
        double r = (i ? fabs(b[i - 1]) : 0.0) + (i < k - 1 ? fabs(b[i]) : 0.0);
        if (a[i] - r < lo) lo = a[i] - r;
        if (a[i] + r > hi) hi = a[i] + r;
    }
    for (int it = 0; it < 200 && hi - lo > 1e-15 * fmax(fabs(lo), fabs(hi)) + 1e-300; it++) {
        double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi) break;
        if (sturm_below(a, b, k, mid) == k)
            hi = mid;
        else
            lo = mid;
    }
    return 0.5 * (lo + hi);
}

int ohm_flat_top_eig(ohm_flat_matvec_fn f, void *ctx, size_t n, int max_iters, double tol,
                     ohm_rng_t *rng, double *lambda, int *iters)
{
    if (n == 0 || max_iters < 1 || !(tol >= 0))
        return ohm_error_set(OHM_EINVAL, "top eigenvalue: need n > 0, iters >= 1, tol >= 0");
    int m = (size_t)max_iters < n ? max_iters : (int)n;
    double *Q = malloc(sizeof(double) * n * (size_t)m), *w = malloc(sizeof(double) * n);
    double *al = malloc(sizeof(double) * (size_t)m), *be = malloc(sizeof(double) * (size_t)m);
    if (!Q || !w || !al || !be) {
        free(Q);
        free(w);
        free(al);
        free(be);
        return ohm_error_set(OHM_ENOMEM, "top eigenvalue: %d Lanczos vectors of %zu", m, n);
    }
    double nrm = 0.0;
    do {
        for (size_t i = 0; i < n; i++)
            Q[i] = ohm_rng_normal(rng);
        nrm = sqrt(dot(Q, Q, n));
    } while (nrm == 0.0);
    for (size_t i = 0; i < n; i++)
        Q[i] /= nrm;
    double theta = NAN, prev = NAN, scale = 0.0;
    int used = 0, rc = OHM_OK;
    for (int j = 0; j < m; j++) {
        double *q = Q + (size_t)j * n;
        f(ctx, q, w);
        used++;
        double a = dot(q, w, n);
        if (!isfinite(a)) {
            rc = ohm_error_set(OHM_ENONFINITE, "top eigenvalue: non-finite product at step %d", j);
            break;
        }
        al[j] = a;
        const double *qp = j ? q - n : q; /* previous Lanczos vector */
        double bp = j ? be[j - 1] : 0.0;
        for (size_t i = 0; i < n; i++)
            w[i] -= a * q[i] + bp * qp[i];
        /* Full reorthogonalisation: without it the Ritz values of a long run
         * repeat converged eigenvalues (ghosts) and the stop rule misfires. */
        for (int i = 0; i <= j; i++) {
            const double *qi = Q + (size_t)i * n;
            double c = dot(qi, w, n);
            for (size_t t = 0; t < n; t++)
                w[t] -= c * qi[t];
        }
        double b = sqrt(dot(w, w, n));
        theta = tridiag_top(al, be, j + 1);
        scale = fmax(scale, fmax(fabs(a), b));
        int converged = j > 0 && fabs(theta - prev) <= tol * fabs(theta);
        /* b ~ 0: the Krylov space is invariant and theta is exact. */
        if (converged || j == m - 1 || b <= 1e-12 * scale) break;
        be[j] = b;
        for (size_t i = 0; i < n; i++)
            q[n + i] = w[i] / b;
        prev = theta;
    }
    free(Q);
    free(w);
    free(al);
    free(be);
    if (rc) return rc;
    *lambda = theta;
    if (iters) *iters = used;
    return OHM_OK;
}

int ohm_flat_sharpness(ohm_flat_loss_fn f, void *ctx, const double *w, size_t n, double loss0,
                       const double *radii, int nradii, int draws, ohm_rng_t *rng, double *mean,
                       double *se)
{
    if (n == 0 || nradii < 1 || draws < 2 || !isfinite(loss0))
        return ohm_error_set(OHM_EINVAL,
                             "sharpness: need n > 0, a radius, 2 draws and a finite loss");
    for (int k = 0; k < nradii; k++)
        if (!(radii[k] >= 0) || !isfinite(radii[k]))
            return ohm_error_set(OHM_EINVAL, "sharpness: radius %g", radii[k]);
    double *u = malloc(sizeof(double) * n), *wp = malloc(sizeof(double) * n);
    double *m2 = calloc((size_t)nradii, sizeof(double));
    if (!u || !wp || !m2) {
        free(u);
        free(wp);
        free(m2);
        return ohm_error_set(OHM_ENOMEM, "sharpness: %zu-vectors", n);
    }
    double wn = sqrt(dot(w, w, n));
    for (int k = 0; k < nradii; k++)
        mean[k] = 0.0;
    int rc = OHM_OK;
    for (int d = 0; d < draws && !rc; d++) {
        double un = 0.0;
        do {
            for (size_t i = 0; i < n; i++)
                u[i] = ohm_rng_normal(rng);
            un = sqrt(dot(u, u, n));
        } while (un == 0.0);
        for (int k = 0; k < nradii; k++) {
            double s = radii[k] * wn / un, lp, lm;
            for (size_t i = 0; i < n; i++)
                wp[i] = w[i] + s * u[i];
            lp = f(ctx, wp);
            for (size_t i = 0; i < n; i++)
                wp[i] = w[i] - s * u[i];
            lm = f(ctx, wp);
            double inc = 0.5 * (lp + lm) - loss0;
            if (!isfinite(inc)) {
                rc =
                    ohm_error_set(OHM_ENONFINITE,
                                  "sharpness: loss not finite at radius %g (draw %d)", radii[k], d);
                break;
            }
            double dv = inc - mean[k];
            mean[k] += dv / (d + 1);
            m2[k] += dv * (inc - mean[k]);
        }
    }
    for (int k = 0; k < nradii; k++)
        se[k] = sqrt(m2[k] / (draws - 1) / draws);
    free(u);
    free(wp);
    free(m2);
    return rc;
}

void ohm_flat_opts_default(ohm_flat_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->probes = 20;
    o->iters = 30;
    o->tol = 1e-4;
    o->nradii = 3;
    o->radii[0] = 0.01;
    o->radii[1] = 0.05;
    o->radii[2] = 0.1;
    o->draws = 10;
    o->seed = 1;
}

static void hvp_matvec(void *ctx, const double *x, double *y)
{
    ohm_hvp_apply(ctx, x, y);
}

static double hvp_loss(void *ctx, const double *w)
{
    return ohm_hvp_loss_at(ctx, w);
}

int ohm_flatness_measure(ohm_hvp_t *h, const ohm_flat_opts_t *o, ohm_flat_result_t *r)
{
    if (o->nradii < 0 || o->nradii > OHM_FLAT_MAX_RADII)
        return ohm_error_set(OHM_EINVAL, "flatness: %d radii (at most %d)", o->nradii,
                             OHM_FLAT_MAX_RADII);
    size_t n = ohm_hvp_nparams(h);
    r->trace = r->trace_se = r->top_eig = NAN;
    r->eig_iters = 0;
    for (int k = 0; k < OHM_FLAT_MAX_RADII; k++)
        r->sharp[k] = r->sharp_se[k] = NAN;
    r->t_trace = r->t_eig = r->t_sharp = 0.0;
    double *g = malloc(sizeof(double) * (n ? n : 1));
    if (!g) return ohm_error_set(OHM_ENOMEM, "flatness: gradient of %zu", n);
    double t0 = now_s();
    ohm_hvp_loss_grad(h, &r->loss, &r->acc, g);
    r->grad_norm = sqrt(dot(g, g, n));
    free(g);
    const double *w = ohm_hvp_params(h);
    r->param_norm = sqrt(dot(w, w, n));
    r->t_grad = now_s() - t0;
    if (!isfinite(r->loss) || !isfinite(r->grad_norm))
        return ohm_error_set(OHM_ENONFINITE, "flatness: loss or gradient not finite");
    ohm_rng_t rng;
    int rc = OHM_OK;
    if (o->probes > 0) {
        t0 = now_s();
        ohm_rng_seed(&rng, o->seed, SUB_TRACE, OHM_STREAM_FLAT);
        rc = ohm_flat_trace(hvp_matvec, h, n, o->probes, &rng, &r->trace, &r->trace_se);
        r->t_trace = now_s() - t0;
        if (rc) return rc;
    }
    if (o->iters > 0) {
        t0 = now_s();
        ohm_rng_seed(&rng, o->seed, SUB_EIG, OHM_STREAM_FLAT);
        rc = ohm_flat_top_eig(hvp_matvec, h, n, o->iters, o->tol, &rng, &r->top_eig, &r->eig_iters);
        r->t_eig = now_s() - t0;
        if (rc) return rc;
    }
    if (o->draws > 0 && o->nradii > 0) {
        t0 = now_s();
        ohm_rng_seed(&rng, o->seed, SUB_SHARP, OHM_STREAM_FLAT);
        rc = ohm_flat_sharpness(hvp_loss, h, w, n, r->loss, o->radii, o->nradii, o->draws, &rng,
                                r->sharp, r->sharp_se);
        r->t_sharp = now_s() - t0;
    }
    return rc;
}
