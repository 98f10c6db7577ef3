/* Tests of peer/ohm_inbox: every transition of the per-neighbour protocol
 * state, with synthetic frames (no sockets, no clock). Payloads are small
 * tagged allocations; the release counter proves that every payload fed is
 * released exactly once. */
#include "ohm_inbox.h"
#include "ohm_wire.h"

#include <criterion/criterion.h>
#include <stdlib.h>

static int released, live_payloads;

typedef struct {
    uint32_t from, round;
} tag_t;

static void release_tag(void *p)
{
    released++;
    live_payloads--;
    free(p);
}

static void *tag(uint32_t from, uint32_t round)
{
    tag_t *t = malloc(sizeof *t);
    cr_assert_not_null(t);
    t->from = from;
    t->round = round;
    live_payloads++;
    return t;
}

static ohm_inbox_t *make(int n, int future, int b, uint32_t rounds)
{
    uint32_t ids[16];
    for (int i = 0; i < n; i++)
        ids[i] = (uint32_t)(10 + i);
    ohm_inbox_opts_t o = {.rounds = rounds,
                          .future = future,
                          .b = b,
                          .hold_share = 0.1,
                          .hold_burst_s = 2.0,
                          .hold_min_s = 0.5,
                          .release = release_tag};
    ohm_inbox_t *ib = NULL;
    cr_assert_eq(ohm_inbox_new(&o, ids, n, &ib), 0);
    return ib;
}

static int feed(ohm_inbox_t *ib, int i, uint32_t type, uint32_t round, int valid)
{
    ohm_inbox_msg_t m = {.type = type, .round = round, .valid = valid};
    return ohm_inbox_feed(ib, i, &m, type == OHM_MSG_MODEL ? tag((uint32_t)i, round) : NULL);
}

static void model(ohm_inbox_t *ib, int i, uint32_t round)
{
    feed(ib, i, OHM_MSG_MODEL, round, 1);
}

/* Every neighbour heard (each announced round r), barrier ended, at round r. */
static ohm_inbox_t *started(int n, int future, int b, uint32_t rounds, uint32_t r)
{
    ohm_inbox_t *ib = make(n, future, b, rounds);
    for (int i = 0; i < n; i++)
        feed(ib, i, OHM_MSG_HELLO, r, 0);
    cr_assert_eq(ohm_inbox_end_barrier(ib, NULL, 0), 0);
    ohm_inbox_advance(ib, r);
    return ib;
}

static ohm_inbox_nbr_t stats(const ohm_inbox_t *ib, int i)
{
    ohm_inbox_nbr_t s;
    ohm_inbox_stats(ib, i, &s);
    return s;
}

static void done(ohm_inbox_t **ib)
{
    ohm_inbox_destroy(ib);
    cr_expect_null(*ib);
    cr_expect_eq(live_payloads, 0, "%d payloads never released", live_payloads);
}

static void reset(void)
{
    released = live_payloads = 0;
}

TestSuite(inbox, .init = reset);

/* ---------------------------------------------------------------- filing */

Test(inbox, current_round_model_is_accepted_once)
{
    ohm_inbox_t *ib = started(2, 4, 0, 100, 5);
    cr_expect_eq(ohm_inbox_waiting(ib), 2);
    model(ib, 0, 5);
    cr_expect_not_null(ohm_inbox_model(ib, 0));
    cr_expect_eq(((tag_t *)ohm_inbox_model(ib, 0))->round, 5);
    cr_expect_eq(ohm_inbox_waits_for(ib, 0), 0);
    cr_expect_eq(ohm_inbox_waiting(ib), 1);
    model(ib, 0, 5); /* a second one of the same round */
    cr_expect_eq(stats(ib, 0).drops[OHM_DROP_DUPLICATE], 1);
    cr_expect_eq(((tag_t *)ohm_inbox_model(ib, 0))->round, 5, "the first one is kept");
    done(&ib);
}

