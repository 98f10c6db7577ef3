/* ohm_data: a peer's shard and the test set, batches, and the epoch sampler.
 *
 * Memory: Fashion-MNIST images stay bytes (784 per example) and only the
 * peer's rows are kept; the training files are streamed once, with just the
 * 60000 labels and their owners held while the split is computed. Of the test
 * images only the first data.test_subset stay resident (the intermediate
 * evaluations' examples); the final evaluation reads the rest from the file
 * again, a chunk at a time. */
#include "ohm_data.h"

#include "ohm_error.h"
#include "ohm_idx.h"
#include "ohm_partition.h"
#include "ohm_synth.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#define FASHION_SIDE 28
#define FASHION_CLASSES 10
#define SYNTH_TRAIN 10000
#define SYNTH_TEST 2000

/* One split: features as bytes (x8, scaled by 1/255 on use) or floats (xf),
 * and labels (y) or regression targets (t). */
typedef struct {
    size_t n;
    uint8_t *x8;
    float *xf;
    int32_t *y;
    float *t;
} split_t;

/* The current epoch's permutation of the shard, so that drawing a batch costs
 * O(batch), not O(shard). Keyed by the sampler that asked; a sampler with
 * another key (or epoch) regenerates it. */
typedef struct {
    int valid;
    uint64_t seed;
    uint32_t peer, epoch;
    uint32_t *perm;
} perm_cache_t;

/* The test images past the resident ones, read from their file on demand. */
typedef struct {
    char path[4096];
    size_t count; /* items the file announced when the data was opened */
    ohm_idx_t *f; /* open while in use, positioned at item pos */
    size_t pos;
    uint8_t *buf; /* cap images */
    size_t cap;
} test_stream_t;

struct ohm_data {
    int dim, outputs, regress;
    int side; /* images: height = width = side; 0 for synthetic rows */
    float px_mul, px_add; /* byte pixel p becomes p * px_mul + px_add (data.scale) */
    split_t train, test;
    size_t test_resident;  /* test images held in test.x8/xf; the rest are streamed */
    perm_cache_t *cache;   /* mutable behind a const ohm_data_t: see ohm_sampler_next */
    test_stream_t *stream; /* likewise (see ohm_data_test_batch); NULL when all resident */
};

struct ohm_batchbuf {
    int cap, dim, tdim;
    float *x;
    int32_t *y;
    float *t;
    ohm_batch_t view;
};

static void split_free(split_t *s)
{
    free(s->x8);
    free(s->xf);
    free(s->y);
    free(s->t);
    memset(s, 0, sizeof *s);
}

void ohm_data_destroy(ohm_data_t **pd)
{
    if (!pd || !*pd) return;
    ohm_data_t *d = *pd;
    split_free(&d->train);
    split_free(&d->test);
    if (d->stream) {
        ohm_idx_close(&d->stream->f);
        free(d->stream->buf);
        free(d->stream);
    }
    if (d->cache) free(d->cache->perm);
    free(d->cache);
    free(d);
    *pd = NULL;
}

/* The rows this peer keeps out of n examples (all of them for peer < 0),
 * ascending, in *rows (caller frees) and their count in *m. */
static int shard_rows(const ohm_config_t *cfg, const int32_t *labels, size_t n, int classes,
                      int npeers, int peer, const unsigned char *byz, uint32_t **rows, size_t *m)
{
    *rows = NULL;
    uint32_t *owner = NULL;
    if (peer >= 0) {
        const char *pname = ohm_config_str(cfg, "data.partition");
        int kind = ohm_partition_kind(pname);
        assert(kind >= 0); /* the config validated the enum */
        if (kind != OHM_PART_IID && !labels)
            return ohm_error_set(OHM_EINVAL, "data.partition=%s needs labels (data.task=classify)",
                                 pname);
        owner = malloc(sizeof(uint32_t) * (n ? n : 1));
        if (!owner) return ohm_error_set(OHM_ENOMEM, "partition of %zu examples", n);
        int rc = ohm_partition_assign_roles(kind, labels, n, classes, npeers,
                                            ohm_config_double(cfg, "data.alpha"),
                                            (uint64_t)ohm_config_int(cfg, "train.seed"), byz, owner);
        if (rc) {
            free(owner);
            return rc;
        }
        *m = ohm_partition_shard(owner, n, (uint32_t)peer, NULL);
    } else {
        *m = n;
    }
    *rows = malloc(sizeof(uint32_t) * (*m ? *m : 1));
    if (!*rows) {
        free(owner);
        return ohm_error_set(OHM_ENOMEM, "shard of %zu examples", *m);
    }
    if (owner)
        ohm_partition_shard(owner, n, (uint32_t)peer, *rows);
    else
        for (size_t i = 0; i < n; i++)
            (*rows)[i] = (uint32_t)i;
    free(owner);
    return OHM_OK;
}

