/* ohm_transport: one ZeroMQ context per transport, a PULL socket bound for
 * receiving and one PUSH socket per out-neighbour. In secure mode a ZAP
 * handler thread in the same context decides which CURVE clients the PULL
 * socket admits: libzmq admits every client that knows the server key when no
 * handler is bound, so the handler must be up before the PULL socket binds. */
#include "ohm_transport.h"

#include "ohm_error.h"

#include <assert.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_DOMAIN "ohmpeer"
/* CURVE wraps each message in a MESSAGE command (name, nonce, MAC, flags);
 * ZeroMQ's size limit sees that wrapper, so it gets this much headroom and
 * recv enforces the exact plaintext bound. */
#define CURVE_OVERHEAD 64
#define ZAP_MAX_FRAMES 8
/* Liveness of a link to a neighbour (see ohm_transport_add_peer). */
#define HEARTBEAT_IVL_MS 1000
#define HEARTBEAT_TIMEOUT_MS 3000
#define CONNECT_TIMEOUT_MS 1000
#define MAX_RETRANSMIT_MS 1000

typedef struct {
    uint32_t id;
    void *sock;
    void *mon; /* PAIR reading the socket's monitor (watch_links), else NULL */
    int up;    /* connected, as the monitor last said */
    int lost;  /* its connection dropped since ohm_transport_lost last said so */
} link_t;

struct ohm_transport {
    void *ctx;
    void *pull;
    int hwm;
    size_t max_msg_size;
    int secure;
    uint8_t *keys; /* sodium_malloc'd: public key, then secret key */
    /* ZAP admission list, read by the handler thread, immutable after new. */
    int n_allowed;
    uint8_t (*allowed)[OHM_KEY_BYTES];
    uint32_t *allowed_ids;
    void *zap;
    pthread_t zap_thread;
    int zap_running;
    link_t *links;
    int n_links, cap_links;
    int watch;             /* report lost links (ohm_transport_opts_t.watch_links) */
    zmq_pollitem_t *items; /* recv's poll set: pull, then each link's monitor */
    char endpoint[256];
    void *srv_mon; /* PAIR reading the receiving socket's monitor */
    int *owner_fd; /* per admitted key: the socket of its session, -1 none */
    uint8_t *open_fd; /* open_fd[s]: socket s is an open connection (monitor events) */
    int n_open_fd;
    uint64_t bytes_sent, bytes_recv, msgs_sent, msgs_recv, send_dropped;
    uint64_t drop_multipart, drop_oversized, drop_session;
    uint64_t accepted, hs_ok, hs_protocol, hs_auth, hs_other, disconnected;
    /* ZAP refusals by reason, written by the handler thread */
    _Atomic uint64_t zap_unknown_key, zap_mechanism, zap_domain, zap_malformed;
};

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

/* ---------------------------------------------------------------- ZAP */

static int frame_is(zmq_msg_t *m, const char *s)
{
    size_t n = strlen(s);
    return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), s, n) == 0;
}

static int send_str(void *sock, const char *s, int more)
{
    return zmq_send(sock, s, strlen(s), more ? ZMQ_SNDMORE : 0);
}

/* Answers one ZAP request (RFC 27): the mechanism must be CURVE and the
 * client's key one of the admitted ones, which maps it to a peer id. */
