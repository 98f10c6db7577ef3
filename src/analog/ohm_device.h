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
 * pulsed devices). Device states live in [-tau_i, tau_i] and never leave it. */
#ifndef OHM_DEVICE_H
#define OHM_DEVICE_H

#include "ohm_rng.h"

#include <stddef.h>

/* Response shapes (docs/analog.md). */
enum {
    OHM_RESP_IDEAL = 0,  /* q+ = q- = 1 (aihwkit ConstantStep) */
    OHM_RESP_SOFTBOUNDS, /* q+ = (1+c)(1 - w/tau), q- = (1-c)(1 + w/tau) (aihwkit
                            SoftBounds/LinearStep) */
    OHM_RESP_POW,        /* q+- = (1 -+ w/tau)^gamma (aihwkit PowStep) */
    OHM_RESP_EXP /* q+- = (e^{gamma(1 -+ w/tau)} - 1)/(e^gamma - 1) (exponential saturation) */
};

/* What every device of an array shares. */
typedef struct {
    int response;        /* OHM_RESP_* */
    double tau;          /* nominal bound: states live in [-tau, tau] */
    double gamma;        /* shape of pow / exp */
    double c;            /* softbounds asymmetry offset, |c| < 1 (symmetric point c tau) */
    double dw_min;       /* nominal weight change of one pulse */
    double dw_min_dtod;  /* device-to-device spread of dw_min (relative std) */
    double dw_min_std;   /* cycle-to-cycle spread of each pulse (relative std) */
    double up_down;      /* mean up/down asymmetry a: q+ scaled by (1+a), q- by (1-a) */
    double up_down_dtod; /* device-to-device spread of a (absolute std) */
    double tau_dtod;     /* device-to-device spread of tau (relative std) */
} ohm_device_model_t;

/* One device's own parameters (drawn once, saved in checkpoints). */
typedef struct {
    float tau;   /* own bound: state in [-tau, tau] */
    float scale; /* own pulse size / nominal dw_min */
    float a;     /* own up/down asymmetry, |a| < 1 */
} ohm_device_t;

/* A model with the defaults of the [device] section (ideal, tau 1, dw_min 0.001). */
void ohm_device_model_default(ohm_device_model_t *m);

/* Checks a model's values (tau, dw_min > 0; |c|, |up_down| < 1; spreads >= 0; gamma > 0).
 * Returns OHM_OK or OHM_ERANGE with a detail naming the field. */
int ohm_device_model_check(const ohm_device_model_t *m);

/* Draws n devices from `rng` (the caller seeds it from OHM_STREAM_DEVICE):
 * tau_i = tau (1 + tau_dtod xi), scale_i = 1 + dw_min_dtod xi (both kept positive
 * by redrawing: a truncated normal), a_i = up_down + up_down_dtod xi clipped to
 * [-0.99, 0.99]. With zero spreads no random number is consumed. */
void ohm_device_draw(const ohm_device_model_t *m, ohm_rng_t *rng, ohm_device_t *dev, size_t n);

/* The nominal device (tau, scale 1, a = up_down), for tests and single-device use. */
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

/* k pulses of the device's own size dw_min scale (sign of k = direction; k may be
 * fractional, as cycle-to-cycle noise makes it). Closed form for ideal and
 * softbounds (exactly k sequential pulses); pow/exp apply k dw_min at the
 * response of the current state (one Euler step). Clipped to the bounds. */
double ohm_device_pulses(const ohm_device_model_t *m, const ohm_device_t *d, double w, double k);

/* Array form of ohm_device_step over device states: w[i] = U_q(w[i], scale_i dw[i]),
 * clipped. The response switch is hoisted out of the loop (this is the hot path
 * of the expected update mode). */
void ohm_device_step_array(const ohm_device_model_t *m, const ohm_device_t *dev, float *w,
                           const float *dw, size_t n);

#endif