/* ---- Fashion-MNIST ---------------------------------------------------------- */

/* Opens a labels/images pair and checks they agree: 28x28 images, equal
 * counts, at least `want` examples (0 = all); *n is the count to use. */
static int open_pair(const char *dir, const char *prefix, size_t want, const char *key,
                     ohm_idx_t **lab, ohm_idx_t **img, size_t *n)
{
    char lp[4096], ip[4096];
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    int rc = ohm_idx_open(lp, OHM_IDX_LABELS, lab);
    if (!rc) rc = ohm_idx_open(ip, OHM_IDX_IMAGES, img);
    if (rc) return rc;
    if (ohm_idx_rows(*img) != FASHION_SIDE || ohm_idx_cols(*img) != FASHION_SIDE)
        return ohm_error_set(OHM_EFORMAT, "%s: images are %zux%zu, expected %dx%d", ip,
                             ohm_idx_rows(*img), ohm_idx_cols(*img), FASHION_SIDE, FASHION_SIDE);
    if (ohm_idx_count(*img) != ohm_idx_count(*lab))
        return ohm_error_set(OHM_EFORMAT, "%s has %zu images but %s has %zu labels", ip,
                             ohm_idx_count(*img), lp, ohm_idx_count(*lab));
    *n = ohm_idx_count(*lab);
    if (want > *n)
        return ohm_error_set(OHM_EINVAL, "data.%s=%zu but %s holds %zu examples", key, want, ip,
                             *n);
    if (want) *n = want;
    return OHM_OK;
}

/* The first n labels, each checked to be a class. */
static int read_labels(ohm_idx_t *lab, size_t n, int32_t *y)
{
    uint8_t *b = malloc(n ? n : 1);
    if (!b) return ohm_error_set(OHM_ENOMEM, "%zu labels", n);
    int rc = ohm_idx_read(lab, b, n);
    for (size_t i = 0; i < n && !rc; i++) {
        if (b[i] >= FASHION_CLASSES)
            rc = ohm_error_set(OHM_EFORMAT, "%s: label %u of item %zu not in 0..%d",
                               ohm_idx_path(lab), b[i], i, FASHION_CLASSES - 1);
        y[i] = b[i];
    }
    free(b);
    return rc;
}

/* Loads one Fashion-MNIST split. The training split keeps this peer's rows;
 * the test split keeps every label but only the first *resident images
 * (0 on entry: all), and reports in *img_count what its image file holds. */
static int fashion_split(const ohm_config_t *cfg, const char *dir, int train, int npeers, int peer,
                         const unsigned char *byz, split_t *s, size_t *resident,
                         size_t *img_count)
{
    const char *key = train ? "train_size" : "test_size";
    long want = ohm_config_int(cfg, train ? "data.train_size" : "data.test_size");
    ohm_idx_t *lab = NULL, *img = NULL;
    int32_t *labels = NULL;
    uint32_t *rows = NULL;
    size_t n = 0, m = 0;
    int rc = open_pair(dir, train ? "train" : "t10k", (size_t)want, key, &lab, &img, &n);
    if (rc) goto out;
    if (!(labels = malloc(sizeof(int32_t) * n))) {
        rc = ohm_error_set(OHM_ENOMEM, "%zu labels", n);
        goto out;
    }
    if ((rc = read_labels(lab, n, labels))) goto out;
    /* The test set is never split: every peer evaluates on the same examples. */
    if ((rc = shard_rows(cfg, labels, n, FASHION_CLASSES, npeers, train ? peer : -1, byz, &rows,
                         &m)))
        goto out;
    s->n = m;
    size_t keep = m; /* images held; the test split is every row, in order */
    if (!train) {
        if (*resident && *resident < m) keep = *resident;
        *resident = keep;
        *img_count = ohm_idx_count(img);
    }
    s->x8 = malloc((size_t)FASHION_SIDE * FASHION_SIDE * (keep ? keep : 1));
    s->y = malloc(sizeof(int32_t) * (m ? m : 1));
    if (!s->x8 || !s->y) {
        rc = ohm_error_set(OHM_ENOMEM, "%zu images", keep);
        goto out;
    }
    for (size_t i = 0; i < m; i++)
        s->y[i] = labels[rows[i]];
    free(labels);
    labels = NULL;
    rc = ohm_idx_read_rows(img, rows, keep, s->x8);
out:
    ohm_idx_close(&lab);
    ohm_idx_close(&img);
    free(labels);
    free(rows);
    return rc;
}

