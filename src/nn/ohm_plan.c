/* ohm_plan: shapes of a model spec (see ohm_plan.h). */
#include "ohm_plan.h"

#include "ohm_error.h"
#include "ohm_rng.h"

#include <stdio.h>
#include <string.h>

/* Largest layer input or output per example, and largest tile: far from int
 * overflow in every product the model forms with a batch (checked there). */
#define MAX_SIZE (1 << 24)
#define MAX_TILE (1L << 28)

/* "layer 3 'conv:16x5x5'" for error messages. */
static void token_name(const ohm_model_spec_t *s, int t, char *buf, size_t cap)
{
    char one[64];
    ohm_layer_format(&s->layers[t], one, sizeof one);
    snprintf(buf, cap, "layer %d '%s'", t + 1, one);
}

/* Appends a layer with a tile of `rows` outputs (fc or conv); shapes set by the caller. */
static int add_tile(ohm_plan_t *p, ohm_plan_layer_t *L, int bias, const char *name)
{
    long fan = (long)L->in_c * (L->kind == OHM_LAYER_CONV ? (long)L->kh * L->kw : (long)L->in_h * L->in_w);
    if (fan + bias > MAX_SIZE || (fan + bias) * (long)L->rows > MAX_TILE)
        return ohm_error_set(OHM_ETOOBIG, "model: %s: tile of %d x %ld is too large", name,
                             L->rows, fan + bias);
    L->cols = (int)fan + bias;
    L->fan_in = (int)fan;
    L->fan_out = L->kind == OHM_LAYER_CONV ? L->rows * L->kh * L->kw : L->rows;
    L->tile = p->ntiles++;
    L->off = p->nparams;
    p->nparams += (size_t)L->rows * (size_t)L->cols;
    return OHM_OK;
}

