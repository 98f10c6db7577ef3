/* ohm_config: the INI reader, overrides and getters (the schema table and the
 * presets are ohm_config_schema.c; the writer and the printers ohm_config_print.c).
 *
 * Every value is validated when it is set, so the getters never fail: a typo
 * in a config file stops the run at start-up with FILE:LINE instead of
 * training for an hour on a default. */
#include "ohm_config.h"
#include "ohm_config_impl.h"

#include "ohm_error.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* At most this many elements in an int-list value (hidden layers). */
#define LIST_MAX 16

/* The schema's size: every config holds one value per key. */
#define NKEYS ohm_config_schema_len

struct ohm_config {
    value_t *v; /* NKEYS values, in schema order */
};

/* ---- schema helpers ----------------------------------------------------- */

static int find_key(const char *name)
{
    for (size_t k = 0; k < NKEYS; k++)
        if (strcmp(ohm_config_schema[k].name, name) == 0) return (int)k;
    return -1;
}

/* Length of the "section" part of a schema name. */
size_t ohm_config_section_len(const char *name)
{
    const char *dot = strchr(name, '.');
    assert(dot);
    return (size_t)(dot - name);
}

static int section_known(const char *s, size_t n)
{
    for (size_t k = 0; k < NKEYS; k++)
        if (ohm_config_section_len(ohm_config_schema[k].name) == n &&
            memcmp(ohm_config_schema[k].name, s, n) == 0)
            return 1;
    return 0;
}

/* " data model ...": the sections in schema order, for error messages. */
static void section_names(char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < NKEYS && len < cap; k++) {
        size_t sl = ohm_config_section_len(ohm_config_schema[k].name);
        if (k > 0 && ohm_config_section_len(ohm_config_schema[k - 1].name) == sl &&
            memcmp(ohm_config_schema[k - 1].name, ohm_config_schema[k].name, sl) == 0)
            continue;
        len += (size_t)snprintf(buf + len, cap - len, " %.*s", (int)sl, ohm_config_schema[k].name);
    }
}

static int in_bounds(const key_def_t *k, double v)
{
    unsigned b = k->bounds;
    if (b & B_LO) {
        if ((b & B_LO_OPEN) ? !(v > k->lo) : !(v >= k->lo)) return 0;
    }
    if (b & B_HI) {
        if ((b & B_HI_OPEN) ? !(v < k->hi) : !(v <= k->hi)) return 0;
    }
    return 1;
}

/* ---- value parsing -------------------------------------------------------- */

/* Parses a whole base-10 integer; 0, or OHM_EINVAL / OHM_ERANGE (no detail). */
static int parse_long(const char *s, long *out)
{
    if (!*s) return OHM_EINVAL;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end) return OHM_EINVAL;
    if (errno == ERANGE) return OHM_ERANGE;
    *out = v;
    return OHM_OK;
}

/* Validates `text` for key `k` and fills `out` (text owned by out). `where`
 * names the source ("file:line" or the override's origin) in the detail. */
