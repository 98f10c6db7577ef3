/* ohm_xoshiro: the xoshiro256** generator and its splitmix64 seeder, as static
 * inline functions on a bare state (header only, <stdint.h> only).
 *
 * One definition for every stream in ohmpeer: ohm_rng (the seeded streams of
 * the peers), ohm_bulk (the four-lane analog noise, for its seeds) and
 * robust/ohm_attack.c (the attacks' noise). robust/ uses nothing else from
 * src/: it stays a library of maths on arrays (docs/design.md, section
 * "Layers"). Algorithms: Blackman and Vigna, "Scrambled linear pseudorandom
 * number generators" (2021); splitmix64 from Steele, Lea and Flood (2014). */
#ifndef OHM_XOSHIRO_H
#define OHM_XOSHIRO_H

#include <stdint.h>

/* Advances *x and returns its next splitmix64 output: a seeder whose nearby
 * inputs give unrelated outputs. */
static inline uint64_t ohm_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t ohm_xoshiro_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* The next output of xoshiro256** with state s (not all zero), advanced in place. */
static inline uint64_t ohm_xoshiro_next(uint64_t s[4])
{
    const uint64_t out = ohm_xoshiro_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ohm_xoshiro_rotl(s[3], 45);
    return out;
}

#endif
