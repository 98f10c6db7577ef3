/* ohm_data: the data a peer trains and evaluates on.
 *
 * Sources: Fashion-MNIST from its gzip IDX files (magic numbers, dimensions
 * and lengths validated), or a seeded synthetic task (a Gaussian-mixture
 * classification task or a linear least-squares teacher). Partitions across N
 * peers: `iid`, `dirichlet` (per-class proportions ~ Dir(alpha)) and `label`
 * (sorted by label, contiguous shards: the pathological non-iid split); all
 * deterministic in (seed, N), and `label-honest` (one class per honest peer,
 * Byzantine peers hold none). Pixels are scaled to [0, 1] or, with
 * data.scale = symmetric, to [-1, 1]. A peer keeps only its own shard and the first
 * data.test_subset test images (the rest are read from the file when a final
 * evaluation asks for them), stored compactly (images as bytes), so memory
 * stays small; batches are converted to float on demand. */
#ifndef OHM_DATA_H
#define OHM_DATA_H

#include "ohm_config.h"
#include "ohm_rng.h"

#include <stddef.h>
#include <stdint.h>

/* A batch as the model consumes it: x is n x dim row-major; for classification
 * y holds n labels in [0, classes) and t is NULL; for regression t is n x tdim
 * targets and y is NULL. */
typedef struct {
    int n;
    int dim;
    const float *x;
    const int32_t *y;
    const float *t;
    int tdim;
} ohm_batch_t;

typedef struct ohm_data ohm_data_t;

/* Loads peer `peer`'s training shard (of `npeers`) and the test set as the
 * [data] section says; peer < 0 keeps the whole training set (centralised runs,
 * flatness). Errors: OHM_EIO / OHM_EFORMAT / OHM_ETRUNC with the file named,
 * OHM_EINVAL for inconsistent settings. Caller owns the result. */
int ohm_data_open(const ohm_config_t *cfg, int npeers, int peer, ohm_data_t **out);

/* ohm_data_open knowing the peers' roles: byzantine[npeers] flags the
 * Byzantine peers (NULL: none). data.partition = label-honest splits over the
 * honest peers only, so a Byzantine peer then holds no training example
 * (ohm_data_train_size 0; it must not draw batches); for every other split the
 * roles change nothing. An honest peer left without examples is OHM_EINVAL. */
int ohm_data_open_roles(const ohm_config_t *cfg, int npeers, int peer,
                        const unsigned char *byzantine, ohm_data_t **out);

/* Frees; NULL-safe; clears the caller's pointer. */
void ohm_data_destroy(ohm_data_t **d);

int ohm_data_dim(const ohm_data_t *d);     /* input features */
int ohm_data_outputs(const ohm_data_t *d); /* classes, or target dimension for regression */

/* Shape of one input as channels, height, width, product ohm_data_dim: what a
 * convolution needs. Fashion-MNIST 1 x 28 x 28 (row-major pixels); synthetic
 * 1 x 1 x dim (a one-row image: convolutions of kernel height 1 apply). */
void ohm_data_shape(const ohm_data_t *d, int shape[3]);
int ohm_data_is_regression(const ohm_data_t *d);
size_t ohm_data_train_size(const ohm_data_t *d); /* this peer's shard */
size_t ohm_data_test_size(const ohm_data_t *d);

/* Per-class counts of the local shard into counts[ohm_data_outputs(d)] (classification). */
void ohm_data_class_counts(const ohm_data_t *d, size_t *counts);

/* A reusable batch buffer for up to `cap` examples. Caller owns it. */
typedef struct ohm_batchbuf ohm_batchbuf_t;
ohm_batchbuf_t *ohm_batchbuf_new(const ohm_data_t *d, int cap);
void ohm_batchbuf_destroy(ohm_batchbuf_t **b);

/* Fills `b` with examples idx[0..n) of the training shard (n <= cap) and returns its batch view. */
const ohm_batch_t *ohm_data_train_batch(const ohm_data_t *d, ohm_batchbuf_t *b, const uint32_t *idx,
                                        int n);

/* Fills `b` with test examples [start, start+n) (n <= cap) and points *out at
 * its batch view. Examples past data.test_subset are read from the test file
 * (a forward stream: ask in increasing order to read it once); errors of that
 * read (OHM_EIO, OHM_ETRUNC, OHM_EFORMAT naming the file, also when it changed
 * since ohm_data_open) leave *out NULL. Like the sampler, one thread at a time. */
int ohm_data_test_batch(const ohm_data_t *d, ohm_batchbuf_t *b, size_t start, int n,
                        const ohm_batch_t **out);

/* Mini-batch sampler over the local shard: epochs of a seeded permutation.
 * Its whole state is this small struct, so checkpoints store it as bytes. */
typedef struct {
    uint64_t seed;  /* run seed */
    uint32_t peer;  /* peer id (stream) */
    uint32_t epoch; /* current epoch */
    uint64_t pos;   /* next position in the epoch's permutation */
} ohm_sampler_t;

void ohm_sampler_init(ohm_sampler_t *s, uint64_t seed, uint32_t peer);

/* Draws the next n indices (wrapping into new epochs) into idx[n]; the shard
 * must not be empty (a Byzantine peer of label-honest never draws). The epoch's
 * permutation is a function of (seed, peer, epoch), so the sampler itself
 * stays a few bytes; `d` caches the current one (O(n) per call, O(shard) once
 * per epoch). The cache is not locked: use one data object's samplers from one
 * thread at a time. */
void ohm_sampler_next(ohm_sampler_t *s, const ohm_data_t *d, uint32_t *idx, int n);

#endif
