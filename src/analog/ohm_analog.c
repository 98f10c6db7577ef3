/* ohm_analog: analog tile parameters from the configuration, and the factory. */
#include "ohm_analog.h"

#include "ohm_analog_tile.h"
#include "ohm_error.h"

#include <math.h>
#include <string.h>

void ohm_analog_params_default(ohm_analog_params_t *p)
{
    memset(p, 0, sizeof *p);
    ohm_device_model_default(&p->dev);
    p->update = OHM_UPDATE_EXPECTED;
    p->bl = 31;
    p->update_management = 1;
    p->opt = OHM_OPT_DIGITAL;
    p->beta = 0.01;
    p->gamma = 0.1;
    p->transfer_every = 1;
    p->transfer_columns = 1;
}

int ohm_analog_params_check(const ohm_analog_params_t *p)
{
    int rc = ohm_device_model_check(&p->dev);
    if (rc) return rc;
    if (p->update != OHM_UPDATE_EXPECTED && p->update != OHM_UPDATE_STOCHASTIC)
        return ohm_error_set(OHM_ERANGE, "device.update: unknown mode %d", p->update);
    if (p->bl < 1 || p->bl > 32)
        return ohm_error_set(OHM_ERANGE, "device.bl: %d not in 1..32", p->bl);
    /* One bit has no level besides the two rails' sign; 2 bits is the smallest
     * symmetric converter (-1, 0, 1). */
    if (p->in_bits == 1 || p->in_bits < 0 || p->in_bits > 24)
        return ohm_error_set(OHM_ERANGE, "device.in_bits: %d not 0 (ideal) or 2..24", p->in_bits);
    if (p->out_bits == 1 || p->out_bits < 0 || p->out_bits > 24)
        return ohm_error_set(OHM_ERANGE, "device.out_bits: %d not 0 (ideal) or 2..24", p->out_bits);
    if (!(p->out_bound >= 0) || !isfinite(p->out_bound))
        return ohm_error_set(OHM_ERANGE, "device.out_bound: must be >= 0");
    if (!(p->out_noise >= 0) || !isfinite(p->out_noise))
        return ohm_error_set(OHM_ERANGE, "device.out_noise: must be >= 0");
    if (p->out_bits > 0 && p->out_bound <= 0)
        return ohm_error_set(OHM_EINVAL,
                             "device.out_bits = %d needs device.out_bound > 0 (the ADC range)",
                             p->out_bits);
    if (p->opt < OHM_OPT_DIGITAL || p->opt > OHM_OPT_RESIDUAL)
        return ohm_error_set(OHM_ERANGE, "optimizer.name: unknown optimizer %d", p->opt);
    if (!(p->beta >= 0) || !isfinite(p->beta) || !isfinite(p->gamma))
        return ohm_error_set(OHM_ERANGE, "optimizer.beta/gamma: must be finite, beta >= 0");
    if (p->transfer_every < 1 || p->transfer_columns < 1)
        return ohm_error_set(OHM_ERANGE,
                             "optimizer.transfer_every / transfer_columns: must be >= 1");
    return OHM_OK;
}

static int index_of(const char *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0) return i;
    return -1;
}

int ohm_analog_params_from_config(const ohm_config_t *cfg, ohm_analog_params_t *p)
{
    static const char *const conv[] = {"ohm", "aihwkit"};
    static const char *const upd[] = {"expected", "stochastic"};
    static const char *const opt[] = {"digital", "analog-sgd", "tiki-taka", "residual"};
    ohm_analog_params_default(p);
    const char *s = ohm_config_str(cfg, "device.response");
    if ((p->dev.response = ohm_device_response_index(s)) < 0)
        return ohm_error_set(OHM_ERANGE, "device.response: unknown value '%s'", s);
    p->dev.tau = ohm_config_double(cfg, "device.tau");
    p->dev.gamma = ohm_config_double(cfg, "device.gamma");
    p->dev.c = ohm_config_double(cfg, "device.c");
    p->dev.dw_min = ohm_config_double(cfg, "device.dw_min");
    p->dev.dw_min_dtod = ohm_config_double(cfg, "device.dw_min_dtod");
    p->dev.dw_min_std = ohm_config_double(cfg, "device.dw_min_std");
    p->dev.up_down = ohm_config_double(cfg, "device.up_down");
    p->dev.up_down_dtod = ohm_config_double(cfg, "device.up_down_dtod");
    p->dev.tau_dtod = ohm_config_double(cfg, "device.tau_dtod");
    s = ohm_config_str(cfg, "device.asymmetry_convention");
    if ((p->dev.convention = index_of(s, conv, 2)) < 0)
        return ohm_error_set(OHM_ERANGE, "device.asymmetry_convention: unknown value '%s'", s);
    s = ohm_config_str(cfg, "device.update");
    if ((p->update = index_of(s, upd, 2)) < 0)
        return ohm_error_set(OHM_ERANGE, "device.update: unknown value '%s'", s);
    p->granular = ohm_config_bool(cfg, "device.granular");
    p->bl = (int)ohm_config_int(cfg, "device.bl");
    p->in_bits = (int)ohm_config_int(cfg, "device.in_bits");
    p->out_bits = (int)ohm_config_int(cfg, "device.out_bits");
    p->out_bound = ohm_config_double(cfg, "device.out_bound");
    p->out_noise = ohm_config_double(cfg, "device.out_noise");
    p->update_management = ohm_config_bool(cfg, "device.update_management");
    p->update_bl_management = ohm_config_bool(cfg, "device.update_bl_management");
    s = ohm_config_str(cfg, "optimizer.name");
    if ((p->opt = index_of(s, opt, 4)) < 0)
        return ohm_error_set(OHM_ERANGE, "optimizer.name: unknown value '%s'", s);
    p->beta = ohm_config_double(cfg, "optimizer.beta");
    p->gamma = ohm_config_double(cfg, "optimizer.gamma");
    long te = ohm_config_int(cfg, "optimizer.transfer_every");
    long tc = ohm_config_int(cfg, "optimizer.transfer_columns");
    p->transfer_every = te > 0x7fffffffL ? 0x7fffffff : (int)te;
    p->transfer_columns = tc > 0x7fffffffL ? 0x7fffffff : (int)tc;
    p->buffered = ohm_config_bool(cfg, "optimizer.buffered");
    return ohm_analog_params_check(p);
}

ohm_tile_t *ohm_analog_tile_factory(void *ctx, int layer, int rows, int cols)
{
    const ohm_analog_ctx_t *c = ctx;
    if (c->params.opt == OHM_OPT_DIGITAL) return ohm_tile_digital_new(rows, cols);
    return ohm_analog_tile_new(&c->params, rows, cols, c->seed, c->peer, layer);
}
