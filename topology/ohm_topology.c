/* ohm_topology: the accessors of a built topology, its digest, and edits
 * (keys, bind endpoints) that go back through the builder. The builder is in
 * ohm_topo_build.c, the file format in ohm_topo_parse.c, the spectral gap in
 * ohm_topo_spectral.c. */
#include "ohm_topology.h"

#include "ohm_error.h"
#include "ohm_rng.h"
#include "ohm_topo_build.h"
#include "ohm_topo_internal.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void ohm_topology_destroy(ohm_topology_t **tp)
{
    if (!tp || !*tp) return;
    ohm_topology_t *t = *tp;
    if (t->peers)
        for (int i = 0; i < t->n; i++)
            ohm_topo_peer_info_free(&t->peers[i]);
    free(t->peers);
    free(t->off);
    free(t->adj);
    free(t->w);
    free(t->expl);
    free(t->self_w);
    free(t);
    *tp = NULL;
}

int ohm_topology_size(const ohm_topology_t *t)
{
    return t->n;
}

size_t ohm_topology_edge_count(const ohm_topology_t *t)
{
    return t->n_edges;
}

const ohm_peer_info_t *ohm_topology_peer(const ohm_topology_t *t, uint32_t id)
{
    assert(id < (uint32_t)t->n);
    return &t->peers[id];
}

int ohm_topology_neighbors(const ohm_topology_t *t, uint32_t id, const uint32_t **ids)
{
    assert(id < (uint32_t)t->n);
    *ids = t->adj + t->off[id];
    return (int)(t->off[id + 1] - t->off[id]);
}

double ohm_topology_weight(const ohm_topology_t *t, uint32_t i, uint32_t j)
{
    assert(i < (uint32_t)t->n && j < (uint32_t)t->n);
    if (i == j) return t->self_w[i];
    long s = ohm_topo_find_slot(t, i, j);
    return s < 0 ? 0.0 : t->w[s];
}

const char *ohm_topology_scheme(const ohm_topology_t *t)
{
    return t->scheme == OHM_TOPO_SCHEME_UNIFORM ? "uniform" : "metropolis";
}

int ohm_topology_is_symmetric(const ohm_topology_t *t)
{
    for (int i = 0; i < t->n; i++)
        for (uint32_t s = t->off[i]; s < t->off[i + 1]; s++) {
            uint32_t j = t->adj[s];
            if (j < (uint32_t)i) continue;
            if (fabs(t->w[s] - ohm_topology_weight(t, j, (uint32_t)i)) > 1e-12) return 0;
        }
    return 1;
}

int ohm_topology_is_doubly_stochastic(const ohm_topology_t *t)
{
    return t->doubly_stochastic;
}

int ohm_topology_byzantine_count(const ohm_topology_t *t)
{
    int c = 0;
    for (int i = 0; i < t->n; i++)
        c += t->peers[i].byzantine != 0;
    return c;
}

int ohm_topology_byzantine_neighbors(const ohm_topology_t *t, uint32_t id)
{
    assert(id < (uint32_t)t->n);
    int c = 0;
    for (uint32_t s = t->off[id]; s < t->off[id + 1]; s++)
        c += t->peers[t->adj[s]].byzantine != 0;
    return c;
}

int ohm_topology_edit(const ohm_topology_t *t, const ohm_topo_edit_t *edits, const char *name,
                      ohm_topology_t **out)
{
    *out = NULL;
    ohm_topo_build_t *b;
    int rc = ohm_topo_build_new(name, &b);
    if (rc) return rc;
    if (t->scheme_given || t->scheme != OHM_TOPO_SCHEME_METROPOLIS)
        rc = ohm_topo_build_scheme(b, ohm_topology_scheme(t), 0);
    for (int i = 0; i < t->n && !rc; i++) {
        ohm_peer_info_t p = t->peers[i];
        if (edits && edits[i].key) {
            memcpy(p.key, edits[i].key, sizeof p.key);
            p.has_key = 1;
        }
        if (edits && edits[i].bind) p.bind = edits[i].bind;
        rc = ohm_topo_build_peer(b, &p, 0);
    }
    /* Edges and explicit weights as the writer spells them: w= on the edge when
     * both directions were given the same value, weight lines otherwise. */
    for (int i = 0; i < t->n && !rc; i++)
        for (uint32_t s = t->off[i]; s < t->off[i + 1] && !rc; s++) {
            uint32_t j = t->adj[s];
            long r = ohm_topo_find_slot(t, j, (uint32_t)i);
            assert(r >= 0);
            int same = t->expl[s] && t->expl[r] && t->w[s] == t->w[r];
            if (j > (uint32_t)i) rc = ohm_topo_build_edge(b, (uint32_t)i, j, same, t->w[s], 0);
            if (!rc && t->expl[s] && !same)
                rc = ohm_topo_build_weight(b, (uint32_t)i, j, t->w[s], 0);
        }
    if (rc) {
        ohm_topo_build_destroy(&b);
        return rc;
    }
    return ohm_topo_build_finish(&b, 0, out);
}

static uint64_t mix_str(uint64_t h, const char *s)
{
    uint64_t len = s ? strlen(s) + 1 : 0; /* NULL and "" differ */
    h = ohm_hash64(&len, sizeof len, h);
    return s ? ohm_hash64(s, len, h) : h;
}

static uint64_t mix_double(uint64_t h, double v)
{
    if (v == 0) v = 0; /* -0 and +0 are the same weight */
    return ohm_hash64(&v, sizeof v, h);
}

uint64_t ohm_topology_digest(const ohm_topology_t *t)
{
    uint64_t h = ohm_hash64("ohm-topology-1", 14, 0);
    int64_t n = t->n;
    h = ohm_hash64(&n, sizeof n, h);
    for (int i = 0; i < t->n; i++) {
        const ohm_peer_info_t *p = &t->peers[i];
        int32_t ints[4] = {(int32_t)p->id, p->has_key, p->byzantine, p->b};
        h = ohm_hash64(ints, sizeof ints, h);
        if (p->has_key) h = ohm_hash64(p->key, sizeof p->key, h);
        h = mix_str(h, p->endpoint);
        h = mix_str(h, p->bind);
        h = mix_str(h, p->attack);
        h = mix_str(h, p->rule);
        h = mix_double(h, t->self_w[i]);
        for (uint32_t s = t->off[i]; s < t->off[i + 1]; s++) {
            h = ohm_hash64(&t->adj[s], sizeof t->adj[s], h);
            h = mix_double(h, t->w[s]);
        }
    }
    return h;
}
