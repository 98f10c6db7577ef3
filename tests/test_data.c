/* ohm_data, ohm_idx, ohm_synth: the IDX reader on files written here (good,
 * bad magic, truncated, mismatched, wrong dims), shards and batches of a tiny
 * Fashion-like set, synthetic determinism and learnability, the teacher, and
 * the sampler. The real Fashion-MNIST is used only by a test that skips
 * itself when the files are absent. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ohm_config.h"
#include "ohm_data.h"
#include "ohm_error.h"
#include "ohm_idx.h"
#include "ohm_synth.h"

#define FASHION "/usr/share/datasets/fashion-mnist"

/* ---- helpers ------------------------------------------------------------- */

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Writes an IDX file (gzip unless plain) with `magic`, dims[nd] and the first
 * `keep` bytes of the body (so a body shorter than the header says is a
 * truncated file). Item i of an image file has pixel 0 = i and pixel j = i + j. */
static void write_idx(const char *path, uint32_t magic, const uint32_t *dims, int nd, size_t keep,
                      int plain)
{
    unsigned char hdr[16];
    put_u32(hdr, magic);
    for (int i = 0; i < nd; i++)
        put_u32(hdr + 4 + 4 * i, dims[i]);
    size_t item = nd == 3 ? (size_t)dims[1] * dims[2] : 1;
    size_t body = (size_t)dims[0] * item;
    if (keep > body) keep = body;
    unsigned char *b = malloc(keep ? keep : 1);
    for (size_t k = 0; k < keep; k++) {
        size_t i = k / item, j = k % item;
        b[k] = nd == 3 ? (unsigned char)(i + j) : (unsigned char)(i % 10);
    }
    if (plain) {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        fwrite(hdr, 1, 4 + 4 * (size_t)nd, f);
        fwrite(b, 1, keep, f);
        fclose(f);
    } else {
        gzFile g = gzopen(path, "wb");
        cr_assert_not_null(g);
        gzwrite(g, hdr, 4 + 4 * (unsigned)nd);
        if (keep) gzwrite(g, b, (unsigned)keep);
        gzclose(g);
    }
    free(b);
}

static char dir[64];

