/*
 * expertcast/policy.h - the decisions: what to prefetch, in which order, what
 * to evict. Shared unchanged by the simulator (virtual clock, modeled copy
 * engine) and the real loader (CPU or CUDA backend), so that what
 * `expertcast simulate` reports is what the loader does.
 *
 * The module knows nothing about time or CUDA. It owns three things:
 *   - ec_cache: the device slot table (which expert is in which slot, its
 *     state, pins by pending readers, recency and frequency of use);
 *   - ec_queue: transfers decided but not yet started, demand loads ahead
 *     of prefetches, so that a demand can overtake and a stale prefetch can
 *     be cancelled before it spends bandwidth;
 *   - ec_policy: the rules (on-demand, lru, lfu, predict, gated, oracle,
 *     resident, hybrid) that fill the queue, choose victims and (hybrid)
 *     say which misses run on the host instead of being copied.
 *
 * Time is counted in "steps": step = token * n_layers + layer, the position
 * of one layer of one token in the decode stream. The caller (loader or
 * simulator) drives the step forward with ec_policy_observe.
 */
#ifndef EXPERTCAST_POLICY_H
#define EXPERTCAST_POLICY_H

#include "expertcast/core.h"
#include "expertcast/predict.h"
#include "expertcast/trace.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- cache -------------------------------------------------------------- */

typedef enum ec_slot_state {
    EC_SLOT_EMPTY = 0,
    EC_SLOT_QUEUED,  /* assigned to an expert, transfer not started */
    EC_SLOT_LOADING, /* transfer started, not complete */
    EC_SLOT_READY    /* weights resident */
} ec_slot_state;

/* One device slot. Read-only for callers; changed through ec_cache_*. */
typedef struct ec_slot {
    int32_t layer, expert;  /* -1 when empty */
    ec_slot_state state;
    int32_t pins;           /* readers acquired and not yet released */
    uint8_t prefetched;     /* filled by a prefetch and not used since */
    int64_t last_use;       /* step of the last acquire (-1 never) */
    int64_t uses;           /* acquires since the slot was filled */
    int64_t filled_at;      /* step at which it was assigned */
    int64_t target_step;    /* prefetch: the step it was fetched for */
    int64_t need_step;      /* step whose router asked for it (-1 never): not a
                               victim while that step is the current one */
} ec_slot;

/*
 * Counters kept by the cache itself (the loader and simulator add time).
 * "Asked" means: named by ec_policy_observe (the router's choice).
 */
typedef struct ec_cache_stats {
    int64_t acquires;        /* expert uses asked for (observe) */
    int64_t hits;            /* resident (READY) when asked */
    int64_t inflight_hits;   /* its transfer had started (LOADING) when asked */
    int64_t misses;          /* absent or only queued: a demand load is needed */
    int64_t prefetches;      /* prefetch transfers started (bytes spent) */
    int64_t prefetch_hits;   /* started prefetches used at least once */
    int64_t wasted;          /* started prefetches evicted before any use */
    int64_t cancelled;       /* queued prefetches dropped before starting (no bytes) */
    int64_t evictions;       /* occupants dropped (a transfer into their slot started,
                                or on-demand's release) */
    int64_t loads;           /* transfers started (demand + prefetch) */
    int64_t host_runs;       /* hybrid: misses run on the host instead of copied
                                (counted in misses too) */
    int64_t copy_behinds;    /* hybrid: host-run experts queued for a background copy
                                (started ones count as prefetches) */
} ec_cache_stats;

typedef struct ec_cache ec_cache;

/*
 * Slots are organised in pools. per_layer > 0: every layer has its own pool
 * of per_layer slots. Otherwise global > 0: one pool of `global` slots for
 * all layers. A capacity >= the experts a pool can hold makes every expert
 * fit (only cold misses).
 */
ec_status ec_cache_create(int32_t n_layers, int32_t n_experts, int32_t per_layer, int32_t global,
                          ec_cache **out);
void ec_cache_destroy(ec_cache *c);
void ec_cache_reset(ec_cache *c); /* empty every slot, zero the stats */

