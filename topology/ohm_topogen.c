/* ohm_topogen: seeded graph generators, peer placement on hosts, and the host
 * lists (hosts files, SLURM node lists) that placement reads.
 *
 * Generated topologies go through the same builder as parsed files, so they
 * obey the same checks (endpoints, duplicates, connectivity, weights). */
#include "ohm_topology.h"

#include "ohm_error.h"
#include "ohm_rng.h"
#include "ohm_topo_build.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Stream purposes of the generators, apart from the OHM_STREAM_* ones. */
#define STREAM_GRAPH 0x746f706f01ULL
#define STREAM_BYZANTINE 0x746f706f02ULL

#define DEFAULT_PORT 27000
/* er resamples a disconnected draw this many times before giving up. */
#define ER_TRIES 1000

typedef struct {
    uint32_t (*e)[2];
    size_t n, cap;
} edges_t;

static int edges_add(edges_t *E, uint32_t a, uint32_t b)
{
    if (a == b) return OHM_OK;
    if (E->n == E->cap) {
        size_t cap = E->cap ? 2 * E->cap : 64;
        void *ne = realloc(E->e, cap * sizeof *E->e);
        if (!ne) return ohm_error_set(OHM_ENOMEM, "edge list");
        E->e = ne;
        E->cap = cap;
    }
    E->e[E->n][0] = a < b ? a : b;
    E->e[E->n][1] = a < b ? b : a;
    E->n++;
    return OHM_OK;
}

static int cmp_pair(const void *x, const void *y)
{
    const uint32_t *a = x, *b = y;
    if (a[0] != b[0]) return a[0] < b[0] ? -1 : 1;
    return (a[1] > b[1]) - (a[1] < b[1]);
}

/* Sorts and drops repeated pairs (small tori and exponential graphs reach the
 * same neighbour two ways). */
static void edges_unique(edges_t *E)
{
    if (E->n == 0) return;
    qsort(E->e, E->n, sizeof *E->e, cmp_pair);
    size_t m = 1;
    for (size_t i = 1; i < E->n; i++)
        if (cmp_pair(E->e[i], E->e[m - 1]) != 0) {
            E->e[m][0] = E->e[i][0];
            E->e[m][1] = E->e[i][1];
            m++;
        }
    E->n = m;
}

static uint32_t uf_find(uint32_t *par, uint32_t x)
{
    while (par[x] != x) {
        par[x] = par[par[x]];
        x = par[x];
    }
    return x;
}

static int edges_connected(const edges_t *E, int n, uint32_t *par)
{
    for (int i = 0; i < n; i++)
        par[i] = (uint32_t)i;
    int comps = n;
    for (size_t k = 0; k < E->n; k++) {
        uint32_t a = uf_find(par, E->e[k][0]), b = uf_find(par, E->e[k][1]);
        if (a != b) {
            par[a] = b;
            comps--;
        }
    }
    return comps == 1;
}

/* Torus rows: the largest divisor r of n with r*r <= n; 0 when r < 2 (n prime). */
static int torus_rows(int n)
{
    int r = (int)sqrt((double)n);
    while (r * r > n)
        r--;
    for (; r >= 2; r--)
        if (n % r == 0) return r;
    return 0;
}

