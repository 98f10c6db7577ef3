/* ohm_hvp: exact Hessian-vector products of a model's mean training loss.
 *
 * Works on a double-precision copy of the flat parameters (the layout of
 * ohm_model.h: tile after tile, each rows x cols row-major, bias last in each
 * row) and the model spec (an MLP or a layer list with convolutions and
 * pooling), never on the tiles themselves, so analog non-idealities do not
 * enter: the measures describe the loss landscape at the effective weights.
 * Hv is computed with Pearlmutter's R-operator (a forward R-pass and a
 * backward R-pass), exact up to rounding, at the cost of about two gradients.
 * The batch is processed in chunks; the forward pass at the current
 * parameters is kept when it fits a memory budget, so repeated products only
 * redo the R-passes (else they also redo the chunk's forward pass).
 *
 * The loss is the model's: mean over the batch of softmax cross-entropy or of
 * 1/2 ||y - t||^2, with ReLU (second derivative taken as 0), tanh or sigmoid
 * hidden layers; max pooling is linear at its argmax (taken as fixed, like
 * ReLU's kink). */
#ifndef OHM_HVP_H
#define OHM_HVP_H

#include "ohm_model.h"

#include <stddef.h>

typedef struct ohm_hvp ohm_hvp_t;

/* Number of flat parameters of `spec` (same as ohm_model_nparams). */
size_t ohm_hvp_nparams_of(const ohm_model_spec_t *spec);

/* Builds the operator for `spec` on batch `b` (borrowed: it must outlive the
 * object), with all parameters zero. Errors: OHM_EINVAL (bad spec), OHM_ESHAPE
 * (batch does not fit the spec), OHM_ENOMEM. Caller owns *out. */
int ohm_hvp_new(const ohm_model_spec_t *spec, const ohm_batch_t *b, ohm_hvp_t **out);

/* Frees; NULL-safe; clears the caller's pointer. */
void ohm_hvp_destroy(ohm_hvp_t **h);

/* Drops the forward pass kept across products (if it was kept): from now on
 * every product recomputes its chunks' forward pass. Less memory, more time;
 * results are the same. */
void ohm_hvp_recompute(ohm_hvp_t *h);

/* Number of flat parameters of h's model. */
size_t ohm_hvp_nparams(const ohm_hvp_t *h);

/* Copies w[nparams] (double or float) in as the current parameters.
 * OHM_ENONFINITE (nothing changed) if any entry is NaN or infinite. */
int ohm_hvp_set_params(ohm_hvp_t *h, const double *w);
int ohm_hvp_set_params_float(ohm_hvp_t *h, const float *w);

/* The current parameters (owned by h, nparams doubles). */
const double *ohm_hvp_params(const ohm_hvp_t *h);

/* Mean loss, accuracy (classification; 0 for regression) and gradient at the
 * current parameters. Any output may be NULL; grad has nparams entries. */
void ohm_hvp_loss_grad(ohm_hvp_t *h, double *loss, double *acc, double *grad);

/* hv[nparams] = H v, H the Hessian of the mean loss at the current parameters. */
void ohm_hvp_apply(ohm_hvp_t *h, const double *v, double *hv);

/* Mean loss at other parameters w[nparams] (forward only); the current
 * parameters and their cached forward pass stay as they are. */
double ohm_hvp_loss_at(ohm_hvp_t *h, const double *w);

#endif