int ohm_plan_build(const ohm_model_spec_t *s, ohm_plan_t *p)
{
    memset(p, 0, sizeof *p);
    if (s->n_in < 1 || s->n_out < 1)
        return ohm_error_set(OHM_EINVAL, "model: bad shape (in %d, out %d)", s->n_in, s->n_out);
    if (s->n_in > MAX_SIZE)
        return ohm_error_set(OHM_ETOOBIG, "model: %d inputs", s->n_in);
    int c = s->n_in, h = 1, w = 1;
    if (s->in_shape[0] || s->in_shape[1] || s->in_shape[2]) {
        if (s->in_shape[0] < 1 || s->in_shape[1] < 1 || s->in_shape[2] < 1 ||
            (long)s->in_shape[0] * s->in_shape[1] * s->in_shape[2] != s->n_in)
            return ohm_error_set(OHM_EINVAL, "model: input shape %dx%dx%d does not hold %d inputs",
                                 s->in_shape[0], s->in_shape[1], s->in_shape[2], s->n_in);
        c = s->in_shape[0];
        h = s->in_shape[1];
        w = s->in_shape[2];
    }
    int bias = s->bias ? 1 : 0;
    char name[96];
    if (s->n_layers == 0) {
        /* An MLP: n_hidden + 1 dense layers. */
        if (s->n_hidden < 0 || s->n_hidden > OHM_MODEL_MAX_LAYERS - 1)
            return ohm_error_set(OHM_EINVAL, "model: %d hidden layers (at most %d)", s->n_hidden,
                                 OHM_MODEL_MAX_LAYERS - 1);
        for (int i = 0; i <= s->n_hidden; i++) {
            int out = i < s->n_hidden ? s->hidden[i] : s->n_out;
            if (out < 1 || out > MAX_SIZE)
                return ohm_error_set(OHM_EINVAL, "model: hidden layer %d has size %d", i, out);
            ohm_plan_layer_t *L = &p->l[p->n++];
            *L = (ohm_plan_layer_t){.kind = OHM_LAYER_FC,
                                    .in_c = i ? p->l[i - 1].out_c : s->n_in,
                                    .in_h = 1,
                                    .in_w = 1,
                                    .out_c = out,
                                    .out_h = 1,
                                    .out_w = 1,
                                    .rows = out,
                                    .positions = 1,
                                    .act = i < s->n_hidden,
                                    .token = -1};
            snprintf(name, sizeof name, "layer %d", i + 1);
            int rc = add_tile(p, L, bias, name);
            if (rc) return rc;
        }
    } else {
        if (s->n_layers < 0 || s->n_layers > OHM_LAYERS_MAX)
            return ohm_error_set(OHM_EINVAL, "model: %d layers (at most %d)", s->n_layers,
                                 OHM_LAYERS_MAX);
        /* What made the data a vector, if it is one: conv and pool need an image. */
        const char *flat_by = s->in_shape[0] ? NULL : "the input is a vector (the data gives no image shape)";
        for (int t = 0; t < s->n_layers; t++) {
            const ohm_layer_spec_t *ls = &s->layers[t];
            token_name(s, t, name, sizeof name);
            if (ls->kind == OHM_LAYER_FLATTEN) {
                if (flat_by) return ohm_error_set(OHM_EINVAL, "model: %s: %s", name, flat_by);
                c = c * h * w;
                h = w = 1;
                flat_by = "it follows flatten";
                continue;
            }
            ohm_plan_layer_t *L = &p->l[p->n];
            *L = (ohm_plan_layer_t){.kind = ls->kind,
                                    .in_c = c,
                                    .in_h = h,
                                    .in_w = w,
                                    .kh = ls->kh,
                                    .kw = ls->kw,
                                    .sh = ls->stride ? ls->stride : ls->kh,
                                    .sw = ls->stride ? ls->stride : ls->kw,
                                    .pad = ls->pad,
                                    .tile = -1,
                                    .positions = 1,
                                    .token = t};
            if (ls->kind == OHM_LAYER_FC) {
                if (ls->out < 1)
                    return ohm_error_set(OHM_EINVAL, "model: %s: no outputs", name);
                L->out_c = L->rows = ls->out;
                L->out_h = L->out_w = 1;
                L->act = t < s->n_layers - 1;
                flat_by = "it follows a dense layer";
                int rc = add_tile(p, L, bias, name);
                if (rc) return rc;
            } else if (ls->kind == OHM_LAYER_CONV || ls->kind == OHM_LAYER_MAXPOOL ||
                       ls->kind == OHM_LAYER_AVGPOOL) {
                if (flat_by)
                    return ohm_error_set(OHM_EINVAL, "model: %s needs an image, but %s", name,
                                         flat_by);
                if (ls->kh < 1 || ls->kw < 1 || ls->stride < 0 ||
                    (ls->kind == OHM_LAYER_CONV && ls->stride < 1) || ls->pad < 0)
                    return ohm_error_set(OHM_EINVAL, "model: %s: bad kernel, stride or padding",
                                         name);
                if (ls->pad >= ls->kh || ls->pad >= ls->kw)
                    return ohm_error_set(OHM_EINVAL,
                                         "model: %s: padding %d must be smaller than the kernel",
                                         name, ls->pad);
                if (h + 2 * ls->pad < ls->kh || w + 2 * ls->pad < ls->kw)
                    return ohm_error_set(OHM_EINVAL,
                                         "model: %s: window %dx%d larger than its input %dx%d%s",
                                         name, ls->kh, ls->kw, h, w, ls->pad ? " padded" : "");
                L->out_h = (h + 2 * ls->pad - ls->kh) / L->sh + 1;
                L->out_w = (w + 2 * ls->pad - ls->kw) / L->sw + 1;
                L->positions = L->out_h * L->out_w;
                if (ls->kind == OHM_LAYER_CONV) {
                    if (ls->out < 1)
                        return ohm_error_set(OHM_EINVAL, "model: %s: no output channels", name);
                    L->out_c = L->rows = ls->out;
                    L->act = 1;
                    int rc = add_tile(p, L, bias, name);
                    if (rc) return rc;
                } else {
                    L->out_c = c;
                }
                p->images = 1;
            } else {
                return ohm_error_set(OHM_EINVAL, "model: layer %d: unknown kind %d", t + 1,
                                     ls->kind);
            }
            if ((long)L->out_c * L->out_h * L->out_w > MAX_SIZE)
                return ohm_error_set(OHM_ETOOBIG, "model: %s: output of %dx%dx%d is too large",
                                     name, L->out_c, L->out_h, L->out_w);
            c = L->out_c;
            h = L->out_h;
            w = L->out_w;
            p->n++;
        }
        if (p->n == 0 || p->l[p->n - 1].kind != OHM_LAYER_FC ||
            p->l[p->n - 1].out_c != s->n_out || s->layers[s->n_layers - 1].kind != OHM_LAYER_FC)
            return ohm_error_set(OHM_EINVAL, "model: the last layer must be fc:%d (the data has %d "
                                 "outputs)", s->n_out, s->n_out);
    }
    for (int i = 0; i < p->n; i++) {
        ohm_plan_layer_t *L = &p->l[i];
        L->in_size = L->in_c * L->in_h * L->in_w;
        L->out_size = L->out_c * L->out_h * L->out_w;
        if (L->in_size > p->max_size) p->max_size = L->in_size;
        if (L->out_size > p->max_size) p->max_size = L->out_size;
    }
    p->in_size = s->n_in;
    p->out_size = s->n_out;
    return OHM_OK;
}

