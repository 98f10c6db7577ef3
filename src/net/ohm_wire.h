/* ohm_wire: the msgpack message format peers exchange (docs/protocol.md, section "Wire format").
 *
 * One message is a msgpack map with keys v (protocol version), type, run, from,
 * round, fp (model fingerprint), n (parameter count), k (payload kind), b (the
 * version of the sender's public copy the payload refers to), m (sparse
 * entries) and p (the payload, one msgpack bin laid out as ohm_payload.h
 * says). Encoding and decoding are pure functions over bytes. Decoding
 * validates every field before it trusts it: no declared count or length is
 * used before it is checked against the bytes that remain, nothing is
 * allocated, and the payload is returned as a pointer into the input
 * (possibly unaligned). */
#ifndef OHM_WIRE_H
#define OHM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define OHM_WIRE_VERSION 2

/* Largest parameter count: its payload (4 bytes each) must fit one msgpack bin32. */
#define OHM_WIRE_MAX_COUNT (UINT32_MAX / 4u)

/* At most this many map entries are read; a message has 11 (v type run from round fp n k b m p). */
#define OHM_WIRE_MAX_KEYS 16

enum {
    OHM_MSG_HELLO = 1, /* start-up / rejoin announcement; `round` = sender's current round */
    OHM_MSG_MODEL = 2, /* the sender's model for `round` */
    OHM_MSG_BYE = 3,   /* the sender finished or is shutting down */
    OHM_MSG_SYNC = 4   /* the sender lost its copy of our public model: send it whole */
};

typedef struct {
    uint32_t version;
    uint32_t type;
    uint64_t run;
    uint32_t from;
    uint32_t round;
    uint64_t fp;           /* model fingerprint (layer shapes and dtype) */
    uint32_t count;        /* parameters of the model (0 for hello, bye, sync) */
    uint32_t kind;         /* payload kind (ohm_payload.h); OHM_KIND_F32 but for models */
    uint32_t base;         /* model: version of the public copy the payload is or refers to */
    uint32_t entries;      /* sparse entries (0 for every other kind) */
    const uint8_t *params; /* decode: the payload, aliasing the input, unaligned; encode: unused */
    size_t len;            /* decode: payload bytes */
} ohm_wire_msg_t;

/* What a receiver expects; a decoded message must match it. */
typedef struct {
    uint64_t run;      /* run id */
    uint64_t fp;       /* model fingerprint */
    uint32_t count;    /* parameters per model message */
    uint32_t max_from; /* peer ids are < max_from */
} ohm_wire_expect_t;

/* Upper bound of the encoded size of a message with `count` parameters, of
 * any kind (every integer at its widest); a receiver's ZMQ_MAXMSGSIZE. */
size_t ohm_wire_max_size(uint32_t count);

/* Encodes `m` with an f32 payload (m->count parameters from `params`, NULL
 * when count is 0; m->kind must be OHM_KIND_F32) into buf[cap]; *len receives
 * the size. The payload starts 4-byte aligned from buf's start (v and type are
 * widened when needed; still plain msgpack). Returns OHM_ETOOBIG when cap is
 * too small or count exceeds OHM_WIRE_MAX_COUNT. m->params is ignored. */
int ohm_wire_encode(const ohm_wire_msg_t *m, const float *params, uint8_t *buf, size_t cap,
                    size_t *len);

/* Encodes everything of `m` but its payload's bytes into buf[cap]: the caller
 * writes ohm_payload_size(m->kind, m->count, m->entries) bytes at buf + *off
 * (4-byte aligned from buf's start when the header allows it), and the
 * message is *off plus that long. Errors: OHM_ETOOBIG (the payload does not
 * fit cap, or count over OHM_WIRE_MAX_COUNT), OHM_EINVAL (no such payload). */
int ohm_wire_encode_header(const ohm_wire_msg_t *m, uint8_t *buf, size_t cap, size_t *off);

/* Decodes and validates buf[len] against `e`. On success fills *m (params alias
 * buf). Errors, each with a detail naming the field (stable: receivers count them):
 *   OHM_ETRUNC       a declared length or value runs past the end of the bytes;
 *   OHM_EFORMAT      not a map, map over OHM_WIRE_MAX_KEYS, a key that is not a string,
 *                    a value of the wrong msgpack type (float, string, negative int,
 *                    container), unknown/duplicate/missing key, bin length other than
 *                    the kind's payload size for n and m, trailing bytes after the
 *                    map, sparse indices not strictly increasing;
 *   OHM_EUNSUPPORTED v != OHM_WIRE_VERSION;
 *   OHM_ERANGE       an integer too wide for its field, unknown type or kind, m over
 *                    n/2 or m != 0 for a kind that is not sparse, from >= max_from,
 *                    a hello/bye/sync with a kind, base or m, a model's base after
 *                    its round (or not before it, for a difference or same), a
 *                    sparse index >= n;
 *   OHM_ESTALE       run differs from e->run;
 *   OHM_ESHAPE       fp differs, n != e->count for a model, n != 0 for hello/bye/sync;
 *   OHM_ETOOBIG      n over OHM_WIRE_MAX_COUNT.
 * Structure (ETRUNC/EFORMAT: map, keys, types, trailing bytes, missing keys) is
 * checked first, then in this order: n limit, kind, m, bin length, v, type,
 * round and base widths, run, fp, from, n against the expectation, what the
 * type allows, sparse indices. Values are not read: see ohm_wire_check_params. */
int ohm_wire_decode(const uint8_t *buf, size_t len, const ohm_wire_expect_t *e, ohm_wire_msg_t *m);

/* Copies the decoded f32 parameters into dst[m->count] (safe for unaligned input) in
 * one pass. Returns OHM_ENONFINITE if any value is NaN or Inf (dst then holds the
 * copy anyway; the detail names the first such index). */
int ohm_wire_read_params(const ohm_wire_msg_t *m, float *dst);

/* Checks, without copying, that every decoded value is finite (any alignment):
 * f32 parameters, 16-bit differences, sparse values, q8 scales (see
 * ohm_payload_check_values). Returns OHM_ENONFINITE (the detail names the
 * first index). */
int ohm_wire_check_params(const ohm_wire_msg_t *m);

/* The decoded f32 parameters as a float array in place, when the payload is
 * 4-byte aligned in memory on a little-endian host; else NULL (copy them with
 * ohm_wire_read_params; NULL too for every other kind). Checks nothing: for
 * parameters already checked. */
const float *ohm_wire_params_in_place(const ohm_wire_msg_t *m);

/* The decoded f32 parameters as floats without a copy where possible: *out points
 * into the message when the payload is 4-byte aligned in memory (the encoder
 * aligns it relative to the message start) on a little-endian host, else into
 * scratch[m->count], which receives a copy. *out lives as long as the message
 * bytes and scratch do. Returns OHM_ENONFINITE if any value is NaN or Inf. */
int ohm_wire_view_params(const ohm_wire_msg_t *m, float *scratch, const float **out);

#endif
