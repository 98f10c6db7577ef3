/* ohm_tile: one linear layer's weight matrix behind a small interface.
 *
 * The model never touches weights directly: it asks its tiles to multiply,
 * to update from a batch, and to read or write their effective weights. A
 * digital tile is plain floating point; an analog tile (ohm_analog.h) keeps
 * device states with their response functions and non-idealities. Both plug
 * into ohm_model unchanged, which is the point of this interface.
 *
 * Shapes: a tile holds W of rows x cols (out x in), row-major. Batches are
 * row-major too: x is n x cols, y and d are n x rows. If the model uses
 * biases, the last column of W is the bias and the model feeds x with a
 * trailing 1. */
#ifndef OHM_TILE_H
#define OHM_TILE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ohm_tile ohm_tile_t;

/* How combined weights are written back into a tile (docs/design.md, section "One round"). */
enum {
    OHM_WB_EXACT = 0, /* ideal programming: the tile holds exactly the given weights (clipped to bounds) */
    OHM_WB_PULSED = 1 /* the difference is applied as pulses through the device response */
};

/* Rows (outputs) and columns (inputs) of the tile. */
int ohm_tile_rows(const ohm_tile_t *t);
int ohm_tile_cols(const ohm_tile_t *t);

/* Short name of the implementation ("digital", "analog-sgd", ...); static storage. */
const char *ohm_tile_kind(const ohm_tile_t *t);

/* y[n x rows] = x[n x cols] W^T, read through the tile's periphery (ideal for digital). */
void ohm_tile_forward(ohm_tile_t *t, const float *x, float *y, int n);

/* z[n x cols] = d[n x rows] W (the backward read). */
void ohm_tile_backward(ohm_tile_t *t, const float *d, float *z, int n);

/* One optimiser step from a batch: the loss gradient is G = d^T x (d already carries
 * the 1/n of a mean loss); digital SGD does W -= lr G, analog tiles pulse it. */
void ohm_tile_update(ohm_tile_t *t, const float *x, const float *d, int n, float lr);

/* Weight decay: W <- factor * W. Returns OHM_EUNSUPPORTED for tiles whose
 * weights are device states that cannot simply be scaled (analog tiles). */
int ohm_tile_decay(ohm_tile_t *t, float factor);

/* Copies the effective weights (what a peer exchanges: W, C + gamma A, W + gamma P) into w[rows*cols]. */
void ohm_tile_get_weights(const ohm_tile_t *t, float *w);

/* Writes combined weights back, exactly or pulsed (OHM_WB_*). Auxiliary arrays stay as they are. */
void ohm_tile_set_weights(ohm_tile_t *t, const float *w, int mode);

/* Bytes needed to save the tile's whole state (every array, buffer, counter and RNG). */
size_t ohm_tile_state_size(const ohm_tile_t *t);

/* Writes the state into buf[ohm_tile_state_size(t)]. */
void ohm_tile_state_save(const ohm_tile_t *t, void *buf);

/* Restores a state saved by a tile of the same kind and shape.
 * Returns OHM_ESHAPE or OHM_EFORMAT (with detail) when it does not fit; the tile is unchanged then. */
int ohm_tile_state_load(ohm_tile_t *t, const void *buf, size_t len);

/* What a tile has done since it was created, for energy accounting
 * (docs/energy.md). Not part of the saved state. Pulses are whole pulses
 * fired; a mode that applies a mean (expected updates) fires none. */
typedef struct {
    uint64_t update_pulses;    /* pulses of gradient updates: sum of |pulse counts| applied */
    uint64_t program_pulses;   /* pulses of transfers and pulsed write-back */
    uint64_t train_slots;      /* stochastic updates: train slots, sum over examples of BL used */
    uint64_t line_pulses;      /* stochastic updates: pulses on rows and columns (set train bits) */
    uint64_t program_slots;    /* per-cell programming: sum over operations of the largest
                                * |pulse count| of a cell (its duration in pulse slots) */
    uint64_t forward_mvms;     /* vectors read forward (y = W x) */
    uint64_t backward_mvms;    /* vectors read backward (z = W^T d) */
    uint64_t transfer_mvms;    /* vectors read by transfers (tiki-taka columns, residual P) */
    uint64_t dac;              /* input conversions: the input length per vector read */
    uint64_t adc;              /* output conversions: the output length per vector read */
    uint64_t cells_programmed; /* cells given a change by transfers and write-back */
} ohm_tile_counters_t;

/* Copies the tile's counters into *c and returns 1; a tile that counts
 * nothing (digital) zeroes *c and returns 0. */
int ohm_tile_counters(const ohm_tile_t *t, ohm_tile_counters_t *c);

/* Frees the tile; NULL-safe; clears the caller's pointer. */
void ohm_tile_destroy(ohm_tile_t **t);

/* A plain floating-point tile trained by SGD. Caller owns the result (NULL on allocation failure). */
ohm_tile_t *ohm_tile_digital_new(int rows, int cols);

#endif
