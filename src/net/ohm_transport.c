/* ohm_transport: one ZeroMQ context per transport, a PULL socket bound for
 * receiving and one PUSH socket per out-neighbour. In secure mode a ZAP
 * handler thread in the same context decides which CURVE clients the PULL
 * socket admits: libzmq admits every client that knows the server key when no
 * handler is bound, so the handler must be up before the PULL socket binds. */
#include "ohm_transport.h"

#include "ohm_error.h"
#include "ohm_sessions.h"
#include "ohm_zap.h"

#include <assert.h>
#include <stdatomic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define ZAP_DOMAIN "ohmpeer"
/* CURVE wraps each message in a MESSAGE command (name, nonce, MAC, flags);
 * ZeroMQ's size limit sees that wrapper, so it gets this much headroom and
 * recv enforces the exact plaintext bound. */
#define CURVE_OVERHEAD 64
/* Liveness of a link to a neighbour (see ohm_transport_add_peer). */
#define HEARTBEAT_IVL_MS 1000
#define HEARTBEAT_TIMEOUT_MS 3000
#define CONNECT_TIMEOUT_MS 1000
#define MAX_RETRANSMIT_MS 1000

/* A buffer shared by the messages of several links (ohm_transport_send_latest). */
typedef struct {
    _Atomic int refs;
    void *buf;
    size_t len;
    ohm_transport_release_fn *release;
    void *hint;
} shared_t;

/* A link's one-slot outbox (ohm_transport_send_latest): the message ZeroMQ
 * holds for it (at most one), and the newest one waiting for it to leave.
 * Heap-allocated: ZeroMQ's I/O thread updates `inflight` when it lets go. */
typedef struct {
    _Atomic int inflight;
    shared_t *waiting;
    uint64_t replaced; /* waiting messages replaced by newer ones */
    int peak_inflight, peak_waiting;
} outbox_t;

typedef struct {
    uint32_t id;
    void *sock;
    void *mon; /* PAIR reading the socket's monitor (watch_links), else NULL */
    int up;    /* connected, as the monitor last said */
    int lost;  /* its connection dropped since ohm_transport_lost last said so */
    outbox_t *ob;
} link_t;

struct ohm_transport {
    void *ctx;
    void *pull;
    int hwm;
    size_t max_msg_size;
    int secure;
    uint8_t *keys;            /* sodium_malloc'd: public key, then secret key */
    ohm_zap_t *zap;           /* admits the listed CURVE keys (secure mode) */
    ohm_sessions_t *sessions; /* visitors of pull, one session per key */
    link_t *links;
    int n_links, cap_links;
    int watch;             /* report lost links (ohm_transport_opts_t.watch_links) */
    zmq_pollitem_t *items; /* recv's poll set: pull, its monitor, each link's monitor */
    char endpoint[256];
    uint64_t bytes_sent, bytes_recv, msgs_sent, msgs_recv, send_dropped;
    uint64_t drop_multipart, drop_oversized, drop_session;
};

static void unref(shared_t *sh);

struct ohm_frame {
    zmq_msg_t msg;
    uint32_t peer;
};

static int is_ipv6(const char *endpoint)
{
    return strncmp(endpoint, "tcp://[", 7) == 0;
}

static int set_int(void *s, int opt, int v)
{
    return zmq_setsockopt(s, opt, &v, sizeof v);
}

/* ZeroMQ binds to addresses and interface names but never looks a host name
 * up, and it connects lazily, so a misspelt neighbour would only show as
 * silence. Host names from topology files are therefore resolved here: the
 * numeric endpoint (IPv4 preferred) goes to out[cap]. Returns 0, 1 when the
 * endpoint is not tcp://NAME:PORT (left to ZeroMQ), or -1 with the
 * resolver's reason in why[wcap]. */
