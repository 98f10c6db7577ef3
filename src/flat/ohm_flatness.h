/* ohm_flatness: how flat the minimum a run found is (docs/design.md, section "Flatness").
 *
 * Curvature measures work on any symmetric operator given as a mat-vec
 * callback (in practice ohm_hvp_apply), so they can be checked on explicit
 * matrices:
 *  - Hutchinson's trace estimate: tr(H) ~ mean of v^T H v over Rademacher
 *    probes v, with the standard error sd / sqrt(probes);
 *  - the top (largest algebraic) eigenvalue by Lanczos with full
 *    reorthogonalisation, stopped when the largest Ritz value changes by less
 *    than a relative tolerance between two iterations.
 * Perturbation sharpness is the mean increase of the loss under random
 * perturbations of relative radius rho: delta = rho ||w|| u / ||u|| with u
 * standard Gaussian over all parameters (one global radius, not per layer).
 * Each draw is antithetic: it counts (L(w+delta) + L(w-delta))/2 - L(w), which
 * has the same expectation as a one-sided draw (u and -u are equally likely)
 * without the variance of the gradient term. For a quadratic loss the exact
 * expectation is rho^2 ||w||^2 tr(H) / (2 d), d the number of parameters. The
 * same directions u are used for every radius, so the curve is smooth in rho. */
#ifndef OHM_FLATNESS_H
#define OHM_FLATNESS_H

#include "ohm_hvp.h"
#include "ohm_rng.h"

#include <stddef.h>

/* y[n] = A x[n] for a symmetric operator A. */
typedef void (*ohm_flat_matvec_fn)(void *ctx, const double *x, double *y);

/* Loss at parameters w[n]. */
typedef double (*ohm_flat_loss_fn)(void *ctx, const double *w);

/* Hutchinson estimate of tr(A) with `probes` >= 2 Rademacher vectors from rng.
 * Errors: OHM_EINVAL (probes < 2, n == 0), OHM_ENOMEM, OHM_ENONFINITE. */
int ohm_flat_trace(ohm_flat_matvec_fn f, void *ctx, size_t n, int probes, ohm_rng_t *rng,
                   double *trace, double *se);

/* Largest eigenvalue of A by Lanczos (at most max_iters >= 1 products, start
 * vector from rng), stopping when the relative change is below tol. *iters
 * (may be NULL) gets the products used. Errors: OHM_EINVAL, OHM_ENOMEM, OHM_ENONFINITE. */
int ohm_flat_top_eig(ohm_flat_matvec_fn f, void *ctx, size_t n, int max_iters, double tol,
                     ohm_rng_t *rng, double *lambda, int *iters);

/* Perturbation sharpness around w[n] (see above) for radii[nradii] with
 * `draws` >= 2 antithetic draws: mean[k] and se[k] per radius. loss0 is the
 * loss at w. Errors: OHM_EINVAL, OHM_ENOMEM, OHM_ENONFINITE (a loss blew up). */
int ohm_flat_sharpness(ohm_flat_loss_fn f, void *ctx, const double *w, size_t n, double loss0,
                       const double *radii, int nradii, int draws, ohm_rng_t *rng, double *mean,
                       double *se);

#define OHM_FLAT_MAX_RADII 16

/* What ohm_flatness_measure computes; zero probes/iters/draws skips that measure. */
typedef struct {
    int probes; /* Hutchinson probes (default 20) */
    int iters;  /* Lanczos iterations at most (default 30) */
    double tol; /* relative change that stops Lanczos (default 1e-4) */
    int nradii; /* sharpness radii (default 0.01, 0.05, 0.1) */
    double radii[OHM_FLAT_MAX_RADII];
    int draws;               /* antithetic draws per radius (default 10) */
    unsigned long long seed; /* seeds the OHM_STREAM_FLAT streams */
} ohm_flat_opts_t;

typedef struct {
    double loss, acc, grad_norm, param_norm;
    double trace, trace_se;
    double top_eig;
    int eig_iters;
    double sharp[OHM_FLAT_MAX_RADII], sharp_se[OHM_FLAT_MAX_RADII];
    double t_grad, t_trace, t_eig, t_sharp; /* seconds per measure */
} ohm_flat_result_t;

/* The defaults above. */
void ohm_flat_opts_default(ohm_flat_opts_t *o);

/* Every measure at the current parameters of h. Unrun measures are NaN.
 * Errors: as the functions above (OHM_EINVAL for nradii out of range). */
int ohm_flatness_measure(ohm_hvp_t *h, const ohm_flat_opts_t *o, ohm_flat_result_t *r);

#endif
