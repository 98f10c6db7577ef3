/* ohm_config_print: the configuration written as a loadable INI file, and the
 * schema printed as a text table (`ohmpeer config`) or a markdown page
 * (`ohmpeer config --markdown`, docs/config.md). */
#include "ohm_config.h"
#include "ohm_config_impl.h"

#include "ohm_error.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ohm_config_type_name(enum ktype t)
{
    switch (t) {
    case K_INT:
        return "int";
    case K_DOUBLE:
        return "double";
    case K_BOOL:
        return "bool";
    case K_STR:
        return "string";
    case K_ENUM:
        return "enum";
    case K_LIST:
        return "int-list";
    }
    return "?";
}

/* Shortest decimal text that reads back as exactly `d`. */
void ohm_config_format_double(char *buf, size_t cap, double d)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) break;
    }
}

/* "1..32", ">= 0", "> 0", "(-1, 1)" or "any": the allowed values of a numeric
 * key. `brief` leaves out the implicit INT_MAX cap of ints (schema table). */
void ohm_config_format_bounds(const key_def_t *k, char *buf, size_t cap, int brief)
{
    char lo[32], hi[32];
    ohm_config_format_double(lo, sizeof lo, k->lo);
    if (k->type == K_DOUBLE)
        ohm_config_format_double(hi, sizeof hi, k->hi);
    else
        snprintf(hi, sizeof hi, "%.0f", k->hi);
    unsigned b = k->bounds;
    if (brief && k->type == K_INT && k->hi >= IMAX) b &= ~(unsigned)B_HI;
    if ((b & B_LO) && (b & B_HI)) {
        if (!(b & (B_LO_OPEN | B_HI_OPEN)))
            snprintf(buf, cap, "%s..%s", lo, hi);
        else
            snprintf(buf, cap, "%c%s, %s%c", (b & B_LO_OPEN) ? '(' : '[', lo, hi,
                     (b & B_HI_OPEN) ? ')' : ']');
    } else if (b & B_LO) {
        snprintf(buf, cap, "%s %s", (b & B_LO_OPEN) ? ">" : ">=", lo);
    } else if (b & B_HI) {
        snprintf(buf, cap, "%s %s", (b & B_HI_OPEN) ? "<" : "<=", hi);
    } else {
        snprintf(buf, cap, "any");
    }
}

/* ---- writer and schema printer ---------------------------------------------------- */

/* The allowed values of a key, as printed in the table and in written configs. */
static void format_allowed(const key_def_t *k, char *buf, size_t cap)
{
    switch (k->type) {
    case K_BOOL:
        snprintf(buf, cap, "true|false");
        break;
    case K_STR:
        snprintf(buf, cap, "text");
        break;
    case K_ENUM:
        snprintf(buf, cap, "%s", k->allowed);
        break;
    case K_INT:
    case K_DOUBLE:
        ohm_config_format_bounds(k, buf, cap, 1);
        break;
    case K_LIST: {
        char r[64];
        ohm_config_format_bounds(k, r, sizeof r, 1);
        snprintf(buf, cap, "%s each", r);
        break;
    }
    }
}

static void write_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int ohm_config_write(const ohm_config_t *cfg, FILE *f)
{
    assert(cfg && f);
    fprintf(f, "# ohmpeer configuration: every key, resolved. `ohmpeer config` documents them.\n");
    size_t prev = 0;
    const char *prev_name = NULL;
    for (size_t k = 0; k < ohm_config_key_count(); k++) {
        const key_def_t *d = ohm_config_key(k);
        size_t sl = ohm_config_section_len(d->name);
        if (!prev_name || sl != prev || memcmp(prev_name, d->name, sl) != 0)
            fprintf(f, "\n[%.*s]\n", (int)sl, d->name);
        prev = sl;
        prev_name = d->name;
        char allowed[160];
        format_allowed(d, allowed, sizeof allowed);
        fprintf(f, "# %s [%s: %s; default %s]\n%s = ", d->doc, ohm_config_type_name(d->type),
                allowed, d->def[0] ? d->def : "\"\"", d->name + sl + 1);
        const char *text = ohm_config_text_at(cfg, k);
        if (d->type == K_STR)
            write_string(f, text);
        else if (d->type == K_LIST && !text[0])
            fputs("0", f);
        else
            fputs(text, f);
        fputc('\n', f);
    }
    if (fflush(f) || ferror(f))
        return ohm_error_set(OHM_EIO, "writing config: %s", strerror(errno));
    return OHM_OK;
}