Test(inbox, stale_and_nonfinite_models_are_dropped)
{
    ohm_inbox_t *ib = started(2, 4, 0, 100, 5);
    model(ib, 0, 4);
    cr_expect_eq(stats(ib, 0).drops[OHM_DROP_STALE], 1);
    cr_expect_null(ohm_inbox_model(ib, 0));
    feed(ib, 1, OHM_MSG_MODEL, 5, 0); /* NaN in it */
    cr_expect_eq(stats(ib, 1).drops[OHM_DROP_NONFINITE], 1);
    cr_expect_null(ohm_inbox_model(ib, 1));
    cr_expect_eq(ohm_inbox_waits_for(ib, 1), 0, "it delivered this round, if garbage");
    cr_expect_eq(stats(ib, 1).evid, -1, "a NaN model is no evidence");
    done(&ib);
}

Test(inbox, future_rounds_are_buffered_and_taken)
{
    ohm_inbox_t *ib = started(1, 4, 0, 100, 5);
    model(ib, 0, 6);
    model(ib, 0, 9);
    model(ib, 0, 9);
    cr_expect_eq(stats(ib, 0).drops[OHM_DROP_DUPLICATE], 1);
    feed(ib, 0, OHM_MSG_MODEL, 8, 0);
    cr_expect_eq(stats(ib, 0).drops[OHM_DROP_NONFINITE], 1, "invalid future models are not kept");
    cr_expect_eq(ohm_inbox_waits_for(ib, 0), 0, "it is ahead: its round-5 model was sent");
    ohm_inbox_advance(ib, 6);
    cr_expect_eq(((tag_t *)ohm_inbox_model(ib, 0))->round, 6);
    ohm_inbox_advance(ib, 7);
    cr_expect_null(ohm_inbox_model(ib, 0));
    ohm_inbox_advance(ib, 9);
    cr_expect_eq(((tag_t *)ohm_inbox_model(ib, 0))->round, 9);
    done(&ib);
}

Test(inbox, beyond_the_window_keeps_the_latest_for_a_catch_up)
{
    ohm_inbox_t *ib = started(1, 2, 0, 1000, 5);
    model(ib, 0, 50);
    model(ib, 0, 60);
    cr_expect_eq(stats(ib, 0).drops[OHM_DROP_FUTURE], 2);
    cr_expect_eq(released, 1, "only the latest is kept");
    ohm_inbox_advance(ib, 60);
    cr_expect_eq(((tag_t *)ohm_inbox_model(ib, 0))->round, 60);
    cr_expect_eq(stats(ib, 0).drops[OHM_DROP_FUTURE], 1, "used after all: not a drop");
    done(&ib);
}

/* --------------------------------------------------------------- waiting */

Test(inbox, waits_for_neighbours_in_step_only)
{
    ohm_inbox_t *ib = started(3, 4, 0, 100, 20);
    model(ib, 0, 19); /* one behind: waited for */
    model(ib, 1, 21); /* ahead: its round-20 model was sent before */
    model(ib, 2, 10); /* far behind: it catches up by itself */
    cr_expect_eq(ohm_inbox_waits_for(ib, 0), 1);
    cr_expect_eq(ohm_inbox_waits_for(ib, 1), 0);
    cr_expect_eq(ohm_inbox_waits_for(ib, 2), 0);
    done(&ib);
}

Test(inbox, a_far_future_frame_does_not_silence_a_neighbour)
{
    /* The neighbour stamps one model far ahead, then goes on in step: its
     * position is its latest frame, so it is waited for again. */
    ohm_inbox_t *ib = started(2, 4, 0, 100000, 30);
    model(ib, 0, 7990);
    cr_expect_eq(ohm_inbox_waits_for(ib, 0), 0);
    model(ib, 0, 30);
    ohm_inbox_advance(ib, 31);
    cr_expect_eq(ohm_inbox_waits_for(ib, 0), 1, "back in step: waited for");
    done(&ib);
}

