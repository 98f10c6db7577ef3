/* ohm_analog: parameters of simulated analog crossbar tiles, read from the
 * [device] and [optimizer] sections, and the tile factory the model uses.
 *
 * The factory returns a plain digital tile for optimizer = digital, so a
 * digital run never touches analog code; otherwise an analog tile
 * (ohm_analog_tile.h) whose devices are drawn from (seed, peer, layer). */
#ifndef OHM_ANALOG_H
#define OHM_ANALOG_H

#include "ohm_config.h"
#include "ohm_device.h"
#include "ohm_tile.h"

#include <stdint.h>

enum { OHM_OPT_DIGITAL = 0, OHM_OPT_ANALOG_SGD, OHM_OPT_TIKI_TAKA, OHM_OPT_RESIDUAL };
enum { OHM_UPDATE_EXPECTED = 0, OHM_UPDATE_STOCHASTIC };

typedef struct {
    ohm_device_model_t dev; /* [device] response, bounds, pulse size, spreads */
    /* pulsed update */
    int update;            /* OHM_UPDATE_*: expected value or stochastic pulse trains */
    int granular;          /* expected mode: round to whole pulses (stochastic rounding) */
    int bl;                /* pulse-train length of the stochastic mode, 1..32 */
    int update_management; /* balance the x and d trains' probabilities, over-BL rule (aihwkit UM) */
    int update_bl_management; /* shorten the trains of small updates (aihwkit UBLM) */
    /* read periphery (0 = ideal) */
    int in_bits;      /* input DAC bits over [-max|x|, max|x|] per vector */
    int out_bits;     /* output ADC bits over [-out_bound, out_bound] (needs out_bound > 0) */
    double out_bound; /* output saturation, in units of the normalised read */
    double out_noise; /* additive output noise std, same units */
    /* optimizer */
    int opt;              /* OHM_OPT_* */
    double beta;          /* transfer rate (tiki-taka, residual) */
    double gamma;         /* weight of the fast/residual array in the effective weights */
    int transfer_every;   /* tiki-taka: updates between two transfers */
    int transfer_columns; /* tiki-taka: columns moved per transfer */
    int buffered;         /* residual: limited-granularity variant with a digital buffer H */
} ohm_analog_params_t;

/* Defaults of the configuration schema: ideal device, expected update, ideal
 * reads, optimizer digital, update management on, BL management off. */
void ohm_analog_params_default(ohm_analog_params_t *p);

/* Checks the values (device model, bl in 1..32, bits in 0..24, out_bits needs out_bound,
 * transfer counts >= 1, rates >= 0). OHM_ERANGE / OHM_EINVAL with a detail naming the key. */
int ohm_analog_params_check(const ohm_analog_params_t *p);

/* Fills *p from the [device] and [optimizer] keys of `cfg` and checks it
 * (a device.preset has already set the keys it names when the configuration
 * was read: see ohm_config). Errors as ohm_analog_params_check; *p is
 * unspecified on error. */
int ohm_analog_params_from_config(const ohm_config_t *cfg, ohm_analog_params_t *p);

/* What the model's tile factory needs: the parameters and the stream identity. */
typedef struct {
    ohm_analog_params_t params;
    uint64_t seed; /* run seed ([train] seed) */
    uint64_t peer; /* this peer's id: each peer has its own devices */
} ohm_analog_ctx_t;

/* ohm_tile_factory_fn for ohm_model_new with ctx an ohm_analog_ctx_t*: a digital
 * tile for OHM_OPT_DIGITAL, else an analog tile for layer `layer`. Caller owns
 * the tile; NULL on allocation failure. */
ohm_tile_t *ohm_analog_tile_factory(void *ctx, int layer, int rows, int cols);

#endif
