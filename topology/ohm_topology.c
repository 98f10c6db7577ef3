/* ohm_topology: the builder that validates declarations, the text parser and
 * writer, combination weights, the spectral gap and the digest.
 *
 * Storage is a CSR adjacency (neighbours ascending) with one weight per slot,
 * so a 4096-peer complete graph costs ~200 MB rather than a dense N x N matrix
 * per query; the spectral gap builds a dense matrix only when it is small. */
#include "ohm_topology.h"

#include "ohm_error.h"
#include "ohm_rng.h"
#include "ohm_topo_build.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

enum { SCHEME_METROPOLIS = 0, SCHEME_UNIFORM = 1 };

/* Entries of a row may sum past 1 by this much before the row is refused. */
#define ROW_TOL 1e-9

struct ohm_topology {
    int n;
    ohm_peer_info_t *peers;
    size_t n_edges;
    uint32_t *off;  /* n + 1 row offsets into adj/w/expl */
    uint32_t *adj;  /* neighbours of each peer, ascending */
    double *w;      /* a_ij for each adj slot */
    uint8_t *expl;  /* 1 where a_ij came from the file (edge w= or weight) */
    double *self_w; /* a_ii */
    int scheme;
    int scheme_given; /* the file had a `weights` line: the writer keeps it */
};

/* ------------------------------------------------------------------ */
/* Builder                                                             */

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

/* Sets "NAME:LINE: reason" (or "NAME: reason" for line 0) and returns code. */
static int __attribute__((format(printf, 4, 5)))
berr(const ohm_topo_build_t *b, int line, int code, const char *fmt, ...)
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
    b->scheme = SCHEME_METROPOLIS;
    *out = b;
    return OHM_OK;
}

static void peer_info_free(ohm_peer_info_t *p)
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
        peer_info_free(&b->peers[i].info);
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
        return berr(b, line, OHM_ETOOBIG, "peer id %u exceeds the limit of %d peers", p->id,
                    OHM_TOPO_MAX_PEERS);
    if (!p->endpoint || check_endpoint(p->endpoint, 0, norm, sizeof norm, why, sizeof why))
        return berr(b, line, OHM_EPARSE, "peer %u: bad endpoint '%s': %s", p->id,
                    p->endpoint ? p->endpoint : "", p->endpoint ? why : "missing");
    if (p->bind && check_endpoint(p->bind, 1, bnorm, sizeof bnorm, why, sizeof why))
        return berr(b, line, OHM_EPARSE, "peer %u: bad bind endpoint '%s': %s", p->id, p->bind,
                    why);
    if (p->attack && ohm_topo_check_attack(p->attack, why, sizeof why))
        return berr(b, line, OHM_EPARSE, "peer %u: bad attack '%s': %s", p->id, p->attack, why);
    if (p->attack && !p->byzantine)
        return berr(b, line, OHM_EINVAL, "peer %u: attack= needs role=byzantine", p->id);
    if (p->rule && (strlen(p->rule) > 64 || !name_chars(p->rule, strlen(p->rule), 0)))
        return berr(b, line, OHM_EPARSE, "peer %u: bad rule name '%s'", p->id, p->rule);
    if (p->b < -1 || p->b > OHM_TOPO_MAX_PEERS)
        return berr(b, line, OHM_ERANGE, "peer %u: b=%d outside 0..%d", p->id, p->b,
                    OHM_TOPO_MAX_PEERS);
    if (p->id >= b->cap) {
        uint32_t cap = b->cap ? b->cap : 16;
        while (cap <= p->id)
            cap *= 2;
        if (cap > OHM_TOPO_MAX_PEERS) cap = OHM_TOPO_MAX_PEERS;
        peer_rec_t *np = realloc(b->peers, cap * sizeof *np);
        if (!np) return berr(b, line, OHM_ENOMEM, "peer table");
        memset(np + b->cap, 0, (cap - b->cap) * sizeof *np);
        b->peers = np;
        b->cap = cap;
    }
    peer_rec_t *r = &b->peers[p->id];
    if (r->declared)
        return berr(b, line, OHM_EINVAL, "duplicate peer id %u (first declared on line %d)", p->id,
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
    if (oom) return berr(b, line, OHM_ENOMEM, "peer %u", p->id);
    if (p->id > b->max_id || b->n_declared == 0) b->max_id = p->id;
    b->n_declared++;
    return OHM_OK;
}

