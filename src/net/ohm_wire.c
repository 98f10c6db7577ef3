/* ohm_wire: msgpack encoding with msgpack-c's packer, decoding with a small
 * reader of our own that never allocates and checks every declared length
 * against the bytes that remain before it uses it (msgpack-c's unpacker
 * reserves memory from declared counts, which a hostile 5-byte message can
 * abuse). */
#include "ohm_wire.h"

#include "ohm_error.h"
#include "ohm_payload.h"

#include <assert.h>
#include <msgpack.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------- encode */

typedef struct {
    uint8_t *buf;
    size_t cap, len;
} sink_t;

static int sink_write(void *data, const char *src, size_t n)
{
    sink_t *s = data;
    if (n > s->cap - s->len) return -1;
    memcpy(s->buf + s->len, src, n);
    s->len += n;
    return 0;
}

/* Widest case: fixmap header, each key as fixstr and each integer at its
 * widest (uint32: 5 bytes, uint64: 9), bin32 header (5). */
#define WIRE_OVERHEAD                                                                              \
    (1 + (1 + 1 + 5) + (1 + 4 + 5) + (1 + 3 + 9) + (1 + 4 + 5) + (1 + 5 + 5) + (1 + 2 + 9) +       \
     (1 + 1 + 5) + 3 * (1 + 1 + 5) + (1 + 1 + 5))

size_t ohm_wire_max_size(uint32_t count)
{
    /* The f32 payload is the largest but for q8 of one parameter (5 bytes). */
    return WIRE_OVERHEAD + 4 * (size_t)count + 4;
}

static int pack_key(msgpack_packer *pk, const char *k)
{
    size_t n = strlen(k);
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, k, n);
}

/* Writes the payload as float32 little-endian whatever the host order. */
static int pack_params(msgpack_packer *pk, const float *params, uint32_t count)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    uint8_t tmp[4096];
    for (size_t i = 0; i < count;) {
        size_t k = count - i < sizeof tmp / 4 ? count - i : sizeof tmp / 4;
        for (size_t j = 0; j < k; j++) {
            uint32_t b;
            memcpy(&b, &params[i + j], 4);
            b = __builtin_bswap32(b);
            memcpy(tmp + 4 * j, &b, 4);
        }
        if (msgpack_pack_bin_body(pk, tmp, 4 * k)) return -1;
        i += k;
    }
    return 0;
#else
    return count ? msgpack_pack_bin_body(pk, params, 4 * (size_t)count) : 0;
#endif
}

/* Bytes of v as msgpack writes it at its narrowest. */
static int uint_size(uint32_t v)
{
    return v < 128 ? 1 : v < 256 ? 2 : v < 65536 ? 3 : 5;
}

/* Packs v in exactly `size` bytes (1, 2, 3 or 5; never below uint_size(v)).
 * Wider than needed is still valid msgpack, and every reader takes it. */
static int pack_uint_sized(msgpack_packer *pk, uint32_t v, int size)
{
    assert(size >= uint_size(v));
    switch (size) {
    case 1:
        return msgpack_pack_uint32(pk, v);
    case 2:
        return msgpack_pack_fix_uint8(pk, (uint8_t)v);
    case 3:
        return msgpack_pack_fix_uint16(pk, (uint16_t)v);
    default:
        return msgpack_pack_fix_uint32(pk, v);
    }
}

/* Everything up to the payload's first byte, v and type in the given sizes. */
static int pack_header(msgpack_packer *pk, const ohm_wire_msg_t *m, size_t payload, int v_size,
                       int type_size)
{
    /* "p" last: the payload ends the message, after every field a receiver checks. */
    return msgpack_pack_map(pk, 11) || pack_key(pk, "v") ||
           pack_uint_sized(pk, m->version, v_size) || pack_key(pk, "type") ||
           pack_uint_sized(pk, m->type, type_size) || pack_key(pk, "run") ||
           msgpack_pack_uint64(pk, m->run) || pack_key(pk, "from") ||
           msgpack_pack_uint32(pk, m->from) || pack_key(pk, "round") ||
           msgpack_pack_uint32(pk, m->round) || pack_key(pk, "fp") ||
           msgpack_pack_uint64(pk, m->fp) || pack_key(pk, "n") ||
           msgpack_pack_uint32(pk, m->count) || pack_key(pk, "k") ||
           msgpack_pack_uint32(pk, m->kind) || pack_key(pk, "b") ||
           msgpack_pack_uint32(pk, m->base) || pack_key(pk, "m") ||
           msgpack_pack_uint32(pk, m->entries) || pack_key(pk, "p") ||
           msgpack_pack_bin(pk, payload);
}

