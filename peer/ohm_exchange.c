/* ohm_exchange: the network side of a peer's round. Frames from the
 * transport are decoded and attributed here, then filed by the inbox, which
 * decides whom to wait for and whether to catch up
 * (docs/protocol.md, section "Control plane"). */
#include "ohm_peer_impl.h"

#include "ohm_error.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void free_buffer(void *buf, void *hint)
{
    (void)hint;
    free(buf);
}

int ohm_exchange_send(ohm_peer_t *p, uint32_t type, uint32_t round, const float *params,
                      const uint32_t *ids, int n)
{
    if (n == 0) return OHM_OK;
    ohm_wire_msg_t m = {.version = OHM_WIRE_VERSION,
                        .type = type,
                        .run = p->run_id,
                        .from = p->id,
                        .round = round,
                        .fp = p->fp,
                        .count = params ? (uint32_t)p->P : 0,
                        .kind = OHM_KIND_F32,
                        .base = type == OHM_MSG_MODEL ? round : 0};
    size_t cap = ohm_wire_max_size(m.count), len = 0;
    uint8_t *buf = malloc(cap);
    int rc = buf ? ohm_wire_encode(&m, params, buf, cap, &len)
                 : ohm_error_set(OHM_ENOMEM, "message buffer of %zu bytes", cap);
    if (rc) {
        free(buf);
        p->send_failures++;
        return rc;
    }
    if (p->latest) /* asynchronous: only the newest message per link, never a queue */
        ohm_transport_send_latest(p->tr, ids, n, buf, len, free_buffer, NULL);
    else
        ohm_transport_send_all(p->tr, ids, n, buf, len); /* refusals are counted there */
    return OHM_OK;
}

static ohm_drop_t drop_reason_of(int rc)
{
    switch (rc) {
    case OHM_ETRUNC:
        return OHM_DROP_TRUNCATED;
    case OHM_EUNSUPPORTED:
        return OHM_DROP_VERSION;
    case OHM_ESTALE:
        return OHM_DROP_OTHER_RUN;
    case OHM_ESHAPE:
        return OHM_DROP_SHAPE;
    case OHM_ERANGE:
        return OHM_DROP_RANGE;
    case OHM_ETOOBIG:
        return OHM_DROP_TOO_BIG;
    default:
        return OHM_DROP_MALFORMED;
    }
}

/* A late joiner keeps the newest valid model of each neighbour (what a
 * neighbour queued for it while it was absent comes first, oldest first). */
static void join_keep(ohm_peer_t *p, int i, const ohm_wire_msg_t *m)
{
    if (p->join_got[i] && m->round <= p->join_round[i]) return;
    ohm_wire_read_params(m, p->join_vec[i]);
    p->join_got[i] = 1;
    p->join_round[i] = m->round;
}

/* Decodes, attributes and checks one frame, then hands it to the inbox: only
 * a frame that passed every check (decode, run, shape, sender, finiteness)
 * counts as evidence of its round. */
