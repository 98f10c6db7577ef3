/* ohm_device: response functions q+/q- and per-device parameters.
 *
 * Formulas (docs/analog.md; Wu et al. NeurIPS 2024/2025 for the response
 * notation; IBM aihwkit's pulsed device family for the per-device parameters):
 *   ideal:      q+ = q- = 1
 *   softbounds: q+ = (1+c)(1 - w/tau),  q- = (1-c)(1 + w/tau)
 *   linear:     q+ = (1+c)(1 - gamma w/tau),  q- = (1-c)(1 + gamma w/tau)
 *   pow:        q+ = (1 - w/tau)^gamma, q- = (1 + w/tau)^gamma
 *   exp:        q+ = (e^{gamma(1 - w/tau)} - 1)/(e^gamma - 1), q- = same with 1 + w/tau
 * c acts on softbounds and linear only. Each device then scales q+ by (1+a) and
 * q- by (1-a) (its up/down asymmetry; how a is drawn from up_down depends on
 * the convention, see ohm_device_draw), uses its own bound tau_i in place of
 * tau, and its own pulse size dw_min scale_i. Bursts: ohm_burst.h. */
#include "ohm_device.h"

#include "ohm_burst.h"
#include "ohm_error.h"

#include <math.h>
#include <string.h>

static const char *const resp_names[OHM_RESP_COUNT] = {"ideal", "softbounds", "pow", "exp",
                                                       "linear"};

int ohm_device_response_index(const char *name)
{
    for (int i = 0; i < OHM_RESP_COUNT; i++)
        if (strcmp(name, resp_names[i]) == 0) return i;
    return -1;
}

void ohm_device_model_default(ohm_device_model_t *m)
{
    *m = (ohm_device_model_t){
        .response = OHM_RESP_IDEAL, .tau = 1.0, .gamma = 1.0, .c = 0.0, .dw_min = 0.001};
}

