/* ohm_conv: the im2col unrolling of a convolution and its transpose.
 *
 * Images are height x width x channels per example (ohm_plan.h). Unrolling
 * writes one row per example and output position (example-major, then output
 * row, then output column), each row the input patch in the order kernel row,
 * kernel column, input channel, followed by the bias input when the row has
 * room for it. A convolution is then the tile's product of these rows with its
 * kernel matrix, whose output rows are again height x width x channels: no
 * reshuffling between layers (docs/analog.md, section "Convolutions"). Float
 * versions serve the model, double versions the Hessian-vector products. */
#ifndef OHM_CONV_H
#define OHM_CONV_H

#include "ohm_plan.h"

/* col[(n*positions) x ld] from x[n x in_size] for conv layer L; ld is
 * kh*kw*in_c, or one more for the bias input, which gets `bias` (1 for a
 * forward pass, 0 for the R-pass of a Hessian-vector product). Zero padding. */
void ohm_conv_unroll(const ohm_plan_layer_t *L, const float *x, int n, float *col, int ld,
                     float bias);
void ohm_conv_unroll_d(const ohm_plan_layer_t *L, const double *x, int n, double *col, int ld,
                       double bias);

/* The transpose: x[n x in_size] = the sum of every row's patch entries at the
 * input cells they were read from (a bias column is skipped); x is overwritten. */
void ohm_conv_fold(const ohm_plan_layer_t *L, const float *col, int ld, int n, float *x);
void ohm_conv_fold_d(const ohm_plan_layer_t *L, const double *col, int ld, int n, double *x);

#endif