static void handle_frame(ohm_peer_t *p, ohm_frame_t *f)
{
    uint32_t auth = ohm_frame_peer(f);
    int ai = auth == OHM_PEER_UNKNOWN ? -1 : ohm_inbox_index(p->inbox, auth);
    ohm_wire_msg_t m;
    int rc = ohm_wire_decode(ohm_frame_data(f), ohm_frame_size(f), &p->expect, &m);
    if (rc) {
        ohm_inbox_drop(p->inbox, ai, drop_reason_of(rc));
        ohm_frame_destroy(&f);
        return;
    }
    if (auth != OHM_PEER_UNKNOWN && auth != m.from) {
        ohm_inbox_drop(p->inbox, ai, OHM_DROP_SPOOFED);
        ohm_frame_destroy(&f);
        return;
    }
    int i = ohm_inbox_index(p->inbox, m.from);
    if (i < 0) {
        ohm_inbox_drop(p->inbox, -1, OHM_DROP_NOT_NEIGHBOUR);
        ohm_frame_destroy(&f);
        return;
    }
    /* A frame read after our link to it reconnected: the neighbour is back. */
    if (ohm_inbox_cut(p->inbox, i) && ohm_transport_link_up(p->tr, m.from))
        ohm_inbox_link_up(p->inbox, i);
    if (m.type == OHM_MSG_SYNC) {
        /* It lost its copy of ours; no position, no evidence. */
        ohm_comm_sync_request(p, i);
        ohm_frame_destroy(&f);
        return;
    }
    ohm_inbox_msg_t im = {.type = m.type, .round = m.round, .valid = 0};
    if (m.type == OHM_MSG_MODEL) {
        int vrc = ohm_wire_check_params(&m);
        if (vrc != OHM_OK && vrc != OHM_ENONFINITE) {
            /* A q8z whose codes do not inflate to the model (a lying length,
             * a broken stream, a code of -128): malformed, like a frame that
             * does not decode; no evidence, no position. */
            ohm_inbox_drop(p->inbox, i, drop_reason_of(vrc));
            ohm_frame_destroy(&f);
            return;
        }
        im.valid = vrc == OHM_OK;
        /* "Unchanged" of a copy too old to use: the neighbour had to send. */
        if (im.valid && m.kind == OHM_KIND_SAME && m.round - m.base > p->s.max_staleness)
            im.valid = 0, im.too_stale = 1;
        if (im.valid && m.round < p->round) ohm_comm_arrived_late(p, i, &m);
    }
    if (p->joining && im.valid) join_keep(p, i, &m);
    if (p->latest && m.type == OHM_MSG_MODEL) {
        /* Asynchronous mode: only the newest model of each neighbour matters. */
        ohm_inbox_mark_heard(p->inbox, i);
        int r = ohm_latest_feed(p->latest, i, m.round, im.valid, f, p->round, ohm_peer_now());
        if (r == OHM_LATEST_STALE) ohm_inbox_drop(p->inbox, i, OHM_DROP_STALE);
        if (r == OHM_LATEST_NONFINITE) ohm_inbox_drop(p->inbox, i, OHM_DROP_NONFINITE);
        return;
    }
    if (p->latest && m.type == OHM_MSG_HELLO) ohm_latest_reset(p->latest, i);
    if (p->latest && m.type == OHM_MSG_BYE) ohm_latest_forget(p->latest, i);
    int reply = ohm_inbox_feed(p->inbox, i, &im, f);
    if (reply) ohm_exchange_send(p, OHM_MSG_HELLO, p->round, NULL, &m.from, 1);
}

/* Links whose connection dropped (the neighbour's process ended, or the
 * network gave up on it): not waited for, from now on, until heard again in
 * step over a reconnected link. */
static void links_lost(ohm_peer_t *p)
{
    uint32_t id;
    while (ohm_transport_lost(p->tr, &id)) {
        int i = ohm_inbox_index(p->inbox, id);
        if (i < 0) continue;
        p->links_lost++;
        if (p->latest) ohm_latest_forget(p->latest, i);
        if (ohm_inbox_link_lost(p->inbox, i))
            fprintf(stderr, "ohmpeer %u: link to %u lost at round %u; not waiting for it\n", p->id,
                    id, p->round);
    }
}

/* What ohm_transport_recv handed out: a frame, or (NULL) news of lost links. */
static void dispatch(ohm_peer_t *p, ohm_frame_t *f)
{
    if (f)
        handle_frame(p, f);
    else
        links_lost(p);
}

/* Handles frames until done(p) holds or the deadline (monotonic seconds)
 * passes. OHM_EINTR when a stop was requested, a transport error as is. */
static int receive_until(ohm_peer_t *p, double deadline, int (*done)(const ohm_peer_t *))
{
    while (!done(p)) {
        if (ohm_peer_stop_requested) return OHM_EINTR;
        int left = (int)((deadline - ohm_peer_now()) * 1000.0);
        if (left <= 0) break;
        ohm_frame_t *f = NULL;
        int rc = ohm_transport_recv(p->tr, left, &f);
        if (rc == OHM_ETIMEOUT) break;
        if (rc == OHM_EINTR) continue;
        if (rc) return rc;
        dispatch(p, f);
    }
    return OHM_OK;
}

static int all_heard(const ohm_peer_t *p)
{
    return ohm_inbox_all_heard(p->inbox);
}

static int all_arrived(const ohm_peer_t *p)
{
    return ohm_inbox_waiting(p->inbox) == 0;
}

