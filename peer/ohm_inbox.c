/* ohm_inbox: the per-neighbour protocol state of one peer (see ohm_inbox.h and
 * docs/protocol.md, section "Control plane"). Pure bookkeeping: no sockets, no clock,
 * so every transition is unit-tested with synthetic frames. */
#include "ohm_inbox.h"

#include "ohm_error.h"
#include "ohm_wire.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static const char *const drop_names[OHM_DROP_COUNT] = {
    "truncated", "malformed",     "version", "other_run", "shape",     "range",  "too_big",
    "nonfinite", "not_neighbour", "spoofed", "stale",     "duplicate", "future", "stale_copy",
};

typedef struct {
    uint32_t id;
    int live;     /* waited for when in step */
    int heard;    /* heard since start (start-up barrier) */
    int cut;      /* our link to it dropped and has not come back */
    int finished; /* said bye */
    int ignored;  /* never waited or held for */
    int joins_late; /* a planned late joiner: the barrier does not wait for it */
    int got;      /* a model of the current round arrived (valid or not) */
    int valid;    /* ... and it is kept in cur */
    int late;     /* still waited for when the deadline passed */
    int strikes;
    int64_t pos;             /* round of its latest frame; -1 none */
    int64_t evid;            /* round of its latest valid model; -1 none */
    int64_t probation_until; /* not made live again before this round */
    int64_t replied;         /* round in which we last answered its hello */
    uint32_t streak;         /* rounds delivered in time since the last miss */
    double budget, budget_t; /* hold budget (seconds) as of time budget_t (< 0: never set) */
    int held;                /* held for in the hold under way */
    int spent_once;          /* its budget ran out once (reported) */
    double held_s;
    void *cur;
    void **slot; /* future rounds, by round % (future + 1) */
    uint32_t *slot_round;
    void *ahead; /* its latest valid model beyond the window */
    uint32_t ahead_round;
    uint64_t accepted, missed;
    uint64_t drops[OHM_DROP_COUNT];
} nbr_t;

struct ohm_inbox {
    ohm_inbox_opts_t o;
    int lag; /* a neighbour this far behind is still waited for */
    int n;
    nbr_t *nb;
    uint32_t round;
    int barrier;
    double hold_t0; /* start of the hold under way */
    uint64_t unknown[OHM_DROP_COUNT];
};

const char *ohm_drop_name(ohm_drop_t r)
{
    assert(r >= 0 && r < OHM_DROP_COUNT);
    return drop_names[r];
}

int ohm_inbox_new(const ohm_inbox_opts_t *o, const uint32_t *ids, int n, ohm_inbox_t **out)
{
    assert(o && out && (ids || n == 0) && n >= 0);
    *out = NULL;
    if (o->future < 0 || o->future > OHM_INBOX_MAX_FUTURE || !o->release || o->b < 0 ||
        !(o->hold_share >= 0) || !(o->hold_burst_s >= 0) || !(o->hold_min_s >= 0))
        return ohm_error_set(OHM_EINVAL, "inbox: future rounds %d outside 0..%d", o->future,
                             OHM_INBOX_MAX_FUTURE);
    ohm_inbox_t *ib = calloc(1, sizeof *ib);
    if (!ib) return ohm_error_set(OHM_ENOMEM, "inbox");
    ib->o = *o;
    ib->lag = o->future > 1 ? o->future : 1;
    ib->n = n;
    ib->barrier = 1;
    ib->nb = calloc((size_t)n + 1, sizeof *ib->nb);
    if (!ib->nb) goto oom;
    for (int i = 0; i < n; i++) {
        nbr_t *b = &ib->nb[i];
        b->id = ids[i];
        b->live = 1;
        b->pos = b->evid = b->replied = -1;
        b->budget_t = -1;
        b->slot = calloc((size_t)o->future + 1, sizeof *b->slot);
        b->slot_round = calloc((size_t)o->future + 1, sizeof *b->slot_round);
        if (!b->slot || !b->slot_round) goto oom;
    }
    *out = ib;
    return OHM_OK;
oom:
    ohm_inbox_destroy(&ib);
    return ohm_error_set(OHM_ENOMEM, "inbox: %d neighbours", n);
}

