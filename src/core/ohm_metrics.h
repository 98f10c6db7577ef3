/* ohm_metrics: one JSON object per line, flushed per line, so a crash loses
 * nothing already recorded and a run can be watched with `tail -f`. */
#ifndef OHM_METRICS_H
#define OHM_METRICS_H

#include <stdint.h>

typedef struct ohm_metrics ohm_metrics_t;

/* Opens (appending, so a resumed peer continues its file) or creates `path`.
 * Errors: OHM_EIO naming the file. Caller owns *out. */
int ohm_metrics_open(const char *path, ohm_metrics_t **out);

/* Closes; NULL-safe; clears the caller's pointer. */
void ohm_metrics_close(ohm_metrics_t **m);

/* Builds one line: begin, any number of fields, end (which writes and flushes).
 * Keys must be plain identifiers; strings are JSON-escaped; non-finite doubles become null. */
void ohm_metrics_begin(ohm_metrics_t *m);
void ohm_metrics_int(ohm_metrics_t *m, const char *key, int64_t v);
void ohm_metrics_double(ohm_metrics_t *m, const char *key, double v);
void ohm_metrics_bool(ohm_metrics_t *m, const char *key, int v);
void ohm_metrics_str(ohm_metrics_t *m, const char *key, const char *v);
/* A raw JSON value (object/array) the caller has formatted. */
void ohm_metrics_raw(ohm_metrics_t *m, const char *key, const char *json);
/* Writes the line and flushes it. OHM_EIO if the write failed. */
int ohm_metrics_end(ohm_metrics_t *m);

#endif