static int gen_edges(const ohm_topogen_t *g, edges_t *E)
{
    int n = g->n, rc = OHM_OK;
    const char *k = g->kind;
    if (strcmp(k, "ring") == 0) {
        if (n < 3) return ohm_error_set(OHM_EINVAL, "ring: needs n >= 3 (got %d)", n);
        for (int i = 0; i < n && !rc; i++)
            rc = edges_add(E, (uint32_t)i, (uint32_t)((i + 1) % n));
    } else if (strcmp(k, "torus") == 0) {
        int r = torus_rows(n);
        if (n < 4 || r == 0)
            return ohm_error_set(OHM_EINVAL,
                                 "torus: n=%d is not a product r*c with 2 <= r <= c (try %d or %d)",
                                 n, n < 4 ? 4 : n - 1, n < 4 ? 6 : n + 1);
        int c = n / r;
        for (int a = 0; a < r && !rc; a++)
            for (int b = 0; b < c && !rc; b++) {
                uint32_t id = (uint32_t)(a * c + b);
                rc = edges_add(E, id, (uint32_t)(a * c + (b + 1) % c));
                if (!rc) rc = edges_add(E, id, (uint32_t)(((a + 1) % r) * c + b));
            }
    } else if (strcmp(k, "complete") == 0) {
        if (n < 2) return ohm_error_set(OHM_EINVAL, "complete: needs n >= 2 (got %d)", n);
        for (int i = 0; i < n && !rc; i++)
            for (int j = i + 1; j < n && !rc; j++)
                rc = edges_add(E, (uint32_t)i, (uint32_t)j);
    } else if (strcmp(k, "star") == 0) {
        if (n < 2) return ohm_error_set(OHM_EINVAL, "star: needs n >= 2 (got %d)", n);
        for (int i = 1; i < n && !rc; i++)
            rc = edges_add(E, 0, (uint32_t)i);
    } else if (strcmp(k, "exp") == 0) {
        if (n < 2) return ohm_error_set(OHM_EINVAL, "exp: needs n >= 2 (got %d)", n);
        for (int i = 0; i < n && !rc; i++)
            for (int h = 1; h < n && !rc; h *= 2)
                rc = edges_add(E, (uint32_t)i, (uint32_t)((i + h) % n));
    } else if (strcmp(k, "clusters") == 0) {
        /* Two complete halves [0, h) and [h, n), h = n/2, bridged by the one
         * edge (h-1, h): a bottleneck that makes consensus across it slow. */
        if (n < 4) return ohm_error_set(OHM_EINVAL, "clusters: needs n >= 4 (got %d)", n);
        int h = n / 2;
        for (int i = 0; i < n && !rc; i++)
            for (int j = i + 1; j < n && !rc; j++)
                if ((i < h) == (j < h)) rc = edges_add(E, (uint32_t)i, (uint32_t)j);
        if (!rc) rc = edges_add(E, (uint32_t)(h - 1), (uint32_t)h);
    } else if (strcmp(k, "er") == 0) {
        if (n < 2) return ohm_error_set(OHM_EINVAL, "er: needs n >= 2 (got %d)", n);
        if (!(g->p > 0 && g->p <= 1))
            return ohm_error_set(OHM_EINVAL, "er: edge probability p=%g is not in (0, 1]", g->p);
        uint32_t *par = malloc((size_t)n * sizeof *par);
        if (!par) return ohm_error_set(OHM_ENOMEM, "er");
        ohm_rng_t r;
        ohm_rng_seed(&r, g->seed, 0, STREAM_GRAPH);
        int ok = 0;
        for (int t = 0; t < ER_TRIES && !rc && !ok; t++) {
            E->n = 0;
            for (int i = 0; i < n && !rc; i++)
                for (int j = i + 1; j < n && !rc; j++)
                    if (ohm_rng_uniform(&r) < g->p) rc = edges_add(E, (uint32_t)i, (uint32_t)j);
            if (!rc) ok = edges_connected(E, n, par);
        }
        free(par);
        if (!rc && !ok)
            return ohm_error_set(OHM_ERANGE,
                                 "er: no connected graph in %d draws with n=%d p=%g; raise p",
                                 ER_TRIES, n, g->p);
    } else {
        return ohm_error_set(OHM_EINVAL,
                             "unknown topology kind '%s' (ring, torus, complete, er, exp, star, "
                             "clusters)",
                             k);
    }
    if (!rc) edges_unique(E);
    return rc;
}

/* Endpoint of peer i under the placement; IPv6 hosts get their brackets. */
static int place(const ohm_topogen_t *g, int i, int port0, char *ep, size_t len)
{
    const char *host = g->host ? g->host : "127.0.0.1";
    long port = port0 + i;
    if (g->n_hosts > 0) {
        int H = g->n_hosts, K = g->tasks_per_node;
        int hi = K > 0 ? i / K : i % H;
        port = port0 + (K > 0 ? i % K : i / H);
        if (hi >= H)
            return ohm_error_set(OHM_EINVAL, "%d peers at %d per host need %d hosts, only %d given",
                                 g->n, K, (g->n + K - 1) / K, H);
        host = g->hosts[hi];
    }
    if (port > 65535)
        return ohm_error_set(OHM_ERANGE, "peer %d: port %ld is past 65535 (lower --port)", i, port);
    int v6 = strchr(host, ':') && host[0] != '[';
    snprintf(ep, len, v6 ? "tcp://[%s]:%ld" : "tcp://%s:%ld", host, port);
    return OHM_OK;
}

