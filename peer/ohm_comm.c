/* ohm_comm: public copies (docs/protocol.md, section "Compressed gossip and censoring").
 *
 * With comm.censor or comm.compress on, a peer keeps a public copy of its
 * model that each neighbour tracks identically, and sends per round either
 * "unchanged" (censored), the compressed difference to the copy (error
 * feedback: what is left out stays in x - copy), or the copy whole (its first
 * round, without compression, and to a neighbour that asked with a sync
 * message). Receivers apply each neighbour's messages to their copy of it in
 * the order it sent them, and combine the copies; a copy that cannot follow
 * (a message was lost) is asked for whole again. */
#include "ohm_peer_impl.h"

#include "ohm_error.h"
#include "ohm_payload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A neighbour whose copy is out of sync is asked again after this many rounds
 * (its answer, or our request, may have been lost). */
#define SYNC_RETRY_ROUNDS 4

int ohm_comm_init(ohm_peer_t *p)
{
    p->comm_on = ohm_settings_copies(&p->s);
    p->pub_version = -1;
    if (!p->comm_on) return OHM_OK;
    size_t nn1 = (size_t)p->nn + 1;
    p->pub = malloc(sizeof(float) * (p->P ? p->P : 1));
    p->diff = malloc(sizeof(float) * (p->P ? p->P : 1));
    p->need_whole = calloc(nn1, 1);
    p->sync_asked = malloc(sizeof *p->sync_asked * nn1);
    if (!p->pub || !p->diff || !p->need_whole || !p->sync_asked)
        return ohm_error_set(OHM_ENOMEM, "peer %u: public copy of %zu parameters", p->id, p->P);
    for (int i = 0; i < p->nn; i++)
        p->sync_asked[i] = -1;
    int rc = ohm_copies_new(p->nn, p->P, &p->copies);
    if (!rc && p->s.compress != OHM_COMPRESS_NONE)
        rc = ohm_compress_new((ohm_compressor_t)p->s.compress, p->s.ratio, (uint32_t)p->P,
                              p->s.seed, p->id, &p->comp);
    if (!rc && p->comp) rc = ohm_compress_set_entropy(p->comp, (ohm_entropy_t)p->s.entropy);
    if (!rc && p->self->byzantine) {
        rc = ohm_copies_new(p->nn, p->P, &p->byz_held);
        if (!rc && !(p->byz_whole = calloc(nn1, 1))) rc = ohm_error_set(OHM_ENOMEM, "byzantine");
    }
    return rc;
}

void ohm_comm_free(ohm_peer_t *p)
{
    free(p->pub);
    free(p->diff);
    free(p->need_whole);
    free(p->sync_asked);
    free(p->byz_whole);
    ohm_copies_destroy(&p->copies);
    ohm_copies_destroy(&p->byz_held);
    ohm_compress_destroy(&p->comp);
}

/* ---- sending ------------------------------------------------------------- */

static ohm_wire_msg_t model_msg(const ohm_peer_t *p, uint32_t round, ohm_kind_t kind, uint32_t base,
                                uint32_t entries)
{
    return (ohm_wire_msg_t){.version = OHM_WIRE_VERSION,
                            .type = OHM_MSG_MODEL,
                            .run = p->run_id,
                            .from = p->id,
                            .round = round,
                            .fp = p->fp,
                            .count = (uint32_t)p->P,
                            .kind = (uint32_t)kind,
                            .base = base,
                            .entries = entries};
}

/* A message buffer with the header of m written; *off: where its payload goes. */
static uint8_t *start_msg(const ohm_wire_msg_t *m, size_t *off, size_t *len)
{
    /* the widest header of any message, and this payload */
    size_t cap = ohm_wire_max_size(0) + ohm_payload_size(m->kind, m->count, m->entries);
    uint8_t *buf = malloc(cap);
    if (!buf) {
        ohm_error_set(OHM_ENOMEM, "message buffer of %zu bytes", cap);
        return NULL;
    }
    if (ohm_wire_encode_header(m, buf, cap, off) != OHM_OK) {
        free(buf);
        return NULL;
    }
    *len = *off + ohm_payload_size(m->kind, m->count, m->entries);
    return buf;
}

/* Hands buf (NULL: it could not be made, the error is set) to the transport. */
static int send_buf(ohm_peer_t *p, uint8_t *buf, size_t len, const uint32_t *ids, int n)
{
    if (!buf) {
        p->send_failures++;
        return OHM_ENOMEM;
    }
    if (n == 0) {
        free(buf);
        return OHM_OK;
    }
    ohm_transport_send_all(p->tr, ids, n, buf, len); /* refusals are counted there */
    return OHM_OK;
}

