/* ohmtopo_show: the JSON view of a topology. The object printed is
 *
 *   {"file": F, "peer_count": N, "edge_count": E, "scheme": "metropolis"|"uniform",
 *    "symmetric": B, "doubly_stochastic": B, "digest": "16 hex digits",
 *    "byzantine": [ids],
 *    "peers": [{"id", "endpoint", "host", "port", "bind" (null if none),
 *              "key" (Z85 or null), "role" ("honest"|"byzantine"), "attack",
 *              "rule" (null if none), "b" (null if none), "neighbors": [ids],
 *              "weights": [a_ij in the order of neighbors], "self_weight": a_ii,
 *              "byzantine_neighbors": count}, ...],
 *    "edges": [[i, j], ...]   (i < j, ascending),
 *    "spectral_gap": {"gap", "estimate", "method"}   (only with --gap)}
 *
 * Weights are printed with 17 significant digits, so they read back exactly. */
#include "ohmtopo_show.h"

#include "ohm_error.h"
#include "ohm_topology.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(f, "\\%c", *c);
        else if (*c < 0x20 || *c == 0x7f)
            fprintf(f, "\\u%04x", *c);
        else
            fputc(*c, f);
    }
    fputc('"', f);
}

/* The host and port of tcp://HOST:PORT (validated by the parser); the
 * brackets of an IPv6 host are kept, as in the endpoint. */
static void json_host_port(FILE *f, const char *endpoint)
{
    const char *h = endpoint + strlen("tcp://");
    const char *colon = strrchr(h, ':');
    char host[300];
    snprintf(host, sizeof host, "%.*s", (int)(colon - h), h);
    fputs(", \"host\": ", f);
    json_str(f, host);
    fprintf(f, ", \"port\": %s", colon + 1);
}

static void json_peer(FILE *f, const ohm_topology_t *t, uint32_t i)
{
    const ohm_peer_info_t *p = ohm_topology_peer(t, i);
    fprintf(f, "    {\"id\": %" PRIu32 ", \"endpoint\": ", i);
    json_str(f, p->endpoint);
    json_host_port(f, p->endpoint);
    fputs(", \"bind\": ", f);
    json_str(f, p->bind);
    fputs(", \"key\": ", f);
    char z[41];
    json_str(f, p->has_key && zmq_z85_encode(z, p->key, 32) ? z : NULL);
    fprintf(f, ", \"role\": \"%s\", \"attack\": ", p->byzantine ? "byzantine" : "honest");
    json_str(f, p->attack);
    fputs(", \"rule\": ", f);
    json_str(f, p->rule);
    if (p->b >= 0)
        fprintf(f, ", \"b\": %d", p->b);
    else
        fputs(", \"b\": null", f);
    const uint32_t *nb;
    int d = ohm_topology_neighbors(t, i, &nb);
    fputs(",\n     \"neighbors\": [", f);
    for (int k = 0; k < d; k++)
        fprintf(f, "%s%" PRIu32, k ? ", " : "", nb[k]);
    fputs("], \"weights\": [", f);
    for (int k = 0; k < d; k++)
        fprintf(f, "%s%.17g", k ? ", " : "", ohm_topology_weight(t, i, nb[k]));
    fprintf(f, "], \"self_weight\": %.17g, \"byzantine_neighbors\": %d}",
            ohm_topology_weight(t, i, i), ohm_topology_byzantine_neighbors(t, i));
}

static int print_json(FILE *f, const char *path, const ohm_topology_t *t, int with_gap)
{
    ohm_topo_gap_t gap = {0};
    if (with_gap && ohm_topology_spectral_gap(t, &gap)) {
        fprintf(stderr, "ohmtopo: %s: %s\n", path, ohm_error_detail());
        return 1;
    }
    int n = ohm_topology_size(t);
    fputs("{\n  \"file\": ", f);
    json_str(f, path);
    fprintf(f, ",\n  \"peer_count\": %d,\n  \"edge_count\": %zu,\n  \"scheme\": \"%s\",\n", n,
            ohm_topology_edge_count(t), ohm_topology_scheme(t));
    fprintf(f, "  \"symmetric\": %s,\n  \"doubly_stochastic\": %s,\n",
            ohm_topology_is_symmetric(t) ? "true" : "false",
            ohm_topology_is_doubly_stochastic(t) ? "true" : "false");
    fprintf(f, "  \"digest\": \"%016" PRIx64 "\",\n  \"byzantine\": [", ohm_topology_digest(t));
    for (int i = 0, m = 0; i < n; i++)
        if (ohm_topology_peer(t, (uint32_t)i)->byzantine) fprintf(f, "%s%d", m++ ? ", " : "", i);
    fputs("],\n  \"peers\": [\n", f);
    for (int i = 0; i < n; i++) {
        json_peer(f, t, (uint32_t)i);
        fputs(i + 1 < n ? ",\n" : "\n", f);
    }
    fputs("  ],\n  \"edges\": [", f);
    size_t e = 0;
    for (int i = 0; i < n; i++) {
        const uint32_t *nb;
        int d = ohm_topology_neighbors(t, (uint32_t)i, &nb);
        for (int k = 0; k < d; k++) {
            if (nb[k] < (uint32_t)i) continue;
            const char *sep = e == 0 ? "" : e % 8 == 0 ? ",\n    " : ", ";
            fprintf(f, "%s[%d, %" PRIu32 "]", sep, i, nb[k]);
            e++;
        }
    }
    fputs("]", f);
    if (with_gap) {
        fprintf(f,
                ",\n  \"spectral_gap\": {\"gap\": %.17g, \"estimate\": %s, \"method\": ", gap.gap,
                gap.estimate ? "true" : "false");
        json_str(f, gap.method);
        fputs("}", f);
    }
    fputs("\n}\n", f);
    return 0;
}

static int show_usage(int status)
{
    fprintf(status ? stderr : stdout,
            "usage: ohmtopo show --json [--gap] FILE\n"
            "  prints the topology as one JSON object: peers (id, endpoint, host, port, bind,\n"
            "  key, role, attack, rule, b, neighbours and their weights, self weight), edges,\n"
            "  scheme, digest, Byzantine placement; --gap adds the spectral gap\n");
    return status;
}

int ohmtopo_show(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0, with_gap = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--gap"))
            with_gap = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return show_usage(0);
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "ohmtopo: show: unknown option '%s'\n", argv[i]);
            return show_usage(2);
        } else if (path) {
            fprintf(stderr, "ohmtopo: show: one FILE only ('%s' and '%s')\n", path, argv[i]);
            return show_usage(2);
        } else
            path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "ohmtopo: show: missing FILE\n");
        return show_usage(2);
    }
    if (!json) {
        fprintf(stderr, "ohmtopo: show: only --json output exists (the text view is "
                        "`ohmtopo check`)\n");
        return show_usage(2);
    }
    ohm_topology_t *t = NULL;
    if (ohm_topology_load(path, &t)) {
        fprintf(stderr, "ohmtopo: invalid: %s\n", ohm_error_detail());
        return 1;
    }
    int rc = print_json(stdout, path, t, with_gap);
    ohm_topology_destroy(&t);
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "ohmtopo: writing stdout failed\n");
        return 1;
    }
    return rc;
}
