/* ohm_coordwise: the coordinate-wise pass (median, trimmed mean, and
 * geomed's start), see ohm_coordwise.h.
 *
 * Each block of CW_BLK coordinates of the k rows goes into a small buffer and
 * a comparator network runs over whole rows of it (min/max over CW_BLK lanes
 * at a time, so it vectorizes); on x86-64 with AVX2, groups of up to 16 rows
 * are first sorted in registers, and for k <= 8 (16 with AVX-512VL) the
 * result is reduced in registers and the buffer never written. */
#include "ohm_coordwise.h"

#include "ohm_kernel.h"
#include "ohm_robust.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CW_BLK 128 /* coordinates per block */

/* Comparator networks: pairs (lo, hi) of row indices; after the network the
 * rows hold, per coordinate, values in ascending order at the positions the
 * caller asked for ("needed"). Built per call, O(k log^2 k) or O(b k). */
typedef struct {
    int *pair; /* 2 * n */
    int n, cap;
} net_t;

static int net_push(net_t *t, int a, int b)
{
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 64;
        int *p = realloc(t->pair, sizeof(int) * 2 * (size_t)cap);
        if (!p) return -1;
        t->pair = p;
        t->cap = cap;
    }
    t->pair[2 * t->n] = a;
    t->pair[2 * t->n + 1] = b;
    t->n++;
    return 0;
}

/* Batcher's odd-even merge sort for the next power of two >= k, from stage
 * `pmin` on (stages p < pmin only sort aligned groups of pmin rows, which the
 * register kernels below do instead; pmin = 1 gives the whole network).
 * Comparators touching an index >= k are dropped, which is exact because the
 * missing elements behave as +Inf padding at the top. */
static int net_batcher(net_t *t, int k, int pmin)
{
    int n = 1;
    while (n < k)
        n <<= 1;
    for (int p = pmin; p < n; p <<= 1)
        for (int q = p; q >= 1; q >>= 1)
            for (int j = q % p; j + q < n; j += 2 * q)
                for (int i = 0; i < q && i + j + q < n; i++)
                    if ((i + j) / (2 * p) == (i + j + q) / (2 * p) && i + j + q < k)
                        if (net_push(t, i + j, i + j + q)) return -1;
    return 0;
}

/* Selection by bubbling: b passes bring the b smallest to positions 0..b-1,
 * b more bring the b largest to k-b..k-1 (about 2bk comparators). */
static int net_bubble(net_t *t, int k, int b)
{
    for (int p = 0; p < b; p++)
        for (int i = k - 1; i > p; i--)
            if (net_push(t, i - 1, i)) return -1;
    for (int p = 0; p < b; p++)
        for (int i = b; i < k - 1 - p; i++)
            if (net_push(t, i, i + 1)) return -1;
    return 0;
}

/* Keeps only the comparators that can influence a needed output position:
 * walking backwards, a comparator is kept if one of its outputs is needed, and
 * then both its inputs are. Comparators only permute values, so the positions
 * not needed still hold, together, the right multiset. */
static void net_prune(net_t *t, unsigned char *need)
{
    int o = t->n;
    for (int e = t->n - 1; e >= 0; e--) {
        int a = t->pair[2 * e], b = t->pair[2 * e + 1];
        if (need[a] || need[b]) {
            need[a] = need[b] = 1;
            o--;
            t->pair[2 * o] = a;
            t->pair[2 * o + 1] = b;
        }
    }
    if (t->n > o) memmove(t->pair, t->pair + 2 * o, sizeof(int) * 2 * (size_t)(t->n - o));
    t->n -= o;
}

/* The smaller of the pruned Batcher (from stage pmin) and bubble networks
 * that put the right values at positions [0, lo) and (hi, k) (trimmed mean:
 * the middle [lo, hi] is then the right multiset) or at lo and hi themselves
 * (median). */
