/* ohm_topo_parse: the topology file format, both ways. The parser splits
 * lines into tokens (a token starting with '#' starts a comment; a '#' inside
 * a token is data, since Z85 keys use it) and feeds each declaration to the
 * builder; the writer prints a topology so that the parser rebuilds the same
 * one (same digest). The format is described in ohm_topology.h. */
#include "ohm_topology.h"

#include "ohm_error.h"
#include "ohm_topo_build.h"
#include "ohm_topo_internal.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define MAX_TOKENS 16

/* A decimal id: digits only (no sign), below OHM_TOPO_MAX_PEERS; whether it
 * names a declared peer is checked once the whole file is read. */
static int parse_id(const ohm_topo_build_t *b, int line, const char *s, const char *what,
                    uint32_t *out)
{
    size_t len = strlen(s);
    if (len == 0 || strspn(s, "0123456789") != len) {
        if (s[0] == '-' && len > 1 && strspn(s + 1, "0123456789") == len - 1)
            return ohm_topo_build_error(b, line, OHM_EPARSE, "%s '%s' is negative", what, s);
        return ohm_topo_build_error(b, line, OHM_EPARSE, "%s '%s' is not a non-negative integer",
                                    what, s);
    }
    if (len > 9 || strtoul(s, NULL, 10) >= OHM_TOPO_MAX_PEERS)
        return ohm_topo_build_error(b, line, OHM_ETOOBIG, "%s %s exceeds the limit of %d peers",
                                    what, s, OHM_TOPO_MAX_PEERS);
    *out = (uint32_t)strtoul(s, NULL, 10);
    return OHM_OK;
}

static int parse_double(const ohm_topo_build_t *b, int line, const char *s, const char *what,
                        double *out)
{
    char *end;
    double v = strtod(s, &end); /* underflow to a denormal is fine: it is in range */
    if (end == s || *end != '\0')
        return ohm_topo_build_error(b, line, OHM_EPARSE, "%s '%s' is not a number", what, s);
    if (!isfinite(v) || v < 0 || v > 1)
        return ohm_topo_build_error(b, line, OHM_ERANGE, "%s %s is not in [0, 1]", what, s);
    *out = v;
    return OHM_OK;
}

static int parse_peer(ohm_topo_build_t *b, int line, char **tok, int nt)
{
    if (nt < 3)
        return ohm_topo_build_error(
            b, line, OHM_EPARSE,
            "peer: missing fields (expected: peer ID tcp://HOST:PORT [options])");
    ohm_peer_info_t p = {.b = -1};
    int rc = parse_id(b, line, tok[1], "peer id", &p.id);
    if (rc) return rc;
    p.endpoint = tok[2];
    static const char *const opts[] = {"key", "role", "attack", "rule", "b", "bind"};
    int seen[6] = {0};
    for (int k = 3; k < nt; k++) {
        char *eq = strchr(tok[k], '=');
        int o = -1;
        if (eq)
            for (int q = 0; q < 6; q++)
                if ((size_t)(eq - tok[k]) == strlen(opts[q]) &&
                    strncmp(tok[k], opts[q], strlen(opts[q])) == 0)
                    o = q;
        if (o < 0)
            return ohm_topo_build_error(
                b, line, OHM_EPARSE,
                "peer %u: unknown option '%s' (key=, role=, attack=, rule=, b=, bind=)", p.id,
                tok[k]);
        if (seen[o]++)
            return ohm_topo_build_error(b, line, OHM_EPARSE, "peer %u: %s= given twice", p.id,
                                        opts[o]);
        const char *v = eq + 1;
        switch (o) {
        case 0: {
            if (strlen(v) != 40 || !zmq_z85_decode(p.key, v))
                return ohm_topo_build_error(
                    b, line, OHM_EPARSE,
                    "peer %u: bad key: a CURVE public key is 40 Z85 characters", p.id);
            p.has_key = 1;
            break;
        }
        case 1:
            if (strcmp(v, "byzantine") == 0)
                p.byzantine = 1;
            else if (strcmp(v, "honest") != 0)
                return ohm_topo_build_error(b, line, OHM_EPARSE,
                                            "peer %u: unknown role '%s' (byzantine or honest)",
                                            p.id, v);
            break;
        case 2:
            p.attack = v;
            break;
        case 3:
            p.rule = v;
            break;
        case 4: {
            size_t l = strlen(v);
            if (l == 0 || l > 5 || strspn(v, "0123456789") != l)
                return ohm_topo_build_error(
                    b, line, OHM_EPARSE, "peer %u: b='%s' is not a non-negative integer", p.id, v);
            p.b = atoi(v);
            break;
        }
        case 5:
            p.bind = v;
            break;
        }
    }
    return ohm_topo_build_peer(b, &p, line);
}

