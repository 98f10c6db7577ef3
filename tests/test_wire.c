/* test_wire: encoding round trips, and a decoder that rejects every malformed,
 * truncated, hostile or mismatched message with its documented code. */
#include "ohm_compress.h"
#include "ohm_error.h"
#include "ohm_payload.h"
#include "ohm_wire.h"

#include <criterion/criterion.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

static const ohm_wire_expect_t EXP = {.run = 42, .fp = 0xfeedULL << 40, .count = 4, .max_from = 8};
static const float PARAMS[4] = {0.5f, -1.25f, 3e-8f, 1e30f};

/* ---- a tiny msgpack builder, so tests control every byte ---- */
typedef struct {
    uint8_t b[1024];
    size_t n;
} mb_t;

static void put(mb_t *m, const void *p, size_t n)
{
    cr_assert(m->n + n <= sizeof m->b);
    memcpy(m->b + m->n, p, n);
    m->n += n;
}
static void byte(mb_t *m, uint8_t x)
{
    put(m, &x, 1);
}
static void be(mb_t *m, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--)
        byte(m, (uint8_t)(v >> (8 * i)));
}
static void fixmap(mb_t *m, unsigned n)
{
    byte(m, (uint8_t)(0x80 | n));
}
static void key(mb_t *m, const char *k)
{
    byte(m, (uint8_t)(0xa0 | strlen(k)));
    put(m, k, strlen(k));
}
/* Unsigned int at an explicit width: 0 = positive fixint, else 1, 2, 4, 8 bytes. */
static void uintw(mb_t *m, uint64_t v, int width)
{
    if (width == 0) {
        byte(m, (uint8_t)v);
        return;
    }
    byte(m, (uint8_t)(0xcc + __builtin_ctz((unsigned)width)));
    be(m, v, width);
}
static void sintw(mb_t *m, int64_t v, int width)
{
    byte(m, (uint8_t)(0xd0 + __builtin_ctz((unsigned)width)));
    be(m, (uint64_t)v, width);
}
static void bin(mb_t *m, const void *p, size_t n)
{
    byte(m, 0xc6);
    be(m, n, 4);
    put(m, p, n);
}
static int listed(const char *list, const char *k)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, ",%s,", list);
    char pat[16];
    snprintf(pat, sizeof pat, ",%s,", k);
    return strstr(tmp, pat) != NULL;
}
/* The eleven fields of a valid model message (wide ints, any order the caller
 * builds), leaving out those named in `except` ("run,fp"). */
static void fields(mb_t *m, const char *except)
{
    if (!listed(except, "v")) key(m, "v"), uintw(m, OHM_WIRE_VERSION, 8);
    if (!listed(except, "type")) key(m, "type"), uintw(m, OHM_MSG_MODEL, 2);
    if (!listed(except, "run")) key(m, "run"), uintw(m, EXP.run, 4);
    if (!listed(except, "from")) key(m, "from"), sintw(m, 3, 1);
    if (!listed(except, "round")) key(m, "round"), uintw(m, 7, 1);
    if (!listed(except, "fp")) key(m, "fp"), uintw(m, EXP.fp, 8);
    if (!listed(except, "n")) key(m, "n"), uintw(m, 4, 0);
    if (!listed(except, "k")) key(m, "k"), uintw(m, OHM_KIND_F32, 0);
    if (!listed(except, "b")) key(m, "b"), uintw(m, 7, 2);
    if (!listed(except, "m")) key(m, "m"), uintw(m, 0, 1);
    if (!listed(except, "p")) key(m, "p"), bin(m, PARAMS, sizeof PARAMS);
}

static int decode(const mb_t *m, ohm_wire_msg_t *out)
{
    ohm_wire_msg_t tmp;
    return ohm_wire_decode(m->b, m->n, &EXP, out ? out : &tmp);
}

#define EXPECT_ERR(m, code, field)                                                                 \
    do {                                                                                           \
        int rc_ = decode(m, NULL);                                                                 \
        cr_expect_eq(rc_, code, "got %s (%s), expected %s", ohm_strerror(rc_), ohm_error_detail(), \
                     ohm_strerror(code));                                                          \
        cr_expect(strstr(ohm_error_detail(), field) != NULL, "detail '%s' does not name '%s'",     \
                  ohm_error_detail(), field);                                                      \
    } while (0)

static size_t encode(uint32_t type, uint32_t count, const float *p, uint8_t *buf, size_t cap)
{
    ohm_wire_msg_t m = {.version = OHM_WIRE_VERSION,
                        .type = type,
                        .run = EXP.run,
                        .from = 5,
                        .round = 123456,
                        .fp = EXP.fp,
                        .count = count,
                        .base = type == OHM_MSG_MODEL ? 123456 : 0};
    size_t len = 0;
    cr_assert_eq(ohm_wire_encode(&m, p, buf, cap, &len), OHM_OK, "%s", ohm_error_detail());
    cr_assert(len <= ohm_wire_max_size(count));
    return len;
}