static int net_build(net_t *t, int k, int lo, int hi, int median, int pmin)
{
    net_t alt[2] = {{0}, {0}};
    unsigned char *need = malloc((size_t)k);
    int rc = need ? 0 : -1;
    for (int v = 0; v < 2 && !rc; v++) {
        memset(need, 0, (size_t)k);
        for (int i = 0; i < k; i++)
            need[i] = median ? (i == lo || i == hi) : (i < lo || i > hi);
        if (v == 0)
            rc = net_batcher(&alt[v], k, pmin);
        else
            rc = net_bubble(&alt[v], k, median ? lo + 1 : lo);
        if (!rc) net_prune(&alt[v], need);
    }
    free(need);
    if (rc) {
        free(alt[0].pair);
        free(alt[1].pair);
        return -1;
    }
    int best = alt[1].n < alt[0].n;
    *t = alt[best];
    free(alt[!best].pair);
    return 0;
}

/* Register kernels (x86-64 with AVX2): each aligned group of G rows of a
 * block is loaded 8 coordinates at a time, sorted by Batcher's network for G
 * entirely in registers (G = 8 with AVX2's 16 registers, G = 16 with
 * AVX-512VL's 32) and stored sorted into the block buffer; only the merge
 * stages p >= G then run over the buffer. NaN is not converted here: a block
 * holding any NaN/Inf (detected by x*0 being NaN) is redone by the generic
 * path, so hostile rows cost time only in the blocks they poison. */

#ifdef OHM_CW_REGS
/* Batcher's networks for 4 and for 16 rows (net_batcher(., G, 1)); the first
 * 19 comparators of the latter (stages 1, 2, 4 on rows 0..7) are the network
 * for 8. */
static const unsigned char batcher4[5][2] = {{0, 1}, {2, 3}, {0, 2}, {1, 3}, {1, 2}};
static const unsigned char batcher16[63][2] = {
    {0, 1},   {2, 3},   {4, 5},   {6, 7},   {0, 2},   {1, 3},   {4, 6},   {5, 7},   {1, 2},
    {5, 6},   {0, 4},   {1, 5},   {2, 6},   {3, 7},   {2, 4},   {3, 5},   {1, 2},   {3, 4},
    {5, 6},   {8, 9},   {10, 11}, {12, 13}, {14, 15}, {8, 10},  {9, 11},  {12, 14}, {13, 15},
    {9, 10},  {13, 14}, {8, 12},  {9, 13},  {10, 14}, {11, 15}, {10, 12}, {11, 13}, {9, 10},
    {11, 12}, {13, 14}, {0, 8},   {1, 9},   {2, 10},  {3, 11},  {4, 12},  {5, 13},  {6, 14},
    {7, 15},  {4, 8},   {5, 9},   {6, 10},  {7, 11},  {2, 4},   {3, 5},   {6, 8},   {7, 9},
    {10, 12}, {11, 13}, {1, 2},   {3, 4},   {5, 6},   {7, 8},   {9, 10},  {11, 12}, {13, 14}};

/* Loads rows g..g+G-1 (missing rows as +Inf) at coordinates off+c..+7 into
 * R[G], folds x*0 into `bad` (NaN there iff a value is NaN or Inf), and runs
 * the network on the registers. */
#define OHM_CW_LOAD_SORT(R, G, NET, NCMP, g)                                                       \
    _Pragma("GCC unroll 16") for (int i = 0; i < G; i++)                                           \
    {                                                                                              \
        if ((g) + i < k) {                                                                         \
            R[i] = _mm256_loadu_ps(x[(g) + i] + off + c);                                          \
            bad = _mm256_fmadd_ps(R[i], zero, bad);                                                \
        } else {                                                                                   \
            R[i] = inf;                                                                            \
        }                                                                                          \
    }                                                                                              \
    _Pragma("GCC unroll 64") for (int e = 0; e < NCMP; e++)                                        \
    {                                                                                              \
        __m256 a = R[NET[e][0]], b = R[NET[e][1]];                                                 \
        R[NET[e][0]] = _mm256_min_ps(a, b);                                                        \
        R[NET[e][1]] = _mm256_max_ps(a, b);                                                        \
    }

