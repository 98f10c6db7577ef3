/* ohm_byzantine: adapts a Byzantine peer's view of a round to robust/ohm_attack. */
#include "ohm_byzantine.h"

#include "ohm_attack.h"
#include "ohm_error.h"
#include "ohm_rng.h"
#include "ohm_wire.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ohm_byz {
    ohm_attack_params_t a;
    uint32_t self;
    const float **honest; /* scratch: the view's honest vectors */
    double *hw;           /* scratch: the target's weights of them (view=target) */
    int cap;
    /* view=target: how often the target's honest neighbourhood was only partly observed */
    uint64_t crafted, partial, unseen;
    size_t d;
    float *out;     /* the vector crafted for the current target */
    float *history; /* stale: the honest view's base vector of the last lag+1 rounds */
    uint32_t *history_round;
};

int ohm_byz_new(const char *spec, uint64_t seed, uint32_t self, ohm_byz_t **out)
{
    *out = NULL;
    ohm_byz_t *b = calloc(1, sizeof *b);
    if (!b)
        return ohm_error_set(OHM_ENOMEM, "byzantine");
    char err[256] = "";
    if (ohm_attack_parse(spec, &b->a, err, sizeof err) != OHM_ATTACK_OK) {
        free(b);
        return ohm_error_set(OHM_EINVAL, "attack '%s': %s", spec, err);
    }
    /* Unless the spec fixed it, the noise seed follows the run seed and the peer, so
     * two Byzantine peers of one run never draw the same noise. */
    if (!strstr(spec, "seed="))
        b->a.seed = ohm_hash64(&self, sizeof self, seed);
    b->self = self;
    *out = b;
    return OHM_OK;
}

void ohm_byz_destroy(ohm_byz_t **pb)
{
    if (!pb || !*pb)
        return;
    ohm_byz_t *b = *pb;
    /* The target view is exact only where this peer observed all of the
     * target's honest neighbours: say how often it was not. */
    if (b->a.view == OHM_ATTACK_VIEW_TARGET && b->crafted)
        fprintf(stderr,
                "ohmpeer %u: attack %s:view=target crafted %" PRIu64 " vectors, %" PRIu64
                " of them without some of the target's honest neighbours (%" PRIu64
                " models not observed)\n",
                b->self, ohm_attack_name(b->a.kind), b->crafted, b->partial, b->unseen);
    free(b->hw);
    free((*pb)->honest);
    free((*pb)->out);
    free((*pb)->history);
    free((*pb)->history_round);
    free(*pb);
    *pb = NULL;
}

const char *ohm_byz_name(const ohm_byz_t *b)
{
    return ohm_attack_name(b->a.kind);
}

int ohm_byz_sends(const ohm_byz_t *b)
{
    return ohm_attack_sends(&b->a);
}

int ohm_byz_trains(const ohm_byz_t *b)
{
    return ohm_attack_flips_labels(&b->a);
}

static int adjacent(const uint32_t *nb, int k, uint32_t id)
{
    for (int i = 0; i < k; i++)
        if (nb[i] == id) return 1;
    return 0;
}

int ohm_byz_craft(ohm_byz_t *b, const ohm_topology_t *t, uint32_t target, uint32_t round,
                  const float *const *recv, const uint32_t *recv_ids, int n, size_t d, float *out)
{
    if (n + 1 > b->cap) {
        const float **h = realloc(b->honest, sizeof *h * (size_t)(n + 1));
        if (h) b->honest = h;
        double *w = realloc(b->hw, sizeof *w * (size_t)(n + 1));
        if (w) b->hw = w;
        if (!h || !w)
            return ohm_error_set(OHM_ENOMEM, "byzantine view");
        b->cap = n + 1;
    }
    const uint32_t *nb;
    int k = ohm_topology_neighbors(t, target, &nb);
    const int tv = b->a.view == OHM_ATTACK_VIEW_TARGET;
    /* The view: the target's own vector, and the honest vectors other than it:
     * all of them (view=self), or only the target's honest neighbours with the
     * weights the target gives them (view=target). */
    ohm_attack_view_t v = {.honest = b->honest, .round = round, .target_id = target};
    for (int i = 0; i < n; i++) {
        if (recv_ids[i] == target) {
            v.target = recv[i];
        } else if (!tv) {
            b->honest[v.n_honest++] = recv[i];
        } else if (adjacent(nb, k, recv_ids[i])) {
            b->hw[v.n_honest] = ohm_topology_weight(t, target, recv_ids[i]);
            b->honest[v.n_honest++] = recv[i];
        }
    }
    if (tv) v.honest_w = b->hw;
    /* The target's weights are public (the topology file); colluding Byzantine
     * peers know each other. ALIE's n and f are the target's neighbourhood with
     * itself and its Byzantine neighbours. */
    int honest_nb = 0;
    v.a_tt = ohm_topology_weight(t, target, target);
    for (int i = 0; i < k; i++) {
        double w = ohm_topology_weight(t, target, nb[i]);
        if (ohm_topology_peer(t, nb[i])->byzantine) {
            v.wb += w;
            v.f++;
        } else {
            v.h += w;
            honest_nb++;
        }
    }
    v.n = k + 1;
    if (tv) {
        b->crafted++;
        if (v.n_honest < honest_nb) {
            b->partial++;
            b->unseen += (uint64_t)(honest_nb - v.n_honest);
        }
    }
    if (ohm_attack_craft(&b->a, &v, d, out) != OHM_ATTACK_OK)
        return ohm_error_set(OHM_EINVAL, "attack %s could not craft for peer %u",
                             ohm_attack_name(b->a.kind), target);
    return OHM_OK;
}

