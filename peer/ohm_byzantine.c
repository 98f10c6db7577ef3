/* ohm_byzantine: adapts a Byzantine peer's view of a round to robust/ohm_attack. */
#include "ohm_byzantine.h"

#include "ohm_attack.h"
#include "ohm_error.h"
#include "ohm_rng.h"

#include <stdlib.h>
#include <string.h>

struct ohm_byz {
    ohm_attack_params_t a;
    uint32_t self;
    const float **honest; /* scratch: the view's honest vectors */
    int cap;
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
    free((*pb)->honest);
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

int ohm_byz_craft(ohm_byz_t *b, const ohm_topology_t *t, uint32_t target, uint32_t round,
                  const float *const *recv, const uint32_t *recv_ids, int n, size_t d, float *out)
{
    if (n + 1 > b->cap) {
        const float **h = realloc(b->honest, sizeof *h * (size_t)(n + 1));
        if (!h)
            return ohm_error_set(OHM_ENOMEM, "byzantine view");
        b->honest = h;
        b->cap = n + 1;
    }
    /* The view: honest vectors other than the target's, and the target's own. */
    ohm_attack_view_t v = {.honest = b->honest, .round = round, .target_id = target};
    for (int i = 0; i < n; i++) {
        if (recv_ids[i] == target)
            v.target = recv[i];
        else
            b->honest[v.n_honest++] = recv[i];
    }
    /* The target's weights are public (the topology file); colluding Byzantine
     * peers know each other. ALIE's n and f are the target's neighbourhood with
     * itself and its Byzantine neighbours. */
    const uint32_t *nb;
    int k = ohm_topology_neighbors(t, target, &nb);
    v.a_tt = ohm_topology_weight(t, target, target);
    for (int i = 0; i < k; i++) {
        double w = ohm_topology_weight(t, target, nb[i]);
        if (ohm_topology_peer(t, nb[i])->byzantine) {
            v.wb += w;
            v.f++;
        } else {
            v.h += w;
        }
    }
    v.n = k + 1;
    if (ohm_attack_craft(&b->a, &v, d, out) != OHM_ATTACK_OK)
        return ohm_error_set(OHM_EINVAL, "attack %s could not craft for peer %u",
                             ohm_attack_name(b->a.kind), target);
    return OHM_OK;
}