/* Adds the 8 floats of V to the double accumulators A0 (low 4) and A1 (high 4). */
#define OHM_CW_ACC(A0, A1, V)                                                                      \
    do {                                                                                           \
        A0 = _mm256_add_pd(A0, _mm256_cvtps_pd(_mm256_castps256_ps128(V)));                        \
        A1 = _mm256_add_pd(A1, _mm256_cvtps_pd(_mm256_extractf128_ps(V, 1)));                      \
    } while (0)

/* Stores (A0, A1) * inv as 8 floats at P. */
#define OHM_CW_STORE_SCALED(P, A0, A1, inv)                                                        \
    do {                                                                                           \
        const __m256d vinv_ = _mm256_set1_pd(inv);                                                 \
        __m128 l_ = _mm256_cvtpd_ps(_mm256_mul_pd(A0, vinv_));                                     \
        __m128 h_ = _mm256_cvtpd_ps(_mm256_mul_pd(A1, vinv_));                                     \
        _mm256_storeu_ps(P, _mm256_insertf128_ps(_mm256_castps128_ps256(l_), h_, 1));              \
    } while (0)

/* Returns 1 if the block holds a non-finite value (buf is then garbage). */
#define OHM_CW_GROUP_KERNEL(NAME, G, NET, NCMP, TARGET)                                            \
    __attribute__((target(TARGET))) static int NAME(const float *const *x, int k, size_t off,      \
                                                    float *buf)                                    \
    {                                                                                              \
        const __m256 zero = _mm256_setzero_ps(), inf = _mm256_set1_ps(INFINITY);                   \
        __m256 bad = zero;                                                                         \
        for (int g = 0; g < k; g += G)                                                             \
            for (int c = 0; c < CW_BLK; c += 8) {                                                  \
                __m256 r[G];                                                                       \
                OHM_CW_LOAD_SORT(r, G, NET, NCMP, g)                                               \
                _Pragma("GCC unroll 16") for (int i = 0; i < G; i++)                               \
                    _mm256_store_ps(buf + (size_t)(g + i) * CW_BLK + c, r[i]);                     \
            }                                                                                      \
        return _mm256_movemask_ps(_mm256_cmp_ps(bad, bad, _CMP_UNORD_Q)) != 0;                     \
    }

OHM_CW_GROUP_KERNEL(group4_avx2, 4, batcher4, 5, "avx2,fma")
OHM_CW_GROUP_KERNEL(group8_avx2, 8, batcher16, 19, "avx2,fma")
OHM_CW_GROUP_KERNEL(group16_avx512vl, 16, batcher16, 63, "avx2,fma,avx512f,avx512vl")

/* Fused kernels for k <= G: the whole sort happens in registers, so the
 * result (midpoint of positions lo and hi, or the mean of lo..hi) is taken
 * there too and written to res[CW_BLK]; the block buffer is never touched.
 * The kept values are sorted here, so their sum does not depend on the input
 * order; it is still taken in double, as the generic path does. Returns 1 if
 * the block holds a non-finite value (res is then garbage). */
#define OHM_CW_FUSED_KERNEL(NAME, G, NET, NCMP, TARGET)                                            \
    __attribute__((target(TARGET))) static int NAME(const float *const *x, int k, size_t off,      \
                                                    int lo, int hi, int median, double inv,        \
                                                    float *res)                                    \
    {                                                                                              \
        const __m256 zero = _mm256_setzero_ps(), inf = _mm256_set1_ps(INFINITY);                   \
        const __m256 half = _mm256_set1_ps(0.5f);                                                  \
        __m256 bad = zero;                                                                         \
        for (int c = 0; c < CW_BLK; c += 8) {                                                      \
            __m256 r[G];                                                                           \
            OHM_CW_LOAD_SORT(r, G, NET, NCMP, 0)                                                   \
            if (median) {                                                                          \
                __m256 m = _mm256_add_ps(_mm256_mul_ps(half, r[lo]), _mm256_mul_ps(half, r[hi]));  \
                _mm256_storeu_ps(res + c, m);                                                      \
                continue;                                                                          \
            }                                                                                      \
            __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();                            \
            for (int i = lo; i <= hi; i++)                                                         \
                OHM_CW_ACC(a0, a1, r[i]);                                                          \
            OHM_CW_STORE_SCALED(res + c, a0, a1, inv);                                             \
        }                                                                                          \
        return _mm256_movemask_ps(_mm256_cmp_ps(bad, bad, _CMP_UNORD_Q)) != 0;                     \
    }

