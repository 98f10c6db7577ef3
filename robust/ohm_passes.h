/* ohm_passes: the streaming passes of the weighted and distance-based robust
 * rules (internal to robust/). Each reads the k rows of d floats once; none
 * allocates, so none fails. absmax[i] (where taken) collects row i's largest
 * |x| bit pattern, which marks rows holding NaN/Inf (>= ABS_INF). */
#ifndef OHM_PASSES_H
#define OHM_PASSES_H

#include <stddef.h>
#include <stdint.h>

/* out = sum over the active rows (act[i]) of wt[i] x_i / sum of those wt. A
 * row found non-finite is deactivated (counted in *nbad) and the pass
 * restarts without it. No weight left: out = the own vector x[0], sanitized.
 * rp, ws, idx: k-entry scratch. */
void ohm_pass_wmean(const float *const *x, int k, size_t d, const double *wt, unsigned char *act,
                    const float **rp, double *ws, int *idx, float *out, int *nbad);

/* D[i*k+j] = ||x_i - x_j||^2 for every pair (D zeroed by the caller, k x k). */
void ohm_pass_pairwise(const float *const *x, int k, size_t d, double *D, uint32_t *absmax);

/* dist2[i] += ||x_i - ref||^2 for every row. */
void ohm_pass_dist(const float *const *x, int k, size_t d, const float *ref, double *dist2,
                   uint32_t *absmax);

/* One iteration of geomed / cc: out = c0 z + sum of coef[i] x_i over the
 * active rows (z may be out itself); *dz2 = ||out - z||^2 and *zn2 =
 * ||out||^2 when non-NULL; dist2[i] += ||x_i - out||^2 when non-NULL. */
void ohm_pass_combine(const float *const *x, int k, size_t d, const float *coef,
                      const unsigned char *act, float c0, const float *z, float *out, double *dist2,
                      double *dz2, double *zn2);

/* out = m + sum of c[j] (x_j - m) over the rows with c[j] != 0, m = out on
 * entry (geomed's result from its coefficients around the median). */
void ohm_pass_correct(const float *const *x, int k, size_t d, const double *c, float *out);

#endif