static void release(const ohm_inbox_t *ib, void **p)
{
    if (*p) ib->o.release(*p);
    *p = NULL;
}

void ohm_inbox_destroy(ohm_inbox_t **pib)
{
    if (!pib || !*pib) return;
    ohm_inbox_t *ib = *pib;
    for (int i = 0; ib->nb && i < ib->n; i++) {
        nbr_t *b = &ib->nb[i];
        release(ib, &b->cur);
        release(ib, &b->ahead);
        for (int s = 0; b->slot && s <= ib->o.future; s++)
            release(ib, &b->slot[s]);
        free(b->slot);
        free(b->slot_round);
    }
    free(ib->nb);
    free(ib);
    *pib = NULL;
}

int ohm_inbox_index(const ohm_inbox_t *ib, uint32_t id)
{
    for (int i = 0; i < ib->n; i++)
        if (ib->nb[i].id == id) return i;
    return -1;
}

int ohm_inbox_size(const ohm_inbox_t *ib)
{
    return ib->n;
}

uint32_t ohm_inbox_round(const ohm_inbox_t *ib)
{
    return ib->round;
}

void ohm_inbox_drop(ohm_inbox_t *ib, int i, ohm_drop_t reason)
{
    assert(reason >= 0 && reason < OHM_DROP_COUNT && i < ib->n);
    if (i < 0)
        ib->unknown[reason]++;
    else
        ib->nb[i].drops[reason]++;
}

/* A valid model no further behind than the waiting window shows the
 * neighbour in step, or about to be: it is waited for again, unless its link
 * is cut or it is on probation. (One a round behind must be waited for to get
 * in step: we would otherwise stay a round ahead of it for good.) */
static void revive(const ohm_inbox_t *ib, nbr_t *b)
{
    if (!b->cut && (int64_t)ib->round >= b->probation_until) {
        b->live = 1;
        b->finished = 0;
    }
}

static void file_model(ohm_inbox_t *ib, nbr_t *b, const ohm_inbox_msg_t *m, void *payload)
{
    uint32_t r = ib->round;
    if (m->valid) b->evid = m->round;
    if (m->valid && (int64_t)m->round + ib->lag >= (int64_t)r) revive(ib, b);
    if (m->round < r) {
        b->drops[OHM_DROP_STALE]++;
    } else if (m->round == r) {
        if (b->got) {
            b->drops[OHM_DROP_DUPLICATE]++;
        } else {
            b->got = 1;
            if (!m->valid || !payload) {
                b->drops[m->too_stale ? OHM_DROP_STALE_COPY : OHM_DROP_NONFINITE]++;
            } else {
                b->cur = payload;
                b->valid = 1;
                return;
            }
        }
    } else if (!m->valid || !payload) {
        /* never buffered: it is no evidence */
        b->drops[m->too_stale ? OHM_DROP_STALE_COPY : OHM_DROP_NONFINITE]++;
    } else if (m->round - r > (uint32_t)ib->o.future) {
        /* Beyond the window: keep only its latest, which is exactly the model
         * a catch-up to its round needs. Counted as dropped until used. */
        b->drops[OHM_DROP_FUTURE]++;
        release(ib, &b->ahead);
        b->ahead = payload;
        b->ahead_round = m->round;
        return;
    } else {
        int s = (int)(m->round % (uint32_t)(ib->o.future + 1));
        if (b->slot[s] && b->slot_round[s] == m->round) {
            b->drops[OHM_DROP_DUPLICATE]++;
        } else {
            release(ib, &b->slot[s]); /* an older round's leftover */
            b->slot[s] = payload;
            b->slot_round[s] = m->round;
            return;
        }
    }
    release(ib, &payload);
}