OHM_CW_FUSED_KERNEL(fused4_avx2, 4, batcher4, 5, "avx2,fma")
OHM_CW_FUSED_KERNEL(fused8_avx2, 8, batcher16, 19, "avx2,fma")
OHM_CW_FUSED_KERNEL(fused16_avx512vl, 16, batcher16, 63, "avx2,fma,avx512f,avx512vl")

/* Fused kernels for G < k <= 2G: rows 0..G-1 sorted into A, the rest into B
 * (+Inf padding on top), both in registers; then no merge network at all.
 * For sorted A and B the m smallest of A u B are min(A[i], B[m-1-i]), i < m,
 * and the t largest of A u B' (B' = B without the padding, nb long) are
 * max(A[G-1-j], B'[nb-t+j]), j < t (a missing B' entry counts as -Inf).
 * Median: position lo is the largest of its lo+1 smallest, position hi the
 * smallest of the k-hi largest (both <= G when k <= 2G). Trimmed mean: the
 * values at positions lo..hi summed in double (b <= G here, as b < k/2). */
#define OHM_CW_FUSED2_KERNEL(NAME, G, NET, NCMP, TARGET)                                           \
    __attribute__((target(TARGET))) static int NAME(const float *const *x, int k, size_t off,      \
                                                    int lo, int hi, int median, double inv,        \
                                                    float *res)                                    \
    {                                                                                              \
        const __m256 zero = _mm256_setzero_ps(), inf = _mm256_set1_ps(INFINITY);                   \
        const __m256 half = _mm256_set1_ps(0.5f), ninf = _mm256_set1_ps(-INFINITY);                \
        const int nb = k - G, ns = lo, nl = median ? k - hi : k - 1 - hi;                          \
        __m256 bad = zero;                                                                         \
        for (int c = 0; c < CW_BLK; c += 8) {                                                      \
            __m256 r[G], s[G];                                                                     \
            OHM_CW_LOAD_SORT(r, G, NET, NCMP, 0)                                                   \
            OHM_CW_LOAD_SORT(s, G, NET, NCMP, G)                                                   \
            /* the smallest of the nl largest: position hi (median) or hi+1 */                     \
            __m256 top = inf;                                                                      \
            for (int j = 0; j < nl; j++) {                                                         \
                int bi = nb - nl + j;                                                              \
                __m256 v = bi >= 0 ? _mm256_max_ps(r[G - 1 - j], s[bi]) : r[G - 1 - j];            \
                top = _mm256_min_ps(top, v);                                                       \
            }                                                                                      \
            if (median) {                                                                          \
                __m256 vlo = ninf;                                                                 \
                for (int i = 0; i <= lo; i++)                                                      \
                    vlo = _mm256_max_ps(vlo, _mm256_min_ps(r[i], s[lo - i]));                      \
                __m256 m = _mm256_add_ps(_mm256_mul_ps(half, vlo), _mm256_mul_ps(half, top));      \
                _mm256_storeu_ps(res + c, m);                                                      \
                continue;                                                                          \
            }                                                                                      \
            /* R = every value at positions >= lo: the larger of each pair that                    \
             * yields the lo smallest, and the unpaired rest (padding excluded                     \
             * below, being +Inf). thr = top, the value at position hi+1. The                      \
             * kept values are those of R below thr, plus thr itself for the                       \
             * places taken by ties: summed directly, never as a difference of                     \
             * sums (hostile magnitudes would cancel the honest ones away). */                     \
            const __m256 thr = top;                                                                \
            __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();                            \
            __m256 cnt = zero;                                                                     \
            const __m256 one = _mm256_set1_ps(1.0f);                                               \
            for (int i = 0; i < G + nb - ns; i++) {                                                \
                __m256 v = i < ns  ? _mm256_max_ps(r[i], s[ns - 1 - i])                            \
                           : i < G ? r[i]                                                          \
                                   : s[i - G + ns];                                                \
                __m256 keep = _mm256_cmp_ps(v, thr, _CMP_LT_OQ);                                   \
                v = _mm256_and_ps(v, keep);                                                        \
                cnt = _mm256_add_ps(cnt, _mm256_and_ps(one, keep));                                \
                OHM_CW_ACC(a0, a1, v);                                                             \
            }                                                                                      \
            if (nl > 0) {                                                                          \
                __m256 extra =                                                                     \
                    _mm256_mul_ps(_mm256_sub_ps(_mm256_set1_ps((float)(hi - lo + 1)), cnt), thr);  \
                OHM_CW_ACC(a0, a1, extra);                                                         \
            }                                                                                      \
            OHM_CW_STORE_SCALED(res + c, a0, a1, inv);                                             \
        }                                                                                          \
        return _mm256_movemask_ps(_mm256_cmp_ps(bad, bad, _CMP_UNORD_Q)) != 0;                     \
    }

