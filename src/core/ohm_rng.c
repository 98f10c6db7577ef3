/* ohm_rng: xoshiro256** seeded through splitmix64. */
#include "ohm_rng.h"
#include "ohm_xoshiro.h"

#include <assert.h>
#include <math.h>

void ohm_rng_seed(ohm_rng_t *r, uint64_t seed, uint64_t peer, uint64_t purpose)
{
    /* Mix the three parts through splitmix so nearby triples give unrelated streams. */
    uint64_t x = seed;
    uint64_t a = ohm_splitmix64(&x);
    x = a ^ (peer * 0xd1342543de82ef95ULL + 0x632be59bd9b4e019ULL);
    uint64_t b = ohm_splitmix64(&x);
    x = b ^ (purpose * 0xa0761d6478bd642fULL + 0xe7037ed1a0b428dbULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = ohm_splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1; /* the all-zero state is a fixed point */
}

uint64_t ohm_rng_next(ohm_rng_t *r)
{
    return ohm_xoshiro_next(r->s);
}

double ohm_rng_uniform(ohm_rng_t *r)
{
    return (double)(ohm_rng_next(r) >> 11) * 0x1.0p-53;
}

uint32_t ohm_rng_below(ohm_rng_t *r, uint32_t n)
{
    assert(n > 0);
    /* Lemire's multiply-shift with rejection of the biased low range. */
    uint64_t m = (uint64_t)(uint32_t)(ohm_rng_next(r) >> 32) * n;
    uint32_t l = (uint32_t)m;
    if (l < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (uint64_t)(uint32_t)(ohm_rng_next(r) >> 32) * n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double ohm_rng_normal(ohm_rng_t *r)
{
    double u1 = ohm_rng_uniform(r);
    double u2 = ohm_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double ohm_rng_gamma(ohm_rng_t *r, double shape)
{
    assert(shape > 0);
    if (shape < 1.0) {
        /* Boost: Gamma(a) = Gamma(a+1) * U^(1/a). */
        double u = ohm_rng_uniform(r);
        if (u < 1e-300)
            u = 1e-300;
        return ohm_rng_gamma(r, shape + 1.0) * pow(u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = ohm_rng_normal(r);
            v = 1.0 + c * x;
        } while (v <= 0);
        v = v * v * v;
        double u = ohm_rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x)
            return d * v;
        if (u > 0 && log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return d * v;
    }
}

void ohm_rng_shuffle(ohm_rng_t *r, uint32_t *v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = ohm_rng_below(r, (uint32_t)i);
        uint32_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

uint64_t ohm_hash64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return ohm_splitmix64(&h);
}