static int resolve_tcp(const char *ep, char *out, size_t cap, char *why, size_t wcap)
{
    if (strncmp(ep, "tcp://", 6) != 0) return 1;
    const char *h = ep + 6, *colon = strrchr(h, ':');
    if (!colon || colon == h || h[0] == '[' || (size_t)(colon - h) >= 256) return 1;
    char host[256];
    memcpy(host, h, (size_t)(colon - h));
    host[colon - h] = '\0';
    if (!strcmp(host, "*")) return 1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc) {
        snprintf(why, wcap, "cannot resolve host '%s': %s", host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    const struct addrinfo *pick = res;
    for (const struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    char num[INET6_ADDRSTRLEN] = "";
    const void *sa = pick->ai_family == AF_INET
                         ? (const void *)&((const struct sockaddr_in *)pick->ai_addr)->sin_addr
                         : (const void *)&((const struct sockaddr_in6 *)pick->ai_addr)->sin6_addr;
    inet_ntop(pick->ai_family, sa, num, sizeof num);
    snprintf(out, cap, pick->ai_family == AF_INET ? "tcp://%s%s" : "tcp://[%s]%s", num, colon);
    freeaddrinfo(res);
    return 0;
}

/* A reason in words for the common bind/connect failures, then ZeroMQ's own. */
static const char *net_reason(int err)
{
    switch (err) {
    case EADDRINUSE:
        return "address already in use";
    case ENODEV:
        return "cannot resolve host (no such interface or name)";
    case EINVAL:
        return "invalid endpoint (expected tcp://HOST:PORT)";
    case EADDRNOTAVAIL:
        return "address not available on this machine";
    case EPROTONOSUPPORT:
        return "unsupported transport";
    case EACCES:
        return "permission denied";
    default:
        return zmq_strerror(err);
    }
}

/* ---------------------------------------------------------------- life */

static int setup_security(ohm_transport_t *t, const ohm_transport_opts_t *o)
{
    if (sodium_init() < 0) return ohm_error_set(OHM_EUNSUPPORTED, "transport: libsodium init");
    if (!zmq_has("curve"))
        return ohm_error_set(OHM_EUNSUPPORTED, "transport: this libzmq has no CURVE support");
    if (o->n_allowed < 0 || (o->n_allowed > 0 && (!o->allowed_keys || !o->allowed_ids)))
        return ohm_error_set(OHM_EINVAL, "transport: bad admission list");
    t->keys = sodium_malloc(2 * OHM_KEY_BYTES); /* guarded and locked */
    if (!t->keys) return ohm_error_set(OHM_ENOMEM, "transport: key memory");
    memcpy(t->keys + OHM_KEY_BYTES, o->secret_key, OHM_KEY_BYTES);
    if (o->public_key)
        memcpy(t->keys, o->public_key, OHM_KEY_BYTES);
    else
        crypto_scalarmult_base(t->keys, o->secret_key);
    sodium_mprotect_readonly(t->keys);
    /* The handler binds before the PULL socket so no client is ever admitted
     * without it. */
    int rc =
        ohm_zap_new(t->ctx, ZAP_DOMAIN, o->n_allowed, o->allowed_keys, o->allowed_ids, &t->zap);
    if (rc) return ohm_error_set(rc, "transport: %s", ohm_error_detail());
    return OHM_OK;
}

static int bind_pull(ohm_transport_t *t, const ohm_transport_opts_t *o)
{
    t->pull = zmq_socket(t->ctx, ZMQ_PULL);
    if (!t->pull) return ohm_error_set(OHM_ENET, "transport: socket: %s", zmq_strerror(errno));
    int64_t maxsize = (int64_t)o->max_msg_size + (t->secure ? CURVE_OVERHEAD : 0);
    /* A vanished peer's session ends in seconds, freeing its key's slot: TCP
     * keepalive probes an idle connection every second. No heartbeat timer
     * here: libzmq 4.3.4's aborts the process (`!_io_error`) if it fires on a
     * connection whose pipe was full when the peer hung up (test_transport). */
    int rc = set_int(t->pull, ZMQ_LINGER, 0) || set_int(t->pull, ZMQ_RCVHWM, t->hwm) ||
             zmq_setsockopt(t->pull, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize) ||
             set_int(t->pull, ZMQ_TCP_KEEPALIVE, 1) ||
             set_int(t->pull, ZMQ_TCP_KEEPALIVE_IDLE, 1) ||
             set_int(t->pull, ZMQ_TCP_KEEPALIVE_INTVL, 1) ||
             set_int(t->pull, ZMQ_TCP_KEEPALIVE_CNT, 3) ||
             set_int(t->pull, ZMQ_TCP_MAXRT, MAX_RETRANSMIT_MS) ||
             (is_ipv6(o->bind) && set_int(t->pull, ZMQ_IPV6, 1));
    if (!rc && t->secure)
        rc = set_int(t->pull, ZMQ_CURVE_SERVER, 1) ||
             zmq_setsockopt(t->pull, ZMQ_CURVE_SECRETKEY, t->keys + OHM_KEY_BYTES, OHM_KEY_BYTES) ||
             zmq_setsockopt(t->pull, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN));
    if (rc) return ohm_error_set(OHM_ENET, "transport: socket options: %s", zmq_strerror(errno));
    /* Every visitor is counted, admitted or not: the monitor sees connections
     * and handshakes that never deliver a frame. */
    int rc2 = ohm_sessions_new(t->ctx, t->pull, t->secure ? o->n_allowed : 0,
                               t->secure ? o->allowed_ids : NULL, &t->sessions);
    if (rc2) return ohm_error_set(rc2, "transport: %s", ohm_error_detail());
    if (zmq_bind(t->pull, o->bind) != 0) {
        int err = errno;
        char num[300], why[300] = "";
        /* ENODEV: not an address or interface ZeroMQ knows; maybe a host name. */
        int r = err == ENODEV ? resolve_tcp(o->bind, num, sizeof num, why, sizeof why) : 1;
        if (r < 0) return ohm_error_set(OHM_ENET, "bind %s: %s", o->bind, why);
        if (r > 0 || (is_ipv6(num) && set_int(t->pull, ZMQ_IPV6, 1)) ||
            zmq_bind(t->pull, num) != 0) {
            err = r > 0 ? err : errno;
            return ohm_error_set(OHM_ENET, "bind %s: %s", o->bind, net_reason(err));
        }
    }
    size_t len = sizeof t->endpoint;
    if (zmq_getsockopt(t->pull, ZMQ_LAST_ENDPOINT, t->endpoint, &len) != 0)
        snprintf(t->endpoint, sizeof t->endpoint, "%s", o->bind);
    return OHM_OK;
}

int ohm_transport_new(const ohm_transport_opts_t *o, ohm_transport_t **out)
{
    assert(o && out);
    *out = NULL;
    if (!o->bind || o->hwm < 1 || o->max_msg_size == 0 || o->max_msg_size > INT64_MAX / 2)
        return ohm_error_set(OHM_EINVAL, "transport: need an endpoint, hwm >= 1, max_msg_size > 0");
    ohm_transport_t *t = calloc(1, sizeof *t);
    if (!t) return ohm_error_set(OHM_ENOMEM, "transport");
    t->hwm = o->hwm;
    t->watch = o->watch_links;
    t->max_msg_size = o->max_msg_size;
    t->secure = o->secret_key != NULL;
    int rc = OHM_OK;
    t->ctx = zmq_ctx_new();
    if (!t->ctx) rc = ohm_error_set(OHM_ENET, "transport: zmq context: %s", zmq_strerror(errno));
    if (!rc && t->secure) rc = setup_security(t, o);
    if (!rc) rc = bind_pull(t, o);
    if (rc) {
        ohm_transport_destroy(&t);
        return rc;
    }
    *out = t;
    return OHM_OK;
}

void ohm_transport_destroy(ohm_transport_t **tp)
{
    if (!tp || !*tp) return;
    ohm_transport_t *t = *tp;
    *tp = NULL;
    ohm_sessions_destroy(&t->sessions);
    if (t->pull) zmq_close(t->pull);
    for (int i = 0; i < t->n_links; i++) {
        if (t->links[i].mon) {
            zmq_socket_monitor(t->links[i].sock, NULL, 0);
            zmq_close(t->links[i].mon);
        }
        zmq_close(t->links[i].sock);
    }
    if (t->ctx) {
        /* Wakes the ZAP thread's blocking receive with ETERM; it closes its
         * socket and returns, after which the context can end. */
        zmq_ctx_shutdown(t->ctx);
        ohm_zap_destroy(&t->zap);
        while (zmq_ctx_term(t->ctx) != 0 && errno == EINTR) {
        }
    }
    if (t->keys) sodium_free(t->keys); /* wipes before freeing */
    for (int i = 0; i < t->n_links; i++)
        if (t->links[i].ob) {
            unref(t->links[i].ob->waiting);
            free(t->links[i].ob);
        }
    free(t->links);
    free(t->items);
    free(t);
}

const char *ohm_transport_endpoint(const ohm_transport_t *t)
{
    assert(t);
    return t->endpoint;
}

/* ---------------------------------------------------------------- send */

static link_t *find_link(ohm_transport_t *t, uint32_t id)
{
    for (int i = 0; i < t->n_links; i++)
        if (t->links[i].id == id) return &t->links[i];
    return NULL;
}

static int watch_link(ohm_transport_t *t, void *s, uint32_t id, void **mon);

int ohm_transport_add_peer(ohm_transport_t *t, uint32_t id, const char *endpoint,
                           const uint8_t *server_key)
{
    assert(t);
    if (!endpoint) return ohm_error_set(OHM_EINVAL, "peer %" PRIu32 ": no endpoint", id);
    if (find_link(t, id)) return ohm_error_set(OHM_EINVAL, "peer %" PRIu32 ": added twice", id);
    if (t->secure != (server_key != NULL))
        return ohm_error_set(OHM_EINVAL, "peer %" PRIu32 ": %s", id,
                             t->secure ? "no server key for a CURVE link"
                                       : "server key given to an insecure transport");
    if (t->n_links == t->cap_links) {
        int cap = t->cap_links ? 2 * t->cap_links : 8;
        link_t *l = realloc(t->links, (size_t)cap * sizeof *l);
        if (!l) return ohm_error_set(OHM_ENOMEM, "transport: links");
        t->links = l;
        zmq_pollitem_t *it = realloc(t->items, (size_t)(cap + 2) * sizeof *it);
        if (!it) return ohm_error_set(OHM_ENOMEM, "transport: links");
        t->items = it;
        t->cap_links = cap;
    }
    void *s = zmq_socket(t->ctx, ZMQ_PUSH);
    if (!s) return ohm_error_set(OHM_ENET, "connect %s: %s", endpoint, zmq_strerror(errno));
    /* No ZMQ_IMMEDIATE: messages for a neighbour still starting queue up to
     * the high-water mark instead of being lost. The rest bounds how long a
     * link stays dead after a network partition heals: without it TCP's
     * doubling retransmission timer keeps a healed link silent for as long as
     * the partition lasted (or minutes). Heartbeats catch a silent link, but
     * ZeroMQ sends its PING only once earlier output has left, so they never
     * fire on a link whose send buffer filled up before the cut; the TCP
     * retransmission limit (TCP_USER_TIMEOUT) closes that one, and the
     * connect timeout makes the reconnect try again about once a second. */
    int rc = set_int(s, ZMQ_LINGER, 0) || set_int(s, ZMQ_SNDHWM, t->hwm) ||
             set_int(s, ZMQ_HEARTBEAT_IVL, HEARTBEAT_IVL_MS) ||
             set_int(s, ZMQ_HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS) ||
             set_int(s, ZMQ_TCP_MAXRT, MAX_RETRANSMIT_MS) ||
             set_int(s, ZMQ_CONNECT_TIMEOUT, CONNECT_TIMEOUT_MS) ||
             (is_ipv6(endpoint) && set_int(s, ZMQ_IPV6, 1));
    if (!rc && t->secure)
        rc = zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_key, OHM_KEY_BYTES) ||
             zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, t->keys, OHM_KEY_BYTES) ||
             zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, t->keys + OHM_KEY_BYTES, OHM_KEY_BYTES);
    if (rc) {
        int err = errno;
        zmq_close(s);
        return ohm_error_set(OHM_ENET, "connect %s: socket options: %s", endpoint,
                             zmq_strerror(err));
    }
    char num[300], why[300];
    if (resolve_tcp(endpoint, num, sizeof num, why, sizeof why) < 0) {
        zmq_close(s);
        return ohm_error_set(OHM_ENET, "connect %s: %s", endpoint, why);
    }
    void *mon = NULL;
    if (t->watch && (rc = watch_link(t, s, id, &mon)) != OHM_OK) {
        zmq_close(s);
        return rc;
    }
    if (zmq_connect(s, endpoint) != 0) {
        int err = errno;
        if (mon) {
            zmq_socket_monitor(s, NULL, 0);
            zmq_close(mon);
        }
        zmq_close(s);
        return ohm_error_set(OHM_ENET, "connect %s: %s", endpoint, net_reason(err));
    }
    outbox_t *ob = calloc(1, sizeof *ob);
    if (!ob) {
        if (mon) {
            zmq_socket_monitor(s, NULL, 0);
            zmq_close(mon);
        }
        zmq_close(s);
        return ohm_error_set(OHM_ENOMEM, "peer %" PRIu32 ": outbox", id);
    }
    atomic_init(&ob->inflight, 0);
    t->links[t->n_links++] = (link_t){id, s, mon, 0, 0, ob};
    return OHM_OK;
}

