/* ohm_pool: pooling kernels (see ohm_pool.h), one body per element type.
 * Loops run over channels innermost: contiguous in channels-last images. */
#include "ohm_pool.h"

#include <string.h>

#define DEFINE_FORWARD(NAME, T)                                                                    \
    void NAME(const ohm_plan_layer_t *L, const T *x, int n, T *y, int32_t *arg)                    \
    {                                                                                              \
        const int C = L->in_c, W = L->in_w, KH = L->kh, KW = L->kw, SH = L->sh, SW = L->sw;                \
        const int OH = L->out_h, OW = L->out_w;                                                    \
        const int is_max = L->kind == OHM_LAYER_MAXPOOL;                                           \
        const T inv = (T)1 / (T)(KH * KW);                                                         \
        for (int e = 0; e < n; e++) {                                                              \
            const T *restrict xe = x + (size_t)e * L->in_size;                                     \
            T *restrict ye = y + (size_t)e * L->out_size;                                          \
            int32_t *restrict ae = is_max ? arg + (size_t)e * L->out_size : NULL;                  \
            for (int oh = 0; oh < OH; oh++)                                                        \
                for (int ow = 0; ow < OW; ow++) {                                                  \
                    T *restrict yo = ye + ((size_t)oh * OW + ow) * C;                              \
                    const int base = (oh * SH * W + ow * SW) * C;                                    \
                    if (is_max) {                                                                  \
                        int32_t *restrict ao = ae + ((size_t)oh * OW + ow) * C;                    \
                        for (int c = 0; c < C; c++) {                                              \
                            yo[c] = xe[base + c];                                                  \
                            ao[c] = base + c;                                                      \
                        }                                                                          \
                        for (int kh = 0; kh < KH; kh++)                                            \
                            for (int kw = 0; kw < KW; kw++) {                                      \
                                const int at = base + (kh * W + kw) * C;                           \
                                for (int c = 0; c < C; c++) {                                  \
                                    /* Branch-free (random data mispredicts any branch). */        \
                                    const T v = xe[at + c];                                        \
                                    const int32_t gt = -(int32_t)(v > yo[c]);                      \
                                    yo[c] = v > yo[c] ? v : yo[c];                                 \
                                    ao[c] = (ao[c] & ~gt) | ((int32_t)(at + c) & gt);              \
                                }                                                                  \
                            }                                                                      \
                    } else {                                                                       \
                        for (int c = 0; c < C; c++)                                                \
                            yo[c] = 0;                                                             \
                        for (int kh = 0; kh < KH; kh++)                                            \
                            for (int kw = 0; kw < KW; kw++) {                                      \
                                const T *xi = xe + base + (kh * W + kw) * C;                       \
                                for (int c = 0; c < C; c++)                                        \
                                    yo[c] += xi[c];                                                \
                            }                                                                      \
                        for (int c = 0; c < C; c++)                                                \
                            yo[c] *= inv;                                                          \
                    }                                                                              \
                }                                                                                  \
        }                                                                                          \
    }

#define DEFINE_BACKWARD(NAME, T)                                                                   \
    void NAME(const ohm_plan_layer_t *L, const T *dy, const int32_t *arg, int n, T *dx)            \
    {                                                                                              \
        const int C = L->in_c, W = L->in_w, KH = L->kh, KW = L->kw, SH = L->sh, SW = L->sw;                \
        const int OH = L->out_h, OW = L->out_w;                                                    \
        const T inv = (T)1 / (T)(KH * KW);                                                         \
        memset(dx, 0, sizeof(T) * (size_t)n * L->in_size);                                         \
        for (int e = 0; e < n; e++) {                                                              \
            T *xe = dx + (size_t)e * L->in_size;                                                   \
            const T *ye = dy + (size_t)e * L->out_size;                                            \
            if (L->kind == OHM_LAYER_MAXPOOL) {                                                    \
                const int32_t *ae = arg + (size_t)e * L->out_size;                                 \
                for (int o = 0; o < L->out_size; o++)                                              \
                    xe[ae[o]] += ye[o];                                                            \
                continue;                                                                          \
            }                                                                                      \
            for (int oh = 0; oh < OH; oh++)                                                        \
                for (int ow = 0; ow < OW; ow++) {                                                  \
                    const T *yo = ye + ((size_t)oh * OW + ow) * C;                                 \
                    const int base = (oh * SH * W + ow * SW) * C;                                    \
                    for (int kh = 0; kh < KH; kh++)                                                \
                        for (int kw = 0; kw < KW; kw++) {                                          \
                            T *xi = xe + base + (kh * W + kw) * C;                                 \
                            for (int c = 0; c < C; c++)                                            \
                                xi[c] += inv * yo[c];                                              \
                        }                                                                          \
                }                                                                                  \
        }                                                                                          \
    }

DEFINE_FORWARD(ohm_pool_forward, float)
DEFINE_FORWARD(ohm_pool_forward_d, double)
DEFINE_BACKWARD(ohm_pool_backward, float)
DEFINE_BACKWARD(ohm_pool_backward_d, double)

void ohm_pool_linear_d(const ohm_plan_layer_t *L, const double *x, const int32_t *arg, int n,
                       double *y)
{
    if (L->kind != OHM_LAYER_MAXPOOL) {
        ohm_pool_forward_d(L, x, n, y, NULL);
        return;
    }
    for (int e = 0; e < n; e++) {
        const double *xe = x + (size_t)e * L->in_size;
        const int32_t *ae = arg + (size_t)e * L->out_size;
        double *ye = y + (size_t)e * L->out_size;
        for (int o = 0; o < L->out_size; o++)
            ye[o] = xe[ae[o]];
    }
}
