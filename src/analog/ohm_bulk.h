/* ohm_bulk: random numbers in bulk for the pulse path of the analog tiles.
 *
 * Four xoshiro256** generators run side by side (one vector register each
 * word), seeded per array operation from the tile's own stream (ohm_rng_t,
 * which is what checkpoints save): a tile's results stay a function of its
 * seed, and nothing of this object needs saving between operations.
 *
 * Normals use the Ziggurat method of Marsaglia and Tsang (J. Stat. Softw. 5(8),
 * 2000), 128 layers, with the layer index taken from bits that are not part of
 * the value (the correction of Doornik, 2005): one 32-bit word per draw, 7 bits
 * for the layer and 25 for the value (the resolution of a float); about 1.2 %
 * of draws take the slow path (the wedges and the tail beyond 3.44).
 * Internal to src/analog. */
#ifndef OHM_BULK_H
#define OHM_BULK_H

#include "ohm_rng.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4][4]; /* state word j of the four generators: s[j][lane] */
    uint64_t buf[32]; /* words for the scalar draws */
    int pos;          /* next unused word of buf (32 = empty) */
} ohm_bulk_t;

/* Seeds the four generators from 16 draws of `r` (through splitmix64). */
void ohm_bulk_seed(ohm_bulk_t *b, ohm_rng_t *r);

/* n uniform 32-bit words; n a multiple of 8. */
void ohm_bulk_u32(ohm_bulk_t *b, uint32_t *out, size_t n);

/* One uniform 64-bit word. */
uint64_t ohm_bulk_next(ohm_bulk_t *b);

/* n standard normals (Ziggurat). */
void ohm_bulk_normal(ohm_bulk_t *b, float *out, size_t n);

#endif
