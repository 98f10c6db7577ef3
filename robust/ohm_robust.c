/* ohm_robust: robust decentralized aggregation rules (DESIGN section 5).
 *
 * Conventions shared by every rule (the header gives the interface):
 * - Row 0 is the peer's own vector; it is trusted (never dropped by the
 *   selection rules) unless it is itself non-finite.
 * - A row holding any NaN or +-Inf is hostile. Distance-based rules (krum,
 *   multi-krum, faba, ios, cc, scc, geomed) give it distance +Inf and drop it
 *   before anything else; mean and weighted drop it and renormalize the
 *   remaining weights (a deliberate choice: they have no robustness, but a
 *   single NaN must not poison a whole network). Coordinate-wise rules
 *   (trimmed-mean, median) order NaN as +Inf per coordinate, so trimming
 *   removes it whenever at most b values of that coordinate are bad.
 *   Such rows are counted in st->nonfinite.
 * - Last line of defence: an output coordinate that would still be non-finite
 *   (only possible when more inputs are hostile than the rule tolerates, or when
 *   finite inputs overflow) takes the own value, or 0 if that is not finite.
 * - w may be NULL: rules that use weights then use 1/k each. Weights must be
 *   finite and >= 0 (else OHM_ROBUST_EARGS).
 * - Sums run in a fixed order, so the same inputs give bitwise the same output.
 *
 * Performance: every rule streams through the k rows in blocks of coordinates.
 * Coordinate-wise rules bring a k x CW_BLK block into a small buffer and run a
 * comparator network over whole rows of it (min/max over CW_BLK lanes at a
 * time, so it vectorizes); on x86-64 with AVX2 aligned groups of up to 16 rows
 * are first sorted in registers. Distance-based rules accumulate all the
 * distances they need in one pass over the blocks. The hot loops are compiled
 * twice (AVX2 and baseline x86-64) and the CPU picks at load time; defining
 * OHM_ROBUST_GENERIC builds the portable path only. */
#include "ohm_robust.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CW_BLK 128 /* coordinates per block in the coordinate-wise rules */
#ifndef DS_BLK
#define DS_BLK 1024 /* coordinates per block in the distance passes */
#endif
#define WM_BLK 256 /* coordinates per block in the weighted mean (checked, then summed) */
#define LANES 16   /* independent float accumulators in reductions */
#ifndef GRAM_MAX
#define GRAM_MAX 16 /* geomed: most rows for the Gram-matrix iteration */
#endif

#if defined(__x86_64__) && defined(__has_attribute) && !defined(OHM_ROBUST_GENERIC)
#if __has_attribute(target_clones)
#define OHM_HOT __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef OHM_HOT
#define OHM_HOT
#endif

#define ABS_INF 0x7f800000u /* |x| bit pattern of +Inf: anything >= is non-finite */

static const char *const rule_names[OHM_RULE_COUNT] = {
    "mean",       "weighted", "trimmed-mean", "median", "geomed", "krum",
    "multi-krum", "cc",       "scc",          "faba",   "ios"};

void ohm_rule_defaults(ohm_rule_params_t *p, ohm_rule_t rule)
{
    assert(p);
    p->rule = rule;
    p->b = 0;
    p->tau = 1.0;
    p->nu = 1e-6;
    p->iters = 8;
    p->tol = 1e-5;
    p->m = 0;
}

int ohm_rule_from_name(const char *name)
{
    if (!name) return -1;
    for (int r = 0; r < OHM_RULE_COUNT; r++)
        if (strcmp(name, rule_names[r]) == 0) return r;
    return -1;
}

const char *ohm_rule_name(ohm_rule_t r)
{
    return (unsigned)r < OHM_RULE_COUNT ? rule_names[r] : "unknown";
}

/* ---------------------------------------------------------------- kernels */