int32_t ec_cache_n_slots(const ec_cache *c);
const ec_slot *ec_cache_slot(const ec_cache *c, int32_t slot);
/* Slot holding (layer, expert) in any non-empty state, or -1. O(1). */
int32_t ec_cache_find(const ec_cache *c, int32_t layer, int32_t expert);
/* The pool a layer's experts live in, and its slot range [first, first+n). */
void ec_cache_pool(const ec_cache *c, int32_t layer, int32_t *first, int32_t *n);
const ec_cache_stats *ec_cache_stats_get(const ec_cache *c);

/*
 * Sizes the one pool per layer (a global cache only): quota[l] slots for
 * layer l, summing to the pool's slots (each in [0, n_experts]). Victims
 * then keep the partition: a layer below its quota takes a slot of a layer
 * above its own (or an empty one), a layer at or above it replaces one of
 * its own; only when no such slot can be evicted does a victim come from
 * anywhere. The partition may change at any time (it is reached as slots
 * change hands) - the shape of per-layer pools of unequal sizes in one
 * allocation. NULL clears. EC_ERR_INVALID for a per-layer cache or sizes
 * that do not add up.
 */
ec_status ec_cache_set_quotas(ec_cache *c, const int32_t *quota);
/* Layer's quota, or -1 without quotas. */
int32_t ec_cache_quota(const ec_cache *c, int32_t layer);

/*
 * Per-layer pool sizes from a use profile: replays the sequences of t with
 * seq_mask set (NULL: all), measures for every layer how many uses an LRU
 * pool of each size would hit (stack distances, per sequence), and gives
 * `total` slots out one at a time to the layer that gains the most hits,
 * starting from min_per_layer each (ties: the lower layer). Writes
 * sizes[n_layers]. total must lie in [min_per_layer x layers, layers x
 * experts]. err may be NULL.
 */
ec_status ec_cache_size_layers(const ec_trace *t, const uint8_t *seq_mask, int32_t total,
                               int32_t min_per_layer, int32_t *sizes, ec_error *err);

/* ---- transfer queue ----------------------------------------------------- */

typedef struct ec_transfer {
    int32_t slot, layer, expert;
    uint8_t demand;       /* 1 demand load, 0 prefetch */
    int64_t target_step;  /* step the expert is expected to be used at */
    double prob;          /* the policy's probability of use (1 for demand) */
} ec_transfer;

typedef struct ec_queue ec_queue;
ec_status ec_queue_create(int32_t capacity, ec_queue **out);
void ec_queue_destroy(ec_queue *q);
int32_t ec_queue_len(const ec_queue *q);
/* Next transfer to start: the oldest demand, else the first prefetch.
 * Returns 1 and fills *out, or 0 when the queue is empty. The caller then
 * starts it and calls ec_policy_started. */
int ec_queue_pop(ec_queue *q, ec_transfer *out);
/* The i-th transfer in pop order (O(i)), or NULL past the end. */
const ec_transfer *ec_queue_at(const ec_queue *q, int32_t i);

/* ---- reuse model ---------------------------------------------------------- */

/*
 * What eviction needs to know: for an expert of a layer, the probability
 * that the layer uses it again within the next 1, 2, 4 and 8 tokens, from
 * its recency, its uses over the last 16 tokens and a predictor's vote for
 * the next token (which reads this token's routing so far). The model is a
 * table of counts per feature cell, fitted by replaying training
 * sequences; a policy adds the counts of the running stream to it
 * (calibration on the stream) and gated evicts by it (reuse.c).
 */
typedef struct ec_reuse_model ec_reuse_model;

ec_status ec_reuse_model_create(int32_t n_layers, int32_t n_experts, int32_t k,
                                ec_reuse_model **out);
void ec_reuse_model_destroy(ec_reuse_model *m);
/*
 * Fits on the sequences of t with seq_mask[i] != 0 (NULL: all), each
 * replayed token by token with its own history through pred (borrowed, may
 * be NULL: no vote) - pass a predictor fitted on the same training
 * sequences. Replaces what an earlier fit counted. err may be NULL.
 */
ec_status ec_reuse_model_fit(ec_reuse_model *m, const ec_trace *t, const uint8_t *seq_mask,
                             const ec_predictor *pred, ec_error *err);