static int not_holding(const ohm_peer_t *p)
{
    return ohm_inbox_holding(p->inbox, ohm_peer_now()) == 0;
}

int ohm_exchange_barrier(ohm_peer_t *p)
{
    int rc = ohm_exchange_send(p, OHM_MSG_HELLO, p->round, NULL, p->nb_ids, p->nn);
    if (rc) return rc;
    double deadline = ohm_peer_now() + p->s.startup_timeout_ms / 1000.0;
    p->startup_deadline = deadline + p->s.timeout_ms / 1000.0;
    rc = receive_until(p, deadline, all_heard);
    if (rc) return rc;
    uint32_t *unheard = calloc((size_t)p->nn + 1, sizeof *unheard);
    if (!unheard) return ohm_error_set(OHM_ENOMEM, "barrier");
    int k = ohm_inbox_end_barrier(p->inbox, unheard, p->nn);
    for (int i = 0; i < k; i++)
        fprintf(stderr, "ohmpeer %u: neighbour %u not heard at start-up; going on without it\n",
                p->id, unheard[i]);
    free(unheard);
    return OHM_OK;
}

/* Asynchronous start: a model from every neighbour that is live and in step. */
static int first_models_in(const ohm_peer_t *p)
{
    for (int i = 0; i < p->nn; i++)
        if (ohm_inbox_waits_for(p->inbox, i) && ohm_latest_stamp(p->latest, i) < 0) return 0;
    return 1;
}

int ohm_exchange_async_start(ohm_peer_t *p)
{
    ohm_model_get_params(p->model, p->own);
    int rc = ohm_exchange_send(p, OHM_MSG_MODEL, p->round, p->own, p->nb_ids, p->nn);
    if (rc) return rc;
    /* In slices, handing on what waits in the one-slot outboxes meanwhile. */
    double end = ohm_peer_now() + p->s.timeout_ms / 1000.0;
    while (!first_models_in(p) && ohm_peer_now() < end) {
        ohm_transport_flush(p->tr);
        double slice = ohm_peer_now() + 0.02;
        if ((rc = receive_until(p, slice < end ? slice : end, first_models_in))) return rc;
    }
    ohm_transport_flush(p->tr);
    return OHM_OK;
}

/* p->view[i]: neighbour i's parameters of this round, in place in its frame or
 * copied (unaligned payload), or (comm on) its copy as this round's message
 * left it; NULL when there is none. They were checked on arrival. */
static void take_views(ohm_peer_t *p)
{
    for (int i = 0; i < p->nn; i++) {
        ohm_frame_t *f = ohm_inbox_model(p->inbox, i);
        p->view[i] = NULL;
        if (!f) continue;
        ohm_wire_msg_t m;
        if (ohm_wire_decode(ohm_frame_data(f), ohm_frame_size(f), &p->expect, &m) != OHM_OK)
            continue; /* decoded on arrival: cannot fail on the same bytes */
        if (p->comm_on || m.kind != OHM_KIND_F32) {
            p->view[i] = ohm_comm_take(p, i, &m);
            continue;
        }
        p->view[i] = ohm_wire_params_in_place(&m);
        if (!p->view[i]) {
            ohm_wire_read_params(&m, p->nb_vec[i]);
            p->view[i] = p->nb_vec[i];
        }
    }
}

/* Asynchronous mode: takes what has arrived without waiting, then the newest
 * model of each neighbour that is not too old, with its staleness factor. */
static int receive_latest(ohm_peer_t *p)
{
    ohm_transport_flush(p->tr);
    for (int k = 0; k < 8 * (p->nn + 1); k++) { /* bounded: a flood cannot hold the step */
        ohm_frame_t *f = NULL;
        if (ohm_transport_recv(p->tr, 0, &f) != OHM_OK) break;
        dispatch(p, f);
    }
    ohm_transport_flush(p->tr);
    double now = ohm_peer_now();
    for (int i = 0; i < p->nn; i++) {
        uint64_t age = 0;
        ohm_frame_t *f = ohm_latest_get(p->latest, i, p->round, now, &age);
        p->view[i] = NULL;
        if (!f) continue;
        ohm_wire_msg_t m;
        if (ohm_wire_decode(ohm_frame_data(f), ohm_frame_size(f), &p->expect, &m) != OHM_OK)
            continue; /* decoded on arrival: cannot fail on the same bytes */
        p->view[i] = ohm_wire_params_in_place(&m);
        if (!p->view[i]) {
            ohm_wire_read_params(&m, p->nb_vec[i]);
            p->view[i] = p->nb_vec[i];
        }
        p->factor[i] = ohm_latest_factor(p->latest, age);
        p->age_hist[age < OHM_AGE_BINS ? age : OHM_AGE_BINS - 1]++;
    }
    return ohm_peer_stop_requested ? OHM_EINTR : OHM_OK;
}

