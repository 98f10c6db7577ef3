/* ohmtopo: generate topology files, check them, show them as JSON, and add
 * keys or bind endpoints to them.
 *
 *   ohmtopo gen KIND -n N [options] [-o FILE]
 *   ohmtopo check FILE
 *   ohmtopo show --json [--gap] FILE
 *   ohmtopo edit FILE [--keys DIR] [--bind HOST] [-o FILE]
 *
 * Exit status: 0 on success, 1 when `check`, `show` or `edit` find the file
 * invalid (or cannot read it, or a key), 2 on any other error: usage,
 * generator parameters, writing -o. */
#include "ohm_error.h"
#include "ohm_topology.h"
#include "ohmtopo_show.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ohmtopo gen KIND -n N [options] [-o FILE]\n"
            "       ohmtopo check FILE\n"
            "       ohmtopo show --json [--gap] FILE\n"
            "       ohmtopo edit FILE [--keys DIR] [--bind HOST] [-o FILE]\n"
            "\n"
            "gen: writes a connected topology (stdout without -o).\n"
            "  KIND                ring | torus | complete | er | exp | star | clusters\n"
            "                      torus: 2-D with wrap-around, n = r*c, r the largest divisor\n"
            "                      <= sqrt(n); exp: i ~ i +- 2^k; clusters: two complete halves\n"
            "                      joined by the one edge (n/2-1, n/2); star: peer 0 is the hub\n"
            "  -n N                number of peers (1..%d)\n"
            "  --seed S            seed for er and for the Byzantine placement (default 1)\n"
            "  -p P                er edge probability in (0, 1] (default 0.5)\n"
            "  --byzantine B       mark B peers byzantine, chosen by the seed\n"
            "  --attack SPEC       their attack, NAME[:key=value,...]\n"
            "  --weights SCHEME    metropolis (default) | uniform\n"
            "  --port P            first port (default 27000, or clear of the local ephemeral\n"
            "                      port range when 27000.. is not); peer i gets P+i, or with\n"
            "                      several hosts consecutive ports per host from P; a warning\n"
            "                      when a port falls in the ephemeral range\n"
            "  --host H            host of every peer (default 127.0.0.1)\n"
            "  --hosts FILE        hosts, one per line ('#' comments); peers placed round-robin\n"
            "  --nodelist LIST     hosts as a SLURM node list, e.g. node[01-03,07],gpu5\n"
            "  --tasks-per-node K  with hosts: K consecutive peer ids per host (SLURM block\n"
            "                      distribution) instead of round-robin\n"
            "  -o FILE             output file (written whole, then renamed into place)\n"
            "\n"
            "check: validates FILE and prints peers, edges, degrees, the spectral gap of the\n"
            "  combination weights and the Byzantine placement; exit 0 if valid, 1 if not\n"
            "  (2 if the spectral gap cannot be computed).\n"
            "\n"
            "show --json: FILE as one JSON object (peers with endpoint, host, port, bind, key,\n"
            "  role, attack, rule, b, neighbours and weights; edges; Byzantine placement;\n"
            "  --gap adds the spectral gap); exit 0, or 1 if FILE is invalid.\n"
            "\n"
            "edit: writes FILE again (stdout without -o) with, for every peer,\n"
            "  --keys DIR          key= read from DIR/peer-<id>.pub (ohmpeer keygen writes it)\n"
            "  --bind HOST         bind=tcp://HOST:<the port of its endpoint>, e.g. 0.0.0.0\n"
            "  the result is checked like any topology; exit 0, 1 if FILE, a key or the result\n"
            "  is invalid.\n",
            OHM_TOPO_MAX_PEERS);
}

static int __attribute__((format(printf, 1, 2))) bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ohmtopo: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (ohmtopo --help)\n");
    va_end(ap);
    return 2;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* The command line as a comment: control characters become '?', so that the
 * comment stays one line. */
static void write_command(FILE *f, int argc, char **argv)
{
    fputs("# ohmtopo", f);
    for (int i = 1; i < argc; i++) {
        fputc(' ', f);
        for (const char *c = argv[i]; *c; c++)
            fputc((unsigned char)*c < 0x20 || *c == 0x7f ? '?' : *c, f);
    }
    fputc('\n', f);
}

/* Writes t (after the command line as a comment) to stdout, or to `out` beside
 * the target and renamed into place, so a reader never sees half a file.
 * Returns 0, or 2 after an error message. */
