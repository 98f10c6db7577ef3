/* ohm_wire: the msgpack message format peers exchange (docs/protocol.md, section "Wire format").
 *
 * One message is a msgpack map with keys v (protocol version), type, run, from,
 * round, fp (model fingerprint), n (parameter count) and p (the parameters as
 * float32 little-endian in one msgpack bin). Encoding and decoding are pure
 * functions over bytes. Decoding validates every field before it trusts it:
 * no declared count or length is used before it is checked against the bytes
 * that remain, nothing is allocated, and the parameter payload is returned as
 * a pointer into the input (possibly unaligned: use ohm_wire_read_params). */
#ifndef OHM_WIRE_H
#define OHM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define OHM_WIRE_VERSION 1

/* Largest parameter count: its payload (4 bytes each) must fit one msgpack bin32. */
#define OHM_WIRE_MAX_COUNT (UINT32_MAX / 4u)

/* At most this many map entries are read; a message has 8 (v type run from round fp n p). */
#define OHM_WIRE_MAX_KEYS 16

enum {
    OHM_MSG_HELLO = 1, /* start-up / rejoin announcement; `round` = sender's current round */
    OHM_MSG_MODEL = 2, /* the sender's model for `round` */
    OHM_MSG_BYE = 3    /* the sender finished or is shutting down */
};

typedef struct {
    uint32_t version;
    uint32_t type;
    uint64_t run;
    uint32_t from;
    uint32_t round;
    uint64_t fp;           /* model fingerprint (layer shapes and dtype) */
    uint32_t count;        /* number of float32 parameters (0 for hello/bye) */
    const uint8_t *params; /* decode: aliases the input, unaligned; encode: unused */
} ohm_wire_msg_t;

/* What a receiver expects; a decoded message must match it. */
typedef struct {
    uint64_t run;      /* run id */
    uint64_t fp;       /* model fingerprint */
    uint32_t count;    /* parameters per model message */
    uint32_t max_from; /* peer ids are < max_from */
} ohm_wire_expect_t;

/* Upper bound of the encoded size of a message with `count` parameters
 * (every integer at its widest); a receiver's ZMQ_MAXMSGSIZE. */
size_t ohm_wire_max_size(uint32_t count);

/* Encodes `m` (m->count parameters from `params`, NULL when count is 0) into
 * buf[cap]; *len receives the size. The payload starts 4-byte aligned from
 * buf's start (v and type are widened when needed; still plain msgpack).
 * Returns OHM_ETOOBIG when cap is too small or count exceeds
 * OHM_WIRE_MAX_COUNT. m->params is ignored. */
int ohm_wire_encode(const ohm_wire_msg_t *m, const float *params, uint8_t *buf, size_t cap,
                    size_t *len);

/* Decodes and validates buf[len] against `e`. On success fills *m (params alias
 * buf). Errors, each with a detail naming the field (stable: receivers count them):
 *   OHM_ETRUNC       a declared length or value runs past the end of the bytes;
 *   OHM_EFORMAT      not a map, map over OHM_WIRE_MAX_KEYS, a key that is not a string,
 *                    a value of the wrong msgpack type (float, string, negative int,
 *                    container), unknown/duplicate/missing key, bin length != 4*n,
 *                    trailing bytes after the map;
 *   OHM_EUNSUPPORTED v != OHM_WIRE_VERSION;
 *   OHM_ERANGE       an integer too wide for its field, unknown type, from >= max_from;
 *   OHM_ESTALE       run differs from e->run;
 *   OHM_ESHAPE       fp differs, n != e->count for a model, n != 0 for hello/bye;
 *   OHM_ETOOBIG      n over OHM_WIRE_MAX_COUNT.
 * Structure (ETRUNC/EFORMAT: map, keys, types, trailing bytes, missing keys) is
 * checked first, then in this order: n limit, bin length, v, type, round width,
 * run, fp, from, n against the expectation. */
int ohm_wire_decode(const uint8_t *buf, size_t len, const ohm_wire_expect_t *e, ohm_wire_msg_t *m);

/* Copies the decoded parameters into dst[m->count] (safe for unaligned input) in one
 * pass. Returns OHM_ENONFINITE if any value is NaN or Inf (dst then holds the copy
 * anyway; the detail names the first such index). */
int ohm_wire_read_params(const ohm_wire_msg_t *m, float *dst);

/* Checks, without copying, that every decoded parameter is finite (any
 * alignment). Returns OHM_ENONFINITE (the detail names the first index). */
int ohm_wire_check_params(const ohm_wire_msg_t *m);

/* The decoded parameters as a float array in place, when the payload is
 * 4-byte aligned in memory on a little-endian host; else NULL (copy them with
 * ohm_wire_read_params). Checks nothing: for parameters already checked. */
const float *ohm_wire_params_in_place(const ohm_wire_msg_t *m);

/* The decoded parameters as floats without a copy where possible: *out points
 * into the message when the payload is 4-byte aligned in memory (the encoder
 * aligns it relative to the message start) on a little-endian host, else into
 * scratch[m->count], which receives a copy. *out lives as long as the message
 * bytes and scratch do. Returns OHM_ENONFINITE if any value is NaN or Inf. */
int ohm_wire_view_params(const ohm_wire_msg_t *m, float *scratch, const float **out);

#endif
