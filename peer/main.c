/* ohmpeer: one peer of a decentralized gossip-learning run, and its tools.
 *
 *   ohmpeer [run] --topology T [--id I] [--config C] [--set s.k=v]... --out DIR [--resume]
 *   ohmpeer keygen --out PREFIX
 *   ohmpeer flatness --checkpoint F [...]
 *   ohmpeer config            (every configuration key with its default and doc)
 *   ohmpeer config --markdown (the same as a markdown page: docs/config.md)
 *   ohmpeer config --get SECTION.KEY [--config C] [--set s.k=v]...   (a resolved value)
 */
#include "ohm_cli.h"
#include "ohm_config.h"
#include "ohm_dense.h"
#include "ohm_error.h"
#include "ohm_peer.h"
#include "ohm_version.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OHMPEER_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ohmpeer [run] --topology FILE [--id N] [--config FILE] [--set "
            "section.key=value]...\n"
            "               --out DIR [--resume]\n"
            "       ohmpeer keygen --out PREFIX\n"
            "       ohmpeer flatness --checkpoint FILE [--checkpoint FILE]... [--config FILE] "
            "[--set k=v]...\n"
            "       ohmpeer config        print every configuration key, its default and meaning\n"
            "       ohmpeer config --markdown   the same as markdown (docs/config.md)\n"
            "       ohmpeer config --get SECTION.KEY [--config FILE] [--set k=v]...\n"
            "                             print the value a run with these options would use\n"
            "       ohmpeer --version\n"
            "\n"
            "run: one peer of the topology. The id comes from --id, else from SLURM_PROCID.\n"
            "Writes DIR/peer-<id>.jsonl (metrics per evaluated round) and DIR/peer-<id>.ckpt.\n"
            "Exit status: 0 finished, 1 error, 2 usage, 130/143 stopped by SIGINT/SIGTERM\n"
            "(after a final checkpoint; continue with --resume).\n");
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
    ohm_peer_request_stop();
}

static int parse_id(const char *s, uint32_t *id)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v > 1000000UL || s[0] == '-') return -1;
    *id = (uint32_t)v;
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    ohm_peer_opts_t o = {0};
    const char *config = NULL, *idtext = NULL;
    ohm_config_t *cfg = ohm_config_new();
    if (!cfg) {
        fprintf(stderr, "ohmpeer: out of memory\n");
        return 1;
    }
    int status = 2;
    /* Overrides apply after the config file whatever their order on the line. */
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    int nsets = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--topology") && has)
            o.topology = argv[++i];
        else if (!strcmp(a, "--id") && has)
            idtext = argv[++i];
        else if (!strcmp(a, "--config") && has)
            config = argv[++i];
        else if (!strcmp(a, "--set") && has)
            sets[nsets++] = argv[++i];
        else if (!strcmp(a, "--out") && has)
            o.out_dir = argv[++i];
        else if (!strcmp(a, "--resume"))
            o.resume = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            status = 0;
            goto out;
        } else {
            fprintf(stderr, "ohmpeer: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            goto out;
        }
    }
    if (!idtext) idtext = getenv("SLURM_PROCID");
    if (!o.topology || !o.out_dir || !idtext) {
        fprintf(stderr, "ohmpeer: --topology, --out and --id (or SLURM_PROCID) are required\n");
        usage(stderr);
        goto out;
    }
    if (parse_id(idtext, &o.id)) {
        fprintf(stderr, "ohmpeer: bad peer id '%s'\n", idtext);
        goto out;
    }
    status = 1;
    int rc;
    if (config && (rc = ohm_config_load(cfg, config))) {
        fprintf(stderr, "ohmpeer: %s\n", ohm_error_detail());
        goto out;
    }
    for (int i = 0; i < nsets; i++)
        if ((rc = ohm_config_set(cfg, sets[i], "--set"))) {
            fprintf(stderr, "ohmpeer: %s\n", ohm_error_detail());
            goto out;
        }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    ohm_peer_t *p = NULL;
    if ((rc = ohm_peer_new(&o, cfg, &p))) {
        fprintf(stderr, "ohmpeer %u: %s (%s)\n", o.id, ohm_error_detail(), ohm_strerror(rc));
        goto out;
    }
    rc = ohm_peer_run(p);
    ohm_peer_destroy(&p);
    if (rc == OHM_OK)
        status = 0;
    else if (rc == OHM_EINTR)
        status = 128 + (stop_signal ? stop_signal : SIGTERM);
    else
        fprintf(stderr, "ohmpeer %u: %s (%s)\n", o.id, ohm_error_detail(), ohm_strerror(rc));
out:
    free(sets);
    ohm_config_destroy(&cfg);
    return status;
}

int main(int argc, char **argv)
{
    ohm_dense_single_thread();
    if (argc >= 2 && !strcmp(argv[1], "--version")) {
        printf("ohmpeer %s (commit %s)\n", OHMPEER_VERSION, OHMPEER_COMMIT);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "keygen")) return ohm_cli_keygen(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "flatness")) return ohm_cli_flatness(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "config")) return ohm_cli_config(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "run")) return cmd_run(argc - 2, argv + 2);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    return cmd_run(argc - 1, argv + 1);
}