static void make_dir(void)
{
    strcpy(dir, "/tmp/ohm-data-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    const char *names[] = {"train-images-idx3-ubyte.gz",
                           "train-labels-idx1-ubyte.gz",
                           "t10k-images-idx3-ubyte.gz",
                           "t10k-labels-idx1-ubyte.gz",
                           "x.gz",
                           "x"};
    char p[128];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* A Fashion-like set in dir: ntrain / ntest examples of rows x cols, and
 * nlabels train labels (to break the count agreement). */
static void fake_fashion(uint32_t ntrain, uint32_t nlabels, uint32_t ntest, uint32_t rows,
                         uint32_t cols)
{
    char p[128];
    uint32_t d[3] = {ntrain, rows, cols};
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    write_idx(p, OHM_IDX_IMAGES, d, 3, SIZE_MAX, 0);
    d[0] = nlabels;
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", dir);
    write_idx(p, OHM_IDX_LABELS, d, 1, SIZE_MAX, 0);
    d[0] = ntest;
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
    write_idx(p, OHM_IDX_IMAGES, d, 3, SIZE_MAX, 0);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", dir);
    write_idx(p, OHM_IDX_LABELS, d, 1, SIZE_MAX, 0);
}

static ohm_config_t *config(const char *const *sets, size_t n)
{
    ohm_config_t *c = ohm_config_new();
    cr_assert_not_null(c);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(ohm_config_set(c, sets[i], "test"), OHM_OK, "%s: %s", sets[i],
                     ohm_error_detail());
    return c;
}

static ohm_config_t *fashion_config(void)
{
    ohm_config_t *c = ohm_config_new();
    char a[128];
    snprintf(a, sizeof a, "data.path=%s", dir);
    cr_assert_eq(ohm_config_set(c, a, "test"), OHM_OK);
    return c;
}

/* ---- IDX reader ------------------------------------------------------------- */

TestSuite(idx, .init = make_dir, .fini = remove_dir);

Test(idx, reads_headers_items_and_selected_rows)
{
    char p[128];
    snprintf(p, sizeof p, "%s/x.gz", dir);
    uint32_t d[3] = {50, 28, 28};
    write_idx(p, OHM_IDX_IMAGES, d, 3, SIZE_MAX, 0);
    ohm_idx_t *f = NULL;
    cr_assert_eq(ohm_idx_open(p, OHM_IDX_IMAGES, &f), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(ohm_idx_count(f), 50);
    cr_expect_eq(ohm_idx_rows(f), 28);
    cr_expect_eq(ohm_idx_cols(f), 28);
    cr_expect_eq(ohm_idx_item_size(f), 784);
    uint8_t two[2 * 784];
    cr_assert_eq(ohm_idx_read(f, two, 2), OHM_OK);
    cr_expect_eq(two[0], 0);
    cr_expect_eq(two[784], 1);
    cr_expect_eq(two[784 + 5], 6);
    /* Rows relative to the current position (item 2). */
    uint32_t rows[3] = {0, 17, 40};
    uint8_t sel[3 * 784];
    cr_assert_eq(ohm_idx_read_rows(f, rows, 3, sel), OHM_OK);
    cr_expect_eq(sel[0], 2);
    cr_expect_eq(sel[784], 19);
    cr_expect_eq(sel[2 * 784], 42);
    cr_expect_eq(sel[2 * 784 + 10], 52);
    ohm_idx_close(&f);
    cr_expect_null(f);
    ohm_idx_close(&f); /* NULL-safe */
}

Test(idx, plain_files_are_read_too)
{
    char p[128];
    snprintf(p, sizeof p, "%s/x", dir);
    uint32_t d[1] = {30};
    write_idx(p, OHM_IDX_LABELS, d, 1, SIZE_MAX, 1);
    ohm_idx_t *f = NULL;
    cr_assert_eq(ohm_idx_open(p, OHM_IDX_LABELS, &f), OHM_OK, "%s", ohm_error_detail());
    uint8_t y[30];
    cr_assert_eq(ohm_idx_read(f, y, 30), OHM_OK);
    cr_expect_eq(y[13], 3);
    ohm_idx_close(&f);
}

Test(idx, bad_magic_names_the_file)
{
    char p[128];
    snprintf(p, sizeof p, "%s/x.gz", dir);
    uint32_t d[3] = {5, 28, 28};
    write_idx(p, OHM_IDX_IMAGES, d, 3, SIZE_MAX, 0);
    ohm_idx_t *f = NULL;
    cr_expect_eq(ohm_idx_open(p, OHM_IDX_LABELS, &f), OHM_EFORMAT);
    cr_expect_null(f);
    cr_expect(strstr(ohm_error_detail(), p), "%s", ohm_error_detail());
    cr_expect(strstr(ohm_error_detail(), "magic 0x00000803"), "%s", ohm_error_detail());
    write_idx(p, 0x00000d03u, d, 3, SIZE_MAX, 0); /* float images */
    cr_expect_eq(ohm_idx_open(p, OHM_IDX_IMAGES, &f), OHM_EFORMAT);
}

Test(idx, truncation_and_bad_dims_are_errors)
{
    char p[128];
    snprintf(p, sizeof p, "%s/x.gz", dir);
    uint32_t d[3] = {10, 28, 28};
    write_idx(p, OHM_IDX_IMAGES, d, 3, 9 * 784 + 100, 0);
    ohm_idx_t *f = NULL;
    cr_assert_eq(ohm_idx_open(p, OHM_IDX_IMAGES, &f), OHM_OK);
    uint8_t *buf = malloc(10 * 784);
    cr_expect_eq(ohm_idx_read(f, buf, 9), OHM_OK, "the first 9 items are whole");
    cr_expect_eq(ohm_idx_read(f, buf, 1), OHM_ETRUNC);
    cr_expect(strstr(ohm_error_detail(), p), "%s", ohm_error_detail());
    cr_expect(strstr(ohm_error_detail(), "items 9..10"), "%s", ohm_error_detail());
    ohm_idx_close(&f);
    /* The same through the row selector. */
    cr_assert_eq(ohm_idx_open(p, OHM_IDX_IMAGES, &f), OHM_OK);
    uint32_t rows[2] = {1, 9};
    cr_expect_eq(ohm_idx_read_rows(f, rows, 2, buf), OHM_ETRUNC);
    ohm_idx_close(&f);
    free(buf);

    /* A header cut short. */
    gzFile g = gzopen(p, "wb");
    gzwrite(g, "\0\0\x08\x03\0\0", 6);
    gzclose(g);
    cr_expect_eq(ohm_idx_open(p, OHM_IDX_IMAGES, &f), OHM_ETRUNC);
    cr_expect(strstr(ohm_error_detail(), "header"), "%s", ohm_error_detail());

    uint32_t z[3] = {10, 0, 28};
    write_idx(p, OHM_IDX_IMAGES, z, 3, 0, 0);
    cr_expect_eq(ohm_idx_open(p, OHM_IDX_IMAGES, &f), OHM_EFORMAT);
    uint32_t huge[3] = {10, 40000, 40000};
    write_idx(p, OHM_IDX_IMAGES, huge, 3, 0, 0);
    cr_expect_eq(ohm_idx_open(p, OHM_IDX_IMAGES, &f), OHM_EFORMAT);
    cr_expect_eq(ohm_idx_open("/nonexistent/x.gz", OHM_IDX_IMAGES, &f), OHM_EIO);
    cr_expect(strstr(ohm_error_detail(), "/nonexistent/x.gz"));
}

/* ---- Fashion-like sets through ohm_data ------------------------------------ */

TestSuite(fashion, .init = make_dir, .fini = remove_dir);

Test(fashion, shards_cover_the_set_and_batches_are_scaled)
{
    fake_fashion(40, 40, 20, 28, 28);
    ohm_config_t *c = fashion_config();
    int seen[40] = {0};
    size_t total = 0;
    for (int p = 0; p < 4; p++) {
        ohm_data_t *d = NULL;
        cr_assert_eq(ohm_data_open(c, 4, p, &d), OHM_OK, "%s", ohm_error_detail());
        cr_expect_eq(ohm_data_dim(d), 784);
        int shape[3];
        ohm_data_shape(d, shape);
        cr_expect(shape[0] == 1 && shape[1] == 28 && shape[2] == 28, "an image of 1 x 28 x 28");
        cr_expect_eq(ohm_data_outputs(d), 10);
        cr_expect_eq(ohm_data_is_regression(d), 0);
        cr_expect_eq(ohm_data_test_size(d), 20);
        size_t m = ohm_data_train_size(d);
        cr_expect_eq(m, 10);
        size_t counts[10], sum = 0;
        ohm_data_class_counts(d, counts);
        for (int k = 0; k < 10; k++)
            sum += counts[k];
        cr_expect_eq(sum, m);
        ohm_batchbuf_t *b = ohm_batchbuf_new(d, 16);
        uint32_t idx[16];
        for (uint32_t i = 0; i < m; i++)
            idx[i] = i;
        const ohm_batch_t *bt = ohm_data_train_batch(d, b, idx, (int)m);
        cr_assert_eq(bt->n, (int)m);
        cr_expect_null(bt->t);
        for (size_t i = 0; i < m; i++) {
            /* Pixel 0 of item k is k; its label is k % 10; pixel j is k + j. */
            int k = (int)lrintf(bt->x[i * 784] * 255.0f);
            cr_assert(k >= 0 && k < 40);
            cr_expect_eq(bt->y[i], k % 10);
            cr_expect_float_eq(bt->x[i * 784 + 3], (float)(k + 3) / 255.0f, 1e-6);
            cr_expect(!seen[k], "item %d in two shards", k);
            seen[k] = 1;
        }
        total += m;
        const ohm_batch_t *tb = NULL;
        cr_assert_eq(ohm_data_test_batch(d, b, 4, 16, &tb), OHM_OK);
        cr_expect_eq(tb->n, 16);
        cr_expect_float_eq(tb->x[0], 4.0f / 255.0f, 1e-6, "test examples stay in file order");
        cr_expect_eq(tb->y[15], 19 % 10);
        ohm_batchbuf_destroy(&b);
        cr_expect_null(b);
        ohm_data_destroy(&d);
        cr_expect_null(d);
    }
    cr_expect_eq(total, 40);
    ohm_config_destroy(&c);
}

/* Only the first data.test_subset test images stay in memory; the rest are
 * read from the file on demand. Every way of asking (inside, across the
 * boundary, past it, backwards) must give what the all-resident set gives. */
Test(fashion, test_images_past_the_subset_are_streamed)
{
    fake_fashion(40, 40, 30, 28, 28);
    ohm_config_t *c = fashion_config();
    ohm_data_t *all = NULL, *part = NULL;
    cr_assert_eq(ohm_config_set(c, "data.test_subset=0", "t"), OHM_OK);
    cr_assert_eq(ohm_data_open(c, 1, -1, &all), OHM_OK, "%s", ohm_error_detail());
    cr_assert_eq(ohm_config_set(c, "data.test_subset=7", "t"), OHM_OK);
    cr_assert_eq(ohm_data_open(c, 1, -1, &part), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(ohm_data_test_size(part), 30);
    ohm_batchbuf_t *ba = ohm_batchbuf_new(all, 30), *bp = ohm_batchbuf_new(part, 30);
    const size_t asks[][2] = {{0, 7}, {3, 10}, {12, 5}, {17, 13}, {8, 4}, {0, 30}, {29, 1}};
    for (size_t q = 0; q < sizeof asks / sizeof asks[0]; q++) {
        const ohm_batch_t *x = NULL, *y = NULL;
        int n = (int)asks[q][1];
        cr_assert_eq(ohm_data_test_batch(all, ba, asks[q][0], n, &x), OHM_OK);
        cr_assert_eq(ohm_data_test_batch(part, bp, asks[q][0], n, &y), OHM_OK, "%s",
                     ohm_error_detail());
        cr_assert_eq(y->n, n);
        cr_expect_arr_eq(y->x, x->x, sizeof(float) * 784 * (size_t)n, "ask %zu: images", q);
        cr_expect_arr_eq(y->y, x->y, sizeof(int32_t) * (size_t)n, "ask %zu: labels", q);
        cr_expect_float_eq(y->x[0], (float)asks[q][0] / 255.0f, 1e-6);
    }
    ohm_batchbuf_destroy(&ba);
    ohm_data_destroy(&all);

    /* The file replaced after the open: the streamed part is an error naming
     * it (the resident part still works), never a crash. */
    char p[160];
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
    uint32_t dims[3] = {30, 28, 28};
    write_idx(p, OHM_IDX_IMAGES, dims, 3, 20 * 784, 0); /* cut after 20 images */
    const ohm_batch_t *y = NULL;
    cr_expect_eq(ohm_data_test_batch(part, bp, 25, 5, &y), OHM_ETRUNC);
    cr_expect_null(y);
    cr_expect(strstr(ohm_error_detail(), p), "%s", ohm_error_detail());
    cr_expect_eq(ohm_data_test_batch(part, bp, 0, 7, &y), OHM_OK);
    uint32_t other[3] = {31, 28, 28};
    write_idx(p, OHM_IDX_IMAGES, other, 3, SIZE_MAX, 0);
    cr_expect_eq(ohm_data_test_batch(part, bp, 10, 5, &y), OHM_EFORMAT);
    cr_expect(strstr(ohm_error_detail(), "changed"), "%s", ohm_error_detail());
    remove(p);
    cr_expect_eq(ohm_data_test_batch(part, bp, 10, 5, &y), OHM_EIO);
    ohm_batchbuf_destroy(&bp);
    ohm_data_destroy(&part);
    ohm_config_destroy(&c);
}

Test(fashion, sizes_limit_the_examples)
{
    fake_fashion(40, 40, 20, 28, 28);
    ohm_config_t *c = fashion_config();
    cr_assert_eq(ohm_config_set(c, "data.train_size=12", "t"), OHM_OK);
    cr_assert_eq(ohm_config_set(c, "data.test_size=5", "t"), OHM_OK);
    ohm_data_t *d = NULL;
    cr_assert_eq(ohm_data_open(c, 1, -1, &d), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(ohm_data_train_size(d), 12);
    cr_expect_eq(ohm_data_test_size(d), 5);
    ohm_data_destroy(&d);
    cr_assert_eq(ohm_config_set(c, "data.train_size=41", "t"), OHM_OK);
    cr_expect_eq(ohm_data_open(c, 1, -1, &d), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "data.train_size=41"), "%s", ohm_error_detail());
    cr_expect_null(d);
    ohm_config_destroy(&c);
}

Test(fashion, count_mismatch_names_both_files)
{
    fake_fashion(40, 39, 20, 28, 28);
    ohm_config_t *c = fashion_config();
    ohm_data_t *d = NULL;
    cr_expect_eq(ohm_data_open(c, 2, 0, &d), OHM_EFORMAT);
    cr_expect(strstr(ohm_error_detail(), "train-images-idx3-ubyte.gz has 40 images"), "%s",
              ohm_error_detail());
    cr_expect(strstr(ohm_error_detail(), "train-labels-idx1-ubyte.gz has 39 labels"), "%s",
              ohm_error_detail());
    cr_expect_null(d);
    ohm_config_destroy(&c);
}

Test(fashion, wrong_dims_are_refused)
{
    fake_fashion(40, 40, 20, 28, 27);
    ohm_config_t *c = fashion_config();
    ohm_data_t *d = NULL;
    cr_expect_eq(ohm_data_open(c, 2, 0, &d), OHM_EFORMAT);
    cr_expect(strstr(ohm_error_detail(), "images are 28x27, expected 28x28"), "%s",
              ohm_error_detail());
    ohm_config_destroy(&c);
}

Test(fashion, truncated_and_missing_files)
{
    fake_fashion(40, 40, 20, 28, 28);
    char p[128];
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
    uint32_t dd[3] = {20, 28, 28};
    write_idx(p, OHM_IDX_IMAGES, dd, 3, 19 * 784, 0);
    ohm_config_t *c = fashion_config();
    ohm_data_t *d = NULL;
    cr_expect_eq(ohm_data_open(c, 2, 0, &d), OHM_ETRUNC);
    cr_expect(strstr(ohm_error_detail(), "t10k-images-idx3-ubyte.gz"), "%s", ohm_error_detail());
    unlink(p);
    cr_expect_eq(ohm_data_open(c, 2, 0, &d), OHM_EIO);
    cr_expect(strstr(ohm_error_detail(), "t10k-images-idx3-ubyte.gz"), "%s", ohm_error_detail());
    ohm_config_destroy(&c);
}

Test(fashion, bad_labels_and_settings)
{
    fake_fashion(40, 40, 20, 28, 28);
    char p[128];
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", dir);
    unsigned char raw[8 + 40];
    put_u32(raw, OHM_IDX_LABELS);
    put_u32(raw + 4, 40);
    for (int i = 0; i < 40; i++)
        raw[8 + i] = (unsigned char)(i == 33 ? 10 : i % 10);
    gzFile g = gzopen(p, "wb");
    gzwrite(g, raw, sizeof raw);
    gzclose(g);
    ohm_config_t *c = fashion_config();
    ohm_data_t *d = NULL;
    cr_expect_eq(ohm_data_open(c, 2, 0, &d), OHM_EFORMAT);
    cr_expect(strstr(ohm_error_detail(), "label 10 of item 33"), "%s", ohm_error_detail());
    fake_fashion(40, 40, 20, 28, 28);
    cr_expect_eq(ohm_data_open(c, 41, 0, &d), OHM_EINVAL, "more peers than examples");
    cr_expect_eq(ohm_data_open(c, 4, 4, &d), OHM_EINVAL, "peer id out of range");
    cr_assert_eq(ohm_config_set(c, "data.task=regress", "t"), OHM_OK);
    cr_expect_eq(ohm_data_open(c, 4, 0, &d), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "synthetic"), "%s", ohm_error_detail());
    cr_expect_null(d);
    ohm_config_destroy(&c);
}

/* data.scale = symmetric maps byte p to 2p/255 - 1, in training and test
 * batches alike (the streamed test images too). */
Test(fashion, symmetric_scale_maps_pixels_to_minus_one_one)
{
    fake_fashion(40, 40, 20, 28, 28);
    ohm_config_t *c = fashion_config();
    cr_assert_eq(ohm_config_set(c, "data.scale=symmetric", "t"), OHM_OK);
    cr_assert_eq(ohm_config_set(c, "data.test_subset=5", "t"), OHM_OK);
    ohm_data_t *d = NULL;
    cr_assert_eq(ohm_data_open(c, 4, 1, &d), OHM_OK, "%s", ohm_error_detail());
    ohm_batchbuf_t *b = ohm_batchbuf_new(d, 16);
    uint32_t idx[10];
    for (uint32_t i = 0; i < 10; i++)
        idx[i] = i;
    const ohm_batch_t *bt = ohm_data_train_batch(d, b, idx, 10);
    for (int i = 0; i < 10; i++) {
        /* pixel j of item k is k + j: find k from pixel 0 */
        int k = (int)lrintf((bt->x[i * 784] + 1.0f) * 127.5f);
        cr_assert(k >= 0 && k < 40);
        cr_expect_float_eq(bt->x[i * 784 + 3], 2.0f * (float)(k + 3) / 255.0f - 1.0f, 1e-6);
    }
    const ohm_batch_t *tb = NULL;
    cr_assert_eq(ohm_data_test_batch(d, b, 2, 10, &tb), OHM_OK);
    for (int i = 0; i < 10; i++) /* items 2..11: 2..6 resident, 7..11 streamed */
        cr_expect_float_eq(tb->x[i * 784], 2.0f * (float)(2 + i) / 255.0f - 1.0f, 1e-6);
    ohm_batchbuf_destroy(&b);
    ohm_data_destroy(&d);
    ohm_config_destroy(&c);
    /* synthetic data has no pixel range to change */
    const char *sets[] = {"data.name=synthetic", "data.scale=symmetric"};
    c = config(sets, 2);
    cr_expect_eq(ohm_data_open(c, 2, 0, &d), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "data.scale=symmetric"), "%s", ohm_error_detail());
    ohm_config_destroy(&c);
}

/* label-honest with roles: 5 peers, peer 2 Byzantine, 4 honest peers and 10
 * classes (item k has label k % 10): honest peer j holds the classes c with
 * c mod 4 = j; the Byzantine peer opens with no training example (and its
 * test set); without roles it would be honest and get its classes. */
Test(fashion, label_honest_leaves_byzantine_peers_without_data)
{
    fake_fashion(40, 40, 20, 28, 28);
    ohm_config_t *c = fashion_config();
    cr_assert_eq(ohm_config_set(c, "data.partition=label-honest", "t"), OHM_OK);
    const unsigned char byz[5] = {0, 0, 1, 0, 0};
    const int honest_of[5] = {0, 1, -1, 2, 3};
    for (int p = 0; p < 5; p++) {
        ohm_data_t *d = NULL;
        cr_assert_eq(ohm_data_open_roles(c, 5, p, byz, &d), OHM_OK, "%s", ohm_error_detail());
        size_t counts[10];
        ohm_data_class_counts(d, counts);
        if (byz[p]) {
            cr_expect_eq(ohm_data_train_size(d), 0, "the Byzantine peer holds nothing");
            cr_expect_eq(ohm_data_test_size(d), 20);
        }
        for (int k = 0; k < 10; k++)
            cr_expect_eq(counts[k], !byz[p] && k % 4 == honest_of[p] ? 4u : 0u, "peer %d class %d",
                         p, k);
        ohm_data_destroy(&d);
    }
    ohm_data_t *d = NULL;
    cr_assert_eq(ohm_data_open(c, 5, 2, &d), OHM_OK, "no roles: every peer is honest");
    cr_expect_eq(ohm_data_train_size(d), 8); /* classes 2 and 7 */
    ohm_data_destroy(&d);
    /* an honest peer left without an example is an error naming it: 12
     * examples over 12 honest peers, class 4 (one example) dealt over peers 4
     * and 5, so peer 5 gets none */
    cr_assert_eq(ohm_config_set(c, "data.train_size=12", "t"), OHM_OK);
    cr_expect_eq(ohm_data_open(c, 12, 5, &d), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "peer 5 has no training example"), "%s",
              ohm_error_detail());
    ohm_config_destroy(&c);
}

