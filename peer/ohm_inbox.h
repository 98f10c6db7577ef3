/* ohm_inbox: what one peer knows about each of its in-neighbours, and what
 * the round loop may conclude from it (docs/protocol.md, section "Control plane").
 *
 * The round loop feeds every frame that survived decoding and attribution,
 * with its type, round and whether its parameters are finite; the inbox files
 * it (current round, a bounded window of future rounds, the newest model
 * beyond the window), counts what it drops, and answers three questions:
 * whom to wait for this round, whether to catch up (and to which round), and
 * whether to hold back because the neighbours are far behind.
 *
 * Trust rules (no single neighbour can end, stall or skip the run):
 *  - A neighbour's round position is the round of its latest frame (links
 *    keep their order, so an honest neighbour's latest frame is where it is).
 *  - Only a model frame that passed every check is evidence of a round.
 *  - Catching up needs evidence from a quorum of reachable neighbours,
 *    q = max(b + 1, floor(L/2) + 1), L = neighbours neither cut nor finished.
 *  - A neighbour far behind is held for, within a budget of time (see
 *    ohm_inbox_holds_for): the side that is ahead slows down rather than the
 *    other side skipping.
 *  - A neighbour that misses a deadline while waited for is down, with a
 *    strike; it is waited for again only once it delivers a valid model at
 *    most max(future, 1) rounds behind ours, and not before a probation of
 *    min(2^(strikes-1), OHM_INBOX_PROBATION_MAX) rounds has passed. A strike
 *    is forgiven after
 *    OHM_INBOX_FORGIVE rounds delivered in time.
 * Frames are opaque payloads here (the peer's ohm_frame_t); the inbox owns
 * each payload fed to it and releases it with the function given at creation. */
#ifndef OHM_INBOX_H
#define OHM_INBOX_H

#include <stddef.h>
#include <stdint.h>

#define OHM_INBOX_MAX_FUTURE 256
#define OHM_INBOX_PROBATION_MAX 256
#define OHM_INBOX_FORGIVE 64

/* Why a frame was dropped; counted per sender (or as unknown sender). */
typedef enum {
    OHM_DROP_TRUNCATED,
    OHM_DROP_MALFORMED,
    OHM_DROP_VERSION,
    OHM_DROP_OTHER_RUN,
    OHM_DROP_SHAPE,
    OHM_DROP_RANGE,
    OHM_DROP_TOO_BIG,
    OHM_DROP_NONFINITE,
    OHM_DROP_NOT_NEIGHBOUR,
    OHM_DROP_SPOOFED,
    OHM_DROP_STALE,
    OHM_DROP_DUPLICATE,
    OHM_DROP_FUTURE,
    OHM_DROP_STALE_COPY, /* "unchanged" of a copy older than comm.max_staleness */
    OHM_DROP_COUNT
} ohm_drop_t;

/* Stable name of a drop reason (used as a metrics key). */
const char *ohm_drop_name(ohm_drop_t r);

typedef struct ohm_inbox ohm_inbox_t;

typedef struct {
    uint32_t rounds;     /* run length: never catch up to it or past it */
    int future;          /* future rounds buffered per neighbour, 0..OHM_INBOX_MAX_FUTURE */
    int b;               /* Byzantine neighbours tolerated: the quorum is at least b + 1 */
    double hold_share;   /* hold time a neighbour may cost, per second (0: never hold) */
    double hold_burst_s; /* its budget at start, and the most it can save up */
    double hold_min_s;   /* a hold starts only on a budget at least this large */
    void (*release)(void *payload); /* frees a payload the inbox owns */
} ohm_inbox_opts_t;

/* One frame that passed decoding, run, shape and sender checks. */
typedef struct {
    uint32_t type;  /* OHM_MSG_HELLO, OHM_MSG_MODEL or OHM_MSG_BYE (ohm_wire.h) */
    uint32_t round; /* the round it is stamped with */
    int valid;      /* models: every value finite, and usable (anything else: ignored) */
    int too_stale;  /* models, valid == 0: an "unchanged" that refers to a copy older than
                       comm.max_staleness (dropped as stale_copy, not as nonfinite) */
} ohm_inbox_msg_t;

/* Per-neighbour accounting for the metrics. */
typedef struct {
    uint32_t id;
    int live;      /* waited for when in step */
    int strikes;   /* deadlines missed, minus the forgiven ones */
    int64_t pos;   /* round of its latest frame, -1 none */
    int64_t evid;  /* round of its latest valid model, -1 none */
    double held_s; /* time spent holding for it */
    uint64_t accepted, missed;
    uint64_t drops[OHM_DROP_COUNT];
} ohm_inbox_nbr_t;

/* An inbox for neighbours ids[n] at round 0, in its start-up barrier.
 * Errors: OHM_EINVAL (future out of range, no release), OHM_ENOMEM.
 * Caller owns *out. */
int ohm_inbox_new(const ohm_inbox_opts_t *o, const uint32_t *ids, int n, ohm_inbox_t **out);

/* Releases every payload it holds; NULL-safe; clears the caller's pointer. */
void ohm_inbox_destroy(ohm_inbox_t **ib);

/* Neighbour index of peer id, or -1 when it is not an in-neighbour. */
int ohm_inbox_index(const ohm_inbox_t *ib, uint32_t id);
int ohm_inbox_size(const ohm_inbox_t *ib);
uint32_t ohm_inbox_round(const ohm_inbox_t *ib);