Test(wire, round_trip_all_types)
{
    uint8_t buf[256];
    size_t len = encode(OHM_MSG_MODEL, 4, PARAMS, buf, sizeof buf);
    ohm_wire_msg_t m;
    cr_assert_eq(ohm_wire_decode(buf, len, &EXP, &m), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(m.version, OHM_WIRE_VERSION);
    cr_expect_eq(m.type, OHM_MSG_MODEL);
    cr_expect_eq(m.run, EXP.run);
    cr_expect_eq(m.from, 5);
    cr_expect_eq(m.round, 123456);
    cr_expect_eq(m.fp, EXP.fp);
    cr_expect_eq(m.count, 4);
    cr_expect(m.params >= buf && m.params + 16 <= buf + len, "params alias the input");
    float out[4];
    cr_assert_eq(ohm_wire_read_params(&m, out), OHM_OK);
    cr_expect_arr_eq(out, PARAMS, sizeof PARAMS);

    uint32_t types[] = {OHM_MSG_HELLO, OHM_MSG_BYE, OHM_MSG_SYNC};
    for (int i = 0; i < 3; i++) {
        len = encode(types[i], 0, NULL, buf, sizeof buf);
        cr_assert_eq(ohm_wire_decode(buf, len, &EXP, &m), OHM_OK, "%s", ohm_error_detail());
        cr_expect_eq(m.type, types[i]);
        cr_expect_eq(m.count, 0);
        cr_expect_eq(m.round, 123456);
        cr_expect_eq(ohm_wire_read_params(&m, NULL), OHM_OK);
    }
}

Test(wire, wide_ints_and_any_key_order_accepted)
{
    mb_t m = {0};
    fixmap(&m, 11);
    key(&m, "p"), bin(&m, PARAMS, sizeof PARAMS);
    key(&m, "n"), sintw(&m, 4, 8);
    fields(&m, "p,n");
    ohm_wire_msg_t out;
    cr_assert_eq(decode(&m, &out), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(out.from, 3);
    cr_expect_eq(out.round, 7);
    cr_expect_eq(out.count, 4);
    /* map16 header and str8 keys are valid msgpack too */
    mb_t w = {0};
    byte(&w, 0xde), be(&w, 11, 2);
    fields(&w, "v");
    byte(&w, 0xd9), byte(&w, 1), byte(&w, 'v'), uintw(&w, OHM_WIRE_VERSION, 0);
    cr_expect_eq(decode(&w, NULL), OHM_OK, "%s", ohm_error_detail());
}

Test(wire, every_prefix_is_truncated)
{
    uint8_t buf[256];
    size_t len = encode(OHM_MSG_MODEL, 4, PARAMS, buf, sizeof buf);
    for (size_t k = 0; k < len; k++) {
        /* a fresh heap copy of exactly k bytes, so ASan sees any over-read */
        uint8_t *p = malloc(k ? k : 1);
        memcpy(p, buf, k);
        ohm_wire_msg_t m;
        int rc = ohm_wire_decode(p, k, &EXP, &m);
        cr_expect_eq(rc, OHM_ETRUNC, "prefix %zu/%zu: %s (%s)", k, len, ohm_strerror(rc),
                     ohm_error_detail());
        free(p);
    }
    mb_t wide = {0};
    fixmap(&wide, 11);
    fields(&wide, "");
    for (size_t k = 0; k < wide.n; k++) {
        ohm_wire_msg_t m;
        cr_expect_eq(ohm_wire_decode(wide.b, k, &EXP, &m), OHM_ETRUNC, "wide prefix %zu", k);
    }
}

Test(wire, hostile_declared_sizes)
{
    /* map32 declaring 2^32-1 entries in a 10-byte message */
    mb_t m = {0};
    byte(&m, 0xdf), be(&m, 0xffffffffu, 4), key(&m, "v"), uintw(&m, 1, 0), byte(&m, 0);
    byte(&m, 0);
    cr_assert_eq(m.n, 10);
    EXPECT_ERR(&m, OHM_EFORMAT, "map");
    /* bin32 of 2^32-1 bytes for p */
    mb_t b = {0};
    fixmap(&b, 11), fields(&b, "p"), key(&b, "p"), byte(&b, 0xc6), be(&b, 0xffffffffu, 4);
    put(&b, "abcd", 4);
    EXPECT_ERR(&b, OHM_ETRUNC, "p");
    /* str32 key of 2^32-1 bytes */
    mb_t s = {0};
    fixmap(&s, 11), byte(&s, 0xdb), be(&s, 0xffffffffu, 4), put(&s, "vvvv", 4);
    EXPECT_ERR(&s, OHM_ETRUNC, "key");
    /* array16 of 65535 elements, at the top and as a value */
    mb_t a = {0};
    byte(&a, 0xdc), be(&a, 65535, 2), byte(&a, 1), byte(&a, 2);
    EXPECT_ERR(&a, OHM_EFORMAT, "array");
    mb_t av = {0};
    fixmap(&av, 11), fields(&av, "round"), key(&av, "round"), byte(&av, 0xdc), be(&av, 65535, 2);
    EXPECT_ERR(&av, OHM_EFORMAT, "round");
    /* a 17-entry fixmap is impossible, so map16 with 17 */
    mb_t big = {0};
    byte(&big, 0xde), be(&big, 17, 2), fields(&big, "");
    EXPECT_ERR(&big, OHM_EFORMAT, "17");
}

Test(wire, mistyped_fields)
{
    mb_t s = {0};
    fixmap(&s, 11), fields(&s, "run"), key(&s, "run"), byte(&s, 0xa2), put(&s, "42", 2);
    EXPECT_ERR(&s, OHM_EFORMAT, "run");
    mb_t f = {0};
    fixmap(&f, 11), fields(&f, "round"), key(&f, "round"), byte(&f, 0xca), be(&f, 0x40e00000, 4);
    EXPECT_ERR(&f, OHM_EFORMAT, "round");
    mb_t neg = {0};
    fixmap(&neg, 11), fields(&neg, "from"), key(&neg, "from"), byte(&neg, 0xff);
    EXPECT_ERR(&neg, OHM_EFORMAT, "from");
    mb_t neg64 = {0};
    fixmap(&neg64, 11), fields(&neg64, "from"), key(&neg64, "from"), sintw(&neg64, -3, 8);
    EXPECT_ERR(&neg64, OHM_EFORMAT, "from");
    mb_t nest = {0};
    fixmap(&nest, 11), fields(&nest, "fp"), key(&nest, "fp"), fixmap(&nest, 1), key(&nest, "x");
    uintw(&nest, 1, 0);
    EXPECT_ERR(&nest, OHM_EFORMAT, "fp");
    mb_t pstr = {0};
    fixmap(&pstr, 11), fields(&pstr, "p"), key(&pstr, "p"), byte(&pstr, 0xd9), byte(&pstr, 16);
    put(&pstr, PARAMS, 16);
    EXPECT_ERR(&pstr, OHM_EFORMAT, "p");
    mb_t nil = {0};
    fixmap(&nil, 11), fields(&nil, "v"), key(&nil, "v"), byte(&nil, 0xc0);
    EXPECT_ERR(&nil, OHM_EFORMAT, "v");
    mb_t intkey = {0};
    fixmap(&intkey, 11), uintw(&intkey, 1, 0), uintw(&intkey, 1, 0);
    EXPECT_ERR(&intkey, OHM_EFORMAT, "key");
    mb_t notmap = {0};
    uintw(&notmap, 1, 0);
    EXPECT_ERR(&notmap, OHM_EFORMAT, "not a map");
}

Test(wire, duplicate_unknown_missing_keys)
{
    mb_t d = {0};
    fixmap(&d, 12), fields(&d, ""), key(&d, "round"), uintw(&d, 8, 0);
    EXPECT_ERR(&d, OHM_EFORMAT, "duplicate key \"round\"");
    mb_t u = {0};
    fixmap(&u, 12), fields(&u, ""), key(&u, "xtra"), uintw(&u, 8, 0);
    EXPECT_ERR(&u, OHM_EFORMAT, "unknown key \"xtra\"");
    mb_t miss = {0};
    fixmap(&miss, 10), fields(&miss, "fp");
    EXPECT_ERR(&miss, OHM_EFORMAT, "missing key \"fp\"");
    /* a key that only starts like a known one */
    mb_t pre = {0};
    fixmap(&pre, 12), fields(&pre, ""), key(&pre, "ro"), uintw(&pre, 8, 0);
    EXPECT_ERR(&pre, OHM_EFORMAT, "unknown key \"ro\"");
}

/* A valid model message except for one field replaced by an unsigned value. */
static void with_uint(mb_t *m, const char *k, uint64_t v)
{
    *m = (mb_t){0};
    fixmap(m, 11);
    fields(m, k);
    key(m, k);
    uintw(m, v, 8);
}

Test(wire, mismatched_values)
{
    mb_t m;
    with_uint(&m, "v", 1);
    EXPECT_ERR(&m, OHM_EUNSUPPORTED, "v=1");
    with_uint(&m, "run", 43);
    EXPECT_ERR(&m, OHM_ESTALE, "run");
    with_uint(&m, "fp", EXP.fp + 1);
    EXPECT_ERR(&m, OHM_ESHAPE, "fp");
    with_uint(&m, "from", 8);
    EXPECT_ERR(&m, OHM_ERANGE, "from");
    with_uint(&m, "from", 1ULL << 40);
    EXPECT_ERR(&m, OHM_ERANGE, "from");
    with_uint(&m, "type", 5);
    EXPECT_ERR(&m, OHM_ERANGE, "type");
    with_uint(&m, "type", 0);
    EXPECT_ERR(&m, OHM_ERANGE, "type");
    with_uint(&m, "round", 1ULL << 32);
    EXPECT_ERR(&m, OHM_ERANGE, "round");
    with_uint(&m, "n", 5);
    EXPECT_ERR(&m, OHM_EFORMAT, "p holds"); /* 16 bytes cannot be 5 floats */
    with_uint(&m, "n", 1ULL << 31);
    EXPECT_ERR(&m, OHM_ETOOBIG, "n=");

    /* n consistent with p but not what the receiver expects */
    mb_t c = {0};
    float five[5] = {0};
    fixmap(&c, 11), fields(&c, "n,p"), key(&c, "n"), uintw(&c, 5, 0), key(&c, "p");
    bin(&c, five, sizeof five);
    EXPECT_ERR(&c, OHM_ESHAPE, "n=5");
    /* hello carrying parameters */
    mb_t h = {0};
    fixmap(&h, 11), fields(&h, "type"), key(&h, "type"), uintw(&h, OHM_MSG_HELLO, 0);
    EXPECT_ERR(&h, OHM_ESHAPE, "n=4");
    /* model without parameters */
    mb_t e = {0};
    fixmap(&e, 11), fields(&e, "n,p"), key(&e, "n"), uintw(&e, 0, 0), key(&e, "p"), bin(&e, "", 0);
    EXPECT_ERR(&e, OHM_ESHAPE, "n=0");
}

Test(wire, trailing_bytes)
{
    uint8_t buf[256];
    size_t len = encode(OHM_MSG_MODEL, 4, PARAMS, buf, sizeof buf);
    buf[len] = 0xc0;
    ohm_wire_msg_t m;
    cr_expect_eq(ohm_wire_decode(buf, len + 1, &EXP, &m), OHM_EFORMAT);
    cr_expect(strstr(ohm_error_detail(), "trailing") != NULL, "%s", ohm_error_detail());
}

Test(wire, nonfinite_payload)
{
    float bad[4] = {1, NAN, 2, 3};
    float inf[4] = {1, 2, 3, -INFINITY};
    const float *cases[] = {bad, inf};
    size_t where[] = {1, 3};
    for (int c = 0; c < 2; c++) {
        uint8_t buf[256];
        size_t len = encode(OHM_MSG_MODEL, 4, cases[c], buf, sizeof buf);
        ohm_wire_msg_t m;
        cr_assert_eq(ohm_wire_decode(buf, len, &EXP, &m), OHM_OK);
        float out[4];
        cr_expect_eq(ohm_wire_read_params(&m, out), OHM_ENONFINITE);
        char idx[16];
        snprintf(idx, sizeof idx, "p[%zu]", where[c]);
        cr_expect(strstr(ohm_error_detail(), idx) != NULL, "%s", ohm_error_detail());
        cr_expect_eq(out[0], 1.0f, "the copy is made anyway");
    }
    /* the largest finite values and subnormals are fine */
    float edge[4] = {3.4028235e38f, -3.4028235e38f, 1e-45f, -0.0f};
    uint8_t buf[256];
    size_t len = encode(OHM_MSG_MODEL, 4, edge, buf, sizeof buf);
    ohm_wire_msg_t m;
    cr_assert_eq(ohm_wire_decode(buf, len, &EXP, &m), OHM_OK);
    float out[4];
    cr_expect_eq(ohm_wire_read_params(&m, out), OHM_OK);
    cr_expect_arr_eq(out, edge, sizeof edge);
}

Test(wire, large_payload_crosses_blocks)
{
    uint32_t n = 10007; /* not a multiple of any block size */
    float *p = malloc(n * sizeof *p), *out = malloc(n * sizeof *out);
    for (uint32_t i = 0; i < n; i++)
        p[i] = (float)i * 0.25f - 100.0f;
    size_t cap = ohm_wire_max_size(n);
    uint8_t *buf = malloc(cap);
    size_t len = encode(OHM_MSG_MODEL, n, p, buf, cap);
    ohm_wire_expect_t e = EXP;
    e.count = n;
    ohm_wire_msg_t m;
    cr_assert_eq(ohm_wire_decode(buf, len, &e, &m), OHM_OK, "%s", ohm_error_detail());
    cr_assert_eq(ohm_wire_read_params(&m, out), OHM_OK);
    cr_expect_arr_eq(out, p, n * sizeof *p);
    p[n - 1] = NAN; /* in the last, partial block */
    len = encode(OHM_MSG_MODEL, n, p, buf, cap);
    cr_assert_eq(ohm_wire_decode(buf, len, &e, &m), OHM_OK);
    cr_expect_eq(ohm_wire_read_params(&m, out), OHM_ENONFINITE);
    cr_expect(strstr(ohm_error_detail(), "p[10006]") != NULL, "%s", ohm_error_detail());
    free(p), free(out), free(buf);
}

Test(wire, unaligned_input)
{
    uint8_t buf[256];
    size_t len = encode(OHM_MSG_MODEL, 4, PARAMS, buf, sizeof buf);
    for (size_t off = 1; off < 8; off++) {
        uint8_t *raw = malloc(len + off);
        memcpy(raw + off, buf, len);
        ohm_wire_msg_t m;
        cr_assert_eq(ohm_wire_decode(raw + off, len, &EXP, &m), OHM_OK);
        float out[4];
        cr_assert_eq(ohm_wire_read_params(&m, out), OHM_OK);
        cr_expect_arr_eq(out, PARAMS, sizeof PARAMS);
        free(raw);
    }
}

Test(wire, encode_refuses_small_buffers)
{
    uint8_t buf[256];
    ohm_wire_msg_t m = {
        .version = OHM_WIRE_VERSION, .type = OHM_MSG_MODEL, .run = 1 << 20, .count = 4};
    size_t len = 0;
    cr_assert_eq(ohm_wire_encode(&m, PARAMS, buf, sizeof buf, &len), OHM_OK);
    for (size_t cap = 0; cap < len; cap++) {
        uint8_t small[256];
        size_t got = 0;
        cr_expect_eq(ohm_wire_encode(&m, PARAMS, small, cap, &got), OHM_ETOOBIG, "cap %zu", cap);
    }
    cr_expect_eq(ohm_wire_encode(&m, PARAMS, buf, len, &len), OHM_OK, "exactly enough room");
    ohm_wire_msg_t huge = {
        .version = OHM_WIRE_VERSION, .type = OHM_MSG_MODEL, .count = OHM_WIRE_MAX_COUNT + 1};
    size_t got;
    cr_expect_eq(ohm_wire_encode(&huge, PARAMS, buf, sizeof buf, &got), OHM_ETOOBIG);
}

/* msgpack-c's own unpacker must read our encoding and agree on every field. */
Test(wire, interop_with_msgpack_c)
{
    uint8_t buf[256];
    size_t len = encode(OHM_MSG_MODEL, 4, PARAMS, buf, sizeof buf);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&u, (const char *)buf, len, &off), MSGPACK_UNPACK_SUCCESS);
    cr_expect_eq(off, len);
    msgpack_object o = u.data;
    cr_assert_eq(o.type, MSGPACK_OBJECT_MAP);
    cr_assert_eq(o.via.map.size, 11);
    int seen = 0;
    for (uint32_t i = 0; i < o.via.map.size; i++) {
        msgpack_object_kv *kv = &o.via.map.ptr[i];
        cr_assert_eq(kv->key.type, MSGPACK_OBJECT_STR);
        char k[8] = {0};
        memcpy(k, kv->key.via.str.ptr, kv->key.via.str.size < 7 ? kv->key.via.str.size : 7);
        if (strcmp(k, "p") == 0) {
            cr_assert_eq(kv->val.type, MSGPACK_OBJECT_BIN);
            cr_assert_eq(kv->val.via.bin.size, 16);
            const uint8_t *b = (const uint8_t *)kv->val.via.bin.ptr;
            for (int j = 0; j < 4; j++) {
                uint32_t bits = (uint32_t)b[4 * j] | (uint32_t)b[4 * j + 1] << 8 |
                                (uint32_t)b[4 * j + 2] << 16 | (uint32_t)b[4 * j + 3] << 24;
                float f;
                memcpy(&f, &bits, 4);
                cr_expect_eq(f, PARAMS[j], "p[%d] little-endian", j);
            }
            seen |= 1 << 10;
            continue;
        }
        cr_assert_eq(kv->val.type, MSGPACK_OBJECT_POSITIVE_INTEGER, "key %s", k);
        uint64_t v = kv->val.via.u64;
        static const char *names[] = {"v",  "type", "run", "from", "round",
                                      "fp", "n",    "k",   "b",    "m"};
        const uint64_t want[] = {OHM_WIRE_VERSION, OHM_MSG_MODEL, EXP.run, 5, 123456, EXP.fp, 4,
                                 OHM_KIND_F32,     123456,        0};
        int found = 0;
        for (int j = 0; j < 10; j++)
            if (strcmp(k, names[j]) == 0) {
                cr_expect_eq(v, want[j], "key %s", k);
                seen |= 1 << j;
                found = 1;
            }
        cr_expect(found, "unexpected key %s", k);
    }
    cr_expect_eq(seen, 0x7ff);
    msgpack_unpacked_destroy(&u);
}

