/* ohmpeer config: the configuration schema, and the value a run would see.
 *
 *   ohmpeer config                       every key, its type, default and doc
 *   ohmpeer config --markdown            the same as a markdown page (docs/config.md)
 *   ohmpeer config --get SECTION.KEY... [--config FILE] [--set section.key=value]...
 *
 * --get resolves exactly as `ohmpeer run` does (defaults, then FILE, then every
 * --set in order) and prints each asked key's value on its own line, so that
 * scripts and the launcher never read INI files themselves. */
#include "ohm_cli.h"

#include "ohm_config.h"
#include "ohm_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: ohmpeer config [--markdown]\n"
               "       ohmpeer config --get SECTION.KEY [--get SECTION.KEY]... [--config FILE]\n"
               "                      [--set section.key=value]...\n"
               "\n"
               "Without --get: prints every configuration key, its type, default, allowed\n"
               "values and meaning (--markdown: as the page docs/config.md). With --get: prints "
               "the value each key takes in a run with\n"
               "this --config and these --set overrides (one line per key, as the resolved\n"
               "config file spells it: strings unquoted, bools true/false). Exit status 0; 1 for\n"
               "an unknown key, an unreadable or invalid FILE or --set; 2 for usage errors.\n");
}

int ohm_cli_config(int argc, char **argv)
{
    const char *config = NULL;
    /* The arguments are kept in order: --set applies after --config, in order. */
    const char **gets = calloc((size_t)argc + 1, sizeof *gets);
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    ohm_config_t *cfg = ohm_config_new();
    int ngets = 0, nsets = 0, markdown = 0, status = 2;
    if (!gets || !sets || !cfg) {
        fprintf(stderr, "ohmpeer config: out of memory\n");
        status = 1;
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            status = 0;
            goto out;
        } else if (!strcmp(a, "--markdown"))
            markdown = 1;
        else if (!strcmp(a, "--get") && has)
            gets[ngets++] = argv[++i];
        else if (!strcmp(a, "--config") && has)
            config = argv[++i];
        else if (!strcmp(a, "--set") && has)
            sets[nsets++] = argv[++i];
        else {
            fprintf(stderr, "ohmpeer config: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            goto out;
        }
    }
    if (markdown && (ngets || config || nsets)) {
        fprintf(stderr, "ohmpeer config: --markdown prints the schema; it takes no other option\n");
        usage(stderr);
        goto out;
    }
    if (ngets == 0) {
        if (config || nsets) {
            fprintf(stderr, "ohmpeer config: --config and --set go with --get KEY\n");
            usage(stderr);
            goto out;
        }
        if (markdown)
            ohm_config_print_markdown(stdout);
        else
            ohm_config_print_schema(stdout);
        status = fflush(stdout) ? 1 : 0;
        goto out;
    }
    status = 1;
    if (config && ohm_config_load(cfg, config)) {
        fprintf(stderr, "ohmpeer config: %s\n", ohm_error_detail());
        goto out;
    }
    for (int i = 0; i < nsets; i++)
        if (ohm_config_set(cfg, sets[i], "--set")) {
            fprintf(stderr, "ohmpeer config: %s\n", ohm_error_detail());
            goto out;
        }
    /* Every key is checked before anything is printed: no partial answer. */
    for (int i = 0; i < ngets; i++)
        if (!ohm_config_text(cfg, gets[i])) {
            fprintf(stderr, "ohmpeer config: unknown key '%s' (see `ohmpeer config`)\n", gets[i]);
            goto out;
        }
    for (int i = 0; i < ngets; i++)
        printf("%s\n", ohm_config_text(cfg, gets[i]));
    status = fflush(stdout) ? 1 : 0;
out:
    ohm_config_destroy(&cfg);
    free(gets);
    free(sets);
    return status;
}
