/* libFuzzer target for the config reader: any bytes must give OK or an error
 * code with a detail, never a crash; whatever loads must also survive a
 * write -> load round trip unchanged. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ohm_config.h"
#include "ohm_error.h"

static char *written(const ohm_config_t *cfg, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) abort();
    if (ohm_config_write(cfg, f)) abort();
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ohm_config_t *cfg = ohm_config_new();
    if (!cfg) return 0;
    int rc = ohm_config_load_string(cfg, (const char *)data, size, "fuzz");
    if (rc != 0 && ohm_error_detail()[0] == '\0') abort(); /* every error explains itself */

    /* The same bytes as one --set assignment (up to the first NUL). */
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
        (void)ohm_config_set(cfg, s, "fuzz-set");
        free(s);
    }

    size_t la, lb;
    char *a = written(cfg, &la);
    ohm_config_t *again = ohm_config_new();
    if (again) {
        if (ohm_config_load_string(again, a, la, "written")) abort();
        char *b = written(again, &lb);
        if (la != lb || memcmp(a, b, la) != 0) abort();
        free(b);
        ohm_config_destroy(&again);
    }
    free(a);
    ohm_config_destroy(&cfg);
    return 0;
}