/* x[P] whole, as the public copy of version `base`, stamped `round`. */
static int send_whole(ohm_peer_t *p, uint32_t round, uint32_t base, const float *x,
                      const uint32_t *ids, int n)
{
    ohm_wire_msg_t m = model_msg(p, round, OHM_KIND_F32, base, 0);
    size_t cap = ohm_wire_max_size(m.count), len = 0;
    uint8_t *buf = malloc(cap);
    if (buf && ohm_wire_encode(&m, x, buf, cap, &len) != OHM_OK) {
        free(buf);
        buf = NULL;
    } else if (!buf) {
        ohm_error_set(OHM_ENOMEM, "message buffer of %zu bytes", cap);
    }
    return send_buf(p, buf, len, ids, n);
}

/* One error-feedback step of x against the copy xhat (of version base),
 * packed into a message of round `round`: the buffer (NULL with *bad = 1
 * when the copy overflowed; NULL with the error set when memory ran out). */
static uint8_t *compressed_msg(ohm_peer_t *p, uint32_t round, uint32_t base, const float *x,
                               float *xhat, size_t *len, int *bad)
{
    ohm_compress_out_t out;
    *bad = 0;
    int rc = ohm_compress_step_packed(p->comp, x, xhat, p->diff, round, &out);
    if (rc == OHM_ENOMEM) return NULL;
    if (rc != OHM_OK) {
        *bad = 1;
        return NULL;
    }
    ohm_wire_msg_t m = model_msg(p, round, out.kind, base, out.entries);
    size_t off = 0;
    uint8_t *buf = start_msg(&m, &off, len);
    if (buf) memcpy(buf + off, out.bytes, out.len);
    return buf;
}

int ohm_comm_send(ohm_peer_t *p, uint32_t round, const float *x)
{
    if (!p->comm_on) return ohm_exchange_send(p, OHM_MSG_MODEL, round, x, p->nb_ids, p->nn);
    p->comm_rounds++;
    if (p->pub_version < 0) {
        /* The first round: every neighbour gets the public copy whole. */
        memcpy(p->pub, x, sizeof(float) * p->P);
        p->pub_version = round;
        memset(p->need_whole, 0, (size_t)p->nn);
        p->comm_whole_sent += (uint64_t)p->nn;
        return send_whole(p, round, round, p->pub, p->nb_ids, p->nn);
    }
    double dn = 0, xn = 0;
    if (p->s.censor) ohm_compress_norms(x, p->pub, p->P, &dn, &xn);
    ohm_censor_t cen = {p->s.tau0, p->s.decay, p->s.max_staleness};
    uint8_t *buf = NULL;
    size_t len = 0, off = 0;
    int whole = 0;
    if (p->s.censor && ohm_censor_skip(&cen, round, (uint32_t)p->pub_version, dn, xn)) {
        p->comm_censored++;
        ohm_wire_msg_t m = model_msg(p, round, OHM_KIND_SAME, (uint32_t)p->pub_version, 0);
        buf = start_msg(&m, &off, &len);
    } else if (!p->comp) {
        memcpy(p->pub, x, sizeof(float) * p->P);
        p->pub_version = round;
        whole = 1;
    } else {
        uint32_t base = (uint32_t)p->pub_version;
        buf = compressed_msg(p, round, base, x, p->pub, &len, &whole);
        p->pub_version = round;
        if (whole) {
            /* The copy overflowed (a model far out of range): start again from x. */
            memcpy(p->pub, x, sizeof(float) * p->P);
        }
    }
    if (whole) {
        memset(p->need_whole, 0, (size_t)p->nn);
        return send_whole(p, round, round, p->pub, p->nb_ids, p->nn);
    }
    /* The neighbours that asked for the copy whole get it; the others the message. */
    uint32_t rest[p->nn + 1], asked[p->nn + 1];
    int nr = 0, na = 0;
    for (int i = 0; i < p->nn; i++) {
        if (p->need_whole[i])
            asked[na++] = p->nb_ids[i];
        else
            rest[nr++] = p->nb_ids[i];
        p->need_whole[i] = 0;
    }
    int rc = send_buf(p, buf, len, rest, nr);
    if (na) {
        p->comm_whole_sent += (uint64_t)na;
        int rc2 = send_whole(p, round, (uint32_t)p->pub_version, p->pub, asked, na);
        if (!rc) rc = rc2;
    }
    return rc;
}