/* Whatever the widths of the header's integers, the payload starts 4-byte
 * aligned from the message's start, and the message still decodes (also with
 * msgpack-c's own reader) to the same fields. */
Test(wire, payload_aligned_for_every_header_width)
{
    const uint64_t runs[] = {0, 42, 200, 70000, 1ull << 40};
    const uint32_t froms[] = {0, 5, 130, 300, 70000};
    const uint32_t rounds[] = {0, 127, 128, 65535, 65536, 123456};
    const uint32_t counts[] = {1, 4, 63, 64, 16384, 16385};
    const uint32_t versions[] = {OHM_WIRE_VERSION, 200, 300};
    int checked = 0;
    for (size_t a = 0; a < sizeof runs / sizeof *runs; a++)
        for (size_t b = 0; b < sizeof froms / sizeof *froms; b++)
            for (size_t c = 0; c < sizeof rounds / sizeof *rounds; c++)
                for (size_t d = 0; d < sizeof counts / sizeof *counts; d++)
                    for (size_t v = 0; v < sizeof versions / sizeof *versions; v++) {
                        uint32_t n = counts[d];
                        static float p[16385];
                        static uint8_t buf[16385 * 4 + 128];
                        ohm_wire_msg_t m = {.version = versions[v],
                                            .type = OHM_MSG_MODEL,
                                            .run = runs[a],
                                            .from = froms[b],
                                            .round = rounds[c],
                                            .fp = 7,
                                            .count = n};
                        size_t len = 0;
                        cr_assert_eq(ohm_wire_encode(&m, p, buf, ohm_wire_max_size(n), &len),
                                     OHM_OK);
                        cr_assert_eq((len - 4 * (size_t)n) % 4, 0,
                                     "payload at %zu (run %llu from %u round %u n %u v %u)",
                                     len - 4 * (size_t)n, (unsigned long long)runs[a], froms[b],
                                     rounds[c], n, versions[v]);
                        if (versions[v] != OHM_WIRE_VERSION) continue;
                        ohm_wire_expect_t e = {
                            .run = runs[a], .fp = 7, .count = n, .max_from = 1u << 20};
                        ohm_wire_msg_t got;
                        cr_assert_eq(ohm_wire_decode(buf, len, &e, &got), OHM_OK, "%s",
                                     ohm_error_detail());
                        cr_expect_eq(got.from, froms[b]);
                        cr_expect_eq(got.round, rounds[c]);
                        cr_expect_eq(got.params, buf + len - 4 * (size_t)n);
                        checked++;
                    }
    cr_expect_eq(checked, 5 * 5 * 6 * 6);
}