int ohm_inbox_feed(ohm_inbox_t *ib, int i, const ohm_inbox_msg_t *m, void *payload)
{
    assert(ib && m && i >= 0 && i < ib->n);
    nbr_t *b = &ib->nb[i];
    b->heard = 1;
    b->pos = m->round;
    switch (m->type) {
    case OHM_MSG_MODEL:
        file_model(ib, b, m, payload);
        return 0;
    case OHM_MSG_BYE:
        /* Finished: never waited for again, and no longer part of the quorum. */
        b->finished = 1;
        b->live = 0;
        b->evid = -1;
        release(ib, &payload);
        return 0;
    default: {
        /* Hello: a neighbour (re)starting, perhaps from an older checkpoint. Its
         * round is what it says now and its earlier models are history; an
         * announcement is no evidence. One ahead of us is answering our hello
         * from its receive phase (it has sent that round's model): not waited
         * for. Answer only one that is behind, once per round, so two hellos
         * never answer each other and a flood of hellos is never amplified. */
        b->evid = -1;
        b->finished = 0;
        release(ib, &payload);
        if (ib->barrier || m->round >= ib->round || b->replied == (int64_t)ib->round) return 0;
        b->replied = ib->round;
        return 1;
    }
    }
}

int ohm_inbox_link_lost(ohm_inbox_t *ib, int i)
{
    assert(i >= 0 && i < ib->n);
    nbr_t *b = &ib->nb[i];
    int was = b->live;
    b->live = 0;
    b->cut = 1;
    return was;
}

void ohm_inbox_link_up(ohm_inbox_t *ib, int i)
{
    assert(i >= 0 && i < ib->n);
    ib->nb[i].cut = 0;
}

int ohm_inbox_cut(const ohm_inbox_t *ib, int i)
{
    assert(i >= 0 && i < ib->n);
    return ib->nb[i].cut;
}

void ohm_inbox_ignore(ohm_inbox_t *ib, int i)
{
    assert(i >= 0 && i < ib->n);
    ib->nb[i].ignored = 1;
}

void ohm_inbox_expect_late(ohm_inbox_t *ib, int i)
{
    assert(i >= 0 && i < ib->n);
    ib->nb[i].joins_late = 1;
    ib->nb[i].live = 0;
}

void ohm_inbox_mark_heard(ohm_inbox_t *ib, int i)
{
    assert(i >= 0 && i < ib->n);
    ib->nb[i].heard = 1;
}

int ohm_inbox_all_heard(const ohm_inbox_t *ib)
{
    for (int i = 0; i < ib->n; i++)
        if (!ib->nb[i].heard && !ib->nb[i].ignored && !ib->nb[i].joins_late) return 0;
    return 1;
}

int ohm_inbox_end_barrier(ohm_inbox_t *ib, uint32_t *unheard, int cap)
{
    int k = 0;
    ib->barrier = 0;
    for (int i = 0; i < ib->n; i++)
        if (!ib->nb[i].heard && !ib->nb[i].joins_late) {
            ib->nb[i].live = 0;
            if (k < cap) unheard[k] = ib->nb[i].id;
            k++;
        }
    return k;
}

void ohm_inbox_advance(ohm_inbox_t *ib, uint32_t r)
{
    assert(r >= ib->round);
    ib->round = r;
    for (int i = 0; i < ib->n; i++) {
        nbr_t *b = &ib->nb[i];
        b->got = b->valid = b->late = 0;
        release(ib, &b->cur);
        if (b->ahead && b->ahead_round <= r) {
            if (b->ahead_round == r) {
                b->drops[OHM_DROP_FUTURE]--; /* counted as dropped on arrival; used after all */
                b->cur = b->ahead;
                b->ahead = NULL;
                b->got = b->valid = 1;
            }
            release(ib, &b->ahead);
        }
        for (int s = 0; s <= ib->o.future; s++) {
            if (!b->slot[s] || b->slot_round[s] > r) continue;
            if (b->slot_round[s] == r && !b->got) {
                b->cur = b->slot[s];
                b->slot[s] = NULL;
                b->got = b->valid = 1;
            }
            release(ib, &b->slot[s]);
        }
    }
}

