/* JSON-lines metrics: escaping, non-finite values, appending, per-line flush. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ohm_error.h"
#include "ohm_metrics.h"

static void read_file(const char *p, char *buf, size_t cap)
{
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

Test(metrics, lines_are_flushed_escaped_and_appended)
{
    char p[] = "/tmp/ohm-metrics-XXXXXX";
    int fd = mkstemp(p);
    close(fd);
    ohm_metrics_t *m = NULL;
    cr_assert_eq(ohm_metrics_open(p, &m), OHM_OK);
    ohm_metrics_begin(m);
    ohm_metrics_int(m, "round", 3);
    ohm_metrics_double(m, "acc", 0.5);
    ohm_metrics_double(m, "loss", NAN);
    ohm_metrics_bool(m, "byzantine", 0);
    ohm_metrics_str(m, "note", "a\"b\\c\n");
    ohm_metrics_raw(m, "drops", "{\"x\":1}");
    cr_assert_eq(ohm_metrics_end(m), OHM_OK);
    char buf[512];
    read_file(p, buf, sizeof buf); /* visible before close: flushed per line */
    cr_expect_str_eq(buf, "{\"round\":3,\"acc\":0.5,\"loss\":null,\"byzantine\":false,"
                          "\"note\":\"a\\\"b\\\\c\\u000a\",\"drops\":{\"x\":1}}\n");
    ohm_metrics_close(&m);
    cr_expect_null(m);
    cr_assert_eq(ohm_metrics_open(p, &m), OHM_OK);
    ohm_metrics_begin(m);
    ohm_metrics_int(m, "round", 4);
    ohm_metrics_end(m);
    ohm_metrics_close(&m);
    read_file(p, buf, sizeof buf);
    cr_expect(strstr(buf, "}\n{\"round\":4}\n") != NULL, "appended: %s", buf);
    unlink(p);
}

Test(metrics, open_failure_names_the_file)
{
    ohm_metrics_t *m = NULL;
    cr_expect_eq(ohm_metrics_open("/nonexistent-dir/x.jsonl", &m), OHM_EIO);
    cr_expect_null(m);
    cr_expect(strstr(ohm_error_detail(), "/nonexistent-dir/x.jsonl") != NULL);
}
