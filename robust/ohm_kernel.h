/* ohm_kernel: what the kernels of robust/ share (internal to robust/): block
 * sizes, the switches between the portable and the vector paths, and the
 * small reductions every pass uses.
 *
 * The hot loops are compiled twice (AVX2 and baseline x86-64, OHM_HOT) and the
 * CPU picks at load time; the register kernels (OHM_CW_REGS) are written with
 * AVX2/AVX-512 intrinsics and chosen at run time (ohm_kernel_isa). Defining
 * OHM_ROBUST_GENERIC builds the portable path only. */
#ifndef OHM_KERNEL_H
#define OHM_KERNEL_H

#include <float.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef DS_BLK
#define DS_BLK 1024 /* coordinates per block in the distance passes */
#endif
#define LANES 16 /* independent float accumulators in reductions */

#if defined(__x86_64__) && defined(__has_attribute) && !defined(OHM_ROBUST_GENERIC)
#if __has_attribute(target_clones)
#define OHM_HOT __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef OHM_HOT
#define OHM_HOT
#endif

#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_include) &&                          \
    !defined(OHM_ROBUST_GENERIC)
#if __has_include(<immintrin.h>)
#include <immintrin.h>
#define OHM_CW_REGS 1
#endif
#endif

#define ABS_INF 0x7f800000u /* |x| bit pattern of +Inf: anything >= is non-finite */

/* The vector kernels this CPU can run: 0 none, 1 AVX2+FMA, 2 also AVX-512VL
 * (always 0 without OHM_CW_REGS). OHM_ROBUST_ISA=generic|avx2 in the
 * environment lowers it, so that every path can be tested (and compared) on
 * one machine. */
int ohm_kernel_isa(void);

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

#endif