uint64_t ohm_plan_fingerprint(const ohm_plan_t *p, int bias)
{
    uint32_t desc[8 + 8 * OHM_LAYERS_MAX];
    int n = 0;
    desc[n++] = 0x66333200u; /* "f32" */
    if (!p->images) {
        /* Dense layers only: the MLP digest of earlier versions, so checkpoints still match. */
        desc[n++] = (uint32_t)p->n;
        desc[n++] = (uint32_t)bias;
        desc[n++] = (uint32_t)p->in_size;
        for (int i = 0; i < p->n; i++)
            desc[n++] = (uint32_t)p->l[i].out_c;
    } else {
        /* Every shape and hyper-parameter of the image path: a CNN never matches an MLP. */
        desc[n++] = 0x636e6e00u; /* "cnn" */
        desc[n++] = (uint32_t)p->n;
        desc[n++] = (uint32_t)bias;
        desc[n++] = (uint32_t)p->l[0].in_c;
        desc[n++] = (uint32_t)p->l[0].in_h;
        desc[n++] = (uint32_t)p->l[0].in_w;
        for (int i = 0; i < p->n; i++) {
            const ohm_plan_layer_t *L = &p->l[i];
            desc[n++] = (uint32_t)L->kind;
            desc[n++] = (uint32_t)L->out_c;
            desc[n++] = (uint32_t)L->kh;
            desc[n++] = (uint32_t)L->kw;
            desc[n++] = (uint32_t)(L->sh << 16 | L->sw);
            desc[n++] = (uint32_t)L->pad;
        }
    }
    return ohm_hash64(desc, sizeof(uint32_t) * (size_t)n, 0x6f686d70ULL);
}

void ohm_plan_describe(const ohm_model_spec_t *s, char *buf, size_t cap)
{
    const char *b = s->bias ? "with" : "without";
    if (s->n_layers == 0) {
        int k = snprintf(buf, cap, "%d", s->n_in);
        for (int l = 0; l < s->n_hidden && k >= 0 && (size_t)k < cap; l++)
            k += snprintf(buf + k, cap - (size_t)k, "-%d", s->hidden[l]);
        if (k >= 0 && (size_t)k < cap) snprintf(buf + k, cap - (size_t)k, "-%d %s bias", s->n_out, b);
        return;
    }
    char list[512];
    ohm_layers_format(s->layers, s->n_layers, list, sizeof list);
    if (s->in_shape[0])
        snprintf(buf, cap, "%dx%dx%d %s %s bias", s->in_shape[0], s->in_shape[1], s->in_shape[2],
                 list, b);
    else
        snprintf(buf, cap, "%d %s %s bias", s->n_in, list, b);
}
