/* ohm_ckpt: named sections, CRC-checked, written atomically (temp, fsync, rename). */
#include "ohm_ckpt.h"

#include "ohm_error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC "OHMCKPT1"
#define MAX_SECTIONS 64
#define MAX_NAME 255

typedef struct {
    char *name;
    unsigned char *data;
    size_t len;
} section_t;

struct ohm_ckpt {
    int n;
    section_t s[MAX_SECTIONS];
};

ohm_ckpt_t *ohm_ckpt_new(void)
{
    return calloc(1, sizeof(ohm_ckpt_t));
}

void ohm_ckpt_destroy(ohm_ckpt_t **pck)
{
    if (!pck || !*pck) return;
    ohm_ckpt_t *ck = *pck;
    for (int i = 0; i < ck->n; i++) {
        free(ck->s[i].name);
        free(ck->s[i].data);
    }
    free(ck);
    *pck = NULL;
}

static section_t *find(const ohm_ckpt_t *ck, const char *name)
{
    for (int i = 0; i < ck->n; i++)
        if (strcmp(ck->s[i].name, name) == 0) return (section_t *)&ck->s[i];
    return NULL;
}

int ohm_ckpt_put(ohm_ckpt_t *ck, const char *name, const void *data, size_t len)
{
    size_t nl = strlen(name);
    if (nl == 0 || nl > MAX_NAME)
        return ohm_error_set(OHM_EINVAL, "checkpoint section name of %zu bytes", nl);
    unsigned char *copy = malloc(len ? len : 1);
    if (!copy) return ohm_error_set(OHM_ENOMEM, "checkpoint section '%s' (%zu bytes)", name, len);
    if (len) memcpy(copy, data, len);
    section_t *s = find(ck, name);
    if (s) {
        free(s->data);
    } else {
        if (ck->n == MAX_SECTIONS) {
            free(copy);
            return ohm_error_set(OHM_ETOOBIG, "checkpoint: more than %d sections", MAX_SECTIONS);
        }
        s = &ck->s[ck->n];
        if (!(s->name = strdup(name))) {
            free(copy);
            return ohm_error_set(OHM_ENOMEM, "checkpoint section name");
        }
        ck->n++;
    }
    s->data = copy;
    s->len = len;
    return OHM_OK;
}

int ohm_ckpt_get(const ohm_ckpt_t *ck, const char *name, const void **data, size_t *len)
{
    section_t *s = find(ck, name);
    if (!s) return ohm_error_set(OHM_ENOTFOUND, "checkpoint has no section '%s'", name);
    *data = s->data;
    *len = s->len;
    return OHM_OK;
}

static int write_all(int fd, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint32_t crc_of(const unsigned char *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    /* zlib's crc32 takes uInt lengths: feed large sections in pieces. */
    while (n) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

int ohm_ckpt_write(const ohm_ckpt_t *ck, const char *path)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    char *dircopy = strdup(path);
    if (!tmp || !dircopy) {
        free(tmp);
        free(dircopy);
        return ohm_error_set(OHM_ENOMEM, "checkpoint path");
    }
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int rc = OHM_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = ohm_error_set(OHM_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    unsigned char hdr[12];
    memcpy(hdr, MAGIC, 8);
    put_le(hdr + 8, (uint64_t)ck->n, 4);
    if (write_all(fd, hdr, 12)) goto ioerr;
    for (int i = 0; i < ck->n; i++) {
        const section_t *s = &ck->s[i];
        size_t nl = strlen(s->name);
        unsigned char sh[2 + MAX_NAME + 12];
        put_le(sh, nl, 2);
        memcpy(sh + 2, s->name, nl);
        put_le(sh + 2 + nl, s->len, 8);
        put_le(sh + 10 + nl, crc_of(s->data, s->len), 4);
        if (write_all(fd, sh, 14 + nl) || write_all(fd, s->data, s->len)) goto ioerr;
    }
    if (fsync(fd)) goto ioerr;
    if (close(fd)) {
        fd = -1;
        goto ioerr;
    }
    fd = -1;
    if (rename(tmp, path)) {
        rc = ohm_error_set(OHM_EIO, "%s: rename: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    /* Make the rename itself durable. */
    int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    goto out;
ioerr:
    rc = ohm_error_set(OHM_EIO, "%s: write: %s", tmp, strerror(errno));
    if (fd >= 0) close(fd);
    unlink(tmp);
out:
    free(tmp);
    free(dircopy);
    return rc;
}

int ohm_ckpt_read(const char *path, ohm_ckpt_t **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ohm_error_set(OHM_EIO, "%s: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    int rc = OHM_OK;
    struct stat st;
    if (fstat(fileno(f), &st) || st.st_size < 12) {
        rc = ohm_error_set(OHM_ETRUNC, "%s: not a checkpoint (too short)", path);
        goto done;
    }
    size_t size = (size_t)st.st_size;
    if (!(buf = malloc(size))) {
        rc = ohm_error_set(OHM_ENOMEM, "%s: %zu bytes", path, size);
        goto done;
    }
    if (fread(buf, 1, size, f) != size) {
        rc = ohm_error_set(OHM_EIO, "%s: short read", path);
        goto done;
    }
    if (memcmp(buf, MAGIC, 8) != 0) {
        rc = ohm_error_set(OHM_EFORMAT, "%s: bad magic (not an ohmpeer checkpoint)", path);
        goto done;
    }
    uint64_t n = get_le(buf + 8, 4);
    if (n > MAX_SECTIONS) {
        rc = ohm_error_set(OHM_EFORMAT, "%s: %llu sections", path, (unsigned long long)n);
        goto done;
    }
    ohm_ckpt_t *ck = ohm_ckpt_new();
    if (!ck) {
        rc = ohm_error_set(OHM_ENOMEM, "checkpoint");
        goto done;
    }
    size_t pos = 12;
    for (uint64_t i = 0; i < n && rc == OHM_OK; i++) {
        if (size - pos < 2) {
            rc = ohm_error_set(OHM_ETRUNC, "%s: section %llu header cut", path,
                               (unsigned long long)i);
            break;
        }
        size_t nl = (size_t)get_le(buf + pos, 2);
        if (nl == 0 || nl > MAX_NAME || size - pos - 2 < nl + 12) {
            rc = ohm_error_set(OHM_ETRUNC, "%s: section %llu header cut or bad", path,
                               (unsigned long long)i);
            break;
        }
        char name[MAX_NAME + 1];
        memcpy(name, buf + pos + 2, nl);
        name[nl] = '\0';
        uint64_t len = get_le(buf + pos + 2 + nl, 8);
        uint32_t crc = (uint32_t)get_le(buf + pos + 10 + nl, 4);
        pos += 14 + nl;
        if (len > size - pos) {
            rc = ohm_error_set(OHM_ETRUNC, "%s: section '%s' cut (%llu bytes declared)", path, name,
                               (unsigned long long)len);
            break;
        }
        if (crc_of(buf + pos, (size_t)len) != crc) {
            rc = ohm_error_set(OHM_EFORMAT, "%s: section '%s' fails its CRC", path, name);
            break;
        }
        rc = ohm_ckpt_put(ck, name, buf + pos, (size_t)len);
        pos += (size_t)len;
    }
    if (rc == OHM_OK && pos != size)
        rc = ohm_error_set(OHM_EFORMAT, "%s: %zu trailing bytes", path, size - pos);
    if (rc) ohm_ckpt_destroy(&ck);
    *out = ck;
done:
    free(buf);
    fclose(f);
    return rc;
}
