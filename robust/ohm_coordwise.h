/* ohm_coordwise: the coordinate-wise pass of the robust rules (internal to
 * robust/). */
#ifndef OHM_COORDWISE_H
#define OHM_COORDWISE_H

#include <stddef.h>
#include <stdint.h>

/* One pass over the k rows of d floats: per coordinate, the median (lo, hi
 * the middle positions: their midpoint) or the trimmed mean (median = 0: the
 * mean of positions lo..hi) of the sorted values, NaN ordered as +Inf, into
 * out (a coordinate still non-finite takes the own value x[0], or 0).
 * absmax[i] collects row i's largest |x| bit pattern over the blocks that took
 * the portable path (every block holding a non-finite value does). Optional:
 * dist2[i] += ||x_i - out||^2; gram ((k+1) x (k+1), upper triangle, row-major)
 * += the Gram matrix of x_0 - out, ..., x_{k-1} - out, out. Returns
 * OHM_ROBUST_OK or OHM_ROBUST_ENOMEM (scratch). */
int ohm_coordwise_run(const float *const *x, int k, size_t d, int lo, int hi, int median,
                      uint32_t *absmax, double *dist2, double *gram, float *out);

#endif
