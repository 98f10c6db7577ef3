/* ohm_device: resistive-device response functions and per-device parameters.
 *
 * Notation of the analog-training papers (Wu et al., NeurIPS 2024 and 2025):
 * a requested change dw moves a device by U_q(w, dw) = w + dw q+(w) if dw >= 0,
 * else w + dw q-(w); F = (q- + q+)/2 is the symmetric part, G = (q- - q+)/2 the
 * asymmetric part, so U_q(w, dw) = w + dw F(w) - |dw| G(w).
 *
 * A device model (shared by every device of an array) gives the response
 * shape, the nominal bound tau, the nominal pulse size dw_min and the spreads.
 * Each device then has its own bound, pulse-size scale and up/down asymmetry,
 * drawn once (device-to-device variation, in the style of IBM aihwkit's
 * pulsed devices). Device states live in [-tau_i, tau_i] and never leave it.
 *
 * Pulses: one up pulse moves a device by dw_min scale_i (1 + a_i) q+(w) (its
 * shape without asymmetry), one down pulse by -dw_min scale_i (1 - a_i) q-(w),
 * each clipped to the bounds. k pulses in a row (a burst) give exactly the state
 * of k single pulses (ohm_device_pulses); docs/analog.md, section "Pulses and bursts". */
#ifndef OHM_DEVICE_H
#define OHM_DEVICE_H

#include "ohm_rng.h"

#include <stddef.h>

/* Response shapes (docs/analog.md, section "Response functions"); x = w / tau_i. */
enum {
    OHM_RESP_IDEAL = 0,  /* q+ = q- = 1 (aihwkit ConstantStep) */
    OHM_RESP_SOFTBOUNDS, /* q+ = (1+c)(1 - x), q- = (1-c)(1 + x) (aihwkit SoftBounds) */
    OHM_RESP_POW,        /* q+- = (1 -+ x)^gamma (aihwkit PowStep) */
    OHM_RESP_EXP,        /* q+- = (e^{gamma(1 -+ x)} - 1)/(e^gamma - 1) (exponential saturation) */
    OHM_RESP_LINEAR      /* q+ = (1+c)(1 - gamma x), q- = (1-c)(1 + gamma x), hard bounds
                            (aihwkit LinearStep; softbounds is gamma = 1) */
};
#define OHM_RESP_COUNT 5

/* How up_down and its spread turn into each device's up and down pulse sizes:
 * docs/analog.md, section "Devices and the asymmetry conventions". */
enum {
    OHM_ASYM_OHM = 0, /* up dw_min s (1+a), down dw_min s (1-a); s, tau truncated normals */
    OHM_ASYM_AIHWKIT  /* aihwkit PulsedDevice: only the weaker direction shrinks by |u|;
                         gain and up/down spread folded (enforce_consistency) */
};

/* What every device of an array shares. */
typedef struct {
    int response;        /* OHM_RESP_* */
    double tau;          /* nominal bound: states live in [-tau, tau] */
    double gamma;        /* shape of pow / exp / linear */
    double c;            /* softbounds/linear amplitude asymmetry, |c| < 1 */
    double dw_min;       /* nominal weight change of one pulse */
    double dw_min_dtod;  /* device-to-device spread of dw_min (relative std) */
    double dw_min_std;   /* cycle-to-cycle spread of each pulse (relative std) */
    double up_down;      /* mean up/down asymmetry (meaning set by `convention`) */
    double up_down_dtod; /* device-to-device spread of the asymmetry (absolute std) */
    double tau_dtod;     /* device-to-device spread of tau (relative std) */
    int convention;      /* OHM_ASYM_*: how up_down and the spreads are drawn */
} ohm_device_model_t;

/* One device's own parameters (drawn once, saved in checkpoints). */
typedef struct {
    float tau;   /* own bound: state in [-tau, tau] */
    float scale; /* own mean pulse size / nominal dw_min */
    float a;     /* own up/down asymmetry, |a| < 1: up scale (1+a), down scale (1-a) */
} ohm_device_t;

