/* ohm_topo_build: the one path by which a topology comes to exist. It checks
 * each declaration (endpoints, attack and rule syntax, duplicate ids, weights
 * in range), then at finish the whole graph (unknown peers in edges, duplicate
 * edges, endpoints and keys, connectivity) and computes the combination
 * weights: explicit entries are kept, the scheme fills the rest, the self
 * weight takes the remainder of the row. */
#include "ohm_topo_build.h"

#include "ohm_error.h"
#include "ohm_topo_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Entries of a row may sum past 1 by this much before the row is refused. */
#define ROW_TOL 1e-9

typedef struct {
    ohm_peer_info_t info; /* owned strings */
    char *norm;           /* normalized endpoint (lower-case host:port) for duplicates */
    int line;
    int declared;
} peer_rec_t;

typedef struct {
    uint32_t lo, hi;
    int line;
    int has_w;
    double w;
} edge_rec_t;

typedef struct {
    uint32_t i, j;
    int line;
    double v;
} weight_rec_t;

struct ohm_topo_build {
    char *name;
    peer_rec_t *peers; /* indexed by id, cap entries */
    uint32_t cap;
    uint32_t max_id;
    int n_declared;
    edge_rec_t *edges;
    size_t n_edges, cap_edges;
    weight_rec_t *weights;
    size_t n_weights, cap_weights;
    int scheme, scheme_line;
};

int ohm_topo_build_error(const ohm_topo_build_t *b, int line, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0) return ohm_error_set(code, "%s:%d: %s", b->name, line, msg);
    return ohm_error_set(code, "%s: %s", b->name, msg);
}

int ohm_topo_build_new(const char *name, ohm_topo_build_t **out)
{
    *out = NULL;
    ohm_topo_build_t *b = calloc(1, sizeof *b);
    if (!b || !(b->name = strdup(name ? name : "topology"))) {
        free(b);
        return ohm_error_set(OHM_ENOMEM, "topology builder");
    }
    b->scheme = OHM_TOPO_SCHEME_METROPOLIS;
    *out = b;
    return OHM_OK;
}

void ohm_topo_peer_info_free(ohm_peer_info_t *p)
{
    free((char *)p->endpoint);
    free((char *)p->bind);
    free((char *)p->attack);
    free((char *)p->rule);
    memset(p, 0, sizeof *p);
}

void ohm_topo_build_destroy(ohm_topo_build_t **bp)
{
    if (!bp || !*bp) return;
    ohm_topo_build_t *b = *bp;
    for (uint32_t i = 0; i < b->cap; i++) {
        ohm_topo_peer_info_free(&b->peers[i].info);
        free(b->peers[i].norm);
    }
    free(b->peers);
    free(b->edges);
    free(b->weights);
    free(b->name);
    free(b);
    *bp = NULL;
}

/* Host name: dot-separated labels of letters, digits, '-' and '_', no label
 * empty or starting/ending with '-'. */
static int valid_hostname(const char *h, size_t len)
{
    if (len == 0 || len > 253) return 0;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = h[i];
        if (c == '.') {
            if (label == 0 || h[i - 1] == '-') return 0;
            label = 0;
            continue;
        }
        if (!(isalnum((unsigned char)c) || c == '-' || c == '_')) return 0;
        if (c == '-' && label == 0) return 0;
        if (++label > 63) return 0;
    }
    return label > 0 && h[len - 1] != '-';
}

/* Checks "tcp://HOST:PORT". On success writes the normalized "host:port"
 * (host lower-cased, port without leading zeros) into norm; else writes why. */
