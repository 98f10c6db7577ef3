/* libFuzzer target for peer/ohm_inbox: random sequences of frames (sender,
 * type, round, validity), link events, deadlines, holds and catch-ups. It
 * checks the control plane's invariants after every step:
 *  - a catch-up never goes past a round that b or fewer neighbours ever
 *    claimed with a valid model, nor past the end of the run;
 *  - the current round's model of a neighbour is a valid model of that round;
 *  - the inbox holds a bounded number of payloads (current, window, ahead);
 *  - every payload is released exactly once (checked at the end);
 * and at the end, that a neighbour which then speaks in step over a live link
 * for longer than the longest probation is waited for again. */
#include "ohm_inbox.h"
#include "ohm_wire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXN 8

/* A broken invariant: say which, then crash for the fuzzer. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_inbox: invariant broken at line %d: %s\n", __LINE__, #cond);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct {
    uint32_t round;
    int valid;
} tag_t;

static long live_payloads;

static void release_tag(void *p)
{
    live_payloads--;
    free(p);
}

static void *tag(uint32_t round, int valid)
{
    tag_t *t = malloc(sizeof *t);
    if (!t) abort();
    t->round = round;
    t->valid = valid;
    live_payloads++;
    return t;
}

typedef struct {
    const uint8_t *p, *end;
} src_t;

static unsigned take(src_t *s)
{
    return s->p < s->end ? *s->p++ : 0;
}

/* Rounds near the current one mostly, sometimes anywhere. */
static uint32_t some_round(src_t *s, uint32_t cur, uint32_t rounds)
{
    unsigned k = take(s);
    if (k >= 240) return (uint32_t)(take(s) | take(s) << 8) % (rounds + 20);
    int64_t r = (int64_t)cur + (int8_t)take(s) / 8;
    return r < 0 ? 0 : (uint32_t)r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    src_t s = {data, data + size};
    int n = 1 + (int)(take(&s) % MAXN);
    int future = (int)(take(&s) % 9);
    int b = (int)(take(&s) % 3);
    uint32_t rounds = 50 + take(&s) * 4;
    uint32_t ids[MAXN];
    for (int i = 0; i < n; i++)
        ids[i] = (uint32_t)i;
    ohm_inbox_opts_t o = {.rounds = rounds,
                          .future = future,
                          .b = b,
                          .hold_share = 0.05,
                          .hold_burst_s = 1.0,
                          .hold_min_s = 0.1,
                          .release = release_tag};
    ohm_inbox_t *ib = NULL;
    if (ohm_inbox_new(&o, ids, n, &ib)) abort();
    uint32_t claimed[MAXN]; /* highest round each neighbour ever proved */
    int has_claim[MAXN] = {0};
    uint32_t cur = 0;
    double now = 0;
    int barrier = 1;
    while (s.p < s.end) {
        unsigned op = take(&s) % 10;
        int i = (int)(take(&s) % (unsigned)n);
        ohm_inbox_msg_t m = {.type = OHM_MSG_MODEL};
        switch (op) {
        case 0:
        case 1:
        case 2:
            m.round = some_round(&s, cur, rounds);
            m.valid = take(&s) % 4 != 0;
            m.too_stale = !m.valid && take(&s) % 2; /* an "unchanged" too old to use */
            if (m.valid && (!has_claim[i] || m.round > claimed[i])) {
                claimed[i] = m.round;
                has_claim[i] = 1;
            }
            ohm_inbox_feed(ib, i, &m, tag(m.round, m.valid));
            break;
        case 3:
            m.type = take(&s) % 2 ? OHM_MSG_HELLO : OHM_MSG_BYE;
            m.round = some_round(&s, cur, rounds);
            ohm_inbox_feed(ib, i, &m, NULL);
            break;
        case 4:
            if (take(&s) % 2)
                ohm_inbox_link_lost(ib, i);
            else
                ohm_inbox_link_up(ib, i);
            break;
        case 5:
            if (barrier) {
                ohm_inbox_end_barrier(ib, NULL, 0);
                barrier = 0;
            }
            ohm_inbox_deadline(ib);
            ohm_inbox_close(ib, NULL, 0);
            cur += take(&s) % 3;
            ohm_inbox_advance(ib, cur);
            now += 0.01;
            break;
        case 6: {
            int64_t t = ohm_inbox_catch_up(ib);
            if (t >= 0) {
                /* never past what b or fewer neighbours proved, nor the end */
                int k = 0;
                for (int j = 0; j < n; j++)
                    k += has_claim[j] && claimed[j] >= (uint64_t)t;
                CHECK(k >= b + 1 && t < (int64_t)rounds && t >= (int64_t)cur + 2);
                cur = (uint32_t)t;
                ohm_inbox_advance(ib, cur);
            }
            break;
        }
        case 7:
            if (ohm_inbox_hold_begin(ib, now)) {
                now += 0.01 * (take(&s) % 20);
                ohm_inbox_hold_end(ib, now, NULL, 0);
            }
            break;
        default:
            now += 0.05 * (take(&s) % 10);
            break;
        }
        for (int j = 0; j < n; j++) {
            const tag_t *t = ohm_inbox_model(ib, j);
            CHECK(!t || (t->round == cur && t->valid));
        }
        CHECK(live_payloads <= (long)n * (future + 3));
        CHECK(ohm_inbox_round(ib) == cur);
    }
    /* Liveness: each neighbour, over a live link, now delivers in step for
     * longer than the longest probation: it must be waited for again. */
    if (barrier) ohm_inbox_end_barrier(ib, NULL, 0);
    for (int i = 0; i < n; i++)
        ohm_inbox_link_up(ib, i);
    for (int k = 0; k < OHM_INBOX_PROBATION_MAX + 2 && cur + 1 < UINT32_MAX; k++) {
        for (int i = 0; i < n; i++) {
            ohm_inbox_msg_t m = {.type = OHM_MSG_MODEL, .round = cur, .valid = 1};
            ohm_inbox_feed(ib, i, &m, tag(cur, 1));
        }
        ohm_inbox_deadline(ib);
        ohm_inbox_close(ib, NULL, 0);
        ohm_inbox_advance(ib, ++cur);
    }
    for (int i = 0; i < n; i++)
        CHECK(ohm_inbox_waits_for(ib, i) || ohm_inbox_model(ib, i)); /* or already here */
    ohm_inbox_destroy(&ib);
    CHECK(live_payloads == 0);
    return 0;
}
