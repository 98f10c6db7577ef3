/* fuzz_wire: the message decoder on arbitrary bytes. Whatever it accepts must
 * also be readable by read_params and view_params alike, and re-encode to an
 * aligned payload; nothing may crash, over-read or allocate from a declared size. */
#include "ohm_error.h"
#include "ohm_wire.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The seed corpus is written against this expectation (run 7, fp, 3 floats). */
    static const ohm_wire_expect_t e = {
        .run = 7, .fp = 0x0123456789abcdefULL, .count = 3, .max_from = 16};
    ohm_wire_msg_t m;
    int rc = ohm_wire_decode(data, size, &e, &m);
    if (rc != OHM_OK) {
        if (rc < OHM_OK || rc >= OHM_ECOUNT) abort();
        return 0;
    }
    if (m.count > e.count || m.from >= e.max_from) abort();
    if (m.count && (m.params < data || m.params + 4 * (size_t)m.count > data + size)) abort();
    float out[3], scratch[3];
    int rc_copy = ohm_wire_read_params(&m, out);
    /* The in-place view (or its copy, when unaligned) agrees with the copy. */
    const float *view = NULL;
    if (ohm_wire_view_params(&m, scratch, &view) != rc_copy) abort();
    if (m.count && memcmp(view, out, 4 * (size_t)m.count) != 0) abort();
    /* Re-encoding what was accepted gives a message that decodes the same. */
    uint8_t buf[256];
    size_t len = 0;
    if (ohm_wire_encode(&m, out, buf, sizeof buf, &len) != OHM_OK) abort();
    ohm_wire_msg_t m2;
    if (ohm_wire_decode(buf, len, &e, &m2) != OHM_OK) abort();
    /* ... with its payload 4-byte aligned from the message start */
    if ((size_t)(m2.params - buf) % 4 != 0) abort();
    if (m2.type != m.type || m2.round != m.round || m2.from != m.from || m2.count != m.count)
        abort();
    if (m.count && memcmp(m2.params, m.params, 4 * (size_t)m.count) != 0) abort();
    return 0;
}