/* Monitors socket s: ZeroMQ publishes its events on an inproc PAIR that *mon
 * reads. CONNECTED and DISCONNECTED only: the latter when an established
 * connection broke (the neighbour's process ended, or heartbeats or the
 * retransmission limit gave up on it); a neighbour not yet listening only
 * retries its connect, which is not a loss. */
static int watch_link(ohm_transport_t *t, void *s, uint32_t id, void **mon)
{
    char addr[96];
    snprintf(addr, sizeof addr, "inproc://ohm-link-%p-%" PRIu32, (void *)t, id);
    *mon = NULL;
    if (zmq_socket_monitor(s, addr, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0)
        return ohm_error_set(OHM_ENET, "peer %" PRIu32 ": monitor: %s", id, zmq_strerror(errno));
    void *m = zmq_socket(t->ctx, ZMQ_PAIR);
    if (!m || set_int(m, ZMQ_LINGER, 0) || zmq_connect(m, addr) != 0) {
        int err = errno;
        if (m) zmq_close(m);
        zmq_socket_monitor(s, NULL, 0);
        return ohm_error_set(OHM_ENET, "peer %" PRIu32 ": monitor: %s", id, zmq_strerror(err));
    }
    *mon = m;
    return OHM_OK;
}

/* Reads the events queued on link l's monitor: up on a connect, lost (and not
 * up) on a disconnect. Returns 1 if it was lost. */
static int read_events(link_t *l)
{
    int lost = 0;
    for (;;) {
        zmq_msg_t ev, where;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, l->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return lost;
        }
        /* first frame: 16-bit event id and 32-bit value; second: the endpoint */
        uint16_t what = 0;
        if (zmq_msg_size(&ev) >= sizeof what) memcpy(&what, zmq_msg_data(&ev), sizeof what);
        int more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        zmq_msg_init(&where);
        if (more) zmq_msg_recv(&where, l->mon, 0);
        zmq_msg_close(&where);
        if (what == ZMQ_EVENT_CONNECTED) l->up = 1;
        if (what == ZMQ_EVENT_DISCONNECTED) {
            lost = l->lost = 1;
            l->up = 0;
        }
    }
}