static int check_endpoint(const char *s, int allow_wild, char *norm, size_t normlen, char *why,
                          size_t whylen)
{
    static const char pre[] = "tcp://";
    if (strncmp(s, pre, sizeof pre - 1) != 0) {
        snprintf(why, whylen, "must start with tcp://");
        return -1;
    }
    const char *h = s + sizeof pre - 1;
    const char *colon;
    char host[260];
    size_t hl;
    if (*h == '[') {
        const char *close = strchr(h, ']');
        if (!close || close[1] != ':') {
            snprintf(why, whylen, "IPv6 host must be written [ADDR]:PORT");
            return -1;
        }
        hl = (size_t)(close - h - 1);
        if (hl == 0 || hl >= 64) {
            snprintf(why, whylen, "bad IPv6 address");
            return -1;
        }
        memcpy(host, h + 1, hl);
        host[hl] = '\0';
        unsigned char a6[16];
        if (inet_pton(AF_INET6, host, a6) != 1) {
            snprintf(why, whylen, "bad IPv6 address '%.64s'", host);
            return -1;
        }
        colon = close + 1;
    } else {
        colon = strrchr(h, ':');
        if (!colon) {
            snprintf(why, whylen, "missing :PORT");
            return -1;
        }
        hl = (size_t)(colon - h);
        if (memchr(h, ':', hl)) {
            snprintf(why, whylen, "an IPv6 host must be in brackets");
            return -1;
        }
        if (hl == 0 || hl > 253) {
            snprintf(why, whylen, "missing or overlong host");
            return -1;
        }
        memcpy(host, h, hl);
        host[hl] = '\0';
        if (strcmp(host, "*") == 0) {
            if (!allow_wild) {
                snprintf(why, whylen, "wildcard host '*' is only allowed in bind=");
                return -1;
            }
        } else if (strspn(host, "0123456789.") == hl) {
            unsigned char a4[4];
            if (inet_pton(AF_INET, host, a4) != 1) {
                snprintf(why, whylen, "bad IPv4 address '%.64s'", host);
                return -1;
            }
        } else if (!valid_hostname(host, hl)) {
            snprintf(why, whylen, "bad host name '%.64s'", host);
            return -1;
        }
    }
    const char *p = colon + 1;
    size_t pl = strlen(p);
    if (pl == 0 || pl > 5 || strspn(p, "0123456789") != pl) {
        snprintf(why, whylen, "port must be a number 1..65535");
        return -1;
    }
    long port = strtol(p, NULL, 10);
    if (port < 1 || port > 65535) {
        snprintf(why, whylen, "port %ld outside 1..65535", port);
        return -1;
    }
    for (size_t i = 0; i < hl; i++)
        host[i] = (char)tolower((unsigned char)host[i]);
    snprintf(norm, normlen, "%s:%ld", host, port);
    return 0;
}

static int name_chars(const char *s, size_t len, int allow_dot_plus)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (isalnum((unsigned char)c) || c == '_' || c == '-') continue;
        if (allow_dot_plus && (c == '.' || c == '+')) continue;
        return 0;
    }
    return len > 0;
}

int ohm_topo_check_attack(const char *spec, char *why, size_t whylen)
{
    size_t len = strlen(spec);
    if (len > 256) {
        snprintf(why, whylen, "attack spec longer than 256 characters");
        return -1;
    }
    const char *colon = strchr(spec, ':');
    size_t nl = colon ? (size_t)(colon - spec) : len;
    if (!name_chars(spec, nl, 0)) {
        snprintf(why, whylen, "attack name must be letters, digits, '-' or '_'");
        return -1;
    }
    if (!colon) return 0;
    const char *p = colon + 1;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t pl = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', pl);
        if (!eq || !name_chars(p, (size_t)(eq - p), 0) ||
            !name_chars(eq + 1, pl - (size_t)(eq - p) - 1, 1)) {
            snprintf(why, whylen, "attack parameter '%.*s' is not KEY=VALUE", (int)pl, p);
            return -1;
        }
        if (!end) return 0;
        p = end + 1;
    }
}

static char *dup_opt(const char *s, int *oom)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *oom = 1;
    return d;
}

