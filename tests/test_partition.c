/* ohm_partition: iid / dirichlet / label splits are disjoint, cover the set,
 * are deterministic in (seed, N), and are as skewed as their kind says. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ohm_error.h"
#include "ohm_partition.h"
#include "ohm_rng.h"

#define C 10

static int32_t *balanced_labels(size_t n, uint64_t seed)
{
    int32_t *y = malloc(sizeof(int32_t) * n);
    ohm_rng_t r;
    ohm_rng_seed(&r, seed, 99, 99);
    for (size_t i = 0; i < n; i++)
        y[i] = (int32_t)ohm_rng_below(&r, C);
    return y;
}

static uint32_t *assign(int kind, const int32_t *y, size_t n, int npeers, double alpha,
                        uint64_t seed)
{
    uint32_t *owner = malloc(sizeof(uint32_t) * n);
    int rc = ohm_partition_assign(kind, y, n, C, npeers, alpha, seed, owner);
    cr_assert_eq(rc, OHM_OK, "%s", ohm_error_detail());
    return owner;
}

/* Every example has exactly one owner in range, every peer at least one
 * example, and the shards listed by ohm_partition_shard are ascending and add up. */
static void check_cover(const uint32_t *owner, size_t n, int npeers, size_t *sizes)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_lt(owner[i], (uint32_t)npeers);
    uint32_t *idx = malloc(sizeof(uint32_t) * n);
    char *seen = calloc(n, 1);
    size_t total = 0;
    for (int p = 0; p < npeers; p++) {
        size_t m = ohm_partition_shard(owner, n, (uint32_t)p, idx);
        cr_assert_eq(m, ohm_partition_shard(owner, n, (uint32_t)p, NULL));
        cr_assert_gt(m, 0, "peer %d is empty", p);
        for (size_t j = 0; j < m; j++) {
            cr_assert(j == 0 || idx[j] > idx[j - 1]);
            cr_assert(!seen[idx[j]], "example %u in two shards", idx[j]);
            seen[idx[j]] = 1;
        }
        total += m;
        if (sizes) sizes[p] = m;
    }
    cr_assert_eq(total, n);
    free(idx);
    free(seen);
}

/* Per-peer class histograms: hist[p * C + c]. */
static size_t *histograms(const uint32_t *owner, const int32_t *y, size_t n, int npeers)
{
    size_t *h = calloc((size_t)npeers * C, sizeof(size_t));
    for (size_t i = 0; i < n; i++)
        h[owner[i] * C + (size_t)y[i]]++;
    return h;
}

/* Mean over peers of the total-variation distance between the peer's label
 * distribution and the global one: 0 for a perfect iid split, near 1 when each
 * peer holds one class. */
static double mean_tv(const size_t *h, const int32_t *y, size_t n, int npeers)
{
    double global[C] = {0};
    for (size_t i = 0; i < n; i++)
        global[y[i]] += 1.0 / (double)n;
    double sum = 0;
    for (int p = 0; p < npeers; p++) {
        double m = 0, tv = 0;
        for (int c = 0; c < C; c++)
            m += (double)h[p * C + c];
        for (int c = 0; c < C; c++)
            tv += fabs((double)h[p * C + c] / m - global[c]);
        sum += tv / 2;
    }
    return sum / npeers;
}

Test(partition, kind_names)
{
    cr_expect_eq(ohm_partition_kind("iid"), OHM_PART_IID);
    cr_expect_eq(ohm_partition_kind("dirichlet"), OHM_PART_DIRICHLET);
    cr_expect_eq(ohm_partition_kind("label"), OHM_PART_LABEL);
    cr_expect_eq(ohm_partition_kind("IID"), -1);
}

Test(partition, iid_is_disjoint_covering_and_even)
{
    const size_t n = 1003;
    const int N = 10;
    uint32_t *a = assign(OHM_PART_IID, NULL, n, N, 0, 7);
    size_t sizes[10];
    check_cover(a, n, N, sizes);
    for (int p = 0; p < N; p++)
        cr_expect(sizes[p] == 100 || sizes[p] == 101, "peer %d: %zu", p, sizes[p]);
    /* Not a trivial block split: the first 100 examples are spread. */
    int owners0 = 0;
    for (size_t i = 0; i < 100; i++)
        owners0 += a[i] == 0;
    cr_expect_lt(owners0, 30);
    free(a);
}