/* Sizes for v and type that lengthen the header by `pad` bytes modulo 4
 * (the least such lengthening); 0 when no choice does. */
static int pick_sizes(const ohm_wire_msg_t *m, int pad, int *v_size, int *type_size)
{
    static const int sizes[4] = {1, 2, 3, 5};
    int v0 = uint_size(m->version), t0 = uint_size(m->type), best = -1;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            int extra = sizes[i] - v0 + sizes[j] - t0;
            if (sizes[i] < v0 || sizes[j] < t0 || extra % 4 != pad) continue;
            if (best < 0 || extra < best) best = extra, *v_size = sizes[i], *type_size = sizes[j];
        }
    return best >= 0;
}

/* Writes the header of m for a payload of `payload` bytes into s, aligning
 * the payload to 4 bytes from the message's start: a receiver whose buffer is
 * aligned (ZeroMQ's large messages are) can then read the floats in place
 * instead of copying them out (ohm_wire_view_params). */
static int header_into(const ohm_wire_msg_t *m, size_t payload, sink_t *s)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, s, sink_write);
    int v_size = uint_size(m->version), type_size = uint_size(m->type);
    int bad = pack_header(&pk, m, payload, v_size, type_size);
    if (!bad && s->len % 4 && pick_sizes(m, (int)(4 - s->len % 4), &v_size, &type_size)) {
        s->len = 0;
        bad = pack_header(&pk, m, payload, v_size, type_size);
    }
    return bad || payload > s->cap - s->len;
}

int ohm_wire_encode_header(const ohm_wire_msg_t *m, uint8_t *buf, size_t cap, size_t *off)
{
    assert(m && buf && off);
    if (m->count > OHM_WIRE_MAX_COUNT)
        return ohm_error_set(OHM_ETOOBIG, "wire encode: n=%u over the limit %u", m->count,
                             (unsigned)OHM_WIRE_MAX_COUNT);
    size_t payload = ohm_payload_size(m->kind, m->count, m->entries);
    if (payload == SIZE_MAX)
        return ohm_error_set(OHM_EINVAL, "wire encode: no payload of kind %u with n=%u, m=%u",
                             m->kind, m->count, m->entries);
    sink_t s = {buf, cap, 0};
    if (header_into(m, payload, &s))
        return ohm_error_set(OHM_ETOOBIG,
                             "wire encode: message with a payload of %zu bytes does not fit %zu",
                             payload, cap);
    *off = s.len;
    return OHM_OK;
}

int ohm_wire_encode(const ohm_wire_msg_t *m, const float *params, uint8_t *buf, size_t cap,
                    size_t *len)
{
    assert(m && buf && len && m->kind == OHM_KIND_F32);
    assert(m->count == 0 || params);
    if (m->count > OHM_WIRE_MAX_COUNT)
        return ohm_error_set(OHM_ETOOBIG, "wire encode: n=%u over the limit %u", m->count,
                             (unsigned)OHM_WIRE_MAX_COUNT);
    sink_t s = {buf, cap, 0};
    int bad = header_into(m, 4 * (size_t)m->count, &s);
    if (!bad) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &s, sink_write);
        bad = pack_params(&pk, params, m->count);
    }
    if (bad)
        return ohm_error_set(OHM_ETOOBIG, "wire encode: message with n=%u does not fit %zu bytes",
                             m->count, cap);
    *len = s.len;
    return OHM_OK;
}

/* ---------------------------------------------------------------- decode */

typedef struct {
    const uint8_t *p, *end;
} cur_t;

