/*
 * expertcast/loader.h - the speculative expert loader a MoE runtime links
 * against.
 *
 * The loader owns a device expert cache (one device buffer cut into slots
 * of one expert each), a copy stream, and per slot a "ready" event
 * (recorded after the copy into the slot) and a "released" event (recorded
 * on the reader's stream after its last kernel on the slot). Every decision
 * (which expert goes to which slot, what to prefetch, in which order, what
 * to evict) is taken by the policy module (expertcast/policy.h), the same
 * code the simulator runs.
 *
 * The runtime calls it at three points of every MoE layer:
 *
 *   router(N) -> ec_loader_observe(l, N, experts)
 *       records the routing history, lets the policy plan demand loads for
 *       layer N and prefetches for the next layers, and starts copies on
 *       the copy stream: demands first, prefetches through a small issue
 *       window so that a later demand overtakes them and a stale prefetch
 *       can still be cancelled before it spends bandwidth.
 *   ec_loader_acquire(l, N, e, stream, &w)
 *       w = the device address of expert e's weights. When the copy is not
 *       known complete, `stream` waits on the slot's ready event (device
 *       side: the host never blocks). The slot is pinned until release.
 *   expert kernels on `stream` read w
 *   (policy hybrid: ec_loader_acquire_where(l, N, e, stream, &ref) instead
 *   says where the expert runs: ref.where == EC_WHERE_DEVICE, ref.dev as
 *   above; or EC_WHERE_HOST, ref.host the expert's weights in the store,
 *   for the runtime's host kernel - no slot, no copy)
 *   ec_loader_release(l, N, e, stream)
 *       records the slot's released event on `stream` and unpins it. A
 *       copy that later overwrites the slot waits on that event on the copy
 *       stream, so no expert a pending kernel reads is ever overwritten.
 *
 * Time: every observe of a layer <= the previous one starts a new token;
 * the policy's step is token * n_layers + layer. Acquire and release refer
 * to the current token. Acquire a layer's experts before observing the
 * next layer: only pins and the current observation keep an expert from
 * being chosen as a victim.
 *
 * Readers of one slot at the same time must use one stream (the released
 * event covers the stream it was recorded on).
 *
 * Errors: every call returns an ec_status and keeps a message in the
 * handle (ec_loader_errmsg). A backend failure (e.g. EC_ERR_CUDA, with the
 * failing CUDA call, file and line) leaves the loader failed: later calls
 * return EC_ERR_STATE with the original message. Not thread-safe: one host
 * thread drives a loader.
 */
#ifndef EXPERTCAST_LOADER_H
#define EXPERTCAST_LOADER_H

#include "expertcast/backend.h"
#include "expertcast/policy.h"
#include "expertcast/predict.h"
#include "expertcast/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ec_loader ec_loader;

typedef struct ec_loader_config {
    int32_t k;               /* experts the router picks per token and layer */
    int32_t cache_per_layer; /* slots per layer; 0: one pool of cache_global slots */
    int32_t cache_global;    /* slots shared by every layer (when cache_per_layer is 0) */
    ec_policy_config policy; /* kind, horizon, prefetch_k, gated cost model (ms) */
    int32_t issue_window;    /* prefetch copies started and not complete, at most (0: 2) */
    int32_t history_depth;   /* earlier tokens of routing history kept for the predictor
                                (raised to what the predictor's fit read) */
    int no_timing;           /* 1: no timing events (stall_ms and copy_ms stay 0) */
    const char *record_path; /* write every observe as raw JSONL here (NULL: off; "-": stdout) */
    const ec_future *future; /* perfect knowledge, required by the oracle policy */
    const ec_reuse_model *reuse_model; /* fitted reuse counts for gated's eviction (copied;
                                          NULL: the stream alone calibrates it) */
} ec_loader_config;

/* Defaults: k 2, 4 slots per layer, policy lru with horizon 1, issue
 * window 2, history depth 8, timing on, no recording. */
void ec_loader_config_default(ec_loader_config *c);

