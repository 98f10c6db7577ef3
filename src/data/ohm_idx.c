/* ohm_idx: gzip IDX reader (zlib's gz* reads plain files transparently). */
#include "ohm_idx.h"

#include "ohm_error.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Limits that no sane IDX file of this kind exceeds; they keep the size
 * arithmetic far from overflow whatever a damaged header says. */
#define MAX_ITEM_BYTES (1u << 20)
#define MAX_COUNT (1u << 30)

/* Bytes decompressed per chunk when skipping unwanted rows. */
#define CHUNK_BYTES (256u << 10)

struct ohm_idx {
    gzFile gz;
    char *path;
    size_t count, rows, cols;
    size_t pos; /* next item */
};

static int read_exact(ohm_idx_t *f, void *buf, size_t len, const char *what)
{
    unsigned char *p = buf;
    while (len > 0) {
        unsigned ask = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        int got = gzread(f->gz, p, ask);
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(f->gz, &zerr);
            return ohm_error_set(OHM_EFORMAT, "%s: corrupt gzip data in %s (%s)", f->path, what,
                                 msg);
        }
        if (got == 0)
            return ohm_error_set(OHM_ETRUNC,
                                 "%s: truncated in %s (file shorter than its header "
                                 "says)",
                                 f->path, what);
        p += got;
        len -= (size_t)got;
    }
    return OHM_OK;
}

static int read_u32(ohm_idx_t *f, uint32_t *v)
{
    unsigned char b[4];
    int rc = read_exact(f, b, 4, "the header");
    if (rc) return rc;
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return OHM_OK;
}

int ohm_idx_open(const char *path, uint32_t magic, ohm_idx_t **out)
{
    assert(magic == OHM_IDX_LABELS || magic == OHM_IDX_IMAGES);
    *out = NULL;
    ohm_idx_t *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return ohm_error_set(OHM_ENOMEM, "%s", path);
    }
    errno = 0;
    f->gz = gzopen(path, "rb");
    if (!f->gz) {
        int e = errno;
        free(f->path);
        free(f);
        return ohm_error_set(OHM_EIO, "%s: %s", path, e ? strerror(e) : "cannot open");
    }
    gzbuffer(f->gz, 128u << 10);
    uint32_t m, dims[3] = {0, 1, 1};
    int nd = magic == OHM_IDX_IMAGES ? 3 : 1;
    int rc = read_u32(f, &m);
    if (!rc && m != magic)
        rc = ohm_error_set(OHM_EFORMAT, "%s: magic 0x%08x, expected 0x%08x (IDX %s)", path, m,
                           magic, magic == OHM_IDX_IMAGES ? "images" : "labels");
    for (int i = 0; i < nd && !rc; i++) {
        rc = read_u32(f, &dims[i]);
        if (!rc && dims[i] == 0)
            rc = ohm_error_set(OHM_EFORMAT, "%s: dimension %d is zero", path, i);
    }
    if (!rc && (dims[0] > MAX_COUNT || (uint64_t)dims[1] * dims[2] > MAX_ITEM_BYTES))
        rc = ohm_error_set(OHM_EFORMAT, "%s: implausible dimensions %ux%ux%u", path, dims[0],
                           dims[1], dims[2]);
    if (rc) {
        ohm_idx_close(&f);
        return rc;
    }
    f->count = dims[0];
    f->rows = dims[1];
    f->cols = dims[2];
    *out = f;
    return OHM_OK;
}

void ohm_idx_close(ohm_idx_t **pf)
{
    if (!pf || !*pf) return;
    gzclose((*pf)->gz);
    free((*pf)->path);
    free(*pf);
    *pf = NULL;
}

size_t ohm_idx_count(const ohm_idx_t *f)
{
    return f->count;
}

size_t ohm_idx_rows(const ohm_idx_t *f)
{
    return f->rows;
}

size_t ohm_idx_cols(const ohm_idx_t *f)
{
    return f->cols;
}

size_t ohm_idx_item_size(const ohm_idx_t *f)
{
    return f->rows * f->cols;
}

const char *ohm_idx_path(const ohm_idx_t *f)
{
    return f->path;
}

int ohm_idx_read(ohm_idx_t *f, void *buf, size_t n)
{
    assert(n <= f->count - f->pos);
    char what[64];
    snprintf(what, sizeof what, "items %zu..%zu", f->pos, f->pos + n);
    int rc = read_exact(f, buf, n * ohm_idx_item_size(f), what);
    if (!rc) f->pos += n;
    return rc;
}

int ohm_idx_read_rows(ohm_idx_t *f, const uint32_t *rows, size_t nrows, uint8_t *out)
{
    if (nrows == 0) return OHM_OK;
    size_t item = ohm_idx_item_size(f);
    size_t want = (size_t)rows[nrows - 1] + 1; /* items to pass through */
    assert(want <= f->count - f->pos);
    size_t per = CHUNK_BYTES / item ? CHUNK_BYTES / item : 1;
    uint8_t *buf = malloc(per * item);
    if (!buf) return ohm_error_set(OHM_ENOMEM, "%s: read buffer", f->path);
    size_t j = 0, base = 0;
    int rc = OHM_OK;
    while (base < want && !rc) {
        size_t k = want - base < per ? want - base : per;
        if ((rc = ohm_idx_read(f, buf, k))) break;
        for (; j < nrows && rows[j] < base + k; j++) {
            assert(rows[j] >= base && (j == 0 || rows[j] > rows[j - 1]));
            memcpy(out + j * item, buf + (rows[j] - base) * item, item);
        }
        base += k;
    }
    free(buf);
    return rc;
}