static void zap_answer(ohm_transport_t *t, zmq_msg_t *part, int n)
{
    const char *status = "400", *text = "unknown key";
    char user[16] = "";
    _Atomic uint64_t *reason = &t->zap_unknown_key;
    int malformed = n < 6; /* n < 0: too many frames, -n of them kept */
    if (n < 0) n = -n;
    /* Request frames: version, request id, domain, address, identity, mechanism,
     * credentials (the client's public key for CURVE). */
    if (malformed || !frame_is(&part[0], "1.0")) {
        status = "500";
        text = "malformed ZAP request";
        reason = &t->zap_malformed;
    } else if (!frame_is(&part[2], ZAP_DOMAIN)) {
        text = "wrong domain";
        reason = &t->zap_domain;
    } else if (n != 7 || !frame_is(&part[5], "CURVE") || zmq_msg_size(&part[6]) != OHM_KEY_BYTES) {
        text = "CURVE required";
        reason = &t->zap_mechanism;
    } else {
        const uint8_t *key = zmq_msg_data(&part[6]);
        for (int i = 0; i < t->n_allowed; i++)
            if (sodium_memcmp(key, t->allowed[i], OHM_KEY_BYTES) == 0) {
                status = "200";
                text = "OK";
                snprintf(user, sizeof user, "%" PRIu32, t->allowed_ids[i]);
                break;
            }
    }
    if (status[0] != '2') atomic_fetch_add(reason, 1);
    /* Version, request id (echoed), status, text, user id, empty metadata. */
    send_str(t->zap, "1.0", 1);
    if (n >= 2)
        zmq_send(t->zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
    else
        send_str(t->zap, "", 1);
    send_str(t->zap, status, 1);
    send_str(t->zap, text, 1);
    send_str(t->zap, user, 1);
    send_str(t->zap, "", 0);
}

/* Serves ZAP requests until the context is shut down (ETERM). */
static void *zap_main(void *arg)
{
    ohm_transport_t *t = arg;
    for (;;) {
        zmq_msg_t part[ZAP_MAX_FRAMES];
        int n = 0, more = 1, term = 0, overflow = 0;
        while (more) {
            if (n == ZAP_MAX_FRAMES) {
                /* Not a request libzmq would send: keep the first frames for
                 * the reply's request id, discard the rest. */
                zmq_msg_t extra;
                zmq_msg_init(&extra);
                term = zmq_msg_recv(&extra, t->zap, 0) < 0 && errno != EINTR;
                more = !term && zmq_msg_more(&extra);
                zmq_msg_close(&extra);
                overflow = 1;
                if (term) break;
                continue;
            }
            zmq_msg_init(&part[n]);
            if (zmq_msg_recv(&part[n], t->zap, 0) < 0) {
                zmq_msg_close(&part[n]);
                if (errno == EINTR) continue;
                term = 1;
                break;
            }
            more = zmq_msg_more(&part[n]);
            n++;
        }
        if (!term) zap_answer(t, part, overflow ? -n : n);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
        if (term) break;
    }
    zmq_close(t->zap);
    t->zap = NULL;
    return NULL;
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
    t->n_allowed = o->n_allowed;
    t->owner_fd = malloc(sizeof *t->owner_fd * (o->n_allowed > 0 ? (size_t)o->n_allowed : 1));
    if (!t->owner_fd) return ohm_error_set(OHM_ENOMEM, "transport: sessions");
    for (int i = 0; i < o->n_allowed; i++)
        t->owner_fd[i] = -1;
    size_t n = o->n_allowed > 0 ? (size_t)o->n_allowed : 1;
    t->allowed = calloc(n, OHM_KEY_BYTES);
    t->allowed_ids = calloc(n, sizeof *t->allowed_ids);
    if (!t->allowed || !t->allowed_ids) return ohm_error_set(OHM_ENOMEM, "transport: key list");
    if (o->n_allowed > 0) {
        memcpy(t->allowed, o->allowed_keys, (size_t)o->n_allowed * OHM_KEY_BYTES);
        memcpy(t->allowed_ids, o->allowed_ids, (size_t)o->n_allowed * sizeof *t->allowed_ids);
    }
    /* The handler binds before the PULL socket so no client is ever admitted
     * without it. */
    t->zap = zmq_socket(t->ctx, ZMQ_REP);
    if (!t->zap || set_int(t->zap, ZMQ_LINGER, 0) || zmq_bind(t->zap, ZAP_ENDPOINT))
        return ohm_error_set(OHM_ENET, "transport: ZAP handler: %s", zmq_strerror(errno));
    if (pthread_create(&t->zap_thread, NULL, zap_main, t) != 0)
        return ohm_error_set(OHM_ENOMEM, "transport: cannot start the ZAP thread");
    t->zap_running = 1;
    return OHM_OK;
}

static int bind_pull(ohm_transport_t *t, const ohm_transport_opts_t *o)
{
    t->pull = zmq_socket(t->ctx, ZMQ_PULL);
    if (!t->pull) return ohm_error_set(OHM_ENET, "transport: socket: %s", zmq_strerror(errno));
    int64_t maxsize = (int64_t)o->max_msg_size + (t->secure ? CURVE_OVERHEAD : 0);
    /* Heartbeats from this side end a session whose peer vanished (power loss,
     * partition) within seconds: its key's slot is then free for the peer's
     * new session (one key, one session). */
    int rc = set_int(t->pull, ZMQ_LINGER, 0) || set_int(t->pull, ZMQ_RCVHWM, t->hwm) ||
             zmq_setsockopt(t->pull, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize) ||
             set_int(t->pull, ZMQ_HEARTBEAT_IVL, HEARTBEAT_IVL_MS) ||
             set_int(t->pull, ZMQ_HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS) ||
             set_int(t->pull, ZMQ_TCP_MAXRT, MAX_RETRANSMIT_MS) ||
             (is_ipv6(o->bind) && set_int(t->pull, ZMQ_IPV6, 1));
    if (!rc && t->secure)
        rc = set_int(t->pull, ZMQ_CURVE_SERVER, 1) ||
             zmq_setsockopt(t->pull, ZMQ_CURVE_SECRETKEY, t->keys + OHM_KEY_BYTES, OHM_KEY_BYTES) ||
             zmq_setsockopt(t->pull, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN));
    if (rc) return ohm_error_set(OHM_ENET, "transport: socket options: %s", zmq_strerror(errno));
    /* Every visitor is counted, admitted or not: the monitor sees connections
     * and handshakes that never deliver a frame. */
    char addr[96];
    snprintf(addr, sizeof addr, "inproc://ohm-server-%p", (void *)t);
    if (zmq_socket_monitor(
            t->pull, addr,
            ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0 ||
        !(t->srv_mon = zmq_socket(t->ctx, ZMQ_PAIR)) || set_int(t->srv_mon, ZMQ_LINGER, 0) ||
        zmq_connect(t->srv_mon, addr) != 0)
        return ohm_error_set(OHM_ENET, "transport: monitor: %s", zmq_strerror(errno));
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
    atomic_init(&t->zap_unknown_key, 0);
    atomic_init(&t->zap_mechanism, 0);
    atomic_init(&t->zap_domain, 0);
    atomic_init(&t->zap_malformed, 0);
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
    if (t->pull) {
        if (t->srv_mon) zmq_socket_monitor(t->pull, NULL, 0);
        zmq_close(t->pull);
    }
    if (t->srv_mon) zmq_close(t->srv_mon);
    for (int i = 0; i < t->n_links; i++) {
        if (t->links[i].mon) {
            zmq_socket_monitor(t->links[i].sock, NULL, 0);
            zmq_close(t->links[i].mon);
        }
        zmq_close(t->links[i].sock);
    }
    if (t->ctx) {
        /* Wakes the ZAP thread's blocking recv with ETERM; it closes its
         * socket and returns, after which the context can end. */
        zmq_ctx_shutdown(t->ctx);
        if (t->zap_running)
            pthread_join(t->zap_thread, NULL);
        else if (t->zap)
            zmq_close(t->zap);
        while (zmq_ctx_term(t->ctx) != 0 && errno == EINTR) {
        }
    }
    if (t->keys) sodium_free(t->keys); /* wipes before freeing */
    free(t->allowed);
    free(t->allowed_ids);
    free(t->owner_fd);
    free(t->open_fd);
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
    t->links[t->n_links++] = (link_t){id, s, mon, 0, 0};
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

/* Frees the session slot held by socket fd: that connection ended, or the
 * number was reused by a new connection (so the old one ended). */
static void release_fd(ohm_transport_t *t, int fd)
{
    for (int i = 0; t->owner_fd && i < t->n_allowed; i++)
        if (t->owner_fd[i] == fd) t->owner_fd[i] = -1;
}

/* Records whether socket fd is an open connection (grows the table; an fd
 * the table cannot hold is simply never known as open). */
static void mark_fd(ohm_transport_t *t, int fd, int open)
{
    if (fd < 0 || fd >= 1 << 20) return;
    if (fd >= t->n_open_fd) {
        if (!open) return;
        int n = t->n_open_fd ? t->n_open_fd : 64;
        while (n <= fd)
            n *= 2;
        uint8_t *g = realloc(t->open_fd, (size_t)n);
        if (!g) return;
        memset(g + t->n_open_fd, 0, (size_t)(n - t->n_open_fd));
        t->open_fd = g;
        t->n_open_fd = n;
    }
    t->open_fd[fd] = (uint8_t)open;
}

static int fd_open(const ohm_transport_t *t, int fd)
{
    return fd >= 0 && fd < t->n_open_fd && t->open_fd[fd];
}

/* Reads the receiving socket's monitor: counts every visitor and frees the
 * session slots of connections that ended. */
static void read_server_events(ohm_transport_t *t)
{
    for (;;) {
        zmq_msg_t ev, where;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, t->srv_mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        /* first frame: 16-bit event id and 32-bit value (a socket for these
         * events); second: the endpoint */
        uint16_t what = 0;
        int32_t value = -1;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&what, zmq_msg_data(&ev), sizeof what);
            memcpy(&value, (const char *)zmq_msg_data(&ev) + 2, sizeof value);
        }
        int more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        zmq_msg_init(&where);
        if (more) zmq_msg_recv(&where, t->srv_mon, 0);
        zmq_msg_close(&where);
        switch (what) {
        case ZMQ_EVENT_ACCEPTED:
            t->accepted++;
            release_fd(t, value);
            mark_fd(t, value, 1);
            break;
        case ZMQ_EVENT_DISCONNECTED:
            t->disconnected++;
            release_fd(t, value);
            mark_fd(t, value, 0);
            break;
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            t->hs_ok++;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            t->hs_protocol++;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            t->hs_auth++;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            t->hs_other++;
            break;
        default:
            break;
        }
    }
}