static int parse_line(ohm_topo_build_t *b, int line, char **tok, int nt)
{
    const char *d = tok[0];
    uint32_t i, j;
    int rc;
    if (strcmp(d, "peer") == 0) return parse_peer(b, line, tok, nt);
    if (strcmp(d, "edge") == 0) {
        if (nt < 3)
            return ohm_topo_build_error(b, line, OHM_EPARSE,
                                        "edge: missing fields (expected: edge I J [w=W])");
        if (nt > 4)
            return ohm_topo_build_error(b, line, OHM_EPARSE, "edge: too many fields ('%s')",
                                        tok[4]);
        if ((rc = parse_id(b, line, tok[1], "edge peer", &i)) ||
            (rc = parse_id(b, line, tok[2], "edge peer", &j)))
            return rc;
        double w = 0;
        if (nt == 4) {
            if (strncmp(tok[3], "w=", 2) != 0)
                return ohm_topo_build_error(b, line, OHM_EPARSE,
                                            "edge %u %u: unknown option '%s' (w=)", i, j, tok[3]);
            if ((rc = parse_double(b, line, tok[3] + 2, "edge weight", &w))) return rc;
        }
        return ohm_topo_build_edge(b, i, j, nt == 4, w, line);
    }
    if (strcmp(d, "weight") == 0) {
        if (nt < 4)
            return ohm_topo_build_error(b, line, OHM_EPARSE,
                                        "weight: missing fields (expected: weight I J VALUE)");
        if (nt > 4)
            return ohm_topo_build_error(b, line, OHM_EPARSE, "weight: too many fields ('%s')",
                                        tok[4]);
        double v = 0;
        if ((rc = parse_id(b, line, tok[1], "weight peer", &i)) ||
            (rc = parse_id(b, line, tok[2], "weight peer", &j)) ||
            (rc = parse_double(b, line, tok[3], "weight", &v)))
            return rc;
        return ohm_topo_build_weight(b, i, j, v, line);
    }
    if (strcmp(d, "weights") == 0) {
        if (nt != 2)
            return ohm_topo_build_error(b, line, OHM_EPARSE,
                                        "weights: expected exactly one of metropolis, uniform");
        return ohm_topo_build_scheme(b, tok[1], line);
    }
    return ohm_topo_build_error(b, line, OHM_EPARSE,
                                "unknown directive '%.40s' (peer, edge, weights, weight)", d);
}

int ohm_topology_parse(const char *text, size_t len, const char *name, ohm_topology_t **out)
{
    *out = NULL;
    ohm_topo_build_t *b;
    int rc = ohm_topo_build_new(name, &b);
    if (rc) return rc;
    char *buf = malloc(OHM_TOPO_MAX_LINE + 1);
    if (!buf) {
        ohm_topo_build_destroy(&b);
        return ohm_error_set(OHM_ENOMEM, "%s: line buffer", name);
    }
    int line = 0;
    size_t pos = 0;
    while (pos < len && !rc) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
        line++;
        if (ll > OHM_TOPO_MAX_LINE) {
            rc = ohm_topo_build_error(b, line, OHM_ETOOBIG, "line longer than %d bytes",
                                      OHM_TOPO_MAX_LINE);
            break;
        }
        memcpy(buf, text + pos, ll);
        buf[ll] = '\0';
        pos += ll + (nl ? 1 : 0);
        if (memchr(buf, '\0', ll)) {
            rc = ohm_topo_build_error(b, line, OHM_EPARSE, "NUL byte in line");
            break;
        }
        char *tok[MAX_TOKENS];
        int nt = 0;
        char *p = buf;
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f')
                p++;
            if (*p == '\0' || *p == '#') break;
            if (nt == MAX_TOKENS) {
                rc = ohm_topo_build_error(b, line, OHM_EPARSE, "more than %d fields", MAX_TOKENS);
                break;
            }
            tok[nt++] = p;
            while (*p && !(*p == ' ' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f'))
                p++;
            if (*p) *p++ = '\0';
        }
        if (rc || nt == 0) continue;
        for (int k = 0; k < nt && !rc; k++)
            for (const char *c = tok[k]; *c && !rc; c++)
                if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
                    rc = ohm_topo_build_error(b, line, OHM_EPARSE,
                                              "non-printable or non-ASCII byte 0x%02x",
                                              (unsigned char)*c);
        if (!rc) rc = parse_line(b, line, tok, nt);
    }
    free(buf);
    if (rc) {
        ohm_topo_build_destroy(&b);
        return rc;
    }
    return ohm_topo_build_finish(&b, line > 0 ? line : 1, out);
}

