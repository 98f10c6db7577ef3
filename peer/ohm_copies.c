/* ohm_copies: per-neighbour copies of public models (see ohm_copies.h). */
#include "ohm_copies.h"

#include "ohm_error.h"
#include "ohm_payload.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *x;
    int64_t version; /* -1: none (or out of sync) */
} copy_t;

struct ohm_copies {
    int n;
    size_t d;
    copy_t *c;
};

int ohm_copies_new(int n, size_t d, ohm_copies_t **out)
{
    assert(out && n >= 0);
    *out = NULL;
    ohm_copies_t *c = calloc(1, sizeof *c);
    if (!c) return ohm_error_set(OHM_ENOMEM, "copies");
    c->n = n;
    c->d = d;
    c->c = calloc((size_t)n + 1, sizeof *c->c);
    if (!c->c) goto oom;
    for (int i = 0; i < n; i++) {
        c->c[i].version = -1;
        if (!(c->c[i].x = malloc(sizeof(float) * (d ? d : 1)))) goto oom;
    }
    *out = c;
    return OHM_OK;
oom:
    ohm_copies_destroy(&c);
    return ohm_error_set(OHM_ENOMEM, "copies of %d neighbours, %zu floats each", n, d);
}

void ohm_copies_destroy(ohm_copies_t **pc)
{
    if (!pc || !*pc) return;
    ohm_copies_t *c = *pc;
    for (int i = 0; c->c && i < c->n; i++)
        free(c->c[i].x);
    free(c->c);
    free(c);
    *pc = NULL;
}

const float *ohm_copies_get(const ohm_copies_t *c, int i)
{
    assert(i >= 0 && i < c->n);
    return c->c[i].version >= 0 ? c->c[i].x : NULL;
}

int64_t ohm_copies_version(const ohm_copies_t *c, int i)
{
    assert(i >= 0 && i < c->n);
    return c->c[i].version;
}

int64_t ohm_copies_age(const ohm_copies_t *c, int i, uint32_t r)
{
    int64_t v = ohm_copies_version(c, i);
    return v < 0 ? -1 : (int64_t)r - v;
}

void ohm_copies_take(ohm_copies_t *c, int i, uint32_t version, const float *x)
{
    assert(i >= 0 && i < c->n && x);
    memcpy(c->c[i].x, x, sizeof(float) * c->d);
    c->c[i].version = version;
}

void ohm_copies_forget(ohm_copies_t *c, int i)
{
    assert(i >= 0 && i < c->n);
    c->c[i].version = -1;
}

int ohm_copies_apply(ohm_copies_t *c, int i, const ohm_wire_msg_t *m, uint32_t max_staleness)
{
    assert(i >= 0 && i < c->n && m && m->type == OHM_MSG_MODEL && m->count == c->d);
    copy_t *k = &c->c[i];
    ohm_kind_t kind = (ohm_kind_t)m->kind;
    if (kind == OHM_KIND_F32) {
        ohm_payload_apply(kind, m->count, 0, m->params, k->x); /* values checked on arrival */
        k->version = m->base;
        return OHM_OK;
    }
    if (k->version != (int64_t)m->base)
        return ohm_error_set(OHM_ESTALE, "copy of version %lld, the message refers to %u",
                             (long long)k->version, m->base);
    if (kind == OHM_KIND_SAME) {
        if (m->round - m->base > max_staleness)
            return ohm_error_set(OHM_ERANGE, "unchanged since round %u, %u rounds ago (at most %u)",
                                 m->base, m->round - m->base, max_staleness);
        return OHM_OK;
    }
    if (ohm_payload_apply(kind, m->count, m->entries, m->params, k->x) != OHM_OK) {
        k->version = -1;
        return OHM_ENONFINITE;
    }
    k->version = m->round;
    return OHM_OK;
}
