/* ohm_transport: ZeroMQ links between peers (docs/protocol.md, section "Transport").
 *
 * Each peer binds one receiving socket (PULL) at its endpoint and connects one
 * sending socket (PUSH) per out-neighbour. Sends never block: a message a dead
 * or slow neighbour cannot take (high-water mark reached) is dropped and
 * counted, so the round never stalls on it. ZMQ_MAXMSGSIZE bounds what the
 * receiver accepts. With keys, the receiving socket is a CURVE server whose ZAP
 * handler admits only the listed public keys and maps each to a peer id; every
 * received frame then carries the authenticated sender id, and one key holds
 * one session at a time: while a key's session is connected, frames of a
 * second session with the same key are dropped and counted (drop_session);
 * the receiving socket's heartbeats end a session whose peer vanished within
 * a few seconds, so a restarted peer gets its slot back. Without keys
 * (explicit insecure mode) links are plain TCP and frames carry no identity.
 * Optionally (watch_links) each sending socket is monitored, so that a link
 * whose connection drops is reported at once. */
#ifndef OHM_TRANSPORT_H
#define OHM_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "ohm_keys.h"

#define OHM_PEER_UNKNOWN UINT32_MAX

typedef struct ohm_transport ohm_transport_t;
typedef struct ohm_frame ohm_frame_t;

typedef struct {
    const char *bind; /* endpoint to bind, e.g. "tcp://127.0.0.1:7000" or "tcp://0.0.0.0:7000" (all
                         interfaces) */
    size_t max_msg_size; /* ZMQ_MAXMSGSIZE for the receiving socket */
    int hwm;             /* per-link send/receive high-water mark, in messages (>= 1) */
    /* CURVE: this peer's key pair; NULL secret_key means insecure plain TCP. */
    const uint8_t *public_key;
    const uint8_t *secret_key;
    /* ZAP admission list: n_allowed public keys and the peer id each maps to. */
    int n_allowed;
    const uint8_t (*allowed_keys)[OHM_KEY_BYTES];
    const uint32_t *allowed_ids;
    /* Report links whose connection drops (see ohm_transport_recv). */
    int watch_links;
} ohm_transport_opts_t;

/* Creates the context, the ZAP handler (when secure) and binds the receiving
 * socket. Errors: OHM_ENET with a detail "bind ENDPOINT: REASON" (address in use,
 * cannot resolve host, invalid endpoint), OHM_EINVAL for bad options, OHM_ENOMEM.
 * The options are copied (the secret into locked memory). Caller owns the result.
 * With CURVE the receiver enforces max_msg_size on the plaintext exactly (ZeroMQ's
 * own limit is set a little higher, to cover CURVE's framing). */
int ohm_transport_new(const ohm_transport_opts_t *o, ohm_transport_t **out);

/* Closes every socket, stops the ZAP handler and ends the context without waiting
 * for unsent messages; NULL-safe; clears the caller's pointer. Every buffer handed
 * to send_all has been released when it returns. */
void ohm_transport_destroy(ohm_transport_t **t);

/* The endpoint actually bound (ZMQ_LAST_ENDPOINT), e.g. "tcp://127.0.0.1:41234" after
 * binding "tcp://127.0.0.1:*". Owned by the transport. */
const char *ohm_transport_endpoint(const ohm_transport_t *t);

/* Adds an out-neighbour: connects a sending socket to `endpoint`, authenticating
 * the server by `server_key` (NULL in insecure mode). Errors: OHM_ENET, OHM_EINVAL. */
int ohm_transport_add_peer(ohm_transport_t *t, uint32_t id, const char *endpoint,
                           const uint8_t *server_key);

/* Sends buf[len] to each of ids[n] without blocking and without copying: the
 * transport takes ownership of buf (malloc'd) and frees it when every link has
 * released it. Returns the number of links that refused (dropped, counted); an id
 * that is not an out-neighbour counts as refused. */
int ohm_transport_send_all(ohm_transport_t *t, const uint32_t *ids, int n, void *buf, size_t len);

/* Releases a buffer given to send_all_with; may run on a ZeroMQ I/O thread. */
typedef void ohm_transport_release_fn(void *buf, void *hint);

/* send_all for a buffer not from malloc: release(buf, hint) runs exactly once, when
 * the last link lets go (possibly before this returns, at the latest in destroy). */
int ohm_transport_send_all_with(ohm_transport_t *t, const uint32_t *ids, int n, void *buf,
                                size_t len, ohm_transport_release_fn *release, void *hint);

