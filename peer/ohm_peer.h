/* ohm_peer: one peer's synchronous round loop (docs/design.md, section "One round").
 *
 * This is the only place that knows about time, sockets and the order of the
 * steps: adapt (local analog or digital update), send, receive with a
 * deadline, robust combine, write back, record. A Byzantine peer runs the
 * same loop but crafts what it sends (ohm_byzantine.h). */
#ifndef OHM_PEER_H
#define OHM_PEER_H

#include "ohm_config.h"

#include <stdint.h>

typedef struct ohm_peer ohm_peer_t;

typedef struct {
    const char *topology; /* topology file */
    uint32_t id;          /* this peer's id */
    const char *out_dir;  /* metrics, checkpoint */
    int resume;           /* continue from out_dir/peer-<id>.ckpt */
} ohm_peer_opts_t;

/* Loads topology, data, model and keys, binds the receiving socket and connects
 * to the neighbours. Errors name their source (file:line, key file, endpoint).
 * `cfg` must outlive the peer. Caller owns *out. */
int ohm_peer_new(const ohm_peer_opts_t *o, const ohm_config_t *cfg, ohm_peer_t **out);

/* Runs the rounds to the end. Returns OHM_OK when finished, OHM_EINTR when a
 * stop was requested (after a final checkpoint), or an error. */
int ohm_peer_run(ohm_peer_t *p);

/* Asks a running peer to stop at the next opportunity (async-signal-safe). */
void ohm_peer_request_stop(void);

/* Frees; NULL-safe; clears the caller's pointer. */
void ohm_peer_destroy(ohm_peer_t **p);

#endif