int ohm_topology_generate(const ohm_topogen_t *g, ohm_topology_t **out)
{
    *out = NULL;
    if (!g->kind) return ohm_error_set(OHM_EINVAL, "no topology kind");
    if (g->n < 1 || g->n > OHM_TOPO_MAX_PEERS)
        return ohm_error_set(OHM_EINVAL, "n=%d is not in 1..%d", g->n, OHM_TOPO_MAX_PEERS);
    int n = g->n;
    if (g->byzantine < 0 || g->byzantine >= n)
        return ohm_error_set(OHM_EINVAL,
                             "byzantine=%d: must be in 0..%d (one honest peer at least)",
                             g->byzantine, n - 1);
    char why[160];
    if (g->attack && g->byzantine == 0)
        return ohm_error_set(OHM_EINVAL, "an attack was given but no peer is byzantine");
    if (g->attack && ohm_topo_check_attack(g->attack, why, sizeof why))
        return ohm_error_set(OHM_EINVAL, "bad attack '%s': %s", g->attack, why);
    int port0 = g->port ? g->port : DEFAULT_PORT;
    if (port0 < 1 || port0 > 65535)
        return ohm_error_set(OHM_ERANGE, "port %d outside 1..65535", port0);
    if (g->tasks_per_node < 0 || (g->tasks_per_node > 0 && g->n_hosts <= 0))
        return ohm_error_set(OHM_EINVAL, "tasks per node needs a host list");
    if (g->n_hosts < 0 || (g->n_hosts > 0 && !g->hosts))
        return ohm_error_set(OHM_EINVAL, "bad host list");

    edges_t E = {0};
    uint8_t *byz = calloc((size_t)n, 1);
    uint32_t *perm = malloc((size_t)n * sizeof *perm);
    ohm_topo_build_t *b = NULL;
    char name[64];
    snprintf(name, sizeof name, "generated %.20s", g->kind);
    int rc = (!byz || !perm) ? ohm_error_set(OHM_ENOMEM, "generator") : OHM_OK;
    if (!rc) rc = gen_edges(g, &E);
    if (!rc) {
        /* Byzantine peers: the first B of a seeded permutation. */
        ohm_rng_t r;
        ohm_rng_seed(&r, g->seed, 0, STREAM_BYZANTINE);
        for (int i = 0; i < n; i++)
            perm[i] = (uint32_t)i;
        ohm_rng_shuffle(&r, perm, (size_t)n);
        for (int i = 0; i < g->byzantine; i++)
            byz[perm[i]] = 1;
        rc = ohm_topo_build_new(name, &b);
    }
    if (!rc && g->weights) rc = ohm_topo_build_scheme(b, g->weights, 0);
    for (int i = 0; i < n && !rc; i++) {
        char ep[320];
        if ((rc = place(g, i, port0, ep, sizeof ep))) break;
        ohm_peer_info_t p = {.id = (uint32_t)i,
                             .endpoint = ep,
                             .byzantine = byz[i],
                             .attack = byz[i] ? g->attack : NULL,
                             .b = -1};
        rc = ohm_topo_build_peer(b, &p, 0);
    }
    for (size_t k = 0; k < E.n && !rc; k++)
        rc = ohm_topo_build_edge(b, E.e[k][0], E.e[k][1], 0, 0, 0);
    if (!rc) rc = ohm_topo_build_finish(&b, 0, out);
    ohm_topo_build_destroy(&b);
    free(E.e);
    free(byz);
    free(perm);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Host lists                                                          */

typedef struct {
    char **v;
    int n, cap;
} strv_t;

static int strv_push(strv_t *s, const char *a, size_t al, const char *b)
{
    if (s->n >= OHM_TOPO_MAX_PEERS)
        return ohm_error_set(OHM_ETOOBIG, "more than %d hosts", OHM_TOPO_MAX_PEERS);
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        char **nv = realloc(s->v, (size_t)cap * sizeof *nv);
        if (!nv) return ohm_error_set(OHM_ENOMEM, "host list");
        s->v = nv;
        s->cap = cap;
    }
    size_t bl = b ? strlen(b) : 0;
    char *x = malloc(al + bl + 1);
    if (!x) return ohm_error_set(OHM_ENOMEM, "host list");
    memcpy(x, a, al);
    if (bl) memcpy(x + al, b, bl);
    x[al + bl] = '\0';
    s->v[s->n++] = x;
    return OHM_OK;
}