static int check_weight_value(const ohm_topo_build_t *b, int line, double w, const char *what)
{
    if (!isfinite(w) || w < 0 || w > 1)
        return berr(b, line, OHM_ERANGE, "%s weight %g is not in [0, 1]", what, w);
    return OHM_OK;
}

int ohm_topo_build_edge(ohm_topo_build_t *b, uint32_t i, uint32_t j, int has_w, double w, int line)
{
    if (i == j) return berr(b, line, OHM_EINVAL, "self-loop edge %u %u", i, j);
    if (has_w && check_weight_value(b, line, w, "edge")) return OHM_ERANGE;
    if (b->n_edges >= OHM_TOPO_MAX_EDGES)
        return berr(b, line, OHM_ETOOBIG, "more than %u edges", OHM_TOPO_MAX_EDGES);
    if (b->n_edges == b->cap_edges) {
        size_t cap = b->cap_edges ? 2 * b->cap_edges : 64;
        edge_rec_t *ne = realloc(b->edges, cap * sizeof *ne);
        if (!ne) return berr(b, line, OHM_ENOMEM, "edge list");
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
        return berr(b, line, OHM_EINVAL,
                    "weight %u %u: the self weight is not set explicitly (it is 1 - the row)", i,
                    j);
    if (check_weight_value(b, line, v, "explicit")) return OHM_ERANGE;
    if (b->n_weights >= 2 * (size_t)OHM_TOPO_MAX_EDGES)
        return berr(b, line, OHM_ETOOBIG, "too many weight lines");
    if (b->n_weights == b->cap_weights) {
        size_t cap = b->cap_weights ? 2 * b->cap_weights : 64;
        weight_rec_t *nw = realloc(b->weights, cap * sizeof *nw);
        if (!nw) return berr(b, line, OHM_ENOMEM, "weight list");
        b->weights = nw;
        b->cap_weights = cap;
    }
    b->weights[b->n_weights++] = (weight_rec_t){.i = i, .j = j, .line = line, .v = v};
    return OHM_OK;
}

int ohm_topo_build_scheme(ohm_topo_build_t *b, const char *scheme, int line)
{
    if (b->scheme_line)
        return berr(b, line, OHM_EINVAL, "weights given twice (first on line %d)", b->scheme_line);
    if (strcmp(scheme, "metropolis") == 0)
        b->scheme = SCHEME_METROPOLIS;
    else if (strcmp(scheme, "uniform") == 0)
        b->scheme = SCHEME_UNIFORM;
    else
        return berr(b, line, OHM_EPARSE, "unknown weights scheme '%s' (metropolis or uniform)",
                    scheme);
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
    if (!v) return berr(b, 0, OHM_ENOMEM, "duplicate check");
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
            rc = berr(b, v[i].r->line, OHM_EINVAL,
                      "peer %u has the same public key as peer %u (line %d)", v[i].r->info.id,
                      v[i - 1].r->info.id, v[i - 1].r->line);
        else
            rc = berr(b, v[i].r->line, OHM_EINVAL,
                      "peer %u: duplicate endpoint %s (peer %u, line %d)", v[i].r->info.id,
                      v[i].r->info.endpoint, v[i - 1].r->info.id, v[i - 1].r->line);
    }
    free(v);
    return rc;
}

