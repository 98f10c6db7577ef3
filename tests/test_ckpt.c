/* Checkpoint files: round trip, integrity checks, atomic replacement. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ohm_ckpt.h"
#include "ohm_error.h"

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/ohm-ckpt-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(ckpt, .init = setup, .fini = teardown);

static void path_of(char *p, const char *name)
{
    snprintf(p, 128, "%s/%s", dir, name);
}

static ohm_ckpt_t *sample(void)
{
    ohm_ckpt_t *ck = ohm_ckpt_new();
    float w[1000];
    for (int i = 0; i < 1000; i++)
        w[i] = (float)i * 0.5f;
    cr_assert_eq(ohm_ckpt_put(ck, "params", w, sizeof w), OHM_OK);
    cr_assert_eq(ohm_ckpt_put(ck, "meta", "{\"round\":3}", 11), OHM_OK);
    cr_assert_eq(ohm_ckpt_put(ck, "empty", NULL, 0), OHM_OK);
    return ck;
}

Test(ckpt, round_trip)
{
    char p[128];
    path_of(p, "a.ckpt");
    ohm_ckpt_t *ck = sample();
    cr_assert_eq(ohm_ckpt_write(ck, p), OHM_OK);
    ohm_ckpt_t *rd = NULL;
    cr_assert_eq(ohm_ckpt_read(p, &rd), OHM_OK);
    const void *d;
    size_t n;
    cr_assert_eq(ohm_ckpt_get(rd, "params", &d, &n), OHM_OK);
    cr_assert_eq(n, 4000u);
    cr_expect_float_eq(((const float *)d)[999], 499.5f, 0);
    cr_assert_eq(ohm_ckpt_get(rd, "meta", &d, &n), OHM_OK);
    cr_expect_eq(memcmp(d, "{\"round\":3}", 11), 0);
    cr_assert_eq(ohm_ckpt_get(rd, "empty", &d, &n), OHM_OK);
    cr_expect_eq(n, 0u);
    cr_expect_eq(ohm_ckpt_get(rd, "nope", &d, &n), OHM_ENOTFOUND);
    ohm_ckpt_destroy(&ck);
    ohm_ckpt_destroy(&rd);
    cr_expect_null(rd);
    ohm_ckpt_destroy(&rd);
}

Test(ckpt, replace_section)
{
    ohm_ckpt_t *ck = ohm_ckpt_new();
    ohm_ckpt_put(ck, "x", "aaaa", 4);
    ohm_ckpt_put(ck, "x", "bb", 2);
    const void *d;
    size_t n;
    cr_assert_eq(ohm_ckpt_get(ck, "x", &d, &n), OHM_OK);
    cr_expect_eq(n, 2u);
    cr_expect_eq(ohm_ckpt_put(ck, "", "a", 1), OHM_EINVAL);
    ohm_ckpt_destroy(&ck);
}

static long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) ? -1 : (long)st.st_size;
}

Test(ckpt, every_truncation_and_a_flipped_bit_are_refused)
{
    char p[128], q[128];
    path_of(p, "a.ckpt");
    path_of(q, "cut.ckpt");
    ohm_ckpt_t *ck = sample();
    cr_assert_eq(ohm_ckpt_write(ck, p), OHM_OK);
    ohm_ckpt_destroy(&ck);
    long size = file_size(p);
    unsigned char *buf = malloc((size_t)size);
    FILE *f = fopen(p, "rb");
    cr_assert_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    for (long cut = 0; cut < size; cut += (cut < 64 ? 1 : 97)) {
        f = fopen(q, "wb");
        fwrite(buf, 1, (size_t)cut, f);
        fclose(f);
        ohm_ckpt_t *rd = NULL;
        int rc = ohm_ckpt_read(q, &rd);
        cr_expect_neq(rc, OHM_OK, "a file cut at %ld of %ld bytes was accepted", cut, size);
        cr_expect_null(rd);
    }
    buf[size / 2] ^= 0x10; /* inside the params payload */
    f = fopen(q, "wb");
    fwrite(buf, 1, (size_t)size, f);
    fclose(f);
    ohm_ckpt_t *rd = NULL;
    cr_expect_eq(ohm_ckpt_read(q, &rd), OHM_EFORMAT);
    cr_expect(strstr(ohm_error_detail(), "CRC") != NULL, "detail: %s", ohm_error_detail());
    memcpy(buf, "NOTCKPT!", 8);
    f = fopen(q, "wb");
    fwrite(buf, 1, (size_t)size, f);
    fclose(f);
    cr_expect_eq(ohm_ckpt_read(q, &rd), OHM_EFORMAT);
    free(buf);
}

Test(ckpt, failed_write_keeps_the_old_file_and_leaves_no_temp)
{
    char p[128];
    path_of(p, "a.ckpt");
    ohm_ckpt_t *ck = sample();
    cr_assert_eq(ohm_ckpt_write(ck, p), OHM_OK);
    long before = file_size(p);
    /* A directory in the way of the rename makes the final step fail. */
    char d[128];
    path_of(d, "sub");
    mkdir(d, 0755);
    char target[160];
    snprintf(target, sizeof target, "%s/x", d);
    mkdir(target, 0755);
    char busy[200];
    snprintf(busy, sizeof busy, "%s/x/keep", d);
    FILE *f = fopen(busy, "w");
    fclose(f);
    cr_expect_eq(ohm_ckpt_write(ck, target), OHM_EIO);
    cr_expect_eq(file_size(p), before);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp", d);
    FILE *ls = popen(cmd, "r");
    int count = -1;
    cr_assert_eq(fscanf(ls, "%d", &count), 1);
    pclose(ls);
    cr_expect_eq(count, 0, "temporary file left behind");
    cr_expect_eq(ohm_ckpt_write(ck, "/nonexistent-dir/a.ckpt"), OHM_EIO);
    ohm_ckpt_destroy(&ck);
}