OHM_CW_FUSED2_KERNEL(fused2x8_avx2, 8, batcher16, 19, "avx2,fma")
OHM_CW_FUSED2_KERNEL(fused2x16_avx512vl, 16, batcher16, 63, "avx2,fma,avx512f,avx512vl")
#endif

int ohm_kernel_isa(void)
{
    int level = 0;
#ifdef OHM_CW_REGS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        level = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") ? 2 : 1;
    const char *e = getenv("OHM_ROBUST_ISA");
    if (e && strcmp(e, "generic") == 0) level = 0;
    if (e && strcmp(e, "avx2") == 0 && level > 1) level = 1;
#endif
    return level;
}

typedef int (*group_fn)(const float *const *x, int k, size_t off, float *buf);
typedef int (*fused_fn)(const float *const *x, int k, size_t off, int lo, int hi, int median,
                        double inv, float *res);

/* The fused kernel for k rows: one sorted group for k <= 8 (16 with
 * AVX-512VL's 32 registers), two for k up to twice that; NULL beyond, or
 * when the CPU lacks AVX2. */
static fused_fn pick_fused(int k)
{
#ifdef OHM_CW_REGS
    int level = ohm_kernel_isa();
    if (level >= 1) {
        int wide = level >= 2;
        if (k <= 4) return fused4_avx2;
        if (k <= 8) return fused8_avx2;
        if (wide) return k <= 16 ? fused16_avx512vl : k <= 32 ? fused2x16_avx512vl : NULL;
        if (k <= 16) return fused2x8_avx2;
    }
#endif
    (void)k;
    return NULL;
}

/* The register kernel for k rows: the smallest group size >= k this CPU can
 * run (padding rows cost comparators), else the largest. *G = 0: none. */
static group_fn pick_group(int k, int *G)
{
#ifdef OHM_CW_REGS
    int level = ohm_kernel_isa();
    if (level >= 1) {
        int wide = level >= 2;
        if (k <= 4) {
            *G = 4;
            return group4_avx2;
        }
        if (k <= 8 || !wide) {
            *G = 8;
            return group8_avx2;
        }
        *G = 16;
        return group16_avx512vl;
    }
#endif
    (void)k;
    *G = 0;
    return NULL;
}

