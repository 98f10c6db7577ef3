/* ohm_model_spec: [model] keys into a model spec (see ohm_model_spec.h). */
#include "ohm_model_spec.h"

#include "ohm_error.h"
#include "ohm_plan.h"

#include <stdio.h>
#include <string.h>

int ohm_model_spec_from_config(const ohm_config_t *cfg, const ohm_data_t *d, ohm_model_spec_t *s)
{
    memset(s, 0, sizeof *s);
    s->n_in = ohm_data_dim(d);
    s->n_out = ohm_data_outputs(d);
    const char *a = ohm_config_str(cfg, "model.activation");
    s->act = !strcmp(a, "tanh") ? OHM_ACT_TANH : !strcmp(a, "sigmoid") ? OHM_ACT_SIGMOID : OHM_ACT_RELU;
    s->loss = ohm_data_is_regression(d) ? OHM_LOSS_MSE : OHM_LOSS_XENT;
    s->bias = ohm_config_bool(cfg, "model.bias");
    const char *arch = ohm_config_str(cfg, "model.arch");
    const char *text = ohm_config_str(cfg, "model.layers");
    const char *where = ohm_config_origin(cfg, "model.layers");
    char origin[160], lenet[128];
    if (strcmp(arch, "custom") != 0 && text[0])
        return ohm_error_set(OHM_EINVAL,
                             "%s: model.layers is set, but model.arch = %s ignores it (set "
                             "model.arch = custom)",
                             where, arch);
    if (strcmp(arch, "mlp") == 0) {
        s->n_hidden =
            ohm_config_int_list(cfg, "model.hidden", s->hidden, OHM_MODEL_MAX_LAYERS - 1);
        if (s->n_hidden < 0)
            return ohm_error_set(OHM_EINVAL, "%s: model.hidden: at most %d hidden layers",
                                 ohm_config_origin(cfg, "model.hidden"), OHM_MODEL_MAX_LAYERS - 1);
        return OHM_OK;
    }
    if (strcmp(arch, "lenet5") == 0) {
        snprintf(lenet, sizeof lenet, OHM_LENET5_LAYERS, s->n_out);
        text = lenet;
        snprintf(origin, sizeof origin, "%s: model.arch = lenet5",
                 ohm_config_origin(cfg, "model.arch"));
    } else {
        if (!text[0])
            return ohm_error_set(OHM_EINVAL, "%s: model.arch = custom needs model.layers",
                                 ohm_config_origin(cfg, "model.arch"));
        snprintf(origin, sizeof origin, "%s", where);
    }
    ohm_data_shape(d, s->in_shape);
    int rc = ohm_layers_parse(text, origin, s->layers, &s->n_layers);
    if (rc) return rc;
    ohm_plan_t plan;
    if ((rc = ohm_plan_build(s, &plan))) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s", ohm_error_detail());
        return ohm_error_set(rc, "%s: model.layers for input %dx%dx%d: %s", origin, s->in_shape[0],
                             s->in_shape[1], s->in_shape[2], detail);
    }
    return OHM_OK;
}