static int write_topology(const ohm_topology_t *t, const char *out, int argc, char **argv)
{
    if (!out) {
        write_command(stdout, argc, argv);
        if (ohm_topology_write(t, stdout) || fflush(stdout)) {
            fprintf(stderr, "ohmtopo: writing stdout: %s\n", strerror(errno));
            return 2;
        }
        return 0;
    }
    size_t len = strlen(out) + 32;
    char *tmp = malloc(len);
    FILE *f = NULL;
    if (tmp) {
        snprintf(tmp, len, "%s.tmp.%ld", out, (long)getpid());
        f = fopen(tmp, "w");
    }
    int status = 0;
    if (!f) {
        fprintf(stderr, "ohmtopo: %s: %s\n", out, tmp ? strerror(errno) : "out of memory");
        status = 2;
    } else {
        write_command(f, argc, argv);
        int wrc = ohm_topology_write(t, f);
        if (fclose(f) || wrc || rename(tmp, out)) {
            fprintf(stderr, "ohmtopo: writing %s: %s\n", out, strerror(errno));
            remove(tmp);
            status = 2;
        }
    }
    free(tmp);
    return status;
}

static int known_option(const char *a)
{
    static const char *const opts[] = {
        "-n",     "--seed",  "-p",         "--byzantine",      "--attack", "--weights", "--port",
        "--host", "--hosts", "--nodelist", "--tasks-per-node", "-o",       "--out"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (strcmp(a, opts[i]) == 0) return 1;
    return 0;
}

/* Ports in the kernel's ephemeral range may be taken by outgoing connections
 * (the peers' own links among them) before their peer binds: without --port,
 * pick a first port clear of it; with --port, warn. */
static void check_ports(ohm_topogen_t *g)
{
    int lo, hi, first, last;
    const char *file = getenv("OHMTOPO_PORT_RANGE_FILE");
    if (!file) file = OHM_EPHEMERAL_RANGE_FILE;
    if (ohm_topogen_ephemeral_range(file, &lo, &hi) != OHM_OK) return; /* not Linux: no range */
    ohm_topogen_port_span(g, &first, &last);
    if (last < lo || first > hi) return;
    if (!g->port) {
        int p = ohm_topogen_safe_port(last - first + 1, lo, hi);
        if (p) {
            g->port = p;
            fprintf(stderr,
                    "ohmtopo: ports %d..%d would fall in the ephemeral port range %d..%d (%s); "
                    "using %d..%d\n",
                    first, last, lo, hi, file, p, p + last - first);
            return;
        }
    }
    fprintf(stderr,
            "ohmtopo: warning: ports %d..%d overlap the ephemeral port range %d..%d (%s): "
            "outgoing connections may take them and a peer then fails to bind; use a --port "
            "span below %d or above %d\n",
            first, last, lo, hi, file, lo, hi);
}

static int cmd_gen(int argc, char **argv)
{
    ohm_topogen_t g = {.seed = 1, .p = 0.5, .n = -1};
    const char *out = NULL, *hosts_file = NULL, *nodelist = NULL;
    if (argc >= 3 && (strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 3 || argv[2][0] == '-') return bad("gen: missing KIND");
    g.kind = argv[2];
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        char name[32];
        const char *eq = strchr(a, '=');
        if (a[0] == '-' && a[1] == '-' && eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            a = name;
            v = eq + 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (!known_option(a)) {
            return bad("gen: unknown option '%s'", a);
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            return bad("option %s needs a value", a);
        }
        long x;
        if (strcmp(a, "-n") == 0) {
            if (parse_int(v, 1, OHM_TOPO_MAX_PEERS, &x))
                return bad("-n: '%s' is not in 1..4096", v);
            g.n = (int)x;
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 0);
            if (end == v || *end || errno || v[0] == '-')
                return bad("--seed: '%s' is not a non-negative integer", v);
            g.seed = s;
        } else if (strcmp(a, "-p") == 0) {
            char *end;
            double p = strtod(v, &end);
            if (end == v || *end || !(p > 0 && p <= 1)) return bad("-p: '%s' is not in (0, 1]", v);
            g.p = p;
        } else if (strcmp(a, "--byzantine") == 0) {
            if (parse_int(v, 0, OHM_TOPO_MAX_PEERS, &x))
                return bad("--byzantine: '%s' is not a non-negative integer", v);
            g.byzantine = (int)x;
        } else if (strcmp(a, "--attack") == 0) {
            g.attack = v;
        } else if (strcmp(a, "--weights") == 0) {
            if (strcmp(v, "metropolis") && strcmp(v, "uniform"))
                return bad("--weights: '%s' is not metropolis or uniform", v);
            g.weights = v;
        } else if (strcmp(a, "--port") == 0) {
            if (parse_int(v, 1, 65535, &x)) return bad("--port: '%s' is not in 1..65535", v);
            g.port = (int)x;
        } else if (strcmp(a, "--host") == 0) {
            g.host = v;
        } else if (strcmp(a, "--hosts") == 0) {
            hosts_file = v;
        } else if (strcmp(a, "--nodelist") == 0) {
            nodelist = v;
        } else if (strcmp(a, "--tasks-per-node") == 0) {
            if (parse_int(v, 1, OHM_TOPO_MAX_PEERS, &x))
                return bad("--tasks-per-node: '%s' is not a positive integer", v);
            g.tasks_per_node = (int)x;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) {
            out = v;
        } else {
            return bad("gen: unknown option '%s'", a);
        }
    }
    if (g.n < 0) return bad("gen: -n N is required");
    if (hosts_file && nodelist) return bad("--hosts and --nodelist exclude each other");
    if (g.host && (hosts_file || nodelist))
        return bad("--host and --hosts/--nodelist exclude each other");
    if (g.tasks_per_node && !hosts_file && !nodelist)
        return bad("--tasks-per-node needs --hosts or --nodelist");

    char **hosts = NULL;
    int nh = 0, rc = OHM_OK;
    if (hosts_file) rc = ohm_topogen_read_hosts(hosts_file, &hosts, &nh);
    if (nodelist) rc = ohm_topogen_expand_nodelist(nodelist, &hosts, &nh);
    if (rc) {
        fprintf(stderr, "ohmtopo: %s\n", ohm_error_detail());
        return 2;
    }
    g.hosts = (const char *const *)hosts;
    g.n_hosts = nh;
    check_ports(&g);
    ohm_topology_t *t = NULL;
    rc = ohm_topology_generate(&g, &t);
    ohm_topogen_free_hosts(&hosts, nh);
    if (rc) {
        fprintf(stderr, "ohmtopo: gen %s: %s\n", g.kind, ohm_error_detail());
        return 2;
    }

    int status = write_topology(t, out, argc, argv);
    ohm_topology_destroy(&t);
    return status;
}

/* Prints "id:value" pairs, 12 per line, under a heading. */
static void print_pairs(const char *head, const int *ids, const int *vals, int n)
{
    printf("%s", head);
    for (int i = 0; i < n; i++)
        printf("%s%d:%d", i % 12 == 0 ? "\n   " : " ", ids[i], vals[i]);
    printf("\n");
}

static int cmd_check(int argc, char **argv)
{
    if (argc == 3 && (strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc != 3) return bad("check: expected exactly one FILE");
    const char *path = argv[2];
    ohm_topology_t *t = NULL;
    if (ohm_topology_load(path, &t)) {
        fprintf(stderr, "ohmtopo: invalid: %s\n", ohm_error_detail());
        return 1;
    }
    int n = ohm_topology_size(t);
    int *ids = malloc((size_t)n * sizeof *ids), *vals = malloc((size_t)n * sizeof *vals);
    if (!ids || !vals) {
        fprintf(stderr, "ohmtopo: out of memory\n");
        free(ids);
        free(vals);
        ohm_topology_destroy(&t);
        return 1;
    }
    int dmin = INT_MAX, dmax = 0;
    long dsum = 0;
    for (int i = 0; i < n; i++) {
        const uint32_t *nb;
        int d = ohm_topology_neighbors(t, (uint32_t)i, &nb);
        ids[i] = i;
        vals[i] = d;
        dmin = d < dmin ? d : dmin;
        dmax = d > dmax ? d : dmax;
        dsum += d;
    }
    int sym = ohm_topology_is_symmetric(t);
    int ds = sym || ohm_topology_is_doubly_stochastic(t);
    printf("%s: valid\n", path);
    printf("peers: %d\nedges: %zu\n", n, ohm_topology_edge_count(t));
    printf("degree: min %d, mean %.3f, max %d\n", dmin, (double)dsum / n, dmax);
    print_pairs("degrees (peer:degree):", ids, vals, n);
    printf("weights: %s; %s; %s\n", ohm_topology_scheme(t), sym ? "symmetric" : "not symmetric",
           ds ? "doubly stochastic" : "row stochastic only");
    ohm_topo_gap_t gap;
    int status = 0;
    if (ohm_topology_spectral_gap(t, &gap)) {
        fprintf(stderr, "ohmtopo: spectral gap: %s\n", ohm_error_detail());
        printf("spectral gap: not computed (see the error)\n");
        status = 2;
    } else {
        printf("spectral gap: %.6g (%s, %s)\n", gap.gap, gap.estimate ? "estimate" : "exact",
               gap.method);
    }
    int nb_byz = ohm_topology_byzantine_count(t);
    printf("byzantine: %d of %d peers", nb_byz, n);
    for (int i = 0; i < n; i++) {
        const ohm_peer_info_t *p = ohm_topology_peer(t, (uint32_t)i);
        if (p->byzantine) printf("%s%d (%s)", " ", i, p->attack ? p->attack : "no attack given");
    }
    printf("\n");
    if (nb_byz > 0) {
        int m = 0, worst = 0;
        for (int i = 0; i < n; i++) {
            if (ohm_topology_peer(t, (uint32_t)i)->byzantine) continue;
            ids[m] = i;
            vals[m] = ohm_topology_byzantine_neighbors(t, (uint32_t)i);
            const uint32_t *nb;
            int d = ohm_topology_neighbors(t, (uint32_t)i, &nb);
            if (2 * vals[m] >= d) worst++;
            m++;
        }
        print_pairs("byzantine neighbours of honest peers (peer:count):", ids, vals, m);
        if (worst)
            printf("warning: %d honest peer(s) have at least half of their neighbours byzantine\n",
                   worst);
    }
    free(ids);
    free(vals);
    ohm_topology_destroy(&t);
    return fflush(stdout) ? 2 : status;
}

/* Reads DIR/peer-<id>.pub: one 40-character Z85 public key (a newline may follow). */
static int read_pub(const char *dir, int id, uint8_t key[32])
{
    char path[PATH_MAX], text[64];
    snprintf(path, sizeof path, "%s/peer-%d.pub", dir, id);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "ohmtopo: edit: peer %d: %s: %s\n", id, path, strerror(errno));
        return -1;
    }
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        text[--n] = '\0';
    if (n != 40 || !zmq_z85_decode(key, text)) {
        fprintf(stderr, "ohmtopo: edit: peer %d: %s is not a 40-character Z85 public key\n", id,
                path);
        return -1;
    }
    return 0;
}