/* Comparators over whole rows of the block buffer (min/max over CW_BLK lanes). */
static inline void run_net(float *buf, const int *pair, int ncmp)
{
    for (int e = 0; e < ncmp; e++) {
        float *restrict a = buf + (size_t)pair[2 * e] * CW_BLK;
        float *restrict b = buf + (size_t)pair[2 * e + 1] * CW_BLK;
        for (int c = 0; c < CW_BLK; c++) {
            float p = a[c], q = b[c];
            float l = q < p ? q : p;
            float h = q > p ? q : p;
            b[c] = h;
            a[c] = l;
        }
    }
}

/* The Gram matrix of geomed's start, accumulated during the median pass. */
#define GR_L 32     /* float lanes per pair (four vector chains) */
#define GR_FLUSH 16 /* blocks summed in float before they are added up in double */
typedef struct {
    double *G;   /* (k+1) x (k+1), upper triangle, row-major */
    float *acc;  /* GR_L lanes per pair (i <= j), since the last flush */
    size_t from; /* first coordinate since the last flush */
    int blocks;  /* blocks since the last flush */
    int avx2;    /* gram_pairs_avx2 may run */
} gram_t;

/* Component c of centred vector i (see gram_block), in double. */
static inline double centred(const float *const *x, int k, int i, size_t c, const float *out)
{
    return i < k ? (double)x[i][c] - out[c] : (double)out[c];
}

/* Adds the float lanes to G and clears them. A pair whose lanes are not all
 * finite (hostile magnitudes overflow a float product; a non-finite row) is
 * summed again in double from the inputs over the coordinates [from, to). */
static void gram_flush(const float *const *x, int k, const float *out, size_t to, gram_t *g)
{
    const size_t K = (size_t)k + 1;
    float *a = g->acc;
    for (size_t i = 0; i < K; i++)
        for (size_t j = i; j < K; j++, a += GR_L) {
            double v = 0;
            int ok = 1;
            for (int l = 0; l < GR_L; l++) {
                ok &= a[l] >= -FLT_MAX && a[l] <= FLT_MAX; /* NaN fails both */
                v += a[l];
                a[l] = 0.0f;
            }
            if (!ok) {
                v = 0;
                for (size_t c = g->from; c < to; c++)
                    v += centred(x, k, (int)i, c, out) * centred(x, k, (int)j, c, out);
            }
            g->G[i * K + j] += v;
        }
    g->from = to;
    g->blocks = 0;
}

#ifdef OHM_CW_REGS
/* gram_block's products on AVX2: four independent FMA chains per pair, so the
 * sums are limited by the loads rather than by the addition's latency. */
__attribute__((target("avx2,fma"))) static void gram_pairs_avx2(const float *buf, size_t K,
                                                                size_t n, float *acc)
{
    for (size_t i = 0; i < K; i++) {
        const float *yi = buf + i * CW_BLK;
        for (size_t j = i; j < K; j++, acc += GR_L) {
            const float *yj = buf + j * CW_BLK;
            __m256 a0 = _mm256_loadu_ps(acc), a1 = _mm256_loadu_ps(acc + 8),
                   a2 = _mm256_loadu_ps(acc + 16), a3 = _mm256_loadu_ps(acc + 24);
            size_t c = 0;
            for (; c + 32 <= n; c += 32) {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(yi + c), _mm256_loadu_ps(yj + c), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(yi + c + 8), _mm256_loadu_ps(yj + c + 8), a1);
                a2 =
                    _mm256_fmadd_ps(_mm256_loadu_ps(yi + c + 16), _mm256_loadu_ps(yj + c + 16), a2);
                a3 =
                    _mm256_fmadd_ps(_mm256_loadu_ps(yi + c + 24), _mm256_loadu_ps(yj + c + 24), a3);
            }
            for (; c + 8 <= n; c += 8)
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(yi + c), _mm256_loadu_ps(yj + c), a0);
            _mm256_storeu_ps(acc, a0);
            _mm256_storeu_ps(acc + 8, a1);
            _mm256_storeu_ps(acc + 16, a2);
            _mm256_storeu_ps(acc + 24, a3);
            for (; c < n; c++)
                acc[0] += yi[c] * yj[c];
        }
    }
}
#endif