int ohm_exchange_round(ohm_peer_t *p)
{
    if (p->latest) return receive_latest(p);
    double deadline = ohm_peer_now() + p->s.timeout_ms / 1000.0;
    /* During the start-up window, neighbours may still be held by their own
     * barrier (waiting for a peer that is slow or absent), and their
     * neighbours by them: wait as long as the start-up allows instead of
     * marking them down and racing ahead of the whole graph. */
    if (p->startup_deadline > deadline) deadline = p->startup_deadline;
    int rc = receive_until(p, deadline, all_arrived);
    if (rc) return rc;
    /* Late only if we were still waiting for it when the deadline passed;
     * decided before the drain below, so a neighbour heard again there is
     * waited for next round. */
    if (!all_arrived(p)) p->timed_out++;
    ohm_inbox_deadline(p->inbox);
    /* Take what is already queued without waiting: this is how a neighbour that
     * is down is heard again. Bounded, so a flood cannot hold the round. */
    for (int k = 0; k < 4 * p->nn + 4; k++) {
        ohm_frame_t *f = NULL;
        if (ohm_transport_recv(p->tr, 0, &f) != OHM_OK) break;
        dispatch(p, f);
    }
    uint32_t down[64];
    int nd = ohm_inbox_close(p->inbox, down, 64);
    for (int i = 0; i < nd && i < 64; i++)
        fprintf(stderr,
                "ohmpeer %u: neighbour %u missed round %u's deadline; not waiting for it "
                "until it delivers in step\n",
                p->id, down[i], p->round);
    take_views(p);
    return OHM_OK;
}

void ohm_exchange_advance(ohm_peer_t *p, uint32_t r)
{
    p->round = r;
    ohm_inbox_advance(p->inbox, r);
}

/* Takes the frames that are already here or still arriving back to back: at
 * most `max` of them, until none came for quiet_ms, and within total_ms. */
static void drain(ohm_peer_t *p, int max, int quiet_ms, int total_ms)
{
    double end = ohm_peer_now() + total_ms / 1000.0;
    for (int k = 0; k < max && ohm_peer_now() < end; k++) {
        ohm_frame_t *f = NULL;
        if (ohm_transport_recv(p->tr, quiet_ms, &f) != OHM_OK) break;
        dispatch(p, f);
    }
}

void ohm_exchange_catch_up(ohm_peer_t *p)
{
    int64_t t = ohm_inbox_catch_up(p->inbox);
    if (t < 0) return;
    /* What the neighbours queued for us while we were away (a restart, a
     * partition) arrives first, oldest first: take it all before choosing the
     * round, so that the jump goes to their latest proven round in one step. */
    drain(p, (p->s.hwm + 4) * (p->nn + 1), 100, 2000);
    t = ohm_inbox_catch_up(p->inbox);
    if (t < 0) return;
    fprintf(stderr,
            "ohmpeer %u: catching up from round %u to %" PRId64
            " (proved by at least %d of its neighbours)\n",
            p->id, p->round, t, ohm_inbox_quorum(p->inbox));
    p->skipped += (uint64_t)t - p->round;
    ohm_exchange_advance(p, (uint32_t)t);
}

int ohm_exchange_hold(ohm_peer_t *p)
{
    double t0 = ohm_peer_now();
    if (ohm_inbox_hold_begin(p->inbox, t0) == 0) return OHM_OK;
    /* At most half a round deadline: the neighbours in step with us wait for
     * our next model a whole deadline, and must not give up on us. */
    p->held++;
    int rc = receive_until(p, t0 + p->s.timeout_ms / 2000.0, not_holding);
    double t1 = ohm_peer_now();
    p->hold_s += t1 - t0;
    uint32_t spent[64];
    int k = ohm_inbox_hold_end(p->inbox, t1, spent, 64);
    for (int i = 0; i < k && i < 64; i++)
        fprintf(stderr,
                "ohmpeer %u: round %u: neighbour %u is still far behind and has used its hold "
                "budget; holding for it again as the budget refills\n",
                p->id, p->round, spent[i]);
    return rc;
}

