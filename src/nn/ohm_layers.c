/* ohm_layers: reading and writing the layer-list language (see ohm_layers.h). */
#include "ohm_layers.h"

#include "ohm_error.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Limits of one number: large enough for any sensible network, small enough
 * that products of shapes stay far from int overflow (ohm_plan checks sizes). */
#define MAX_WIDTH (1 << 16)
#define MAX_KERNEL 64

/* Reads a decimal integer in [lo, hi] at *p (advancing it); -1 if none or out of range. */
static long number(const char **p, long lo, long hi)
{
    const char *s = *p;
    long v = 0;
    if (!isdigit((unsigned char)*s)) return -1;
    while (isdigit((unsigned char)*s)) {
        v = v * 10 + (*s - '0');
        if (v > hi) return -1;
        s++;
    }
    if (v < lo) return -1;
    *p = s;
    return v;
}

static int prefix(const char **p, const char *word)
{
    size_t n = strlen(word);
    if (strncmp(*p, word, n) != 0) return 0;
    *p += n;
    return 1;
}

/* Parses one token [s, e) into *l; NULL on success, else what is wrong. */
static const char *parse_token(const char *s, const char *e, ohm_layer_spec_t *l)
{
    char tok[64];
    if ((size_t)(e - s) >= sizeof tok) return "too long";
    memcpy(tok, s, (size_t)(e - s));
    tok[e - s] = '\0';
    const char *p = tok;
    memset(l, 0, sizeof *l);
    if (strcmp(p, "flatten") == 0) {
        l->kind = OHM_LAYER_FLATTEN;
        return NULL;
    }
    if (prefix(&p, "fc:")) {
        l->kind = OHM_LAYER_FC;
        long v = number(&p, 1, MAX_WIDTH);
        if (v < 0) return "fc:N needs a width N in 1..65536";
        if (*p) return "nothing may follow fc:N";
        l->out = (int)v;
        return NULL;
    }
    if (prefix(&p, "conv:")) {
        l->kind = OHM_LAYER_CONV;
        long c = number(&p, 1, MAX_WIDTH);
        if (c < 0) return "conv:CxK needs C output channels in 1..65536";
        if (!prefix(&p, "x")) return "conv:CxK needs 'x' and a kernel size";
        long kh = number(&p, 1, MAX_KERNEL), kw = kh;
        if (kh < 0) return "kernel sizes are 1..64";
        if (prefix(&p, "x") && (kw = number(&p, 1, MAX_KERNEL)) < 0)
            return "kernel sizes are 1..64";
        l->out = (int)c;
        l->kh = (int)kh;
        l->kw = (int)kw;
        l->stride = 1;
    } else if (prefix(&p, "pool:")) {
        if (prefix(&p, "max"))
            l->kind = OHM_LAYER_MAXPOOL;
        else if (prefix(&p, "avg"))
            l->kind = OHM_LAYER_AVGPOOL;
        else
            return "pool:max or pool:avg";
        long k = number(&p, 1, MAX_KERNEL), k2 = k;
        if (k < 0) return "pool:maxK needs a window size K in 1..64";
        if (prefix(&p, "x") && (k2 = number(&p, 1, MAX_KERNEL)) < 0)
            return "window sizes are 1..64";
        l->kh = (int)k;
        l->kw = (int)k2;
    } else {
        return "expected conv:CxK[xK2][/sS][/pP], pool:maxK[xK2][/sS], pool:avgK[xK2][/sS], fc:N "
               "or flatten";
    }
    int seen_s = 0, seen_p = 0;
    while (*p) {
        if (prefix(&p, "/s")) {
            long s2 = number(&p, 1, MAX_KERNEL);
            if (s2 < 0 || seen_s++) return "/sS: one stride S in 1..64";
            l->stride = (int)s2;
        } else if (prefix(&p, "/p")) {
            if (l->kind != OHM_LAYER_CONV) return "padding /pP is for conv layers only";
            long pd = number(&p, 0, MAX_KERNEL);
            if (pd < 0 || seen_p++) return "/pP: one padding P in 0..64";
            l->pad = (int)pd;
        } else {
            return "options are /sS (stride) and /pP (padding)";
        }
    }
    return NULL;
}

int ohm_layers_parse(const char *text, const char *origin, ohm_layer_spec_t *l, int *n)
{
    *n = 0;
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (!*p) return OHM_OK;
    for (;;) {
        const char *s = p, *e = p + strcspn(p, ",");
        while (s < e && isspace((unsigned char)*s))
            s++;
        const char *t = e;
        while (t > s && isspace((unsigned char)t[-1]))
            t--;
        if (*n == OHM_LAYERS_MAX)
            return ohm_error_set(OHM_ETOOBIG, "%s: model.layers: more than %d layers", origin,
                                 OHM_LAYERS_MAX);
        const char *why = t == s ? "empty layer" : parse_token(s, t, &l[*n]);
        if (why)
            return ohm_error_set(OHM_EINVAL, "%s: model.layers: bad token '%.*s' (%s)", origin,
                                 (int)(t - s > 40 ? 40 : t - s), s, why);
        (*n)++;
        if (!*e) return OHM_OK;
        p = e + 1;
    }
}

void ohm_layer_format(const ohm_layer_spec_t *l, char *buf, size_t cap)
{
    int k = 0;
    switch (l->kind) {
    case OHM_LAYER_FC:
        snprintf(buf, cap, "fc:%d", l->out);
        return;
    case OHM_LAYER_FLATTEN:
        snprintf(buf, cap, "flatten");
        return;
    case OHM_LAYER_CONV:
        k = snprintf(buf, cap, "conv:%dx%dx%d", l->out, l->kh, l->kw);
        if (l->stride != 1 && k >= 0 && (size_t)k < cap)
            k += snprintf(buf + k, cap - (size_t)k, "/s%d", l->stride);
        if (l->pad && k >= 0 && (size_t)k < cap) snprintf(buf + k, cap - (size_t)k, "/p%d", l->pad);
        return;
    default:
        k = snprintf(buf, cap, "pool:%s%d", l->kind == OHM_LAYER_MAXPOOL ? "max" : "avg", l->kh);
        if (l->kw != l->kh && k >= 0 && (size_t)k < cap)
            k += snprintf(buf + k, cap - (size_t)k, "x%d", l->kw);
        if (l->stride && k >= 0 && (size_t)k < cap)
            snprintf(buf + k, cap - (size_t)k, "/s%d", l->stride);
        return;
    }
}

void ohm_layers_format(const ohm_layer_spec_t *l, int n, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap) buf[0] = '\0';
    for (int i = 0; i < n && len + 1 < cap; i++) {
        char one[64];
        ohm_layer_format(&l[i], one, sizeof one);
        int k = snprintf(buf + len, cap - len, "%s%s", i ? "," : "", one);
        if (k < 0) break;
        len += (size_t)k < cap - len ? (size_t)k : cap - len - 1;
    }
}