int ohm_device_model_check(const ohm_device_model_t *m)
{
    if (m->response < 0 || m->response >= OHM_RESP_COUNT)
        return ohm_error_set(OHM_ERANGE, "device.response: unknown response %d", m->response);
    if (m->convention != OHM_ASYM_OHM && m->convention != OHM_ASYM_AIHWKIT)
        return ohm_error_set(OHM_ERANGE, "device.asymmetry_convention: unknown convention %d",
                             m->convention);
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

/* |a| < 1 keeps both directions moving (a device whose one direction is dead
 * cannot be represented by a scale and an asymmetry). */
static double clip_asym(double a)
{
    return fmin(0.99, fmax(-0.99, a));
}

/* aihwkit's up and down sizes (units of dw_min) as scale and asymmetry. */
static void from_up_down(double up, double down, double *scale, double *a)
{
    double s = 0.5 * (up + down);
    if (!(s > 1e-6)) { /* both directions dead: the smallest device that still moves */
        *scale = 1e-6;
        *a = 0;
        return;
    }
    *scale = s;
    *a = clip_asym((up - down) / (up + down));
}

void ohm_device_draw(const ohm_device_model_t *m, ohm_rng_t *rng, ohm_device_t *dev, size_t n)
{
    double u = m->up_down;
    for (size_t i = 0; i < n; i++) {
        double tau = m->tau, scale = 1.0, a = u;
        if (m->tau_dtod > 0) tau *= positive_factor(rng, m->tau_dtod);
        if (m->convention == OHM_ASYM_AIHWKIT) {
            /* PulsedDevice::populate: up = gain + min(u,0) + r, down = gain - max(u,0) - r,
             * each folded to its absolute value (enforce_consistency). */
            double g = 1.0, r = 0.0;
            if (m->dw_min_dtod > 0) g += m->dw_min_dtod * ohm_rng_normal(rng);
            if (m->up_down_dtod > 0) r = m->up_down_dtod * ohm_rng_normal(rng);
            from_up_down(fabs(g + fmin(u, 0.0) + r), fabs(g - fmax(u, 0.0) - r), &scale, &a);
        } else {
            if (m->dw_min_dtod > 0) scale = positive_factor(rng, m->dw_min_dtod);
            if (m->up_down_dtod > 0) a = clip_asym(a + m->up_down_dtod * ohm_rng_normal(rng));
        }
        dev[i] = (ohm_device_t){.tau = (float)tau, .scale = (float)scale, .a = (float)a};
    }
}

ohm_device_t ohm_device_nominal(const ohm_device_model_t *m)
{
    double scale = 1.0, a = m->up_down;
    if (m->convention == OHM_ASYM_AIHWKIT) {
        double u = m->up_down;
        from_up_down(1.0 + fmin(u, 0.0), 1.0 - fmax(u, 0.0), &scale, &a);
    }
    return (ohm_device_t){.tau = (float)m->tau, .scale = (float)scale, .a = (float)a};
}

/* The shape functions without the device asymmetry; x = w / tau_i. */
static inline void shape(const ohm_device_model_t *m, double x, double *qp, double *qm)
{
    double c = m->c, g = m->gamma;
    switch (m->response) {
    case OHM_RESP_SOFTBOUNDS:
        *qp = (1 + c) * (1 - x);
        *qm = (1 - c) * (1 + x);
        break;
    case OHM_RESP_LINEAR:
        *qp = (1 + c) * (1 - g * x);
        *qm = (1 - c) * (1 + g * x);
        break;
    case OHM_RESP_POW:
        *qp = pow(fmax(0.0, 1 - x), g);
        *qm = pow(fmax(0.0, 1 + x), g);
        break;
    case OHM_RESP_EXP: {
        double den = expm1(g);
        *qp = expm1(g * (1 - x)) / den;
        *qm = expm1(g * (1 + x)) / den;
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
    shape(m, w / d->tau, qp, qm);
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
    case OHM_RESP_SOFTBOUNDS:
    case OHM_RESP_LINEAR: {
        /* (1+c)(1+a)(1 - g x) = (1-c)(1-a)(1 + g x)  =>  x = (u - v)/(g (u + v)) */
        double u = (1 + m->c) * (1 + a), v = (1 - m->c) * (1 - a);
        double g = m->response == OHM_RESP_LINEAR ? m->gamma : 1.0;
        double x = (u - v) / (g * (u + v));
        return fabs(x) < 1 ? tau * x : 0.0;
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

double ohm_device_step(const ohm_device_model_t *m, const ohm_device_t *d, double w, double dw)
{
    double qp, qm;
    ohm_device_q(m, d, w, &qp, &qm);
    dw *= d->scale;
    return ohm_burst_clip(w + dw * (dw >= 0 ? qp : qm), d->tau);
}

double ohm_device_pulses(const ohm_device_model_t *m, const ohm_device_t *d, double w, long k)
{
    if (k == 0) return w;
    ohm_burst_t b;
    ohm_burst_init(&b, m);
    /* The stored float parameters are promoted once, as the tile kernels do. */
    return ohm_burst(&b, b.response, w, k > 0 ? k : -k, k > 0 ? 1.0 : -1.0, d->tau, d->scale, d->a);
}

double ohm_device_pulses_noisy(const ohm_device_model_t *m, const ohm_device_t *d, double w,
                               long k, double xi)
{
    if (k == 0) return w;
    ohm_burst_t b;
    ohm_burst_init(&b, m);
    long n = k > 0 ? k : -k;
    double wk = ohm_burst(&b, b.response, w, n, k > 0 ? 1.0 : -1.0, d->tau, d->scale, d->a);
    return b.c2c > 0 ? ohm_burst_noisy(&b, w, wk, n, xi, d->tau) : wk;
}

/* The hot loops run in float, the precision the states are stored in, and
 * without branches so the compiler can vectorise them; the scalar double
 * version above is the reference they are tested against. */
void ohm_device_step_array(const ohm_device_model_t *m, const ohm_device_t *dev, float *w,
                           const float *dw, size_t n)
{
    const float cp = (float)(1 + m->c), cm = (float)(1 - m->c);
    const float g = m->response == OHM_RESP_LINEAR ? (float)m->gamma : 1.0f;
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
    case OHM_RESP_LINEAR:
        for (size_t i = 0; i < n; i++) {
            /* W + dW F - |dW| G: the same as picking q+ or q- by the sign, without a branch */
            float d = dw[i] * dev[i].scale, tau = dev[i].tau, ntau = -tau, a = dev[i].a;
            float x = g * (w[i] / tau);
            float qp = (1.0f + a) * cp * (1.0f - x), qm = (1.0f - a) * cm * (1.0f + x);
            float v = w[i] + d * 0.5f * (qm + qp) - fabsf(d) * 0.5f * (qm - qp);
            v = v < tau ? v : tau;
            w[i] = v > ntau ? v : ntau;
        }
        break;
    default: {
        /* pow and exp: only the direction's own shape, and gamma 1 or 2 without pow(). */
        ohm_burst_t b;
        ohm_burst_init(&b, m);
        for (size_t i = 0; i < n; i++) {
            if (dw[i] == 0) continue;
            double d = (double)dw[i] * dev[i].scale, tau = dev[i].tau, s = d >= 0 ? 1.0 : -1.0;
            double q = (1 + s * dev[i].a) * ohm_burst_shape(&b, b.response, 1.0 - s * w[i] / tau);
            w[i] = (float)ohm_burst_clip(w[i] + d * q, tau);
        }
        break;
    }
    }
}
