/* ohm_latest: the newest model of each in-neighbour, for asynchronous gossip
 * (docs/protocol.md, section "Asynchronous mode").
 *
 * A peer in train.mode = async never waits: each step it combines its own
 * model with the newest model it holds from each neighbour. A model is kept
 * only if it passed every check and carries a higher step stamp than the one
 * it replaces (links keep their order, so an honest neighbour's stamps only
 * grow: a replay of an older model is dropped as stale). Its age is counted in
 * this peer's own steps and seconds since it arrived; a model older than
 * max_steps (or max_s) is not combined. Its weight in the combination is
 * scaled by the staleness factor s(tau) = (1 + tau)^(-a) (poly:a), tau its age
 * in steps, or 1 (none). Bookkeeping only: payloads are opaque (the peer's
 * frames) and released with the function given at creation. */
#ifndef OHM_LATEST_H
#define OHM_LATEST_H

#include <stddef.h>
#include <stdint.h>

typedef struct ohm_latest ohm_latest_t;

typedef struct {
    uint64_t max_steps; /* 0: no bound in steps */
    double max_s;       /* 0: no bound in seconds */
    double poly_a;      /* staleness weight exponent; 0: none (factor 1) */
    void (*release)(void *payload);
} ohm_latest_opts_t;

/* What became of a fed model. */
enum { OHM_LATEST_KEPT = 0, OHM_LATEST_STALE = 1, OHM_LATEST_NONFINITE = 2 };

/* For n neighbours. Errors: OHM_EINVAL, OHM_ENOMEM. Caller owns *out. */
int ohm_latest_new(const ohm_latest_opts_t *o, int n, ohm_latest_t **out);
void ohm_latest_destroy(ohm_latest_t **l);

/* Neighbour i's model stamped `stamp` arrived at this peer's step `step` and
 * monotonic time `now`; takes ownership of payload. Returns OHM_LATEST_KEPT
 * (it replaces the one held), OHM_LATEST_STALE (not newer than the one held:
 * released) or OHM_LATEST_NONFINITE (failed its checks: released). */
int ohm_latest_feed(ohm_latest_t *l, int i, uint32_t stamp, int valid, void *payload, uint64_t step,
                    double now);

/* Neighbour i left (bye) or its link was lost: its model is no longer combined. */
void ohm_latest_forget(ohm_latest_t *l, int i);

/* Neighbour i (re)started (hello): its earlier stamps are history. */
void ohm_latest_reset(ohm_latest_t *l, int i);

/* Models of neighbour i kept so far. */
uint64_t ohm_latest_kept(const ohm_latest_t *l, int i);

/* Neighbour i's model if it may be combined at (step, now), else NULL; its
 * age in steps in *age (may be NULL). */
void *ohm_latest_get(const ohm_latest_t *l, int i, uint64_t step, double now, uint64_t *age);

/* The staleness factor of a model `age` steps old. */
double ohm_latest_factor(const ohm_latest_t *l, uint64_t age);

/* Neighbour i's newest stamp, or -1 when nothing was kept. */
int64_t ohm_latest_stamp(const ohm_latest_t *l, int i);

#endif
