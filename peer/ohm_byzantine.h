/* ohm_byzantine: what a Byzantine peer sends (docs/robust.md, section "Attacks").
 *
 * A Byzantine peer receives its neighbours' messages like any peer and, each
 * round, crafts one vector per target neighbour from what it observed (the
 * honest neighbours' models of this round) and the public combination weights.
 * The crafting maths lives in robust/ohm_attack.h; this module adapts the
 * peer's view (topology, received models) to it. With view=target the honest
 * vectors are the received ones that are the target's neighbours, weighted as
 * the target weighs them; the peer logs at the end how often some of the
 * target's honest neighbours were not among them (the view is exact only when
 * none is missing). A Byzantine peer never trains unless its attack does
 * (labelflip), so it needs no data of its own. */
#ifndef OHM_BYZANTINE_H
#define OHM_BYZANTINE_H

#include "ohm_config.h"
#include "ohm_data.h"
#include "ohm_topology.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ohm_byz ohm_byz_t;

/* Parses the attack spec ("name[:k=v,...]"). Errors: OHM_EINVAL with a detail
 * naming the attack or key. Caller owns *out. */
int ohm_byz_new(const char *spec, uint64_t seed, uint32_t self, ohm_byz_t **out);

/* Frees; NULL-safe; clears the caller's pointer. */
void ohm_byz_destroy(ohm_byz_t **b);

/* Attack name (static storage). */
const char *ohm_byz_name(const ohm_byz_t *b);

/* 0 for attacks that send nothing (crash). */
int ohm_byz_sends(const ohm_byz_t *b);

/* 1 for training-side attacks (labelflip): the peer trains and combines like an
 * honest one, on labels mapped y -> C-1-y, and sends its own model. */
int ohm_byz_trains(const ohm_byz_t *b);

/* Crafts the vector for `target` in round `round`: `recv[n]` are the models this
 * peer received this round from neighbours `recv_ids[n]` (Byzantine senders are
 * excluded by the caller's view of the topology). out[d]. Errors: OHM_EINVAL. */
int ohm_byz_craft(ohm_byz_t *b, const ohm_topology_t *t, uint32_t target, uint32_t round,
                  const float *const *recv, const uint32_t *recv_ids, int n, size_t d, float *out);

/* How the peer sends for the attacker: one message of `type` stamped `round`
 * (params NULL for a hello) to `target`. Returns 0 or an error code. */
typedef int ohm_byz_send_fn(void *ctx, uint32_t type, uint32_t round, const float *params,
                            uint32_t target);

/* One round of the attack against targets[nt]: crafts each target's vector and
 * sends it as the attack's plan says (ohm_attack_plan: stamps, silence,
 * bursts, replays, hello floods) through send(ctx, ...). `rounds` is the run
 * length. Errors: OHM_ENOMEM, OHM_EINVAL, or the first error of send. */
int ohm_byz_act(ohm_byz_t *b, const ohm_topology_t *t, uint32_t round, uint32_t rounds,
                const float *const *recv, const uint32_t *recv_ids, int n, size_t d,
                const uint32_t *targets, int nt, ohm_byz_send_fn *send, void *ctx);

/* Opens peer `self`'s data (ohm_data_open_roles) with the Byzantine roles the
 * topology declares, so data.partition = label-honest gives Byzantine peers no
 * training examples. `b` is the peer's attack (NULL for an honest peer). A
 * peer left without data that would have to train (no attack, or labelflip)
 * is OHM_EINVAL naming it. Caller owns *out. */
int ohm_byz_data_open(const ohm_config_t *cfg, const ohm_topology_t *t, uint32_t self,
                      const ohm_byz_t *b, ohm_data_t **out);

#endif