enum { K_V, K_TYPE, K_RUN, K_FROM, K_ROUND, K_FP, K_N, K_K, K_B, K_M, K_P, K_COUNT };
static const char *const key_names[K_COUNT] = {"v", "type", "run", "from", "round", "fp",
                                               "n", "k",    "b",   "m",    "p"};

static size_t left(const cur_t *c)
{
    return (size_t)(c->end - c->p);
}

static uint64_t load_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Names a msgpack type byte for error details. */
static const char *type_name(uint8_t b)
{
    if (b <= 0x7f || (b >= 0xcc && b <= 0xcf)) return "unsigned int";
    if (b >= 0xe0 || (b >= 0xd0 && b <= 0xd3)) return "int";
    if (b <= 0x8f || b == 0xde || b == 0xdf) return "map";
    if (b <= 0x9f || b == 0xdc || b == 0xdd) return "array";
    if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb)) return "string";
    switch (b) {
    case 0xc0:
        return "nil";
    case 0xc2:
    case 0xc3:
        return "bool";
    case 0xc4:
    case 0xc5:
    case 0xc6:
        return "bin";
    case 0xca:
    case 0xcb:
        return "float";
    case 0xc1:
        return "reserved byte 0xc1";
    default:
        return "ext";
    }
}

/* Reads `n` bytes of a header or body; ETRUNC names what was being read. */
static int take(cur_t *c, size_t n, const char *what, const uint8_t **out)
{
    if (n > left(c))
        return ohm_error_set(OHM_ETRUNC, "wire: %s: needs %zu bytes, %zu left", what, n, left(c));
    *out = c->p;
    c->p += n;
    return OHM_OK;
}

/* Reads an unsigned integer of any msgpack width into *v; a negative value,
 * a float or any non-integer is a type error naming `field`. */
static int read_uint(cur_t *c, const char *field, uint64_t *v)
{
    const uint8_t *h = NULL;
    int rc = take(c, 1, field, &h);
    if (rc) return rc;
    uint8_t b = h[0];
    if (b <= 0x7f) {
        *v = b;
        return OHM_OK;
    }
    int width = 0, is_signed = 0;
    switch (b) {
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        width = 1 << (b - 0xcc);
        break;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3:
        width = 1 << (b - 0xd0);
        is_signed = 1;
        break;
    default:
        if (b >= 0xe0)
            return ohm_error_set(OHM_EFORMAT, "wire: %s: negative integer %d", field,
                                 (int)(int8_t)b);
        return ohm_error_set(OHM_EFORMAT, "wire: %s: %s where an unsigned integer is expected",
                             field, type_name(b));
    }
    const uint8_t *body = NULL;
    if ((rc = take(c, (size_t)width, field, &body))) return rc;
    uint64_t x = load_be(body, width);
    if (is_signed && (body[0] & 0x80))
        return ohm_error_set(OHM_EFORMAT, "wire: %s: negative integer", field);
    *v = x;
    return OHM_OK;
}

/* Reads a string key; its bytes alias the input. */
static int read_key(cur_t *c, const uint8_t **s, size_t *n)
{
    const uint8_t *h = NULL, *lenb = NULL;
    int rc = take(c, 1, "key", &h);
    if (rc) return rc;
    uint8_t b = h[0];
    if (b >= 0xa0 && b <= 0xbf) {
        *n = b & 0x1f;
    } else if (b >= 0xd9 && b <= 0xdb) {
        int width = 1 << (b - 0xd9);
        if ((rc = take(c, (size_t)width, "key length", &lenb))) return rc;
        *n = (size_t)load_be(lenb, width);
    } else {
        return ohm_error_set(OHM_EFORMAT, "wire: map key is a %s, not a string", type_name(b));
    }
    return take(c, *n, "key", s);
}

/* Reads a bin header and body; the body aliases the input. */
static int read_bin(cur_t *c, const char *field, const uint8_t **body, size_t *n)
{
    const uint8_t *h = NULL, *lenb = NULL;
    int rc = take(c, 1, field, &h);
    if (rc) return rc;
    uint8_t b = h[0];
    if (b < 0xc4 || b > 0xc6)
        return ohm_error_set(OHM_EFORMAT, "wire: %s: %s where bin is expected", field,
                             type_name(b));
    int width = 1 << (b - 0xc4);
    if ((rc = take(c, (size_t)width, field, &lenb))) return rc;
    *n = (size_t)load_be(lenb, width);
    return take(c, *n, field, body);
}