Test(wire, widened_header_reads_with_msgpack_c)
{
    /* The width of `from` shifts the header: find a message whose header
     * needed widening and check that msgpack-c reads the same values. */
    int widened = 0;
    for (uint32_t from = 0; from < 300 && !widened; from++) {
        uint8_t buf[256];
        ohm_wire_msg_t m = {.version = OHM_WIRE_VERSION,
                            .type = OHM_MSG_MODEL,
                            .run = 9,
                            .from = from,
                            .round = 3,
                            .fp = 7,
                            .count = 4};
        size_t len = 0;
        cr_assert_eq(ohm_wire_encode(&m, PARAMS, buf, sizeof buf, &len), OHM_OK);
        if (buf[3] == OHM_WIRE_VERSION) continue; /* "v" (after 0x8b 0xa1 'v'): a plain fixint */
        widened = 1;
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        cr_assert_eq(msgpack_unpack_next(&u, (const char *)buf, len, &off), MSGPACK_UNPACK_SUCCESS);
        cr_expect_eq(off, len);
        msgpack_object_kv *kv = u.data.via.map.ptr;
        cr_expect_eq(kv[0].val.via.u64, OHM_WIRE_VERSION, "v");
        cr_expect_eq(kv[1].val.via.u64, OHM_MSG_MODEL, "type");
        cr_expect_eq(kv[3].val.via.u64, from, "from");
        msgpack_unpacked_destroy(&u);
    }
    cr_expect(widened, "some header length needs padding");
}

