/* ohm_attack: what a Byzantine peer sends (docs/robust.md, section "Attacks").
 *
 * Pure functions: from what the Byzantine peer observed this round for one
 * target (the honest neighbours' vectors, the target's own vector when it was
 * received, and the public combination weights) craft the vector sent to that
 * target. Noise is drawn from a small generator of this module, seeded by the
 * caller and derived per (round, target), so a run is reproducible.
 * This module depends on libc and libm only. */
#ifndef OHM_ATTACK_H
#define OHM_ATTACK_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    OHM_ATTACK_GAUSSIAN = 0, /* honest mean + sigma * N(0, I) */
    OHM_ATTACK_SIGNFLIP,     /* -mean(honest U target) */
    OHM_ATTACK_ISOLATION,    /* makes the target's weighted mean its own model */
    OHM_ATTACK_DUPLICATE,    /* a copy of honest vector number `dup` */
    OHM_ATTACK_ALIE,         /* per coordinate mu + z * sigma over the honest vectors */
    OHM_ATTACK_IPM,          /* -eps * honest mean (inner-product manipulation) */
    OHM_ATTACK_LABELFLIP,    /* training side: labels y -> C-1-y, sends its honest model */
    OHM_ATTACK_ZERO,         /* all zeros */
    OHM_ATTACK_CRASH,        /* sends nothing */
    OHM_ATTACK_NAN,          /* all NaN */
    /* Control-plane attacks: an honest-looking value (the honest mean, or NaN
     * with nan=1) sent with lies about rounds, at the wrong times, or with
     * floods of announcements (ohm_attack_plan says what to send when). */
    OHM_ATTACK_ROUNDLIE,    /* models stamped far ahead (or behind: shift < 0) */
    OHM_ATTACK_STALE,       /* replays of what it had lag rounds ago */
    OHM_ATTACK_HELLO_FLOOD, /* count hellos per round to each neighbour, with random rounds */
    OHM_ATTACK_MUTE_BURST,  /* silent for mute rounds, then a burst of burst + 1 rounds at once */
    OHM_ATTACK_COUNT
} ohm_attack_kind_t;

/* Whose neighbourhood the honest vectors of a view come from (key "view=").
 * self: what the Byzantine peer received this round (the default, ohmpeer's
 * original variants). target: the target's own honest neighbours, as the IOS
 * authors' attacker sees them; with it isolation is the exact formula,
 * duplicate redraws its copy every round, and ALIE uses the unbiased standard
 * deviation and the IOS paper's z (ohm_attack_alie_z_paper). */
enum { OHM_ATTACK_VIEW_SELF = 0, OHM_ATTACK_VIEW_TARGET = 1 };

/* Return codes of this module (no dependency on libohm's error table). */
enum { OHM_ATTACK_OK = 0, OHM_ATTACK_EARGS = -1 };

typedef struct {
    ohm_attack_kind_t kind;
    double sigma;  /* gaussian: noise standard deviation (default 30) */
    double eps;    /* ipm: scale of the reversed honest mean (default 0.1) */
    double z;      /* alie: z when z_set, else derived from (n, f) */
    int z_set;     /* 1 when "z=" was given */
    int dup;       /* duplicate: index in the honest view (default 0; view=self) */
    int view;      /* OHM_ATTACK_VIEW_SELF (default) or OHM_ATTACK_VIEW_TARGET */
    uint64_t seed; /* noise seed (default 0; "seed=" or the caller sets it) */
    /* control-plane attacks */
    int64_t shift; /* roundlie: stamp = round + shift when shift_set */
    int shift_set; /* else stamp = max(round + 2, rounds - 10): near the end of the run */
    int nan;       /* roundlie: the parameters are NaN (a hostile model that fails its checks) */
    int lag;       /* stale: rounds back (default 10) */
    int restamp;   /* stale: stamp the replay with the current round (a stale value) */
    int count;     /* hello-flood: hellos per round per neighbour (default 100) */
    int mute;      /* mute-then-burst: silent rounds per cycle (default 3) */
    int burst;     /* mute-then-burst: extra future rounds sent at once (default 8) */
} ohm_attack_params_t;