/* A model with the defaults of the [device] section (ideal, tau 1, dw_min 0.001). */
void ohm_device_model_default(ohm_device_model_t *m);

/* Checks a model's values (tau, dw_min > 0; |c|, |up_down| < 1; spreads >= 0; gamma > 0).
 * Returns OHM_OK or OHM_ERANGE with a detail naming the field. */
int ohm_device_model_check(const ohm_device_model_t *m);

/* Draws n devices from `rng` (the caller seeds it from OHM_STREAM_DEVICE).
 * ohm convention: tau_i = tau (1 + tau_dtod xi), scale_i = 1 + dw_min_dtod xi
 * (both kept positive by redrawing: a truncated normal), a_i = up_down +
 * up_down_dtod xi clipped to [-0.99, 0.99]. aihwkit convention: up and down
 * sizes U = |g + min(u, 0) + r|, D = |g - max(u, 0) - r| with g = 1 + dw_min_dtod xi,
 * r = up_down_dtod xi', stored as scale = (U + D)/2, a = (U - D)/(U + D) (clipped
 * as above); tau_i as in ohm. With zero spreads no random number is consumed. */
void ohm_device_draw(const ohm_device_model_t *m, ohm_rng_t *rng, ohm_device_t *dev, size_t n);

/* The nominal device (no spread) of the model's convention, for tests and single-device use. */
ohm_device_t ohm_device_nominal(const ohm_device_model_t *m);

/* q+(w) and q-(w) of one device, with its asymmetry a applied. */
void ohm_device_q(const ohm_device_model_t *m, const ohm_device_t *d, double w, double *qp,
                  double *qm);

/* F(w) = (q- + q+)/2 and G(w) = (q- - q+)/2 of one device. */
double ohm_device_F(const ohm_device_model_t *m, const ohm_device_t *d, double w);
double ohm_device_G(const ohm_device_model_t *m, const ohm_device_t *d, double w);

/* The state where G(w) = 0 (the symmetric point); 0 when there is none inside
 * the bounds (an ideal device with a != 0 is asymmetric everywhere). */
double ohm_device_symmetric_point(const ohm_device_model_t *m, const ohm_device_t *d);

/* One expected-value update: U_q(w, scale dw), clipped to [-tau_i, tau_i]. */
double ohm_device_step(const ohm_device_model_t *m, const ohm_device_t *d, double w, double dw);

/* |k| pulses of the device's own size, up for k > 0, down for k < 0: exactly
 * the state |k| single pulses (each clipped) reach. Closed form for ideal,
 * softbounds and linear (the map is affine: geometric approach to a fixed
 * point); pow and exp iterate the single pulse (stopping early once a pulse
 * no longer moves the state, which is then a fixed point). */
double ohm_device_pulses(const ohm_device_model_t *m, const ohm_device_t *d, double w, long k);

/* The same burst with cycle-to-cycle noise: the change of the exact burst is
 * scaled by (1 + dw_min_std xi / sqrt|k|) and the result clipped. For one pulse
 * this is the pulse of size dw_min scale (1 + dw_min_std xi); for k pulses the
 * mean is exact and the variance that of k independent pulse sizes to first
 * order in dw_min (docs/analog.md, section "Cycle-to-cycle noise"). xi ~ N(0, 1). */
double ohm_device_pulses_noisy(const ohm_device_model_t *m, const ohm_device_t *d, double w,
                               long k, double xi);

/* Array form of ohm_device_step over device states: w[i] = U_q(w[i], scale_i dw[i]),
 * clipped. The response switch is hoisted out of the loop (this is the hot path
 * of the expected update mode). */
void ohm_device_step_array(const ohm_device_model_t *m, const ohm_device_t *dev, float *w,
                           const float *dw, size_t n);

/* Response names as in the configuration ("ideal", "softbounds", "pow", "exp",
 * "linear"): the index of `name`, or -1. */
int ohm_device_response_index(const char *name);

#endif