int ohm_transport_link_up(ohm_transport_t *t, uint32_t id)
{
    assert(t);
    link_t *l = find_link(t, id);
    return l && l->up;
}

int ohm_transport_lost(ohm_transport_t *t, uint32_t *id)
{
    assert(t && id);
    for (int i = 0; i < t->n_links; i++)
        if (t->links[i].lost) {
            t->links[i].lost = 0;
            *id = t->links[i].id;
            return 1;
        }
    return 0;
}

/* Sends without blocking. A socket learns that its pipe drained only when it
 * processes its command queue, which a non-blocking send does at most about
 * once a millisecond; with a small high-water mark a link that keeps up would
 * then look full. Asking for ZMQ_EVENTS processes the queue, so a refusal is
 * retried once with the pipe's true state. */
static int send_now(void *sock, zmq_msg_t *m)
{
    if (zmq_msg_send(m, sock, ZMQ_DONTWAIT) >= 0) return 0;
    if (errno != EAGAIN) return -1;
    int ev = 0;
    size_t sz = sizeof ev;
    if (zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &sz) != 0 || !(ev & ZMQ_POLLOUT)) return -1;
    return zmq_msg_send(m, sock, ZMQ_DONTWAIT) >= 0 ? 0 : -1;
}

static void free_release(void *buf, void *hint)
{
    (void)hint;
    free(buf);
}

