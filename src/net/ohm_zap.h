/* ohm_zap: the ZAP handler (ZeroMQ RFC 27) that decides which CURVE clients a
 * transport's receiving socket admits (docs/security.md, section "What is
 * protected"). libzmq admits every client that knows the server key when no
 * handler is bound, so the handler must run before the socket binds. It
 * answers only requests of its domain and the CURVE mechanism, admits the
 * listed public keys and maps each to a peer id (the frames' User-Id), and
 * counts its refusals by reason. One thread, in the transport's context. */
#ifndef OHM_ZAP_H
#define OHM_ZAP_H

#include "ohm_keys.h"

#include <stdint.h>

typedef struct ohm_zap ohm_zap_t;

/* Refusals by reason. */
typedef struct {
    uint64_t unknown_key, mechanism, domain, malformed;
} ohm_zap_counts_t;

/* Binds the handler in ZeroMQ context ctx and starts its thread; the n keys
 * and their ids are copied. Errors: OHM_ENET, OHM_ENOMEM, OHM_EINVAL. Caller
 * owns *out and destroys it after shutting the context down. */
int ohm_zap_new(void *ctx, const char *domain, int n, const uint8_t (*keys)[OHM_KEY_BYTES],
                const uint32_t *ids, ohm_zap_t **out);

/* Joins the thread (whose receive returns once the context was shut down with
 * zmq_ctx_shutdown) and frees; NULL-safe; clears the caller's pointer. */
void ohm_zap_destroy(ohm_zap_t **z);

/* The refusals so far (safe while the thread runs). */
void ohm_zap_counts(ohm_zap_t *z, ohm_zap_counts_t *c);

#endif