/* ---- the real data set (skipped when absent) -------------------------------- */

static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0) v = strtol(line + n, NULL, 10);
    fclose(f);
    return v;
}

static void require_fashion(void)
{
    struct stat st;
    if (stat(FASHION "/train-images-idx3-ubyte.gz", &st) != 0)
        cr_skip_test("%s absent: real Fashion-MNIST checks skipped", FASHION);
}

Test(real, fashion_mnist_sizes_and_labels, .timeout = 120)
{
    require_fashion();
    ohm_config_t *c = ohm_config_new();
    ohm_data_t *d = NULL;
    cr_assert_eq(ohm_data_open(c, 1, -1, &d), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(ohm_data_train_size(d), 60000);
    cr_expect_eq(ohm_data_test_size(d), 10000);
    cr_expect_eq(ohm_data_dim(d), 784);
    size_t counts[10];
    ohm_data_class_counts(d, counts);
    for (int k = 0; k < 10; k++)
        cr_expect_eq(counts[k], 6000, "class %d: %zu", k, counts[k]);
    ohm_batchbuf_t *b = ohm_batchbuf_new(d, 1000);
    for (size_t s = 0; s < 10000; s += 1000) {
        const ohm_batch_t *t = NULL;
        cr_assert_eq(ohm_data_test_batch(d, b, s, 1000, &t), OHM_OK, "%s", ohm_error_detail());
        for (int i = 0; i < t->n; i++)
            cr_assert(t->y[i] >= 0 && t->y[i] < 10);
        for (int i = 0; i < t->n * t->dim; i++)
            cr_assert(t->x[i] >= 0.0f && t->x[i] <= 1.0f);
    }
    ohm_batchbuf_destroy(&b);
    ohm_data_destroy(&d);
    ohm_config_destroy(&c);
}

Test(real, one_peer_of_16_stays_small, .timeout = 120)
{
    require_fashion();
    long before = status_kb("VmRSS:");
    ohm_config_t *c = ohm_config_new();
    ohm_data_t *d = NULL;
    cr_assert_eq(ohm_data_open(c, 16, 0, &d), OHM_OK, "%s", ohm_error_detail());
    cr_expect(ohm_data_train_size(d) == 3750);
    long rss = status_kb("VmRSS:"), hwm = status_kb("VmHWM:");
    cr_log_info("fashion-mnist peer 0 of 16: shard %zu, test %zu; RSS %ld kB (before open %ld kB), "
                "peak %ld kB",
                ohm_data_train_size(d), ohm_data_test_size(d), rss, before, hwm);
    /* The process's own size varies by build (sanitizers); what opening adds
     * must stay far below the 47 MB of all training images as bytes. */
    cr_expect_lt(hwm - before, 24 * 1024, "opening grew the peak RSS by %ld kB", hwm - before);
    ohm_data_destroy(&d);
    ohm_config_destroy(&c);
}

/* ---- synthetic ----------------------------------------------------------------- */

/* All training (or test) examples of d as one batch copied out (x then y or t). */
static float *dump(const ohm_data_t *d, int test, size_t *bytes)
{
    size_t n = test ? ohm_data_test_size(d) : ohm_data_train_size(d);
    int dim = ohm_data_dim(d), out = ohm_data_is_regression(d) ? ohm_data_outputs(d) : 1;
    size_t per = (size_t)dim + (size_t)out;
    float *all = malloc(sizeof(float) * per * n);
    ohm_batchbuf_t *b = ohm_batchbuf_new(d, 1);
    for (size_t i = 0; i < n; i++) {
        uint32_t k = (uint32_t)i;
        const ohm_batch_t *bt = NULL;
        if (test)
            cr_assert_eq(ohm_data_test_batch(d, b, i, 1, &bt), OHM_OK);
        else
            bt = ohm_data_train_batch(d, b, &k, 1);
        memcpy(all + i * per, bt->x, sizeof(float) * (size_t)dim);
        if (bt->t)
            memcpy(all + i * per + dim, bt->t, sizeof(float) * (size_t)out);
        else
            all[i * per + (size_t)dim] = (float)bt->y[0];
    }
    ohm_batchbuf_destroy(&b);
    *bytes = sizeof(float) * per * n;
    return all;
}

Test(synthetic, same_seed_same_bytes_other_seed_other_bytes)
{
    const char *base[] = {"data.name=synthetic", "data.train_size=500", "data.test_size=100"};
    for (int regress = 0; regress < 2; regress++) {
        ohm_config_t *c = config(base, 3);
        if (regress) cr_assert_eq(ohm_config_set(c, "data.task=regress", "t"), OHM_OK);
        ohm_data_t *a = NULL, *b = NULL, *o = NULL;
        cr_assert_eq(ohm_data_open(c, 3, 1, &a), OHM_OK, "%s", ohm_error_detail());
        cr_assert_eq(ohm_data_open(c, 3, 1, &b), OHM_OK);
        cr_assert_eq(ohm_config_set(c, "train.seed=2", "t"), OHM_OK);
        cr_assert_eq(ohm_data_open(c, 3, 1, &o), OHM_OK);
        cr_expect_eq(ohm_data_is_regression(a), regress);
        for (int test = 0; test < 2; test++) {
            size_t la, lb, lo;
            float *da = dump(a, test, &la), *db = dump(b, test, &lb), *dz = dump(o, test, &lo);
            cr_expect(la == lb && memcmp(da, db, la) == 0, "same seed, same data");
            cr_expect(la != lo || memcmp(da, dz, la) != 0, "another seed, other data");
            free(da);
            free(db);
            free(dz);
        }
        ohm_data_destroy(&a);
        ohm_data_destroy(&b);
        ohm_data_destroy(&o);
        ohm_config_destroy(&c);
    }
}

Test(synthetic, shards_are_slices_of_the_whole_set)
{
    /* Example i is the same whoever generates it: each peer's examples are
     * rows of the centralised set, and the shards add up to it. */
    const char *sets[] = {"data.name=synthetic", "data.train_size=300", "data.partition=dirichlet",
                          "data.dim=8"};
    ohm_config_t *c = config(sets, 4);
    ohm_data_t *whole = NULL;
    cr_assert_eq(ohm_data_open(c, 1, -1, &whole), OHM_OK, "%s", ohm_error_detail());
    int shape[3];
    ohm_data_shape(whole, shape);
    cr_expect(shape[0] == 1 && shape[1] == 1 && shape[2] == 8, "a one-row image of 1 x 1 x 8");
    size_t lw;
    float *w = dump(whole, 0, &lw);
    const size_t per = 9, n = 300;
    cr_assert_eq(lw, sizeof(float) * per * n);
    char *used = calloc(n, 1);
    size_t total = 0;
    for (int p = 0; p < 5; p++) {
        ohm_data_t *d = NULL;
        cr_assert_eq(ohm_data_open(c, 5, p, &d), OHM_OK, "%s", ohm_error_detail());
        size_t ld;
        float *s = dump(d, 0, &ld);
        size_t m = ohm_data_train_size(d);
        for (size_t i = 0; i < m; i++) {
            size_t k = 0;
            while (k < n && memcmp(s + i * per, w + k * per, sizeof(float) * per) != 0)
                k++;
            cr_assert_lt(k, n, "peer %d example %zu is not in the whole set", p, i);
            cr_expect(!used[k]);
            used[k] = 1;
        }
        total += m;
        free(s);
        ohm_data_destroy(&d);
    }
    cr_expect_eq(total, n);
    free(used);
    free(w);
    ohm_data_destroy(&whole);
    ohm_config_destroy(&c);
}

Test(synthetic, mixture_is_learnable_by_nearest_mean)
{
    const char *sets[] = {"data.name=synthetic"};
    ohm_config_t *c = config(sets, 1);
    ohm_data_t *d = NULL;
    cr_assert_eq(ohm_data_open(c, 1, -1, &d), OHM_OK, "%s", ohm_error_detail());
    cr_assert_eq(ohm_data_train_size(d), 10000);
    cr_assert_eq(ohm_data_test_size(d), 2000);
    const int dim = ohm_data_dim(d), C = ohm_data_outputs(d);
    cr_assert_eq(dim, 32);
    cr_assert_eq(C, 10);
    double *mean = calloc((size_t)C * (size_t)dim, sizeof(double));
    size_t counts[10];
    ohm_data_class_counts(d, counts);
    ohm_batchbuf_t *b = ohm_batchbuf_new(d, 100);
    uint32_t idx[100];
    for (size_t s = 0; s < 10000; s += 100) {
        for (int i = 0; i < 100; i++)
            idx[i] = (uint32_t)(s + (size_t)i);
        const ohm_batch_t *bt = ohm_data_train_batch(d, b, idx, 100);
        for (int i = 0; i < 100; i++)
            for (int j = 0; j < dim; j++)
                mean[bt->y[i] * dim + j] += bt->x[i * dim + j] / (double)counts[bt->y[i]];
    }
    int correct = 0;
    for (size_t s = 0; s < 2000; s += 100) {
        const ohm_batch_t *bt = NULL;
        cr_assert_eq(ohm_data_test_batch(d, b, s, 100, &bt), OHM_OK);
        for (int i = 0; i < 100; i++) {
            int best = 0;
            double bd = INFINITY;
            for (int k = 0; k < C; k++) {
                double dist = 0;
                for (int j = 0; j < dim; j++) {
                    double e = bt->x[i * dim + j] - mean[k * dim + j];
                    dist += e * e;
                }
                if (dist < bd) {
                    bd = dist;
                    best = k;
                }
            }
            correct += best == bt->y[i];
        }
    }
    double acc = correct / 2000.0;
    cr_log_info("synthetic mixture (defaults): nearest-mean test accuracy %.3f", acc);
    cr_expect_gt(acc, 0.8);
    cr_expect_lt(acc, 0.99, "the default task should not be trivial");
    for (int k = 0; k < C; k++)
        cr_expect(counts[k] > 800 && counts[k] < 1200, "class %d: %zu", k, counts[k]);
    free(mean);
    ohm_batchbuf_destroy(&b);
    ohm_data_destroy(&d);
    ohm_config_destroy(&c);
}

Test(synthetic, teacher_targets_are_w_times_x)
{
    ohm_synth_t *s = NULL;
    cr_assert_eq(ohm_synth_new(OHM_SYNTH_REGRESS, 16, 3, 0.0, 9, &s), OHM_OK);
    const double *w = ohm_synth_params(s);
    float x[16], t[3];
    double sx = 0;
    for (size_t i = 0; i < 500; i++) {
        ohm_synth_example(s, OHM_SPLIT_TRAIN, i, x, NULL, t);
        for (int k = 0; k < 3; k++) {
            double acc = 0;
            for (int j = 0; j < 16; j++)
                acc += w[k * 16 + j] * x[j];
            cr_assert_float_eq(t[k], acc, 1e-5 * (1 + fabs(acc)));
        }
        for (int j = 0; j < 16; j++)
            sx += (double)x[j] * x[j];
    }
    cr_expect(fabs(sx / (500 * 16) - 1.0) < 0.1, "x ~ N(0, I): mean square %.3f", sx / 8000);
    ohm_synth_destroy(&s);
    cr_expect_null(s);

    /* With noise 1 the residual t - W* x has unit variance. */
    cr_assert_eq(ohm_synth_new(OHM_SYNTH_REGRESS, 16, 3, 1.0, 9, &s), OHM_OK);
    w = ohm_synth_params(s);
    double r2 = 0;
    for (size_t i = 0; i < 2000; i++) {
        ohm_synth_example(s, OHM_SPLIT_TEST, i, x, NULL, t);
        for (int k = 0; k < 3; k++) {
            double acc = 0;
            for (int j = 0; j < 16; j++)
                acc += w[k * 16 + j] * x[j];
            r2 += (t[k] - acc) * (t[k] - acc);
        }
    }
    cr_expect(fabs(r2 / 6000 - 1.0) < 0.1, "residual variance %.3f", r2 / 6000);
    ohm_synth_destroy(&s);

    /* Through ohm_data: regression batches carry targets, not labels. */
    const char *sets[] = {"data.name=synthetic", "data.task=regress", "data.classes=3",
                          "data.train_size=64"};
    ohm_config_t *c = config(sets, 4);
    ohm_data_t *d = NULL;
    cr_assert_eq(ohm_data_open(c, 2, 0, &d), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(ohm_data_outputs(d), 3);
    cr_expect_eq(ohm_data_train_size(d), 32);
    ohm_batchbuf_t *b = ohm_batchbuf_new(d, 4);
    uint32_t idx[4] = {0, 1, 2, 3};
    const ohm_batch_t *bt = ohm_data_train_batch(d, b, idx, 4);
    cr_expect_null(bt->y);
    cr_expect_not_null(bt->t);
    cr_expect_eq(bt->tdim, 3);
    ohm_batchbuf_destroy(&b);
    ohm_data_destroy(&d);
    ohm_config_destroy(&c);
}

Test(synthetic, inconsistent_settings)
{
    ohm_data_t *d = NULL;
    const char *a[] = {"data.name=synthetic", "data.task=regress", "data.partition=dirichlet"};
    ohm_config_t *c = config(a, 3);
    cr_expect_eq(ohm_data_open(c, 4, 0, &d), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "data.partition=dirichlet"), "%s", ohm_error_detail());
    ohm_config_destroy(&c);
    const char *b[] = {"data.name=synthetic", "data.classes=1"};
    c = config(b, 2);
    cr_expect_eq(ohm_data_open(c, 4, 0, &d), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "data.classes=1"), "%s", ohm_error_detail());
    ohm_config_destroy(&c);
    cr_expect_null(d);
}

