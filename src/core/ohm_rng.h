/* ohm_rng: seeded, reproducible random streams (xoshiro256**).
 *
 * A run is fully determined by topology, config and seed: every consumer
 * (initialisation, batches, device spread, pulse trains, attacks) draws from
 * its own stream derived from (run seed, peer id, purpose), so adding a draw in
 * one place never shifts another. The state is a plain value type on purpose:
 * it is embedded in objects and written into checkpoints byte for byte. */
#ifndef OHM_RNG_H
#define OHM_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} ohm_rng_t;

/* Well-known purposes, mixed into a stream so that streams never overlap. */
enum {
    OHM_STREAM_INIT = 1,   /* model initialisation (common to all peers) */
    OHM_STREAM_BATCH = 2,  /* mini-batch sampling */
    OHM_STREAM_DATA = 3,   /* synthetic data generation and partitioning */
    OHM_STREAM_DEVICE = 4, /* device-to-device spread (drawn once) */
    OHM_STREAM_PULSE = 5,  /* stochastic pulse trains, cycle-to-cycle noise */
    OHM_STREAM_READ = 6,   /* read noise */
    OHM_STREAM_ATTACK = 7, /* Byzantine attack noise */
    OHM_STREAM_EVAL = 8,   /* evaluation subsets */
    OHM_STREAM_FLAT = 9,   /* flatness estimators */
    OHM_STREAM_COMM = 10   /* randk's coordinate draws */
};

/* Seeds `r` for (seed, peer, purpose); the same triple always gives the same stream. */
void ohm_rng_seed(ohm_rng_t *r, uint64_t seed, uint64_t peer, uint64_t purpose);

/* Next 64 random bits. */
uint64_t ohm_rng_next(ohm_rng_t *r);

/* Uniform double in [0, 1). */
double ohm_rng_uniform(ohm_rng_t *r);

/* Uniform integer in [0, n); n > 0. Unbiased (rejection). */
uint32_t ohm_rng_below(ohm_rng_t *r, uint32_t n);

/* Standard normal N(0, 1) (Box-Muller on fresh draws; no cached state). */
double ohm_rng_normal(ohm_rng_t *r);

/* Gamma(shape, 1) variate, shape > 0 (Marsaglia-Tsang), for Dirichlet splits. */
double ohm_rng_gamma(ohm_rng_t *r, double shape);

/* Fisher-Yates shuffle of n uint32 values in place. */
void ohm_rng_shuffle(ohm_rng_t *r, uint32_t *v, size_t n);

/* 64-bit mix of a byte string (FNV-1a then splitmix finaliser); for run ids and fingerprints. */
uint64_t ohm_hash64(const void *data, size_t len, uint64_t seed);

#endif