/* One key, one session: the first session of a key that delivers a frame
 * holds the key until its connection ends; frames of any other session with
 * the same key meanwhile are refused (0). The last frames of a connection
 * that has already ended are still read after its end: they are delivered
 * (they were authenticated) but claim nothing, or a dead session would hold
 * the key for good. */
static int own_session(ohm_transport_t *t, zmq_msg_t *m, uint32_t peer)
{
    if (!t->owner_fd || peer == OHM_PEER_UNKNOWN) return 1;
    int a = -1;
    for (int i = 0; i < t->n_allowed && a < 0; i++)
        if (t->allowed_ids[i] == peer) a = i;
    int fd = zmq_msg_get(m, ZMQ_SRCFD);
    if (a < 0 || fd < 0) return 1;
    if (t->owner_fd[a] == fd) return 1;
    read_server_events(t); /* has the first session ended? is this one open? */
    if (!fd_open(t, fd)) return 1;
    if (t->owner_fd[a] >= 0) return 0;
    t->owner_fd[a] = fd;
    return 1;
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
        it[nit++] = (zmq_pollitem_t){.socket = t->srv_mon, .events = ZMQ_POLLIN};
        if (it != fixed)
            for (int i = 0; i < t->n_links; i++)
                it[nit++] = (zmq_pollitem_t){.socket = t->links[i].mon, .events = ZMQ_POLLIN};
        const int did_poll = polled++;
        int rc = did_poll ? zmq_poll(it, nit, wait) : 1;
        int err = errno;
        if (did_poll && rc > 0) {
            if (it[1].revents & ZMQ_POLLIN) read_server_events(t);
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
        if (!own_session(t, &f->msg, f->peer)) {
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
    /* The monitor's news since the last receive (a refused visitor sends no frame). */
    read_server_events(t);
    *s = (ohm_transport_stats_t){.bytes_sent = t->bytes_sent,
                                 .bytes_recv = t->bytes_recv,
                                 .msgs_sent = t->msgs_sent,
                                 .msgs_recv = t->msgs_recv,
                                 .send_dropped = t->send_dropped,
                                 .zap_unknown_key = atomic_load(&t->zap_unknown_key),
                                 .zap_mechanism = atomic_load(&t->zap_mechanism),
                                 .zap_domain = atomic_load(&t->zap_domain),
                                 .zap_malformed = atomic_load(&t->zap_malformed),
                                 .drop_multipart = t->drop_multipart,
                                 .drop_oversized = t->drop_oversized,
                                 .drop_session = t->drop_session,
                                 .accepted = t->accepted,
                                 .handshake_ok = t->hs_ok,
                                 .handshake_failed_protocol = t->hs_protocol,
                                 .handshake_failed_auth = t->hs_auth,
                                 .handshake_failed_other = t->hs_other,
                                 .disconnected = t->disconnected};
    s->auth_refused = s->zap_unknown_key + s->zap_mechanism + s->zap_domain + s->zap_malformed;
}