/* Accumulates the Gram matrix of v_0..v_k over one block of n coordinates at
 * off: v_i = x_i - o for i < k (rows centred on the block's median o =
 * out + off), v_k = o. Products go to GR_L float lanes per pair (a fixed
 * order, so the result is deterministic), flushed to double every GR_FLUSH
 * blocks. buf: (k+1) x CW_BLK floats. */
OHM_HOT static void gram_block(const float *const *x, int k, size_t off, size_t n, const float *out,
                               float *restrict buf, gram_t *g)
{
    const size_t K = (size_t)k + 1, n8 = n / GR_L * GR_L;
    const float *o = out + off;
    for (int i = 0; i < k; i++) {
        const float *src = x[i] + off;
        float *y = buf + (size_t)i * CW_BLK;
        for (size_t c = 0; c < n; c++)
            y[c] = src[c] - o[c];
    }
    memcpy(buf + (size_t)k * CW_BLK, o, sizeof(float) * n);
    float *restrict acc = g->acc;
#ifdef OHM_CW_REGS
    if (g->avx2) {
        gram_pairs_avx2(buf, K, n, acc);
        goto counted;
    }
#endif
    for (size_t i = 0; i < K; i++) {
        const float *restrict yi = buf + i * CW_BLK;
        for (size_t j = i; j < K; j++, acc += GR_L) {
            const float *restrict yj = buf + j * CW_BLK;
            float a[GR_L];
            for (int l = 0; l < GR_L; l++)
                a[l] = acc[l];
            for (size_t c = 0; c < n8; c += GR_L)
                for (int l = 0; l < GR_L; l++)
                    a[l] += yi[c + l] * yj[c + l];
            for (size_t c = n8; c < n; c++)
                a[0] += yi[c] * yj[c];
            for (int l = 0; l < GR_L; l++)
                acc[l] = a[l];
        }
    }
#ifdef OHM_CW_REGS
counted:
#endif
    if (++g->blocks == GR_FLUSH) gram_flush(x, k, out, off + n, g);
}

typedef struct {
    const int *full; /* whole network */
    int nfull;
    const int *suffix; /* stages p >= G, after the register kernel */
    int nsuffix;
    group_fn group; /* NULL: generic path only */
    fused_fn fused; /* k <= 8 on AVX2: sort and result in registers */
    int lo, hi, median;
} cw_plan_t;

/* One pass: for each block, sort (register kernel + suffix network, or the
 * generic copy with NaN -> +Inf and the whole network), then write the median
 * (midpoint of positions lo and hi) or the mean of positions lo..hi. absmax[i]
 * collects row i's largest |x| bits in the blocks that took the generic path
 * (every block holding a non-finite value does). When dist2 is given, the
 * squared distance of every row to the output is added to it in the same pass;
 * when gram is, the Gram matrix of the rows centred on the output (gram_block),
 * while the block is still in cache (geomed's start). */