int ohm_comm_byz_send(ohm_peer_t *p, uint32_t round, const float *x, uint32_t target)
{
    int t = ohm_inbox_index(p->inbox, target);
    if (!p->comm_on || t < 0) return ohm_exchange_send(p, OHM_MSG_MODEL, round, x, &target, 1);
    /* What target holds of us follows our messages like any copy: the crafted
     * vector reaches it through the same compressed channel. */
    int64_t v = ohm_copies_version(p->byz_held, t);
    if (!p->comp || p->byz_whole[t] || v < 0 || v >= (int64_t)round) {
        p->byz_whole[t] = 0;
        ohm_copies_take(p->byz_held, t, round, x);
        return send_whole(p, round, round, x, &target, 1);
    }
    size_t len = 0;
    int bad = 0;
    memcpy(p->tmp, ohm_copies_get(p->byz_held, t), sizeof(float) * p->P);
    uint8_t *buf = compressed_msg(p, round, (uint32_t)v, x, p->tmp, &len, &bad);
    if (buf)
        ohm_copies_take(p->byz_held, t, round, p->tmp);
    else
        ohm_copies_forget(p->byz_held, t);
    if (bad) {
        /* What it holds of us overflowed: the vector whole, as at the start. */
        ohm_copies_take(p->byz_held, t, round, x);
        return send_whole(p, round, round, x, &target, 1);
    }
    return send_buf(p, buf, len, &target, 1);
}

void ohm_comm_sync_request(ohm_peer_t *p, int i)
{
    p->comm_syncs_recv++;
    if (!p->comm_on) return;
    if (p->need_whole) p->need_whole[i] = 1;
    if (p->byz_whole) p->byz_whole[i] = 1;
}

/* ---- receiving ----------------------------------------------------------- */

void ohm_comm_arrived_late(ohm_peer_t *p, int i, const ohm_wire_msg_t *m)
{
    if (!p->comm_on) return;
    int64_t v = ohm_copies_version(p->copies, i);
    /* Only the next message of its sequence, or a newer copy whole. */
    if (m->kind == OHM_KIND_F32 ? (int64_t)m->base > v : v >= 0 && (int64_t)m->base == v)
        ohm_copies_apply(p->copies, i, m, p->s.max_staleness);
}

const float *ohm_comm_take(ohm_peer_t *p, int i, const ohm_wire_msg_t *m)
{
    if (!p->comm_on) {
        /* Without copies only whole models can be used (a neighbour configured
         * with comm on sends differences: counted, so the mismatch shows). */
        p->comm_unsynced++;
        return NULL;
    }
    int rc = ohm_copies_apply(p->copies, i, m, p->s.max_staleness);
    if (rc == OHM_OK) {
        p->comm_reused += m->kind == OHM_KIND_SAME;
        return ohm_copies_get(p->copies, i);
    }
    p->comm_unsynced++;
    if (rc != OHM_ERANGE) ohm_copies_forget(p->copies, i);
    int64_t asked = p->sync_asked[i];
    if (asked < 0 || (int64_t)p->round >= asked + SYNC_RETRY_ROUNDS || (int64_t)p->round < asked) {
        p->sync_asked[i] = p->round;
        p->comm_syncs_sent++;
        ohm_exchange_send(p, OHM_MSG_SYNC, p->round, NULL, &p->nb_ids[i], 1);
    }
    return NULL;
}

void ohm_comm_metrics(const ohm_peer_t *p, ohm_metrics_t *m, int final)
{
    /* With comm off only a neighbour configured otherwise makes these count. */
    if (!p->comm_on && !p->comm_unsynced) return;
    ohm_metrics_int(m, "censored", (int64_t)p->comm_censored);
    if (!final) return;
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"rounds\":%llu,\"censored\":%llu,\"whole_sent\":%llu,\"syncs_sent\":%llu,"
             "\"syncs_recv\":%llu,\"reused\":%llu,\"unsynced\":%llu}",
             (unsigned long long)p->comm_rounds, (unsigned long long)p->comm_censored,
             (unsigned long long)p->comm_whole_sent, (unsigned long long)p->comm_syncs_sent,
             (unsigned long long)p->comm_syncs_recv, (unsigned long long)p->comm_reused,
             (unsigned long long)p->comm_unsynced);
    ohm_metrics_raw(m, "comm", buf);
}