static int parse_value(const key_def_t *k, const char *text, const char *where, value_t *out)
{
    char canon[128];
    const char *keep = text;
    char range[64];
    out->i = 0;
    out->d = 0;
    switch (k->type) {
    case K_INT: {
        long v;
        int rc = parse_long(text, &v);
        if (rc == OHM_EINVAL)
            return ohm_error_set(OHM_EINVAL, "%s: %s: '%.64s' is not an integer", where, k->name,
                                 text);
        ohm_config_format_bounds(k, range, sizeof range, 0);
        if (rc == OHM_ERANGE || !in_bounds(k, (double)v))
            return ohm_error_set(OHM_ERANGE, "%s: %s: %.64s is out of range (%s)", where, k->name,
                                 text, range);
        out->i = v;
        snprintf(canon, sizeof canon, "%ld", v);
        keep = canon;
        break;
    }
    case K_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(text, &end);
        if (!*text || end == text || *end || isnan(v) || (isinf(v) && errno != ERANGE))
            return ohm_error_set(OHM_EINVAL, "%s: %s: '%.64s' is not a finite number", where,
                                 k->name, text);
        ohm_config_format_bounds(k, range, sizeof range, 0);
        if ((errno == ERANGE && fabs(v) > 1.0) || !in_bounds(k, v))
            return ohm_error_set(OHM_ERANGE, "%s: %s: %.64s is out of range (%s)", where, k->name,
                                 text, range);
        out->d = v;
        ohm_config_format_double(canon, sizeof canon, v);
        keep = canon;
        break;
    }
    case K_BOOL: {
        static const char *const yes[] = {"true", "yes", "on", "1"};
        static const char *const no[] = {"false", "no", "off", "0"};
        int b = -1;
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(text, yes[i]) == 0) b = 1;
            if (strcasecmp(text, no[i]) == 0) b = 0;
        }
        if (b < 0)
            return ohm_error_set(OHM_EINVAL, "%s: %s: '%.64s' is not a bool (true|false)", where,
                                 k->name, text);
        out->i = b;
        keep = b ? "true" : "false";
        break;
    }
    case K_STR:
        /* Written configs must read back: one line, no control characters. */
        for (const char *c = text; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                return ohm_error_set(OHM_EINVAL, "%s: %s: control character in the value", where,
                                     k->name);
        break;
    case K_ENUM: {
        size_t n = strlen(text);
        const char *a = k->allowed;
        int ok = 0;
        while (*a && !ok) {
            size_t m = strcspn(a, "|");
            ok = m == n && n > 0 && memcmp(a, text, n) == 0;
            a += m + (a[m] == '|');
        }
        if (!ok)
            return ohm_error_set(OHM_EINVAL, "%s: %s: '%.64s' is not one of %s", where, k->name,
                                 text, k->allowed);
        break;
    }
    case K_LIST: {
        /* "a, b, c" of integers in bounds; "" or "0" alone is the empty list. */
        ohm_config_format_bounds(k, range, sizeof range, 0);
        size_t len = 0, count = 0;
        const char *p = text;
        canon[0] = '\0';
        if (strcmp(text, "0") == 0) p = "";
        while (*p) {
            char item[32];
            size_t m = strcspn(p, ",");
            const char *s = p, *e = p + m;
            while (s < e && isspace((unsigned char)*s))
                s++;
            while (e > s && isspace((unsigned char)e[-1]))
                e--;
            long v = 0;
            int rc = OHM_EINVAL;
            if ((size_t)(e - s) < sizeof item) {
                memcpy(item, s, (size_t)(e - s));
                item[e - s] = '\0';
                rc = parse_long(item, &v);
            }
            if (rc == OHM_EINVAL)
                return ohm_error_set(OHM_EINVAL,
                                     "%s: %s: '%.64s' is not a comma-separated list of integers",
                                     where, k->name, text);
            if (rc == OHM_ERANGE || !in_bounds(k, (double)v))
                return ohm_error_set(OHM_ERANGE,
                                     "%s: %s: element %zu of '%.64s' is out of range "
                                     "(%s)",
                                     where, k->name, count + 1, text, range);
            if (++count > LIST_MAX)
                return ohm_error_set(OHM_ERANGE, "%s: %s: more than %d elements", where, k->name,
                                     LIST_MAX);
            len +=
                (size_t)snprintf(canon + len, sizeof canon - len, "%s%ld", count > 1 ? "," : "", v);
            p += m;
            if (*p == ',') {
                p++;
                if (!*p)
                    return ohm_error_set(OHM_EINVAL, "%s: %s: '%.64s' ends with a comma", where,
                                         k->name, text);
            }
        }
        /* LIST_MAX elements of at most 6 characters each fit: canon is exact. */
        assert(len < sizeof canon);
        keep = canon;
        break;
    }
    }
    out->text = strdup(keep);
    if (!out->text) return ohm_error_set(OHM_ENOMEM, "%s: %s", where, k->name);
    /* The tail of a long "path:line" keeps the file name and the line. */
    size_t wl = strlen(where), cap = sizeof out->origin;
    if (wl < cap)
        memcpy(out->origin, where, wl + 1);
    else
        snprintf(out->origin, cap, "...%s", where + wl - (cap - 4));
    return OHM_OK;
}

/* ---- object ----------------------------------------------------------------- */

static void free_values(value_t *v)
{
    for (size_t k = 0; k < NKEYS; k++) {
        free(v[k].text);
        v[k].text = NULL;
    }
}

ohm_config_t *ohm_config_new(void)
{
    ohm_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg || !(cfg->v = calloc(NKEYS, sizeof *cfg->v))) {
        free(cfg);
        return NULL;
    }
    for (size_t k = 0; k < NKEYS; k++) {
        int rc =
            parse_value(&ohm_config_schema[k], ohm_config_schema[k].def, "default", &cfg->v[k]);
        assert(rc != OHM_EINVAL && rc != OHM_ERANGE); /* the schema's defaults are valid */
        if (rc) {
            free_values(cfg->v);
            free(cfg->v);
            free(cfg);
            return NULL;
        }
    }
    return cfg;
}

