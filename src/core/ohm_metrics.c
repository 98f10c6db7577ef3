/* ohm_metrics: JSON-lines writer with per-line flush. */
#include "ohm_metrics.h"

#include "ohm_error.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ohm_metrics {
    FILE *f;
    char *line;
    size_t len, cap;
    int fields;
    int oom; /* a line that could not grow is dropped whole, never written cut */
};

int ohm_metrics_open(const char *path, ohm_metrics_t **out)
{
    *out = NULL;
    ohm_metrics_t *m = calloc(1, sizeof *m);
    if (!m) return ohm_error_set(OHM_ENOMEM, "metrics");
    m->f = fopen(path, "a");
    if (!m->f) {
        int e = errno;
        free(m);
        return ohm_error_set(OHM_EIO, "%s: %s", path, strerror(e));
    }
    *out = m;
    return OHM_OK;
}

void ohm_metrics_close(ohm_metrics_t **pm)
{
    if (!pm || !*pm) return;
    fclose((*pm)->f);
    free((*pm)->line);
    free(*pm);
    *pm = NULL;
}

static void append(ohm_metrics_t *m, const char *s, size_t n)
{
    if (m->oom) return;
    if (m->len + n + 2 > m->cap) {
        size_t cap = (m->cap ? m->cap * 2 : 512) + n;
        char *p = realloc(m->line, cap);
        if (!p) {
            m->oom = 1;
            return;
        }
        m->line = p;
        m->cap = cap;
    }
    memcpy(m->line + m->len, s, n);
    m->len += n;
}

static void appendf(ohm_metrics_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(ohm_metrics_t *m, const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) append(m, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void key(ohm_metrics_t *m, const char *k)
{
    if (m->fields++) append(m, ",", 1);
    append(m, "\"", 1);
    append(m, k, strlen(k));
    append(m, "\":", 2);
}

void ohm_metrics_begin(ohm_metrics_t *m)
{
    m->len = 0;
    m->fields = 0;
    m->oom = 0;
    append(m, "{", 1);
}

void ohm_metrics_int(ohm_metrics_t *m, const char *k, int64_t v)
{
    key(m, k);
    appendf(m, "%" PRId64, v);
}

void ohm_metrics_double(ohm_metrics_t *m, const char *k, double v)
{
    key(m, k);
    if (isfinite(v))
        appendf(m, "%.9g", v);
    else
        append(m, "null", 4);
}

void ohm_metrics_bool(ohm_metrics_t *m, const char *k, int v)
{
    key(m, k);
    append(m, v ? "true" : "false", v ? 4 : 5);
}

void ohm_metrics_str(ohm_metrics_t *m, const char *k, const char *v)
{
    key(m, k);
    append(m, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            append(m, e, 2);
        } else if (*p < 0x20) {
            appendf(m, "\\u%04x", *p);
        } else {
            append(m, (const char *)p, 1);
        }
    }
    append(m, "\"", 1);
}

void ohm_metrics_raw(ohm_metrics_t *m, const char *k, const char *json)
{
    key(m, k);
    append(m, json, strlen(json));
}

int ohm_metrics_end(ohm_metrics_t *m)
{
    append(m, "}\n", 2);
    if (m->oom) return ohm_error_set(OHM_ENOMEM, "metrics line dropped");
    if (fwrite(m->line, 1, m->len, m->f) != m->len || fflush(m->f) != 0)
        return ohm_error_set(OHM_EIO, "metrics write: %s", strerror(errno));
    return OHM_OK;
}