Test(partition, deterministic_in_seed_and_peers)
{
    const size_t n = 5000;
    int32_t *y = balanced_labels(n, 1);
    for (int kind = 0; kind < 3; kind++) {
        uint32_t *a = assign(kind, y, n, 8, 0.3, 42);
        uint32_t *b = assign(kind, y, n, 8, 0.3, 42);
        cr_expect(memcmp(a, b, sizeof(uint32_t) * n) == 0, "kind %d not deterministic", kind);
        if (kind != OHM_PART_LABEL) { /* label has no randomness */
            uint32_t *c = assign(kind, y, n, 8, 0.3, 43);
            cr_expect(memcmp(a, c, sizeof(uint32_t) * n) != 0, "kind %d ignores the seed", kind);
            free(c);
        }
        free(a);
        free(b);
    }
    free(y);
}

Test(partition, dirichlet_skew_follows_alpha)
{
    const size_t n = 20000;
    const int N = 10;
    int32_t *y = balanced_labels(n, 2);
    uint32_t *lo = assign(OHM_PART_DIRICHLET, y, n, N, 0.1, 5);
    uint32_t *hi = assign(OHM_PART_DIRICHLET, y, n, N, 1000, 5);
    size_t slo[10], shi[10];
    check_cover(lo, n, N, slo);
    check_cover(hi, n, N, shi);
    size_t *hlo = histograms(lo, y, n, N), *hhi = histograms(hi, y, n, N);
    double tv_lo = mean_tv(hlo, y, n, N), tv_hi = mean_tv(hhi, y, n, N);
    cr_log_info("dirichlet mean TV from global labels: alpha 0.1 -> %.3f, alpha 1000 -> %.3f",
                tv_lo, tv_hi);
    cr_expect_gt(tv_lo, 0.4, "alpha 0.1 should be strongly skewed: %.3f", tv_lo);
    cr_expect_lt(tv_hi, 0.05, "alpha 1000 should be near iid: %.3f", tv_hi);
    for (int p = 0; p < N; p++)
        cr_expect(shi[p] > 1700 && shi[p] < 2300, "alpha 1000, peer %d holds %zu", p, shi[p]);
    free(hlo);
    free(hhi);
    free(lo);
    free(hi);
    free(y);
}

Test(partition, dirichlet_leaves_no_peer_empty)
{
    const size_t n = 300;
    int32_t *y = balanced_labels(n, 3);
    /* With alpha 1e-3 most peers get nothing from the proportions alone. */
    for (uint64_t seed = 0; seed < 5; seed++) {
        uint32_t *a = assign(OHM_PART_DIRICHLET, y, n, 50, 1e-3, seed);
        check_cover(a, n, 50, NULL);
        free(a);
    }
    /* Every Gamma draw underflows: each class goes whole to one peer. */
    uint32_t *b = assign(OHM_PART_DIRICHLET, y, n, 4, 1e-9, 1);
    check_cover(b, n, 4, NULL);
    size_t *h = histograms(b, y, n, 4);
    int whole = 0;
    for (int c = 0; c < C; c++) {
        size_t tot = 0, mx = 0;
        for (int p = 0; p < 4; p++) {
            tot += h[p * C + c];
            if (h[p * C + c] > mx) mx = h[p * C + c];
        }
        whole += mx + 3 >= tot; /* up to 3 examples moved to fill empty peers */
    }
    cr_expect_eq(whole, C);
    free(h);
    free(b);
    free(y);
}