/* Sends buf to each of ids[n] keeping, per link, at most one message in
 * ZeroMQ and at most one waiting: a link still writing its previous message
 * gets this one in its slot, replacing (and releasing) an older one waiting
 * there, so a slow or stopped receiver never makes messages queue up
 * (asynchronous gossip: only the newest model matters). Takes ownership of
 * buf (release(buf, hint) runs once, when no link holds it). Returns the
 * number of ids that are not out-neighbours. */
int ohm_transport_send_latest(ohm_transport_t *t, const uint32_t *ids, int n, void *buf, size_t len,
                              ohm_transport_release_fn *release, void *hint);

/* Hands the waiting messages of links that have finished writing to ZeroMQ;
 * call it often (each step, and while receiving). */
void ohm_transport_flush(ohm_transport_t *t);

/* Flushes until no message waits in an outbox or timeout_ms passed (at the
 * end of a run, so that the last model and the bye leave). Returns how many
 * links still have one waiting. */
int ohm_transport_drain_outboxes(ohm_transport_t *t, int timeout_ms);

/* Waits up to timeout_ms (0: poll, <0: forever) for one frame. Returns OHM_OK
 * with *f set (caller owns it), OHM_ETIMEOUT, OHM_EINTR on a signal, OHM_ENET.
 * Multi-part messages, messages over max_msg_size and frames of a second
 * session of one key are dropped here, counted by reason (ohm_transport_stats).
 * With watch_links it also returns OHM_OK with *f NULL as soon as the
 * established connection of a link drops (the neighbour's process ended, or
 * heartbeats / the retransmission limit gave up): ohm_transport_lost says which. */
int ohm_transport_recv(ohm_transport_t *t, int timeout_ms, ohm_frame_t **f);

/* Hands out, one per call, the ids of links whose connection dropped since
 * they were last handed out: 1 with *id set, 0 when there are none. ZeroMQ
 * keeps reconnecting such a link; a neighbour that comes back is heard again. */
int ohm_transport_lost(ohm_transport_t *t, uint32_t *id);

/* With watch_links: whether the link to id is connected, as of the link events
 * ohm_transport_recv has seen (0 for an unknown id, or without watch_links). */
int ohm_transport_link_up(ohm_transport_t *t, uint32_t id);

/* The received bytes (ZeroMQ's buffer, not copied; unaligned as far as callers know). */
const uint8_t *ohm_frame_data(const ohm_frame_t *f);
size_t ohm_frame_size(const ohm_frame_t *f);
/* Authenticated sender id, or OHM_PEER_UNKNOWN in insecure mode. */
uint32_t ohm_frame_peer(const ohm_frame_t *f);
/* NULL-safe; clears the caller's pointer. */
void ohm_frame_destroy(ohm_frame_t **f);

/* Counters since creation (per link for sends: one message to 3 links counts 3). */
typedef struct {
    uint64_t bytes_sent, bytes_recv;
    uint64_t msgs_sent, msgs_recv;
    uint64_t send_dropped; /* refused at a full or absent link */
    /* ZAP refusals (CURVE handshakes the admission list turned down), in all and by reason */
    uint64_t auth_refused;
    uint64_t zap_unknown_key, zap_mechanism, zap_domain, zap_malformed;
    /* frames the receive path dropped, by reason */
    uint64_t drop_multipart; /* messages of more than one frame */
    uint64_t drop_oversized; /* over max_msg_size (within ZeroMQ's own CURVE headroom) */
    uint64_t drop_session;   /* from a second session of a key that already has one */
    /* what the receiving socket saw: every visitor, admitted or not */
    uint64_t accepted;                  /* TCP connections accepted */
    uint64_t handshake_ok;              /* ZMTP handshakes completed */
    uint64_t handshake_failed_protocol; /* wrong mechanism, malformed greeting, not ZeroMQ */
    uint64_t handshake_failed_auth;     /* refused by ZAP */
    uint64_t handshake_failed_other;    /* failed without detail (e.g. closed mid-handshake) */
    uint64_t disconnected;              /* connections that ended */
    /* the one-slot outboxes (ohm_transport_send_latest) */
    uint64_t outbox_replaced; /* waiting models replaced by newer ones */
    int outbox_peak_inflight; /* most messages ZeroMQ held for one link at once */
    int outbox_peak_waiting;  /* most messages waiting in one link's slot at once */
    int outbox_waiting;       /* links with a message waiting now */
} ohm_transport_stats_t;
void ohm_transport_stats(ohm_transport_t *t, ohm_transport_stats_t *s);

#endif