static inline uint32_t fbits(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

/* Largest |x| bit pattern of x[0..n): >= ABS_INF iff some value is NaN/Inf. */
static inline uint32_t absmax_bits(const float *x, size_t n)
{
    uint32_t m = 0;
    for (size_t c = 0; c < n; c++) {
        uint32_t u = fbits(x[c]) & 0x7fffffffu;
        m = u > m ? u : m;
    }
    return m;
}

/* Sum of the LANES accumulators by halving (vector adds, not a serial chain). */
static inline float lanes_sum(float *acc)
{
    for (int w = LANES / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; l++)
            acc[l] += acc[l + w];
    return acc[0];
}

/* sum (a - b)^2 over n floats. Summed in float lanes (fast), and redone in
 * double when that overflows, which only hostile magnitudes (|x| > ~1e19) do. */
static inline double sqdist(const float *a, const float *b, size_t n)
{
    float acc[LANES] = {0};
    size_t c = 0;
    for (; c + LANES <= n; c += LANES)
        for (int l = 0; l < LANES; l++) {
            float t = a[c + l] - b[c + l];
            acc[l] += t * t;
        }
    float s = lanes_sum(acc);
    for (; c < n; c++) {
        float t = a[c] - b[c];
        s += t * t;
    }
    if (s <= FLT_MAX) return s;
    double sd = 0;
    for (size_t i = 0; i < n; i++) {
        double t = (double)a[i] - (double)b[i];
        sd += t * t;
    }
    return sd;
}

/* sum a^2 over n floats, redone in double on overflow like sqdist. */
static inline double sqnorm(const float *a, size_t n)
{
    float acc[LANES] = {0};
    size_t c = 0;
    for (; c + LANES <= n; c += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += a[c + l] * a[c + l];
    float s = lanes_sum(acc);
    for (; c < n; c++)
        s += a[c] * a[c];
    if (s <= FLT_MAX) return s;
    double sd = 0;
    for (size_t i = 0; i < n; i++)
        sd += (double)a[i] * a[i];
    return sd;
}

/* v if finite, else the own value if finite, else 0. */
static inline float sane(float v, float own)
{
    float o = (fbits(own) & 0x7fffffffu) < ABS_INF ? own : 0.0f;
    return (fbits(v) & 0x7fffffffu) < ABS_INF ? v : o;
}

/* --------------------------------------------------- coordinate-wise rules */

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
#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_include) &&                          \
    !defined(OHM_ROBUST_GENERIC)
#if __has_include(<immintrin.h>)
#include <immintrin.h>
#define OHM_CW_REGS 1
#endif
#endif

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

/* The vector kernels this CPU can run: 0 none, 1 AVX2+FMA, 2 also AVX-512VL.
 * OHM_ROBUST_ISA=generic|avx2 in the environment lowers it, so that every path
 * can be tested (and compared) on one machine. */
#ifdef OHM_CW_REGS
static int isa_level(void)
{
    int level = 0;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        level = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") ? 2 : 1;
    const char *e = getenv("OHM_ROBUST_ISA");
    if (e && strcmp(e, "generic") == 0) level = 0;
    if (e && strcmp(e, "avx2") == 0 && level > 1) level = 1;
    return level;
}
#endif

typedef int (*group_fn)(const float *const *x, int k, size_t off, float *buf);
typedef int (*fused_fn)(const float *const *x, int k, size_t off, int lo, int hi, int median,
                        double inv, float *res);

/* The fused kernel for k rows: one sorted group for k <= 8 (16 with
 * AVX-512VL's 32 registers), two for k up to twice that; NULL beyond, or
 * when the CPU lacks AVX2. */
static fused_fn pick_fused(int k)
{
#ifdef OHM_CW_REGS
    int level = isa_level();
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
    int level = isa_level();
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

/* Median (lo, hi the middle positions) or trimmed mean (keep positions lo..hi).
 * Scratch: the networks and a (k rounded up to 16) x CW_BLK float buffer. */
static int coordwise(const float *const *x, int k, size_t d, int lo, int hi, int median,
                     uint32_t *absmax, double *dist2, gram_t *gram, float *out)
{
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
        return OHM_ROBUST_ENOMEM;
    }
    pl.full = full.pair;
    pl.nfull = full.n;
    pl.suffix = suffix.pair;
    pl.nsuffix = suffix.n;
    coordwise_pass(x, k, d, &pl, buf, absmax, dist2, gram, out);
    free(buf);
    free(full.pair);
    free(suffix.pair);
    return OHM_ROBUST_OK;
}

/* ---------------------------------------------------------- weighted mean */

/* One block of out = sum_j (ws[j] inv) rp[j] over the na listed rows, up to
 * four rows per sweep of a float accumulator (a fixed grouping, so the result
 * is deterministic); returns the position in rp of the first row found
 * non-finite in this block, or -1. The weights are scaled to sum to one, so
 * the sums are convex combinations and stay finite for finite inputs (short of
 * rounding past FLT_MAX, which sane() then catches): the finiteness check runs
 * once on the sums, and the rows are searched only when it fails. */
OHM_HOT static int wmean_block(const float *const *rp, const double *ws, int na, size_t off,
                               size_t n, double inv, const float *own, float *restrict out)
{
    float acc[WM_BLK];
    for (int j = 0; j < na; j += 4) {
        const int m = na - j < 4 ? na - j : 4, first = j == 0;
        const float *a0 = rp[j] + off, *a1 = m > 1 ? rp[j + 1] + off : a0,
                    *a2 = m > 2 ? rp[j + 2] + off : a0, *a3 = m > 3 ? rp[j + 3] + off : a0;
        const float w0 = (float)(ws[j] * inv), w1 = m > 1 ? (float)(ws[j + 1] * inv) : 0,
                    w2 = m > 2 ? (float)(ws[j + 2] * inv) : 0,
                    w3 = m > 3 ? (float)(ws[j + 3] * inv) : 0;
        switch (m) {
        case 4:
            for (size_t c = 0; c < n; c++)
                acc[c] = (first ? 0.0f : acc[c]) +
                         ((w0 * a0[c] + w1 * a1[c]) + (w2 * a2[c] + w3 * a3[c]));
            break;
        case 3:
            for (size_t c = 0; c < n; c++)
                acc[c] = (first ? 0.0f : acc[c]) + ((w0 * a0[c] + w1 * a1[c]) + w2 * a2[c]);
            break;
        case 2:
            for (size_t c = 0; c < n; c++)
                acc[c] = (first ? 0.0f : acc[c]) + (w0 * a0[c] + w1 * a1[c]);
            break;
        default:
            for (size_t c = 0; c < n; c++)
                acc[c] = (first ? 0.0f : acc[c]) + w0 * a0[c];
            break;
        }
    }
    if (na == 0)
        for (size_t c = 0; c < n; c++)
            acc[c] = 0.0f;
    /* exponent all ones (NaN/Inf) carries into bit 31 when one is added to it;
     * integer ORs, so the check vectorizes (a float reduction would not) */
    uint32_t probe = 0;
    for (size_t c = 0; c < n; c++)
        probe |= (fbits(acc[c]) & 0x7f800000u) + 0x00800000u;
    if (probe & 0x80000000u)
        for (int j = 0; j < na; j++)
            if (absmax_bits(rp[j] + off, n) >= ABS_INF) return j;
    own += off;
    for (size_t c = 0; c < n; c++)
        out[off + c] = sane(acc[c], own[c]);
    return -1;
}

/* out = sum over active rows of wt[i] x_i / sum of those wt. A row found
 * non-finite is deactivated (counted in *nbad) and the pass restarts without
 * it, so finite inputs cost one pass. If no weight remains, out is the own
 * vector (sanitized). rp, ws, idx: k-entry scratch. */
static void wmean(const float *const *x, int k, size_t d, const double *wt, unsigned char *act,
                  const float **rp, double *ws, int *idx, float *out, int *nbad)
{
    for (;;) {
        double s = 0;
        int na = 0;
        for (int i = 0; i < k; i++)
            if (act[i] && wt[i] > 0) {
                s += wt[i];
                rp[na] = x[i];
                ws[na] = wt[i];
                idx[na++] = i;
            }
        if (!(s > 0)) {
            for (size_t c = 0; c < d; c++)
                out[c] = sane(x[0][c], 0.0f);
            return;
        }
        int bad = -1;
        for (size_t off = 0; off < d && bad < 0; off += WM_BLK)
            bad = wmean_block(rp, ws, na, off, d - off < WM_BLK ? d - off : WM_BLK, 1.0 / s, x[0],
                              out);
        if (bad < 0) return;
        act[idx[bad]] = 0;
        (*nbad)++;
    }
}

/* --------------------------------------------------------- distance passes */

/* D[i*k+j] = ||x_i - x_j||^2 for all pairs, in one pass over the blocks. */
OHM_HOT static void pairwise_pass(const float *const *x, int k, size_t d, double *D,
                                  uint32_t *absmax)
{
    for (size_t off = 0; off < d; off += DS_BLK) {
        size_t n = d - off < DS_BLK ? d - off : DS_BLK;
        for (int i = 0; i < k; i++) {
            uint32_t m = absmax_bits(x[i] + off, n);
            absmax[i] = m > absmax[i] ? m : absmax[i];
        }
        for (int i = 0; i < k; i++)
            for (int j = i + 1; j < k; j++)
                D[(size_t)i * k + j] += sqdist(x[i] + off, x[j] + off, n);
    }
    for (int i = 0; i < k; i++) {
        D[(size_t)i * k + i] = 0;
        for (int j = i + 1; j < k; j++)
            D[(size_t)j * k + i] = D[(size_t)i * k + j];
    }
}

/* dist2[i] = ||x_i - ref||^2 for every row, one pass. */
OHM_HOT static void dist_pass(const float *const *x, int k, size_t d, const float *ref,
                              double *dist2, uint32_t *absmax)
{
    for (size_t off = 0; off < d; off += DS_BLK) {
        size_t n = d - off < DS_BLK ? d - off : DS_BLK;
        for (int i = 0; i < k; i++) {
            uint32_t m = absmax_bits(x[i] + off, n);
            absmax[i] = m > absmax[i] ? m : absmax[i];
            dist2[i] += sqdist(x[i] + off, ref + off, n);
        }
    }
}

#ifdef OHM_CW_REGS
/* combine_pass for at most 8 active rows on AVX2, in one sweep per 8
 * coordinates: the new value, ||z_new - z||^2, ||z_new||^2, the store and
 * every row's squared distance to it, with the rows still in L1. Sums are
 * taken per DS_BLK block in float lanes and added up in double. The active
 * rows are finite and the coefficients convex, so a value can only leave the
 * floats by rounding past FLT_MAX: a block whose ||z_new||^2 is not finite is
 * then sanitized afterwards and its sums redone in double (its ||z_new - z||^2
 * becomes +Inf when z was overwritten: that only delays the stopping test). */
__attribute__((target("avx2,fma"))) static void
combine_small_avx2(const float *const *rp, const float *cf, const int *ri, int na, size_t d,
                   float c0, const float *z, const float *own, float *out, double *dist2,
                   double *sdz, double *szn)
{
    const __m256 vc0 = _mm256_set1_ps(c0), zero = _mm256_setzero_ps();
    const int aliased = z == out;
    __m256 vcf[8];
    for (int j = 0; j < na; j++)
        vcf[j] = _mm256_set1_ps(cf[j]);
    for (size_t off = 0; off < d; off += DS_BLK) {
        size_t n = d - off < DS_BLK ? d - off : DS_BLK, n8 = n / 8 * 8;
        __m256 vdz = zero, vzn = zero, vd[8];
        for (int j = 0; j < na; j++)
            vd[j] = zero;
        for (size_t c = off; c < off + n8; c += 8) {
            __m256 zc = _mm256_loadu_ps(z + c); /* read before out + c is written */
            __m256 a = _mm256_mul_ps(vc0, zc);
            for (int j = 0; j < na; j++)
                a = _mm256_fmadd_ps(vcf[j], _mm256_loadu_ps(rp[j] + c), a);
            __m256 t = _mm256_sub_ps(a, zc);
            vdz = _mm256_fmadd_ps(t, t, vdz);
            vzn = _mm256_fmadd_ps(a, a, vzn);
            _mm256_storeu_ps(out + c, a);
            if (dist2)
                for (int j = 0; j < na; j++) {
                    __m256 u = _mm256_sub_ps(_mm256_loadu_ps(rp[j] + c), a);
                    vd[j] = _mm256_fmadd_ps(u, u, vd[j]);
                }
        }
        float bz[8], bn[8];
        _mm256_storeu_ps(bz, vdz);
        _mm256_storeu_ps(bn, vzn);
        double fz = 0, fn = 0;
        for (int l = 0; l < 8; l++)
            fz += bz[l], fn += bn[l];
        /* the tail of the block */
        for (size_t c = off + n8; c < off + n; c++) {
            float zc = z[c], a = c0 * zc;
            for (int j = 0; j < na; j++)
                a += cf[j] * rp[j][c];
            a = sane(a, own[c]);
            fz += ((double)a - zc) * ((double)a - zc);
            fn += (double)a * a;
            out[c] = a;
        }
        const int fix = !(fn <= FLT_MAX);
        if (fix) {
            for (size_t c = off; c < off + n; c++)
                out[c] = sane(out[c], own[c]);
            fn = sqnorm(out + off, n);
            fz = aliased ? INFINITY : sqdist(out + off, z + off, n);
        } else if (!(fz <= FLT_MAX)) {
            fz = aliased ? INFINITY : sqdist(out + off, z + off, n);
        }
        *sdz += fz;
        *szn += fn;
        if (!dist2) continue;
        for (int j = 0; j < na; j++) {
            float b[8];
            _mm256_storeu_ps(b, vd[j]);
            double s = 0;
            for (int l = 0; l < 8; l++)
                s += b[l];
            for (size_t c = off + n8; c < off + n; c++)
                s += ((double)rp[j][c] - out[c]) * ((double)rp[j][c] - out[c]);
            dist2[ri[j]] += !fix && s <= FLT_MAX ? s : sqdist(rp[j] + off, out + off, n);
        }
    }
}
#endif

/* One fused iteration of geomed / cc: z_new = c0 * z + sum_i coef[i] x_i over
 * active rows (z may alias out: each coordinate is read before it is
 * written), written to out; dz2 and zn2 get ||z_new - z||^2 and ||z_new||^2;
 * when dist2 is given it receives ||x_i - z_new||^2 for the next iteration. */
OHM_HOT static void combine_pass(const float *const *x, int k, size_t d, const float *coef,
                                 const unsigned char *act, float c0, const float *z, float *out,
                                 double *dist2, double *dz2, double *zn2)
{
    double sdz = 0, szn = 0;
    const float *rp[8];
    float cf[8];
#ifdef OHM_CW_REGS
    /* up to 8 active rows: the one-sweep kernel, when the CPU has AVX2 */
    int na = 0, ri[8];
    for (int i = 0; i < k && na <= 8; i++)
        if (act[i]) {
            if (na < 8) rp[na] = x[i], cf[na] = coef[i], ri[na] = i;
            na++;
        }
    if (na <= 8 && isa_level() >= 1 && (z == out || z + d <= out || out + d <= z)) {
        combine_small_avx2(rp, cf, ri, na, d, c0, z, x[0], out, dist2, &sdz, &szn);
        if (dz2) *dz2 = sdz;
        if (zn2) *zn2 = szn;
        return;
    }
#endif
    for (size_t off = 0; off < d; off += DS_BLK) {
        size_t n = d - off < DS_BLK ? d - off : DS_BLK;
        float acc[DS_BLK];
        const float *zb = z + off;
        for (size_t c = 0; c < n; c++)
            acc[c] = c0 * zb[c];
        /* four rows per sweep of the accumulator, in row order */
        int na = 0;
        for (int i = 0; i <= k; i++) {
            if (i < k && act[i]) {
                rp[na] = x[i] + off;
                cf[na++] = coef[i];
            }
            if (na == 4) {
                const float *restrict a0 = rp[0], *restrict a1 = rp[1], *restrict a2 = rp[2],
                                      *restrict a3 = rp[3];
                const float w0 = cf[0], w1 = cf[1], w2 = cf[2], w3 = cf[3];
                for (size_t c = 0; c < n; c++)
                    acc[c] += (w0 * a0[c] + w1 * a1[c]) + (w2 * a2[c] + w3 * a3[c]);
                na = 0;
            } else if (i == k) {
                for (int j = 0; j < na; j++)
                    for (size_t c = 0; c < n; c++)
                        acc[c] += cf[j] * rp[j][c];
            }
        }
        const float *own = x[0] + off;
        for (size_t c = 0; c < n; c++)
            acc[c] = sane(acc[c], own[c]);
        sdz += sqdist(acc, zb, n);
        szn += sqnorm(acc, n);
        memcpy(out + off, acc, sizeof(float) * n);
        if (dist2)
            for (int i = 0; i < k; i++)
                if (act[i]) dist2[i] += sqdist(x[i] + off, out + off, n);
    }
    if (dz2) *dz2 = sdz;
    if (zn2) *zn2 = szn;
}

/* ------------------------------------------------------------------ rules */

typedef struct {
    double *D;          /* k*k pairwise squared distances (krum, faba, ios) */
    double *dist2;      /* k */
    double *wt;         /* k: weights in use */
    double *tmp;        /* k */
    float *coef;        /* k */
    uint32_t *absmax;   /* k */
    unsigned char *act; /* k: row still taken into account */
    const float **rp;   /* k: rows listed for wmean */
    int *idx;           /* k */
} scratch_t;

static void scratch_free(scratch_t *s)
{
    free(s->D);
    free(s->dist2);
    free(s->wt);
    free(s->tmp);
    free(s->coef);
    free(s->absmax);
    free(s->act);
    free(s->rp);
    free(s->idx);
}

static int scratch_alloc(scratch_t *s, int k, int need_pairs)
{
    size_t K = (size_t)k;
    memset(s, 0, sizeof *s);
    s->D = need_pairs ? calloc(K * K, sizeof(double)) : NULL;
    s->dist2 = calloc(K, sizeof(double));
    s->wt = calloc(K, sizeof(double));
    s->tmp = calloc(K, sizeof(double));
    s->coef = calloc(K, sizeof(float));
    s->absmax = calloc(K, sizeof(uint32_t));
    s->act = calloc(K, 1);
    s->rp = calloc(K, sizeof(float *));
    s->idx = calloc(K, sizeof(int));
    if ((need_pairs && !s->D) || !s->dist2 || !s->wt || !s->tmp || !s->coef || !s->absmax ||
        !s->act || !s->rp || !s->idx) {
        scratch_free(s);
        return OHM_ROBUST_ENOMEM;
    }
    return OHM_ROBUST_OK;
}

/* Marks rows with NaN/Inf inactive; returns how many. */
static int mark_nonfinite(const scratch_t *s, int k)
{
    int n = 0;
    for (int i = 0; i < k; i++)
        if (s->absmax[i] >= ABS_INF) {
            s->act[i] = 0;
            n++;
        }
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Krum scores: sum of the k-b-2 smallest squared distances to the other rows
 * (non-finite rows are at +Inf from everything and score +Inf themselves). */
static void krum_scores(const scratch_t *s, int k, int b, double *score)
{
    int nn = k - b - 2;
    for (int i = 0; i < k; i++) {
        if (!s->act[i]) {
            score[i] = INFINITY;
            continue;
        }
        int c = 0;
        for (int j = 0; j < k; j++)
            if (j != i) s->tmp[c++] = s->act[j] ? s->D[(size_t)i * k + j] : INFINITY;
        qsort(s->tmp, (size_t)c, sizeof(double), cmp_double);
        double sum = 0;
        for (int j = 0; j < nn; j++)
            sum += s->tmp[j];
        score[i] = sum;
    }
}

/* krum: the row with the smallest score (ties: the lower index), copied.
 * multi-krum: the plain average of the m rows with the smallest scores
 * (m = 0: k - b), among finite rows only. Needs k >= b + 3. */
static int rule_krum(const ohm_rule_params_t *p, const float *const *x, int k, size_t d, float *out,
                     ohm_rule_stats_t *st, scratch_t *s)
{
    pairwise_pass(x, k, d, s->D, s->absmax);
    memset(s->act, 1, (size_t)k);
    st->nonfinite = mark_nonfinite(s, k);
    double *score = s->dist2;
    krum_scores(s, k, p->b, score);
    int m = p->rule == OHM_RULE_KRUM ? 1 : (p->m > 0 ? p->m : k - p->b);
    /* selection by repeated minimum keeps ties in index order */
    unsigned char *chosen = (unsigned char *)s->coef; /* k bytes fit in k floats */
    memset(chosen, 0, (size_t)k);
    int got = 0;
    for (; got < m; got++) {
        int best = -1;
        for (int i = 0; i < k; i++)
            if (s->act[i] && !chosen[i] && (best < 0 || score[i] < score[best])) best = i;
        if (best < 0) break;
        chosen[best] = 1;
    }
    for (int i = 0; i < k; i++) {
        s->act[i] = chosen[i];
        s->wt[i] = 1.0;
    }
    st->discarded = k - got;
    int nbad = 0;
    wmean(x, k, d, s->wt, s->act, s->rp, s->tmp, s->idx, out, &nbad); /* got == 0: own vector */
    return OHM_ROBUST_OK;
}

/* faba / ios: b times, the (uniform for faba, w-weighted for ios) mean of the
 * active rows is formed and the active neighbour (never row 0) farthest from it
 * is dropped (ties: the lower index); non-finite rows are dropped first and use
 * up the b drops. The output is the same kind of mean over what remains.
 * Distances to the mean come from the pairwise table:
 * ||x_i - m||^2 = sum_j a_j D_ij - 1/2 sum_jl a_j a_l D_jl  with sum_j a_j = 1,
 * so the whole selection costs one pass, plus one for the final mean. */
static int rule_faba_ios(const ohm_rule_params_t *p, const float *const *x, const double *w, int k,
                         size_t d, float *out, ohm_rule_stats_t *st, scratch_t *s)
{
    pairwise_pass(x, k, d, s->D, s->absmax);
    memset(s->act, 1, (size_t)k);
    int bad = mark_nonfinite(s, k);
    st->nonfinite = bad;
    int drops = p->b - (bad - (s->absmax[0] >= ABS_INF)); /* self does not use a drop */
    for (int i = 0; i < k; i++)
        s->wt[i] = p->rule == OHM_RULE_IOS && w ? w[i] : 1.0 / k;
    int dropped = bad;
    for (; drops > 0; drops--) {
        double sw = 0;
        for (int i = 0; i < k; i++)
            if (s->act[i]) sw += s->wt[i];
        if (!(sw > 0)) break;
        double *a = s->tmp;
        for (int i = 0; i < k; i++)
            a[i] = s->act[i] ? s->wt[i] / sw : 0.0;
        double spread = 0; /* inactive rows are skipped, not weighted by 0: D may hold NaN */
        for (int j = 0; j < k; j++)
            if (s->act[j])
                for (int l = 0; l < k; l++)
                    if (s->act[l]) spread += a[j] * a[l] * s->D[(size_t)j * k + l];
        int far = -1;
        double fard = -1;
        for (int i = 1; i < k; i++) {
            if (!s->act[i]) continue;
            double di = -0.5 * spread;
            for (int j = 0; j < k; j++)
                if (s->act[j]) di += a[j] * s->D[(size_t)i * k + j];
            if (di > fard) {
                fard = di;
                far = i;
            }
        }
        if (far < 0) break; /* no neighbour left */
        s->act[far] = 0;
        dropped++;
    }
    st->discarded = dropped;
    int nbad = 0;
    wmean(x, k, d, s->wt, s->act, s->rp, s->tmp, s->idx, out, &nbad);
    return OHM_ROBUST_OK;
}

/* The (b+1)-th largest neighbour distance (rows 1..k-1; inactive ones count
 * as +Inf), or 0 when there are at most b neighbours: the adaptive radius
 * clips exactly the b farthest neighbours (fewer on ties). */
static double adaptive_tau(const scratch_t *s, int k, int b)
{
    int c = 0;
    for (int i = 1; i < k; i++)
        s->tmp[c++] = s->act[i] ? sqrt(s->dist2[i]) : INFINITY;
    if (b >= c) return 0.0;
    qsort(s->tmp, (size_t)c, sizeof(double), cmp_double);
    return s->tmp[c - 1 - b];
}

/* Clipping scale of row i: min(1, tau / ||x_i - center||). */
static double clip_scale(double dist, double tau)
{
    return dist <= tau ? 1.0 : tau / dist;
}

/* cc: m starts at the own vector x_0; each of `iters` rounds does
 * m <- m + sum_{j >= 0} w_j clip(x_j - m, tau) (self included; the adaptive
 * radius, tau <= 0, is recomputed every round from the neighbours' distances
 * to m). Non-finite rows contribute nothing. st->clipped: rows clipped in the
 * last round. Each round is one pass (its distances are fused into the
 * previous round's update). */
static int rule_cc(const ohm_rule_params_t *p, const float *const *x, const double *w, int k,
                   size_t d, float *out, ohm_rule_stats_t *st, scratch_t *s)
{
    dist_pass(x, k, d, x[0], s->dist2, s->absmax);
    memset(s->act, 1, (size_t)k);
    st->nonfinite = mark_nonfinite(s, k);
    const float *z = x[0];
    for (int t = 0; t < p->iters; t++) {
        double tau = p->tau > 0 ? p->tau : adaptive_tau(s, k, p->b);
        double sum = 0;
        int clipped = 0;
        for (int i = 0; i < k; i++) {
            double c = 0;
            if (s->act[i]) {
                double dist = sqrt(s->dist2[i]);
                c = (w ? w[i] : 1.0 / k) * clip_scale(dist, tau);
                clipped += dist > tau;
            }
            s->coef[i] = (float)c;
            sum += c;
            s->dist2[i] = 0;
        }
        st->clipped = clipped;
        double dz2, zn2;
        combine_pass(x, k, d, s->coef, s->act, (float)(1.0 - sum), z, out,
                     t + 1 < p->iters ? s->dist2 : NULL, &dz2, &zn2);
        z = out;
    }
    st->iters = p->iters;
    return OHM_ROBUST_OK;
}

/* scc (ClippedGossip): x_0 + sum_{j >= 1} w_j clip(x_j - x_0, tau); fixed tau,
 * or adaptive (tau <= 0) = the (b+1)-th largest neighbour distance to x_0.
 * Non-finite neighbours contribute nothing. Two passes. */
static int rule_scc(const ohm_rule_params_t *p, const float *const *x, const double *w, int k,
                    size_t d, float *out, ohm_rule_stats_t *st, scratch_t *s)
{
    dist_pass(x, k, d, x[0], s->dist2, s->absmax);
    memset(s->act, 1, (size_t)k);
    st->nonfinite = mark_nonfinite(s, k);
    double tau = p->tau > 0 ? p->tau : adaptive_tau(s, k, p->b);
    double sum = 0;
    s->act[0] = 0; /* x_0 enters through c0 */
    s->coef[0] = 0;
    for (int i = 1; i < k; i++) {
        double c = 0;
        if (s->act[i]) {
            double dist = sqrt(s->dist2[i]);
            c = (w ? w[i] : 1.0 / k) * clip_scale(dist, tau);
            st->clipped += dist > tau;
        }
        s->coef[i] = (float)c;
        sum += c;
    }
    combine_pass(x, k, d, s->coef, s->act, (float)(1.0 - sum), x[0], out, NULL, NULL, NULL);
    return OHM_ROBUST_OK;
}

/* out = m + sum_j c_j (x_j - m) over the rows with c_j != 0, m = out on entry:
 * geomed's result from its coefficients (written as a correction of the
 * median, so rows equal to it give it back exactly). */
OHM_HOT static void correct_pass(const float *const *x, int k, size_t d, const double *c,
                                 float *out)
{
    const float *rp[4];
    float cf[4];
    for (size_t off = 0; off < d; off += DS_BLK) {
        size_t n = d - off < DS_BLK ? d - off : DS_BLK;
        float acc[DS_BLK];
        const float *restrict m = out + off;
        for (size_t i = 0; i < n; i++)
            acc[i] = 0.0f;
        /* four rows per sweep of the accumulator; absent ones weigh 0 */
        int na = 0;
        for (int j = 0; j <= k; j++) {
            if (j < k && c[j] != 0) {
                rp[na] = x[j] + off;
                cf[na++] = (float)c[j];
            }
            if (na == 4 || (j == k && na > 0)) {
                for (int r = na; r < 4; r++)
                    rp[r] = m, cf[r] = 0.0f;
                const float *restrict a0 = rp[0], *restrict a1 = rp[1], *restrict a2 = rp[2],
                                      *restrict a3 = rp[3];
                for (size_t i = 0; i < n; i++)
                    acc[i] += (cf[0] * (a0[i] - m[i]) + cf[1] * (a1[i] - m[i])) +
                              (cf[2] * (a2[i] - m[i]) + cf[3] * (a3[i] - m[i]));
                na = 0;
            }
        }
        const float *own = x[0] + off;
        for (size_t i = 0; i < n; i++)
            out[off + i] = sane(m[i] + acc[i], own[i]);
    }
}

/* Smoothed Weiszfeld on z = m + sum_j c_j (x_j - m), entirely in the
 * coefficients: with G the Gram matrix of the centred rows (and m as row k),
 * ||z - x_i||^2 = G_ii - 2 (Gc)_i + c'Gc and ||z||^2 = G_kk + 2 c'G_k + c'Gc.
 * Returns the updates run; c[k] receives the coefficients. */
static int weiszfeld_gram(const ohm_rule_params_t *p, const double *w, int k, const double *G,
                          const unsigned char *act, double *c, double *cn, int *ai)
{
    const size_t K = (size_t)k + 1;
    /* only the finite rows: entries of the others may be NaN */
#define GRAM(i, j) ((i) <= (j) ? G[(size_t)(i)*K + (j)] : G[(size_t)(j)*K + (i)])
    int na = 0;
    for (int i = 0; i < k; i++) {
        c[i] = cn[i] = 0;
        if (act[i]) ai[na++] = i;
    }
    int t = 0;
    while (t < p->iters) {
        double cgc = 0, sb = 0;
        for (int a = 0; a < na; a++) /* c'Gc */
            for (int b = 0; b < na; b++)
                cgc += c[ai[a]] * GRAM(ai[a], ai[b]) * c[ai[b]];
        for (int a = 0; a < na; a++) {
            const int i = ai[a];
            double gi = 0;
            for (int b = 0; b < na; b++)
                gi += GRAM(i, ai[b]) * c[ai[b]];
            double d2 = GRAM(i, i) - 2 * gi + cgc, dist = d2 > 0 ? sqrt(d2) : 0;
            cn[i] = (w ? w[i] : 1.0) / (dist > p->nu ? dist : p->nu);
            sb += cn[i];
        }
        if (!(sb > 0)) break;
        t++;
        /* ||z_new - z||^2 = e'Ge with e = cn - c; ||z_new||^2 from G's last row */
        double dz2 = 0, zn2 = GRAM(k, k);
        for (int a = 0; a < na; a++)
            cn[ai[a]] /= sb;
        for (int a = 0; a < na; a++) {
            const int i = ai[a];
            double ge = 0, gn = 0;
            for (int b = 0; b < na; b++) {
                ge += GRAM(i, ai[b]) * (cn[ai[b]] - c[ai[b]]);
                gn += GRAM(i, ai[b]) * cn[ai[b]];
            }
            dz2 += (cn[i] - c[i]) * ge;
            zn2 += cn[i] * (2 * GRAM(i, k) + gn);
        }
        for (int a = 0; a < na; a++)
            c[ai[a]] = cn[ai[a]];
        if (sqrt(dz2 > 0 ? dz2 : 0) <= p->tol * sqrt(zn2 > 0 ? zn2 : 0)) break;
    }
#undef GRAM
    return t;
}

/* geomed: smoothed Weiszfeld from the coordinate-wise median,
 * z <- sum b_j x_j / sum b_j, b_j = w_j / max(||z - x_j||, nu), over finite
 * rows; stops when ||z_new - z|| <= tol ||z_new|| or after `iters` updates
 * (st->iters). Up to GRAM_MAX rows, the median pass also takes the Gram matrix
 * of the rows centred on the median, the updates run on k coefficients, and
 * one more pass writes the result: three passes whatever the iterations.
 * Beyond, where the Gram matrix costs more than a pass, each update is one
 * pass with its distances fused in. */
static int rule_geomed(const ohm_rule_params_t *p, const float *const *x, const double *w, int k,
                       size_t d, float *out, ohm_rule_stats_t *st, scratch_t *s)
{
    if (k <= GRAM_MAX) {
        const size_t K = (size_t)k + 1;
        double *G = calloc(K * K + 2 * K, sizeof(double));
        float *acc = calloc(K * (K + 1) / 2 * GR_L, sizeof(float));
        if (!G || !acc) {
            free(G);
            free(acc);
            return OHM_ROBUST_ENOMEM;
        }
        double *c = G + K * K, *cn = c + K;
        gram_t gram = {G, acc, 0, 0, 0};
#ifdef OHM_CW_REGS
        gram.avx2 = isa_level() >= 1;
#endif
        int rc = coordwise(x, k, d, (k - 1) / 2, k / 2, 1, s->absmax, NULL, &gram, out);
        if (!rc) {
            memset(s->act, 1, (size_t)k);
            st->nonfinite = mark_nonfinite(s, k);
            st->iters = weiszfeld_gram(p, w, k, G, s->act, c, cn, s->idx);
            if (st->iters) correct_pass(x, k, d, c, out);
        }
        free(G);
        free(acc);
        return rc;
    }
    int rc = coordwise(x, k, d, (k - 1) / 2, k / 2, 1, s->absmax, s->dist2, NULL, out);
    if (rc) return rc;
    memset(s->act, 1, (size_t)k);
    st->nonfinite = mark_nonfinite(s, k);
    int t = 0;
    while (t < p->iters) {
        double sb = 0;
        for (int i = 0; i < k; i++) {
            double dist = sqrt(s->dist2[i]);
            s->tmp[i] = s->act[i] ? (w ? w[i] : 1.0) / (dist > p->nu ? dist : p->nu) : 0.0;
            sb += s->tmp[i];
            s->dist2[i] = 0;
        }
        if (!(sb > 0)) break;
        for (int i = 0; i < k; i++)
            s->coef[i] = (float)(s->tmp[i] / sb);
        double dz2, zn2;
        t++;
        combine_pass(x, k, d, s->coef, s->act, 0.0f, out, out, t < p->iters ? s->dist2 : NULL, &dz2,
                     &zn2);
        if (sqrt(dz2) <= p->tol * sqrt(zn2)) break;
    }
    st->iters = t;
    return OHM_ROBUST_OK;
}

/* ----------------------------------------------------------------- driver */

static int uses_weights(ohm_rule_t r)
{
    return r == OHM_RULE_WEIGHTED || r == OHM_RULE_GEOMED || r == OHM_RULE_CC ||
           r == OHM_RULE_SCC || r == OHM_RULE_IOS;
}

/* Argument checks per rule (OHM_ROBUST_EARGS):
 * all: k >= 1, b >= 0, no NULL row/out when d > 0, weights finite and >= 0;
 * trimmed-mean: k > 2b; krum, multi-krum: k >= b + 3, 0 <= m <= k;
 * faba, ios: b <= k - 1 (b neighbours can be dropped);
 * geomed: nu > 0, iters >= 1, tol >= 0; cc: iters >= 1; cc, scc: tau not NaN. */
static int check_args(const ohm_rule_params_t *p, const float *const *x, const double *w, int k,
                      size_t d, const float *out)
{
    if (!p || (unsigned)p->rule >= OHM_RULE_COUNT || k < 1 || p->b < 0) return 0;
    if (d > 0) {
        if (!x || !out) return 0;
        for (int i = 0; i < k; i++)
            if (!x[i]) return 0;
    }
    if (w && uses_weights(p->rule))
        for (int i = 0; i < k; i++)
            if (!(w[i] >= 0) || !isfinite(w[i])) return 0;
    switch (p->rule) {
    case OHM_RULE_TRIMMED_MEAN:
        return k > 2 * p->b;
    case OHM_RULE_KRUM:
    case OHM_RULE_MULTI_KRUM:
        return k >= p->b + 3 && p->m >= 0 && p->m <= k;
    case OHM_RULE_FABA:
    case OHM_RULE_IOS:
        return p->b <= k - 1;
    case OHM_RULE_GEOMED:
        return p->nu > 0 && p->iters >= 1 && p->tol >= 0;
    case OHM_RULE_CC:
        return p->iters >= 1 && !isnan(p->tau);
    case OHM_RULE_SCC:
        return !isnan(p->tau);
    default:
        return 1;
    }
}

int ohm_robust_aggregate(const ohm_rule_params_t *p, const float *const *x, const double *w, int k,
                         size_t d, float *out, ohm_rule_stats_t *st)
{
    ohm_rule_stats_t dummy;
    if (!st) st = &dummy;
    memset(st, 0, sizeof *st);
    if (!check_args(p, x, w, k, d, out)) return OHM_ROBUST_EARGS;
    if (d == 0) return OHM_ROBUST_OK;

    scratch_t s;
    int pairs = p->rule == OHM_RULE_KRUM || p->rule == OHM_RULE_MULTI_KRUM ||
                p->rule == OHM_RULE_FABA || p->rule == OHM_RULE_IOS;
    if (scratch_alloc(&s, k, pairs)) return OHM_ROBUST_ENOMEM;
    int rc = OHM_ROBUST_OK;
    switch (p->rule) {
    case OHM_RULE_MEAN:
    case OHM_RULE_WEIGHTED: {
        memset(s.act, 1, (size_t)k);
        for (int i = 0; i < k; i++)
            s.wt[i] = p->rule == OHM_RULE_WEIGHTED && w ? w[i] : 1.0 / k;
        wmean(x, k, d, s.wt, s.act, s.rp, s.tmp, s.idx, out, &st->nonfinite);
        st->discarded = st->nonfinite;
        break;
    }
    case OHM_RULE_TRIMMED_MEAN:
        /* self is among the values trimmed: per coordinate, sort self U
         * neighbours, drop the b smallest and b largest, average the rest */
        rc = coordwise(x, k, d, p->b, k - 1 - p->b, 0, s.absmax, NULL, NULL, out);
        st->discarded = 2 * p->b;
        break;
    case OHM_RULE_MEDIAN:
        /* over self U neighbours; even k: midpoint of the two middle values */
        rc = coordwise(x, k, d, (k - 1) / 2, k / 2, 1, s.absmax, NULL, NULL, out);
        break;
    case OHM_RULE_GEOMED:
        rc = rule_geomed(p, x, w, k, d, out, st, &s);
        break;
    case OHM_RULE_KRUM:
    case OHM_RULE_MULTI_KRUM:
        rc = rule_krum(p, x, k, d, out, st, &s);
        break;
    case OHM_RULE_CC:
        rc = rule_cc(p, x, w, k, d, out, st, &s);
        break;
    case OHM_RULE_SCC:
        rc = rule_scc(p, x, w, k, d, out, st, &s);
        break;
    case OHM_RULE_FABA:
    case OHM_RULE_IOS:
        rc = rule_faba_ios(p, x, w, k, d, out, st, &s);
        break;
    default:
        assert(0 && "rule checked above");
    }
    if (p->rule == OHM_RULE_TRIMMED_MEAN || p->rule == OHM_RULE_MEDIAN)
        for (int i = 0; i < k; i++)
            st->nonfinite += s.absmax[i] >= ABS_INF;
    scratch_free(&s);
    return rc;
}
