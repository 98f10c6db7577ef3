/* ohm_sessions: visitors and key sessions of a receiving socket (ohm_sessions.h). */
#include "ohm_sessions.h"

#include "ohm_error.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct ohm_sessions {
    void *socket; /* the monitored socket (not owned) */
    void *mon;    /* PAIR reading its monitor */
    int n;        /* admitted keys */
    uint32_t *ids;
    int *owner;       /* per key: the socket (fd) of the session holding it, -1 none */
    uint8_t *open_fd; /* open_fd[s]: socket s is an open connection */
    int n_open;
    ohm_sessions_counts_t c;
};

int ohm_sessions_new(void *ctx, void *socket, int n, const uint32_t *ids, ohm_sessions_t **out)
{
    assert(ctx && socket && out && n >= 0 && (ids || n == 0));
    *out = NULL;
    ohm_sessions_t *s = calloc(1, sizeof *s);
    if (!s) return ohm_error_set(OHM_ENOMEM, "sessions");
    s->socket = socket;
    s->n = n;
    s->ids = calloc((size_t)n + 1, sizeof *s->ids);
    s->owner = calloc((size_t)n + 1, sizeof *s->owner);
    if (!s->ids || !s->owner) {
        ohm_sessions_destroy(&s);
        return ohm_error_set(OHM_ENOMEM, "sessions: %d keys", n);
    }
    for (int i = 0; i < n; i++) {
        s->ids[i] = ids[i];
        s->owner[i] = -1;
    }
    char addr[96];
    snprintf(addr, sizeof addr, "inproc://ohm-sessions-%p", (void *)s);
    int linger = 0;
    if (zmq_socket_monitor(
            socket, addr,
            ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0) {
        int err = errno;
        free(s->ids);
        free(s->owner);
        free(s);
        return ohm_error_set(OHM_ENET, "monitor: %s", zmq_strerror(err));
    }
    s->mon = zmq_socket(ctx, ZMQ_PAIR);
    if (!s->mon || zmq_setsockopt(s->mon, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_connect(s->mon, addr) != 0) {
        int err = errno;
        ohm_sessions_destroy(&s);
        return ohm_error_set(OHM_ENET, "monitor: %s", zmq_strerror(err));
    }
    *out = s;
    return OHM_OK;
}

void ohm_sessions_destroy(ohm_sessions_t **ps)
{
    if (!ps || !*ps) return;
    ohm_sessions_t *s = *ps;
    zmq_socket_monitor(s->socket, NULL, 0);
    if (s->mon) zmq_close(s->mon);
    free(s->ids);
    free(s->owner);
    free(s->open_fd);
    free(s);
    *ps = NULL;
}

void *ohm_sessions_monitor(const ohm_sessions_t *s)
{
    assert(s);
    return s->mon;
}

/* Frees the key held by socket fd: that connection ended, or the number was
 * reused by a new connection (so the old one ended). */
static void release(ohm_sessions_t *s, int fd)
{
    for (int i = 0; i < s->n; i++)
        if (s->owner[i] == fd) s->owner[i] = -1;
}

/* Records whether socket fd is an open connection (grows the table; an fd the
 * table cannot hold is never known as open, so it never holds a key). */
static void mark(ohm_sessions_t *s, int fd, int open)
{
    if (fd < 0 || fd >= 1 << 20) return;
    if (fd >= s->n_open) {
        if (!open) return;
        int n = s->n_open ? s->n_open : 64;
        while (n <= fd)
            n *= 2;
        uint8_t *g = realloc(s->open_fd, (size_t)n);
        if (!g) return;
        memset(g + s->n_open, 0, (size_t)(n - s->n_open));
        s->open_fd = g;
        s->n_open = n;
    }
    s->open_fd[fd] = (uint8_t)open;
}

static int is_open(const ohm_sessions_t *s, int fd)
{
    return fd >= 0 && fd < s->n_open && s->open_fd[fd];
}

void ohm_sessions_read(ohm_sessions_t *s)
{
    for (;;) {
        zmq_msg_t ev, where;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, s->mon, ZMQ_DONTWAIT) < 0) {
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
        if (more) zmq_msg_recv(&where, s->mon, 0);
        zmq_msg_close(&where);
        switch (what) {
        case ZMQ_EVENT_ACCEPTED:
            s->c.accepted++;
            release(s, value);
            mark(s, value, 1);
            break;
        case ZMQ_EVENT_DISCONNECTED:
            s->c.disconnected++;
            release(s, value);
            mark(s, value, 0);
            break;
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            s->c.handshake_ok++;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            s->c.failed_protocol++;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            s->c.failed_auth++;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            s->c.failed_other++;
            break;
        default:
            break;
        }
    }
}

int ohm_sessions_admit(ohm_sessions_t *s, uint32_t peer, int fd)
{
    assert(s);
    int a = -1;
    for (int i = 0; i < s->n && a < 0; i++)
        if (s->ids[i] == peer) a = i;
    if (a < 0 || fd < 0) return 1; /* no key, or sessions cannot be told apart */
    if (s->owner[a] == fd) return 1;
    ohm_sessions_read(s); /* has the first session ended? is this one open? */
    if (!is_open(s, fd)) return 1;
    if (s->owner[a] >= 0) return 0;
    s->owner[a] = fd;
    return 1;
}

void ohm_sessions_counts(ohm_sessions_t *s, ohm_sessions_counts_t *c)
{
    assert(s && c);
    ohm_sessions_read(s);
    *c = s->c;
}