int ohm_transport_send_all(ohm_transport_t *t, const uint32_t *ids, int n, void *buf, size_t len)
{
    return ohm_transport_send_all_with(t, ids, n, buf, len, free_release, NULL);
}

int ohm_transport_send_all_with(ohm_transport_t *t, const uint32_t *ids, int n, void *buf,
                                size_t len, ohm_transport_release_fn *release, void *hint)
{
    assert(t && (ids || n == 0) && release);
    zmq_msg_t shared;
    /* ZeroMQ reference-counts the content of copies of this message and calls
     * release once, when the last copy is closed or sent out. */
    if (zmq_msg_init_data(&shared, buf, len, release, hint) != 0) {
        release(buf, hint);
        t->send_dropped += (uint64_t)n;
        ohm_error_set(OHM_ENOMEM, "send: %s", zmq_strerror(errno));
        return n;
    }
    int refused = 0;
    for (int i = 0; i < n; i++) {
        link_t *l = find_link(t, ids[i]);
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (!l || zmq_msg_copy(&m, &shared) != 0 || send_now(l->sock, &m) < 0) {
            zmq_msg_close(&m);
            refused++;
            continue;
        }
        t->msgs_sent++;
        t->bytes_sent += len;
    }
    zmq_msg_close(&shared);
    t->send_dropped += (uint64_t)refused;
    return refused;
}

