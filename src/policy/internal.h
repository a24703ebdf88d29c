/* Internal layout of the policy module: cache, queue and policy state. */
#ifndef EC_POLICY_INTERNAL_H
#define EC_POLICY_INTERNAL_H

#include "../core/internal.h"
#include "expertcast/policy.h"

struct ec_cache {
    int32_t L, E;
    int32_t per_layer;   /* slots per layer pool (0 when global) */
    int32_t global;      /* slots of the one pool (0 when per layer) */
    int32_t n_slots;
    ec_slot *slots;      /* [n_slots] */
    ec_slot *prev;       /* [n_slots] occupant displaced by a QUEUED transfer (layer -1: none) */
    int32_t *where;      /* [L*E] slot holding (layer, expert), -1 */
    int64_t *freq;       /* [L*E] acquires of (layer, expert) since reset (LFU) */
    int32_t *occ;        /* [L] slots holding an expert of the layer (any state) */
    int32_t *quota;      /* [L] global pool sized per layer (ec_cache_set_quotas), or NULL */
    int quota_off;       /* victims may ignore the quotas (none of the pool qualified) */
    ec_cache_stats stats;
};

struct ec_queue {
    int32_t cap;         /* one entry per slot at most */
    ec_transfer *node;   /* [cap] indexed by slot */
    int32_t *next, *prv; /* [cap] list links, -1 ends */
    uint8_t *list;       /* [cap] 0 not queued, 1 demand list, 2 prefetch list */
    int32_t head[3], tail[3];
    int32_t len;
};

/* ---- cache helpers (cache.c) ---- */

static inline int32_t cache_key(const ec_cache *c, int32_t layer, int32_t expert)
{
    return layer * c->E + expert;
}
static inline void cache_pool(const ec_cache *c, int32_t layer, int32_t *first, int32_t *n)
{
    if (c->per_layer > 0) {
        *first = layer * c->per_layer;
        *n = c->per_layer;
    } else {
        *first = 0;
        *n = c->global;
    }
}
/* Pool index of a layer: the layer for per-layer pools, 0 for the one pool. */
static inline int32_t cache_pool_index(const ec_cache *c, int32_t layer)
{
    return c->per_layer > 0 ? layer : 0;
}
/* Whether slot may take an expert of layer under the quotas: a layer
 * below its quota takes slots of layers above theirs (or empty ones); a
 * layer at or above it takes its own. */
static inline int cache_quota_allows(const ec_cache *c, int32_t slot, int32_t layer)
{
    if (!c->quota || c->quota_off)
        return 1;
    const ec_slot *s = &c->slots[slot];
    if (s->layer < 0)
        return 1;
    if (c->occ[layer] >= c->quota[layer])
        return s->layer == layer;
    return c->occ[s->layer] > c->quota[s->layer];
}
/* Recency of a slot: its last use, or when it was filled or (prefetch) the
 * step it was fetched for, whichever is latest. */
static inline int64_t slot_recency(const ec_slot *s)
{
    int64_t r = s->last_use > s->filled_at ? s->last_use : s->filled_at;
    if (s->prefetched && s->target_step > r)
        r = s->target_step;
    return r;
}
/* Puts (layer, expert) in slot (state QUEUED), keeping the displaced
 * occupant in c->prev for a later restore. */
void cache_assign(ec_cache *c, int32_t slot, int32_t layer, int32_t expert, int64_t step,
                  int demand, int64_t target_step);
/* Takes back a QUEUED slot: restores the displaced occupant when it is not
 * resident elsewhere, else leaves the slot empty. */
void cache_restore(ec_cache *c, int32_t slot);
/* Empties a READY slot (on-demand's release). */
void cache_drop(ec_cache *c, int32_t slot);
/* Fills every (layer, expert) READY (resident); the cache must hold all. */
void cache_fill_all(ec_cache *c);

/* ---- queue helpers (queue.c) ---- */