/* Cases (layer, expert, token) the fit counted at horizon 1. */
int64_t ec_reuse_model_n_cases(const ec_reuse_model *m);

/* Horizons of the reuse model, in tokens. */
#define EC_REUSE_N_HORIZONS 4
#define EC_REUSE_N_VARIANTS 5

/* Most folds ec_reuse_eval fits (as the simulator's EC_SIM_MAX_FOLDS). */
#define EC_REUSE_EVAL_MAX_FOLDS 8

/*
 * Held-out evaluation of the reuse model: the sequences are cut into
 * min(sequences, EC_REUSE_EVAL_MAX_FOLDS) contiguous folds of near-equal
 * size (leave one sequence out up to 8 sequences; the folds the simulator
 * fits gated's models on, batch 1), and every sequence is replayed alone
 * with a predictor and a reuse model fitted on the sequences outside its
 * fold only, so the cost grows linearly with the trace; every
 * (token, layer, expert) whose outcome within n tokens is known is a case.
 * Variants, all fitted the same way: "recency" (age alone), "recency+uses",
 * "full" (age, uses and the predictor's vote), "full, fit only" (no
 * calibration on the stream) and "full, stream only" (no fit: what gated
 * had before a fitted model). Brier score and AUC of "used within n" per
 * horizon; intervals are 95 % bootstraps over the test sequences (1000
 * resamples, seed fixed). AUC is computed over 200 score bins (ties
 * within a bin count half).
 */
typedef struct ec_reuse_eval_result {
    const char *variant;
    int64_t n[EC_REUSE_N_HORIZONS];
    double base_rate[EC_REUSE_N_HORIZONS]; /* share of cases used within n */
    double brier[EC_REUSE_N_HORIZONS], brier_lo[EC_REUSE_N_HORIZONS],
        brier_hi[EC_REUSE_N_HORIZONS];
    double auc[EC_REUSE_N_HORIZONS], auc_lo[EC_REUSE_N_HORIZONS], auc_hi[EC_REUSE_N_HORIZONS];
} ec_reuse_eval_result;

typedef struct ec_reuse_eval_report {
    const char *predictor;   /* the vote's predictor name */
    int32_t n_seqs;          /* sequences, each replayed once */
    int32_t n_folds;         /* fits: min(n_seqs, EC_REUSE_EVAL_MAX_FOLDS) */
    int64_t n_tokens;        /* tokens replayed (complete rows) */
    int32_t horizons[EC_REUSE_N_HORIZONS];
    ec_reuse_eval_result v[EC_REUSE_N_VARIANTS];
} ec_reuse_eval_report;

/* Needs at least 2 sequences. opts may be NULL; err may be NULL. */
ec_status ec_reuse_eval(const ec_trace *t, const char *predictor, const ec_predictor_opts *opts,
                        ec_reuse_eval_report *out, ec_error *err);
/* Writes the report as JSON to f. */
ec_status ec_reuse_eval_write_json(const ec_reuse_eval_report *r, FILE *f, ec_error *err);

/* ---- policy ------------------------------------------------------------- */

typedef enum ec_policy_kind {
    EC_POLICY_ON_DEMAND = 0, /* load what the router asks, keep nothing */
    EC_POLICY_LRU,           /* cache, load on demand, evict least recently used */
    EC_POLICY_LFU,           /* cache, load on demand, evict least frequently used */
    EC_POLICY_PREDICT,       /* prefetch the predictor's top experts, evict LRU */
    EC_POLICY_GATED,         /* prefetch only when expected gain > expected cost;
                                prefetch victims by predicted reuse, demand
                                victims by the reuse model where it clearly
                                beats recency, admission through a scratch
                                slot (plan.c, reuse.c) */
    EC_POLICY_ORACLE,        /* perfect knowledge: Belady eviction, perfect prefetch */
    EC_POLICY_RESIDENT,      /* every expert on the device */
    EC_POLICY_HYBRID         /* gated, and a miss runs on the host instead of being
                                copied when the cost model says that finishes
                                sooner; an expert run on the host is copied behind,
                                for later reuse, only when its calibrated reuse pays
                                for the slot (hybrid.c) */
} ec_policy_kind;

/* Number of policy kinds (one past the last). */
#define EC_POLICY_N_KINDS (EC_POLICY_HYBRID + 1)