/* view_params reads an aligned payload in place, copies a misaligned one into
 * the scratch buffer, and rejects NaN/Inf either way, naming the index. */
Test(wire, view_in_place_or_copied)
{
    float vals[4] = {0.5f, -1.25f, 3e-8f, 1e30f};
    for (int bad = 0; bad < 2; bad++) {
        if (bad) vals[2] = NAN;
        uint8_t src[256];
        size_t len = encode(OHM_MSG_MODEL, 4, vals, src, sizeof src);
        for (size_t off = 0; off < 8; off++) {
            uint8_t *raw = aligned_alloc(16, 512);
            memcpy(raw + off, src, len);
            ohm_wire_msg_t m;
            cr_assert_eq(ohm_wire_decode(raw + off, len, &EXP, &m), OHM_OK);
            float scratch[4] = {0};
            const float *v = NULL;
            int rc = ohm_wire_view_params(&m, scratch, &v);
            int aligned = (off % 4) == 0;
            cr_expect_eq(v == scratch, !aligned, "offset %zu: in place iff aligned", off);
            cr_expect_eq((const uint8_t *)v == m.params, aligned, "offset %zu", off);
            if (bad) {
                cr_expect_eq(rc, OHM_ENONFINITE, "offset %zu", off);
                cr_expect(strstr(ohm_error_detail(), "p[2]") != NULL, "%s", ohm_error_detail());
            } else {
                cr_expect_eq(rc, OHM_OK, "offset %zu", off);
                cr_expect_arr_eq(v, vals, sizeof vals);
            }
            free(raw);
        }
    }
}

