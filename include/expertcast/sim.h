/*
 * expertcast/sim.h - replay routing traces through a policy on a virtual
 * clock, with a modeled copy engine, and measure what each policy costs.
 *
 * Two JSON profiles describe the machine: a model profile (layers, experts,
 * top-k, bytes of one expert and of a layer's other weights per dtype) and a
 * hardware profile (host-to-device bandwidth, per-transfer latency, copy
 * engines, device memory, HBM bandwidth, fixed per-layer and router /
 * predictor overheads). Every value in a profile carries a "source" string.
 *
 * Timing model, per step (one layer of one decode step of the batch):
 *   router time = end of the previous step's compute + router overhead;
 *   the policy observes the router's choice then (demands, prefetch plan);
 *   the predictor runs on the host after the demands are issued: it delays
 *   prefetch transfers by predictor_ms, never a demand or the compute;
 *   a transfer takes latency + bytes / (bandwidth / engines) on one of the
 *   copy engines (engines share the link), starts in queue order when an
 *   engine is free and the slot's last reader has finished;
 *   compute starts once every needed expert is READY, and takes
 *   fixed + per_expert * (experts used);
 *   stall = compute start - router time.
 * With host lanes (hybrid only): an expert the policy runs on the host
 * starts on the earliest free lane once the activations are on the host
 * and takes ec_sim_host_ms; the output returns host_h2d_ms after the
 * step's last host expert is done. The activations leave for the host
 * when the router starts (they are its input), so they arrive
 * max(0, host_d2h_ms - router_ms) after the router's decision. The device computes only the experts on the device; the
 * step ends when both are done, and its stall is the time beyond the
 * device's own compute.
 * Everything is deterministic: the same inputs give bit-identical results.
 */
#ifndef EXPERTCAST_SIM_H
#define EXPERTCAST_SIM_H

#include "expertcast/core.h"
#include "expertcast/policy.h"
#include "expertcast/predict.h"
#include "expertcast/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- profiles ------------------------------------------------------------ */

#define EC_PROFILE_NAME_MAX 64

typedef struct ec_model_profile {
    char name[EC_PROFILE_NAME_MAX];  /* e.g. "mixtral-8x7b" */
    char dtype[EC_PROFILE_NAME_MAX]; /* the dtype chosen, e.g. "int4" */
    int32_t n_layers, n_experts, k;
    double expert_bytes;      /* one routed expert's weights at dtype (bytes) */
    double layer_fixed_bytes; /* other weights read per layer and token (bytes) */
} ec_model_profile;

typedef struct ec_hw_profile {
    char name[EC_PROFILE_NAME_MAX];
    double h2d_gbs;            /* host-to-device bandwidth of the link (1e9 B/s) */
    double latency_us;         /* fixed cost of one transfer (us) */
    int32_t copy_engines;      /* concurrent transfers (they share the link) */
    double hbm_gbs;            /* device memory bandwidth (1e9 B/s) */
    double device_memory_gb;   /* device memory (1e9 B) */
    double reserved_gb;        /* kept for runtime, KV cache, activations (1e9 B) */
    double layer_overhead_us;  /* per layer: launches, norms (us) */
    double router_us;          /* router decision visible to the host (us) */
    double predictor_us;       /* one prediction round (us), for predicting policies */
    double compute_fixed_ms;   /* < 0: derived from the model's bytes and hbm_gbs */
    double compute_per_expert_ms; /* < 0: derived */
    /* The host's facts, for running experts on the host (policy hybrid).
     * Optional as a group: a profile without them loads with has_host 0
     * (host execution unavailable); one that gives some must give all. */
    int has_host;
    int32_t host_cores;        /* cores the host kernel spreads an expert over */
    double host_read_gbs;      /* host memory read bandwidth a streaming GEMV reaches (1e9 B/s) */
    double host_act_d2h_us;    /* one token's activations device -> host (us) */
    double host_act_h2d_us;    /* the expert's output host -> device (us) */
} ec_hw_profile;

/*
 * Loads a model profile. dtype NULL or "" picks the file's default_dtype.
 * Errors name the file and field ("m.json: field 'dtypes.int4.expert_bytes.
 * source': missing"); EC_ERR_NOT_FOUND when the dtype is not in the file.
 */
ec_status ec_model_profile_load(const char *path, const char *dtype, ec_model_profile *out,
                                ec_error *err);
ec_status ec_hw_profile_load(const char *path, ec_hw_profile *out, ec_error *err);

/*
 * Finds a profile by path or name. `name` is a file path when it contains a
 * '/' or names an existing file; otherwise NAME.json is looked up in
 * $EXPERTCAST_PROFILES (when set), then in profiles/ of the data
 * directories (ec_data_find: $EXPERTCAST_DATA, the executable's
 * installation, the source tree, the install prefix). For a model
 * (is_model 1) NAME-DTYPE also names dtype DTYPE of NAME.json: then
 * dtype[EC_PROFILE_NAME_MAX] (may be NULL) receives "DTYPE", else "".
 * path[cap] receives the file. EC_ERR_NOT_FOUND when there is none, with a
 * message listing the model (or hardware) profiles that are there.
 */
