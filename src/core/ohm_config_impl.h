/* ohm_config_impl: the schema's types, shared by the files of the config
 * module (ohm_config_schema.c: the keys and presets; ohm_config.c: reader,
 * getters; ohm_config_print.c: writer and printers). Internal to src/core. */
#ifndef OHM_CONFIG_IMPL_H
#define OHM_CONFIG_IMPL_H

#include "ohm_config.h"

#include <limits.h>
#include <stddef.h>

enum ktype { K_INT, K_DOUBLE, K_BOOL, K_STR, K_ENUM, K_LIST };

/* Bound flags: which of lo/hi apply and whether they are excluded. */
enum { B_LO = 1, B_HI = 2, B_LO_OPEN = 4, B_HI_OPEN = 8 };

typedef struct {
    const char *name; /* "section.key" */
    enum ktype type;
    const char *def;     /* default, as it would be written in a file */
    const char *allowed; /* enum: "a|b|c" */
    unsigned bounds;     /* B_* flags; for a list they bound each element */
    double lo, hi;
    const char *doc;
} key_def_t;

/* Ints are used as C ints by their consumers, so INT_MAX caps the unbounded ones. */
#define IMAX ((double)INT_MAX)

typedef struct {
    char *text;      /* canonical text (strings, enums, lists; also what is written) */
    long i;          /* int, bool */
    double d;        /* double */
    char origin[96]; /* where it was set: "file:line", "--set", "default" (tail if longer) */
} value_t;

/* Presets: a value of a preset key stands for assignments made when the key
 * is set (ohm_config_schema.c). */
typedef struct {
    const char *key, *value;
    const char *const sets[16]; /* "section.key=value", NULL-terminated */
} ohm_config_preset_t;

/* The schema and the presets (ohm_config_schema.c), in file order. */
extern const key_def_t ohm_config_schema[];
extern const size_t ohm_config_schema_len;
extern const ohm_config_preset_t ohm_config_presets[];
extern const size_t ohm_config_presets_len;

/* The schema, in file order. */
size_t ohm_config_key_count(void);
const key_def_t *ohm_config_key(size_t k);

/* Canonical text of key k's value in cfg. */
const char *ohm_config_text_at(const ohm_config_t *cfg, size_t k);

/* Length of the "section" part of a schema name. */
size_t ohm_config_section_len(const char *name);

/* "int", "double", ... for a key type. */
const char *ohm_config_type_name(enum ktype t);

/* Shortest decimal text that reads back as exactly d. */
void ohm_config_format_double(char *buf, size_t cap, double d);

/* "1..32", ">= 0", "> 0", "(-1, 1)" or "any": the allowed values of a numeric
 * key. `brief` leaves out the implicit INT_MAX cap of ints (schema table). */
void ohm_config_format_bounds(const key_def_t *k, char *buf, size_t cap, int brief);

#endif
