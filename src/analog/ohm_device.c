/* ohm_device: response functions q+/q- and per-device parameters.
 *
 * Formulas (docs/analog.md; Wu et al. NeurIPS 2024/2025 for the response
 * notation; IBM aihwkit's pulsed device family for the per-device parameters):
 *   ideal:      q+ = q- = 1
 *   softbounds: q+ = (1+c)(1 - w/tau),  q- = (1-c)(1 + w/tau)
 *   pow:        q+ = (1 - w/tau)^gamma, q- = (1 + w/tau)^gamma
 *   exp:        q+ = (e^{gamma(1 - w/tau)} - 1)/(e^gamma - 1), q- = same with 1 + w/tau
 * c acts on softbounds only. Each device then scales q+ by (1+a) and q- by (1-a)
 * (its up/down asymmetry: an up pulse is dw_min(1+a) at w = 0, a down pulse
 * dw_min(1-a), as aihwkit's up_down), uses its own bound tau_i in place of tau,
 * and its own pulse size dw_min scale_i. */
#include "ohm_device.h"

#include "ohm_error.h"

#include <math.h>

void ohm_device_model_default(ohm_device_model_t *m)
{
    *m = (ohm_device_model_t){
        .response = OHM_RESP_IDEAL, .tau = 1.0, .gamma = 1.0, .c = 0.0, .dw_min = 0.001};
}

int ohm_device_model_check(const ohm_device_model_t *m)
{
    if (m->response < OHM_RESP_IDEAL || m->response > OHM_RESP_EXP)
        return ohm_error_set(OHM_ERANGE, "device.response: unknown response %d", m->response);
    if (!(m->tau > 0) || !isfinite(m->tau))
        return ohm_error_set(OHM_ERANGE, "device.tau: must be > 0 (got %g)", m->tau);
    if (!(m->gamma > 0) || !isfinite(m->gamma))
        return ohm_error_set(OHM_ERANGE, "device.gamma: must be > 0 (got %g)", m->gamma);
    if (!(fabs(m->c) < 1))
        return ohm_error_set(OHM_ERANGE, "device.c: must be in (-1, 1) (got %g)", m->c);
    if (!(m->dw_min > 0) || !isfinite(m->dw_min))
        return ohm_error_set(OHM_ERANGE, "device.dw_min: must be > 0 (got %g)", m->dw_min);
    if (!(fabs(m->up_down) < 1))
        return ohm_error_set(OHM_ERANGE, "device.up_down: must be in (-1, 1) (got %g)", m->up_down);
    if (!(m->dw_min_dtod >= 0) || !(m->dw_min_std >= 0) || !(m->up_down_dtod >= 0) ||
        !(m->tau_dtod >= 0) ||
        !isfinite(m->dw_min_dtod + m->dw_min_std + m->up_down_dtod + m->tau_dtod))
        return ohm_error_set(OHM_ERANGE, "device spreads (*_dtod, dw_min_std) must be >= 0");
    return OHM_OK;
}

/* 1 + s xi, redrawn while not above a small floor: a truncated normal keeps
 * every device physical (positive bound and pulse) without a pile-up at the floor
 * that clipping would make. The cap on redraws only matters for absurd spreads. */
static double positive_factor(ohm_rng_t *r, double s)
{
    double v = 1.0;
    for (int t = 0; t < 64; t++) {
        v = 1.0 + s * ohm_rng_normal(r);
        if (v > 0.05) return v;
    }
    return 0.05;
}

void ohm_device_draw(const ohm_device_model_t *m, ohm_rng_t *rng, ohm_device_t *dev, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double tau = m->tau, scale = 1.0, a = m->up_down;
        if (m->tau_dtod > 0) tau *= positive_factor(rng, m->tau_dtod);
        if (m->dw_min_dtod > 0) scale = positive_factor(rng, m->dw_min_dtod);
        if (m->up_down_dtod > 0) {
            a += m->up_down_dtod * ohm_rng_normal(rng);
            a = fmin(0.99, fmax(-0.99, a)); /* |a| < 1 keeps both directions moving */
        }
        dev[i] = (ohm_device_t){.tau = (float)tau, .scale = (float)scale, .a = (float)a};
    }
}