Test(wire, view_large_payload_finds_last_nonfinite)
{
    uint32_t n = 10007;
    float *p = malloc(n * sizeof *p), *scratch = malloc(n * sizeof *scratch);
    for (uint32_t i = 0; i < n; i++)
        p[i] = (float)i - 5000.0f;
    size_t cap = ohm_wire_max_size(n);
    uint8_t *buf = malloc(cap);
    ohm_wire_expect_t e = EXP;
    e.count = n;
    for (int k = 0; k < 2; k++) {
        if (k) p[n - 1] = INFINITY;
        size_t len = encode(OHM_MSG_MODEL, n, p, buf, cap);
        ohm_wire_msg_t m;
        const float *v = NULL;
        cr_assert_eq(ohm_wire_decode(buf, len, &e, &m), OHM_OK);
        int rc = ohm_wire_view_params(&m, scratch, &v);
        cr_expect_neq(v, scratch, "malloc'ed buffer: read in place");
        if (k) {
            cr_expect_eq(rc, OHM_ENONFINITE);
            cr_expect(strstr(ohm_error_detail(), "p[10006]") != NULL, "%s", ohm_error_detail());
        } else {
            cr_expect_eq(rc, OHM_OK);
            cr_expect_arr_eq(v, p, n * sizeof *p);
        }
    }
    free(p), free(scratch), free(buf);
}

/* ---- payload kinds ------------------------------------------------------ */

/* Encodes a model of kind k (entries m, base b, round r) with payload pl of
 * the kind's size into buf; returns the length. */
static size_t encode_kind(uint32_t k, uint32_t n, uint32_t m, uint32_t b, uint32_t r,
                          const uint8_t *pl, uint8_t *buf, size_t cap)
{
    ohm_wire_msg_t msg = {.version = OHM_WIRE_VERSION,
                          .type = OHM_MSG_MODEL,
                          .run = EXP.run,
                          .from = 2,
                          .round = r,
                          .fp = EXP.fp,
                          .count = n,
                          .kind = k,
                          .base = b,
                          .entries = m};
    size_t off = 0, size = ohm_payload_size(k, n, m);
    cr_assert_eq(ohm_wire_encode_header(&msg, buf, cap, &off), OHM_OK, "%s", ohm_error_detail());
    cr_assert_leq(off + size, cap);
    if (size) memcpy(buf + off, pl, size);
    cr_assert_leq(off + size, ohm_wire_max_size(n), "max_size bounds every kind");
    return off + size;
}