/*
 * Creates a loader over backend b and store s (both borrowed, must outlive
 * it). predictor is borrowed and may be NULL (then the predict and gated
 * policies are refused). Allocates the slots on the device (EC_ERR_NOMEM
 * with a HINT when they do not fit), the copy stream and the events, and
 * starts the recording (checked to be creatable now; kept in memory and
 * written as one output file when the loader is finished).
 * On failure *out is NULL and err says why.
 */
ec_status ec_loader_create(ec_backend *b, ec_store *s, const ec_predictor *predictor,
                           const ec_loader_config *cfg, ec_loader **out, ec_error *err);

/*
 * Waits for the copy stream and for the readers of every slot, harvests
 * the timing events and commits the recording (ec_outfile: written beside
 * and renamed into place, or "-" for stdout). Returns the first error met.
 * Idempotent; the loader must not be used afterwards except for stats and
 * destroy. When a wait on the device failed (here or earlier), the slots'
 * device memory is not freed by destroy: a kernel may still read it, so it
 * is leaked on purpose, and the message says so.
 */
ec_status ec_loader_finish(ec_loader *l);

/* Finishes (ignoring errors) and frees everything. */
void ec_loader_destroy(ec_loader *l);

/*
 * Starts a new sequence (prompt): forgets the routing history (the cache
 * keeps its contents) and makes the next observe a new token with
 * token_idx 0. dataset (may be NULL: "loader") and problem_id key the
 * sequence in the recording.
 */
ec_status ec_loader_begin_sequence(ec_loader *l, const char *dataset, int64_t problem_id);

/*
 * The router of `layer` chose experts[k] (distinct ids, highest gate
 * first). Plans and starts copies. When an expert's pool has no evictable
 * slot only because copies are still in flight, waits (on the host) for
 * them. EC_ERR_BUSY when every slot of the pool is pinned by an acquire not
 * yet released: release, then call again with the same arguments (the
 * retry continues the refused observation).
 */
ec_status ec_loader_observe(ec_loader *l, int32_t layer, const int16_t *experts);

/*
 * The runtime's own guess for a later layer - e.g. the next layer's router
 * applied to the current hidden state (pre-gating, ec_pregate_*): n
 * distinct experts (1 <= n <= n_experts) with their probabilities of being
 * chosen (probs NULL: 1/n each; each in [0, 1], summing to at most 1) for
 * the layer `horizon` steps after the last one observed (1: the next
 * layer; past the last layer, the next token's; before the first observe
 * of a sequence, horizon 1 is layer 0).
 *
 * How hints and the predictor combine: for a target with a hint, the
 * hint replaces the predictor's prediction; every other target is
 * predicted as before. Policies that predict (predict, gated) use it at
 * once: the loader plans the current step's prefetches again (demands are
 * untouched), so give the hints for the next layers right after
 * ec_loader_observe of this one. gated prices hints as it prices the
 * predictor - calibrated on the stream against the router's later
 * choices, separately per source (hint or predictor) and horizon, and
 * not trusted before the stream has shown them right - and prefetches
 * only where the expected stall saved beats the expected cost. A later
 * hint for the same target replaces an earlier one. With recording on,
 * hints are written as the last observation's "guesses" (at most
 * EC_MAX_GUESSES horizons per observation). EC_ERR_INVALID for a bad
 * argument (nothing recorded).
 */
ec_status ec_loader_hint(ec_loader *l, int32_t horizon, const int16_t *experts,
                         const float *probs, int32_t n);

/*
 * Device address of (layer, expert)'s weights for kernels on `stream`,
 * which is ordered after the copy that filled the slot. The expert must
 * have been observed at this layer of the current token. Pins the slot
 * until ec_loader_release. *dev_ptr is NULL on failure.
 */
ec_status ec_loader_acquire(ec_loader *l, int32_t layer, int32_t expert, ec_stream *stream,
                            void **dev_ptr);

/* Where an expert of the current observation runs. */
typedef enum ec_expert_where {
    EC_WHERE_DEVICE = 0, /* in a device slot: run the device kernel on `dev` */
    EC_WHERE_HOST = 1    /* on the host: run the host kernel on `host` */
} ec_expert_where;