enum { QUEUE_NONE = 0, QUEUE_DEMAND = 1, QUEUE_PREFETCH = 2 };
/* Appends t to its list (demand or prefetch); t->slot must not be queued. */
void queue_push(ec_queue *q, const ec_transfer *t);
/* Unlinks slot's entry; no-op when it is not queued. */
void queue_remove(ec_queue *q, int32_t slot);
void queue_clear(ec_queue *q);

/* ---- policy ---- */

/* ---- the reuse model (reuse_model.c) ----
 *
 * Features of (layer, expert) when the layer is observed at token t: age
 * (tokens since its last use at the layer, 0 = used now), uses over the
 * last 16 tokens, and q, the probability the predictor gives it for the
 * same layer of the next token (which reads this token's routing so far).
 * Each feature is binned; a cell is (age bin, use bin, q bin). Outcome for
 * horizon n in {1, 2, 4, 8}: used at the layer within the next n tokens. */
enum { RU_NH = 4, RU_AB = 8, RU_FB = 5, RU_QB = 10, RU_RING = 8 };
enum { RU_AF = RU_AB * RU_FB, RU_CELLS = RU_AF * RU_QB };
extern const int32_t ec_reuse_horizons[RU_NH]; /* 1, 2, 4, 8 */

/* Counts of cases and of uses within n, per cell and per coarser level
 * (age x uses, age, all), for each horizon. Doubles: fitted counts are
 * scaled when blended. */
typedef struct reuse_counts {
    double seen[RU_NH][RU_CELLS], used[RU_NH][RU_CELLS];
    double af_seen[RU_NH][RU_AF], af_used[RU_NH][RU_AF];
    double a_seen[RU_NH][RU_AB], a_used[RU_NH][RU_AB];
    double all_seen[RU_NH], all_used[RU_NH];
} reuse_counts;

/* The running features of one stream (a policy's, or a sequence being
 * fitted or evaluated). */
typedef struct reuse_track {
    int32_t L, E;
    uint64_t *mask;    /* [L*E] bit i: used i tokens before the layer's last observation */
    int64_t *ltok;     /* [L] token of the layer's last observation, -1 */
    uint16_t *cell;    /* [L][RU_RING][E] cells at the layer's last observations */
    int64_t *ring_tok; /* [L][RU_RING] token of each ring row, -1 */
} reuse_track;

/* Called for every case scored: horizon index, the cell predicted, and
 * whether the expert was used within that horizon. */
typedef void (*reuse_case_fn)(void *ctx, int h, int32_t cell, int used);
/* Called before the first layer of every token of a replayed sequence. */
typedef void (*reuse_token_fn)(void *ctx, int64_t tok);

ec_status reuse_track_init(reuse_track *t, int32_t L, int32_t E);
void reuse_track_free(reuse_track *t);
void reuse_track_reset(reuse_track *t);
/* Layer observed at token tok with experts (k ids) and q[E] (NULL: none;
 * blind = k / E is used): scores the rows made 1, 2, 4, 8 tokens ago into
 * *score (NULL: not scored), then records this token's cells. Never
 * allocates. */
void reuse_track_observe(reuse_track *t, int32_t layer, int64_t tok, const int16_t *experts,
                         int32_t k, const float *q, double blind, reuse_counts *score,
                         reuse_case_fn fn, void *ctx);
/* Cell of (layer, expert) at the layer's last observation, -1 when none. */
static inline int32_t reuse_track_cell(const reuse_track *t, int32_t layer, int32_t expert)
{
    if (t->ltok[layer] < 0)
        return -1;
    return t->cell[((size_t)layer * RU_RING + (size_t)(t->ltok[layer] % RU_RING)) * (size_t)t->E +
                   (size_t)expert];
}

/* The probabilities of use within 1, 2, 4, 8 tokens of every cell, from
 * fitted counts (each level capped at REUSE_FIT_CAP cases) plus the
 * stream's, shrunk level by level towards the coarser one and finally
 * towards blind. Made non-decreasing in n. */
#define REUSE_FIT_CAP 200.0
#define REUSE_SHRINK 4.0
/* fit as the tables take it: each level's counts capped at REUSE_FIT_CAP. */
void reuse_counts_cap(const reuse_counts *fit, reuse_counts *capped);
/* fit: capped (reuse_counts_cap). */
void reuse_table(const reuse_counts *fit, const reuse_counts *stream, double blind,
                 float (*prob)[RU_CELLS]);
