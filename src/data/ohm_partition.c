/* ohm_partition: iid, Dirichlet and label-sorted splits. */
#include "ohm_partition.h"

#include "ohm_error.h"
#include "ohm_rng.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* The partition's stream under OHM_STREAM_DATA ("peer" slot), distinct from
 * the synthetic data's slots and independent of the peer computing it. */
#define SLOT_PARTITION ((1ULL << 62) + 1)

int ohm_partition_kind(const char *name)
{
    static const char *const names[] = {"iid", "dirichlet", "label", "label-honest"};
    for (int k = 0; k < 4; k++)
        if (strcmp(name, names[k]) == 0) return k;
    return -1;
}

/* Cuts order[0..n) into npeers contiguous runs of near-equal size. */
static void cut_even(const uint32_t *order, size_t n, int npeers, uint32_t *owner)
{
    for (int p = 0; p < npeers; p++) {
        size_t a = n * (size_t)p / (size_t)npeers, b = n * (size_t)(p + 1) / (size_t)npeers;
        for (size_t i = a; i < b; i++)
            owner[order[i]] = (uint32_t)p;
    }
}

static int dirichlet(const int32_t *labels, size_t n, int classes, int npeers, double alpha,
                     ohm_rng_t *r, uint32_t *owner)
{
    uint32_t *idx = malloc(sizeof(uint32_t) * n);
    double *p = malloc(sizeof(double) * (size_t)npeers);
    size_t *start = calloc((size_t)classes + 1, sizeof(size_t));
    size_t *count = calloc((size_t)npeers, sizeof(size_t));
    size_t *cursor = calloc((size_t)classes, sizeof(size_t));
    int rc = OHM_OK;
    if (!idx || !p || !start || !count || !cursor) {
        rc = ohm_error_set(OHM_ENOMEM, "dirichlet partition of %zu examples", n);
        goto out;
    }
    /* Bucket the indices by class (ascending inside each class). */
    for (size_t i = 0; i < n; i++)
        start[labels[i] + 1]++;
    for (int c = 0; c < classes; c++)
        start[c + 1] += start[c];
    for (size_t i = 0; i < n; i++) {
        int c = labels[i];
        idx[start[c] + cursor[c]++] = (uint32_t)i;
    }
    for (int c = 0; c < classes; c++) {
        size_t nc = start[c + 1] - start[c];
        uint32_t *ic = idx + start[c];
        ohm_rng_shuffle(r, ic, nc);
        double sum = 0;
        for (int k = 0; k < npeers; k++)
            sum += p[k] = ohm_rng_gamma(r, alpha);
        if (!(sum > 0)) {
            for (int k = 0; k < npeers; k++)
                p[k] = 0;
            p[ohm_rng_below(r, (uint32_t)npeers)] = 1;
            sum = 1;
        }
        double cum = 0;
        size_t a = 0;
        for (int k = 0; k < npeers; k++) {
            cum += p[k];
            size_t b = k == npeers - 1 ? nc : (size_t)(cum / sum * (double)nc + 0.5);
            if (b > nc) b = nc;
            if (b < a) b = a;
            for (size_t i = a; i < b; i++)
                owner[ic[i]] = (uint32_t)k;
            a = b;
        }
    }
    /* No empty peer: an empty one takes the last example of the largest shard. */
    for (size_t i = 0; i < n; i++)
        count[owner[i]]++;
    for (int e = 0; e < npeers; e++) {
        if (count[e]) continue;
        int big = 0;
        for (int k = 1; k < npeers; k++)
            if (count[k] > count[big]) big = k;
        assert(count[big] > 1); /* n >= npeers */
        size_t i = n;
        while (owner[--i] != (uint32_t)big) {
        }
        owner[i] = (uint32_t)e;
        count[big]--;
        count[e]++;
    }
out:
    free(idx);
    free(p);
    free(start);
    free(count);
    free(cursor);
    return rc;
}

