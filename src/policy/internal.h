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

/* gated's demand eviction (reuse.c): the expert with the lowest predicted
 * reuse is evicted instead of the least recently used one when the
 * latter's calibrated reuse is higher by at least this (expected misses at
 * the next occurrence) */
#define EC_REUSE_DELTA 0.05
/* calibration cells: q bins x age bins; pseudo-observations of the shrink
 * towards the age bin's rate */
enum { REUSE_QB = 10, REUSE_AB = 9 };
#define REUSE_SHRINK 4.0

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
    int64_t *last_tok;           /* [L*E] token of the last use, -1 never */
    int64_t *row_tok;            /* [L] token at which the reuse row was predicted */
    /* calibration: reuse rows scored (seen) and experts of them used at the
     * next occurrence, per (q bin, age bin) cell, per age bin and in all */
    int64_t cal_seen[REUSE_QB * REUSE_AB], cal_used[REUSE_QB * REUSE_AB];
    int64_t age_seen[REUSE_AB], age_used[REUSE_AB];
    int64_t all_seen, all_used;

    /* gated's short-horizon calibration (calib.c): the row each target of
     * horizon h = 1..min(horizon, n_layers - 1) was priced with, scored
     * when its step comes against what the router chose, per source
     * (predictor, hint), horizon and q bin */
    int32_t cal_h;               /* horizons calibrated */
    float *cal_row;              /* [cal_h][L][E] */
    int64_t *cal_at;             /* [cal_h][L] step the row is for, -1 */
    uint8_t *cal_src;            /* [cal_h][L] its source */
    int64_t *cal_n, *cal_hit;    /* [CALIB_SRC][cal_h][REUSE_QB] experts scored, used */

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

};

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

/* Short-horizon calibration (calib.c), gated only. */
enum { CALIB_SRC = 2 }; /* 0 predictor, 1 hint */
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
/* gated, once per step (not again on a retry): scores the current layer's
 * previous reuse row against the experts used, then predicts its next one. */
void reuse_observe(ec_policy *p, const int16_t *experts, int32_t k);
void reuse_reset(ec_policy *p);
/* Calibrated probability that the next occurrence of layer uses expert,
 * from its reuse row; -1 when the layer has no row. */
double reuse_calibrated(const ec_policy *p, int32_t layer, int32_t expert);
/* gated's demand victim in layer's pool (-1: none evictable). */
int32_t reuse_victim(ec_policy *p, int32_t layer);
/* The reuse row of `layer`, or NULL when none was predicted. */
static inline const float *reuse_row(const ec_policy *p, int32_t layer)
{
    return p->reuse_at[layer] >= 0 ? p->reuse + (size_t)layer * (size_t)p->E : NULL;
}
/* Oracle: next use of slot's expert after the current step (memoised). */
int64_t policy_next_use(ec_policy *p, int32_t slot);

/* Planners (plan.c): queue prefetches for the steps after p->step. */
void plan_predict(ec_policy *p);
void plan_gated(ec_policy *p);
void plan_oracle(ec_policy *p);
/* Queues a prefetch of (layer, expert) into victim slot for target_step. */
void plan_queue(ec_policy *p, int32_t slot, int32_t layer, int32_t expert, int64_t target_step,
                double prob);

#endif