/* ---------------------------------------------------------- latest only */

static void unref(shared_t *sh)
{
    if (sh && atomic_fetch_sub(&sh->refs, 1) == 1) {
        sh->release(sh->buf, sh->hint);
        free(sh);
    }
}

/* What one link's message needs when ZeroMQ lets go of it. */
typedef struct {
    shared_t *sh;
    outbox_t *ob;
} hold_t;

/* Runs on a ZeroMQ I/O thread (or in destroy): the link may take the next. */
static void hold_release(void *buf, void *hint)
{
    (void)buf;
    hold_t *h = hint;
    atomic_fetch_sub(&h->ob->inflight, 1);
    unref(h->sh);
    free(h);
}

/* Hands sh to link l's socket; the link's reference to sh moves into the
 * message. Returns 0, or -1 (the reference is dropped) when refused. */
static int hand_over(ohm_transport_t *t, link_t *l, shared_t *sh)
{
    hold_t *h = malloc(sizeof *h);
    zmq_msg_t m;
    if (!h) {
        unref(sh);
        return -1;
    }
    *h = (hold_t){sh, l->ob};
    int n = atomic_fetch_add(&l->ob->inflight, 1) + 1;
    if (zmq_msg_init_data(&m, sh->buf, sh->len, hold_release, h) != 0) {
        hold_release(sh->buf, h);
        return -1;
    }
    if (send_now(l->sock, &m) < 0) {
        zmq_msg_close(&m); /* runs hold_release */
        return -1;
    }
    if (n > l->ob->peak_inflight) l->ob->peak_inflight = n;
    t->msgs_sent++;
    t->bytes_sent += sh->len;
    return 0;
}

/* Parks sh (a new reference) in link l's slot, replacing what waited there. */
static void park(link_t *l, shared_t *sh)
{
    if (l->ob->waiting) {
        unref(l->ob->waiting);
        l->ob->replaced++;
    }
    l->ob->waiting = sh;
    if (l->ob->peak_waiting < 1) l->ob->peak_waiting = 1;
}

int ohm_transport_send_latest(ohm_transport_t *t, const uint32_t *ids, int n, void *buf, size_t len,
                              ohm_transport_release_fn *release, void *hint)
{
    assert(t && (ids || n == 0) && release);
    shared_t *sh = malloc(sizeof *sh);
    if (!sh) {
        release(buf, hint);
        t->send_dropped += (uint64_t)n;
        return ohm_error_set(OHM_ENOMEM, "send: outbox");
    }
    *sh = (shared_t){.buf = buf, .len = len, .release = release, .hint = hint};
    atomic_init(&sh->refs, 1); /* ours, until every link has its own */
    int refused = 0;
    for (int i = 0; i < n; i++) {
        link_t *l = find_link(t, ids[i]);
        if (!l) {
            refused++;
            continue;
        }
        atomic_fetch_add(&sh->refs, 1);
        if (atomic_load(&l->ob->inflight) > 0) {
            park(l, sh); /* the link is still writing: this one waits, newest only */
        } else if (hand_over(t, l, sh) < 0) {
            atomic_fetch_add(&sh->refs, 1);
            park(l, sh); /* refused for now (high-water mark): try again on flush */
        }
    }
    unref(sh);
    t->send_dropped += (uint64_t)refused;
    return refused;
}