/* ---- sampler ------------------------------------------------------------------- */

static ohm_data_t *small_synth(int peer)
{
    const char *sets[] = {"data.name=synthetic", "data.train_size=303", "data.dim=4"};
    ohm_config_t *c = config(sets, 3);
    ohm_data_t *d = NULL;
    cr_assert_eq(ohm_data_open(c, 3, peer, &d), OHM_OK, "%s", ohm_error_detail());
    ohm_config_destroy(&c);
    return d;
}

Test(sampler, epochs_cover_the_shard_exactly)
{
    ohm_data_t *d = small_synth(0);
    const size_t m = ohm_data_train_size(d);
    cr_assert_eq(m, 101);
    ohm_sampler_t s;
    ohm_sampler_init(&s, 5, 0);
    int hits[101] = {0};
    uint32_t idx[7], first[101];
    size_t drawn = 0;
    while (drawn < 3 * m) {
        int n = (int)(3 * m - drawn < 7 ? 3 * m - drawn : 7);
        ohm_sampler_next(&s, d, idx, n);
        for (int i = 0; i < n; i++, drawn++) {
            cr_assert_lt(idx[i], m);
            hits[idx[i]]++;
            if (drawn < m) first[drawn] = idx[i];
            if (drawn == m - 1 || drawn == 2 * m - 1 || drawn == 3 * m - 1)
                for (size_t k = 0; k < m; k++)
                    cr_assert_eq(hits[k], (int)(drawn / m) + 1, "after epoch %zu", drawn / m);
        }
    }
    cr_expect_eq(s.epoch, 2);
    cr_expect_eq(s.pos, m);
    /* A shuffle, and a new one each epoch. */
    int in_order = 0;
    for (size_t k = 0; k < m; k++)
        in_order += first[k] == k;
    cr_expect_lt(in_order, 10);
    ohm_sampler_t s2;
    ohm_sampler_init(&s2, 5, 0);
    uint32_t a[101], b[101];
    ohm_sampler_next(&s2, d, a, 101);
    ohm_sampler_next(&s2, d, b, 101);
    cr_expect(memcmp(a, first, sizeof a) == 0, "reproducible");
    cr_expect(memcmp(a, b, sizeof a) != 0, "each epoch reshuffles");
    ohm_data_destroy(&d);
}

Test(sampler, state_is_the_struct)
{
    /* A copied sampler (a restored checkpoint) continues identically, even
     * when another sampler used the same data object's cache in between. */
    ohm_data_t *d = small_synth(1);
    ohm_sampler_t s, other;
    ohm_sampler_init(&s, 11, 1);
    ohm_sampler_init(&other, 12, 1);
    uint32_t junk[64], a[150], b[150];
    ohm_sampler_next(&s, d, junk, 60);
    ohm_sampler_t saved = s;
    ohm_sampler_next(&s, d, a, 150);
    ohm_sampler_next(&other, d, junk, 64);
    ohm_sampler_next(&saved, d, b, 150);
    cr_expect(memcmp(a, b, sizeof a) == 0);
    /* Different seeds or peers give different streams. */
    ohm_sampler_init(&s, 11, 1);
    ohm_sampler_init(&other, 11, 2);
    ohm_sampler_next(&s, d, a, 50);
    ohm_sampler_next(&other, d, b, 50);
    cr_expect(memcmp(a, b, 50 * sizeof *a) != 0);
    ohm_data_destroy(&d);
}
