/* ohm_copies: the latest copy a peer holds of each neighbour's public model
 * (docs/protocol.md, section "Compressed gossip and censoring").
 *
 * One float buffer per neighbour and the version of what it holds (the round
 * in which the neighbour last changed its public copy). A message updates a
 * copy in one of three ways: taken as is (an f32 payload: the public copy
 * whole), updated by a difference (valid only on the version the difference
 * refers to), or kept ("unchanged": valid only while the copy is at most
 * max_staleness rounds old). A copy that cannot follow a message is out of
 * sync and is not used until the neighbour sends its public copy whole
 * again. Memory: 4 d + 16 bytes per neighbour, allocated at creation. Knows
 * no sockets and no clock; the round loop decides when messages are applied
 * (in the order each neighbour sent them). */
#ifndef OHM_COPIES_H
#define OHM_COPIES_H

#include "ohm_wire.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ohm_copies ohm_copies_t;

/* Copies of n neighbours' vectors of d floats, none held yet. Errors:
 * OHM_ENOMEM. Caller owns *out. */
int ohm_copies_new(int n, size_t d, ohm_copies_t **out);

/* NULL-safe; clears the caller's pointer. */
void ohm_copies_destroy(ohm_copies_t **c);

/* Neighbour i's copy (d floats), or NULL while it holds none in sync. */
const float *ohm_copies_get(const ohm_copies_t *c, int i);

/* The version of neighbour i's copy, or -1 when it holds none. */
int64_t ohm_copies_version(const ohm_copies_t *c, int i);

/* Rounds since the copy's version as of round r (-1 when none). */
int64_t ohm_copies_age(const ohm_copies_t *c, int i, uint32_t r);

/* Takes x[d] as neighbour i's copy of version v. */
void ohm_copies_take(ohm_copies_t *c, int i, uint32_t version, const float *x);

/* Applies model message m (decoded, values checked) of neighbour i:
 *   f32        taken as is, version m->base;
 *   difference added when the copy is of version m->base; version m->round;
 *   same       kept when the copy is of version m->base and
 *              m->round - m->base <= max_staleness.
 * Returns OHM_OK, or without using the message: OHM_ESTALE (no copy, or one of
 * another version: out of sync), OHM_ERANGE (same, but older than
 * max_staleness), OHM_ENONFINITE (the difference made the copy non-finite:
 * forgotten). */
int ohm_copies_apply(ohm_copies_t *c, int i, const ohm_wire_msg_t *m, uint32_t max_staleness);

/* Forgets neighbour i's copy: out of sync until it is sent whole. */
void ohm_copies_forget(ohm_copies_t *c, int i);

#endif