/* ---- synthetic --------------------------------------------------------------- */

static int synth_split(const ohm_config_t *cfg, const ohm_synth_t *sy, int regress, int dim,
                       int outputs, int train, int npeers, int peer, const unsigned char *byz,
                       split_t *s)
{
    long want = ohm_config_int(cfg, train ? "data.train_size" : "data.test_size");
    size_t n = want > 0 ? (size_t)want : (train ? SYNTH_TRAIN : SYNTH_TEST);
    int split = train ? OHM_SPLIT_TRAIN : OHM_SPLIT_TEST;
    int32_t *labels = NULL;
    uint32_t *rows = NULL;
    size_t m = 0;
    int rc = OHM_OK;
    if (!regress && train && peer >= 0) {
        /* Labels alone (one draw each) decide the split; features come after. */
        if (!(labels = malloc(sizeof(int32_t) * n)))
            return ohm_error_set(OHM_ENOMEM, "%zu labels", n);
        for (size_t i = 0; i < n; i++)
            labels[i] = ohm_synth_label(sy, split, i);
    }
    rc = shard_rows(cfg, labels, n, outputs, npeers, train ? peer : -1, byz, &rows, &m);
    free(labels);
    if (rc) return rc;
    s->n = m;
    size_t m1 = m ? m : 1;
    s->xf = malloc(sizeof(float) * (size_t)dim * m1);
    if (regress)
        s->t = malloc(sizeof(float) * (size_t)outputs * m1);
    else
        s->y = malloc(sizeof(int32_t) * m1);
    if (!s->xf || (regress ? !s->t : !s->y)) {
        free(rows);
        return ohm_error_set(OHM_ENOMEM, "%zu synthetic examples of dim %d", m, dim);
    }
    for (size_t i = 0; i < m; i++)
        ohm_synth_example(sy, split, rows[i], s->xf + i * (size_t)dim, regress ? NULL : s->y + i,
                          regress ? s->t + i * (size_t)outputs : NULL);
    free(rows);
    return OHM_OK;
}

/* ---- open -------------------------------------------------------------------- */

int ohm_data_open(const ohm_config_t *cfg, int npeers, int peer, ohm_data_t **out)
{
    return ohm_data_open_roles(cfg, npeers, peer, NULL, out);
}