void ohm_topogen_free_hosts(char ***hosts, int n)
{
    if (!hosts || !*hosts) return;
    for (int i = 0; i < n; i++)
        free((*hosts)[i]);
    free(*hosts);
    *hosts = NULL;
}

/* Expands one item (no top-level commas) of length len into out. The first
 * bracket group varies slowest, as in SLURM. */
static int expand_item(const char *s, size_t len, const char *list, strv_t *out)
{
    const char *lb = memchr(s, '[', len);
    const char *rb0 = memchr(s, ']', lb ? (size_t)(lb - s) : len);
    if (rb0) return ohm_error_set(OHM_EPARSE, "node list '%s': ']' without '['", list);
    if (!lb) {
        if (len == 0) return ohm_error_set(OHM_EPARSE, "node list '%s': empty name", list);
        return strv_push(out, s, len, NULL);
    }
    size_t rest = len - (size_t)(lb - s);
    const char *rb = memchr(lb, ']', rest);
    if (!rb) return ohm_error_set(OHM_EPARSE, "node list '%s': '[' without ']'", list);
    if (memchr(lb + 1, '[', (size_t)(rb - lb - 1)))
        return ohm_error_set(OHM_EPARSE, "node list '%s': nested '['", list);
    /* Suffix first: each number of this group is followed by every suffix. */
    strv_t suf = {0};
    const char *after = rb + 1;
    size_t al = len - (size_t)(after - s);
    int rc = OHM_OK;
    if (al > 0)
        rc = expand_item(after, al, list, &suf);
    else
        rc = strv_push(&suf, "", 0, NULL);
    const char *p = lb + 1;
    while (!rc && p <= rb) {
        const char *end = memchr(p, ',', (size_t)(rb - p));
        if (!end) end = rb;
        const char *dash = memchr(p, '-', (size_t)(end - p));
        const char *hi_s = dash ? dash + 1 : p;
        size_t lol = (size_t)((dash ? dash : end) - p), hil = (size_t)(end - hi_s);
        char lo_b[16], hi_b[16];
        if (lol == 0 || hil == 0 || lol > 9 || hil > 9 || strspn(p, "0123456789") < lol ||
            strspn(hi_s, "0123456789") < hil) {
            rc = ohm_error_set(OHM_EPARSE, "node list '%s': bad range '%.*s'", list, (int)(end - p),
                               p);
            break;
        }
        memcpy(lo_b, p, lol);
        lo_b[lol] = '\0';
        memcpy(hi_b, hi_s, hil);
        hi_b[hil] = '\0';
        long lo = strtol(lo_b, NULL, 10), hi = strtol(hi_b, NULL, 10);
        if (hi < lo) {
            rc = ohm_error_set(OHM_EPARSE, "node list '%s': range %ld-%ld runs backwards", list, lo,
                               hi);
            break;
        }
        if ((hi - lo + 1) * (long)suf.n + out->n > OHM_TOPO_MAX_PEERS) {
            rc = ohm_error_set(OHM_ETOOBIG, "node list '%s': more than %d hosts", list,
                               OHM_TOPO_MAX_PEERS);
            break;
        }
        int width = (int)lol; /* "01-10": two digits, zero-padded */
        for (long v = lo; v <= hi && !rc; v++) {
            char num[32];
            snprintf(num, sizeof num, "%0*ld", width, v);
            size_t pl = (size_t)(lb - s);
            for (int k = 0; k < suf.n && !rc; k++) {
                char buf[600];
                if (pl + strlen(num) + strlen(suf.v[k]) >= sizeof buf) {
                    rc = ohm_error_set(OHM_EPARSE, "node list '%s': name too long", list);
                    break;
                }
                memcpy(buf, s, pl);
                snprintf(buf + pl, sizeof buf - pl, "%s%s", num, suf.v[k]);
                rc = strv_push(out, buf, strlen(buf), NULL);
            }
        }
        p = end + 1;
    }
    ohm_topogen_free_hosts(&suf.v, suf.n);
    return rc;
}

