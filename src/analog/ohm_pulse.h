/* ohm_pulse: the stochastic pulsed update of one device array (a crossbar's
 * rank-one updates by pulse trains), internal to src/analog.
 *
 * Per example e of a batch, the requested change is -lr d_e^T x_e. Column j
 * fires in each of BL slots with probability min(1, B |x_j|), row i with
 * min(1, A |d_i|); a cell receives one pulse of sign -sign(x_j d_i) per slot
 * where both fire, so its expected count is lr |x_j d_i| / dw_min when nothing
 * clips. A, B and BL follow the update-management options of
 * docs/analog.md, section "Update management":
 *   plain:       BL, A = B = sqrt(lr / (dw_min BL))
 *   bl management (ublm): k = lr max|x| max|d| / dw_min, BL_e = min(BL, ceil k)
 *                and A = B = sqrt(lr / (dw_min BL_e))
 *   management (um): with dv = max|d| (times BL/k when k > BL, the over-BL
 *                rule: only the error side is rescaled),
 *                A *= sqrt(max|x| / dv), B *= sqrt(dv / max|x|)
 * A cell's pulses of one example all have one sign, so they are applied as one
 * exact burst (ohm_burst.h); examples are applied in order, cell by cell.
 *
 * The kernel: trains are bits of a uint32 (drawn from bulk uniforms); for each
 * example a bitmap per slot marks the firing columns; a row's candidate cells
 * are the OR of the bitmaps of its firing slots, and a candidate's count is
 * popcount(row & column). Work is proportional to the pulsed cells, not to
 * rows x cols; rows are the outer loop over a chunk of examples, so each row's
 * states stay in cache while every example of the chunk is applied. */
#ifndef OHM_PULSE_H
#define OHM_PULSE_H

#include "ohm_bulk.h"
#include "ohm_device.h"

#include <stdint.h>

typedef struct ohm_pulser ohm_pulser_t;

typedef struct {
    int bl;    /* train length 1..32 (the maximum under ublm) */
    int um;    /* update management */
    int ublm;  /* update BL management */
    int naive; /* reference: every cell, every slot, one pulse at a time */
} ohm_pulse_opts_t;

/* What an update did, for the tile's counters (added to, never reset). */
typedef struct {
    uint64_t pulses;      /* pulses applied to cells: sum of |counts| */
    uint64_t slots;       /* train slots driven: sum over examples of the length used */
    uint64_t line_pulses; /* pulses on the row and column lines: set bits of the trains */
} ohm_pulse_tally_t;

/* Scratch for arrays of rows x cols. NULL on allocation failure. */
ohm_pulser_t *ohm_pulser_new(int rows, int cols);

/* Frees; NULL-safe; clears the caller's pointer. */
void ohm_pulser_destroy(ohm_pulser_t **p);

/* Applies the n examples (x: n x cols, d: n x rows) to the states w (rows x
 * cols) of devices dev, drawing trains and cycle-to-cycle noise from `bulk`. */
void ohm_pulser_update(ohm_pulser_t *p, const ohm_pulse_opts_t *o, const ohm_device_model_t *m,
                       float *w, const ohm_device_t *dev, const float *x, const float *d, int n,
                       double lr, ohm_bulk_t *bulk, ohm_pulse_tally_t *tally);

#endif
