/* ohm_analog_tile: a simulated analog crossbar tile behind the ohm_tile interface.
 *
 * Arrays of device states (ohm_device.h) trained by one of three analog
 * optimizers (docs/analog.md, section "Optimizers"), with alpha = the lr given to update,
 * beta = params.beta, gamma = params.gamma:
 *   analog-sgd  W <- U_q(W, -alpha grad);                      effective W
 *   tiki-taka   A <- U_q(A, -alpha grad); every transfer_every updates
 *               transfer_columns columns of A (cycling), read by unit-vector
 *               forward passes, are pulsed into C: C <- U_q(C, beta A[:,j]);
 *                                                             effective C + gamma A
 *   residual    P <- U_q(P, -alpha grad(W + gamma P)); W <- U_q(W, beta P), or
 *               with `buffered` H <- (1-beta) H + beta P and whole pulses of
 *               dw_min fire into W where |H| >= dw_min;        effective W + gamma P
 * The fast arrays A and P are zero-shifted: each device's stored value is its
 * state minus its symmetric point (where G = 0), so a value of 0 feels no drift.
 *
 * set_weights writes the main array (W or C) so that the effective weights
 * equal the target, leaving A, P and H alone: exactly (clipped to each device's
 * bounds) or pulsed (the difference applied through the response functions).
 *
 * Reads (forward, backward, transfers) go through the periphery: per-vector
 * abs-max scaling of the input to [-1, 1] (aihwkit's noise management), input
 * DAC of in_bits, additive output noise, output bound, output ADC of out_bits;
 * the result is scaled back. With every periphery option at 0 a read is the
 * plain GEMM of the effective weights, bit for bit. */
#ifndef OHM_ANALOG_TILE_H
#define OHM_ANALOG_TILE_H

#include "ohm_analog.h"
#include "ohm_device.h"
#include "ohm_tile.h"

#include <stdint.h>

/* Arrays of a tile, for inspection. */
enum {
    OHM_ARRAY_MAIN = 0,  /* W (analog-sgd, residual) or C (tiki-taka) */
    OHM_ARRAY_FAST = 1,  /* A (tiki-taka) or P (residual), as zero-shifted values */
    OHM_ARRAY_BUFFER = 2 /* H (residual) */
};

/* A tile of rows x cols for optimizer p->opt (analog-sgd, tiki-taka or residual;
 * p must pass ohm_analog_params_check: asserted). Devices are drawn from the
 * stream (seed, peer, OHM_STREAM_DEVICE) mixed with `layer`; pulse trains and
 * read noise use their own streams mixed the same way. Main array starts at 0.
 * Caller owns the tile (ohm_tile_destroy); NULL on allocation failure. */
ohm_tile_t *ohm_analog_tile_new(const ohm_analog_params_t *p, int rows, int cols, uint64_t seed,
                                uint64_t peer, int layer);

/* 1 if `t` is an analog tile of this module. */
int ohm_analog_tile_is(const ohm_tile_t *t);

/* The tile's parameters (owned by the tile). t must be analog (asserted). */
const ohm_analog_params_t *ohm_analog_tile_params(const ohm_tile_t *t);

/* Copies array `which` (OHM_ARRAY_*; values, rows x cols) into out.
 * OHM_ENOTFOUND if this optimizer has no such array. */
int ohm_analog_tile_read_array(const ohm_tile_t *t, int which, float *out);

/* Raw device states of array OHM_ARRAY_MAIN/FAST (rows x cols, owned by the
 * tile; zero-shifted values are state - ohm_analog_tile_refs); NULL if absent. */
const float *ohm_analog_tile_states(const ohm_tile_t *t, int which);

/* Per-device parameters of array OHM_ARRAY_MAIN/FAST (owned by the tile); NULL if absent. */
const ohm_device_t *ohm_analog_tile_devices(const ohm_tile_t *t, int which);

/* Symmetric points of the fast array's devices (owned by the tile); NULL for the main array. */
const float *ohm_analog_tile_refs(const ohm_tile_t *t, int which);

/* Updates done so far (the transfer schedule counts them). */
uint64_t ohm_analog_tile_updates(const ohm_tile_t *t);

/* What a tile has done since it was created (ohm_tile_counters_t, for energy
 * accounting; also reached through ohm_tile_counters). Counters are not part
 * of the saved state. Pulses are counted in the discrete modes (stochastic,
 * or expected with granular, and the buffered residual), where whole pulses
 * are fired; the expected mode applies the mean and fires none. */
typedef ohm_tile_counters_t ohm_analog_counters_t;

/* The tile's counters. t must be analog (asserted). */
ohm_analog_counters_t ohm_analog_tile_counters(const ohm_tile_t *t);

/* Stochastic mode only: 1 switches the coincidence counting to the naive
 * reference (every cell, every slot, one pulse at a time, one normal per pulse;
 * same pulse trains, so without cycle-to-cycle noise the same states up to
 * float rounding of the closed forms). For benchmarks and tests. */
void ohm_analog_tile_set_naive(ohm_tile_t *t, int on);

#endif