int ohm_data_open_roles(const ohm_config_t *cfg, int npeers, int peer,
                        const unsigned char *byzantine, ohm_data_t **out)
{
    *out = NULL;
    if (peer >= 0 && (npeers < 1 || peer >= npeers))
        return ohm_error_set(OHM_EINVAL, "data: peer %d of %d", peer, npeers);
    ohm_data_t *d = calloc(1, sizeof *d);
    if (!d) return ohm_error_set(OHM_ENOMEM, "data");
    int rc = OHM_OK;
    const char *name = ohm_config_str(cfg, "data.name");
    int regress = strcmp(ohm_config_str(cfg, "data.task"), "regress") == 0;
    int symmetric = strcmp(ohm_config_str(cfg, "data.scale"), "symmetric") == 0;
    /* [0, 1]: p/255; [-1, 1]: (p/255 - 1/2)/(1/2) = 2p/255 - 1. */
    d->px_mul = symmetric ? 2.0f / 255.0f : 1.0f / 255.0f;
    d->px_add = symmetric ? -1.0f : 0.0f;
    if (symmetric && strcmp(name, "fashion-mnist") != 0) {
        rc = ohm_error_set(OHM_EINVAL, "data.scale=symmetric applies to image data (data.name=%s)",
                           name);
        goto fail;
    }
    if (strcmp(name, "fashion-mnist") == 0) {
        if (regress) {
            rc = ohm_error_set(OHM_EINVAL, "data.task=regress needs data.name=synthetic");
            goto fail;
        }
        const char *dir = ohm_config_str(cfg, "data.path");
        if (!dir[0]) dir = FASHION_DIR;
        d->dim = FASHION_SIDE * FASHION_SIDE;
        d->side = FASHION_SIDE;
        d->outputs = FASHION_CLASSES;
        size_t resident = (size_t)ohm_config_int(cfg, "data.test_subset"), count = 0;
        if ((rc = fashion_split(cfg, dir, 1, npeers, peer, byzantine, &d->train, NULL, NULL)) ||
            (rc = fashion_split(cfg, dir, 0, npeers, peer, byzantine, &d->test, &resident, &count)))
            goto fail;
        d->test_resident = resident;
        if (resident < d->test.n) {
            if (!(d->stream = calloc(1, sizeof *d->stream))) {
                rc = ohm_error_set(OHM_ENOMEM, "data: test stream");
                goto fail;
            }
            snprintf(d->stream->path, sizeof d->stream->path, "%s/t10k-images-idx3-ubyte.gz", dir);
            d->stream->count = count;
        }
    } else {
        assert(strcmp(name, "synthetic") == 0);
        d->dim = (int)ohm_config_int(cfg, "data.dim");
        d->outputs = (int)ohm_config_int(cfg, "data.classes");
        d->regress = regress;
        if (!regress && d->outputs < 2) {
            rc = ohm_error_set(OHM_EINVAL, "data.classes=%d: classification needs at least 2",
                               d->outputs);
            goto fail;
        }
        ohm_synth_t *sy = NULL;
        rc = ohm_synth_new(regress ? OHM_SYNTH_REGRESS : OHM_SYNTH_CLASSIFY, d->dim, d->outputs,
                           ohm_config_double(cfg, "data.noise"),
                           (uint64_t)ohm_config_int(cfg, "train.seed"), &sy);
        if (!rc)
            rc = synth_split(cfg, sy, regress, d->dim, d->outputs, 1, npeers, peer, byzantine,
                             &d->train);
        if (!rc)
            rc = synth_split(cfg, sy, regress, d->dim, d->outputs, 0, npeers, peer, byzantine,
                             &d->test);
        ohm_synth_destroy(&sy);
        if (rc) goto fail;
        d->test_resident = d->test.n;
    }
    /* A Byzantine peer of label-honest holds no training data by design. */
    int dataless = peer >= 0 && byzantine && byzantine[peer] &&
                   strcmp(ohm_config_str(cfg, "data.partition"), "label-honest") == 0;
    if ((d->train.n == 0 && !dataless) || d->test.n == 0) {
        rc = d->test.n == 0 ? ohm_error_set(OHM_EINVAL, "data: empty test set")
                            : ohm_error_set(OHM_EINVAL,
                                            "data: peer %d has no training example (data.partition"
                                            "=%s over %d peers)",
                                            peer, ohm_config_str(cfg, "data.partition"), npeers);
        goto fail;
    }
    if (d->train.n > UINT32_MAX) {
        rc = ohm_error_set(OHM_ETOOBIG, "data: %zu training examples", d->train.n);
        goto fail;
    }
    d->cache = calloc(1, sizeof *d->cache);
    if (!d->cache || !(d->cache->perm = malloc(sizeof(uint32_t) * (d->train.n ? d->train.n : 1)))) {
        rc = ohm_error_set(OHM_ENOMEM, "sampler permutation of %zu", d->train.n);
        goto fail;
    }
    *out = d;
    return OHM_OK;
fail:
    ohm_data_destroy(&d);
    return rc;
}