int ohm_exchange_byz_send(void *ctx, uint32_t type, uint32_t round, const float *params,
                          uint32_t target)
{
    if (type == OHM_MSG_MODEL) return ohm_comm_byz_send(ctx, round, params, target);
    return ohm_exchange_send(ctx, type, round, params, &target, 1);
}

static int join_done(const ohm_peer_t *p)
{
    for (int i = 0; i < p->nn; i++)
        if (!p->join_got[i] && !ohm_inbox_cut(p->inbox, i)) return 0;
    return 1;
}

static int join_any(const ohm_peer_t *p)
{
    for (int i = 0; i < p->nn; i++)
        if (p->join_got[i]) return 1;
    return 0;
}

int ohm_exchange_join_begin(ohm_peer_t *p)
{
    size_t n1 = (size_t)p->nn + 1;
    p->join_vec = calloc(n1, sizeof *p->join_vec);
    p->join_got = calloc(n1, sizeof *p->join_got);
    p->join_round = calloc(n1, sizeof *p->join_round);
    if (!p->join_vec || !p->join_got || !p->join_round) return ohm_error_set(OHM_ENOMEM, "join");
    for (int i = 0; i < p->nn; i++)
        if (!(p->join_vec[i] = malloc(sizeof(float) * p->P)))
            return ohm_error_set(OHM_ENOMEM, "join: %zu parameters", p->P);
    p->joining = 1; /* from the start-up barrier on: models may come during it */
    return OHM_OK;
}

int ohm_exchange_join(ohm_peer_t *p)
{
    int rc = OHM_OK, k = 0;
    /* Wait for a model of every reachable neighbour: at most the start-up
     * window, and one round deadline after the first one came; then take what
     * is still arriving back to back, so each neighbour's newest is used. */
    double end = ohm_peer_now() + p->s.startup_timeout_ms / 1000.0;
    if ((rc = receive_until(p, end, join_any))) goto out;
    double soon = ohm_peer_now() + p->s.timeout_ms / 1000.0;
    if ((rc = receive_until(p, soon < end ? soon : end, join_done))) goto out;
    drain(p, (p->s.hwm + 4) * (p->nn + 1), 100, 2000);
    const float **rows = p->rows; /* scratch of nn + 1 rows */
    for (int i = 0; i < p->nn; i++)
        if (p->join_got[i]) rows[k++] = p->join_vec[i];
    if (k == 0) {
        fprintf(stderr,
                "ohmpeer %u: joined, but no neighbour sent a model in the start-up "
                "window; starting from its own initialization\n",
                p->id);
        goto out;
    }
    /* The coordinate-wise median of the newest models: any minority of lying
     * neighbours cannot choose the joiner's start. */
    ohm_rule_params_t med;
    ohm_rule_defaults(&med, OHM_RULE_MEDIAN);
    if (ohm_robust_aggregate(&med, rows, NULL, k, p->P, p->out, NULL) != OHM_ROBUST_OK) {
        rc = ohm_error_set(OHM_ENOMEM, "join: median of %d models", k);
        goto out;
    }
    ohm_model_set_params(p->model, p->out, OHM_WB_EXACT);
    p->joined_from = k;
    fprintf(stderr, "ohmpeer %u: joined from the median of %d neighbour model%s\n", p->id, k,
            k == 1 ? "" : "s");
out:
    p->joining = 0;
    for (int i = 0; p->join_vec && i < p->nn; i++)
        free(p->join_vec[i]);
    free(p->join_vec);
    free(p->join_got);
    free(p->join_round);
    p->join_vec = NULL;
    p->join_got = NULL;
    p->join_round = NULL;
    return rc;
}

void ohm_exchange_flush(ohm_peer_t *p)
{
    if (p->latest) ohm_transport_flush(p->tr);
}
