/* Tests of peer/ohm_copies: taken whole, updated by differences of the right
 * version only, kept by "unchanged" within the staleness bound, out of sync
 * otherwise, and forgotten when a difference makes a copy non-finite. */
#include "ohm_copies.h"
#include "ohm_error.h"
#include "ohm_payload.h"

#include <criterion/criterion.h>
#include <float.h>
#include <string.h>

enum { D = 4 };

static ohm_wire_msg_t msg(ohm_kind_t k, uint32_t round, uint32_t base, const void *p, uint32_t m)
{
    return (ohm_wire_msg_t){.version = OHM_WIRE_VERSION,
                            .type = OHM_MSG_MODEL,
                            .round = round,
                            .count = D,
                            .kind = (uint32_t)k,
                            .base = base,
                            .entries = m,
                            .params = p,
                            .len = ohm_payload_size(k, D, m)};
}

/* A bf16 difference of D values. */
static void bf16s(uint8_t *out, float a, float b, float c, float d)
{
    float v[D] = {a, b, c, d};
    for (int i = 0; i < D; i++) {
        uint16_t h = ohm_bf16_from_float(v[i]);
        out[2 * i] = (uint8_t)h, out[2 * i + 1] = (uint8_t)(h >> 8);
    }
}

Test(copies, whole_then_differences_in_sequence)
{
    ohm_copies_t *c = NULL;
    cr_assert_eq(ohm_copies_new(2, D, &c), OHM_OK);
    cr_expect_null(ohm_copies_get(c, 0), "none held at first");
    cr_expect_eq(ohm_copies_version(c, 0), -1);
    cr_expect_eq(ohm_copies_age(c, 0, 5), -1);
    float x[D] = {1, 2, 3, 4};
    ohm_wire_msg_t w = msg(OHM_KIND_F32, 5, 5, x, 0);
    cr_assert_eq(ohm_copies_apply(c, 0, &w, 3), OHM_OK);
    cr_expect_arr_eq(ohm_copies_get(c, 0), x, sizeof x);
    cr_expect_eq(ohm_copies_version(c, 0), 5);
    cr_expect_null(ohm_copies_get(c, 1), "the other neighbour's is apart");
    uint8_t d[2 * D];
    bf16s(d, 0.5f, -1, 0, 2);
    ohm_wire_msg_t m6 = msg(OHM_KIND_BF16, 6, 5, d, 0);
    cr_assert_eq(ohm_copies_apply(c, 0, &m6, 3), OHM_OK);
    float want[D] = {1.5f, 1, 3, 6};
    cr_expect_arr_eq(ohm_copies_get(c, 0), want, sizeof want);
    cr_expect_eq(ohm_copies_version(c, 0), 6);
    cr_expect_eq(ohm_copies_age(c, 0, 9), 3);
    /* a difference that refers to another version: out of sync, unchanged */
    ohm_wire_msg_t m8 = msg(OHM_KIND_BF16, 8, 7, d, 0);
    cr_expect_eq(ohm_copies_apply(c, 0, &m8, 3), OHM_ESTALE);
    cr_expect_arr_eq(ohm_copies_get(c, 0), want, sizeof want);
    /* the public copy whole resynchronises, whatever the version held */
    float y[D] = {9, 9, 9, 9};
    ohm_wire_msg_t w9 = msg(OHM_KIND_F32, 9, 8, y, 0);
    cr_assert_eq(ohm_copies_apply(c, 0, &w9, 3), OHM_OK);
    cr_expect_eq(ohm_copies_version(c, 0), 8, "the version it carries, not its round");
    ohm_copies_destroy(&c);
    cr_expect_null(c);
    ohm_copies_destroy(&c);
}

Test(copies, unchanged_is_kept_within_the_staleness_bound)
{
    ohm_copies_t *c = NULL;
    cr_assert_eq(ohm_copies_new(1, D, &c), OHM_OK);
    ohm_wire_msg_t same = msg(OHM_KIND_SAME, 3, 2, NULL, 0);
    cr_expect_eq(ohm_copies_apply(c, 0, &same, 3), OHM_ESTALE, "nothing to keep yet");
    float x[D] = {1, 2, 3, 4};
    ohm_copies_take(c, 0, 2, x);
    cr_expect_eq(ohm_copies_apply(c, 0, &same, 3), OHM_OK);
    ohm_wire_msg_t at5 = msg(OHM_KIND_SAME, 5, 2, NULL, 0);
    cr_expect_eq(ohm_copies_apply(c, 0, &at5, 3), OHM_OK, "age 3 = max_staleness");
    ohm_wire_msg_t at6 = msg(OHM_KIND_SAME, 6, 2, NULL, 0);
    cr_expect_eq(ohm_copies_apply(c, 0, &at6, 3), OHM_ERANGE, "age 4: the sender had to send");
    cr_expect_not_null(ohm_copies_get(c, 0), "the copy itself is still in sync");
    ohm_wire_msg_t other = msg(OHM_KIND_SAME, 5, 4, NULL, 0);
    cr_expect_eq(ohm_copies_apply(c, 0, &other, 3), OHM_ESTALE, "another version");
    cr_expect_eq(ohm_copies_version(c, 0), 2, "unchanged keeps the version");
    ohm_copies_forget(c, 0);
    cr_expect_null(ohm_copies_get(c, 0));
    ohm_copies_destroy(&c);
}

Test(copies, a_difference_that_overflows_forgets_the_copy)
{
    ohm_copies_t *c = NULL;
    cr_assert_eq(ohm_copies_new(1, D, &c), OHM_OK);
    float x[D] = {FLT_MAX, 0, 0, 0};
    ohm_copies_take(c, 0, 1, x);
    uint8_t d[2 * D];
    bf16s(d, FLT_MAX, 0, 0, 0);
    ohm_wire_msg_t m = msg(OHM_KIND_BF16, 2, 1, d, 0);
    cr_expect_eq(ohm_copies_apply(c, 0, &m, 3), OHM_ENONFINITE);
    cr_expect_null(ohm_copies_get(c, 0), "never combined");
    cr_expect_eq(ohm_copies_version(c, 0), -1);
    ohm_copies_destroy(&c);
}
