/* ohm_model_spec: the model a configuration describes ([model] section).
 *
 * model.arch = mlp takes model.hidden; lenet5 is LeNet-5 for the data's image
 * shape and classes; custom takes model.layers (ohm_layers.h). The peer, the
 * flatness command and the benchmarks all build their spec here, so they
 * agree on the model and its fingerprint. */
#ifndef OHM_MODEL_SPEC_H
#define OHM_MODEL_SPEC_H

#include "ohm_config.h"
#include "ohm_data.h"
#include "ohm_model.h"

/* LeNet-5's layers for K classes, with "%d" for K (a 28 x 28 input keeps 28 x
 * 28 through the padded first convolution, as the original's 32 x 32 did). */
#define OHM_LENET5_LAYERS "conv:6x5x5/p2,pool:max2,conv:16x5x5,pool:max2,fc:120,fc:84,fc:%d"

/* Fills *s from cfg for data d (input shape, outputs, classification or
 * regression) and checks that the layers fit it. Errors: OHM_EINVAL,
 * OHM_ETOOBIG with a detail naming where the key was set (file:line or --set)
 * and the bad token or layer. */
int ohm_model_spec_from_config(const ohm_config_t *cfg, const ohm_data_t *d, ohm_model_spec_t *s);

#endif