int ohm_topo_build_peer(ohm_topo_build_t *b, const ohm_peer_info_t *p, int line)
{
    char why[160], norm[300], bnorm[300];
    if (p->id >= OHM_TOPO_MAX_PEERS)
        return ohm_topo_build_error(b, line, OHM_ETOOBIG,
                                    "peer id %u exceeds the limit of %d peers", p->id,
                                    OHM_TOPO_MAX_PEERS);
    if (!p->endpoint || check_endpoint(p->endpoint, 0, norm, sizeof norm, why, sizeof why))
        return ohm_topo_build_error(b, line, OHM_EPARSE, "peer %u: bad endpoint '%s': %s", p->id,
                                    p->endpoint ? p->endpoint : "", p->endpoint ? why : "missing");
    if (p->bind && check_endpoint(p->bind, 1, bnorm, sizeof bnorm, why, sizeof why))
        return ohm_topo_build_error(b, line, OHM_EPARSE, "peer %u: bad bind endpoint '%s': %s",
                                    p->id, p->bind, why);
    if (p->attack && ohm_topo_check_attack(p->attack, why, sizeof why))
        return ohm_topo_build_error(b, line, OHM_EPARSE, "peer %u: bad attack '%s': %s", p->id,
                                    p->attack, why);
    if (p->attack && !p->byzantine)
        return ohm_topo_build_error(b, line, OHM_EINVAL, "peer %u: attack= needs role=byzantine",
                                    p->id);
    if (p->rule && (strlen(p->rule) > 64 || !name_chars(p->rule, strlen(p->rule), 0)))
        return ohm_topo_build_error(b, line, OHM_EPARSE, "peer %u: bad rule name '%s'", p->id,
                                    p->rule);
    if (p->b < -1 || p->b > OHM_TOPO_MAX_PEERS)
        return ohm_topo_build_error(b, line, OHM_ERANGE, "peer %u: b=%d outside 0..%d", p->id, p->b,
                                    OHM_TOPO_MAX_PEERS);
    if (p->id >= b->cap) {
        uint32_t cap = b->cap ? b->cap : 16;
        while (cap <= p->id)
            cap *= 2;
        if (cap > OHM_TOPO_MAX_PEERS) cap = OHM_TOPO_MAX_PEERS;
        peer_rec_t *np = realloc(b->peers, cap * sizeof *np);
        if (!np) return ohm_topo_build_error(b, line, OHM_ENOMEM, "peer table");
        memset(np + b->cap, 0, (cap - b->cap) * sizeof *np);
        b->peers = np;
        b->cap = cap;
    }
    peer_rec_t *r = &b->peers[p->id];
    if (r->declared)
        return ohm_topo_build_error(b, line, OHM_EINVAL,
                                    "duplicate peer id %u (first declared on line %d)", p->id,
                                    r->line);
    int oom = 0;
    r->info = *p;
    r->info.endpoint = dup_opt(p->endpoint, &oom);
    r->info.bind = dup_opt(p->bind, &oom);
    r->info.attack = dup_opt(p->attack, &oom);
    r->info.rule = dup_opt(p->rule, &oom);
    r->norm = dup_opt(norm, &oom);
    r->line = line;
    r->declared = 1;
    if (oom) return ohm_topo_build_error(b, line, OHM_ENOMEM, "peer %u", p->id);
    if (p->id > b->max_id || b->n_declared == 0) b->max_id = p->id;
    b->n_declared++;
    return OHM_OK;
}

static int check_weight_value(const ohm_topo_build_t *b, int line, double w, const char *what)
{
    if (!isfinite(w) || w < 0 || w > 1)
        return ohm_topo_build_error(b, line, OHM_ERANGE, "%s weight %g is not in [0, 1]", what, w);
    return OHM_OK;
}