ohm_device_t ohm_device_nominal(const ohm_device_model_t *m)
{
    return (ohm_device_t){.tau = (float)m->tau, .scale = 1.0f, .a = (float)m->up_down};
}

/* The shape functions without the device asymmetry; x = w / tau_i. */
static inline void shape(int resp, double gamma, double c, double x, double *qp, double *qm)
{
    switch (resp) {
    case OHM_RESP_SOFTBOUNDS:
        *qp = (1 + c) * (1 - x);
        *qm = (1 - c) * (1 + x);
        break;
    case OHM_RESP_POW:
        *qp = pow(fmax(0.0, 1 - x), gamma);
        *qm = pow(fmax(0.0, 1 + x), gamma);
        break;
    case OHM_RESP_EXP: {
        double den = expm1(gamma);
        *qp = expm1(gamma * (1 - x)) / den;
        *qm = expm1(gamma * (1 + x)) / den;
        break;
    }
    default:
        *qp = *qm = 1.0;
        break;
    }
}

void ohm_device_q(const ohm_device_model_t *m, const ohm_device_t *d, double w, double *qp,
                  double *qm)
{
    shape(m->response, m->gamma, m->c, w / d->tau, qp, qm);
    *qp *= 1.0 + (double)d->a;
    *qm *= 1.0 - (double)d->a;
}

double ohm_device_F(const ohm_device_model_t *m, const ohm_device_t *d, double w)
{
    double qp, qm;
    ohm_device_q(m, d, w, &qp, &qm);
    return 0.5 * (qm + qp);
}

double ohm_device_G(const ohm_device_model_t *m, const ohm_device_t *d, double w)
{
    double qp, qm;
    ohm_device_q(m, d, w, &qp, &qm);
    return 0.5 * (qm - qp);
}

double ohm_device_symmetric_point(const ohm_device_model_t *m, const ohm_device_t *d)
{
    double a = d->a, tau = d->tau;
    switch (m->response) {
    case OHM_RESP_SOFTBOUNDS: {
        /* (1+c)(1+a)(1 - x) = (1-c)(1-a)(1 + x)  =>  x = (u - v)/(u + v) */
        double u = (1 + m->c) * (1 + a), v = (1 - m->c) * (1 - a);
        return tau * (u - v) / (u + v);
    }
    case OHM_RESP_POW: {
        /* (1+a)(1-x)^g = (1-a)(1+x)^g  =>  (1-x)/(1+x) = rho = ((1-a)/(1+a))^{1/g} */
        double rho = pow((1 - a) / (1 + a), 1.0 / m->gamma);
        return tau * (1 - rho) / (1 + rho);
    }
    case OHM_RESP_EXP: {
        /* G is increasing in w (q- grows, q+ falls), so bisection on [-tau, tau]. */
        double lo = -tau, hi = tau;
        if (a == 0) return 0.0;
        for (int it = 0; it < 80; it++) {
            double mid = 0.5 * (lo + hi);
            if (ohm_device_G(m, d, mid) > 0)
                hi = mid;
            else
                lo = mid;
        }
        return 0.5 * (lo + hi);
    }
    default:
        return 0.0; /* ideal: G = -a everywhere, no symmetric point to shift to */
    }
}

static inline double clip(double w, double tau)
{
    return w > tau ? tau : (w < -tau ? -tau : w);
}

double ohm_device_step(const ohm_device_model_t *m, const ohm_device_t *d, double w, double dw)
{
    double qp, qm;
    ohm_device_q(m, d, w, &qp, &qm);
    dw *= d->scale;
    return clip(w + dw * (dw >= 0 ? qp : qm), d->tau);
}

/* b^k for k >= 0; whole k up to 64 (every count of a pulse train) by squaring,
 * which is several times cheaper than pow() on the hot path. */