void ohm_transport_flush(ohm_transport_t *t)
{
    assert(t);
    for (int i = 0; i < t->n_links; i++) {
        link_t *l = &t->links[i];
        shared_t *sh = l->ob->waiting;
        if (!sh || atomic_load(&l->ob->inflight) > 0) continue;
        l->ob->waiting = NULL;
        atomic_fetch_add(&sh->refs, 1);
        if (hand_over(t, l, sh) < 0) {
            l->ob->waiting = sh; /* still refused: keep it waiting */
            continue;
        }
        unref(sh); /* the slot's reference */
    }
}

int ohm_transport_drain_outboxes(ohm_transport_t *t, int timeout_ms)
{
    assert(t);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
    for (int waited = 0;; waited++) {
        ohm_transport_flush(t);
        int left = 0;
        for (int i = 0; i < t->n_links; i++)
            left += t->links[i].ob->waiting != NULL || atomic_load(&t->links[i].ob->inflight) > 0;
        if (left == 0 || waited >= timeout_ms) return left;
        nanosleep(&ts, NULL);
    }
}

/* ---------------------------------------------------------------- recv */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t peer_of(ohm_transport_t *t, zmq_msg_t *m)
{
    if (!t->secure) return OHM_PEER_UNKNOWN;
    const char *u = zmq_msg_gets(m, "User-Id");
    if (!u || !*u) return OHM_PEER_UNKNOWN;
    char *end;
    errno = 0;
    unsigned long v = strtoul(u, &end, 10);
    if (*end || errno || v >= OHM_PEER_UNKNOWN) return OHM_PEER_UNKNOWN;
    return (uint32_t)v;
}

int ohm_transport_recv(ohm_transport_t *t, int timeout_ms, ohm_frame_t **out)
{
    assert(t && out);
    *out = NULL;
    int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    ohm_frame_t *f = malloc(sizeof *f);
    if (!f) return ohm_error_set(OHM_ENOMEM, "recv: frame");
    zmq_msg_init(&f->msg);
    zmq_pollitem_t fixed[2];
    for (int polled = 0;;) {
        int wait = timeout_ms;
        if (timeout_ms > 0) {
            int64_t left = deadline - now_ms();
            wait = left > 0 ? (int)left : 0;
        }
        /* The poll set: the receiving socket, its monitor, each link's monitor.
         * The first try skips the poll: a message already queued is taken
         * with one system call less (they often arrive back to back). */
        zmq_pollitem_t *it = t->n_links > 0 && t->watch ? t->items : fixed;
        int nit = 0;
        it[nit++] = (zmq_pollitem_t){.socket = t->pull, .events = ZMQ_POLLIN};
        it[nit++] =
            (zmq_pollitem_t){.socket = ohm_sessions_monitor(t->sessions), .events = ZMQ_POLLIN};
        if (it != fixed)
            for (int i = 0; i < t->n_links; i++)
                it[nit++] = (zmq_pollitem_t){.socket = t->links[i].mon, .events = ZMQ_POLLIN};
        const int did_poll = polled++;
        int rc = did_poll ? zmq_poll(it, nit, wait) : 1;
        int err = errno;
        if (did_poll && rc > 0) {
            if (it[1].revents & ZMQ_POLLIN) ohm_sessions_read(t->sessions);
            int lost = 0;
            for (int i = 2; i < nit; i++)
                if (it[i].revents & ZMQ_POLLIN) lost |= read_events(&t->links[i - 2]);
            if (lost) {
                zmq_msg_close(&f->msg);
                free(f);
                return OHM_OK; /* *out NULL: a link was lost */
            }
            if (!(it[0].revents & ZMQ_POLLIN)) {
                rc = 0; /* only monitor news: wait on, as a timeout would */
            }
        }
        if (rc < 0 || (rc > 0 && zmq_msg_recv(&f->msg, t->pull, ZMQ_DONTWAIT) < 0)) {
            err = rc < 0 ? err : errno;
            if (rc > 0 && err == EAGAIN) continue; /* nothing queued (yet): poll */
            zmq_msg_close(&f->msg);
            free(f);
            if (err == EINTR) return ohm_error_set(OHM_EINTR, "recv: interrupted");
            return ohm_error_set(OHM_ENET, "recv: %s", zmq_strerror(err));
        }
        if (rc == 0) {
            if (timeout_ms >= 0 && (timeout_ms == 0 || now_ms() >= deadline)) {
                zmq_msg_close(&f->msg);
                free(f);
                return OHM_ETIMEOUT;
            }
            continue;
        }
        if (zmq_msg_more(&f->msg)) {
            /* Peers send single frames; drain and drop anything else. */
            while (zmq_msg_more(&f->msg) && zmq_msg_recv(&f->msg, t->pull, 0) >= 0) {
            }
            t->drop_multipart++;
            continue;
        }
        if (zmq_msg_size(&f->msg) > t->max_msg_size) {
            t->drop_oversized++;
            continue;
        }
        f->peer = peer_of(t, &f->msg);
        /* One key, one session (ohm_sessions.h). */
        if (f->peer != OHM_PEER_UNKNOWN &&
            !ohm_sessions_admit(t->sessions, f->peer, zmq_msg_get(&f->msg, ZMQ_SRCFD))) {
            t->drop_session++;
            continue;
        }
        break;
    }
    t->msgs_recv++;
    t->bytes_recv += zmq_msg_size(&f->msg);
    *out = f;
    return OHM_OK;
}