/* Counts a drop against neighbour i (-1: sender unknown or not a neighbour). */
void ohm_inbox_drop(ohm_inbox_t *ib, int i, ohm_drop_t reason);

/* Files frame m of neighbour i and takes ownership of payload (NULL allowed:
 * then a model is never kept). Returns 1 when the neighbour should be answered
 * with a hello carrying our round (it announced itself behind us; at most once
 * per round per neighbour, never in the start-up barrier), else 0. */
int ohm_inbox_feed(ohm_inbox_t *ib, int i, const ohm_inbox_msg_t *m, void *payload);

/* The connection of our link to neighbour i dropped: not waited for, and its
 * frames do not make it live again, until ohm_inbox_link_up. Returns 1 when it
 * was live. */
int ohm_inbox_link_lost(ohm_inbox_t *ib, int i);
/* The link to neighbour i is connected again. */
void ohm_inbox_link_up(ohm_inbox_t *ib, int i);
int ohm_inbox_cut(const ohm_inbox_t *ib, int i);

/* Never wait or hold for neighbour i (a Byzantine peer's fellow attackers:
 * they send only once their own round is received, so waiting for each other
 * would cost both a deadline every round). Its frames are filed as usual. */
void ohm_inbox_ignore(ohm_inbox_t *ib, int i);

/* Neighbour i starts late (a planned joiner): the start-up barrier does not
 * wait for it, and it is waited for only once it delivers in step. */
void ohm_inbox_expect_late(ohm_inbox_t *ib, int i);

/* Neighbour i was heard from (a frame the inbox does not file: asynchronous
 * mode keeps models elsewhere). */
void ohm_inbox_mark_heard(ohm_inbox_t *ib, int i);

/* Start-up barrier: whether every neighbour has been heard. */
int ohm_inbox_all_heard(const ohm_inbox_t *ib);
/* Ends the barrier: neighbours never heard are down (not waited for until they
 * deliver in step). Their ids go to unheard[cap]; returns their number. */
int ohm_inbox_end_barrier(ohm_inbox_t *ib, uint32_t *unheard, int cap);

/* Moves to round r (>= the current one): forgets the finished round's
 * arrivals and takes the frames buffered for r. */
void ohm_inbox_advance(ohm_inbox_t *ib, uint32_t r);

/* Whether this round waits for neighbour i, and for how many in all. */
int ohm_inbox_waits_for(const ohm_inbox_t *ib, int i);
int ohm_inbox_waiting(const ohm_inbox_t *ib);

/* The round's deadline passed: those still waited for are late. Call once,
 * before draining what is already queued and closing the round. */
void ohm_inbox_deadline(ohm_inbox_t *ib);

/* Closes the round's accounting. Late neighbours that still have not
 * delivered go down with a strike; their ids go to down[cap]. Returns their
 * number. */
int ohm_inbox_close(ohm_inbox_t *ib, uint32_t *down, int cap);

/* The round to catch up to: the highest round that at least a quorum of
 * reachable neighbours proved with valid models, when it is two or more
 * rounds ahead and before the end of the run; else -1. */
int64_t ohm_inbox_catch_up(const ohm_inbox_t *ib);

/* Holding (docs/protocol.md, section "Control plane"): before its
 * next round the loop receives without computing while a neighbour is far
 * behind, so that it can come near. Without holds, a neighbour that fell
 * behind (after a partition, say) and cannot catch up (its other neighbours
 * are in step with it) would never be in step again. Each neighbour has a
 * budget of hold time: hold_burst_s at start, refilled at hold_share seconds
 * per second, so one neighbour can slow the peer by at most that share.
 * Neighbour i is held for when it is reachable, its latest valid model is
 * more than max(future, 1) rounds behind ours, and its budget covers a hold
 * (hold_min_s; during a hold, until it is spent).
 * `now` is monotonic seconds. */
int ohm_inbox_holds_for(const ohm_inbox_t *ib, int i, double now);
int ohm_inbox_holding(const ohm_inbox_t *ib, double now);

/* A hold runs from now: the neighbours held for are charged the time until
 * ohm_inbox_hold_end. Returns how many are held for. */
int ohm_inbox_hold_begin(ohm_inbox_t *ib, double now);
/* Ends the hold; ids of neighbours whose budget ran out for the first time go
 * to spent[cap]; returns their number. */
int ohm_inbox_hold_end(ohm_inbox_t *ib, double now, uint32_t *spent, int cap);

/* Neighbour i's accepted payload of the current round, or NULL. */
void *ohm_inbox_model(const ohm_inbox_t *ib, int i);

/* Neighbour i's accounting; drops of unknown senders by reason. */
void ohm_inbox_stats(const ohm_inbox_t *ib, int i, ohm_inbox_nbr_t *s);
uint64_t ohm_inbox_unknown_drops(const ohm_inbox_t *ib, ohm_drop_t reason);

/* Neighbours live (waited for when in step) now. */
int ohm_inbox_live(const ohm_inbox_t *ib);

/* The catch-up quorum for the current reachable neighbours (0 when
 * fewer neighbours are reachable than the quorum needs: then neither happens). */
int ohm_inbox_quorum(const ohm_inbox_t *ib);

#endif