/* Files above this size are refused before reading (a topology of 4096 peers
 * with every edge and weight spelled out stays well below). */
#define MAX_FILE_BYTES ((size_t)1 << 30)

int ohm_topology_load(const char *path, ohm_topology_t **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ohm_error_set(OHM_EIO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    int rc = OHM_OK;
    while (buf) {
        if (len == cap) {
            if (cap >= MAX_FILE_BYTES) {
                rc = ohm_error_set(OHM_ETOOBIG, "%s: larger than %zu bytes", path, MAX_FILE_BYTES);
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                rc = ohm_error_set(OHM_EIO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!buf) return ohm_error_set(OHM_ENOMEM, "%s: read buffer", path);
    if (!rc) rc = ohm_topology_parse(buf, len, path, out);
    free(buf);
    return rc;
}

int ohm_topology_write(const ohm_topology_t *t, FILE *f)
{
    fprintf(f, "# %d peers, %zu edges\n", t->n, t->n_edges);
    if (t->scheme_given || t->scheme != OHM_TOPO_SCHEME_METROPOLIS)
        fprintf(f, "weights %s\n", ohm_topology_scheme(t));
    for (int i = 0; i < t->n; i++) {
        const ohm_peer_info_t *p = &t->peers[i];
        fprintf(f, "peer %d %s", i, p->endpoint);
        if (p->bind) fprintf(f, " bind=%s", p->bind);
        if (p->byzantine) fprintf(f, " role=byzantine");
        if (p->attack) fprintf(f, " attack=%s", p->attack);
        if (p->rule) fprintf(f, " rule=%s", p->rule);
        if (p->b >= 0) fprintf(f, " b=%d", p->b);
        if (p->has_key) {
            char z[41];
            if (!zmq_z85_encode(z, p->key, 32)) return ohm_error_set(OHM_EINVAL, "key encoding");
            fprintf(f, " key=%s", z);
        }
        fputc('\n', f);
    }
    for (int i = 0; i < t->n; i++)
        for (uint32_t s = t->off[i]; s < t->off[i + 1]; s++) {
            uint32_t j = t->adj[s];
            if (j < (uint32_t)i) continue;
            long r = ohm_topo_find_slot(t, j, (uint32_t)i);
            assert(r >= 0);
            if (t->expl[s] && t->expl[r] && t->w[s] == t->w[r])
                fprintf(f, "edge %d %u w=%.17g\n", i, j, t->w[s]);
            else
                fprintf(f, "edge %d %u\n", i, j);
        }
    for (int i = 0; i < t->n; i++)
        for (uint32_t s = t->off[i]; s < t->off[i + 1]; s++) {
            uint32_t j = t->adj[s];
            long r = ohm_topo_find_slot(t, j, (uint32_t)i);
            if (t->expl[s] && !(t->expl[r] && t->w[s] == t->w[r]))
                fprintf(f, "weight %d %u %.17g\n", i, j, t->w[s]);
        }
    if (fflush(f) != 0 || ferror(f))
        return ohm_error_set(OHM_EIO, "writing topology: %s", strerror(errno));
    return OHM_OK;
}