/* Slot of j in row i, or -1. */
static long find_slot(const uint32_t *off, const uint32_t *adj, uint32_t i, uint32_t j)
{
    long lo = off[i], hi = (long)off[i + 1] - 1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        if (adj[mid] == j) return mid;
        if (adj[mid] < j)
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
            return berr(b, r->line, OHM_ENOTFOUND, "edge %u %u: unknown peer %u (peers are 0..%d)",
                        r->lo, r->hi, r->hi, n - 1);
        if (e > 0 && r->lo == b->edges[e - 1].lo && r->hi == b->edges[e - 1].hi)
            return berr(b, r->line, OHM_EINVAL, "duplicate edge %u %u (first on line %d)", r->lo,
                        r->hi, b->edges[e - 1].line);
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
        return berr(b, 0, OHM_ENOMEM, "adjacency of %zu edges", b->n_edges);
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
            return berr(b, r->line, OHM_ENOTFOUND,
                        "weight %u %u: unknown peer %u (peers are 0..%d)", r->i, r->j,
                        r->i >= (uint32_t)n ? r->i : r->j, n - 1);
        long s = find_slot(t->off, t->adj, r->i, r->j);
        if (s < 0)
            return berr(b, r->line, OHM_EINVAL, "weight %u %u: no edge between %u and %u", r->i,
                        r->j, r->i, r->j);
        if (k > 0 && b->weights[k - 1].i == r->i && b->weights[k - 1].j == r->j)
            return berr(b, r->line, OHM_EINVAL, "duplicate weight %u %u (first on line %d)", r->i,
                        r->j, b->weights[k - 1].line);
        if (t->expl[s])
            return berr(b, r->line, OHM_EINVAL,
                        "weight %u %u: already set by w= on the edge (line %d)", r->i, r->j,
                        edge_line(b, r->i, r->j));
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
                uint32_t m = t->scheme == SCHEME_UNIFORM ? di : (di > dj ? di : dj);
                t->w[s] = 1.0 / (double)(m + 1);
            }
            sum += t->w[s];
        }
        double self = 1.0 - sum;
        if (self < -ROW_TOL)
            return berr(b, row_line[i] ? row_line[i] : b->peers[i].line, OHM_EINVAL,
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
        return berr(b, 0, OHM_ENOMEM, "connectivity check");
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
        rc = berr(b, b->peers[k].line, OHM_EINVAL,
                  "graph is disconnected: peer %d is not reachable from peer 0 (%zu of %d peers "
                  "reachable)",
                  k, tail, n);
    }
    free(queue);
    free(seen);
    return rc;
}

int ohm_topo_build_finish(ohm_topo_build_t **bp, int end_line, ohm_topology_t **out)
{
    *out = NULL;
    ohm_topo_build_t *b = *bp;
    ohm_topology_t *t = NULL;
    int *row_line = NULL;
    int rc = OHM_OK;
    if (b->n_declared == 0) {
        rc = berr(b, end_line, OHM_EINVAL, "no peers declared");
        goto done;
    }
    int n = b->n_declared;
    if (b->max_id >= (uint32_t)n) {
        int missing = 0;
        while (b->peers[missing].declared)
            missing++;
        rc = berr(b, b->peers[b->max_id].line, OHM_EINVAL,
                  "peer id %u but %d peers declared: ids must be 0..%d (peer %d is missing)",
                  b->max_id, n, n - 1, missing);
        goto done;
    }
    if ((rc = check_duplicates(b, n, 0)) || (rc = check_duplicates(b, n, 1))) goto done;
    t = calloc(1, sizeof *t);
    row_line = calloc((size_t)n, sizeof *row_line);
    if (!t || !row_line || !(t->peers = calloc((size_t)n, sizeof *t->peers))) {
        rc = berr(b, 0, OHM_ENOMEM, "topology of %d peers", n);
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
        (rc = check_connected(b, t)))
        goto done;
done:
    if (rc) ohm_topology_destroy(&t);
    free(row_line);
    ohm_topo_build_destroy(bp);
    *out = t;
    return rc;
}

/* ------------------------------------------------------------------ */
/* Parser                                                              */

#define MAX_TOKENS 16

/* A decimal id: digits only (no sign), below OHM_TOPO_MAX_PEERS; whether it
 * names a declared peer is checked once the whole file is read. */
static int parse_id(const ohm_topo_build_t *b, int line, const char *s, const char *what,
                    uint32_t *out)
{
    size_t len = strlen(s);
    if (len == 0 || strspn(s, "0123456789") != len) {
        if (s[0] == '-' && len > 1 && strspn(s + 1, "0123456789") == len - 1)
            return berr(b, line, OHM_EPARSE, "%s '%s' is negative", what, s);
        return berr(b, line, OHM_EPARSE, "%s '%s' is not a non-negative integer", what, s);
    }
    if (len > 9 || strtoul(s, NULL, 10) >= OHM_TOPO_MAX_PEERS)
        return berr(b, line, OHM_ETOOBIG, "%s %s exceeds the limit of %d peers", what, s,
                    OHM_TOPO_MAX_PEERS);
    *out = (uint32_t)strtoul(s, NULL, 10);
    return OHM_OK;
}

