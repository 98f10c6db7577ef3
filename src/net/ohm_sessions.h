/* ohm_sessions: who is connected to a receiving socket. A monitor on the
 * socket counts every visitor (connections, handshakes completed or failed by
 * reason, disconnects), keeps track of which connections are open, and gives
 * each admitted key to one session at a time (docs/protocol.md, section
 * "Transport"): the first open session of a key that delivers a frame holds it
 * until its connection ends. */
#ifndef OHM_SESSIONS_H
#define OHM_SESSIONS_H

#include <stdint.h>

typedef struct ohm_sessions ohm_sessions_t;

typedef struct {
    uint64_t accepted;        /* TCP connections accepted */
    uint64_t handshake_ok;    /* ZMTP handshakes completed */
    uint64_t failed_protocol; /* wrong mechanism, malformed greeting, not ZeroMQ */
    uint64_t failed_auth;     /* refused by ZAP */
    uint64_t failed_other;    /* failed without detail */
    uint64_t disconnected;    /* connections that ended */
} ohm_sessions_counts_t;

/* Monitors `socket` (before it binds) through an inproc PAIR in ZeroMQ context
 * ctx. ids[n] are the peer ids of the admitted keys (n = 0: no keys, then
 * every frame is admitted). Errors: OHM_ENET, OHM_ENOMEM. Caller owns *out. */
int ohm_sessions_new(void *ctx, void *socket, int n, const uint32_t *ids, ohm_sessions_t **out);

/* Stops the monitor and frees (before the socket is closed); NULL-safe;
 * clears the caller's pointer. */
void ohm_sessions_destroy(ohm_sessions_t **s);

/* The socket to poll for the monitor's news. */
void *ohm_sessions_monitor(const ohm_sessions_t *s);

/* Reads the monitor's news without waiting. */
void ohm_sessions_read(ohm_sessions_t *s);

/* Whether a frame of admitted key `peer` that arrived over socket fd may be
 * delivered: 1, or 0 when another open session holds that key. The last
 * frames of a connection that has already ended are delivered (they were
 * authenticated) but claim nothing. */
int ohm_sessions_admit(ohm_sessions_t *s, uint32_t peer, int fd);

/* The counts so far (reads the monitor's news first). */
void ohm_sessions_counts(ohm_sessions_t *s, ohm_sessions_counts_t *c);

#endif
