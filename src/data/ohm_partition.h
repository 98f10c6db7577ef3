/* ohm_partition: splits a training set over N peers, deterministically in
 * (seed, N, labels), so every peer computes the same split on its own.
 *
 * - iid: a seeded shuffle cut into N contiguous runs; shard sizes differ by <= 1.
 * - dirichlet(alpha): for each class, proportions p ~ Dir(alpha) over the
 *   peers; the class's examples (shuffled) are cut in those proportions.
 *   When every Gamma draw underflows (tiny alpha) the class goes whole to one
 *   peer drawn uniformly, the alpha -> 0 limit. No peer is left empty: each
 *   empty peer, in id order, takes the highest-index example of the currently
 *   largest shard (lowest id on ties); this moves at most N - 1 examples.
 * - label: examples stably sorted by label, cut into N contiguous runs (the
 *   pathological non-iid split: each peer sees one or two classes).
 * - label-honest (the IOS authors' LabelSeperation): only the H honest peers
 *   hold data, in id order h_0 < h_1 < ...; with C classes and C >= H, class c
 *   goes whole to h_(c mod H) (one class per honest peer when C = H); with
 *   C < H, class c is dealt round-robin, in example order, over the honest
 *   peers h_j with floor(cH/C) <= j < floor((c+1)H/C). Byzantine peers hold
 *   nothing. */
#ifndef OHM_PARTITION_H
#define OHM_PARTITION_H

#include <stddef.h>
#include <stdint.h>

enum { OHM_PART_IID = 0, OHM_PART_DIRICHLET = 1, OHM_PART_LABEL = 2, OHM_PART_LABEL_HONEST = 3 };

/* "iid" | "dirichlet" | "label" | "label-honest" -> OHM_PART_*, or -1. */
int ohm_partition_kind(const char *name);

/* Writes owner[i] in [0, npeers) for each of the n examples. labels[n] in
 * [0, classes) are needed by dirichlet and label (may be NULL for iid).
 * OHM_EINVAL if n < npeers (a peer would be empty) or a label is out of
 * range; OHM_ENOMEM. */
int ohm_partition_assign(int kind, const int32_t *labels, size_t n, int classes, int npeers,
                         double alpha, uint64_t seed, uint32_t *owner);

/* The same knowing the peers' roles: byzantine[npeers] flags the Byzantine
 * peers (NULL: none). Only label-honest reads them (the other kinds split over
 * every peer as ohm_partition_assign does). OHM_EINVAL when label-honest finds
 * no honest peer or n < the number of honest peers. */
int ohm_partition_assign_roles(int kind, const int32_t *labels, size_t n, int classes, int npeers,
                               double alpha, uint64_t seed, const unsigned char *byzantine,
                               uint32_t *owner);

/* Indices of `peer`'s examples in ascending order into idx (may be NULL to
 * only count); returns their number. */
size_t ohm_partition_shard(const uint32_t *owner, size_t n, uint32_t peer, uint32_t *idx);

#endif
