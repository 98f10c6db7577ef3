/* ohm_wire: the msgpack message format peers exchange (DESIGN section 6).
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
    uint64_t fp;            /* model fingerprint (layer shapes and dtype) */
    uint32_t count;         /* number of float32 parameters (0 for hello/bye) */
    const uint8_t *params;  /* decode: aliases the input, unaligned; encode: unused */
} ohm_wire_msg_t;

/* What a receiver expects; a decoded message must match it. */
typedef struct {
    uint64_t run;       /* run id */
    uint64_t fp;        /* model fingerprint */
    uint32_t count;     /* parameters per model message */
    uint32_t max_from;  /* peer ids are < max_from */
} ohm_wire_expect_t;

/* Upper bound of the encoded size of a message with `count` parameters. */
size_t ohm_wire_max_size(uint32_t count);

/* Encodes `m` (m->count parameters from `params`, NULL when count is 0) into
 * buf[cap]; *len receives the size. Returns OHM_ETOOBIG when cap is too small. */
int ohm_wire_encode(const ohm_wire_msg_t *m, const float *params, uint8_t *buf, size_t cap,
                    size_t *len);

/* Decodes and validates buf[len] against `e`. On success fills *m (params alias
 * buf). Errors, each with a detail naming the field: OHM_ETRUNC (bytes missing),
 * OHM_EFORMAT (not a map, wrong types, unknown/duplicate/missing key, trailing bytes),
 * OHM_EUNSUPPORTED (version), OHM_ESTALE (other run), OHM_ESHAPE (fingerprint
 * or count), OHM_ERANGE (from/type out of range), OHM_ETOOBIG (count over limit). */
int ohm_wire_decode(const uint8_t *buf, size_t len, const ohm_wire_expect_t *e,
                    ohm_wire_msg_t *m);

/* Copies the decoded parameters into dst[m->count] (safe for unaligned input).
 * Returns OHM_ENONFINITE if any value is NaN or Inf (dst then holds the copy anyway). */
int ohm_wire_read_params(const ohm_wire_msg_t *m, float *dst);

#endif
