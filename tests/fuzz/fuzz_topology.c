/* libFuzzer target for the topology parser: any bytes must give OK or an
 * error code with a detail, never a crash; whatever loads must have rows
 * summing to 1 and survive write -> parse (and an empty edit) with the same
 * digest and text. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ohm_error.h"
#include "ohm_topology.h"

static char *written(const ohm_topology_t *t, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) abort();
    if (ohm_topology_write(t, f)) abort();
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ohm_topology_t *t = NULL;
    int rc = ohm_topology_parse((const char *)data, size, "fuzz", &t);
    if (rc != 0) {
        if (t || ohm_error_detail()[0] == '\0') abort(); /* every error explains itself */
        return 0;
    }
    int n = ohm_topology_size(t);
    for (int i = 0; i < n; i++) {
        const uint32_t *nb;
        int d = ohm_topology_neighbors(t, (uint32_t)i, &nb);
        double s = ohm_topology_weight(t, (uint32_t)i, (uint32_t)i);
        for (int k = 0; k < d; k++) {
            if (k > 0 && nb[k] <= nb[k - 1]) abort();
            double w = ohm_topology_weight(t, (uint32_t)i, nb[k]);
            if (!(w >= 0)) abort();
            s += w;
        }
        if (fabs(s - 1) > 1e-6) abort();
    }
    if (n <= 64) {
        ohm_topo_gap_t g;
        if (ohm_topology_spectral_gap(t, &g) || !(g.gap >= 0 && g.gap <= 1)) abort();
    }
    ohm_topology_t *e = NULL; /* an edit that changes nothing keeps the digest */
    if (ohm_topology_edit(t, NULL, "edit", &e) || ohm_topology_digest(e) != ohm_topology_digest(t))
        abort();
    ohm_topology_destroy(&e);
    size_t la, lb;
    char *a = written(t, &la);
    ohm_topology_t *u = NULL;
    if (ohm_topology_parse(a, la, "written", &u)) abort();
    if (ohm_topology_digest(u) != ohm_topology_digest(t)) abort();
    char *b = written(u, &lb);
    if (la != lb || memcmp(a, b, la) != 0) abort();
    free(a);
    free(b);
    ohm_topology_destroy(&u);
    ohm_topology_destroy(&t);
    return 0;
}