ec_status ec_profile_find(const char *name, int is_model, char *path, size_t cap, char *dtype,
                          ec_error *err);
/* ec_profile_find for both, then ec_model_profile_load / ec_hw_profile_load. */
ec_status ec_profiles_load(const char *model, const char *hardware, ec_model_profile *m,
                           ec_hw_profile *h, ec_error *err);

/* Times (ms) the simulator uses, derived from a model and a hardware profile. */
typedef struct ec_sim_timing {
    double transfer_ms;        /* one expert on one engine, latency included */
    int32_t engines;
    double compute_fixed_ms;   /* per layer */
    double compute_per_expert_ms;
    double router_ms;
    double predictor_ms;       /* delays the transfers that wait for a prediction */
    double expert_bytes;
    /* host execution (hybrid): an expert used by b tokens of a step runs on
     * a host lane in ceil(b / EC_SIM_HOST_BATCH) * host_stream_ms (the
     * kernel streams the weights once for up to that many tokens); a step
     * that runs any expert on the host also moves its activations there and
     * the summed output back once (host_d2h_ms, host_h2d_ms). host_lanes 0: no host
     * execution. */
    int32_t host_lanes;        /* concurrent host experts (they share the memory bandwidth) */
    double host_stream_ms;     /* one expert's weights read once at the host's read bandwidth */
    double host_d2h_ms;        /* the step's activations device -> host */
    double host_h2d_ms;        /* the host experts' output host -> device */
} ec_sim_timing;

/* Tokens one pass of the host kernel serves while streaming an expert once. */
#define EC_SIM_HOST_BATCH 8

/* Host lane time (ms) of one expert used by b >= 1 tokens (activations
 * not included); 0 without host lanes. */
double ec_sim_host_ms(const ec_sim_timing *tm, int32_t b);

void ec_sim_timing_derive(const ec_model_profile *m, const ec_hw_profile *h, ec_sim_timing *out);

/* Experts per layer that fit in the device memory left for experts
 * (device - reserved - other weights), clamped to [k, n_experts]. */
int32_t ec_sim_default_cache(const ec_model_profile *m, const ec_hw_profile *h);

/* ---- simulator ------------------------------------------------------------ */

typedef struct ec_sim ec_sim;

/*
 * Prepares the replay of trace t (borrowed; must outlive the simulator):
 * sequences in order, `batch` at a time (each step needs the union of their
 * experts). Rows with a missing layer are skipped and counted. Guesses the
 * trace carries (field "guesses") reach the predicting policies as hints,
 * after each record is observed (ec_history_hint_trace), as a runtime's
 * ec_loader_hint would.
 */
ec_status ec_sim_create(const ec_trace *t, int32_t batch, ec_sim **out, ec_error *err);
void ec_sim_destroy(ec_sim *s);

int64_t ec_sim_n_steps(const ec_sim *s);     /* layer steps replayed */
int64_t ec_sim_n_tokens(const ec_sim *s);    /* decode steps (of the batch) replayed */
int64_t ec_sim_n_skipped(const ec_sim *s);   /* incomplete rows skipped */
int32_t ec_sim_n_groups(const ec_sim *s);    /* batches of sequences */
int32_t ec_sim_max_union(const ec_sim *s);   /* most experts one step needs */

/* Most predictors ec_sim_fit_heldout fits (folds of batch groups). */
#define EC_SIM_MAX_FOLDS 8

/*
 * Fits predictors held out (no leakage): the batch groups are cut into
 * min(groups, EC_SIM_MAX_FOLDS) contiguous folds of near-equal size, and
 * each fold's groups are predicted by one predictor fitted on every
 * sequence outside the fold. Up to EC_SIM_MAX_FOLDS groups that is one
 * predictor per group (leave one group out); beyond, the fits stay
 * EC_SIM_MAX_FOLDS, so the cost grows linearly with the trace.
 * EC_ERR_INVALID when there is a single group.
 */
ec_status ec_sim_fit_heldout(ec_sim *s, const char *name, const ec_predictor_opts *opts,
                             ec_error *err);
/* Uses one predictor (borrowed) for every group instead. */
ec_status ec_sim_set_predictor(ec_sim *s, const ec_predictor *p, ec_error *err);

/*
 * What-if for the runs that follow: gated's and hybrid's victims know
 * which experts each layer uses within the next `tokens` tokens, and every
 * demand is admitted (ec_policy_set_whatif_evict; EC_WHATIF_EVICT_ALL:
 * Belady's victims; 0: off, the default). It measures how much of the
 * lru -> oracle gap better eviction alone could close; it is not a policy.
 * Other kinds and the references are unchanged. EC_ERR_INVALID for
 * tokens < 0.
 */
