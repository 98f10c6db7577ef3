/* fuzz_wire: the message decoder on arbitrary bytes, every payload kind
 * (models of 3 parameters, and of 600 for q8z, whose deflated codes are
 * sent only when shorter than the codes, so never for 3).
 * Whatever it accepts must have a payload of exactly its kind's size inside
 * the input; an f32 payload must read the same by read_params and view_params;
 * a payload whose values pass the check must apply to a copy, and a sparse one
 * only within range; and the message must re-encode (aligned) to one that
 * decodes the same. Nothing may crash, over-read or allocate from a declared
 * size. */
#include "ohm_error.h"
#include "ohm_payload.h"
#include "ohm_wire.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The seed corpus is written against this expectation (run 7, fp, 3
     * floats), and a model of 600 where that does not fit. */
    enum { BIG = 600 };
    static const ohm_wire_expect_t e3 = {
        .run = 7, .fp = 0x0123456789abcdefULL, .count = 3, .max_from = 16};
    static const ohm_wire_expect_t e600 = {
        .run = 7, .fp = 0x0123456789abcdefULL, .count = BIG, .max_from = 16};
    const ohm_wire_expect_t *ep = &e3;
    ohm_wire_msg_t m;
    int rc = ohm_wire_decode(data, size, ep, &m);
    if (rc == OHM_ESHAPE) rc = ohm_wire_decode(data, size, ep = &e600, &m);
    const ohm_wire_expect_t e = *ep;
    if (rc != OHM_OK) {
        if (rc < OHM_OK || rc >= OHM_ECOUNT) abort();
        return 0;
    }
    if (m.count > e.count || m.from >= e.max_from || m.kind >= OHM_KIND_COUNT) abort();
    if (m.len != ohm_payload_size(m.kind, m.count, m.entries)) abort();
    if (m.len && (m.params < data || m.params + m.len > data + size)) abort();
    if (m.type != OHM_MSG_MODEL && (m.kind != OHM_KIND_F32 || m.base || m.len)) abort();
    if (m.type == OHM_MSG_MODEL && m.base > m.round) abort();
    int values = ohm_wire_check_params(&m);
    if (m.kind == OHM_KIND_F32) {
        static float out[BIG], scratch[BIG];
        int rc_copy = ohm_wire_read_params(&m, out);
        if (rc_copy != values) abort();
        /* The in-place view (or its copy, when unaligned) agrees with the copy. */
        const float *view = NULL;
        if (ohm_wire_view_params(&m, scratch, &view) != rc_copy) abort();
        if (m.count && memcmp(view, out, 4 * (size_t)m.count) != 0) abort();
    }
    if (values == OHM_OK && m.type == OHM_MSG_MODEL) {
        /* A checked payload applies to a copy (an overflow is reported, never a crash). */
        static float copy[BIG];
        for (uint32_t i = 0; i < m.count; i++)
            copy[i] = (float)i - 2.0f;
        int ap = ohm_payload_apply((ohm_kind_t)m.kind, m.count, m.entries, m.params, copy);
        if (ap != OHM_OK && ap != OHM_ENONFINITE) abort();
        if (m.kind == OHM_KIND_F32 && ap != OHM_OK) abort();
    }
    /* Re-encoding what was accepted gives a message that decodes the same. */
    static uint8_t buf[4 * BIG + 128];
    size_t off = 0;
    if (ohm_wire_encode_header(&m, buf, sizeof buf, &off) != OHM_OK) abort();
    if (m.len) memcpy(buf + off, m.params, m.len);
    ohm_wire_msg_t m2;
    if (ohm_wire_decode(buf, off + m.len, &e, &m2) != OHM_OK) abort();
    /* ... with its payload 4-byte aligned from the message start */
    if (m.len && (size_t)(m2.params - buf) % 4 != 0) abort();
    if (m2.type != m.type || m2.round != m.round || m2.from != m.from || m2.count != m.count ||
        m2.kind != m.kind || m2.base != m.base || m2.entries != m.entries || m2.len != m.len)
        abort();
    if (m.len && memcmp(m2.params, m.params, m.len) != 0) abort();
    return 0;
}