Test(partition, label_shards_hold_few_labels)
{
    const size_t n = 5000;
    const int N = 10;
    int32_t *y = balanced_labels(n, 4);
    uint32_t *a = assign(OHM_PART_LABEL, y, n, N, 0, 1);
    size_t sizes[10];
    check_cover(a, n, N, sizes);
    size_t *h = histograms(a, y, n, N);
    int prev_max = 0;
    for (int p = 0; p < N; p++) {
        cr_expect(sizes[p] == 500, "label shards are even: %zu", sizes[p]);
        int distinct = 0, lo = C, hi = -1;
        for (int c = 0; c < C; c++) {
            if (!h[p * C + c]) continue;
            distinct++;
            if (c < lo) lo = c;
            if (c > hi) hi = c;
        }
        cr_expect_leq(distinct, 2, "peer %d holds %d labels", p, distinct);
        cr_expect_geq(lo, prev_max, "shards follow label order");
        prev_max = hi;
    }
    cr_expect_gt(mean_tv(h, y, n, N), 0.8);
    /* Stable: inside one label, lower indices go to lower peers. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n && j < i + 50; j++)
            if (y[i] == y[j]) cr_assert_leq(a[i], a[j]);
    free(h);
    free(a);
    free(y);
}

Test(partition, errors)
{
    uint32_t owner[8];
    int32_t y[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    cr_expect_eq(ohm_partition_assign(OHM_PART_IID, NULL, 3, C, 4, 0, 1, owner), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "3 examples for 4 peers"), "%s", ohm_error_detail());
    y[5] = 12;
    cr_expect_eq(ohm_partition_assign(OHM_PART_LABEL, y, 8, C, 2, 0, 1, owner), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "example 5"), "%s", ohm_error_detail());
    y[5] = -1;
    cr_expect_eq(ohm_partition_assign(OHM_PART_DIRICHLET, y, 8, C, 2, 0.5, 1, owner), OHM_EINVAL);
    y[5] = 5;
    cr_expect_eq(ohm_partition_assign(OHM_PART_DIRICHLET, y, 8, C, 2, 0, 1, owner), OHM_EINVAL);
    cr_expect_eq(ohm_partition_assign(OHM_PART_DIRICHLET, y, 8, C, 8, 0.5, 1, owner), OHM_OK);
    check_cover(owner, 8, 8, NULL);
}

/* label-honest, the IOS authors' split: 12 peers, 6 and 7 Byzantine, 10
 * classes; honest peer number j (in id order 0..5, 8..11) holds class j, all
 * of it, and the Byzantine peers hold nothing. */
Test(partition, label_honest_gives_one_class_per_honest_peer)
{
    const size_t n = 3000;
    const int N = 12;
    int32_t *y = balanced_labels(n, 5);
    unsigned char byz[12] = {0};
    byz[6] = byz[7] = 1;
    uint32_t *a = malloc(sizeof(uint32_t) * n);
    cr_assert_eq(ohm_partition_assign_roles(OHM_PART_LABEL_HONEST, y, n, C, N, 0, 1, byz, a),
                 OHM_OK, "%s", ohm_error_detail());
    const uint32_t honest[10] = {0, 1, 2, 3, 4, 5, 8, 9, 10, 11};
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(a[i], honest[y[i]], "example %zu of class %d", i, y[i]);
    cr_expect_eq(ohm_partition_shard(a, n, 6, NULL), 0);
    cr_expect_eq(ohm_partition_shard(a, n, 7, NULL), 0);
    /* the seed plays no part; without roles every peer is honest */
    uint32_t *b = malloc(sizeof(uint32_t) * n);
    cr_assert_eq(ohm_partition_assign_roles(OHM_PART_LABEL_HONEST, y, n, C, N, 0, 9, byz, b),
                 OHM_OK);
    cr_expect_arr_eq(a, b, sizeof(uint32_t) * n);
    cr_assert_eq(ohm_partition_assign(OHM_PART_LABEL_HONEST, y, n, C, 10, 0, 1, b), OHM_OK);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(b[i], (uint32_t)y[i]);
    /* the other kinds ignore the roles */
    cr_assert_eq(ohm_partition_assign_roles(OHM_PART_LABEL, y, n, C, N, 0, 1, byz, a), OHM_OK);
    check_cover(a, n, N, NULL);
    free(a);
    free(b);
    free(y);
}

/* More honest peers than classes: class c is dealt round-robin, in example
 * order, over honest peers floor(cH/C) .. floor((c+1)H/C) - 1 (the authors'
 * partition_with_adaquate_nodes); fewer: class c goes to honest peer c mod H. */
Test(partition, label_honest_with_other_counts)
{
    int32_t y[12] = {0, 1, 0, 2, 0, 1, 2, 2, 1, 0, 2, 1};
    uint32_t a[12];
    unsigned char byz[6] = {0, 0, 1, 0, 0, 0}; /* H = 5 honest: 0, 1, 3, 4, 5 */
    cr_assert_eq(ohm_partition_assign_roles(OHM_PART_LABEL_HONEST, y, 12, 3, 6, 0, 1, byz, a),
                 OHM_OK);
    /* groups: class 0 -> honest[0..0] = {0}; class 1 -> honest[1..2] = {1, 3};
     * class 2 -> honest[3..4] = {4, 5} */
    const uint32_t want[12] = {0, 1, 0, 4, 0, 3, 5, 4, 1, 0, 5, 3};
    cr_expect_arr_eq(a, want, sizeof a);
    unsigned char two[3] = {0, 1, 0}; /* H = 2: classes alternate 0 -> 0, 1 -> 2, 2 -> 0 */
    cr_assert_eq(ohm_partition_assign_roles(OHM_PART_LABEL_HONEST, y, 12, 3, 3, 0, 1, two, a),
                 OHM_OK);
    for (int i = 0; i < 12; i++)
        cr_expect_eq(a[i], y[i] % 2 ? 2u : 0u, "example %d", i);
    unsigned char all[3] = {1, 1, 1};
    cr_expect_eq(ohm_partition_assign_roles(OHM_PART_LABEL_HONEST, y, 12, 3, 3, 0, 1, all, a),
                 OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "needs an honest peer"), "%s", ohm_error_detail());
    cr_expect_eq(ohm_partition_kind("label-honest"), OHM_PART_LABEL_HONEST);
}