ec_status ec_sim_set_whatif_evict(ec_sim *s, int32_t tokens, ec_error *err);

typedef struct ec_sim_config {
    ec_policy_kind kind;
    int32_t cache_per_layer;  /* slots per layer, or 0 with cache_global > 0 */
    int32_t cache_global;
    int32_t cache_sized;      /* with cache_global: the pool is sized per layer (quotas,
                                 ec_cache_set_quotas) from the use profile of the sequences
                                 outside each batch group (held out; needs 2 groups and
                                 cache_global >= the step's experts x layers) */
    int32_t horizon;          /* 0: 1 */
    int32_t prefetch_k;       /* 0: the step's union size */
    ec_sim_timing timing;
} ec_sim_config;

typedef struct ec_sim_result {
    ec_policy_kind kind;
    int32_t cache_per_layer, cache_global, horizon;
    int32_t cache_sized;        /* the global pool was sized per layer */
    int64_t n_tokens, n_steps;
    double total_ms;            /* virtual time of the whole replay */
    double tpot_ms;             /* total_ms / n_tokens */
    double stall_ms_per_token;
    double compute_ms_per_token;/* compute + router overhead */
    double hit_rate;            /* (hits + inflight hits) / uses asked */
    double resident_rate;       /* hits / uses asked (READY when asked) */
    double transfers_per_token, wasted_transfers_per_token;
    double bytes_per_token, wasted_bytes_per_token; /* total, and spent on unused prefetches */
    double prefetch_precision;  /* used prefetches / started ones; NaN with none */
    ec_cache_stats stats;       /* raw counters; wasted includes unused at the end */
    int64_t unused_at_end;      /* prefetched, never used, still cached at the end */
    double lower_bound_ms_per_token; /* analytic: max(sum compute, Belady loads x transfer / engines) */
    int32_t n_layers;
    double *stall_per_layer;    /* [n_layers] ms per token, owned: ec_sim_result_clear */
    double *bound_per_layer;    /* [n_layers] ms per token: max(compute, Belady loads x transfer) */
    double host_runs_per_token; /* hybrid: expert uses run on the host */
    double host_busy_ms_per_token; /* hybrid: host lane time spent on them */
} ec_sim_result;

/*
 * Replays the whole trace once through a fresh cache and policy.
 * predict and gated need a predictor (fit_heldout or set_predictor).
 * Fills *res (arrays owned by res). Deterministic.
 */
ec_status ec_sim_run(ec_sim *s, const ec_sim_config *cfg, ec_sim_result *res, ec_error *err);
void ec_sim_result_clear(ec_sim_result *r);

/* ---- measuring a policy against lru, the oracle and the analytic bound ----- */

/*
 * The reference runs of one cache size: lru (horizon 1) and the oracle
 * (Belady eviction with greedy perfect prefetch; it is not a bound, a policy
 * can beat it). Their results own per-layer arrays: ec_sim_baselines_clear.
 */
typedef struct ec_sim_baselines {
    ec_sim_result lru, oracle;
} ec_sim_baselines;

/* Runs lru and the oracle with cfg's cache, horizon (the oracle's),
 * prefetch_k and timing; cfg->kind is ignored. On failure *out is cleared. */
ec_status ec_sim_run_baselines(ec_sim *s, const ec_sim_config *cfg, ec_sim_baselines *out,
                               ec_error *err);
void ec_sim_baselines_clear(ec_sim_baselines *b);

/* Where one result stands against the baselines of its cache size; works
 * for any policy kind. Every figure is on TPOT. */
typedef struct ec_sim_comparison {
    double vs_lru;           /* tpot / lru tpot */
    double saved_vs_lru_ms;  /* lru tpot - tpot (ms per token; > 0: faster than lru) */
    double vs_oracle_ms;     /* tpot - oracle tpot (ms per token; < 0: beats the oracle) */
    double vs_bound_ms;      /* tpot - the analytic bound (ms per token; never < 0) */
    double gap_closed;       /* (lru - tpot) / (lru - oracle); NaN when lru <= oracle */
    double gap_closed_bound; /* (lru - tpot) / (lru - bound); NaN when lru <= bound */
    int beats_oracle;        /* tpot < oracle tpot (resident, which loads nothing, never) */
} ec_sim_comparison;

/* Fills *out for result r against b (same cache size). The bound is r's own
 * lower_bound_ms_per_token (it depends on the cache, not on the policy). */
void ec_sim_compare(const ec_sim_result *r, const ec_sim_baselines *b, ec_sim_comparison *out);

#ifdef __cplusplus
}
#endif
#endif