int ohm_inbox_waits_for(const ohm_inbox_t *ib, int i)
{
    assert(i >= 0 && i < ib->n);
    const nbr_t *b = &ib->nb[i];
    int64_t r = ib->round;
    /* Not when it is ahead (its model of this round was sent before its later
     * frames: if it is not here it was lost), nor when it is further behind
     * than the window (it catches up once it sees our rounds). */
    return b->live && !b->ignored && !b->got && !b->cut && !b->finished && b->pos <= r &&
           b->pos + ib->lag >= r && r >= b->probation_until;
}

int ohm_inbox_waiting(const ohm_inbox_t *ib)
{
    int k = 0;
    for (int i = 0; i < ib->n; i++)
        k += ohm_inbox_waits_for(ib, i);
    return k;
}

void ohm_inbox_deadline(ohm_inbox_t *ib)
{
    for (int i = 0; i < ib->n; i++)
        ib->nb[i].late = ohm_inbox_waits_for(ib, i);
}

/* A strike: not waited or held for during a probation that doubles with each
 * strike (capped), counted from the round after `round`. */
static void strike(nbr_t *b, uint32_t round)
{
    int s = b->strikes < 30 ? b->strikes : 30;
    int64_t p = (int64_t)1 << s;
    if (p > OHM_INBOX_PROBATION_MAX) p = OHM_INBOX_PROBATION_MAX;
    b->strikes++;
    b->live = 0;
    b->streak = 0;
    b->probation_until = (int64_t)round + 1 + p;
}

int ohm_inbox_close(ohm_inbox_t *ib, uint32_t *down, int cap)
{
    int k = 0;
    for (int i = 0; i < ib->n; i++) {
        nbr_t *b = &ib->nb[i];
        b->accepted += (uint64_t)b->valid;
        if (b->valid) {
            if (++b->streak >= OHM_INBOX_FORGIVE && b->strikes > 0) {
                b->strikes--;
                b->streak = 0;
            }
        } else {
            b->streak = 0;
        }
        if (!b->got) b->missed++; /* counted for down neighbours too: a round without it */
        if (b->late && !b->got) {
            strike(b, ib->round);
            if (k < cap) down[k] = b->id;
            k++;
        }
        b->late = 0;
    }
    return k;
}

/* Reachable neighbours (neither cut nor finished) and the quorum they make. */
static int quorum_of(const ohm_inbox_t *ib, int *reachable)
{
    int L = 0;
    for (int i = 0; i < ib->n; i++)
        L += !ib->nb[i].cut && !ib->nb[i].finished;
    int q = L / 2 + 1;
    if (q < ib->o.b + 1) q = ib->o.b + 1;
    if (reachable) *reachable = L;
    return q;
}

int ohm_inbox_quorum(const ohm_inbox_t *ib)
{
    int L;
    int q = quorum_of(ib, &L);
    return q <= L ? q : 0;
}

/* The evidence of the reachable neighbours that have any and no unforgiven
 * strike, sorted ascending into e[]; returns their number. A neighbour that
 * missed deadlines while waited for (a silent attacker that then bursts models
 * stamped ahead, say) gives no evidence for catching up, though it still
 * counts among the reachable ones: it cannot complete a quorum. */
static int evidence(const ohm_inbox_t *ib, int64_t *e)
{
    int k = 0;
    for (int i = 0; i < ib->n; i++) {
        const nbr_t *b = &ib->nb[i];
        if (b->cut || b->finished || b->evid < 0 || b->strikes > 0) continue;
        int j = k++;
        for (; j > 0 && e[j - 1] > b->evid; j--)
            e[j] = e[j - 1];
        e[j] = b->evid;
    }
    return k;
}

