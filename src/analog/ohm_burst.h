/* ohm_burst: the arithmetic of single pulses and exact bursts, shared by the
 * scalar device functions (ohm_device.c) and the tile's pulse kernels, so
 * that the fast paths and their references compute with the same formulas.
 * Internal to src/analog.
 *
 * A burst of k pulses in direction s (+1 up, -1 down) on a device (tau, scale, a):
 *   ideal:              w + s k dw_min scale (1 + s a)
 *   softbounds, linear: one pulse is affine, w' = w + rho (F - w) with the fixed
 *                       point F = s tau / gamma (gamma = 1 for softbounds) and
 *                       rho = dw_min scale (1 + s a)(1 + s c) gamma / tau, so
 *                       w_k = F - (F - w)(1 - rho)^k (geometric; exact);
 *   pow, exp:           k single pulses in a loop (no closed form for the
 *                       discrete map), stopping when a pulse no longer moves w.
 * Every single pulse is clipped to [-tau, tau]; the closed forms are monotone
 * in k, so clipping their result equals clipping each pulse. */
#ifndef OHM_BURST_H
#define OHM_BURST_H

#include "ohm_device.h"

#include <math.h>

/* What a burst needs of the model, precomputed once per array operation. */
typedef struct {
    int response;     /* OHM_RESP_* */
    double dw_min;    /* nominal pulse */
    double c;         /* softbounds/linear amplitude asymmetry (0 for the others) */
    double gamma;     /* linear slope (1 for softbounds), pow exponent, exp shape */
    double inv_gamma; /* 1 / gamma */
    double exp_inv;   /* exp: 1 / (e^gamma - 1) */
    int pow_kind;     /* pow: 1 or 2 for those exponents (plain products), else 0 */
    double c2c;       /* dw_min_std */
} ohm_burst_t;

static inline void ohm_burst_init(ohm_burst_t *b, const ohm_device_model_t *m)
{
    b->response = m->response;
    b->dw_min = m->dw_min;
    b->c = (m->response == OHM_RESP_SOFTBOUNDS || m->response == OHM_RESP_LINEAR) ? m->c : 0.0;
    b->gamma = m->response == OHM_RESP_SOFTBOUNDS ? 1.0 : m->gamma;
    b->inv_gamma = 1.0 / b->gamma;
    b->exp_inv = m->response == OHM_RESP_EXP ? 1.0 / expm1(m->gamma) : 0.0;
    b->pow_kind = m->gamma == 1.0 ? 1 : m->gamma == 2.0 ? 2 : 0;
    b->c2c = m->dw_min_std;
}

/* Written as min then max so that it compiles to two instructions, no branch. */
static inline double ohm_burst_clip(double w, double tau)
{
    double v = w < tau ? w : tau;
    return v > -tau ? v : -tau;
}

/* b^k for whole k >= 0: squaring up to 64 (a pulse train never has more), pow beyond. */
static inline double ohm_burst_power(double b, long k)
{
    if (k > 64) return pow(b, (double)k);
    double r = 1.0;
    while (k) {
        if (k & 1) r *= b;
        b *= b;
        k >>= 1;
    }
    return r;
}

/* Shape of pow/exp at distance y = 1 - s w/tau from the bound the pulse heads to. */
static inline double ohm_burst_shape(const ohm_burst_t *b, int resp, double y)
{
    if (resp == OHM_RESP_EXP) return expm1(b->gamma * y) * b->exp_inv;
    if (!(y > 0)) return 0.0;
    return b->pow_kind == 2 ? y * y : b->pow_kind == 1 ? y : pow(y, b->gamma);
}

/* One pulse of pow/exp in direction s; `step` = dw_min scale (1 + s a). */
static inline double ohm_burst_single(const ohm_burst_t *b, int resp, double w, double s,
                                      double step, double tau)
{
    return ohm_burst_clip(w + s * step * ohm_burst_shape(b, resp, 1.0 - s * w / tau), tau);
}

/* k > 0 pulses in direction s (+1 or -1): the exact state after them. `resp` is
 * b->response, passed apart so that kernels can make it a constant. */
static inline double ohm_burst(const ohm_burst_t *b, int resp, double w, long k, double s,
                               double tau, double scale, double a)
{
    double step = b->dw_min * scale * (1.0 + s * a);
    switch (resp) {
    case OHM_RESP_IDEAL:
        return ohm_burst_clip(w + s * (double)k * step, tau);
    case OHM_RESP_SOFTBOUNDS:
    case OHM_RESP_LINEAR: {
        double amp = step * (1.0 + s * b->c), it = 1.0 / tau;
        /* One pulse, the common case: w + amp (s - gamma w/tau). */
        if (k == 1) return ohm_burst_clip(w + amp * (s - b->gamma * w * it), tau);
        double rho = amp * b->gamma * it, f = s * tau * b->inv_gamma;
        if (rho < 1) return ohm_burst_clip(f - (f - w) * ohm_burst_power(1.0 - rho, k), tau);
        /* A pulse overshoots its fixed point: iterate (only absurd parameters get here). */
        for (long t = 0; t < k; t++) {
            double v = ohm_burst_clip(w + rho * (f - w), tau);
            if (v == w) break;
            w = v;
        }
        return w;
    }
    default:
        for (long t = 0; t < k; t++) {
            double v = ohm_burst_single(b, resp, w, s, step, tau);
            if (v == w) break; /* a fixed point of the pulse map: every later pulse agrees */
            w = v;
        }
        return w;
    }
}

/* The burst's change with cycle-to-cycle noise: (w_k - w)(1 + c2c xi / sqrt k), clipped. */
static inline double ohm_burst_noisy(const ohm_burst_t *b, double w, double wk, long k, double xi,
                                     double tau)
{
    double f = k == 1 ? 1.0 + b->c2c * xi : 1.0 + b->c2c * xi / sqrt((double)k);
    return ohm_burst_clip(w + (wk - w) * f, tau);
}

#endif
