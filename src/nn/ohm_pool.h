/* ohm_pool: max and average pooling of channels-last images.
 *
 * Windows of kh x kw with the layer's stride, no padding (ohm_plan.h). Max
 * pooling records, per output, the index within the example's input of the
 * value it took (the first of equal maxima), so its backward pass and the
 * R-pass of a Hessian-vector product route through the same cells: at fixed
 * indices both poolings are linear maps. Float versions serve the model,
 * double versions the Hessian-vector products. */
#ifndef OHM_POOL_H
#define OHM_POOL_H

#include "ohm_plan.h"

#include <stdint.h>

/* y[n x out_size] from x[n x in_size]; max pooling fills arg[n x out_size]
 * (ignored, may be NULL, for average pooling). */
void ohm_pool_forward(const ohm_plan_layer_t *L, const float *x, int n, float *y, int32_t *arg);
void ohm_pool_forward_d(const ohm_plan_layer_t *L, const double *x, int n, double *y,
                        int32_t *arg);

/* The pooling as a linear map at fixed indices: max takes x at arg, average
 * averages its window. y[n x out_size]. */
void ohm_pool_linear_d(const ohm_plan_layer_t *L, const double *x, const int32_t *arg, int n,
                       double *y);

/* Its transpose: dx[n x in_size] (overwritten) from dy[n x out_size]. */
void ohm_pool_backward(const ohm_plan_layer_t *L, const float *dy, const int32_t *arg, int n,
                       float *dx);
void ohm_pool_backward_d(const ohm_plan_layer_t *L, const double *dy, const int32_t *arg, int n,
                         double *dx);

#endif