void ohm_config_destroy(ohm_config_t **cfg)
{
    if (!cfg || !*cfg) return;
    free_values((*cfg)->v);
    free((*cfg)->v);
    free(*cfg);
    *cfg = NULL;
}

/* Copies all values so a load can fail half-way and leave `cfg` as it was. */
static int clone_values(const ohm_config_t *cfg, value_t *out)
{
    for (size_t k = 0; k < NKEYS; k++) {
        out[k] = cfg->v[k];
        out[k].text = strdup(cfg->v[k].text);
        if (!out[k].text) {
            for (size_t j = 0; j < k; j++)
                free(out[j].text);
            return ohm_error_set(OHM_ENOMEM, "config copy");
        }
    }
    return OHM_OK;
}

static void set_value(value_t *slot, value_t *nv)
{
    free(slot->text);
    *slot = *nv;
}

/* After key k got its value in v: the assignments of its preset, if that value
 * names one. `first_set` (file reads) holds the line each key was set at in
 * this file: a preset after such a key would silently override it, an error.
 * All or nothing: v is unchanged on error. */
static int apply_preset(value_t *v, int k, const char *where, const int *first_set)
{
    const ohm_config_preset_t *pr = NULL;
    for (size_t i = 0; i < ohm_config_presets_len; i++)
        if (strcmp(ohm_config_presets[i].key, ohm_config_schema[k].name) == 0 &&
            strcmp(ohm_config_presets[i].value, v[k].text) == 0)
            pr = &ohm_config_presets[i];
    if (!pr) return OHM_OK;
    value_t nv[16];
    int idx[16], n = 0, rc = OHM_OK;
    for (; pr->sets[n]; n++) {
        const char *eq = strchr(pr->sets[n], '=');
        char name[64];
        assert(eq && (size_t)(eq - pr->sets[n]) < sizeof name);
        memcpy(name, pr->sets[n], (size_t)(eq - pr->sets[n]));
        name[eq - pr->sets[n]] = '\0';
        idx[n] = find_key(name);
        assert(idx[n] >= 0); /* presets name schema keys */
        if (first_set && first_set[idx[n]]) {
            rc =
                ohm_error_set(OHM_EINVAL,
                              "%s: %s = %s would override %s set at line %d (put the preset "
                              "first)",
                              where, ohm_config_schema[k].name, v[k].text, name, first_set[idx[n]]);
            break;
        }
        rc = parse_value(&ohm_config_schema[idx[n]], eq + 1, where, &nv[n]);
        assert(rc != OHM_EINVAL && rc != OHM_ERANGE); /* presets hold valid values */
        if (rc) break;
    }
    if (rc) {
        for (int i = 0; i < n; i++)
            free(nv[i].text);
        return rc;
    }
    for (int i = 0; i < n; i++)
        set_value(&v[idx[i]], &nv[i]);
    return OHM_OK;
}

/* ---- INI reader -------------------------------------------------------------- */

typedef struct {
    const char *name;
    int line;
    char section[32];
    value_t *v;     /* the values being built */
    int *first_set; /* line of each key's assignment in this file (0 = not yet) */
} reader_t;

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    *e = '\0';
    return s;
}

/* Whether what follows a value or a section header is only blanks or a comment. */
static int only_comment(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return *s == '\0' || *s == '#' || *s == ';';
}

/* Extracts the value after '=' in place: a "quoted string" with \" and \\
 * escapes, or bare text up to a comment that follows a blank. */
static int read_value(reader_t *r, char *s, char **out)
{
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '"') {
        char *w = s, *p = s + 1;
        for (;; p++) {
            if (*p == '\0')
                return ohm_error_set(OHM_EPARSE, "%s:%d: unterminated quoted value", r->name,
                                     r->line);
            if (*p == '"') break;
            if (*p == '\\') {
                p++;
                if (*p != '"' && *p != '\\')
                    return ohm_error_set(OHM_EPARSE,
                                         "%s:%d: bad escape in quoted value (only \\\" and \\\\)",
                                         r->name, r->line);
            }
            *w++ = *p;
        }
        if (!only_comment(p + 1))
            return ohm_error_set(OHM_EPARSE, "%s:%d: text after the closing quote", r->name,
                                 r->line);
        *w = '\0';
        *out = s;
        return OHM_OK;
    }
    for (char *p = s; *p; p++) {
        if ((*p == '#' || *p == ';') && (p == s || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            break;
        }
    }
    *out = trim(s);
    return OHM_OK;
}