Test(inbox, missed_deadline_means_down_with_a_strike_and_probation)
{
    ohm_inbox_t *ib = started(2, 4, 0, 1000, 10);
    model(ib, 1, 10);
    ohm_inbox_deadline(ib);
    uint32_t down[4];
    cr_expect_eq(ohm_inbox_close(ib, down, 4), 1);
    cr_expect_eq(down[0], 10);
    cr_expect_eq(stats(ib, 0).strikes, 1);
    cr_expect_eq(stats(ib, 0).missed, 1);
    cr_expect_eq(stats(ib, 1).accepted, 1);
    ohm_inbox_advance(ib, 11);
    cr_expect_eq(ohm_inbox_waits_for(ib, 0), 0, "down");
    /* Probation of one round after the first strike: a model of round 11 is
     * used but does not make it waited for again before round 12. */
    model(ib, 0, 11);
    cr_expect_not_null(ohm_inbox_model(ib, 0));
    ohm_inbox_advance(ib, 12);
    cr_expect_eq(ohm_inbox_waits_for(ib, 0), 0, "still down: nothing heard since probation");
    model(ib, 0, 12);
    ohm_inbox_advance(ib, 13);
    cr_expect_eq(ohm_inbox_waits_for(ib, 0), 1, "in step after its probation: waited for");
    done(&ib);
}

Test(inbox, late_arrival_in_the_drain_is_not_a_miss)
{
    ohm_inbox_t *ib = started(1, 4, 0, 1000, 10);
    ohm_inbox_deadline(ib);
    model(ib, 0, 10); /* read in the drain after the deadline */
    cr_expect_eq(ohm_inbox_close(ib, NULL, 0), 0);
    cr_expect_eq(stats(ib, 0).strikes, 0);
    done(&ib);
}

Test(inbox, probation_doubles_with_strikes_and_strikes_are_forgiven)
{
    ohm_inbox_t *ib = started(1, 4, 0, 100000, 10);
    uint32_t r = 10;
    int64_t gaps[5];
    for (int k = 0; k < 5; k++) {
        /* Waited for, it misses the deadline; then it delivers in step every
         * round: how many rounds until it is waited for again? */
        cr_assert(ohm_inbox_waits_for(ib, 0));
        ohm_inbox_deadline(ib);
        ohm_inbox_close(ib, NULL, 0);
        uint32_t start = r;
        for (;;) {
            ohm_inbox_advance(ib, ++r);
            if (ohm_inbox_waits_for(ib, 0)) break;
            model(ib, 0, r);
            ohm_inbox_close(ib, NULL, 0);
            cr_assert(r < start + 1000);
        }
        gaps[k] = r - start;
    }
    cr_expect_eq(stats(ib, 0).strikes, 5);
    /* probation 2^(s-1) rounds after strike s, then one round to be heard */
    for (int k = 0; k < 5; k++)
        cr_expect_eq(gaps[k], 2 + (1 << k), "strike %d: waited for again after %ld rounds", k + 1,
                     (long)gaps[k]);
    /* OHM_INBOX_FORGIVE rounds delivered in time forgive one strike. */
    for (int k = 0; k < OHM_INBOX_FORGIVE; k++) {
        model(ib, 0, r);
        ohm_inbox_close(ib, NULL, 0);
        ohm_inbox_advance(ib, ++r);
    }
    cr_expect_eq(stats(ib, 0).strikes, 4);
    done(&ib);
}

Test(inbox, link_lost_means_not_waited_for_until_the_link_is_up)
{
    ohm_inbox_t *ib = started(1, 4, 0, 1000, 10);
    cr_expect_eq(ohm_inbox_link_lost(ib, 0), 1);
    cr_expect_eq(ohm_inbox_waits_for(ib, 0), 0);
    model(ib, 0, 10); /* sent before the loss, read after it */
    ohm_inbox_advance(ib, 11);
    cr_expect_eq(ohm_inbox_waits_for(ib, 0), 0, "a frame over a cut link does not revive it");
    ohm_inbox_link_up(ib, 0);
    model(ib, 0, 11);
    ohm_inbox_advance(ib, 12);
    cr_expect_eq(ohm_inbox_waits_for(ib, 0), 1);
    done(&ib);
}

Test(inbox, bye_means_never_waited_for_and_out_of_the_quorum)
{
    ohm_inbox_t *ib = started(3, 4, 0, 1000, 10);
    feed(ib, 2, OHM_MSG_BYE, 10, 0);
    cr_expect_eq(ohm_inbox_waits_for(ib, 2), 0);
    cr_expect_eq(ohm_inbox_quorum(ib), 2, "two reachable neighbours: both needed");
    done(&ib);
}

/* ----------------------------------------------------------------- hello */