int ohm_topo_build_edge(ohm_topo_build_t *b, uint32_t i, uint32_t j, int has_w, double w, int line)
{
    if (i == j) return ohm_topo_build_error(b, line, OHM_EINVAL, "self-loop edge %u %u", i, j);
    if (has_w && check_weight_value(b, line, w, "edge")) return OHM_ERANGE;
    if (b->n_edges >= OHM_TOPO_MAX_EDGES)
        return ohm_topo_build_error(b, line, OHM_ETOOBIG, "more than %u edges", OHM_TOPO_MAX_EDGES);
    if (b->n_edges == b->cap_edges) {
        size_t cap = b->cap_edges ? 2 * b->cap_edges : 64;
        edge_rec_t *ne = realloc(b->edges, cap * sizeof *ne);
        if (!ne) return ohm_topo_build_error(b, line, OHM_ENOMEM, "edge list");
        b->edges = ne;
        b->cap_edges = cap;
    }
    b->edges[b->n_edges++] = (edge_rec_t){
        .lo = i < j ? i : j, .hi = i < j ? j : i, .line = line, .has_w = has_w, .w = has_w ? w : 0};
    return OHM_OK;
}

int ohm_topo_build_weight(ohm_topo_build_t *b, uint32_t i, uint32_t j, double v, int line)
{
    if (i == j)
        return ohm_topo_build_error(
            b, line, OHM_EINVAL,
            "weight %u %u: the self weight is not set explicitly (it is 1 - the row)", i, j);
    if (check_weight_value(b, line, v, "explicit")) return OHM_ERANGE;
    if (b->n_weights >= 2 * (size_t)OHM_TOPO_MAX_EDGES)
        return ohm_topo_build_error(b, line, OHM_ETOOBIG, "too many weight lines");
    if (b->n_weights == b->cap_weights) {
        size_t cap = b->cap_weights ? 2 * b->cap_weights : 64;
        weight_rec_t *nw = realloc(b->weights, cap * sizeof *nw);
        if (!nw) return ohm_topo_build_error(b, line, OHM_ENOMEM, "weight list");
        b->weights = nw;
        b->cap_weights = cap;
    }
    b->weights[b->n_weights++] = (weight_rec_t){.i = i, .j = j, .line = line, .v = v};
    return OHM_OK;
}

int ohm_topo_build_scheme(ohm_topo_build_t *b, const char *scheme, int line)
{
    if (b->scheme_line)
        return ohm_topo_build_error(b, line, OHM_EINVAL, "weights given twice (first on line %d)",
                                    b->scheme_line);
    if (strcmp(scheme, "metropolis") == 0)
        b->scheme = OHM_TOPO_SCHEME_METROPOLIS;
    else if (strcmp(scheme, "uniform") == 0)
        b->scheme = OHM_TOPO_SCHEME_UNIFORM;
    else
        return ohm_topo_build_error(b, line, OHM_EPARSE,
                                    "unknown weights scheme '%s' (metropolis or uniform)", scheme);
    b->scheme_line = line > 0 ? line : -1;
    return OHM_OK;
}

static int cmp_edge(const void *a, const void *b)
{
    const edge_rec_t *x = a, *y = b;
    if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
    if (x->hi != y->hi) return x->hi < y->hi ? -1 : 1;
    return (x->line > y->line) - (x->line < y->line);
}

static int cmp_weight(const void *a, const void *b)
{
    const weight_rec_t *x = a, *y = b;
    if (x->i != y->i) return x->i < y->i ? -1 : 1;
    if (x->j != y->j) return x->j < y->j ? -1 : 1;
    return (x->line > y->line) - (x->line < y->line);
}

typedef struct {
    const peer_rec_t *r;
    int by_key; /* compare keys rather than endpoints */
} dup_ref_t;

static int cmp_dup(const void *a, const void *b)
{
    const dup_ref_t *x = a, *y = b;
    int c = x->by_key ? memcmp(x->r->info.key, y->r->info.key, 32) : strcmp(x->r->norm, y->r->norm);
    if (c) return c;
    return (x->r->line > y->r->line) - (x->r->line < y->r->line);
}

/* Peers sharing an endpoint or a public key would be indistinguishable on the
 * wire (the ZAP handler maps a key to one id), so both are refused. */