int ohm_topogen_expand_nodelist(const char *list, char ***hosts, int *n)
{
    *hosts = NULL;
    *n = 0;
    size_t len = strlen(list);
    if (len == 0 || len > 4096)
        return ohm_error_set(OHM_EPARSE, "node list: empty or longer than 4096 characters");
    for (size_t i = 0; i < len; i++)
        if (isspace((unsigned char)list[i]) || !isprint((unsigned char)list[i]))
            return ohm_error_set(OHM_EPARSE, "node list '%s': blank or control character", list);
    strv_t out = {0};
    int rc = OHM_OK;
    size_t start = 0;
    int depth = 0;
    for (size_t i = 0; i <= len && !rc; i++) {
        char c = i < len ? list[i] : ',';
        if (c == '[') depth++;
        if (c == ']') depth--;
        if ((c == ',' && depth <= 0) || i == len) {
            rc = expand_item(list + start, i - start, list, &out);
            start = i + 1;
            depth = 0;
        }
    }
    if (rc) {
        ohm_topogen_free_hosts(&out.v, out.n);
        return rc;
    }
    *hosts = out.v;
    *n = out.n;
    return OHM_OK;
}

int ohm_topogen_read_hosts(const char *path, char ***hosts, int *n)
{
    *hosts = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) return ohm_error_set(OHM_EIO, "%s: %s", path, strerror(errno));
    strv_t out = {0};
    char line[1024];
    int no = 0, rc = OHM_OK;
    while (!rc && fgets(line, sizeof line, f)) {
        no++;
        size_t ll = strlen(line);
        if (ll == sizeof line - 1 && line[ll - 1] != '\n') {
            rc = ohm_error_set(OHM_EPARSE, "%s:%d: line too long", path, no);
            break;
        }
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        char *e = p;
        while (*e && !isspace((unsigned char)*e))
            e++;
        /* After the host, only KEY=VALUE fields (the launcher's ssh=, ohmpeer=,
         * dir=), so one hosts file serves both ohmtopo and ohm-launch. */
        char *q = e;
        for (;;) {
            while (isspace((unsigned char)*q))
                q++;
            if (!*q) break;
            char *t = q;
            while (*q && !isspace((unsigned char)*q))
                q++;
            char *eq = memchr(t, '=', (size_t)(q - t));
            if (!eq || eq == t) {
                rc = ohm_error_set(OHM_EPARSE,
                                   "%s:%d: one host per line, then KEY=VALUE fields ('%.*s')", path,
                                   no, (int)(q - t), t);
                break;
            }
        }
        if (rc) break;
        if (e > p) {
            rc = strv_push(&out, p, (size_t)(e - p), NULL);
            if (rc) {
                char d[256]; /* the detail buffer cannot be its own argument */
                snprintf(d, sizeof d, "%s", ohm_error_detail());
                ohm_error_set(rc, "%s:%d: %s", path, no, d);
            }
        }
    }
    if (!rc && ferror(f)) rc = ohm_error_set(OHM_EIO, "%s: read failed", path);
    fclose(f);
    if (!rc && out.n == 0) rc = ohm_error_set(OHM_EPARSE, "%s: no hosts", path);
    if (rc) {
        ohm_topogen_free_hosts(&out.v, out.n);
        return rc;
    }
    *hosts = out.v;
    *n = out.n;
    return OHM_OK;
}

/* ---- ports ----------------------------------------------------------------- */

int ohm_topogen_ephemeral_range(const char *path, int *lo, int *hi)
{
    FILE *f = fopen(path, "r");
    if (!f) return ohm_error_set(OHM_EIO, "%s: %s", path, strerror(errno));
    int a = 0, b = 0, got = fscanf(f, "%d %d", &a, &b);
    fclose(f);
    if (got != 2 || a < 1 || b > 65535 || a > b)
        return ohm_error_set(OHM_EPARSE, "%s: expected two ports LO HI", path);
    *lo = a;
    *hi = b;
    return OHM_OK;
}

void ohm_topogen_port_span(const ohm_topogen_t *g, int *first, int *last)
{
    int port0 = g->port ? g->port : DEFAULT_PORT, count = g->n;
    if (g->n_hosts > 0)
        count = g->tasks_per_node > 0 ? g->tasks_per_node : (g->n + g->n_hosts - 1) / g->n_hosts;
    if (count < 1) count = 1;
    *first = port0;
    *last = port0 + count - 1;
}

int ohm_topogen_safe_port(int count, int lo, int hi)
{
    if (count < 1) count = 1;
    if (DEFAULT_PORT + count - 1 < lo || DEFAULT_PORT > hi) return DEFAULT_PORT;
    if (lo - count >= 1024) return lo - count;
    if (hi + count <= 65535) return hi + 1;
    return 0;
}