/* Writes at most 24 printable characters of an untrusted key for a detail. */
static void printable(const uint8_t *s, size_t n, char out[32])
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < 24; i++)
        out[k++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? (char)s[i] : '?';
    if (n > 24) out[k++] = '.', out[k++] = '.', out[k++] = '.';
    out[k] = 0;
}

static int match_key(const uint8_t *s, size_t n)
{
    for (int k = 0; k < K_COUNT; k++)
        if (strlen(key_names[k]) == n && memcmp(key_names[k], s, n) == 0) return k;
    return -1;
}

static int read_map_header(cur_t *c, uint32_t *n)
{
    const uint8_t *h = NULL, *lenb = NULL;
    int rc = take(c, 1, "message", &h);
    if (rc) return rc;
    uint8_t b = h[0];
    if (b >= 0x80 && b <= 0x8f) {
        *n = b & 0x0f;
        return OHM_OK;
    }
    if (b != 0xde && b != 0xdf)
        return ohm_error_set(OHM_EFORMAT, "wire: message is a %s, not a map", type_name(b));
    int width = b == 0xde ? 2 : 4;
    if ((rc = take(c, (size_t)width, "map length", &lenb))) return rc;
    *n = (uint32_t)load_be(lenb, width);
    return OHM_OK;
}