static int check_duplicates(const ohm_topo_build_t *b, int n, int by_key)
{
    dup_ref_t *v = malloc((size_t)n * sizeof *v);
    if (!v) return ohm_topo_build_error(b, 0, OHM_ENOMEM, "duplicate check");
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!by_key || b->peers[i].info.has_key)
            v[m++] = (dup_ref_t){.r = &b->peers[i], .by_key = by_key};
    if (m > 0) qsort(v, (size_t)m, sizeof *v, cmp_dup);
    int rc = OHM_OK;
    for (int i = 1; i < m && !rc; i++) {
        int same = by_key ? memcmp(v[i - 1].r->info.key, v[i].r->info.key, 32) == 0
                          : strcmp(v[i - 1].r->norm, v[i].r->norm) == 0;
        if (!same) continue;
        if (by_key)
            rc = ohm_topo_build_error(b, v[i].r->line, OHM_EINVAL,
                                      "peer %u has the same public key as peer %u (line %d)",
                                      v[i].r->info.id, v[i - 1].r->info.id, v[i - 1].r->line);
        else
            rc = ohm_topo_build_error(
                b, v[i].r->line, OHM_EINVAL, "peer %u: duplicate endpoint %s (peer %u, line %d)",
                v[i].r->info.id, v[i].r->info.endpoint, v[i - 1].r->info.id, v[i - 1].r->line);
    }
    free(v);
    return rc;
}