static int read_line(reader_t *r, char *line)
{
    char *s = trim(line);
    if (*s == '\0' || *s == '#' || *s == ';') return OHM_OK;
    if (*s == '[') {
        char *close = strchr(s, ']');
        if (!close || !only_comment(close + 1))
            return ohm_error_set(OHM_EPARSE, "%s:%d: malformed section header", r->name, r->line);
        *close = '\0';
        char *name = trim(s + 1);
        size_t n = strlen(name);
        if (n == 0 || n >= sizeof r->section || !section_known(name, n)) {
            char known[128];
            section_names(known, sizeof known);
            return ohm_error_set(OHM_ENOTFOUND, "%s:%d: unknown section [%.40s] (known:%s)",
                                 r->name, r->line, name, known);
        }
        memcpy(r->section, name, n + 1);
        return OHM_OK;
    }
    char *eq = strchr(s, '=');
    if (!eq)
        return ohm_error_set(OHM_EPARSE, "%s:%d: expected 'key = value' or '[section]'", r->name,
                             r->line);
    *eq = '\0';
    char *key = trim(s);
    if (!*key) return ohm_error_set(OHM_EPARSE, "%s:%d: missing key before '='", r->name, r->line);
    if (!r->section[0])
        return ohm_error_set(OHM_EPARSE, "%s:%d: key '%.40s' outside a [section]", r->name, r->line,
                             key);
    char full[128];
    int k = -1;
    if (strlen(key) < 64) {
        snprintf(full, sizeof full, "%s.%s", r->section, key);
        k = find_key(full);
    }
    if (k < 0)
        return ohm_error_set(OHM_ENOTFOUND, "%s:%d: unknown key '%.40s' in [%s]", r->name, r->line,
                             key, r->section);
    if (r->first_set[k])
        return ohm_error_set(OHM_EPARSE, "%s:%d: duplicate key %s (first set at line %d)", r->name,
                             r->line, full, r->first_set[k]);
    char *val = NULL;
    int rc = read_value(r, eq + 1, &val);
    if (rc) return rc;
    char where[300];
    snprintf(where, sizeof where, "%s:%d", r->name, r->line);
    value_t nv;
    if ((rc = parse_value(&ohm_config_schema[k], val, where, &nv))) return rc;
    set_value(&r->v[k], &nv);
    r->first_set[k] = r->line;
    return apply_preset(r->v, k, where, r->first_set);
}