/* Splits an enum list at '|' into lines of at most `w` characters. Returns the
 * length of the next piece of `s` and sets *next. */
static size_t wrap_piece(const char *s, size_t w, const char **next)
{
    size_t n = strlen(s);
    if (n <= w) {
        *next = s + n;
        return n;
    }
    size_t cut = 0;
    for (size_t i = 0; i < n && i < w; i++)
        if (s[i] == '|') cut = i + 1;
    if (cut == 0) cut = w;
    *next = s + cut;
    return cut;
}

void ohm_config_print_schema(FILE *f)
{
    enum { ALLOWED_W = 28 };
    size_t wk = strlen("key"), wd = strlen("default");
    for (size_t k = 0; k < ohm_config_key_count(); k++) {
        size_t sl = ohm_config_section_len(ohm_config_key(k)->name);
        size_t kl = strlen(ohm_config_key(k)->name) - sl - 1;
        size_t dl = ohm_config_key(k)->def[0] ? strlen(ohm_config_key(k)->def) : 2;
        if (kl > wk) wk = kl;
        if (dl > wd) wd = dl;
    }
    fprintf(f, "%-11s %-*s %-8s %-*s %-*s %s\n", "section", (int)wk, "key", "type", (int)wd,
            "default", ALLOWED_W, "allowed", "doc");
    for (size_t k = 0; k < ohm_config_key_count(); k++) {
        const key_def_t *d = ohm_config_key(k);
        size_t sl = ohm_config_section_len(d->name);
        char allowed[160];
        format_allowed(d, allowed, sizeof allowed);
        const char *next;
        size_t piece = wrap_piece(allowed, ALLOWED_W, &next);
        char sec[40];
        snprintf(sec, sizeof sec, "[%.*s]", (int)sl, d->name);
        fprintf(f, "%-11s %-*s %-8s %-*s %-*.*s %s\n", sec, (int)wk, d->name + sl + 1,
                ohm_config_type_name(d->type), (int)wd, d->def[0] ? d->def : "\"\"", ALLOWED_W,
                (int)piece, allowed, d->doc);
        while (*next) {
            const char *s = next;
            piece = wrap_piece(s, ALLOWED_W, &next);
            fprintf(f, "%-11s %-*s %-8s %-*s %.*s\n", "", (int)wk, "", "", (int)wd, "", (int)piece,
                    s);
        }
    }
}

/* Writes `s` for a markdown table cell: '|' would end the cell and '<' could
 * open an HTML tag, so both are escaped. */
static void md_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else if (*s == '<')
            fputs("&lt;", f);
        else
            fputc(*s, f);
    }
}

void ohm_config_print_markdown(FILE *f)
{
    fputs(
        "# Configuration\n\n"
        "<!-- Generated by `ohmpeer config --markdown` from the schema in src/core/ohm_config_schema.c;\n"
        "     regenerate with `ninja -C build docs`, do not edit by hand. -->\n\n"
        "A run is configured by an INI file (`--config FILE`) and `--set section.key=value`\n"
        "overrides, applied after the file. Every key has a default; an unknown section or key,\n"
        "a malformed number or a value outside its allowed set is an error naming `FILE:LINE`\n"
        "(or `--set`). `ohmpeer config` prints the same table as text, and every checkpoint\n"
        "keeps the resolved configuration.\n",
        f);
    for (size_t k = 0; k < ohm_config_key_count(); k++) {
        const key_def_t *d = ohm_config_key(k);
        size_t sl = ohm_config_section_len(d->name);
        if (k == 0 || ohm_config_section_len(ohm_config_key(k - 1)->name) != sl ||
            memcmp(ohm_config_key(k - 1)->name, d->name, sl) != 0)
            fprintf(f,
                    "\n## [%.*s]\n\n| key | type | default | allowed | meaning |\n"
                    "|---|---|---|---|---|\n",
                    (int)sl, d->name);
        char allowed[160];
        format_allowed(d, allowed, sizeof allowed);
        fprintf(f, "| `%s` | %s | `%s` | ", d->name + sl + 1, ohm_config_type_name(d->type),
                d->def[0] ? d->def : "\"\"");
        if (d->type == K_ENUM || d->type == K_BOOL) {
            fputc('`', f);
            for (const char *c = allowed; *c; c++) {
                if (*c == '|')
                    fputs("`, `", f);
                else
                    fputc(*c, f);
            }
            fputc('`', f);
        } else {
            md_text(f, allowed);
        }
        fputs(" | ", f);
        md_text(f, d->doc);
        fputs(" |\n", f);
    }
}
