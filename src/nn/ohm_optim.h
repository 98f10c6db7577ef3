/* ohm_optim: the digital step's direction: local momentum and SAGA.
 *
 * Two remedies against the gradient noise that makes robust aggregation fail
 * on non-iid data (docs/robust.md, section "Momentum and variance reduction"):
 *
 * - Momentum (optimizer.momentum = beta): m <- beta m + (1 - beta) g and the
 *   step is w <- w - lr m, so the model a peer sends moved along an average of
 *   its recent gradients (robust aggregation of momentum-averaged messages).
 * - SAGA (optimizer.variance_reduction = saga): the peer keeps a table of its
 *   last gradient per example (or per fixed mini-batch) and steps along
 *   g_B(w) - table_B + mean(table), an unbiased estimate of the full local
 *   gradient whose variance vanishes as the table fills and the model settles.
 *   Used with momentum, the SAGA estimate is what the momentum averages.
 *
 * The SAGA table's memory, per peer (n local examples, P parameters, K
 * outputs, batch B; 4-byte floats):
 *   sample table, single-layer model:  n K floats (an entry is the output
 *       error e_i; example i's gradient is e_i (x) [x_i, 1], rebuilt on use);
 *   sample table, hidden layers:       n P floats (whole gradients);
 *   batch table:                       ceil(n / B) P floats;
 * plus 3 P floats (the table's mean, the direction, the momentum) and, for the
 * batch table, n indices. optimizer.saga_table = auto takes the sample table
 * when it fits optimizer.saga_max_mb, else the batch table; one that does not
 * fit the bound is an error naming both sizes.
 *
 * The table starts at zero (the usual SAGA start: it fills over the first
 * epoch). Neither the table nor the momentum is written into checkpoints: a
 * resumed peer starts both again. Digital tiles only (the step programs the
 * weights exactly). */
#ifndef OHM_OPTIM_H
#define OHM_OPTIM_H

#include "ohm_config.h"
#include "ohm_data.h"
#include "ohm_model.h"

#include <stddef.h>
#include <stdint.h>

enum { OHM_SAGA_OFF = 0, OHM_SAGA_SAMPLE = 1, OHM_SAGA_BATCH = 2, OHM_SAGA_AUTO = 3 };

typedef struct {
    double momentum;  /* beta in [0, 1); 0: none */
    int saga;         /* OHM_SAGA_OFF, _SAMPLE, _BATCH or _AUTO */
    size_t max_bytes; /* bound on the SAGA table */
    size_t n;         /* local examples (the table's keys) */
    int batch;        /* mini-batch size (the batch table's batches) */
    uint64_t seed;    /* fixed batches and their draws: (seed, peer) */
    uint32_t peer;
} ohm_optim_params_t;

typedef struct ohm_optim ohm_optim_t;

/* Bytes the SAGA table of `kind` (OHM_SAGA_SAMPLE or _BATCH) would take for
 * model m and parameters p (not counting the 3 P floats of vectors). */
size_t ohm_optim_table_bytes(const ohm_model_t *m, const ohm_optim_params_t *p, int kind);

/* An optimizer for model m (its shapes are fixed from here on). Errors:
 * OHM_EINVAL (momentum outside [0, 1), SAGA without examples), OHM_ETOOBIG
 * (the table does not fit max_bytes; the detail names its size), OHM_ENOMEM.
 * Caller owns *out. */
int ohm_optim_new(const ohm_optim_params_t *p, const ohm_model_t *m, ohm_optim_t **out);

/* The optimizer [optimizer] asks for, for a peer holding `d`'s training shard:
 * *out = NULL when neither momentum nor SAGA is on (plain SGD steps). Errors as
 * ohm_optim_new, and OHM_EINVAL when optimizer.name is not digital. */
int ohm_optim_from_config(const ohm_config_t *cfg, const ohm_model_t *m, const ohm_data_t *d,
                          uint32_t peer, ohm_optim_t **out);

/* Frees; NULL-safe; clears the caller's pointer. */
void ohm_optim_destroy(ohm_optim_t **o);

/* The table kind in use (OHM_SAGA_OFF, _SAMPLE or _BATCH) and its bytes. */
int ohm_optim_table_kind(const ohm_optim_t *o);
size_t ohm_optim_bytes(const ohm_optim_t *o);

/* The next mini-batch's example indices into idx[cap] and their count: with
 * the batch table one of the fixed batches, drawn uniformly (at most cap =
 * the batch size); otherwise (or o NULL) ohm_sampler_next's next cap. */
int ohm_optim_sample(ohm_optim_t *o, ohm_sampler_t *s, const ohm_data_t *d, uint32_t *idx,
                     int cap);

/* The step's direction at the current weights for the batch b of examples
 * idx[b->n] (the local shard's indices; for the batch table, one of the
 * batches ohm_optim_sample returns): the SAGA estimate (updating the table
 * with the new gradients) or the plain gradient, into dir[nparams] (not yet
 * averaged by the momentum). *loss (may be NULL): the batch's mean loss. */
int ohm_optim_direction(ohm_optim_t *o, ohm_model_t *m, const ohm_batch_t *b, const uint32_t *idx,
                        float *dir, double *loss);

/* One step: direction, momentum, then w <- w - lr m programmed exactly.
 * *loss (may be NULL): the batch's mean loss before the step. */
int ohm_optim_step(ohm_optim_t *o, ohm_model_t *m, const ohm_batch_t *b, const uint32_t *idx,
                   float lr, double *loss);

/* Fills the table at the current weights with the gradients of examples
 * idx[all->n] (batch `all` holds them; for the batch table every fixed batch
 * is filled and `all` must hold the whole shard in index order, idx[i] = i). */
int ohm_optim_saga_fill(ohm_optim_t *o, ohm_model_t *m, const ohm_batch_t *all,
                        const uint32_t *idx);

#endif