/* ---- accessors --------------------------------------------------------------- */

int ohm_data_dim(const ohm_data_t *d)
{
    return d->dim;
}

void ohm_data_shape(const ohm_data_t *d, int shape[3])
{
    shape[0] = 1;
    shape[1] = d->side ? d->side : 1;
    shape[2] = d->side ? d->side : d->dim;
}

int ohm_data_outputs(const ohm_data_t *d)
{
    return d->outputs;
}

int ohm_data_is_regression(const ohm_data_t *d)
{
    return d->regress;
}

size_t ohm_data_train_size(const ohm_data_t *d)
{
    return d->train.n;
}

size_t ohm_data_test_size(const ohm_data_t *d)
{
    return d->test.n;
}

void ohm_data_class_counts(const ohm_data_t *d, size_t *counts)
{
    memset(counts, 0, sizeof(size_t) * (size_t)d->outputs);
    if (d->regress) return; /* no classes: all zero */
    for (size_t i = 0; i < d->train.n; i++)
        counts[d->train.y[i]]++;
}

/* ---- batches ----------------------------------------------------------------- */

ohm_batchbuf_t *ohm_batchbuf_new(const ohm_data_t *d, int cap)
{
    assert(d && cap > 0);
    ohm_batchbuf_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->cap = cap;
    b->dim = d->dim;
    b->tdim = d->regress ? d->outputs : 0;
    b->x = malloc(sizeof(float) * (size_t)cap * (size_t)d->dim);
    if (d->regress)
        b->t = malloc(sizeof(float) * (size_t)cap * (size_t)d->outputs);
    else
        b->y = malloc(sizeof(int32_t) * (size_t)cap);
    if (!b->x || (d->regress ? !b->t : !b->y)) {
        ohm_batchbuf_destroy(&b);
        return NULL;
    }
    return b;
}

void ohm_batchbuf_destroy(ohm_batchbuf_t **pb)
{
    if (!pb || !*pb) return;
    free((*pb)->x);
    free((*pb)->y);
    free((*pb)->t);
    free(*pb);
    *pb = NULL;
}

/* Copies example `row` of split s into slot i of b (bytes become floats in
 * [0, 1] or [-1, 1], data.scale). */
static void copy_example(const ohm_data_t *d, const split_t *s, size_t row, ohm_batchbuf_t *b,
                         int i)
{
    const size_t dim = (size_t)d->dim;
    float *x = b->x + (size_t)i * dim;
    if (s->x8) {
        const uint8_t *src = s->x8 + row * dim;
        for (size_t j = 0; j < dim; j++)
            x[j] = (float)src[j] * d->px_mul + d->px_add;
    } else {
        memcpy(x, s->xf + row * dim, sizeof(float) * dim);
    }
    if (d->regress)
        memcpy(b->t + (size_t)i * (size_t)b->tdim, s->t + row * (size_t)b->tdim,
               sizeof(float) * (size_t)b->tdim);
    else
        b->y[i] = s->y[row];
}

static const ohm_batch_t *view(const ohm_data_t *d, ohm_batchbuf_t *b, int n)
{
    b->view = (ohm_batch_t){.n = n,
                            .dim = d->dim,
                            .x = b->x,
                            .y = d->regress ? NULL : b->y,
                            .t = d->regress ? b->t : NULL,
                            .tdim = d->regress ? d->outputs : 0};
    return &b->view;
}

const ohm_batch_t *ohm_data_train_batch(const ohm_data_t *d, ohm_batchbuf_t *b, const uint32_t *idx,
                                        int n)
{
    assert(n >= 0 && n <= b->cap && b->dim == d->dim);
    for (int i = 0; i < n; i++) {
        assert(idx[i] < d->train.n);
        copy_example(d, &d->train, idx[i], b, i);
    }
    return view(d, b, n);
}

/* Reads the n test images from item `from` on into the stream's buffer,
 * reopening the file when asked to go back (the gzip stream only goes
 * forward). The file was checked when the data was opened; a file replaced
 * since by one with other dimensions or fewer images is an error. */