/* label-honest over the honest peers listed in honest[H] (ascending ids). */
static int label_honest(const int32_t *labels, size_t n, int classes, const uint32_t *honest, int H,
                        uint32_t *owner)
{
    if (classes >= H) {
        for (size_t i = 0; i < n; i++)
            owner[i] = honest[labels[i] % H];
        return OHM_OK;
    }
    /* Fewer classes than honest peers: class c's group is the honest peers
     * [floor(cH/C), floor((c+1)H/C)), dealt round-robin in example order. */
    size_t *next = calloc((size_t)classes, sizeof(size_t));
    if (!next) return ohm_error_set(OHM_ENOMEM, "label-honest partition");
    for (size_t i = 0; i < n; i++) {
        int c = labels[i];
        size_t lo = (size_t)c * (size_t)H / (size_t)classes;
        size_t hi = (size_t)(c + 1) * (size_t)H / (size_t)classes;
        owner[i] = honest[lo + next[c]];
        next[c] = (next[c] + 1) % (hi - lo);
    }
    free(next);
    return OHM_OK;
}

int ohm_partition_assign(int kind, const int32_t *labels, size_t n, int classes, int npeers,
                         double alpha, uint64_t seed, uint32_t *owner)
{
    return ohm_partition_assign_roles(kind, labels, n, classes, npeers, alpha, seed, NULL, owner);
}

int ohm_partition_assign_roles(int kind, const int32_t *labels, size_t n, int classes, int npeers,
                               double alpha, uint64_t seed, const unsigned char *byzantine,
                               uint32_t *owner)
{
    assert(kind >= OHM_PART_IID && kind <= OHM_PART_LABEL_HONEST);
    if (npeers < 1 || (kind != OHM_PART_LABEL_HONEST && n < (size_t)npeers))
        return ohm_error_set(OHM_EINVAL, "partition: %zu examples for %d peers (each needs one)", n,
                             npeers);
    if (n > UINT32_MAX) return ohm_error_set(OHM_ETOOBIG, "partition: %zu examples", n);
    if (kind != OHM_PART_IID) {
        assert(labels && classes >= 1);
        for (size_t i = 0; i < n; i++)
            if (labels[i] < 0 || labels[i] >= classes)
                return ohm_error_set(OHM_EINVAL,
                                     "partition: label %d of example %zu not in [0, %d)",
                                     (int)labels[i], i, classes);
    }
    if (kind == OHM_PART_DIRICHLET && !(alpha > 0))
        return ohm_error_set(OHM_EINVAL, "partition: dirichlet alpha %g", alpha);
    if (kind == OHM_PART_LABEL_HONEST) {
        uint32_t *honest = malloc(sizeof(uint32_t) * (size_t)npeers);
        if (!honest) return ohm_error_set(OHM_ENOMEM, "label-honest partition");
        int H = 0;
        for (int p = 0; p < npeers; p++)
            if (!byzantine || !byzantine[p]) honest[H++] = (uint32_t)p;
        int rc = H == 0 ? ohm_error_set(OHM_EINVAL,
                                        "partition: label-honest needs an honest peer (all %d "
                                        "peers are Byzantine)",
                                        npeers)
                 : n < (size_t)H
                     ? ohm_error_set(OHM_EINVAL,
                                     "partition: %zu examples for %d honest peers (each needs one)",
                                     n, H)
                     : label_honest(labels, n, classes, honest, H, owner);
        free(honest);
        return rc;
    }
    ohm_rng_t r;
    ohm_rng_seed(&r, seed, SLOT_PARTITION, OHM_STREAM_DATA);
    if (kind == OHM_PART_DIRICHLET) return dirichlet(labels, n, classes, npeers, alpha, &r, owner);

    uint32_t *order = malloc(sizeof(uint32_t) * n);
    if (!order) return ohm_error_set(OHM_ENOMEM, "partition of %zu examples", n);
    if (kind == OHM_PART_IID) {
        for (size_t i = 0; i < n; i++)
            order[i] = (uint32_t)i;
        ohm_rng_shuffle(&r, order, n);
    } else {
        /* Stable counting sort by label. */
        size_t *start = calloc((size_t)classes + 1, sizeof(size_t));
        if (!start) {
            free(order);
            return ohm_error_set(OHM_ENOMEM, "label partition");
        }
        for (size_t i = 0; i < n; i++)
            start[labels[i] + 1]++;
        for (int c = 0; c < classes; c++)
            start[c + 1] += start[c];
        for (size_t i = 0; i < n; i++)
            order[start[labels[i]]++] = (uint32_t)i;
        free(start);
    }
    cut_even(order, n, npeers, owner);
    free(order);
    return OHM_OK;
}

size_t ohm_partition_shard(const uint32_t *owner, size_t n, uint32_t peer, uint32_t *idx)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (owner[i] != peer) continue;
        if (idx) idx[m] = (uint32_t)i;
        m++;
    }
    return m;
}