static int parse_double(const ohm_topo_build_t *b, int line, const char *s, const char *what,
                        double *out)
{
    char *end;
    double v = strtod(s, &end); /* underflow to a denormal is fine: it is in range */
    if (end == s || *end != '\0')
        return berr(b, line, OHM_EPARSE, "%s '%s' is not a number", what, s);
    if (!isfinite(v) || v < 0 || v > 1)
        return berr(b, line, OHM_ERANGE, "%s %s is not in [0, 1]", what, s);
    *out = v;
    return OHM_OK;
}

static int parse_peer(ohm_topo_build_t *b, int line, char **tok, int nt)
{
    if (nt < 3)
        return berr(b, line, OHM_EPARSE,
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
            return berr(b, line, OHM_EPARSE,
                        "peer %u: unknown option '%s' (key=, role=, attack=, rule=, b=, bind=)",
                        p.id, tok[k]);
        if (seen[o]++) return berr(b, line, OHM_EPARSE, "peer %u: %s= given twice", p.id, opts[o]);
        const char *v = eq + 1;
        switch (o) {
        case 0: {
            if (strlen(v) != 40 || !zmq_z85_decode(p.key, v))
                return berr(b, line, OHM_EPARSE,
                            "peer %u: bad key: a CURVE public key is 40 Z85 characters", p.id);
            p.has_key = 1;
            break;
        }
        case 1:
            if (strcmp(v, "byzantine") == 0)
                p.byzantine = 1;
            else if (strcmp(v, "honest") != 0)
                return berr(b, line, OHM_EPARSE, "peer %u: unknown role '%s' (byzantine or honest)",
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
                return berr(b, line, OHM_EPARSE, "peer %u: b='%s' is not a non-negative integer",
                            p.id, v);
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
            return berr(b, line, OHM_EPARSE, "edge: missing fields (expected: edge I J [w=W])");
        if (nt > 4) return berr(b, line, OHM_EPARSE, "edge: too many fields ('%s')", tok[4]);
        if ((rc = parse_id(b, line, tok[1], "edge peer", &i)) ||
            (rc = parse_id(b, line, tok[2], "edge peer", &j)))
            return rc;
        double w = 0;
        if (nt == 4) {
            if (strncmp(tok[3], "w=", 2) != 0)
                return berr(b, line, OHM_EPARSE, "edge %u %u: unknown option '%s' (w=)", i, j,
                            tok[3]);
            if ((rc = parse_double(b, line, tok[3] + 2, "edge weight", &w))) return rc;
        }
        return ohm_topo_build_edge(b, i, j, nt == 4, w, line);
    }
    if (strcmp(d, "weight") == 0) {
        if (nt < 4)
            return berr(b, line, OHM_EPARSE, "weight: missing fields (expected: weight I J VALUE)");
        if (nt > 4) return berr(b, line, OHM_EPARSE, "weight: too many fields ('%s')", tok[4]);
        double v = 0;
        if ((rc = parse_id(b, line, tok[1], "weight peer", &i)) ||
            (rc = parse_id(b, line, tok[2], "weight peer", &j)) ||
            (rc = parse_double(b, line, tok[3], "weight", &v)))
            return rc;
        return ohm_topo_build_weight(b, i, j, v, line);
    }
    if (strcmp(d, "weights") == 0) {
        if (nt != 2)
            return berr(b, line, OHM_EPARSE,
                        "weights: expected exactly one of metropolis, uniform");
        return ohm_topo_build_scheme(b, tok[1], line);
    }
    return berr(b, line, OHM_EPARSE, "unknown directive '%.40s' (peer, edge, weights, weight)", d);
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
            rc = berr(b, line, OHM_ETOOBIG, "line longer than %d bytes", OHM_TOPO_MAX_LINE);
            break;
        }
        memcpy(buf, text + pos, ll);
        buf[ll] = '\0';
        pos += ll + (nl ? 1 : 0);
        if (memchr(buf, '\0', ll)) {
            rc = berr(b, line, OHM_EPARSE, "NUL byte in line");
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
                rc = berr(b, line, OHM_EPARSE, "more than %d fields", MAX_TOKENS);
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
                    rc = berr(b, line, OHM_EPARSE, "non-printable or non-ASCII byte 0x%02x",
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

/* ------------------------------------------------------------------ */
/* Accessors                                                           */

void ohm_topology_destroy(ohm_topology_t **tp)
{
    if (!tp || !*tp) return;
    ohm_topology_t *t = *tp;
    if (t->peers)
        for (int i = 0; i < t->n; i++)
            peer_info_free(&t->peers[i]);
    free(t->peers);
    free(t->off);
    free(t->adj);
    free(t->w);
    free(t->expl);
    free(t->self_w);
    free(t);
    *tp = NULL;
}

int ohm_topology_size(const ohm_topology_t *t)
{
    return t->n;
}

size_t ohm_topology_edge_count(const ohm_topology_t *t)
{
    return t->n_edges;
}

const ohm_peer_info_t *ohm_topology_peer(const ohm_topology_t *t, uint32_t id)
{
    assert(id < (uint32_t)t->n);
    return &t->peers[id];
}

int ohm_topology_neighbors(const ohm_topology_t *t, uint32_t id, const uint32_t **ids)
{
    assert(id < (uint32_t)t->n);
    *ids = t->adj + t->off[id];
    return (int)(t->off[id + 1] - t->off[id]);
}

double ohm_topology_weight(const ohm_topology_t *t, uint32_t i, uint32_t j)
{
    assert(i < (uint32_t)t->n && j < (uint32_t)t->n);
    if (i == j) return t->self_w[i];
    long s = find_slot(t->off, t->adj, i, j);
    return s < 0 ? 0.0 : t->w[s];
}

const char *ohm_topology_scheme(const ohm_topology_t *t)
{
    return t->scheme == SCHEME_UNIFORM ? "uniform" : "metropolis";
}

int ohm_topology_is_symmetric(const ohm_topology_t *t)
{
    for (int i = 0; i < t->n; i++)
        for (uint32_t s = t->off[i]; s < t->off[i + 1]; s++) {
            uint32_t j = t->adj[s];
            if (j < (uint32_t)i) continue;
            if (fabs(t->w[s] - ohm_topology_weight(t, j, (uint32_t)i)) > 1e-12) return 0;
        }
    return 1;
}

int ohm_topology_is_doubly_stochastic(const ohm_topology_t *t)
{
    double *col = calloc((size_t)t->n, sizeof *col);
    if (!col) return 0;
    for (int i = 0; i < t->n; i++) {
        col[i] += t->self_w[i];
        for (uint32_t s = t->off[i]; s < t->off[i + 1]; s++)
            col[t->adj[s]] += t->w[s];
    }
    int ok = 1;
    for (int i = 0; i < t->n; i++)
        if (fabs(col[i] - 1.0) > 1e-9) ok = 0;
    free(col);
    return ok;
}

int ohm_topology_byzantine_count(const ohm_topology_t *t)
{
    int c = 0;
    for (int i = 0; i < t->n; i++)
        c += t->peers[i].byzantine != 0;
    return c;
}

int ohm_topology_byzantine_neighbors(const ohm_topology_t *t, uint32_t id)
{
    assert(id < (uint32_t)t->n);
    int c = 0;
    for (uint32_t s = t->off[id]; s < t->off[id + 1]; s++)
        c += t->peers[t->adj[s]].byzantine != 0;
    return c;
}

/* ------------------------------------------------------------------ */
/* Spectral gap                                                        */

/* Finds pi > 0 with pi_i a_ij = pi_j a_ji on every edge (A reversible), by
 * walking the positive-weight edges from each unvisited peer; returns sqrt(pi)
 * in sq, or -1 if no such pi exists. */
static int reversible_sqrt_pi(const ohm_topology_t *t, double *sq)
{
    int n = t->n;
    double *pi = malloc((size_t)n * sizeof *pi);
    uint32_t *queue = malloc((size_t)n * sizeof *queue);
    int ok = pi && queue;
    for (int i = 0; ok && i < n; i++)
        pi[i] = -1;
    for (int r = 0; ok && r < n; r++) {
        if (pi[r] > 0) continue;
        size_t head = 0, tail = 0;
        pi[r] = 1;
        queue[tail++] = (uint32_t)r;
        while (ok && head < tail) {
            uint32_t u = queue[head++];
            for (uint32_t s = t->off[u]; s < t->off[u + 1]; s++) {
                uint32_t v = t->adj[s];
                double auv = t->w[s], avu = ohm_topology_weight(t, v, u);
                if ((auv > 0) != (avu > 0)) {
                    ok = 0;
                    break;
                }
                if (auv == 0 || pi[v] > 0) continue;
                pi[v] = pi[u] * auv / avu;
                if (!isfinite(pi[v]) || pi[v] < 1e-150 || pi[v] > 1e150) ok = 0;
                queue[tail++] = v;
            }
        }
    }
    for (int u = 0; ok && u < n; u++)
        for (uint32_t s = t->off[u]; s < t->off[u + 1]; s++) {
            uint32_t v = t->adj[s];
            double x = pi[u] * t->w[s], y = pi[v] * ohm_topology_weight(t, v, (uint32_t)u);
            if (fabs(x - y) > 1e-12 * fmax(x, y)) ok = 0;
        }
    for (int i = 0; ok && i < n; i++)
        sq[i] = sqrt(pi[i]);
    free(pi);
    free(queue);
    return ok ? 0 : -1;
}

int ohm_topology_gap_is_estimate(const ohm_topology_t *t)
{
    if (t->n <= 1) return 0;
    if (t->n > OHM_TOPO_DENSE_MAX) return 1;
    double *sq = malloc((size_t)t->n * sizeof *sq);
    int est = !sq || reversible_sqrt_pi(t, sq) != 0;
    free(sq);
    return est;
}

/* Householder reduction of the symmetric n x n matrix a (row-major, destroyed)
 * to tridiagonal form: diagonal d[n], off-diagonal e[n-1]. Each step reflects
 * column k below the diagonal onto its first entry; with v a unit vector,
 * H A H = A - 2 (v w^T + w v^T), w = A v - (v^T A v) v. */
static void tridiagonalize(double *a, int n, double *d, double *e)
{
    double *v = malloc((size_t)n * sizeof *v), *p = malloc((size_t)n * sizeof *p);
    assert(v && p);
    for (int k = 0; k + 2 < n; k++) {
        int m = n - k - 1; /* size of the trailing block */
        double *x = v;
        double nrm = 0;
        for (int i = 0; i < m; i++) {
            x[i] = a[(size_t)(k + 1 + i) * n + k];
            nrm += x[i] * x[i];
        }
        nrm = sqrt(nrm);
        d[k] = a[(size_t)k * n + k];
        if (nrm == 0) {
            e[k] = 0;
            continue;
        }
        double alpha = x[0] > 0 ? -nrm : nrm;
        e[k] = alpha;
        x[0] -= alpha;
        double vn = 0;
        for (int i = 0; i < m; i++)
            vn += x[i] * x[i];
        vn = sqrt(vn);
        if (vn == 0) continue;
        for (int i = 0; i < m; i++)
            x[i] /= vn;
        double K = 0;
        for (int i = 0; i < m; i++) {
            const double *row = a + (size_t)(k + 1 + i) * n + k + 1;
            double s = 0;
            for (int j = 0; j < m; j++)
                s += row[j] * x[j];
            p[i] = s;
            K += x[i] * s;
        }
        for (int i = 0; i < m; i++)
            p[i] -= K * x[i];
        for (int i = 0; i < m; i++) {
            double *row = a + (size_t)(k + 1 + i) * n + k + 1;
            double vi = 2 * x[i], wi = 2 * p[i];
            for (int j = 0; j < m; j++)
                row[j] -= vi * p[j] + wi * x[j];
        }
    }
    if (n >= 2) {
        d[n - 2] = a[(size_t)(n - 2) * n + n - 2];
        e[n - 2] = a[(size_t)(n - 1) * n + n - 2];
    }
    d[n - 1] = a[(size_t)(n - 1) * n + n - 1];
    free(v);
    free(p);
}

/* Number of eigenvalues of the tridiagonal (d, e) below x (Sturm sequence). */
static int sturm_below(const double *d, const double *e, int n, double x)
{
    int c = 0;
    double q = 1;
    for (int i = 0; i < n; i++) {
        double off = i > 0 ? e[i - 1] * e[i - 1] : 0;
        q = d[i] - x - (i > 0 ? off / q : 0);
        if (fabs(q) < 1e-300) q = -1e-300;
        if (q < 0) c++;
    }
    return c;
}

/* Smallest (want_max = 0) or largest eigenvalue of the tridiagonal by bisection. */
static double tridiag_extreme(const double *d, const double *e, int n, int want_max)
{
    double r = 0;
    for (int i = 0; i < n; i++) {
        double g = fabs(d[i]) + (i > 0 ? fabs(e[i - 1]) : 0) + (i + 1 < n ? fabs(e[i]) : 0);
        if (g > r) r = g;
    }
    double lo = -r - 1e-12, hi = r + 1e-12;
    for (int it = 0; it < 200 && hi - lo > 1e-15; it++) {
        double mid = 0.5 * (lo + hi);
        int c = sturm_below(d, e, n, mid);
        /* The wanted eigenvalue lies above mid iff fewer than n (largest) or
         * no (smallest) eigenvalues lie below it. */
        int above = want_max ? c < n : c == 0;
        if (above)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* Reversible A: S = D^(1/2) A D^(-1/2) with D = diag(pi) is symmetric with A's
 * eigenvalues, and sqrt(pi) is its eigenvector for 1; S - u u^T (u = sqrt(pi)
 * normalized) moves that eigenvalue to 0, so the SLEM is the largest |eigenvalue|. */
static double slem_dense(const ohm_topology_t *t, const double *sq)
{
    int n = t->n;
    double *a = calloc((size_t)n * n, sizeof *a);
    double *d = malloc((size_t)n * sizeof *d), *e = malloc((size_t)n * sizeof *e);
    assert(a && d && e);
    double un = 0;
    for (int i = 0; i < n; i++)
        un += sq[i] * sq[i];
    un = sqrt(un);
    for (int i = 0; i < n; i++) {
        a[(size_t)i * n + i] = t->self_w[i];
        for (uint32_t s = t->off[i]; s < t->off[i + 1]; s++)
            a[(size_t)i * n + t->adj[s]] = sq[i] * t->w[s] / sq[t->adj[s]];
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0.5 * (a[(size_t)i * n + j] + a[(size_t)j * n + i]);
            s -= sq[i] * sq[j] / (un * un);
            a[(size_t)i * n + j] = a[(size_t)j * n + i] = s;
        }
    tridiagonalize(a, n, d, e);
    double lmin = tridiag_extreme(d, e, n, 0), lmax = tridiag_extreme(d, e, n, 1);
    free(a);
    free(d);
    free(e);
    return fmax(fabs(lmin), fabs(lmax));
}

/* Any row-stochastic A: B = (I - 1 1^T / n) A has the spectrum of A with one
 * eigenvalue 1 replaced by 0 (A 1 = 1), so power iteration on B (multiply,
 * subtract the mean) grows like the SLEM. Complex or opposite-sign pairs make
 * single steps oscillate, so the rate is the geometric mean over windows of
 * 128 steps, until two windows agree to 1e-10 or the work budget (~5e8 slot
 * visits, at least 2000 steps) runs out. Converges like (|l3|/|l2|)^k: on
 * large rings it underestimates the SLEM (overestimates the gap). */
static double slem_power(const ohm_topology_t *t)
{
    int n = t->n;
    double *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    assert(x && y);
    ohm_rng_t r;
    ohm_rng_seed(&r, 0x70777231, 0, 0);
    for (int i = 0; i < n; i++)
        x[i] = ohm_rng_uniform(&r) - 0.5;
    size_t work = t->off[n] + (size_t)n;
    long maxit = (long)(5e8 / (double)work);
    if (maxit < 2000) maxit = 2000;
    if (maxit > 1000000) maxit = 1000000;
    const int W = 128;
    double logsum = 0, prev = -1, slem = 0;
    int in_win = 0;
    for (long it = 0; it <= maxit; it++) {
        double mean = 0, nrm = 0;
        if (it == 0) {
            for (int i = 0; i < n; i++)
                y[i] = x[i];
        } else {
            for (int i = 0; i < n; i++) {
                double s = t->self_w[i] * x[i];
                for (uint32_t k = t->off[i]; k < t->off[i + 1]; k++)
                    s += t->w[k] * x[t->adj[k]];
                y[i] = s;
            }
        }
        for (int i = 0; i < n; i++)
            mean += y[i];
        mean /= n;
        for (int i = 0; i < n; i++) {
            y[i] -= mean;
            nrm += y[i] * y[i];
        }
        nrm = sqrt(nrm);
        if (nrm < 1e-250) {
            slem = 0;
            break;
        }
        for (int i = 0; i < n; i++)
            x[i] = y[i] / nrm;
        if (it == 0) continue;
        logsum += log(nrm);
        if (++in_win == W) {
            slem = exp(logsum / W);
            if (prev >= 0 && fabs(slem - prev) < 1e-10) break;
            prev = slem;
            logsum = 0;
            in_win = 0;
        }
    }
    free(x);
    free(y);
    return slem;
}

double ohm_topology_spectral_gap(const ohm_topology_t *t)
{
    if (t->n <= 1) return 1.0;
    double slem;
    double *sq = malloc((size_t)t->n * sizeof *sq);
    assert(sq);
    if (t->n <= OHM_TOPO_DENSE_MAX && reversible_sqrt_pi(t, sq) == 0)
        slem = slem_dense(t, sq);
    else
        slem = slem_power(t);
    free(sq);
    double gap = 1.0 - slem;
    return gap < 0 ? 0 : gap > 1 ? 1 : gap;
}

/* ------------------------------------------------------------------ */
/* Writer and digest                                                   */

int ohm_topology_write(const ohm_topology_t *t, FILE *f)
{
    fprintf(f, "# %d peers, %zu edges\n", t->n, t->n_edges);
    if (t->scheme_given || t->scheme != SCHEME_METROPOLIS)
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
            long r = find_slot(t->off, t->adj, j, (uint32_t)i);
            assert(r >= 0);
            if (t->expl[s] && t->expl[r] && t->w[s] == t->w[r])
                fprintf(f, "edge %d %u w=%.17g\n", i, j, t->w[s]);
            else
                fprintf(f, "edge %d %u\n", i, j);
        }
    for (int i = 0; i < t->n; i++)
        for (uint32_t s = t->off[i]; s < t->off[i + 1]; s++) {
            uint32_t j = t->adj[s];
            long r = find_slot(t->off, t->adj, j, (uint32_t)i);
            if (t->expl[s] && !(t->expl[r] && t->w[s] == t->w[r]))
                fprintf(f, "weight %d %u %.17g\n", i, j, t->w[s]);
        }
    if (fflush(f) != 0 || ferror(f))
        return ohm_error_set(OHM_EIO, "writing topology: %s", strerror(errno));
    return OHM_OK;
}

static uint64_t mix_str(uint64_t h, const char *s)
{
    uint64_t len = s ? strlen(s) + 1 : 0; /* NULL and "" differ */
    h = ohm_hash64(&len, sizeof len, h);
    return s ? ohm_hash64(s, len, h) : h;
}

static uint64_t mix_double(uint64_t h, double v)
{
    if (v == 0) v = 0; /* -0 and +0 are the same weight */
    return ohm_hash64(&v, sizeof v, h);
}

uint64_t ohm_topology_digest(const ohm_topology_t *t)
{
    uint64_t h = ohm_hash64("ohm-topology-1", 14, 0);
    int64_t n = t->n;
    h = ohm_hash64(&n, sizeof n, h);
    for (int i = 0; i < t->n; i++) {
        const ohm_peer_info_t *p = &t->peers[i];
        int32_t ints[4] = {(int32_t)p->id, p->has_key, p->byzantine, p->b};
        h = ohm_hash64(ints, sizeof ints, h);
        if (p->has_key) h = ohm_hash64(p->key, sizeof p->key, h);
        h = mix_str(h, p->endpoint);
        h = mix_str(h, p->bind);
        h = mix_str(h, p->attack);
        h = mix_str(h, p->rule);
        h = mix_double(h, t->self_w[i]);
        for (uint32_t s = t->off[i]; s < t->off[i + 1]; s++) {
            h = ohm_hash64(&t->adj[s], sizeof t->adj[s], h);
            h = mix_double(h, t->w[s]);
        }
    }
    return h;
}
