/* ohm_synth: seeded synthetic tasks, identical on every peer.
 *
 * Classification: a Gaussian mixture. Class means are drawn once,
 * mu_c ~ N(0, (OHM_SYNTH_SEP^2 / dim) I), so the typical distance between two
 * means (OHM_SYNTH_SEP * sqrt(2)) and hence the difficulty do not depend on the
 * dimension; an example of class y is x = mu_y + noise * N(0, I), its label
 * uniform over the classes. With the defaults (noise 1) a nearest-mean
 * classifier, the Bayes rule here, reaches about 90%.
 * Regression: a linear teacher. W* (outputs x dim) is drawn once with entries
 * N(0, 1/dim) so targets have unit variance; x ~ N(0, I), t = W* x + noise * N(0, I).
 *
 * Every example has its own stream (purpose OHM_STREAM_DATA, the stream's
 * "peer" slot holding the split and index), so example i of a split is the
 * same whoever generates it and however many others are generated: a peer
 * produces only its shard. */
#ifndef OHM_SYNTH_H
#define OHM_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#define OHM_SYNTH_SEP 3.0

enum { OHM_SYNTH_CLASSIFY = 0, OHM_SYNTH_REGRESS = 1 };
enum { OHM_SPLIT_TRAIN = 0, OHM_SPLIT_TEST = 1 };

typedef struct ohm_synth ohm_synth_t;

/* The task for (seed, task, dim, outputs, noise): draws the means or W*.
 * outputs = classes (>= 2) or target dimension (>= 1). OHM_EINVAL for bad
 * sizes, OHM_ENOMEM. Caller owns *out. */
int ohm_synth_new(int task, int dim, int outputs, double noise, uint64_t seed, ohm_synth_t **out);

/* Frees; NULL-safe; clears the caller's pointer. */
void ohm_synth_destroy(ohm_synth_t **s);

/* Label of example i of `split` (classification), without drawing its features. */
int32_t ohm_synth_label(const ohm_synth_t *s, int split, size_t i);

/* Example i of `split`: x[dim], and *y (classification) or t[outputs]
 * (regression); the unused output may be NULL. */
void ohm_synth_example(const ohm_synth_t *s, int split, size_t i, float *x, int32_t *y, float *t);

/* The class means (classes x dim) or teacher W* (outputs x dim), row-major; for tests. */
const double *ohm_synth_params(const ohm_synth_t *s);

#endif