/* What the Byzantine peer observes for one target in one round. */
typedef struct {
    const float *const *honest; /* honest[n_honest]: honest vectors received this round */
    int n_honest;
    const float *target; /* the target's own vector, or NULL if not received */
    double a_tt;         /* the target's self weight */
    double h;            /* total weight the target gives its honest neighbours */
    double wb;           /* total weight the target gives its Byzantine neighbours */
    int n;               /* participants (ALIE's n) */
    int f;               /* Byzantine participants (ALIE's f) */
    uint32_t round;      /* noise is a function of (seed, round, target_id) */
    uint32_t target_id;
    const float *own; /* the Byzantine peer's own model (labelflip sends it), or NULL */
    /* view=target: honest_w[i] is the weight the target gives honest[i]; the
     * target's honest neighbours that were not observed hold the remaining
     * h - sum(honest_w) (isolation approximates them by the observed ones). */
    const double *honest_w;
} ohm_attack_view_t;

/* Defaults for an attack (sigma 30, eps 0.1, dup 0, seed 0, z from n and f). */
void ohm_attack_defaults(ohm_attack_params_t *p, ohm_attack_kind_t kind);

/* Attack name (static storage) and kind from a name (-1 if unknown). */
const char *ohm_attack_name(ohm_attack_kind_t kind);
int ohm_attack_from_name(const char *name);

/* Parses "name[:key=value,...]" (keys: sigma, eps, z, dup, seed, view; shift,
 * nan, lag, restamp, count, mute, burst for the control-plane attacks) into *p.
 * Returns OHM_ATTACK_OK, or OHM_ATTACK_EARGS with a one-line reason naming the
 * attack or key in err[errlen] (err may be NULL). */
int ohm_attack_parse(const char *spec, ohm_attack_params_t *p, char *err, size_t errlen);

/* 0 for attacks that send nothing (crash), else 1. */
int ohm_attack_sends(const ohm_attack_params_t *p);

/* 1 for training-side attacks (labelflip): the peer trains on flipped labels
 * (ohm_attack_flip_label) and sends its own model unchanged. */
int ohm_attack_flips_labels(const ohm_attack_params_t *p);

/* Label map of labelflip: y -> classes-1-y (9-y for 10 classes). y outside
 * [0, classes) is returned unchanged. */
int ohm_attack_flip_label(int y, int classes);

/* Inverse standard normal CDF, Phi^-1(p) for 0 < p < 1 (Acklam's rational
 * approximation refined by one Halley step; |error| < 1e-12). NaN outside. */
double ohm_attack_norm_ppf(double p);

/* ALIE's z for n participants of which f Byzantine: s = floor(n/2 + 1) - f,
 * z = Phi^-1((n - s)/n). Returns 0 when (n - s)/n is not in (0, 1). */
double ohm_attack_alie_z(int n, int f);

/* What a peer with attack p sends in round `round` of a run of `rounds`,
 * besides the crafted vector: how many models (0 = silent; more than one: a
 * burst stamped stamp, stamp+1, ...), the stamp of the first, whether the
 * vector is a replay of the one of round `stamp` (stale; the caller keeps the
 * history), and how many hellos each neighbour gets. Value attacks send one
 * model stamped with the round; crash sends nothing. */
typedef struct {
    int models;
    uint32_t stamp;
    int replay;
    uint32_t replay_round;
    int hellos;
} ohm_attack_plan_t;
void ohm_attack_plan(const ohm_attack_params_t *p, uint32_t round, uint32_t rounds,
                     ohm_attack_plan_t *out);

/* The round stamped on hello number k of round `round` (hello-flood): drawn
 * from [0, round] by the attack's seed, so the flood looks like restarts. */
uint32_t ohm_attack_hello_stamp(const ohm_attack_params_t *p, uint32_t round, int k);

/* The IOS authors' ALIE z for a target with N neighbours (itself not counted)
 * of which B Byzantine: s = floor((N + 1)/2) - B, z = Phi^-1((N - s)/N)
 * (0.3186 for N = 8, B = 1). Returns 0 when (N - s)/N is not in (0, 1). */
double ohm_attack_alie_z_paper(int N, int B);

/* Crafts out[d] for the target described by *v. Without honest vectors the
 * attacks fall back to the target's vector, else zeros (details per attack in
 * ohm_attack.c); duplicate copies honest[dup % n_honest] (view=target: an
 * index drawn from (seed, round, target_id)). For crash out is left untouched
 * (nothing is sent). Errors: OHM_ATTACK_EARGS on a NULL pointer, n_honest < 0,
 * (isolation) wb <= 0 or, view=target, honest_w NULL with honest vectors,
 * (labelflip) own == NULL. */
int ohm_attack_craft(const ohm_attack_params_t *p, const ohm_attack_view_t *v, size_t d,
                     float *out);

#endif
