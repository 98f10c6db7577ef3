/* ohm_latest: the newest model of each neighbour (see ohm_latest.h). */
#include "ohm_latest.h"

#include "ohm_error.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>

typedef struct {
    void *payload;
    int64_t stamp; /* newest stamp kept; -1 none */
    uint64_t step; /* our step when it arrived */
    double t;      /* our time when it arrived */
    uint64_t kept; /* models kept so far */
} slot_t;

struct ohm_latest {
    ohm_latest_opts_t o;
    int n;
    slot_t *s;
};

int ohm_latest_new(const ohm_latest_opts_t *o, int n, ohm_latest_t **out)
{
    assert(o && out && n >= 0);
    *out = NULL;
    if (!o->release || !(o->max_s >= 0) || !(o->poly_a >= 0))
        return ohm_error_set(OHM_EINVAL, "latest: bad options");
    ohm_latest_t *l = calloc(1, sizeof *l);
    if (!l || !(l->s = calloc((size_t)n + 1, sizeof *l->s))) {
        free(l);
        return ohm_error_set(OHM_ENOMEM, "latest: %d neighbours", n);
    }
    l->o = *o;
    l->n = n;
    for (int i = 0; i < n; i++)
        l->s[i].stamp = -1;
    *out = l;
    return OHM_OK;
}

void ohm_latest_destroy(ohm_latest_t **pl)
{
    if (!pl || !*pl) return;
    ohm_latest_t *l = *pl;
    for (int i = 0; i < l->n; i++)
        if (l->s[i].payload) l->o.release(l->s[i].payload);
    free(l->s);
    free(l);
    *pl = NULL;
}

int ohm_latest_feed(ohm_latest_t *l, int i, uint32_t stamp, int valid, void *payload, uint64_t step,
                    double now)
{
    assert(l && i >= 0 && i < l->n);
    slot_t *s = &l->s[i];
    if (!valid || !payload) {
        if (payload) l->o.release(payload);
        return OHM_LATEST_NONFINITE;
    }
    if ((int64_t)stamp <= s->stamp) {
        l->o.release(payload);
        return OHM_LATEST_STALE;
    }
    if (s->payload) l->o.release(s->payload);
    *s = (slot_t){.payload = payload, .stamp = stamp, .step = step, .t = now, .kept = s->kept + 1};
    return OHM_LATEST_KEPT;
}

void ohm_latest_forget(ohm_latest_t *l, int i)
{
    assert(l && i >= 0 && i < l->n);
    if (l->s[i].payload) l->o.release(l->s[i].payload);
    l->s[i].payload = NULL;
    /* The stamp stays: whatever it sent before leaving is not taken again. */
}

void *ohm_latest_get(const ohm_latest_t *l, int i, uint64_t step, double now, uint64_t *age)
{
    assert(l && i >= 0 && i < l->n);
    const slot_t *s = &l->s[i];
    if (!s->payload) return NULL;
    uint64_t a = step >= s->step ? step - s->step : 0;
    if (age) *age = a;
    if (l->o.max_steps && a > l->o.max_steps) return NULL;
    if (l->o.max_s > 0 && now - s->t > l->o.max_s) return NULL;
    return s->payload;
}

double ohm_latest_factor(const ohm_latest_t *l, uint64_t age)
{
    return l->o.poly_a > 0 ? pow(1.0 + (double)age, -l->o.poly_a) : 1.0;
}

int64_t ohm_latest_stamp(const ohm_latest_t *l, int i)
{
    assert(l && i >= 0 && i < l->n);
    return l->s[i].stamp;
}

void ohm_latest_reset(ohm_latest_t *l, int i)
{
    ohm_latest_forget(l, i);
    l->s[i].stamp = -1;
}

uint64_t ohm_latest_kept(const ohm_latest_t *l, int i)
{
    assert(l && i >= 0 && i < l->n);
    return l->s[i].kept;
}