Test(wire, every_kind_round_trips_and_applies)
{
    enum { N = 600 }; /* three q8 blocks, the last partial */
    float x[N], base[N];
    for (int i = 0; i < N; i++) {
        x[i] = 0.01f * (float)((i * 37) % 101 - 50);
        base[i] = 1.0f;
    }
    ohm_wire_expect_t e = EXP;
    e.count = N;
    for (int c = OHM_COMPRESS_F16; c < OHM_COMPRESS_COUNT; c++) {
        ohm_compress_t *z = NULL;
        cr_assert_eq(ohm_compress_new((ohm_compressor_t)c, 0.1, N, 1, 2, &z), OHM_OK);
        uint8_t pl[4 * N + 8];
        uint32_t m = 0;
        ohm_compress_encode(z, x, 9, pl, &m);
        static uint8_t buf[8 * N];
        size_t len =
            encode_kind(ohm_compress_kind((ohm_compressor_t)c), N, m, 8, 9, pl, buf, sizeof buf);
        /* every prefix is truncated */
        for (size_t k = 0; k < len; k += 7)
            cr_expect_eq(ohm_wire_decode(buf, k, &e, &(ohm_wire_msg_t){0}), OHM_ETRUNC);
        ohm_wire_msg_t got;
        cr_assert_eq(ohm_wire_decode(buf, len, &e, &got), OHM_OK, "%s: %s",
                     ohm_compress_name((ohm_compressor_t)c), ohm_error_detail());
        cr_expect_eq(got.kind, (uint32_t)ohm_compress_kind((ohm_compressor_t)c));
        cr_expect_eq(got.base, 8);
        cr_expect_eq(got.entries, m);
        cr_expect_eq(ohm_wire_check_params(&got), OHM_OK);
        cr_expect_null(ohm_wire_params_in_place(&got), "only f32 is read in place");
        float a[N], b[N];
        memcpy(a, base, sizeof a), memcpy(b, base, sizeof b);
        cr_expect_eq(ohm_payload_apply((ohm_kind_t)got.kind, N, got.entries, got.params, a),
                     OHM_OK);
        cr_expect_eq(ohm_payload_apply((ohm_kind_t)got.kind, N, m, pl, b), OHM_OK);
        cr_expect_arr_eq(a, b, sizeof a, "decoded bytes apply as the sender's");
        ohm_compress_destroy(&z);
    }
    /* same: an empty payload */
    static uint8_t buf[256];
    size_t len = encode_kind(OHM_KIND_SAME, N, 0, 3, 9, NULL, buf, sizeof buf);
    ohm_wire_msg_t got;
    cr_assert_eq(ohm_wire_decode(buf, len, &e, &got), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(got.kind, OHM_KIND_SAME);
    cr_expect_eq(got.len, 0);
    cr_expect_lt(len, 80, "unchanged is tiny (%zu bytes)", len);
}

/* q8z: m is the length of the deflated codes, checked against the bin like
 * every count; the stream itself is checked with the values. */
Test(wire, q8z_round_trips_and_its_length_is_checked)
{
    enum { N = 600 };
    float x[N], pub[N] = {0}, recv[N] = {0}, scratch[N];
    for (int i = 0; i < N; i++)
        x[i] = 0.01f * (float)((i * 37) % 101 - 50) * (float)((i * 13) % 7);
    ohm_compress_t *z = NULL;
    cr_assert_eq(ohm_compress_new(OHM_COMPRESS_Q8, 0.1, N, 1, 2, &z), OHM_OK);
    cr_assert_eq(ohm_compress_set_entropy(z, OHM_ENTROPY_DEFLATE), OHM_OK);
    ohm_compress_out_t out;
    cr_assert_eq(ohm_compress_step_packed(z, x, pub, scratch, 9, &out), OHM_OK);
    cr_assert_eq(out.kind, OHM_KIND_Q8Z);
    ohm_wire_expect_t e = EXP;
    e.count = N;
    static uint8_t buf[8 * N];
    size_t len = encode_kind(OHM_KIND_Q8Z, N, out.entries, 8, 9, out.bytes, buf, sizeof buf);
    ohm_wire_msg_t got;
    cr_assert_eq(ohm_wire_decode(buf, len, &e, &got), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(got.kind, OHM_KIND_Q8Z);
    cr_expect_eq(got.entries, out.entries);
    cr_assert_eq(ohm_wire_check_params(&got), OHM_OK, "%s", ohm_error_detail());
    cr_assert_eq(ohm_payload_apply(OHM_KIND_Q8Z, N, got.entries, got.params, recv), OHM_OK);
    cr_expect_arr_eq(recv, pub, sizeof pub, "the receiver's copy is the sender's");
    /* every prefix is truncated */
    for (size_t k = 0; k < len; k += 11)
        cr_expect_eq(ohm_wire_decode(buf, k, &e, &(ohm_wire_msg_t){0}), OHM_ETRUNC);
    /* m that lies about the stream: one byte more (after the stream's end) or
     * less (the stream cut short) decodes, and the check rejects it */
    uint8_t pl[4 * N + 8] = {0};
    memcpy(pl, out.bytes, out.len);
    for (int d = -1; d <= 1; d += 2) {
        len = encode_kind(OHM_KIND_Q8Z, N, (uint32_t)((int)out.entries + d), 8, 9, pl, buf,
                          sizeof buf);
        cr_assert_eq(ohm_wire_decode(buf, len, &e, &got), OHM_OK, "%s", ohm_error_detail());
        cr_expect_eq(ohm_wire_check_params(&got), OHM_EFORMAT, "m %+d", d);
    }
    /* no stream, or one not shorter than the codes: no such payload */
    cr_expect_eq(ohm_wire_encode_header(&(ohm_wire_msg_t){.version = OHM_WIRE_VERSION,
                                                          .type = OHM_MSG_MODEL,
                                                          .count = N,
                                                          .kind = OHM_KIND_Q8Z,
                                                          .entries = N},
                                        buf, sizeof buf, &(size_t){0}),
                 OHM_EINVAL);
    ohm_compress_destroy(&z);
}

/* A valid sparse message of n = 8 with the given entries (indices, then bf16 values). */
static void sparse_msg(mb_t *mb, uint32_t n_decl, const uint32_t *idx, const uint16_t *val, int m,
                       uint32_t m_decl)
{
    *mb = (mb_t){0};
    fixmap(mb, 11);
    fields(mb, "n,k,b,m,p");
    key(mb, "n"), uintw(mb, n_decl, 0);
    key(mb, "k"), uintw(mb, OHM_KIND_SPARSE, 0);
    key(mb, "b"), uintw(mb, 6, 0);
    key(mb, "m"), uintw(mb, m_decl, m_decl < 128 ? 0 : 4);
    uint8_t pl[256];
    for (int j = 0; j < m; j++) {
        pl[4 * j] = (uint8_t)idx[j], pl[4 * j + 1] = (uint8_t)(idx[j] >> 8);
        pl[4 * j + 2] = (uint8_t)(idx[j] >> 16), pl[4 * j + 3] = (uint8_t)(idx[j] >> 24);
        pl[4 * m + 2 * j] = (uint8_t)val[j], pl[4 * m + 2 * j + 1] = (uint8_t)(val[j] >> 8);
    }
    key(mb, "p"), bin(mb, pl, (size_t)6 * (size_t)m);
}

Test(wire, sparse_indices_are_checked)
{
    static const ohm_wire_expect_t e8 = {
        .run = 42, .fp = 0xfeedULL << 40, .count = 8, .max_from = 8};
    uint16_t one = ohm_bf16_from_float(1.0f), v[4] = {one, one, one, one};
    mb_t mb;
    ohm_wire_msg_t out;
    uint32_t good[4] = {0, 3, 5, 7};
    sparse_msg(&mb, 8, good, v, 4, 4);
    cr_expect_eq(ohm_wire_decode(mb.b, mb.n, &e8, &out), OHM_OK, "%s", ohm_error_detail());
    uint32_t dup[4] = {0, 3, 3, 7};
    sparse_msg(&mb, 8, dup, v, 4, 4);
    cr_expect_eq(ohm_wire_decode(mb.b, mb.n, &e8, &out), OHM_EFORMAT);
    cr_expect(strstr(ohm_error_detail(), "entry 2") != NULL, "%s", ohm_error_detail());
    uint32_t down[4] = {0, 5, 3, 7};
    sparse_msg(&mb, 8, down, v, 4, 4);
    cr_expect_eq(ohm_wire_decode(mb.b, mb.n, &e8, &out), OHM_EFORMAT);
    uint32_t past[4] = {0, 3, 5, 8};
    sparse_msg(&mb, 8, past, v, 4, 4);
    cr_expect_eq(ohm_wire_decode(mb.b, mb.n, &e8, &out), OHM_ERANGE);
    cr_expect(strstr(ohm_error_detail(), "index 8") != NULL, "%s", ohm_error_detail());
    uint32_t huge[4] = {0, 3, 5, 0xffffffffu};
    sparse_msg(&mb, 8, huge, v, 4, 4);
    cr_expect_eq(ohm_wire_decode(mb.b, mb.n, &e8, &out), OHM_ERANGE);
    /* m over n/2, or a declared m the bytes do not hold */
    uint32_t five[5] = {0, 1, 2, 3, 4};
    uint16_t v5[5] = {one, one, one, one, one};
    sparse_msg(&mb, 8, five, v5, 5, 5);
    cr_expect_eq(ohm_wire_decode(mb.b, mb.n, &e8, &out), OHM_ERANGE);
    sparse_msg(&mb, 8, good, v, 4, 3);
    cr_expect_eq(ohm_wire_decode(mb.b, mb.n, &e8, &out), OHM_EFORMAT);
    cr_expect(strstr(ohm_error_detail(), "p holds") != NULL, "%s", ohm_error_detail());
    sparse_msg(&mb, 8, good, v, 4, 0xffffffffu);
    cr_expect_eq(ohm_wire_decode(mb.b, mb.n, &e8, &out), OHM_ERANGE);
    /* a NaN value passes the structure, not the value check */
    uint16_t nanv[4] = {one, 0x7fc0, one, one};
    sparse_msg(&mb, 8, good, nanv, 4, 4);
    cr_assert_eq(ohm_wire_decode(mb.b, mb.n, &e8, &out), OHM_OK);
    cr_expect_eq(ohm_wire_check_params(&out), OHM_ENONFINITE);
}

Test(wire, kinds_bases_and_counts_are_checked)
{
    mb_t m;
    /* unknown kind */
    with_uint(&m, "k", OHM_KIND_COUNT);
    EXPECT_ERR(&m, OHM_ERANGE, "kind");
    /* m for a dense kind */
    with_uint(&m, "m", 1);
    EXPECT_ERR(&m, OHM_ERANGE, "m=1");
    /* f16 declared, f32 bytes */
    with_uint(&m, "k", OHM_KIND_F16);
    EXPECT_ERR(&m, OHM_EFORMAT, "p holds");
    /* f32 whose version is after its round (round 7) */
    with_uint(&m, "b", 8);
    EXPECT_ERR(&m, OHM_ERANGE, "b=8");
    with_uint(&m, "b", 1ULL << 32);
    EXPECT_ERR(&m, OHM_ERANGE, "b=");
    /* a difference must refer to an earlier version; same too */
    uint8_t buf[256], pl[8] = {0};
    ohm_wire_msg_t out;
    size_t len = encode_kind(OHM_KIND_F16, 4, 0, 7, 8, pl, buf, sizeof buf);
    cr_expect_eq(ohm_wire_decode(buf, len, &EXP, &out), OHM_OK, "%s", ohm_error_detail());
    /* same with b = round: the encoder never writes it, so by hand */
    mb_t d = {0};
    fixmap(&d, 11), fields(&d, "k,b,p"), key(&d, "k"), uintw(&d, OHM_KIND_SAME, 0);
    key(&d, "b"), uintw(&d, 7, 0), key(&d, "p"), bin(&d, "", 0);
    EXPECT_ERR(&d, OHM_ERANGE, "b=7 in round 7");
    /* hello, bye and sync carry no kind or base */
    mb_t h = {0};
    fixmap(&h, 11), fields(&h, "type,n,k,p"), key(&h, "type"), uintw(&h, OHM_MSG_SYNC, 0);
    key(&h, "n"), uintw(&h, 0, 0), key(&h, "k"), uintw(&h, OHM_KIND_SAME, 0), key(&h, "p");
    bin(&h, "", 0);
    EXPECT_ERR(&h, OHM_ERANGE, "kind same");
}

Test(wire, nonfinite_values_of_every_kind)
{
    static const ohm_wire_expect_t e = {
        .run = 42, .fp = 0xfeedULL << 40, .count = 4, .max_from = 8};
    uint8_t buf[256];
    ohm_wire_msg_t out;
    /* f16: an Inf code; bf16: a NaN code */
    uint8_t h[8] = {0, 0x3c, 0, 0x7c, 0, 0, 0, 0};
    size_t len = encode_kind(OHM_KIND_F16, 4, 0, 1, 2, h, buf, sizeof buf);
    cr_assert_eq(ohm_wire_decode(buf, len, &e, &out), OHM_OK);
    cr_expect_eq(ohm_wire_check_params(&out), OHM_ENONFINITE);
    cr_expect(strstr(ohm_error_detail(), "value 1") != NULL, "%s", ohm_error_detail());
    uint8_t bf[8] = {0, 0, 0, 0, 0xc0, 0x7f, 0, 0};
    len = encode_kind(OHM_KIND_BF16, 4, 0, 1, 2, bf, buf, sizeof buf);
    cr_assert_eq(ohm_wire_decode(buf, len, &e, &out), OHM_OK);
    cr_expect_eq(ohm_wire_check_params(&out), OHM_ENONFINITE);
    /* q8: an infinite scale, and one whose 128 multiple overflows */
    float scales[2] = {INFINITY, 3e38f};
    for (int k = 0; k < 2; k++) {
        uint8_t q[8] = {0};
        memcpy(q, &scales[k], 4);
        q[4] = 0x81; /* -127 */
        len = encode_kind(OHM_KIND_Q8, 4, 0, 1, 2, q, buf, sizeof buf);
        cr_assert_eq(ohm_wire_decode(buf, len, &e, &out), OHM_OK);
        cr_expect_eq(ohm_wire_check_params(&out), OHM_ENONFINITE, "scale %g", (double)scales[k]);
    }
    float ok = 1e30f;
    uint8_t q[8] = {0};
    memcpy(q, &ok, 4);
    len = encode_kind(OHM_KIND_Q8, 4, 0, 1, 2, q, buf, sizeof buf);
    cr_assert_eq(ohm_wire_decode(buf, len, &e, &out), OHM_OK);
    cr_expect_eq(ohm_wire_check_params(&out), OHM_OK);
}
