/* ohm_tile_impl: what a tile implementation provides (for implementers only).
 *
 * An implementation embeds `ohm_tile_t` as the first member of its own struct
 * and fills in `ops`; the public functions of ohm_tile.h dispatch through it. */
#ifndef OHM_TILE_IMPL_H
#define OHM_TILE_IMPL_H

#include "ohm_tile.h"

typedef struct {
    const char *kind;
    void (*forward)(ohm_tile_t *t, const float *x, float *y, int n);
    void (*backward)(ohm_tile_t *t, const float *d, float *z, int n);
    void (*update)(ohm_tile_t *t, const float *x, const float *d, int n, float lr);
    void (*decay)(ohm_tile_t *t, float factor); /* NULL: not supported */
    void (*get_weights)(const ohm_tile_t *t, float *w);
    void (*set_weights)(ohm_tile_t *t, const float *w, int mode);
    size_t (*state_size)(const ohm_tile_t *t);
    void (*state_save)(const ohm_tile_t *t, void *buf);
    int (*state_load)(ohm_tile_t *t, const void *buf, size_t len);
    void (*destroy)(ohm_tile_t *t);
    void (*counters)(const ohm_tile_t *t, ohm_tile_counters_t *c); /* NULL: counts nothing */
} ohm_tile_ops_t;

struct ohm_tile {
    const ohm_tile_ops_t *ops;
    int rows, cols;
};

#endif