int ohm_wire_decode(const uint8_t *buf, size_t len, const ohm_wire_expect_t *e, ohm_wire_msg_t *m)
{
    assert(e && m && (buf || len == 0));
    cur_t c = {buf, buf + len};
    uint32_t entries = 0;
    int rc = read_map_header(&c, &entries);
    if (rc) return rc;
    if (entries > OHM_WIRE_MAX_KEYS)
        return ohm_error_set(OHM_EFORMAT, "wire: map of %u entries (at most %d)", entries,
                             OHM_WIRE_MAX_KEYS);
    uint64_t val[K_COUNT] = {0};
    const uint8_t *payload = NULL;
    size_t payload_len = 0;
    unsigned seen = 0;
    for (uint32_t i = 0; i < entries; i++) {
        const uint8_t *ks = NULL;
        size_t kn = 0;
        if ((rc = read_key(&c, &ks, &kn))) return rc;
        int k = match_key(ks, kn);
        if (k < 0) {
            char name[32];
            printable(ks, kn, name);
            return ohm_error_set(OHM_EFORMAT, "wire: unknown key \"%s\"", name);
        }
        if (seen & (1u << k))
            return ohm_error_set(OHM_EFORMAT, "wire: duplicate key \"%s\"", key_names[k]);
        seen |= 1u << k;
        rc = k == K_P ? read_bin(&c, "p", &payload, &payload_len)
                      : read_uint(&c, key_names[k], &val[k]);
        if (rc) return rc;
    }
    if (c.p != c.end)
        return ohm_error_set(OHM_EFORMAT, "wire: %zu trailing bytes after the map", left(&c));
    for (int k = 0; k < K_COUNT; k++)
        if (!(seen & (1u << k)))
            return ohm_error_set(OHM_EFORMAT, "wire: missing key \"%s\"", key_names[k]);

    /* The structure is sound; now the meaning, in the documented order. */
    if (val[K_N] > OHM_WIRE_MAX_COUNT)
        return ohm_error_set(OHM_ETOOBIG, "wire: n=%llu over the limit %u",
                             (unsigned long long)val[K_N], (unsigned)OHM_WIRE_MAX_COUNT);
    if (val[K_K] >= OHM_KIND_COUNT)
        return ohm_error_set(OHM_ERANGE, "wire: unknown kind %llu", (unsigned long long)val[K_K]);
    size_t want_len = ohm_payload_size((uint32_t)val[K_K], val[K_N], val[K_M]);
    if (want_len == SIZE_MAX)
        return ohm_error_set(OHM_ERANGE, "wire: m=%llu with n=%llu for kind %s",
                             (unsigned long long)val[K_M], (unsigned long long)val[K_N],
                             ohm_kind_name((ohm_kind_t)val[K_K]));
    if (payload_len != want_len)
        return ohm_error_set(OHM_EFORMAT, "wire: p holds %zu bytes, kind %s with n=%llu needs %zu",
                             payload_len, ohm_kind_name((ohm_kind_t)val[K_K]),
                             (unsigned long long)val[K_N], want_len);
    if (val[K_V] != OHM_WIRE_VERSION)
        return ohm_error_set(OHM_EUNSUPPORTED, "wire: v=%llu, this build speaks v=%d",
                             (unsigned long long)val[K_V], OHM_WIRE_VERSION);
    uint64_t type = val[K_TYPE];
    if (type < OHM_MSG_HELLO || type > OHM_MSG_SYNC)
        return ohm_error_set(OHM_ERANGE, "wire: unknown type %llu", (unsigned long long)type);
    if (val[K_ROUND] > UINT32_MAX || val[K_B] > UINT32_MAX)
        return ohm_error_set(OHM_ERANGE, "wire: round=%llu or b=%llu over 32 bits",
                             (unsigned long long)val[K_ROUND], (unsigned long long)val[K_B]);
    if (val[K_RUN] != e->run)
        return ohm_error_set(OHM_ESTALE, "wire: run=%llu, expected %llu",
                             (unsigned long long)val[K_RUN], (unsigned long long)e->run);
    if (val[K_FP] != e->fp)
        return ohm_error_set(OHM_ESHAPE, "wire: fp=%016llx, expected %016llx",
                             (unsigned long long)val[K_FP], (unsigned long long)e->fp);
    if (val[K_FROM] >= e->max_from)
        return ohm_error_set(OHM_ERANGE, "wire: from=%llu, peer ids are < %u",
                             (unsigned long long)val[K_FROM], e->max_from);
    uint64_t want = type == OHM_MSG_MODEL ? e->count : 0;
    if (val[K_N] != want)
        return ohm_error_set(OHM_ESHAPE, "wire: n=%llu, expected %llu for type %llu",
                             (unsigned long long)val[K_N], (unsigned long long)want,
                             (unsigned long long)type);
    ohm_kind_t kind = (ohm_kind_t)val[K_K];
    if (type != OHM_MSG_MODEL && (kind != OHM_KIND_F32 || val[K_B] != 0))
        return ohm_error_set(OHM_ERANGE, "wire: a message of type %llu with kind %s and b=%llu",
                             (unsigned long long)type, ohm_kind_name(kind),
                             (unsigned long long)val[K_B]);
    /* A model's payload is the public copy of version b <= round, or refers
     * to the copy of an earlier version b < round. */
    int refers = kind != OHM_KIND_F32;
    if (type == OHM_MSG_MODEL && (refers ? val[K_B] >= val[K_ROUND] : val[K_B] > val[K_ROUND]))
        return ohm_error_set(OHM_ERANGE, "wire: kind %s with b=%llu in round %llu",
                             ohm_kind_name(kind), (unsigned long long)val[K_B],
                             (unsigned long long)val[K_ROUND]);
    rc = ohm_payload_check_structure(kind, (uint32_t)val[K_N], (uint32_t)val[K_M], payload);
    if (rc) return rc;
    *m = (ohm_wire_msg_t){.version = (uint32_t)val[K_V],
                          .type = (uint32_t)type,
                          .run = val[K_RUN],
                          .from = (uint32_t)val[K_FROM],
                          .round = (uint32_t)val[K_ROUND],
                          .fp = val[K_FP],
                          .count = (uint32_t)val[K_N],
                          .kind = (uint32_t)kind,
                          .base = (uint32_t)val[K_B],
                          .entries = (uint32_t)val[K_M],
                          .params = payload,
                          .len = payload_len};
    return OHM_OK;
}

/* ---------------------------------------------------------------- params */

/* Blocks keep the rare search for the first bad index local. */
#define READ_BLOCK 4096