static inline double power(double b, double k)
{
    if (k <= 64 && k == (double)(int)k) {
        int e = (int)k;
        double r = 1.0;
        while (e) {
            if (e & 1) r *= b;
            b *= b;
            e >>= 1;
        }
        return r;
    }
    return pow(b, k);
}

double ohm_device_pulses(const ohm_device_model_t *m, const ohm_device_t *d, double w, double k)
{
    /* Promote the stored float parameters once: float arithmetic in 1 + a would
     * make the closed form disagree with the same pulses applied one by one. */
    double tau = d->tau, delta = m->dw_min * d->scale, a = d->a;
    if (k == 0) return w;
    switch (m->response) {
    case OHM_RESP_IDEAL:
        return clip(w + k * delta * (k > 0 ? 1 + a : 1 - a), tau);
    case OHM_RESP_SOFTBOUNDS: {
        /* One up pulse: w' = w + delta (1+a)(1+c)(1 - w/tau), i.e. the distance to
         * the bound shrinks by (1 - r), r = delta (1+a)(1+c)/tau; after k pulses
         * tau - w_k = (tau - w)(1 - r)^k. Down pulses mirror it towards -tau. */
        if (k > 0) {
            double r = delta * (1 + a) * (1 + m->c) / tau;
            if (r >= 1) return tau;
            return clip(tau - (tau - w) * power(1 - r, k), tau);
        }
        double r = delta * (1 - a) * (1 - m->c) / tau;
        if (r >= 1) return -tau;
        return clip(-tau + (tau + w) * power(1 - r, -k), tau);
    }
    default: {
        /* No closed form worth its cost: the count moves the device at the
         * response of its current state (exact to first order in k delta). */
        double qp, qm;
        ohm_device_q(m, d, w, &qp, &qm);
        return clip(w + k * delta * (k > 0 ? qp : qm), tau);
    }
    }
}

/* The hot loops run in float, the precision the states are stored in, and
 * without branches so the compiler can vectorise them; the scalar double
 * version above is the reference they are tested against. */
void ohm_device_step_array(const ohm_device_model_t *m, const ohm_device_t *dev, float *w,
                           const float *dw, size_t n)
{
    const float cp = (float)(1 + m->c), cm = (float)(1 - m->c);
    switch (m->response) {
    case OHM_RESP_IDEAL:
        for (size_t i = 0; i < n; i++) {
            /* q+- = 1 +- a: F = 1, G = -a */
            float d = dw[i] * dev[i].scale, tau = dev[i].tau, ntau = -tau;
            float v = w[i] + d + fabsf(d) * dev[i].a;
            v = v < tau ? v : tau;
            w[i] = v > ntau ? v : ntau;
        }
        break;
    case OHM_RESP_SOFTBOUNDS:
        for (size_t i = 0; i < n; i++) {
            /* W + dW F - |dW| G: the same as picking q+ or q- by the sign, without a branch */
            float d = dw[i] * dev[i].scale, tau = dev[i].tau, ntau = -tau, a = dev[i].a;
            float x = w[i] / tau;
            float qp = (1.0f + a) * cp * (1.0f - x), qm = (1.0f - a) * cm * (1.0f + x);
            float v = w[i] + d * 0.5f * (qm + qp) - fabsf(d) * 0.5f * (qm - qp);
            v = v < tau ? v : tau;
            w[i] = v > ntau ? v : ntau;
        }
        break;
    default:
        for (size_t i = 0; i < n; i++) {
            if (dw[i] == 0) continue;
            double d = (double)dw[i] * dev[i].scale, tau = dev[i].tau, a = dev[i].a, qp, qm;
            shape(m->response, m->gamma, m->c, w[i] / tau, &qp, &qm);
            double q = d >= 0 ? (1 + a) * qp : (1 - a) * qm;
            w[i] = (float)clip(w[i] + d * q, tau);
        }
        break;
    }
}