Test(inbox, hello_is_answered_once_per_round_when_behind_and_never_in_the_barrier)
{
    ohm_inbox_t *ib = make(1, 4, 0, 1000);
    cr_expect_eq(feed(ib, 0, OHM_MSG_HELLO, 0, 0), 0, "in the barrier: no answer");
    cr_expect_eq(ohm_inbox_all_heard(ib), 1);
    ohm_inbox_end_barrier(ib, NULL, 0);
    ohm_inbox_advance(ib, 20);
    cr_expect_eq(feed(ib, 0, OHM_MSG_HELLO, 3, 0), 1, "behind us: answer with our round");
    cr_expect_eq(feed(ib, 0, OHM_MSG_HELLO, 3, 0), 0, "a flood is answered once per round");
    cr_expect_eq(feed(ib, 0, OHM_MSG_HELLO, 25, 0), 0, "ahead of us: it is answering ours");
    ohm_inbox_advance(ib, 21);
    cr_expect_eq(feed(ib, 0, OHM_MSG_HELLO, 3, 0), 1);
    done(&ib);
}

Test(inbox, hello_is_no_evidence)
{
    ohm_inbox_t *ib = started(2, 4, 0, 1000, 10);
    model(ib, 0, 50);
    model(ib, 1, 50);
    cr_expect_eq(ohm_inbox_catch_up(ib), 50);
    feed(ib, 1, OHM_MSG_HELLO, 900, 0); /* a restart: its models are history */
    cr_expect_eq(stats(ib, 1).evid, -1);
    cr_expect_eq(ohm_inbox_catch_up(ib), -1, "one neighbour's evidence is not a quorum of two");
    done(&ib);
}

Test(inbox, barrier_end_marks_the_unheard_down)
{
    ohm_inbox_t *ib = make(3, 4, 0, 1000);
    feed(ib, 0, OHM_MSG_HELLO, 0, 0);
    model(ib, 2, 0);
    cr_expect_eq(ohm_inbox_all_heard(ib), 0);
    uint32_t unheard[3];
    cr_expect_eq(ohm_inbox_end_barrier(ib, unheard, 3), 1);
    cr_expect_eq(unheard[0], 11);
    cr_expect_eq(ohm_inbox_waits_for(ib, 1), 0);
    cr_expect_eq(ohm_inbox_waits_for(ib, 0), 1);
    done(&ib);
}

/* -------------------------------------------------------------- catch-up */

Test(inbox, one_liar_cannot_make_a_peer_skip)
{
    /* The hijack: one neighbour's frames stamped near the last round, NaN or
     * finite, while the others are in step. */
    ohm_inbox_t *ib = started(3, 4, 0, 8000, 564);
    feed(ib, 0, OHM_MSG_MODEL, 7990, 0);
    cr_expect_eq(ohm_inbox_catch_up(ib), -1, "a NaN model proves nothing");
    model(ib, 0, 7990);
    model(ib, 1, 564);
    model(ib, 2, 563);
    cr_expect_eq(ohm_inbox_catch_up(ib), -1, "one neighbour of three is no quorum");
    done(&ib);
}

Test(inbox, a_ring_peer_never_follows_one_neighbour)
{
    ohm_inbox_t *ib = started(2, 4, 0, 8000, 100);
    model(ib, 0, 7990);
    cr_expect_eq(ohm_inbox_catch_up(ib), -1, "the other neighbour has proved nothing");
    model(ib, 1, 100);
    cr_expect_eq(ohm_inbox_catch_up(ib), -1, "the other neighbour is in step");
    done(&ib);
}

Test(inbox, restarted_peer_catches_up_in_one_step)
{
    /* Restarted at round 40 from a checkpoint, neighbours at 300-302. */
    ohm_inbox_t *ib = started(3, 4, 0, 1000, 40);
    model(ib, 0, 300);
    model(ib, 1, 302);
    model(ib, 2, 301);
    int64_t t = ohm_inbox_catch_up(ib);
    cr_expect_eq(t, 301, "the highest round a quorum (2 of 3) proved");
    ohm_inbox_advance(ib, (uint32_t)t);
    cr_expect_eq(((tag_t *)ohm_inbox_model(ib, 2))->round, 301, "its model for that round is used");
    cr_expect_eq(ohm_inbox_catch_up(ib), -1, "in step now");
    done(&ib);
}