const uint8_t *ohm_frame_data(const ohm_frame_t *f)
{
    assert(f);
    return zmq_msg_data((zmq_msg_t *)&f->msg);
}

size_t ohm_frame_size(const ohm_frame_t *f)
{
    assert(f);
    return zmq_msg_size(&f->msg);
}

uint32_t ohm_frame_peer(const ohm_frame_t *f)
{
    assert(f);
    return f->peer;
}

void ohm_frame_destroy(ohm_frame_t **fp)
{
    if (!fp || !*fp) return;
    zmq_msg_close(&(*fp)->msg);
    free(*fp);
    *fp = NULL;
}

void ohm_transport_stats(ohm_transport_t *t, ohm_transport_stats_t *s)
{
    assert(t && s);
    ohm_sessions_counts_t v;
    ohm_sessions_counts(t->sessions, &v);
    ohm_zap_counts_t z = {0};
    if (t->zap) ohm_zap_counts(t->zap, &z);
    *s = (ohm_transport_stats_t){.bytes_sent = t->bytes_sent,
                                 .bytes_recv = t->bytes_recv,
                                 .msgs_sent = t->msgs_sent,
                                 .msgs_recv = t->msgs_recv,
                                 .send_dropped = t->send_dropped,
                                 .zap_unknown_key = z.unknown_key,
                                 .zap_mechanism = z.mechanism,
                                 .zap_domain = z.domain,
                                 .zap_malformed = z.malformed,
                                 .drop_multipart = t->drop_multipart,
                                 .drop_oversized = t->drop_oversized,
                                 .drop_session = t->drop_session,
                                 .accepted = v.accepted,
                                 .handshake_ok = v.handshake_ok,
                                 .handshake_failed_protocol = v.failed_protocol,
                                 .handshake_failed_auth = v.failed_auth,
                                 .handshake_failed_other = v.failed_other,
                                 .disconnected = v.disconnected};
    s->auth_refused = z.unknown_key + z.mechanism + z.domain + z.malformed;
    for (int i = 0; i < t->n_links; i++) {
        const outbox_t *ob = t->links[i].ob;
        s->outbox_replaced += ob->replaced;
        if (ob->peak_inflight > s->outbox_peak_inflight)
            s->outbox_peak_inflight = ob->peak_inflight;
        if (ob->peak_waiting > s->outbox_peak_waiting) s->outbox_peak_waiting = ob->peak_waiting;
        s->outbox_waiting += ob->waiting != NULL;
    }
}