/* The same at the coarser levels, mapped back to cells: by age alone and
 * by age and uses (for the evaluation's comparisons). */
void reuse_table_levels(const reuse_counts *fit, const reuse_counts *stream, double blind,
                        float (*by_age)[RU_CELLS], float (*by_age_uses)[RU_CELLS]);
/* Value of keeping an expert of the given cell: P1 + P2 + 2 P4 + 4 P8, the
 * expected truncated time to its next use (in tokens) with the sign
 * flipped: the lowest value is the expert Belady would evict. */
static inline float reuse_value(float (*prob)[RU_CELLS], int32_t cell)
{
    return prob[0][cell] + prob[1][cell] + 2.0f * prob[2][cell] + 4.0f * prob[3][cell];
}
/* gated evicts the expert of lowest value instead of the least recently
 * used one only when the latter's value is higher by at least this (in
 * tokens of expected time to next use): below it, recency decides. */
#define EC_REUSE_MARGIN 0.1

/* Replays the sequences of t with seq_mask set (NULL: all), each on its
 * own history and features (predictor pred may be NULL), scoring cases
 * into *score and/or fn. */
ec_status reuse_replay(const ec_trace *t, const uint8_t *seq_mask, const ec_predictor *pred,
                       reuse_counts *score, reuse_case_fn fn, reuse_token_fn tfn, void *ctx,
                       ec_error *err);

struct ec_reuse_model {
    int32_t L, E, k;
    int64_t n_cases;  /* (token, layer, expert) rows scored at horizon 1 */
    reuse_counts fit;
};

struct ec_policy {
    ec_policy_config cfg;
    ec_cache *c;
    ec_queue *q;
    const ec_predictor *pred;
    ec_future fut;
    int32_t L, E;

    /* the observation in progress */
    int64_t step;                /* current step (-1 before the first observe) */
    int32_t layer;
    int64_t serial;              /* observations so far: stamps below compare to it */
    int32_t k_obs;
    const ec_history *const *hs; /* valid during observe only */
    int32_t n_hist;
    int counted;                 /* the uses of `step` were counted (BUSY retry) */
    int32_t n_taken, n_requeued; /* prefetches taken back / queued again this step */

    int64_t *taken;              /* [L*E] serial when a queued prefetch of it was taken back */
    int64_t *plan_keep;          /* [n_slots] serial when the current plan wants it kept */

    /* predictions: probability that the next occurrence of a layer uses an expert */
    float *probs;                /* [E] predictor output */
    float *qrow;                 /* [L*E] */
    int64_t *qstamp;             /* [L] serial when the row was computed */
    uint8_t *qsrc;               /* [L] 1 when the row came from a runtime hint */
    int32_t *rank;               /* [E] */

    /* predicted reuse (gated): P(the next occurrence of layer l uses e),
     * predicted when layer l was last observed (horizon n_layers: the same
     * layer of the next token); one prediction per step */
    float *reuse;                /* [L*E] */
    int64_t *reuse_at;           /* [L] serial of that prediction, -1 none */
    /* the reuse model: features of the stream, fitted counts (a copy of an
     * ec_reuse_model's, zero without one), the stream's own counts, and
     * the table of P(use within n) they give, refreshed once per token */
    reuse_track track;
    reuse_counts *ru_fit, *ru_stream; /* ru_fit capped (reuse_counts_cap) */
    float (*ru_prob)[RU_CELLS];  /* [RU_NH][RU_CELLS] */
    int64_t ru_table_tok;        /* token the table was computed at, -1 */
    int have_fit;
    int32_t whatif_evict;        /* tokens the demand victims know ahead (what-if); 0 off */
    /* admission: the slot of a pool holding a demand that was not admitted
     * (the pool's scratch), by pool; stamp of its occupant's key */
    int32_t *scratch;            /* [L] by pool: slot, -1 */
    int32_t *scratch_key;        /* [L] by pool: the key of the expert not admitted */