Test(inbox, quorum_grows_with_b)
{
    ohm_inbox_t *ib = started(4, 4, 2, 1000, 10);
    cr_expect_eq(ohm_inbox_quorum(ib), 3, "max(b+1, floor(4/2)+1)");
    model(ib, 0, 500);
    model(ib, 1, 500);
    cr_expect_eq(ohm_inbox_catch_up(ib), -1, "two of four may all be Byzantine with b = 2");
    model(ib, 2, 400);
    cr_expect_eq(ohm_inbox_catch_up(ib), 400, "never past what b + 1 proved");
    ohm_inbox_destroy(&ib);
    ib = started(2, 4, 2, 1000, 10);
    cr_expect_eq(ohm_inbox_quorum(ib), 0, "b >= degree: never");
    model(ib, 0, 500);
    model(ib, 1, 500);
    cr_expect_eq(ohm_inbox_catch_up(ib), -1);
    done(&ib);
}

Test(inbox, never_catches_up_to_the_end_of_the_run)
{
    ohm_inbox_t *ib = started(1, 4, 0, 100, 10);
    model(ib, 0, 100);
    cr_expect_eq(ohm_inbox_catch_up(ib), -1);
    model(ib, 0, 60);
    cr_expect_eq(ohm_inbox_catch_up(ib), 60, "a lone neighbour at b = 0 is a quorum of one");
    model(ib, 0, 11);
    cr_expect_eq(ohm_inbox_catch_up(ib), -1, "one round ahead is in step");
    done(&ib);
}

Test(inbox, cut_neighbours_are_out_of_the_quorum)
{
    ohm_inbox_t *ib = started(3, 4, 0, 1000, 10);
    model(ib, 0, 200);
    model(ib, 1, 200);
    model(ib, 2, 10);
    cr_expect_eq(ohm_inbox_catch_up(ib), 200);
    ohm_inbox_link_lost(ib, 0);
    cr_expect_eq(ohm_inbox_quorum(ib), 2);
    cr_expect_eq(ohm_inbox_catch_up(ib), -1, "of the two reachable, one is in step");
    done(&ib);
}

/* ------------------------------------------------------------------ hold */

Test(inbox, holds_for_a_neighbour_far_behind_within_its_budget)
{
    ohm_inbox_t *ib = started(2, 4, 0, 1000, 100);
    model(ib, 0, 100);
    model(ib, 1, 90);
    cr_expect_eq(ohm_inbox_holds_for(ib, 0, 0.0), 0);
    cr_expect_eq(ohm_inbox_holds_for(ib, 1, 0.0), 1);
    cr_expect_eq(ohm_inbox_hold_begin(ib, 0.0), 1);
    model(ib, 1, 97); /* it comes near */
    cr_expect_eq(ohm_inbox_holding(ib, 0.3), 0);
    cr_expect_eq(ohm_inbox_hold_end(ib, 0.3, NULL, 0), 0);
    cr_expect_float_eq(stats(ib, 1).held_s, 0.3, 1e-9);
    done(&ib);
}

Test(inbox, hold_budget_is_spent_and_refills)
{
    /* burst 2 s, refill 0.1 s per s, a hold needs 0.5 s of budget */
    ohm_inbox_t *ib = started(1, 4, 0, 100000, 100);
    model(ib, 0, 10); /* a liar stamping far-past rounds, forever */
    double now = 0;
    int holds = 0;
    uint32_t spent[2];
    int reported = 0;
    while (now < 20.0) {
        if (ohm_inbox_hold_begin(ib, now)) {
            holds++;
            double end = now;
            while (ohm_inbox_holding(ib, end) && end < now + 1.0)
                end += 0.01;
            now = end;
            reported += ohm_inbox_hold_end(ib, now, spent, 2);
        }
        now += 0.1; /* a round */
    }
    double held = stats(ib, 0).held_s;
    /* 2 s at start + 0.1 s per s over 20 s = 4 s at most. */
    cr_expect_leq(held, 2.0 + 0.1 * 20 + 0.02, "held %.2f s", held);
    cr_expect_geq(held, 2.0, "held %.2f s: the burst was not used", held);
    cr_expect_eq(reported, 1, "the spent budget is reported once");
    cr_expect_gt(holds, 2);
    done(&ib);
}

