/* ohm_conv: im2col and its transpose for channels-last images (see ohm_conv.h).
 *
 * One body per element type, instantiated for float and double. A patch row is
 * kh segments of kw*in_c contiguous input values (channels last makes a kernel
 * row one run of memory), copied by plain loops the compiler vectorises: no
 * call per pixel. */
#include "ohm_conv.h"

#include <string.h>

#define DEFINE_UNROLL(NAME, T)                                                                     \
    void NAME(const ohm_plan_layer_t *L, const T *x, int n, T *col, int ld, T bias)                \
    {                                                                                              \
        const int C = L->in_c, H = L->in_h, W = L->in_w, KH = L->kh, KW = L->kw;                  \
        const int SH = L->sh, SW = L->sw, PD = L->pad, OH = L->out_h, OW = L->out_w;                       \
        const int seg = KW * C, K = KH * seg;                                                      \
        for (int e = 0; e < n; e++) {                                                              \
            const T *xe = x + (size_t)e * L->in_size;                                              \
            T *r = col + (size_t)e * L->positions * ld;                                            \
            for (int oh = 0; oh < OH; oh++)                                                        \
                for (int ow = 0; ow < OW; ow++, r += ld) {                                         \
                    const int iw0 = ow * SW - PD;                                                   \
                    const int inside = iw0 >= 0 && iw0 + KW <= W;                                  \
                    for (int kh = 0; kh < KH; kh++) {                                              \
                        const int ih = oh * SH - PD + kh;                                           \
                        T *rk = r + kh * seg;                                                      \
                        if (ih < 0 || ih >= H) {                                                   \
                            for (int j = 0; j < seg; j++)                                          \
                                rk[j] = 0;                                                         \
                            continue;                                                              \
                        }                                                                          \
                        const T *src = xe + (size_t)ih * W * C;                                    \
                        if (inside) {                                                              \
                            const T *s0 = src + (size_t)iw0 * C;                                   \
                            for (int j = 0; j < seg; j++)                                          \
                                rk[j] = s0[j];                                                     \
                            continue;                                                              \
                        }                                                                          \
                        for (int kw = 0; kw < KW; kw++) {                                          \
                            const int iw = iw0 + kw;                                               \
                            T *d = rk + kw * C;                                                    \
                            if (iw < 0 || iw >= W)                                                 \
                                for (int j = 0; j < C; j++)                                        \
                                    d[j] = 0;                                                      \
                            else                                                                   \
                                for (int j = 0; j < C; j++)                                        \
                                    d[j] = src[(size_t)iw * C + j];                                \
                        }                                                                          \
                    }                                                                              \
                    if (ld > K) r[K] = bias;                                                       \
                }                                                                                  \
        }                                                                                          \
    }

#define DEFINE_FOLD(NAME, T)                                                                       \
    void NAME(const ohm_plan_layer_t *L, const T *col, int ld, int n, T *x)                        \
    {                                                                                              \
        const int C = L->in_c, H = L->in_h, W = L->in_w, KH = L->kh, KW = L->kw;                  \
        const int SH = L->sh, SW = L->sw, PD = L->pad, OH = L->out_h, OW = L->out_w;                       \
        const int seg = KW * C;                                                                    \
        memset(x, 0, sizeof(T) * (size_t)n * L->in_size);                                         \
        for (int e = 0; e < n; e++) {                                                              \
            T *xe = x + (size_t)e * L->in_size;                                                    \
            const T *r = col + (size_t)e * L->positions * ld;                                      \
            for (int oh = 0; oh < OH; oh++)                                                        \
                for (int ow = 0; ow < OW; ow++, r += ld) {                                         \
                    const int iw0 = ow * SW - PD;                                                   \
                    const int kw0 = iw0 < 0 ? -iw0 : 0;                                            \
                    const int kw1 = iw0 + KW > W ? W - iw0 : KW;                                   \
                    for (int kh = 0; kh < KH; kh++) {                                              \
                        const int ih = oh * SH - PD + kh;                                           \
                        if (ih < 0 || ih >= H) continue;                                           \
                        const T *rk = r + kh * seg + kw0 * C;                                      \
                        T *dst = xe + ((size_t)ih * W + (iw0 + kw0)) * C;                          \
                        const int len = (kw1 - kw0) * C;                                           \
                        for (int j = 0; j < len; j++)                                              \
                            dst[j] += rk[j];                                                       \
                    }                                                                              \
                }                                                                                  \
        }                                                                                          \
    }

DEFINE_UNROLL(ohm_conv_unroll, float)
DEFINE_UNROLL(ohm_conv_unroll_d, double)
DEFINE_FOLD(ohm_conv_fold, float)
DEFINE_FOLD(ohm_conv_fold_d, double)