int ohm_config_load_string(ohm_config_t *cfg, const char *text, size_t len, const char *name)
{
    assert(cfg && (text || len == 0));
    value_t *v = calloc(NKEYS, sizeof *v);
    int *first_set = calloc(NKEYS, sizeof *first_set);
    if (!v || !first_set) {
        free(v);
        free(first_set);
        return ohm_error_set(OHM_ENOMEM, "config: %zu values", (size_t)NKEYS);
    }
    reader_t r = {.name = name ? name : "<string>", .v = v, .first_set = first_set};
    int rc = clone_values(cfg, v);
    if (rc) {
        free(v);
        free(first_set);
        return rc;
    }
    char *line = NULL;
    size_t cap = 0, pos = 0;
    /* A UTF-8 byte-order mark, as some editors write, is not part of the first line. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) pos = 3;
    while (pos < len && rc == OHM_OK) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        r.line++;
        if (n + 1 > cap) {
            char *p = realloc(line, n + 1);
            if (!p) {
                rc = ohm_error_set(OHM_ENOMEM, "%s:%d: line of %zu bytes", r.name, r.line, n);
                break;
            }
            line = p;
            cap = n + 1;
        }
        memcpy(line, text + pos, n);
        line[n] = '\0';
        if (memchr(text + pos, '\0', n))
            rc = ohm_error_set(OHM_EPARSE, "%s:%d: NUL byte in a text file", r.name, r.line);
        else
            rc = read_line(&r, line);
        pos += n + 1;
    }
    free(line);
    free(first_set);
    if (rc) {
        free_values(v);
        free(v);
        return rc;
    }
    free_values(cfg->v);
    free(cfg->v);
    cfg->v = v;
    return OHM_OK;
}

/* Largest config file accepted: a mistaken path to a data file fails fast. */
#define MAX_FILE (1u << 20)

int ohm_config_load(ohm_config_t *cfg, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ohm_error_set(OHM_EIO, "%s: %s", path, strerror(errno));
    char *buf = malloc(MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        return ohm_error_set(OHM_ENOMEM, "%s", path);
    }
    size_t n = fread(buf, 1, MAX_FILE + 1, f);
    int err = ferror(f);
    fclose(f);
    int rc;
    if (err)
        rc = ohm_error_set(OHM_EIO, "%s: read error", path);
    else if (n > MAX_FILE)
        rc = ohm_error_set(OHM_ETOOBIG, "%s: larger than %u bytes: not a config file", path,
                           MAX_FILE);
    else
        rc = ohm_config_load_string(cfg, buf, n, path);
    free(buf);
    return rc;
}

int ohm_config_set(ohm_config_t *cfg, const char *assignment, const char *origin)
{
    assert(cfg && assignment);
    if (!origin) origin = "--set";
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return ohm_error_set(OHM_EPARSE, "%s: '%.64s': expected section.key=value", origin,
                             assignment);
    char key[128];
    const char *s = assignment, *e = eq;
    while (s < e && isspace((unsigned char)*s))
        s++;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    int k = -1;
    if ((size_t)(e - s) < sizeof key) {
        memcpy(key, s, (size_t)(e - s));
        key[e - s] = '\0';
        k = find_key(key);
    } else {
        snprintf(key, sizeof key, "%.64s...", s);
    }
    if (k < 0)
        return ohm_error_set(OHM_ENOTFOUND, "%s: unknown key '%.64s' (see `ohmpeer config`)",
                             origin, key);
    char *val = strdup(eq + 1);
    if (!val) return ohm_error_set(OHM_ENOMEM, "%s", origin);
    value_t nv;
    int rc = parse_value(&ohm_config_schema[k], trim(val), origin, &nv);
    free(val);
    if (rc) return rc;
    value_t old = cfg->v[k];
    old.text = strdup(cfg->v[k].text);
    if (!old.text) {
        free(nv.text);
        return ohm_error_set(OHM_ENOMEM, "%s", origin);
    }
    set_value(&cfg->v[k], &nv);
    if ((rc = apply_preset(cfg->v, k, origin, NULL))) {
        set_value(&cfg->v[k], &old); /* unchanged on error */
        return rc;
    }
    free(old.text);
    return OHM_OK;
}

/* ---- getters -------------------------------------------------------------------- */

static const value_t *get(const ohm_config_t *cfg, const char *key, enum ktype t1, enum ktype t2)
{
    assert(cfg && key);
    int k = find_key(key);
    assert(k >= 0 && "key not in the config schema");
    assert((ohm_config_schema[k].type == t1 || ohm_config_schema[k].type == t2) &&
           "config key read with another type");
    (void)t1;
    (void)t2;
    return &cfg->v[k];
}

const char *ohm_config_str(const ohm_config_t *cfg, const char *key)
{
    return get(cfg, key, K_STR, K_ENUM)->text;
}

long ohm_config_int(const ohm_config_t *cfg, const char *key)
{
    return get(cfg, key, K_INT, K_INT)->i;
}

double ohm_config_double(const ohm_config_t *cfg, const char *key)
{
    return get(cfg, key, K_DOUBLE, K_DOUBLE)->d;
}

int ohm_config_bool(const ohm_config_t *cfg, const char *key)
{
    return (int)get(cfg, key, K_BOOL, K_BOOL)->i;
}

const char *ohm_config_text(const ohm_config_t *cfg, const char *key)
{
    assert(cfg && key);
    int k = find_key(key);
    return k < 0 ? NULL : cfg->v[k].text;
}

const char *ohm_config_origin(const ohm_config_t *cfg, const char *key)
{
    assert(cfg && key);
    int k = find_key(key);
    assert(k >= 0 && "key not in the config schema");
    return cfg->v[k].origin;
}

int ohm_config_int_list(const ohm_config_t *cfg, const char *key, int *out, int max)
{
    /* The text is canonical ("" or "a,b,c") and validated, so this cannot fail to parse. */
    const char *p = get(cfg, key, K_LIST, K_LIST)->text;
    int n = 0;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (n >= max) return -1;
        out[n++] = (int)v;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* ---- for the printers (ohm_config_impl.h) ------------------------------------------ */

size_t ohm_config_key_count(void)
{
    return NKEYS;
}

const key_def_t *ohm_config_key(size_t k)
{
    assert(k < NKEYS);
    return &ohm_config_schema[k];
}

const char *ohm_config_text_at(const ohm_config_t *cfg, size_t k)
{
    assert(cfg && k < NKEYS);
    return cfg->v[k].text;
}
