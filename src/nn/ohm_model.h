/* ohm_model: a network whose linear layers are tiles.
 *
 * An MLP: n_in -> hidden[0] -> ... -> n_out, each a tile of rows = fan-out and
 * cols = fan-in (+1 for the bias column, fed with a constant 1). Or a layer
 * list (ohm_layers.h): convolutions, each an im2col unrolling whose kernel
 * matrix is one tile (output positions x batch are the tile's batch of rows),
 * max and average pooling, and dense layers (docs/analog.md, section
 * "Convolutions"). Conv and hidden dense layers apply the activation; the
 * output feeds softmax cross-entropy (classification) or the squared error
 * 1/2 ||y - t||^2 (regression). The model owns its tiles; where they come from
 * (digital, analog) is the factory's business, so the peer never changes when
 * a tile kind is added.
 *
 * Flat parameters: the effective weights of every tile, layer after layer,
 * each row-major (rows x cols, bias last in each row; a conv tile's columns
 * are kernel row, kernel column, input channel). This is what peers exchange
 * and combine. */
#ifndef OHM_MODEL_H
#define OHM_MODEL_H

#include "ohm_data.h"
#include "ohm_layers.h"
#include "ohm_rng.h"
#include "ohm_tile.h"

#include <stddef.h>
#include <stdint.h>

#define OHM_MODEL_MAX_LAYERS 8

enum { OHM_ACT_RELU = 0, OHM_ACT_TANH, OHM_ACT_SIGMOID };
enum { OHM_LOSS_XENT = 0, OHM_LOSS_MSE };

typedef struct {
    int n_in;
    int n_out;
    int n_hidden; /* 0: a single linear layer (softmax regression, least squares) */
    int hidden[OHM_MODEL_MAX_LAYERS - 1];
    int act;  /* OHM_ACT_* */
    int loss; /* OHM_LOSS_* */
    int bias; /* 1: every tile has a trailing bias column */
    /* A layer list replaces n_hidden/hidden when n_layers > 0; its last layer is
     * fc:n_out. in_shape is the input's channels, height, width (product n_in;
     * all 0: a vector of n_in). */
    int in_shape[3];
    int n_layers;
    ohm_layer_spec_t layers[OHM_LAYERS_MAX];
} ohm_model_spec_t;

/* Makes the tile of layer `layer` (rows x cols); NULL on failure. */
typedef ohm_tile_t *(*ohm_tile_factory_fn)(void *ctx, int layer, int rows, int cols);

typedef struct ohm_model ohm_model_t;

/* Builds the model; `factory` NULL means digital tiles. Weights start at zero:
 * call ohm_model_init. Errors: OHM_EINVAL (bad spec), OHM_ENOMEM. Caller owns *out. */
int ohm_model_new(const ohm_model_spec_t *spec, ohm_tile_factory_fn factory, void *ctx,
                  ohm_model_t **out);

/* Frees the model and its tiles; NULL-safe; clears the caller's pointer. */
void ohm_model_destroy(ohm_model_t **m);

/* Initialises weights (He for ReLU, Xavier otherwise; zero biases) from `rng`
 * and programs them exactly. Peers pass the same stream for a common start. */
void ohm_model_init(ohm_model_t *m, ohm_rng_t *rng);

/* Initial weights (model.init). */
enum { OHM_INIT_GLOROT = 0, OHM_INIT_NORMAL = 1 };

/* Initialises with `kind`: OHM_INIT_GLOROT is ohm_model_init; OHM_INIT_NORMAL
 * draws every weight and bias from N(0, sigma^2) (sigma >= 0). */
void ohm_model_init_kind(ohm_model_t *m, int kind, double sigma, ohm_rng_t *rng);

/* The start [model] asks for: model.init and model.init_sigma, drawn from the
 * stream (train.seed, peer) when model.init_per_peer is true (each peer its own
 * model), else from one stream common to every peer. OHM_EINVAL when
 * model.init is not a known kind. */
int ohm_model_init_from_config(ohm_model_t *m, const ohm_config_t *cfg, uint32_t peer);

const ohm_model_spec_t *ohm_model_spec(const ohm_model_t *m);

/* Number of tiles (layers with weights: dense and conv; pools have none). */
int ohm_model_layers(const ohm_model_t *m);
ohm_tile_t *ohm_model_tile(ohm_model_t *m, int layer);

/* Total number of flat parameters. */
size_t ohm_model_nparams(const ohm_model_t *m);

/* Digest of the layer shapes (conv kernels, strides, padding and pools
 * included), bias flag and dtype: peers only combine equal fingerprints. */
uint64_t ohm_model_fingerprint(const ohm_model_t *m);

/* Copies the effective weights into flat[nparams]. */
void ohm_model_get_params(const ohm_model_t *m, float *flat);

/* Writes flat[nparams] back into the tiles (OHM_WB_EXACT or OHM_WB_PULSED). */
void ohm_model_set_params(ohm_model_t *m, const float *flat, int mode);

/* One local step: forward, backward, tile updates with step size lr.
 * *loss receives the batch's mean loss before the step (may be NULL). */
int ohm_model_train_step(ohm_model_t *m, const ohm_batch_t *b, float lr, double *loss);

/* Decoupled weight decay over every layer (biases included): W <- factor * W.
 * OHM_EUNSUPPORTED when a layer's tile cannot be scaled (analog tiles). */
int ohm_model_decay(ohm_model_t *m, float factor);

/* Mean loss and accuracy (classification; regression gives acc = 0) of the
 * current weights over the batch. Either output may be NULL. */
int ohm_model_evaluate(ohm_model_t *m, const ohm_batch_t *b, double *loss, double *acc);

/* Mean loss and its gradient w.r.t. the flat parameters at the current
 * effective weights, computed digitally (grad[nparams]); no weight changes. */
int ohm_model_loss_grad(ohm_model_t *m, const ohm_batch_t *b, double *loss, float *grad);

/* The counters of every tile summed into *sum (ohm_tile_counters_t: pulses,
 * reads, conversions; per tile: ohm_model_tile + ohm_tile_counters). Returns
 * the number of tiles that count (0 for a digital model, *sum all zero). */
int ohm_model_counters(const ohm_model_t *m, ohm_tile_counters_t *sum);

/* Per-example output errors dL_i/dy_i (not divided by the batch size) into
 * err[b->n * n_out], at the current effective weights, computed digitally;
 * *loss (may be NULL) receives the batch's mean loss. No weight changes. With
 * one dense layer, example i's gradient is err_i (x) [x_i, 1]: see ohm_model_outer_add. */
int ohm_model_example_errors(ohm_model_t *m, const ohm_batch_t *b, float *err, double *loss);

/* grad[nparams] += alpha * sum_i err_i (x) [x_i, 1] over the batch's examples:
 * the gradient of a single-layer model from its output errors (err as
 * ohm_model_example_errors writes it). OHM_EUNSUPPORTED for hidden layers. */
int ohm_model_outer_add(const ohm_model_t *m, const ohm_batch_t *b, const float *err, float alpha,
                        float *grad);

/* Checkpoint support: the size of, and save/load of, every tile's whole state.
 * Load errors: OHM_ESHAPE / OHM_EFORMAT (model unchanged up to the failing tile). */
size_t ohm_model_state_size(const ohm_model_t *m);
void ohm_model_state_save(const ohm_model_t *m, void *buf);
int ohm_model_state_load(ohm_model_t *m, const void *buf, size_t len);

#endif