long ohm_topo_find_slot(const ohm_topology_t *t, uint32_t i, uint32_t j)
{
    long lo = t->off[i], hi = (long)t->off[i + 1] - 1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        if (t->adj[mid] == j) return mid;
        if (t->adj[mid] < j)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static int edge_line(const ohm_topo_build_t *b, uint32_t i, uint32_t j)
{
    edge_rec_t key = {.lo = i < j ? i : j, .hi = i < j ? j : i, .line = 0};
    size_t lo = 0, hi = b->n_edges;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_edge(&b->edges[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < b->n_edges ? b->edges[lo].line : 0;
}

static int build_graph(ohm_topo_build_t *b, ohm_topology_t *t)
{
    int n = t->n;
    if (b->n_edges) qsort(b->edges, b->n_edges, sizeof *b->edges, cmp_edge);
    for (size_t e = 0; e < b->n_edges; e++) {
        const edge_rec_t *r = &b->edges[e];
        if (r->hi >= (uint32_t)n)
            return ohm_topo_build_error(b, r->line, OHM_ENOTFOUND,
                                        "edge %u %u: unknown peer %u (peers are 0..%d)", r->lo,
                                        r->hi, r->hi, n - 1);
        if (e > 0 && r->lo == b->edges[e - 1].lo && r->hi == b->edges[e - 1].hi)
            return ohm_topo_build_error(b, r->line, OHM_EINVAL,
                                        "duplicate edge %u %u (first on line %d)", r->lo, r->hi,
                                        b->edges[e - 1].line);
    }
    t->n_edges = b->n_edges;
    size_t slots = 2 * b->n_edges;
    t->off = calloc((size_t)n + 1, sizeof *t->off);
    t->adj = malloc((slots ? slots : 1) * sizeof *t->adj);
    t->w = calloc(slots ? slots : 1, sizeof *t->w);
    t->expl = calloc(slots ? slots : 1, 1);
    t->self_w = calloc((size_t)n, sizeof *t->self_w);
    uint32_t *fill = calloc((size_t)n, sizeof *fill);
    if (!t->off || !t->adj || !t->w || !t->expl || !t->self_w || !fill) {
        free(fill);
        return ohm_topo_build_error(b, 0, OHM_ENOMEM, "adjacency of %zu edges", b->n_edges);
    }
    for (size_t e = 0; e < b->n_edges; e++) {
        t->off[b->edges[e].lo + 1]++;
        t->off[b->edges[e].hi + 1]++;
    }
    for (int i = 0; i < n; i++)
        t->off[i + 1] += t->off[i];
    /* Edges sorted by (lo, hi) fill each row ascending: the lower neighbours
     * (from edges whose lo is smaller) arrive before the higher ones. */
    for (size_t e = 0; e < b->n_edges; e++) {
        const edge_rec_t *r = &b->edges[e];
        uint32_t s1 = t->off[r->lo] + fill[r->lo]++, s2 = t->off[r->hi] + fill[r->hi]++;
        t->adj[s1] = r->hi;
        t->adj[s2] = r->lo;
        if (r->has_w) {
            t->w[s1] = t->w[s2] = r->w;
            t->expl[s1] = t->expl[s2] = 1;
        }
    }
    free(fill);
    return OHM_OK;
}

static int apply_weights(ohm_topo_build_t *b, ohm_topology_t *t, int *row_line)
{
    int n = t->n;
    if (b->n_weights) qsort(b->weights, b->n_weights, sizeof *b->weights, cmp_weight);
    for (size_t k = 0; k < b->n_weights; k++) {
        const weight_rec_t *r = &b->weights[k];
        if (r->i >= (uint32_t)n || r->j >= (uint32_t)n)
            return ohm_topo_build_error(b, r->line, OHM_ENOTFOUND,
                                        "weight %u %u: unknown peer %u (peers are 0..%d)", r->i,
                                        r->j, r->i >= (uint32_t)n ? r->i : r->j, n - 1);
        long s = ohm_topo_find_slot(t, r->i, r->j);
        if (s < 0)
            return ohm_topo_build_error(b, r->line, OHM_EINVAL,
                                        "weight %u %u: no edge between %u and %u", r->i, r->j, r->i,
                                        r->j);
        if (k > 0 && b->weights[k - 1].i == r->i && b->weights[k - 1].j == r->j)
            return ohm_topo_build_error(b, r->line, OHM_EINVAL,
                                        "duplicate weight %u %u (first on line %d)", r->i, r->j,
                                        b->weights[k - 1].line);
        if (t->expl[s])
            return ohm_topo_build_error(b, r->line, OHM_EINVAL,
                                        "weight %u %u: already set by w= on the edge (line %d)",
                                        r->i, r->j, edge_line(b, r->i, r->j));
        t->w[s] = r->v;
        t->expl[s] = 1;
        if (r->line > row_line[r->i]) row_line[r->i] = r->line;
    }
    for (size_t e = 0; e < b->n_edges; e++) {
        const edge_rec_t *r = &b->edges[e];
        if (!r->has_w) continue;
        if (r->line > row_line[r->lo]) row_line[r->lo] = r->line;
        if (r->line > row_line[r->hi]) row_line[r->hi] = r->line;
    }
    for (int i = 0; i < n; i++) {
        double sum = 0;
        uint32_t di = t->off[i + 1] - t->off[i];
        for (uint32_t s = t->off[i]; s < t->off[i + 1]; s++) {
            if (!t->expl[s]) {
                uint32_t j = t->adj[s];
                uint32_t dj = t->off[j + 1] - t->off[j];
                uint32_t m = t->scheme == OHM_TOPO_SCHEME_UNIFORM ? di : (di > dj ? di : dj);
                t->w[s] = 1.0 / (double)(m + 1);
            }
            sum += t->w[s];
        }
        double self = 1.0 - sum;
        if (self < -ROW_TOL)
            return ohm_topo_build_error(
                b, row_line[i] ? row_line[i] : b->peers[i].line, OHM_EINVAL,
                "weights of peer %d sum to %.12g > 1 without its self weight "
                "(rows must sum to 1 with non-negative entries)",
                i, sum);
        t->self_w[i] = self < 0 ? 0 : self;
    }
    return OHM_OK;
}

static int check_connected(const ohm_topo_build_t *b, const ohm_topology_t *t)
{
    int n = t->n;
    uint32_t *queue = malloc((size_t)n * sizeof *queue);
    uint8_t *seen = calloc((size_t)n, 1);
    if (!queue || !seen) {
        free(queue);
        free(seen);
        return ohm_topo_build_error(b, 0, OHM_ENOMEM, "connectivity check");
    }
    size_t head = 0, tail = 0;
    queue[tail++] = 0;
    seen[0] = 1;
    while (head < tail) {
        uint32_t u = queue[head++];
        for (uint32_t s = t->off[u]; s < t->off[u + 1]; s++)
            if (!seen[t->adj[s]]) {
                seen[t->adj[s]] = 1;
                queue[tail++] = t->adj[s];
            }
    }
    int rc = OHM_OK;
    if (tail < (size_t)n) {
        int k = 0;
        while (seen[k])
            k++;
        rc = ohm_topo_build_error(
            b, b->peers[k].line, OHM_EINVAL,
            "graph is disconnected: peer %d is not reachable from peer 0 (%zu of %d peers "
            "reachable)",
            k, tail, n);
    }
    free(queue);
    free(seen);
    return rc;
}

/* Whether every column also sums to 1 (up to 1e-9): rows always do, so a
 * symmetric matrix is doubly stochastic; found once here, where running out
 * of memory can be reported. */
static int find_doubly_stochastic(const ohm_topo_build_t *b, ohm_topology_t *t)
{
    double *col = calloc((size_t)t->n, sizeof *col);
    if (!col) return ohm_topo_build_error(b, 0, OHM_ENOMEM, "column sums of %d peers", t->n);
    for (int i = 0; i < t->n; i++) {
        col[i] += t->self_w[i];
        for (uint32_t s = t->off[i]; s < t->off[i + 1]; s++)
            col[t->adj[s]] += t->w[s];
    }
    t->doubly_stochastic = 1;
    for (int i = 0; i < t->n; i++)
        if (fabs(col[i] - 1.0) > 1e-9) t->doubly_stochastic = 0;
    free(col);
    return OHM_OK;
}

int ohm_topo_build_finish(ohm_topo_build_t **bp, int end_line, ohm_topology_t **out)
{
    *out = NULL;
    ohm_topo_build_t *b = *bp;
    ohm_topology_t *t = NULL;
    int *row_line = NULL;
    int rc = OHM_OK;
    if (b->n_declared == 0) {
        rc = ohm_topo_build_error(b, end_line, OHM_EINVAL, "no peers declared");
        goto done;
    }
    int n = b->n_declared;
    if (b->max_id >= (uint32_t)n) {
        int missing = 0;
        while (b->peers[missing].declared)
            missing++;
        rc = ohm_topo_build_error(
            b, b->peers[b->max_id].line, OHM_EINVAL,
            "peer id %u but %d peers declared: ids must be 0..%d (peer %d is missing)", b->max_id,
            n, n - 1, missing);
        goto done;
    }
    if ((rc = check_duplicates(b, n, 0)) || (rc = check_duplicates(b, n, 1))) goto done;
    t = calloc(1, sizeof *t);
    row_line = calloc((size_t)n, sizeof *row_line);
    if (!t || !row_line || !(t->peers = calloc((size_t)n, sizeof *t->peers))) {
        rc = ohm_topo_build_error(b, 0, OHM_ENOMEM, "topology of %d peers", n);
        goto done;
    }
    t->n = n;
    t->scheme = b->scheme;
    t->scheme_given = b->scheme_line != 0;
    for (int i = 0; i < n; i++) {
        /* Move the strings: the builder no longer needs them. */
        t->peers[i] = b->peers[i].info;
        memset(&b->peers[i].info, 0, sizeof b->peers[i].info);
    }
    if ((rc = build_graph(b, t)) || (rc = apply_weights(b, t, row_line)) ||
        (rc = check_connected(b, t)) || (rc = find_doubly_stochastic(b, t)))
        goto done;
done:
    if (rc) ohm_topology_destroy(&t);
    free(row_line);
    ohm_topo_build_destroy(bp);
    *out = t;
    return rc;
}