static int cmd_edit(int argc, char **argv)
{
    const char *path = NULL, *keys = NULL, *bind_host = NULL, *out = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--keys") && has)
            keys = argv[++i];
        else if (!strcmp(a, "--bind") && has)
            bind_host = argv[++i];
        else if ((!strcmp(a, "-o") || !strcmp(a, "--out")) && has)
            out = argv[++i];
        else if (a[0] == '-' && a[1])
            return bad("edit: unknown option or missing value '%s'", a);
        else if (path)
            return bad("edit: one FILE only ('%s' and '%s')", path, a);
        else
            path = a;
    }
    if (!path) return bad("edit: missing FILE");
    if (!keys && !bind_host) return bad("edit: nothing to change (--keys DIR, --bind HOST)");
    ohm_topology_t *t = NULL;
    if (ohm_topology_load(path, &t)) {
        fprintf(stderr, "ohmtopo: invalid: %s\n", ohm_error_detail());
        return 1;
    }
    int n = ohm_topology_size(t), status = 1;
    ohm_topo_edit_t *ed = calloc((size_t)n, sizeof *ed);
    uint8_t(*kv)[32] = calloc((size_t)n, sizeof *kv);
    char(*bv)[300] = calloc((size_t)n, sizeof *bv);
    ohm_topology_t *u = NULL;
    if (!ed || !kv || !bv) {
        fprintf(stderr, "ohmtopo: edit: out of memory\n");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (keys) {
            if (read_pub(keys, i, kv[i])) goto done;
            ed[i].key = kv[i];
        }
        if (bind_host) {
            const char *ep = ohm_topology_peer(t, (uint32_t)i)->endpoint;
            snprintf(bv[i], sizeof bv[i], "tcp://%s:%s", bind_host, strrchr(ep, ':') + 1);
            ed[i].bind = bv[i];
        }
    }
    if (ohm_topology_edit(t, ed, path, &u)) {
        fprintf(stderr, "ohmtopo: edit: %s\n", ohm_error_detail());
        goto done;
    }
    status = write_topology(u, out, argc, argv);
done:
    ohm_topology_destroy(&u);
    free(ed);
    free(kv);
    free(bv);
    ohm_topology_destroy(&t);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "gen") == 0) return cmd_gen(argc, argv);
    if (strcmp(cmd, "check") == 0) return cmd_check(argc, argv);
    if (strcmp(cmd, "show") == 0) return ohmtopo_show(argc, argv);
    if (strcmp(cmd, "edit") == 0) return cmd_edit(argc, argv);
    return bad("unknown command '%s'", cmd);
}