Test(inbox, no_hold_for_cut_or_unproven_neighbours)
{
    ohm_inbox_t *ib = started(2, 4, 0, 1000, 100);
    feed(ib, 0, OHM_MSG_HELLO, 3, 0); /* announced, never proved */
    model(ib, 1, 10);
    ohm_inbox_link_lost(ib, 1);
    cr_expect_eq(ohm_inbox_holding(ib, 0.0), 0);
    done(&ib);
}

/* ---------------------------------------------------------------- misc */

Test(inbox, drops_of_unknown_senders_are_counted_apart)
{
    ohm_inbox_t *ib = started(1, 4, 0, 100, 0);
    ohm_inbox_drop(ib, -1, OHM_DROP_NOT_NEIGHBOUR);
    ohm_inbox_drop(ib, 0, OHM_DROP_SPOOFED);
    cr_expect_eq(ohm_inbox_unknown_drops(ib, OHM_DROP_NOT_NEIGHBOUR), 1);
    cr_expect_eq(stats(ib, 0).drops[OHM_DROP_SPOOFED], 1);
    cr_expect_str_eq(ohm_drop_name(OHM_DROP_STALE), "stale");
    done(&ib);
}

Test(inbox, rejects_bad_options)
{
    uint32_t id = 1;
    ohm_inbox_opts_t o = {.rounds = 10, .future = OHM_INBOX_MAX_FUTURE + 1, .release = release_tag};
    ohm_inbox_t *ib = NULL;
    cr_expect_neq(ohm_inbox_new(&o, &id, 1, &ib), 0);
    cr_expect_null(ib);
    o.future = 4;
    o.release = NULL;
    cr_expect_neq(ohm_inbox_new(&o, &id, 1, &ib), 0);
}

Test(inbox, a_neighbour_with_a_strike_cannot_complete_a_catch_up_quorum)
{
    /* A ring: the attacker went silent (a strike), then bursts models stamped
     * ahead while the honest neighbour is legitimately two rounds ahead. */
    ohm_inbox_t *ib = started(2, 4, 0, 1000, 10);
    model(ib, 1, 10);
    ohm_inbox_deadline(ib);
    ohm_inbox_close(ib, NULL, 0); /* neighbour 0 missed it: a strike */
    cr_assert_eq(stats(ib, 0).strikes, 1);
    ohm_inbox_advance(ib, 11);
    model(ib, 0, 20); /* its burst */
    model(ib, 1, 13); /* the honest neighbour, ahead */
    cr_expect_eq(ohm_inbox_quorum(ib), 2, "it still counts among the reachable");
    cr_expect_eq(ohm_inbox_catch_up(ib), -1, "but gives no evidence");
    done(&ib);
}

/* An "unchanged" that refers to a copy older than comm.max_staleness: the
 * neighbour had to send. Dropped as stale_copy, no evidence, but it ends the
 * wait for that neighbour like any invalid model of the round. */
Test(inbox, a_too_stale_unchanged_is_dropped_and_no_evidence)
{
    ohm_inbox_t *ib = started(2, 4, 0, 100, 5);
    ohm_inbox_msg_t m = {.type = OHM_MSG_MODEL, .round = 5, .valid = 0, .too_stale = 1};
    ohm_inbox_feed(ib, 0, &m, tag(0, 5));
    cr_expect_eq(stats(ib, 0).drops[OHM_DROP_STALE_COPY], 1);
    cr_expect_eq(stats(ib, 0).drops[OHM_DROP_NONFINITE], 0);
    cr_expect_null(ohm_inbox_model(ib, 0));
    cr_expect_eq(ohm_inbox_waits_for(ib, 0), 0, "it spoke for this round");
    cr_expect_eq(stats(ib, 0).evid, -1, "no evidence");
    m.round = 7; /* a future one is never buffered */
    ohm_inbox_feed(ib, 1, &m, tag(1, 7));
    cr_expect_eq(stats(ib, 1).drops[OHM_DROP_STALE_COPY], 1);
    cr_expect_eq(stats(ib, 1).evid, -1);
    cr_expect_str_eq(ohm_drop_name(OHM_DROP_STALE_COPY), "stale_copy");
    done(&ib);
}
