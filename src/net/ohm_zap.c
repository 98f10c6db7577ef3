/* ohm_zap: a ZAP handler thread admitting listed CURVE keys (ohm_zap.h). */
#include "ohm_zap.h"

#include "ohm_error.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_MAX_FRAMES 8

struct ohm_zap {
    void *sock; /* REP bound at ZAP_ENDPOINT; owned by the thread once it runs */
    pthread_t thread;
    int running;
    char domain[64];
    /* The admission list: immutable once the thread runs. */
    int n;
    uint8_t (*keys)[OHM_KEY_BYTES];
    uint32_t *ids;
    _Atomic uint64_t unknown_key, mechanism, domain_refused, malformed;
};

static int frame_is(zmq_msg_t *m, const char *s)
{
    size_t n = strlen(s);
    return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), s, n) == 0;
}

static int send_str(void *sock, const char *s, int more)
{
    return zmq_send(sock, s, strlen(s), more ? ZMQ_SNDMORE : 0);
}

/* Answers one ZAP request: version, request id, domain, address, identity,
 * mechanism, credentials (the client's public key for CURVE). n < 0: a request
 * of too many frames, -n of them kept. */
static void answer(ohm_zap_t *z, zmq_msg_t *part, int n)
{
    const char *status = "400", *text = "unknown key";
    char user[16] = "";
    _Atomic uint64_t *reason = &z->unknown_key;
    int malformed = n < 6;
    if (n < 0) n = -n;
    if (malformed || !frame_is(&part[0], "1.0")) {
        status = "500";
        text = "malformed ZAP request";
        reason = &z->malformed;
    } else if (!frame_is(&part[2], z->domain)) {
        text = "wrong domain";
        reason = &z->domain_refused;
    } else if (n != 7 || !frame_is(&part[5], "CURVE") || zmq_msg_size(&part[6]) != OHM_KEY_BYTES) {
        text = "CURVE required";
        reason = &z->mechanism;
    } else {
        const uint8_t *key = zmq_msg_data(&part[6]);
        for (int i = 0; i < z->n; i++)
            if (sodium_memcmp(key, z->keys[i], OHM_KEY_BYTES) == 0) {
                status = "200";
                text = "OK";
                snprintf(user, sizeof user, "%" PRIu32, z->ids[i]);
                break;
            }
    }
    if (status[0] != '2') atomic_fetch_add(reason, 1);
    /* Version, request id (echoed), status, text, user id, empty metadata. */
    send_str(z->sock, "1.0", 1);
    if (n >= 2)
        zmq_send(z->sock, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
    else
        send_str(z->sock, "", 1);
    send_str(z->sock, status, 1);
    send_str(z->sock, text, 1);
    send_str(z->sock, user, 1);
    send_str(z->sock, "", 0);
}

/* Serves ZAP requests until the context is shut down (ETERM). */
static void *serve(void *arg)
{
    ohm_zap_t *z = arg;
    for (;;) {
        zmq_msg_t part[ZAP_MAX_FRAMES];
        int n = 0, more = 1, term = 0, overflow = 0;
        while (more) {
            if (n == ZAP_MAX_FRAMES) {
                /* Not a request libzmq would send: keep the first frames for
                 * the reply's request id, discard the rest. */
                zmq_msg_t extra;
                zmq_msg_init(&extra);
                term = zmq_msg_recv(&extra, z->sock, 0) < 0 && errno != EINTR;
                more = !term && zmq_msg_more(&extra);
                zmq_msg_close(&extra);
                overflow = 1;
                if (term) break;
                continue;
            }
            zmq_msg_init(&part[n]);
            if (zmq_msg_recv(&part[n], z->sock, 0) < 0) {
                zmq_msg_close(&part[n]);
                if (errno == EINTR) continue;
                term = 1;
                break;
            }
            more = zmq_msg_more(&part[n]);
            n++;
        }
        if (!term) answer(z, part, overflow ? -n : n);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
        if (term) break;
    }
    zmq_close(z->sock);
    z->sock = NULL;
    return NULL;
}

int ohm_zap_new(void *ctx, const char *domain, int n, const uint8_t (*keys)[OHM_KEY_BYTES],
                const uint32_t *ids, ohm_zap_t **out)
{
    assert(ctx && domain && out);
    *out = NULL;
    if (n < 0 || (n > 0 && (!keys || !ids)) || strlen(domain) >= 64)
        return ohm_error_set(OHM_EINVAL, "ZAP handler: bad admission list or domain");
    ohm_zap_t *z = calloc(1, sizeof *z);
    if (!z) return ohm_error_set(OHM_ENOMEM, "ZAP handler");
    snprintf(z->domain, sizeof z->domain, "%s", domain);
    size_t m = n > 0 ? (size_t)n : 1;
    z->n = n;
    z->keys = calloc(m, OHM_KEY_BYTES);
    z->ids = calloc(m, sizeof *z->ids);
    if (!z->keys || !z->ids) {
        ohm_zap_destroy(&z);
        return ohm_error_set(OHM_ENOMEM, "ZAP handler: key list");
    }
    if (n > 0) {
        memcpy(z->keys, keys, (size_t)n * OHM_KEY_BYTES);
        memcpy(z->ids, ids, (size_t)n * sizeof *z->ids);
    }
    int linger = 0;
    z->sock = zmq_socket(ctx, ZMQ_REP);
    if (!z->sock || zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_bind(z->sock, ZAP_ENDPOINT)) {
        int err = errno;
        ohm_zap_destroy(&z);
        return ohm_error_set(OHM_ENET, "ZAP handler: %s", zmq_strerror(err));
    }
    if (pthread_create(&z->thread, NULL, serve, z) != 0) {
        ohm_zap_destroy(&z);
        return ohm_error_set(OHM_ENOMEM, "ZAP handler: cannot start its thread");
    }
    z->running = 1;
    *out = z;
    return OHM_OK;
}

void ohm_zap_destroy(ohm_zap_t **pz)
{
    if (!pz || !*pz) return;
    ohm_zap_t *z = *pz;
    if (z->running)
        pthread_join(z->thread, NULL); /* it closes its socket on ETERM */
    else if (z->sock)
        zmq_close(z->sock);
    free(z->keys);
    free(z->ids);
    free(z);
    *pz = NULL;
}

void ohm_zap_counts(ohm_zap_t *z, ohm_zap_counts_t *c)
{
    assert(z && c);
    *c = (ohm_zap_counts_t){.unknown_key = atomic_load(&z->unknown_key),
                            .mechanism = atomic_load(&z->mechanism),
                            .domain = atomic_load(&z->domain_refused),
                            .malformed = atomic_load(&z->malformed)};
}
