/* ohm_tile: dispatch of the tile interface to its implementation. */
#include "ohm_tile_impl.h"

#include "ohm_error.h"

#include <assert.h>

int ohm_tile_rows(const ohm_tile_t *t)
{
    return t->rows;
}

int ohm_tile_cols(const ohm_tile_t *t)
{
    return t->cols;
}

const char *ohm_tile_kind(const ohm_tile_t *t)
{
    return t->ops->kind;
}

void ohm_tile_forward(ohm_tile_t *t, const float *x, float *y, int n)
{
    assert(n >= 0);
    t->ops->forward(t, x, y, n);
}

void ohm_tile_backward(ohm_tile_t *t, const float *d, float *z, int n)
{
    assert(n >= 0);
    t->ops->backward(t, d, z, n);
}

void ohm_tile_update(ohm_tile_t *t, const float *x, const float *d, int n, float lr)
{
    t->ops->update(t, x, d, n, lr);
}

int ohm_tile_decay(ohm_tile_t *t, float factor)
{
    if (!t->ops->decay)
        return ohm_error_set(OHM_EUNSUPPORTED, "weight decay: not supported by %s tiles",
                             t->ops->kind);
    t->ops->decay(t, factor);
    return OHM_OK;
}

void ohm_tile_get_weights(const ohm_tile_t *t, float *w)
{
    t->ops->get_weights(t, w);
}

void ohm_tile_set_weights(ohm_tile_t *t, const float *w, int mode)
{
    assert(mode == OHM_WB_EXACT || mode == OHM_WB_PULSED);
    t->ops->set_weights(t, w, mode);
}

size_t ohm_tile_state_size(const ohm_tile_t *t)
{
    return t->ops->state_size(t);
}

void ohm_tile_state_save(const ohm_tile_t *t, void *buf)
{
    t->ops->state_save(t, buf);
}

int ohm_tile_state_load(ohm_tile_t *t, const void *buf, size_t len)
{
    return t->ops->state_load(t, buf, len);
}

int ohm_tile_counters(const ohm_tile_t *t, ohm_tile_counters_t *c)
{
    *c = (ohm_tile_counters_t){0};
    if (!t->ops->counters) return 0;
    t->ops->counters(t, c);
    return 1;
}

void ohm_tile_destroy(ohm_tile_t **t)
{
    if (!t || !*t) return;
    (*t)->ops->destroy(*t);
    *t = NULL;
}
