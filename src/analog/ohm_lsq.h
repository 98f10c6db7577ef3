/* ohm_lsq: the least-squares experiment of the analog-training theory papers
 * (Wu et al., NeurIPS 2024 and 2025), shared by the theory tests and the
 * examples/analog-lsq driver.
 *
 * Problem: f(w) = 1/(2N) ||X w - y||^2 with X (N x D) standard normal rows and
 * y = X w_t + noise (std sigma), so the optimum w_opt has a nonzero per-sample
 * gradient noise. A single analog tile of 1 x D holds w; each iteration draws
 * a mini-batch (with replacement), reads w x through the tile, and calls the
 * tile's update with d = (w x - y)/B. The error is f(w) - f(w_opt). */
#ifndef OHM_LSQ_H
#define OHM_LSQ_H

#include "ohm_analog.h"
#include "ohm_device.h"

#include <stdint.h>

typedef struct ohm_lsq ohm_lsq_t;

/* A seeded problem of `rows` samples and `dim` features; teacher entries
 * N(0, teacher_std^2), label noise N(0, noise^2). OHM_EINVAL when rows < dim
 * (the optimum must be unique), OHM_ENOMEM. Caller owns *out. */
int ohm_lsq_new(int rows, int dim, double teacher_std, double noise, uint64_t seed,
                ohm_lsq_t **out);

/* Frees; NULL-safe; clears the caller's pointer. */
void ohm_lsq_destroy(ohm_lsq_t **q);

int ohm_lsq_dim(const ohm_lsq_t *q);

/* f(w) - f(w_opt) for w[dim]. */
double ohm_lsq_error(const ohm_lsq_t *q, const float *w);

/* The least-squares optimum (owned by q, dim doubles). */
const double *ohm_lsq_optimum(const ohm_lsq_t *q);

/* Predicted error floor of Analog SGD in expected mode with batch 1: the point
 * where the mean update vanishes, E[g] F(w) + E[|g|] G(w) = 0 per coordinate
 * (Wu et al. 2024: the asymmetric part G turns the gradient noise into an
 * implicit penalty; for softbounds F = 1, G = w/tau, i.e. the stationary point
 * of f + sum_i Sigma_i w_i^2/(2 tau) with Sigma_i = E|g_i| at that point).
 * Expectations are exact averages over the N samples; the nominal device of m
 * (no spread). Solved by a damped fixed-point iteration in double precision.
 * Writes the point into w_out[dim] (may be NULL) and its error f - f* into *err.
 * OHM_ERANGE if the iteration does not converge. */
int ohm_lsq_predict_floor(const ohm_lsq_t *q, const ohm_device_model_t *m, double *w_out,
                          double *err);

/* How to run one algorithm. */
typedef struct {
    long iters;      /* updates */
    int batch;       /* samples per update */
    double lr;       /* alpha */
    double lr_decay; /* > 0: alpha_k = lr / (1 + k / lr_decay); 0: constant */
    long every;      /* record the error every this many updates (0: never) */
    uint64_t seed;   /* batches and devices */
    void (*record)(void *ctx, long iter, double err);
    void *ctx;
} ohm_lsq_run_t;

typedef struct {
    double last_err; /* error of the final weights */
    double avg_err;  /* error of the weights averaged over the second half of the run */
    double mean_err; /* error averaged over the records of the second half (NaN if none) */
} ohm_lsq_result_t;

/* Runs the tile that `p` describes (digital when p->opt is OHM_OPT_DIGITAL) from
 * w = 0. OHM_ENOMEM, or the parameter check's error. */
int ohm_lsq_run(const ohm_lsq_t *q, const ohm_analog_params_t *p, const ohm_lsq_run_t *r,
                ohm_lsq_result_t *res);

#endif