const char *ec_policy_kind_name(ec_policy_kind k);
/* 1 for the policies that read a predictor and a horizon (predict, gated),
 * else 0. */
int ec_policy_kind_predicts(ec_policy_kind k);
/* Parses "on-demand", "lru", ... EC_ERR_NOT_FOUND for an unknown name. */
ec_status ec_policy_kind_parse(const char *name, ec_policy_kind *out);

typedef struct ec_policy_config {
    ec_policy_kind kind;
    int32_t horizon;     /* steps (layers) ahead to prefetch for, 1..n_layers (predict,
                            gated - which also considers the same layer of the next
                            token; oracle looks max(horizon, n_layers) ahead); 0: 1 */
    int32_t prefetch_k;  /* experts per target layer considered; 0: k of the observation
                            (the union size for a batch) */
    /* Cost model for gated, in milliseconds (from the hardware profile). */
    double transfer_ms;  /* one expert over the link, latency included (ms) */
    double compute_ms;   /* one step: router overhead + layer compute (ms), the lead
                            time one step of horizon buys */
    /* Host execution, for hybrid (from the hardware profile's host facts). */
    double host_ms;      /* one expert run on the host for one step of the batch: its
                            weights streamed once through the host's memory (ms);
                            0: the host runs no expert, and hybrid decides exactly
                            as gated */
    double host_act_ms;  /* the step's activations to the host and the host experts'
                            summed output back, once per step that runs any (ms) */
    int32_t copy_engines; /* transfers in flight at once, sharing the link (0: 1) */
} ec_policy_config;

/*
 * Perfect knowledge of the future, for the oracle: the caller (simulator,
 * or a replay benchmark that knows its trace) answers from the trace.
 */
typedef struct ec_future {
    /* Step of the next use of (layer, expert) at or after step `from`;
     * INT64_MAX when never. */
    int64_t (*next_use)(void *ctx, int64_t from, int32_t layer, int32_t expert);
    /* The experts used at step `step`: writes their layer to *layer and the
     * ids (at most n_experts) to experts; returns how many, or 0 past the
     * end of the trace. */
    int32_t (*experts_at)(void *ctx, int64_t step, int32_t *layer, int16_t *experts);
    void *ctx;
} ec_future;

typedef struct ec_policy ec_policy;

/*
 * Creates a policy over cache and queue (both borrowed, used by this policy
 * only; the queue's capacity must be >= the cache's slots). predictor is
 * borrowed and required for predict and gated (ec_policy_set_predictor may
 * swap it later); future (copied) is required for oracle. resident needs a
 * cache that holds every expert and fills it at once. err may be NULL.
 */
ec_status ec_policy_create(const ec_policy_config *cfg, ec_cache *cache, ec_queue *queue,
                           const ec_predictor *predictor, const ec_future *future,
                           ec_policy **out, ec_error *err);
void ec_policy_destroy(ec_policy *p);
const ec_policy_config *ec_policy_config_get(const ec_policy *p);

/* Swaps the borrowed predictor (e.g. one fitted without the sequence about
 * to be replayed). NULL is allowed only for kinds that do not predict. */
ec_status ec_policy_set_predictor(ec_policy *p, const ec_predictor *predictor);

/* Gives the policy the counts of a fitted reuse model (copied; NULL:
 * none, the stream alone calibrates). gated evicts by it. Keeps what the
 * stream has counted. EC_ERR_INVALID when the shapes differ. */
ec_status ec_policy_set_reuse_model(ec_policy *p, const ec_reuse_model *m);

/*
 * What-if, for measuring what eviction could gain (never for a runtime):
 * gated's and hybrid's victims (for demands and prefetches) know, for
 * every cached expert, whether its layer uses it again within the next
 * `tokens` tokens, from the future the policy was created with. An expert
 * used within that window is kept before any that is not, the nearest
 * next use kept longest (Belady within the window); the others are ranked
 * by the reuse model as without the what-if. Every demand is admitted
 * (Belady keeps what it loads). EC_WHATIF_EVICT_ALL: the window is the
 * whole trace, and the demand victims are Belady's (MIN). 0: off (the
 * default). Which prefetches to start is decided as without the what-if.
 * EC_ERR_INVALID for tokens < 0, for a kind other than gated and hybrid,
 * or without a future (ec_future.next_use).
 */