/* Scratch for vectors of d floats (and the stale attack's history). */
static int ensure_scratch(ohm_byz_t *b, size_t d)
{
    if (b->out && b->d == d) return OHM_OK;
    free(b->out);
    free(b->history);
    free(b->history_round);
    b->history = NULL;
    b->history_round = NULL;
    b->d = d;
    b->out = malloc(sizeof(float) * (d ? d : 1));
    if (!b->out) return ohm_error_set(OHM_ENOMEM, "byzantine: %zu floats", d);
    if (b->a.kind == OHM_ATTACK_STALE) {
        size_t slots = (size_t)b->a.lag + 1;
        b->history = malloc(sizeof(float) * (d ? d : 1) * slots);
        b->history_round = malloc(sizeof *b->history_round * slots);
        if (!b->history || !b->history_round)
            return ohm_error_set(OHM_ENOMEM, "byzantine: stale history of %zu rounds", slots);
        memset(b->history_round, 0xff, sizeof *b->history_round * slots); /* none yet */
    }
    return OHM_OK;
}

int ohm_byz_act(ohm_byz_t *b, const ohm_topology_t *t, uint32_t round, uint32_t rounds,
                const float *const *recv, const uint32_t *recv_ids, int n, size_t d,
                const uint32_t *targets, int nt, ohm_byz_send_fn *send, void *ctx)
{
    ohm_attack_plan_t plan;
    ohm_attack_plan(&b->a, round, rounds, &plan);
    int rc = ensure_scratch(b, d);
    if (rc) return rc;
    const float *replay = NULL;
    if (b->history) {
        /* Remember this round's honest-looking vector; replay the one of lag rounds ago. */
        size_t slots = (size_t)b->a.lag + 1, s = round % slots;
        float *slot = b->history + s * d;
        ohm_attack_view_t v = {.honest = recv, .n_honest = n, .round = round, .target_id = b->self};
        if (ohm_attack_craft(&b->a, &v, d, slot) != OHM_ATTACK_OK)
            return ohm_error_set(OHM_EINVAL, "attack stale: cannot craft");
        b->history_round[s] = round;
        size_t rs = plan.replay_round % slots;
        if (plan.replay && b->history_round[rs] == plan.replay_round) replay = b->history + rs * d;
        if (plan.replay && !replay) plan.models = 0; /* nothing of that round to replay */
    }
    /* Models first, then the hellos: a flood must not push the attacker's own
     * model out of its send queue (it would only be a silent peer then). */
    for (int i = 0; i < nt && rc == OHM_OK; i++) {
        const float *vec = replay;
        if (plan.models > 0 && !vec) {
            if ((rc = ohm_byz_craft(b, t, targets[i], round, recv, recv_ids, n, d, b->out))) break;
            vec = b->out;
        }
        for (int k = 0; k < plan.models && rc == OHM_OK; k++) {
            uint32_t stamp = plan.stamp + (uint32_t)k;
            if (stamp < plan.stamp) break; /* would wrap past the largest round */
            rc = send(ctx, OHM_MSG_MODEL, stamp, vec, targets[i]);
        }
        for (int h = 0; h < plan.hellos && rc == OHM_OK; h++)
            rc =
                send(ctx, OHM_MSG_HELLO, ohm_attack_hello_stamp(&b->a, round, h), NULL, targets[i]);
    }
    return rc;
}

int ohm_byz_data_open(const ohm_config_t *cfg, const ohm_topology_t *t, uint32_t self,
                      const ohm_byz_t *b, ohm_data_t **out)
{
    *out = NULL;
    int n = ohm_topology_size(t);
    unsigned char *byz = calloc((size_t)n, 1);
    if (!byz)
        return ohm_error_set(OHM_ENOMEM, "roles of %d peers", n);
    for (int i = 0; i < n; i++)
        byz[i] = (unsigned char)(ohm_topology_peer(t, (uint32_t)i)->byzantine != 0);
    int rc = ohm_data_open_roles(cfg, n, (int)self, byz, out);
    free(byz);
    if (rc)
        return rc;
    /* A peer without data can only send crafted vectors: one that would train
     * (no attack given, or a training-side attack) has nothing to train on. */
    if (ohm_data_train_size(*out) == 0 && (!b || ohm_byz_trains(b))) {
        ohm_data_destroy(out);
        return ohm_error_set(OHM_EINVAL,
                             "peer %u holds no training data (data.partition=%s gives Byzantine "
                             "peers none) but %s: give it an attack that crafts vectors",
                             self, ohm_config_str(cfg, "data.partition"),
                             b ? "its attack trains (labelflip)" : "it has no attack=");
    }
    return OHM_OK;
}
