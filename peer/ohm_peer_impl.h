/* ohm_peer_impl: the peer's state, shared by the files that make up the peer
 * (internal to peer/; nothing outside it includes this):
 *   ohm_peer.c      set-up and tear-down (topology, data, model, keys, sockets)
 *   ohm_round.c     the round loop: adapt, send, receive, combine, write back
 *   ohm_exchange.c  messages: send, receive with deadlines, barrier, catch-up
 *   ohm_records.c   metrics lines, snapshots, checkpoints and resume
 *   ohm_comm.c      public copies: censoring, compression, the neighbours' copies
 *   ohm_inbox.c     per-neighbour protocol state (its own unit, no peer state)
 *   ohm_copies.c    per-neighbour copies of public models (its own unit)
 *   ohm_settings.c  the configuration resolved into typed fields */
#ifndef OHM_PEER_IMPL_H
#define OHM_PEER_IMPL_H

#include "ohm_analog.h"
#include "ohm_byzantine.h"
#include "ohm_compress.h"
#include "ohm_copies.h"
#include "ohm_data.h"
#include "ohm_inbox.h"
#include "ohm_latest.h"
#include "ohm_metrics.h"
#include "ohm_model.h"
#include "ohm_optim.h"
#include "ohm_peer.h"
#include "ohm_robust.h"
#include "ohm_settings.h"
#include "ohm_topology.h"
#include "ohm_transport.h"
#include "ohm_wire.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define OHM_EVAL_CHUNK 1000
#define OHM_AGE_BINS 1024 /* the staleness histogram's last bin holds the older ones */

struct ohm_peer {
    const ohm_config_t *cfg;
    ohm_settings_t s;
    ohm_peer_opts_t o;
    ohm_topology_t *topo;
    const ohm_peer_info_t *self;
    int npeers;
    uint32_t id;
    char path_ckpt[4096], path_metrics[4096];
    /* learning */
    ohm_data_t *data;
    ohm_model_t *model;
    ohm_optim_t *opt; /* momentum / SAGA, or NULL for plain steps */
    ohm_analog_ctx_t actx;
    ohm_batchbuf_t *trainbuf, *evalbuf;
    ohm_sampler_t sampler;
    uint32_t *idx;
    int32_t *flipped; /* labelflip's label copy */
    size_t P;
    float *own, *psi, *out, *tmp;
    const float **rows;
    double *weights;
    ohm_rule_params_t rule;
    /* byzantine */
    ohm_byz_t *byz;
    /* network: neighbour i of the inbox is nb_ids[i] */
    ohm_transport_t *tr;
    ohm_inbox_t *inbox;
    int nn;
    uint32_t *nb_ids;
    double *nb_w;       /* a_self,j: the weight this peer gives to neighbour j's model */
    int *nb_byz;        /* per the topology (only Byzantine peers use it: they collude) */
    float **nb_vec;     /* where a neighbour's parameters are copied when unaligned */
    const float **view; /* this round's parameters per neighbour (NULL: none) */
    double *factor;     /* staleness factor of each view (1 in sync mode) */
    ohm_latest_t *latest; /* async mode: the newest model of each neighbour */
    ohm_wire_expect_t expect;
    uint64_t run_id, fp;
    /* public copies (ohm_comm.c; docs/protocol.md, section "Compressed gossip and censoring") */
    int comm_on;            /* censoring or compression: copies are exchanged */
    float *pub;             /* our public copy, as every neighbour holds it */
    int64_t pub_version;    /* the round it was last changed in; -1 before the first send */
    float *diff;            /* scratch: x - pub */
    ohm_compress_t *comp;   /* NULL without compression */
    ohm_copies_t *copies;   /* the neighbours' public copies, as we hold them */
    uint8_t *need_whole;    /* per neighbour: it asked for our public copy whole */
    int64_t *sync_asked;    /* per neighbour: the round we last asked it for its copy */
    ohm_copies_t *byz_held; /* a Byzantine sender: what each neighbour holds of it */
    uint8_t *byz_whole;     /* ... and which asked for it whole */
    uint64_t comm_rounds, comm_censored, comm_whole_sent, comm_syncs_sent, comm_syncs_recv;
    uint64_t comm_reused, comm_unsynced;
    int batch_max; /* the largest mini-batch of the run (optimizer.batch_growth) */
    /* progress */
    uint32_t round;
    double loss_sum;
    long loss_n;
    double t_start;
    double startup_deadline; /* until then, a neighbour heard at start-up is waited for */
    float *t_compute, *t_send, *t_wait, *t_combine, *t_round;
    ohm_metrics_t *metrics;
    uint64_t rule_discarded, rule_clipped, rule_fallbacks;
    uint64_t byz_rows, byz_dropped; /* Byzantine neighbours' models the rule saw / dropped */
    uint64_t skipped;       /* rounds jumped over by catching up */
    uint64_t links_lost;    /* connections to neighbours that dropped */
    uint64_t held;          /* rounds started late because a quorum of neighbours was behind */
    uint64_t timed_out;     /* rounds whose receive ended at the deadline */
    uint64_t send_failures; /* messages that could not be encoded or handed to the transport */
    double hold_s;
    int last_missing; /* neighbours without a valid model in the last round */
    ohm_tile_counters_t eval_reads; /* tile reads spent on evaluations (not training) */
    /* time split and asynchronous accounting */
    double wait_s, work_s, slow_s; /* receiving, computing + combining, straggler sleep */
    /* a straggler (docs/protocol.md, "Stragglers, late joiners, departures"):
     * the seconds of its basis clock its sleeps were proportional to, the
     * gradient steps' wall time, the basis clock at the end of the last sleep,
     * and the main thread's share of it since then in evaluations/checkpoints */
    double slow_basis_s, slow_compute_s, slow_mark, slow_skip;
    uint64_t combined;             /* neighbour models combined, all steps */
    uint64_t *age_hist;            /* async: ages (steps) of the combined models */
    int joined_from;               /* a late joiner: neighbours its start was combined from */
    int joining;                   /* collecting the first models (ohm_exchange_join) */
    float **join_vec;              /* ... neighbour i's first valid model */
    int *join_got;
    uint32_t *join_round; /* ... and its round */
    int left; /* left the run at train.leave_at */
};