OHM_HOT static void coordwise_pass(const float *const *x, int k, size_t d, const cw_plan_t *pl,
                                   float *restrict buf, uint32_t *absmax, double *dist2,
                                   gram_t *gram, float *restrict out)
{
    const int lo = pl->lo, hi = pl->hi;
    const double inv = 1.0 / (double)(hi - lo + 1);
    for (size_t off = 0; off < d; off += CW_BLK) {
        size_t n = d - off < CW_BLK ? d - off : CW_BLK;
        float res[CW_BLK];
        if (n == CW_BLK && pl->fused && !pl->fused(x, k, off, lo, hi, pl->median, inv, res))
            goto have_res; /* sorted and reduced in registers */
        if (n == CW_BLK && pl->group && !pl->group(x, k, off, buf)) {
            run_net(buf, pl->suffix, pl->nsuffix);
        } else {
            for (int i = 0; i < k; i++) {
                const float *src = x[i] + off;
                float *dst = buf + (size_t)i * CW_BLK;
                uint32_t m = 0;
                for (size_t c = 0; c < n; c++) {
                    uint32_t u = fbits(src[c]);
                    uint32_t a = u & 0x7fffffffu;
                    m = a > m ? a : m;
                    dst[c] = a > ABS_INF ? INFINITY : src[c];
                }
                for (size_t c = n; c < CW_BLK; c++)
                    dst[c] = 0.0f;
                absmax[i] = m > absmax[i] ? m : absmax[i];
            }
            run_net(buf, pl->full, pl->nfull);
        }
        if (pl->median) {
            const float *a = buf + (size_t)lo * CW_BLK, *b = buf + (size_t)hi * CW_BLK;
            for (int c = 0; c < CW_BLK; c++)
                res[c] = 0.5f * a[c] + 0.5f * b[c];
        } else {
            /* the kept values are not sorted among themselves (the network
             * only separates them from the trimmed ones), so they are summed
             * in double: the result is then, up to double rounding, the same
             * whatever the order of the inputs */
            double acc[CW_BLK];
            for (int c = 0; c < CW_BLK; c++)
                acc[c] = 0.0;
            int r = lo;
            for (; r + 4 <= hi + 1; r += 4) {
                const float *a = buf + (size_t)r * CW_BLK;
                for (int c = 0; c < CW_BLK; c++)
                    acc[c] += ((double)a[c] + a[c + CW_BLK]) +
                              ((double)a[c + 2 * CW_BLK] + a[c + 3 * CW_BLK]);
            }
            for (; r <= hi; r++) {
                const float *a = buf + (size_t)r * CW_BLK;
                for (int c = 0; c < CW_BLK; c++)
                    acc[c] += a[c];
            }
            for (int c = 0; c < CW_BLK; c++)
                res[c] = (float)(acc[c] * inv);
        }
    have_res:;
        const float *own = x[0] + off;
        float *o = out + off;
        for (size_t c = 0; c < n; c++)
            o[c] = sane(res[c], own[c]);
        if (dist2)
            for (int i = 0; i < k; i++)
                dist2[i] += sqdist(x[i] + off, o, n);
        if (gram) gram_block(x, k, off, n, out, buf, gram);
    }
    if (gram && gram->blocks) gram_flush(x, k, out, d, gram);
}

int ohm_coordwise_run(const float *const *x, int k, size_t d, int lo, int hi, int median,
                      uint32_t *absmax, double *dist2, double *gram, float *out)
{
    const size_t K = (size_t)k + 1;
    gram_t g = {gram, NULL, 0, 0, ohm_kernel_isa() >= 1};
    if (gram && !(g.acc = calloc(K * (K + 1) / 2 * GR_L, sizeof(float)))) return OHM_ROBUST_ENOMEM;
    cw_plan_t pl = {0};
    pl.lo = lo;
    pl.hi = hi;
    pl.median = median;
    int G = 0;
    pl.group = pick_group(k, &G);
    pl.fused = pick_fused(k);
    net_t full = {0}, suffix = {0};
    int rc = net_build(&full, k, lo, hi, median, 1);
    if (!rc && pl.group) rc = net_build(&suffix, k, lo, hi, median, G);
    size_t rows = ((size_t)k + 1 + 15) / 16 * 16; /* k + 1: gram_block's centred rows */
    float *buf = rc ? NULL : aligned_alloc(64, sizeof(float) * CW_BLK * rows);
    if (!buf) {
        free(full.pair);
        free(suffix.pair);
        free(g.acc);
        return OHM_ROBUST_ENOMEM;
    }
    pl.full = full.pair;
    pl.nfull = full.n;
    pl.suffix = suffix.pair;
    pl.nsuffix = suffix.n;
    coordwise_pass(x, k, d, &pl, buf, absmax, dist2, gram ? &g : NULL, out);
    free(buf);
    free(full.pair);
    free(suffix.pair);
    free(g.acc);
    return OHM_ROBUST_OK;
}
