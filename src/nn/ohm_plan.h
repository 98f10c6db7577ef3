/* ohm_plan: the shapes of a model spec, layer by layer.
 *
 * One place turns a spec (an MLP's widths, or a layer list of conv, pool and
 * dense layers) into what the model, the Hessian-vector products and the
 * fingerprint need: every layer's input and output shape, its tile's shape and
 * parameter offset, and whether the activation follows it. Images are stored
 * height x width x channels per example (channels last, docs/analog.md,
 * section "Convolutions"), so a flattened image is the same memory. */
#ifndef OHM_PLAN_H
#define OHM_PLAN_H

#include "ohm_layers.h"
#include "ohm_model.h"

#include <stddef.h>

typedef struct {
    int kind;                /* OHM_LAYER_FC, _CONV, _MAXPOOL or _AVGPOOL */
    int in_c, in_h, in_w;    /* input shape (a vector is c = size, h = w = 1) */
    int out_c, out_h, out_w; /* output shape */
    int in_size, out_size;   /* floats per example */
    int kh, kw, pad;         /* conv kernel / pool window, zero padding */
    int sh, sw;              /* strides down and across */
    int tile;                /* index of the layer's tile; -1 for pools */
    int rows, cols;          /* tile: outputs x (fan-in + bias column) */
    int positions;           /* unrolled rows per example: conv out_h*out_w; fc 1 */
    int fan_in, fan_out;     /* for initialisation */
    int act;                 /* 1: the model's activation follows the layer */
    size_t off;              /* offset of the tile's weights in the flat parameters */
    int token;               /* index in spec->layers; -1 for an MLP spec */
} ohm_plan_layer_t;

typedef struct {
    int n;                 /* layers (flatten tokens take none) */
    int ntiles;            /* layers with a tile */
    int images;            /* 1 if any conv or pool layer: the fingerprint says so */
    int in_size, out_size; /* floats per example in and out */
    size_t nparams;        /* total weights of every tile */
    int max_size;          /* largest layer input or output, floats per example */
    ohm_plan_layer_t l[OHM_LAYERS_MAX];
} ohm_plan_t;

/* Fills *p for spec s. Errors: OHM_EINVAL (bad spec: a shape that does not fit,
 * naming the layer's token), OHM_ETOOBIG (sizes past the limits). */
int ohm_plan_build(const ohm_model_spec_t *s, ohm_plan_t *p);

/* Digest of the plan's shapes, bias flag and dtype; an MLP's digest does not
 * depend on whether it was given as widths or as fc layers. */
uint64_t ohm_plan_fingerprint(const ohm_plan_t *p, int bias);

/* "784-128-10 with bias" or "1x28x28 conv:6x5x5/p2,...,fc:10 with bias" into buf[cap]. */
void ohm_plan_describe(const ohm_model_spec_t *s, char *buf, size_t cap);

#endif
