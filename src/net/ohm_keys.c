/* ohm_keys: CURVE key pairs (libsodium's crypto_box keys are CURVE keys),
 * Z85 text through libzmq, and key files written atomically. */
#include "ohm_keys.h"

#include "ohm_error.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

/* Longest key file we read: a 40-character line plus generous whitespace. */
#define KEY_FILE_MAX 256

int ohm_keys_generate(uint8_t pub[OHM_KEY_BYTES], uint8_t sec[OHM_KEY_BYTES])
{
    assert(pub && sec);
    if (!zmq_has("curve"))
        return ohm_error_set(OHM_EUNSUPPORTED, "keys: this libzmq was built without CURVE");
    if (sodium_init() < 0)
        return ohm_error_set(OHM_EUNSUPPORTED, "keys: libsodium failed to initialise");
    crypto_box_keypair(pub, sec);
    return OHM_OK;
}

void ohm_keys_encode(const uint8_t key[OHM_KEY_BYTES], char out[41])
{
    assert(key && out);
    char *r = zmq_z85_encode(out, key, OHM_KEY_BYTES);
    assert(r); /* 32 is a multiple of 4: cannot fail */
    (void)r;
}

int ohm_keys_decode(const char *z85, uint8_t key[OHM_KEY_BYTES])
{
    assert(key);
    if (!z85 || strnlen(z85, 41) != 40)
        return ohm_error_set(OHM_EINVAL, "key: expected 40 Z85 characters, got %zu",
                             z85 ? strnlen(z85, 1000) : 0);
    /* The key may be a secret one: every temporary copy is wiped. */
    uint8_t tmp[OHM_KEY_BYTES];
    char back[41];
    int rc = OHM_OK;
    if (!zmq_z85_decode(tmp, z85)) {
        rc = ohm_error_set(OHM_EINVAL, "key: not valid Z85 text");
    } else {
        /* Z85 groups can spell values above 2^32; only the canonical spelling
         * of the decoded bytes is a key. */
        ohm_keys_encode(tmp, back);
        if (memcmp(back, z85, 40) != 0)
            rc = ohm_error_set(OHM_EINVAL, "key: not valid Z85 text");
        else
            memcpy(key, tmp, OHM_KEY_BYTES);
    }
    sodium_memzero(tmp, sizeof tmp);
    sodium_memzero(back, sizeof back);
    return rc;
}

/* Writes text to PATH atomically with mode `mode`: a temp file created
 * exclusively beside it, fsynced, renamed over PATH, directory fsynced. */
static int write_atomic(const char *path, const char *text, size_t len, mode_t mode)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return ohm_error_set(OHM_EINVAL, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) return ohm_error_set(OHM_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    int rc = OHM_OK;
    /* fchmod: the umask may only narrow, but be exact either way. */
    if (fchmod(fd, mode) != 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) != 0)
        rc = ohm_error_set(OHM_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    if (close(fd) != 0 && !rc)
        rc = ohm_error_set(OHM_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = ohm_error_set(OHM_EIO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (rc) {
        unlink(tmp);
        return rc;
    }
    char dcopy[4096];
    snprintf(dcopy, sizeof dcopy, "%s", path);
    int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* best effort: some file systems refuse fsync on directories */
        close(dfd);
    }
    return OHM_OK;
}

int ohm_keys_write(const char *prefix, const uint8_t pub[OHM_KEY_BYTES],
                   const uint8_t sec[OHM_KEY_BYTES])
{
    assert(prefix && pub && sec);
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s.key", prefix) >= sizeof path - 16)
        return ohm_error_set(OHM_EINVAL, "%s: key path too long", prefix);
    char text[42];
    ohm_keys_encode(sec, text);
    text[40] = '\n';
    int rc = write_atomic(path, text, 41, 0600);
    sodium_memzero(text, sizeof text);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s.pub", prefix);
    ohm_keys_encode(pub, text);
    text[40] = '\n';
    return write_atomic(path, text, 41, 0644);
}

int ohm_keys_read_secret(const char *path, uint8_t pub[OHM_KEY_BYTES], uint8_t sec[OHM_KEY_BYTES])
{
    assert(path && pub && sec);
    if (sodium_init() < 0)
        return ohm_error_set(OHM_EUNSUPPORTED, "keys: libsodium failed to initialise");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ohm_error_set(OHM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return ohm_error_set(OHM_EIO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ohm_error_set(OHM_EIO, "%s: not a regular file", path);
    }
    /* Checked on the open file, so a swap of the name after the check is moot.
     * A secret someone else owns could be replaced by them at any time. */
    if (st.st_uid != geteuid()) {
        close(fd);
        return ohm_error_set(OHM_EPERM,
                             "%s: secret key file is owned by uid %u, not by this user (uid %u); "
                             "refusing a secret key another user controls",
                             path, (unsigned)st.st_uid, (unsigned)geteuid());
    }
    if (st.st_mode & 077) {
        close(fd);
        return ohm_error_set(OHM_EPERM,
                             "%s: secret key file has mode %04o, readable or writable by "
                             "group/others; run chmod 600 %s",
                             path, (unsigned)(st.st_mode & 07777), path);
    }
    char text[KEY_FILE_MAX + 1];
    ssize_t n = read(fd, text, KEY_FILE_MAX + 1);
    int err = errno;
    close(fd);
    if (n < 0) return ohm_error_set(OHM_EIO, "%s: cannot read: %s", path, strerror(err));
    int rc = OHM_OK;
    if (n > KEY_FILE_MAX) {
        rc = ohm_error_set(OHM_EAUTH, "%s: not a key file (over %d bytes)", path, KEY_FILE_MAX);
        goto out;
    }
    text[n] = 0;
    /* One line of 40 Z85 characters; surrounding whitespace is tolerated. */
    char *s = text, *e = text + n;
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        e--;
    *e = 0;
    if (ohm_keys_decode(s, sec) != OHM_OK) {
        rc = ohm_error_set(OHM_EAUTH,
                           "%s: not a secret key (expected one line of 40 Z85 "
                           "characters)",
                           path);
        goto out;
    }
    crypto_scalarmult_base(pub, sec);
out:
    sodium_memzero(text, sizeof text);
    return rc;
}