    /* gated's (and hybrid's) short-horizon calibration (calib.c): the row
     * each target of horizon h = 1..min(horizon, n_layers - 1) was priced
     * with, scored
     * when its step comes against what the router chose, per source
     * (predictor, hint), horizon and q bin */
    int32_t cal_h;               /* horizons calibrated */
    float *cal_row;              /* [cal_h][L][E] */
    int64_t *cal_at;             /* [cal_h][L] step the row is for, -1 */
    uint8_t *cal_src;            /* [cal_h][L] its source */
    int64_t *cal_n, *cal_hit;    /* [CALIB_SRC][cal_h][CALIB_QB] experts scored, used */
    /* oracle */
    int16_t *fut_ex;             /* [E] */
    int64_t *nu;                 /* [n_slots] next use after the current step */
    int64_t *nu_stamp;           /* [n_slots] the (layer, expert) key nu[] is for, -1 */
    int64_t *pool_full;          /* [L] serial when the plan found no victim in the pool */

    /* how often an eviction is regretted: the evicted expert is asked for
     * again at its next occurrence (within n_layers steps). gated values a
     * victim at no less than this rate, whatever the predictor says. */
    int64_t *evicted_at;         /* [L*E] step its eviction became final, -1 */
    double evictions, regretted;

    /* hybrid (hybrid.c) */
    double lane_link, lane_host; /* the caller's lane waits for the next step (ms) */
    double hy_link, hy_host;     /* when the step's copies / host runs chosen so far
                                    finish, ms after its router decision */
    double hy_dev;               /* when the last copy the step waits for is in (0: none) */
    int32_t hy_n_host;           /* experts the step runs on the host so far */
    int64_t *host_at;            /* [L*E] serial of the observation that runs it on
                                    the host, -1 */
};

/* Whether the policy's kind evicts and admits by the reuse model (and so
 * keeps its features) and shares gated's reuse rows and prefetch plan:
 * gated, and hybrid, which places misses on top of gated's rules. A new
 * kind that wants the same eviction joins here. */
static inline int policy_uses_reuse(const ec_policy *p)
{
    return p->cfg.kind == EC_POLICY_GATED || p->cfg.kind == EC_POLICY_HYBRID;
}

/* P(an evicted expert is wanted again at its next occurrence), online,
 * add-one smoothed. */
static inline double policy_regret_rate(const ec_policy *p)
{
    return (p->regretted + 1.0) / (p->evictions + 2.0);
}

/* Victim rules (victim.c). A prefetch victim additionally must not be
 * wanted by the current plan. Return -1 when no slot qualifies. */
int32_t victim_demand(ec_policy *p, int32_t layer);
int32_t victim_prefetch(ec_policy *p, int32_t layer);
/* Oracle prefetch victim: furthest next use, which must lie after `need`. */
int32_t victim_oracle_prefetch(ec_policy *p, int32_t layer, int64_t need);
/* Probability row (E floats) that the next occurrence of `layer` after the
 * current position uses each expert (memoised per step; p->qsrc[layer]
 * says whether a hint made it). NULL when the policy has no predictor or
 * no history. */
const float *policy_qrow(ec_policy *p, int32_t layer);
/* Fills row[E] with the probability that the batch uses each expert at
 * the target `horizon` steps after the current position (1 - prod over
 * the sequences of (1 - min(1, k p))), p being a sequence's hint for that
 * target where its history holds one (ec_history_hint), else the
 * predictor's output. Returns 1 when a hint was used, 0 when the predictor
 * alone answered, -1 when there is no predictor or history or a
 * prediction failed. */
int policy_predict_use(ec_policy *p, int32_t horizon, float *row);

/* Short-horizon calibration (calib.c), kinds that use the reuse model
 * (gated, hybrid) only. */
enum { CALIB_SRC = 2, CALIB_QB = 10 }; /* sources: 0 predictor, 1 hint; q bins */
ec_status calib_alloc(ec_policy *p);
void calib_free(ec_policy *p);
void calib_reset(ec_policy *p);
/* Once per step (not again on a retry): scores the rows kept for this
 * step against the experts the router chose. */