/* Set by ohm_peer_request_stop (a signal handler). */
extern volatile sig_atomic_t ohm_peer_stop_requested;

/* Monotonic seconds. */
double ohm_peer_now(void);

/* ---- ohm_exchange.c ---- */

/* Encodes a message of `type` for `round` (params NULL for hello/bye) and sends
 * it to ids[n]. Errors: OHM_ENOMEM, encode errors; a link that refuses is counted
 * by the transport, not an error. */
int ohm_exchange_send(ohm_peer_t *p, uint32_t type, uint32_t round, const float *params,
                      const uint32_t *ids, int n);

/* Start-up barrier: hello to every neighbour, wait (bounded) until every one
 * was heard. OHM_EINTR on a stop request, transport errors as is. */
int ohm_exchange_barrier(ohm_peer_t *p);

/* Receives this round's models until every neighbour waited for delivered or
 * the deadline passed, then closes the round's accounting and sets p->view. */
int ohm_exchange_round(ohm_peer_t *p);

/* Jumps ahead when a quorum of neighbours proved later rounds
 * (docs/protocol.md, section "Control plane"). */
void ohm_exchange_catch_up(ohm_peer_t *p);
/* Before a round: receives without computing (at most half a round deadline)
 * while a neighbour is far behind, so that it can come near. */
int ohm_exchange_hold(ohm_peer_t *p);

/* Asynchronous mode, before the first step: sends the starting model (stamped
 * with the current round; step models carry round + 1) and waits, at most one
 * round deadline, for one model of every live neighbour, so that no peer runs
 * through its steps alone while its neighbours are still starting. */
int ohm_exchange_async_start(ohm_peer_t *p);

/* A late joiner (train.join): from the start-up barrier on, keeps the newest
 * valid model of each neighbour (ohm_exchange_join_begin); after the barrier
 * waits (bounded) for one of each and starts from their coordinate-wise
 * median (ohm_exchange_join). */
int ohm_exchange_join_begin(ohm_peer_t *p);
int ohm_exchange_join(ohm_peer_t *p);

/* Moves to round r, taking the models buffered for it. */
void ohm_exchange_advance(ohm_peer_t *p, uint32_t r);

/* Asynchronous mode: hands models waiting in the one-slot outboxes to links
 * that have finished writing (a no-op in synchronous mode). */
void ohm_exchange_flush(ohm_peer_t *p);

/* ohm_byz_send_fn for a Byzantine peer (ctx is the peer). */
int ohm_exchange_byz_send(void *ctx, uint32_t type, uint32_t round, const float *params,
                          uint32_t target);

/* ---- ohm_comm.c ---- */

/* Allocates the public-copy state when comm is on (p->P, p->nn set).
 * Errors: OHM_ENOMEM, OHM_EINVAL. */
int ohm_comm_init(ohm_peer_t *p);
/* Frees it (safe on a partly made peer). */
void ohm_comm_free(ohm_peer_t *p);

/* Sends this round's model x to every neighbour: the whole model, or (comm
 * on) "unchanged", a compressed difference, or the public copy whole to a
 * neighbour that asked for it. Errors as ohm_exchange_send. */
int ohm_comm_send(ohm_peer_t *p, uint32_t round, const float *x);

/* A Byzantine peer's model for `target`, stamped `round`: whole, or (comm on)
 * as a compressed difference to what target holds of it. */
int ohm_comm_byz_send(ohm_peer_t *p, uint32_t round, const float *x, uint32_t target);

/* Neighbour i asked for our public copy whole (a sync message). */
void ohm_comm_sync_request(ohm_peer_t *p, int i);

/* A valid model of neighbour i stamped before our round arrived: applied to
 * its copy when it is the next in its sequence (it is no longer filed). */
void ohm_comm_arrived_late(ohm_peer_t *p, int i, const ohm_wire_msg_t *m);

/* This round's view of neighbour i from its model message m (taken from the
 * inbox): the copy it updates, or NULL when the message cannot be used (out
 * of sync: then neighbour i is asked, at most every few rounds, for its copy
 * whole). */
const float *ohm_comm_take(ohm_peer_t *p, int i, const ohm_wire_msg_t *m);

/* The comm counters in a metrics line (final: all of them). */
void ohm_comm_metrics(const ohm_peer_t *p, ohm_metrics_t *m, int final);

/* ---- ohm_records.c ---- */

/* Writes the metrics line of round `done` (the final one when final != 0; `timed`
 * rounds have timings); a snapshot when configured. */
int ohm_records_metrics(ohm_peer_t *p, uint32_t done, int final, uint32_t timed);

/* Writes the checkpoint atomically. */
int ohm_records_checkpoint(ohm_peer_t *p);

/* Restores from the checkpoint when there is one (a missing one is logged and
 * the run starts at round 0). Errors name the file and section. */
int ohm_records_resume(ohm_peer_t *p);

#endif