static int stream_read(test_stream_t *st, size_t from, size_t n)
{
    const size_t isz = (size_t)FASHION_SIDE * FASHION_SIDE;
    if (n > st->cap) {
        uint8_t *nb = realloc(st->buf, isz * n);
        if (!nb) return ohm_error_set(OHM_ENOMEM, "%zu test images", n);
        st->buf = nb;
        st->cap = n;
    }
    if (st->f && st->pos > from) ohm_idx_close(&st->f);
    if (!st->f) {
        int rc = ohm_idx_open(st->path, OHM_IDX_IMAGES, &st->f);
        if (rc) return rc;
        if (ohm_idx_rows(st->f) != FASHION_SIDE || ohm_idx_cols(st->f) != FASHION_SIDE ||
            ohm_idx_count(st->f) != st->count) {
            ohm_idx_close(&st->f);
            return ohm_error_set(OHM_EFORMAT, "%s changed since it was opened", st->path);
        }
        st->pos = 0;
    }
    int rc = OHM_OK;
    while (!rc && st->pos < from) { /* skip forward through the buffer */
        size_t k = from - st->pos < st->cap ? from - st->pos : st->cap;
        if (!(rc = ohm_idx_read(st->f, st->buf, k))) st->pos += k;
    }
    if (!rc && !(rc = ohm_idx_read(st->f, st->buf, n))) st->pos += n;
    if (rc) ohm_idx_close(&st->f); /* the next call starts over */
    return rc;
}

int ohm_data_test_batch(const ohm_data_t *d, ohm_batchbuf_t *b, size_t start, int n,
                        const ohm_batch_t **out)
{
    assert(n >= 0 && n <= b->cap && b->dim == d->dim);
    assert(start <= d->test.n && (size_t)n <= d->test.n - start);
    *out = NULL;
    const size_t end = start + (size_t)n, res = d->test_resident;
    for (size_t i = start; i < end && i < res; i++)
        copy_example(d, &d->test, i, b, (int)(i - start));
    if (end > res) {
        const size_t from = start > res ? start : res, dim = (size_t)d->dim;
        assert(d->stream); /* images past the resident ones exist only for files */
        int rc = stream_read(d->stream, from, end - from);
        if (rc) return rc;
        for (size_t i = from; i < end; i++) {
            const uint8_t *src = d->stream->buf + (i - from) * dim;
            float *x = b->x + (i - start) * dim;
            for (size_t j = 0; j < dim; j++)
                x[j] = (float)src[j] * d->px_mul + d->px_add;
            b->y[i - start] = d->test.y[i];
        }
    }
    *out = view(d, b, n);
    return OHM_OK;
}

/* ---- sampler ----------------------------------------------------------------- */

void ohm_sampler_init(ohm_sampler_t *s, uint64_t seed, uint32_t peer)
{
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->peer = peer;
}

/* The permutation of epoch s->epoch, from the cache or regenerated. The
 * stream is (seed, peer, batch purpose with the epoch in its high bits). */
static const uint32_t *epoch_perm(const ohm_data_t *d, const ohm_sampler_t *s)
{
    perm_cache_t *c = d->cache;
    if (c->valid && c->seed == s->seed && c->peer == s->peer && c->epoch == s->epoch)
        return c->perm;
    for (size_t i = 0; i < d->train.n; i++)
        c->perm[i] = (uint32_t)i;
    ohm_rng_t r;
    ohm_rng_seed(&r, s->seed, s->peer, (uint64_t)s->epoch << 32 | OHM_STREAM_BATCH);
    ohm_rng_shuffle(&r, c->perm, d->train.n);
    c->valid = 1;
    c->seed = s->seed;
    c->peer = s->peer;
    c->epoch = s->epoch;
    return c->perm;
}

void ohm_sampler_next(ohm_sampler_t *s, const ohm_data_t *d, uint32_t *idx, int n)
{
    const uint64_t m = d->train.n;
    assert(m > 0 || n == 0); /* a data-less (Byzantine) peer never draws */
    const uint32_t *perm = NULL;
    for (int i = 0; i < n; i++) {
        if (s->pos >= m) {
            s->epoch++;
            s->pos = 0;
            perm = NULL;
        }
        if (!perm) perm = epoch_perm(d, s);
        idx[i] = perm[s->pos++];
    }
}