typedef struct ec_expert_ref {
    ec_expert_where where;
    void *dev;          /* EC_WHERE_DEVICE: the slot's device address, ordered after its
                           copy for kernels on the acquiring stream; else NULL */
    const void *host;   /* EC_WHERE_HOST: the expert's weights in the store (host
                           memory, ec_store_expert); else NULL */
    size_t bytes;       /* the expert's bytes */
} ec_expert_ref;

/*
 * Like ec_loader_acquire, and tells where the expert runs. The policy
 * hybrid runs some misses on the host (ec_policy_on_host): those get
 * EC_WHERE_HOST and the store's host copy of the weights; the runtime
 * computes them with its host kernel (the activations go to the host and
 * the output comes back on its own streams). Every other expert gets
 * EC_WHERE_DEVICE exactly as ec_loader_acquire gives it. Either way release
 * it with ec_loader_release once its work is submitted (for a host expert:
 * once the host kernel has read the weights; nothing is recorded on the
 * stream). ec_loader_acquire refuses a host expert (EC_ERR_STATE), so a
 * runtime unaware of hosts never computes one from a wrong slot.
 */
ec_status ec_loader_acquire_where(ec_loader *l, int32_t layer, int32_t expert, ec_stream *stream,
                                  ec_expert_ref *out);

/* The kernels on `stream` that read (layer, expert) are all submitted:
 * records the slot's released event on stream and unpins it. A host
 * expert (ec_loader_acquire_where) has no slot: only its acquire is
 * closed. */
ec_status ec_loader_release(ec_loader *l, int32_t layer, int32_t expert, ec_stream *stream);

/*
 * Starts the transfers the issue window allows now, without blocking. The
 * loader pumps its queue at every observe, acquire and release; a runtime
 * that waits on the host between layers (e.g. for the router's output)
 * keeps the copy engine busy by calling this while it waits.
 */
ec_status ec_loader_poll(ec_loader *l);

/* Blocks until every queued transfer has been started (through the issue
 * window) and completed, and harvests the timing events (so that stats
 * are complete). */
ec_status ec_loader_sync(ec_loader *l);

typedef struct ec_loader_stats {
    ec_cache_stats cache;    /* counts kept by the policy module's cache */
    int64_t observes;
    int64_t copies;          /* transfers started on the copy stream */
    int64_t demand_copies;
    int64_t prefetch_copies;
    uint64_t bytes;          /* bytes copied host -> device */
    uint64_t demand_bytes;
    uint64_t prefetch_bytes;
    uint64_t prefill_bytes;  /* resident policy: the whole cache filled at creation */
    int64_t copies_timed;    /* completed copies measured with timing events */
    double copy_ms;          /* their summed duration on the copy stream (ms) */
    uint64_t bytes_timed;    /* their bytes */
    int64_t waits;           /* acquires that made the stream wait on a copy */
    int64_t waits_timed;     /* waits measured so far */
    double stall_ms;         /* measured time reader streams sat waiting (ms) */
    int64_t hints;           /* ec_loader_hint calls accepted */
    int64_t host_acquires;   /* hybrid: experts handed to the host kernel */
} ec_loader_stats;

/* Copies the statistics gathered so far (call ec_loader_sync first for
 * complete timing figures). */
void ec_loader_stats_get(const ec_loader *l, ec_loader_stats *out);

/* The cache the policy decides over (read-only: slot states, pins). */
const ec_cache *ec_loader_cache(const ec_loader *l);
/* The loader's copy stream (to order other work after or before copies). */
ec_stream *ec_loader_copy_stream(const ec_loader *l);
/* Device address of slot i (for inspection in tests and tools). */
void *ec_loader_slot_ptr(const ec_loader *l, int32_t slot);
/* Step of the current token at `layer` (token * n_layers + layer). */
int64_t ec_loader_step(const ec_loader *l, int32_t layer);
/* Message of the last failed call ("" if none). */
const char *ec_loader_errmsg(const ec_loader *l);

#ifdef __cplusplus
}
#endif
#endif