#define EC_WHATIF_EVICT_ALL INT32_MAX
ec_status ec_policy_set_whatif_evict(ec_policy *p, int32_t tokens);

/* Empties cache and queue and zeroes the stats (resident: refilled). */
void ec_policy_reset(ec_policy *p);

/*
 * The router of `layer` chose `experts` (k distinct ids) at global step
 * `step` (non-decreasing between calls; the same step may be retried after
 * EC_ERR_BUSY); h already holds this observation. The policy:
 *   1. takes back every queued prefetch (none has started, so no bytes are
 *      lost; each evicted occupant is restored);
 *   2. marks the uses of this step as demands: a resident or loading expert
 *      is kept (never a victim during this step); an absent one gets a slot
 *      (victim by the policy's rule) and a demand transfer, queued ahead of
 *      every prefetch;
 *   3. plans prefetches for the next steps (predict: the next `horizon`;
 *      gated: those and the same layer of the next token; oracle: the next
 *      max(horizon, n_layers)) and queues them in
 *      order of need. A prefetch taken back in 1 and not planned again, e.g.
 *      one whose target step has passed unused, counts as cancelled.
 * Returns EC_OK, or EC_ERR_BUSY when a needed expert has no evictable slot
 * (every slot of its pool is pinned, loading or needed now): the caller
 * must let a transfer complete or a reader release, then call again with
 * the same arguments (what was done is kept; stats count each use once).
 * Never allocates.
 */
ec_status ec_policy_observe(ec_policy *p, int64_t step, int32_t layer, const int16_t *experts,
                            int32_t k, const ec_history *h);

/*
 * The same for a batch: `experts` is the union (k distinct ids) of what the
 * n_hist sequences decoded together chose, hs[i] each one's history. The
 * probability that the batch uses an expert is 1 - prod_i (1 - min(1, k_i p_i)).
 */
ec_status ec_policy_observe_batch(ec_policy *p, int64_t step, int32_t layer,
                                  const int16_t *experts, int32_t k,
                                  const ec_history *const *hs, int32_t n_hist);

/*
 * The predictions for the current step changed after its observe (the
 * runtime recorded a hint in a history, ec_history_hint): forgets the
 * predictions memoised for this step. The caller then calls
 * ec_policy_observe again with the same arguments, which takes back the
 * queued prefetches and plans again (uses are not counted twice).
 */
void ec_policy_forget_predictions(ec_policy *p);

/*
 * hybrid: how busy the lanes are when the next observation's router has
 * decided - the wait (ms) until the link can start a new copy and until the
 * host can start a new expert. The caller (the simulator knows them; a
 * loader estimates them) sets them before each observe of a new step; they
 * stay 0 until set. Other kinds ignore them. The policy itself keeps no
 * clock: these are its only view of time besides the config's costs.
 */
void ec_policy_set_lanes(ec_policy *p, double link_wait_ms, double host_wait_ms);

/*
 * hybrid: 1 when the current observation runs (layer, expert) on the host:
 * it has no slot (do not acquire it); the caller computes it from the host
 * copy of the weights. 0 otherwise (acquire it on the device), and always
 * for other kinds.
 */
int ec_policy_on_host(const ec_policy *p, int32_t layer, int32_t expert);

/* The caller started transfer t (popped from the queue): slot LOADING, the
 * slot's previous occupant is gone for good. */
void ec_policy_started(ec_policy *p, const ec_transfer *t);
/* Transfer into slot completed: slot READY. */
void ec_policy_completed(ec_policy *p, int32_t slot);
/* A reader uses (layer, expert) at step: pins its slot (must be present,
 * after observe; it may still be loading: the reader waits for the data).
 * Returns the slot or -1. */
int32_t ec_policy_acquire(ec_policy *p, int64_t step, int32_t layer, int32_t expert);
/* The reader of slot is done (its kernel completed or was ordered).
 * on-demand drops the expert when its last reader is done. */
void ec_policy_release(ec_policy *p, int32_t slot);

#ifdef __cplusplus
}
#endif
#endif