int64_t ohm_inbox_catch_up(const ohm_inbox_t *ib)
{
    int q = ohm_inbox_quorum(ib);
    if (q == 0 || ib->n == 0) return -1;
    int64_t e[ib->n];
    int k = evidence(ib, e);
    if (k < q) return -1;
    /* q neighbours proved rounds >= t: at least one of them is honest (q > b). */
    int64_t t = e[k - q];
    return t >= (int64_t)ib->round + 2 && t < (int64_t)ib->o.rounds ? t : -1;
}

/* Neighbour b's hold budget at time now (refilled since it was last set). */
static double budget(const ohm_inbox_t *ib, const nbr_t *b, double now)
{
    if (b->budget_t < 0) return ib->o.hold_burst_s; /* never charged */
    double v = b->budget + ib->o.hold_share * (now - b->budget_t);
    return v < ib->o.hold_burst_s ? v : ib->o.hold_burst_s;
}

int ohm_inbox_holds_for(const ohm_inbox_t *ib, int i, double now)
{
    assert(i >= 0 && i < ib->n);
    const nbr_t *b = &ib->nb[i];
    if (b->cut || b->finished || b->evid < 0 || b->evid + ib->lag >= (int64_t)ib->round) return 0;
    /* During a hold its budget is what it had at the start minus the time so
     * far; a new hold starts only on a budget that covers a whole one. */
    if (b->held) return b->budget - (now - ib->hold_t0) > 0;
    double left = budget(ib, b, now);
    return ib->o.hold_share > 0 && left > 0 && left >= ib->o.hold_min_s;
}

int ohm_inbox_holding(const ohm_inbox_t *ib, double now)
{
    int k = 0;
    for (int i = 0; i < ib->n; i++)
        k += ohm_inbox_holds_for(ib, i, now);
    return k;
}

int ohm_inbox_hold_begin(ohm_inbox_t *ib, double now)
{
    int k = 0;
    ib->hold_t0 = now;
    for (int i = 0; i < ib->n; i++) {
        nbr_t *b = &ib->nb[i];
        if (!ohm_inbox_holds_for(ib, i, now)) continue;
        b->budget = budget(ib, b, now);
        b->held = 1;
        k++;
    }
    return k;
}

int ohm_inbox_hold_end(ohm_inbox_t *ib, double now, uint32_t *spent, int cap)
{
    int k = 0;
    double dt = now - ib->hold_t0;
    for (int i = 0; i < ib->n; i++) {
        nbr_t *b = &ib->nb[i];
        if (!b->held) continue;
        b->held = 0;
        b->held_s += dt;
        b->budget -= dt;
        b->budget_t = now;
        if (b->budget <= 0 && !b->spent_once) {
            b->spent_once = 1;
            if (k < cap) spent[k] = b->id;
            k++;
        }
    }
    return k;
}

void *ohm_inbox_model(const ohm_inbox_t *ib, int i)
{
    assert(i >= 0 && i < ib->n);
    return ib->nb[i].valid ? ib->nb[i].cur : NULL;
}

void ohm_inbox_stats(const ohm_inbox_t *ib, int i, ohm_inbox_nbr_t *s)
{
    assert(i >= 0 && i < ib->n && s);
    const nbr_t *b = &ib->nb[i];
    s->id = b->id;
    s->live = b->live;
    s->strikes = b->strikes;
    s->pos = b->pos;
    s->evid = b->evid;
    s->held_s = b->held_s;
    s->accepted = b->accepted;
    s->missed = b->missed;
    memcpy(s->drops, b->drops, sizeof s->drops);
}

uint64_t ohm_inbox_unknown_drops(const ohm_inbox_t *ib, ohm_drop_t reason)
{
    assert(reason >= 0 && reason < OHM_DROP_COUNT);
    return ib->unknown[reason];
}

int ohm_inbox_live(const ohm_inbox_t *ib)
{
    int k = 0;
    for (int i = 0; i < ib->n; i++)
        k += ib->nb[i].live;
    return k;
}
