/* ohm_config: the run configuration (INI sections [data] [model] [device]
 * [optimizer] [train] [aggregate] [net]) with a documented default for every
 * key, `section.key=value` overrides, and strict validation: an unknown key,
 * a bad number or an enum value out of its list is an error naming its source
 * (file:line or "--set"), never silently ignored.
 *
 * Keys are addressed as "section.key". Every key lives in one schema table
 * (ohm_config.c) with its type, default, allowed values and one-line doc;
 * `ohmpeer config` prints that table, so the documentation cannot drift. */
#ifndef OHM_CONFIG_H
#define OHM_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef struct ohm_config ohm_config_t;

/* A configuration holding every key at its default. Caller owns it; NULL on OOM. */
ohm_config_t *ohm_config_new(void);

/* Frees; NULL-safe; clears the caller's pointer. */
void ohm_config_destroy(ohm_config_t **cfg);

/* Reads an INI file over the current values. Errors (OHM_EIO, OHM_EPARSE,
 * OHM_ENOTFOUND for an unknown key, OHM_ERANGE/OHM_EINVAL for a bad value) leave
 * a detail "FILE:LINE: ..." and leave the configuration unchanged. */
int ohm_config_load(ohm_config_t *cfg, const char *path);

/* Same as ohm_config_load on the `len` bytes of `text` (not NUL-terminated;
 * fuzzing, tests, embedded configs); `name` stands for the file in errors. */
int ohm_config_load_string(ohm_config_t *cfg, const char *text, size_t len, const char *name);

/* Applies one "section.key=value" assignment; `origin` names it in errors
 * (e.g. "--set"). The value is taken literally (trimmed; no quotes or comments).
 * OHM_EPARSE without '=', else the same errors as ohm_config_load; unchanged on error. */
int ohm_config_set(ohm_config_t *cfg, const char *assignment, const char *origin);

/* Typed getters for "section.key". Asking for a key that is not in the schema,
 * or with the wrong type, is a programming error (assert). */
const char *ohm_config_str(const ohm_config_t *cfg, const char *key);
long ohm_config_int(const ohm_config_t *cfg, const char *key);
double ohm_config_double(const ohm_config_t *cfg, const char *key);
int ohm_config_bool(const ohm_config_t *cfg, const char *key);

/* The value of "section.key" as text, in the canonical form the config writer
 * uses ("true", "0.05", "256,128"; strings unquoted), or NULL when the key is
 * not in the schema. The text lives until the key is set again. */
const char *ohm_config_text(const ohm_config_t *cfg, const char *key);

/* Parses an integer-list key ("256,128"; "" or "0" means an empty list) into
 * out[max]; returns the count, or -1 if more than max. Validated at set time. */
int ohm_config_int_list(const ohm_config_t *cfg, const char *key, int *out, int max);

/* Where key's value came from: "FILE:LINE" of the file that set it, the origin
 * given to ohm_config_set ("--set"), or "default"; for checks of a value's
 * meaning made outside this module, so their errors can name its line. */
const char *ohm_config_origin(const ohm_config_t *cfg, const char *key);

/* Writes the resolved configuration as a loadable INI file (reproducibility):
 * every key, with its doc as a comment. OHM_EIO if the stream fails. */
int ohm_config_write(const ohm_config_t *cfg, FILE *f);

/* Prints the schema: every key, its type, default, allowed values and doc. */
void ohm_config_print_schema(FILE *f);

/* Prints the same schema as a markdown page, one table per section: this is
 * docs/config.md (`ohmpeer config --markdown`; tests/check_docs.py checks it). */
void ohm_config_print_markdown(FILE *f);

#endif