/* The copy is memory-bound; 32-byte vectors, where the CPU has them, bring it
 * to about memcpy speed (chosen once at load time). Not with clang, whose
 * target_clones leaves the public symbol undefined in some versions. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define READ_PARAMS_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define READ_PARAMS_CLONES
#endif

READ_PARAMS_CLONES
int ohm_wire_read_params(const ohm_wire_msg_t *m, float *dst)
{
    assert(m && (dst || m->count == 0) && m->kind == OHM_KIND_F32);
    const uint8_t *src = m->params;
    size_t n = m->count;
    size_t first_bad = SIZE_MAX;
    for (size_t i = 0; i < n; i += READ_BLOCK) {
        size_t k = n - i < READ_BLOCK ? n - i : READ_BLOCK;
        /* Load, check, store in one pass. The exponent field is all ones
         * exactly for NaN and Inf; adding one to it then carries into bit 31.
         * Branch-free and through fixed-size memcpy, so it vectorizes with
         * unaligned loads. */
        uint32_t acc = 0;
        const uint8_t *s = src + 4 * i;
        float *d = dst + i;
        for (size_t j = 0; j < k; j++) {
            uint32_t b;
            memcpy(&b, s + 4 * j, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            b = __builtin_bswap32(b);
#endif
            acc |= (b & 0x7f800000u) + 0x00800000u;
            memcpy(d + j, &b, 4);
        }
        if ((acc & 0x80000000u) && first_bad == SIZE_MAX) {
            for (size_t j = 0; j < k && first_bad == SIZE_MAX; j++) {
                uint32_t b;
                memcpy(&b, d + j, 4);
                if ((b & 0x7f800000u) == 0x7f800000u) first_bad = i + j;
            }
        }
    }
    if (first_bad != SIZE_MAX)
        return ohm_error_set(OHM_ENONFINITE, "wire: p[%zu] from peer %u is not finite", first_bad,
                             m->from);
    return OHM_OK;
}

/* Index of the first value that is not finite in the n little-endian float32
 * at src (any alignment), or SIZE_MAX. Same bit test as read_params, without
 * the store. The search for the index is written out here and there: a shared
 * helper cost both loops their vectorized form (read_params fell from 0.9 to
 * 0.62 of memcpy). */
static READ_PARAMS_CLONES size_t first_nonfinite(const uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i += READ_BLOCK) {
        size_t k = n - i < READ_BLOCK ? n - i : READ_BLOCK;
        uint32_t acc = 0;
        for (size_t j = 0; j < k; j++) {
            uint32_t b;
            memcpy(&b, src + 4 * (i + j), 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            b = __builtin_bswap32(b);
#endif
            acc |= (b & 0x7f800000u) + 0x00800000u;
        }
        if (acc & 0x80000000u)
            for (size_t j = 0; j < k; j++) {
                uint32_t b;
                memcpy(&b, src + 4 * (i + j), 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
                b = __builtin_bswap32(b);
#endif
                if ((b & 0x7f800000u) == 0x7f800000u) return i + j;
            }
    }
    return SIZE_MAX;
}

int ohm_wire_check_params(const ohm_wire_msg_t *m)
{
    assert(m && (m->params || m->len == 0));
    if (m->kind != OHM_KIND_F32)
        return ohm_payload_check_values((ohm_kind_t)m->kind, m->count, m->entries, m->params);
    size_t bad = first_nonfinite(m->params, m->count);
    if (bad != SIZE_MAX)
        return ohm_error_set(OHM_ENONFINITE, "wire: p[%zu] from peer %u is not finite", bad,
                             m->from);
    return OHM_OK;
}

const float *ohm_wire_params_in_place(const ohm_wire_msg_t *m)
{
    assert(m);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return NULL;
#else
    if (m->kind != OHM_KIND_F32 || ((uintptr_t)m->params % _Alignof(float)) != 0) return NULL;
    /* The payload is a float array here: aligned, host order, nothing but its bytes. */
    return (const float *)(const void *)m->params;
#endif
}

int ohm_wire_view_params(const ohm_wire_msg_t *m, float *scratch, const float **out)
{
    assert(m && out && (scratch || m->count == 0) && m->kind == OHM_KIND_F32);
    const float *src = ohm_wire_params_in_place(m);
    if (!src) {
        *out = scratch;
        return ohm_wire_read_params(m, scratch);
    }
    *out = src;
    return ohm_wire_check_params(m);
}