void calib_observe(ec_policy *p, const int16_t *experts, int32_t k);
/* Keeps the row of the target `h` steps ahead (its source from qsrc) to
 * be scored when that step comes. */
void calib_keep(ec_policy *p, int32_t h, int32_t layer, const float *row);
/* Calibrated probability of use for a raw q of `layer`'s current row
 * (horizon from the current position): the rate at which experts given
 * that q by that source at that horizon were used, shrunk towards k /
 * n_experts - so a source is not trusted before the stream has shown it
 * right. Beyond the calibrated horizons: -1. */
double calib_q(const ec_policy *p, int32_t layer, double q);
/* gated and hybrid, once per step (not again on a retry): updates the
 * reuse model's features and stream counts with the experts used, then
 * predicts the layer's next reuse row. */
void reuse_observe(ec_policy *p, const int16_t *experts, int32_t k);
void reuse_reset(ec_policy *p);
/* Probability that the next occurrence of layer uses expert (the reuse
 * model's P(use within 1 token)); -1 when the layer has no features yet. */
double reuse_calibrated(ec_policy *p, int32_t layer, int32_t expert);
/* The reuse model's value of keeping (layer, expert) (reuse_value), or -1
 * when the layer has no features yet. */
double reuse_keep_value(ec_policy *p, int32_t layer, int32_t expert);
/* What-if eviction (ec_policy_set_whatif_evict): when the occupant of slot
 * is used again within the window, writes its key (above every value of
 * keeping, the nearer the use the higher) and returns 1; else 0. */
int reuse_whatif_key(ec_policy *p, int32_t slot, double *key);
/* Demand victim by the reuse model (what gated evicts, and what any policy
 * kind may call): the evictable slot of layer's pool with the lowest
 * value of keeping, the least recently used on ties; an empty slot first,
 * the pool's released scratch before anything. -1: none evictable. */
int32_t reuse_victim(ec_policy *p, int32_t layer);
/* Admission: the slot a demand for (layer, expert) takes, given victim v
 * (from reuse_victim). When the expert's own value of keeping is lower
 * than v's occupant's, it goes to the pool's scratch slot instead (the
 * slot of the previous demand not admitted, whose occupant goes first),
 * when that slot is evictable; the slot taken is then the pool's scratch.
 * Returns the slot to assign. */
int32_t reuse_admit(ec_policy *p, int32_t layer, int32_t expert, int32_t v);
/* An acquire of slot: a scratch occupant that is used again is admitted. */
void reuse_acquired(ec_policy *p, int32_t slot, int64_t step);
/* The reuse row of `layer`, or NULL when none was predicted. */
static inline const float *reuse_row(const ec_policy *p, int32_t layer)
{
    return p->reuse_at[layer] >= 0 ? p->reuse + (size_t)layer * (size_t)p->E : NULL;
}
/* Oracle: next use of slot's expert after the current step (memoised). */
int64_t policy_next_use(ec_policy *p, int32_t slot);

/* hybrid (hybrid.c). At a new step: starts the lanes from the caller's
 * waits. For an expert of the step with no slot: 1 when it runs on the host
 * (marked, counted), 0 when it is to be copied (the link's finish time
 * advances). hybrid_copy_behind, after the prefetch plan: queues a
 * background copy of the experts run on the host whose reuse pays for the
 * slot. */
void hybrid_begin_step(ec_policy *p);
int hybrid_place(ec_policy *p, int32_t layer, int32_t expert);
void hybrid_copy_behind(ec_policy *p, const int16_t *experts, int32_t k);

/* Planners (plan.c): queue prefetches for the steps after p->step. */
void plan_predict(ec_policy *p);
void plan_gated(ec_policy *p);
void plan_oracle(ec_policy *p);
/* Queues a prefetch of (layer, expert) into victim slot for target_step. */
void plan_queue(ec_policy *p, int32_t slot, int32_t layer, int32_t expert, int64_t target_step,
                double prob);

#endif
