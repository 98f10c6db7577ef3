/* ohmpeer keygen: a fresh CURVE key pair as PREFIX.key (secret, 0600) and
 * PREFIX.pub. Existing keys are kept unless --force: silently replacing a
 * peer's identity would lock it out of every topology that lists the old key. */
#include "ohm_cli.h"

#include "ohm_error.h"
#include "ohm_keys.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: ohmpeer keygen --out PREFIX [--force]\n"
               "\n"
               "Generates a CURVE key pair: PREFIX.key holds the secret key (Z85, mode 0600;\n"
               "keep it private), PREFIX.pub the public key (Z85) to list in the topology.\n"
               "Refuses to replace an existing PREFIX.key or PREFIX.pub unless --force.\n"
               "Prints the public key on success.\n");
}

int ohm_cli_keygen(int argc, char **argv)
{
    const char *prefix = NULL;
    int force = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--force")) {
            force = 1;
        } else if (!strcmp(argv[i], "--out")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "ohmpeer keygen: --out needs a PREFIX\n");
                return 2;
            }
            prefix = argv[++i];
        } else if (!strncmp(argv[i], "--out=", 6)) {
            prefix = argv[i] + 6;
        } else {
            fprintf(stderr, "ohmpeer keygen: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!prefix || !prefix[0]) {
        fprintf(stderr, "ohmpeer keygen: --out PREFIX is required\n");
        usage(stderr);
        return 2;
    }
    if (!force) {
        const char *ext[] = {".key", ".pub"};
        for (int i = 0; i < 2; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s%s", prefix, ext[i]);
            struct stat st;
            if (lstat(path, &st) == 0) {
                fprintf(stderr, "ohmpeer keygen: %s exists; not replacing a key (use --force)\n",
                        path);
                return 1;
            }
            if (errno != ENOENT) {
                fprintf(stderr, "ohmpeer keygen: %s: %s\n", path, strerror(errno));
                return 1;
            }
        }
    }
    uint8_t pub[OHM_KEY_BYTES], sec[OHM_KEY_BYTES];
    int rc = ohm_keys_generate(pub, sec);
    if (!rc) rc = ohm_keys_write(prefix, pub, sec);
    sodium_memzero(sec, sizeof sec);
    if (rc) {
        fprintf(stderr, "ohmpeer keygen: %s\n", ohm_error_detail());
        return 1;
    }
    char z[41];
    ohm_keys_encode(pub, z);
    printf("%s\n", z);
    fprintf(stderr, "ohmpeer keygen: wrote %s.key (secret, mode 0600) and %s.pub\n", prefix,
            prefix);
    return 0;
}
