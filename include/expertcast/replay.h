/*
 * expertcast/replay.h - the real loader driven by a recorded routing trace.
 *
 * A replay is a Mixtral-shaped decode loop on one compute stream: for
 * every token and layer, a stand-in for attention (a spin of fixed
 * duration), the router's choice taken from the trace, ec_loader_observe,
 * then for each chosen expert ec_loader_acquire, the expert FFN on the
 * slot (the real SwiGLU kernel, or a spin stand-in) and ec_loader_release.
 * By default the host waits for each layer's router point before observing,
 * as a runtime that reads the router's output back must; so prefetches are
 * issued at the moment a real runtime would issue them.
 *
 * The CLI's `replay` and the GPU benchmark both run this driver.
 */
#ifndef EXPERTCAST_REPLAY_H
#define EXPERTCAST_REPLAY_H

#include "expertcast/loader.h"
#include "expertcast/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- perfect knowledge from a trace (the oracle policy) ---------------------- */

typedef struct ec_trace_future ec_trace_future;

/*
 * Indexes rows[n_rows] of t (complete rows, in replay order) so that step
 * i * n_layers + layer is layer `layer` of rows[i]. t must outlive it.
 */
ec_status ec_trace_future_create(const ec_trace *t, const size_t *rows, size_t n_rows,
                                 ec_trace_future **out);
void ec_trace_future_destroy(ec_trace_future *f);
/* The callbacks the policy module reads (valid while f lives). */
const ec_future *ec_trace_future_get(const ec_trace_future *f);

/* ---- the replay -------------------------------------------------------------------- */

typedef struct ec_replay_opts {
    ec_loader_config loader; /* cache, policy, window...; k is set from the trace */
    double attn_us;          /* attention stand-in per layer (us) */
    double ffn_us;           /* FFN stand-in per expert (us) when d_model is 0 */
    double host_ffn_us;      /* policy hybrid, d_model 0: host time of an expert the loader
                                runs on the host (us, spent by the calling thread); with
                                d_model > 0 the host runs the FFN on the store's weights
                                (the layer's input brought to the host once) */
    int32_t d_model, d_ff;   /* > 0: run the real FFN; the store must hold weights of
                                ec_expert_bytes(dtype, d_model, d_ff) bytes per expert */
    ec_dtype dtype;          /* their format (0: EC_DTYPE_F16) */
    size_t max_tokens;       /* complete rows replayed at most (0: all) */
    size_t warmup_tokens;    /* first tokens left out of the measured figures */
    int verify;              /* checksum every acquired slot on the compute stream and
                                compare it with the store's checksum */
    int no_lockstep;         /* 1: the host runs ahead instead of waiting for each router */
    double host_poll_us;     /* while waiting for a router: sleep between polls of the
                                loader (0: spin, lowest latency) */
    const uint8_t *seq_mask; /* sequences to replay (NULL: all) */
} ec_replay_opts;

typedef struct ec_replay_result {
    ec_loader_stats total;    /* the whole replay */
    ec_loader_stats measured; /* the tokens after the warm-up */
    size_t tokens;            /* rows replayed */
    size_t tokens_measured;
    size_t rows_skipped;      /* incomplete rows of the selected sequences (not replayed) */
    double tpot_ms;           /* device time per measured token (timing events) */
    double tpot_all_ms;       /* the same over every token, warm-up included */
    double wall_ms;           /* host wall time of the measured tokens */
    double stall_ms_per_token;/* measured waits of the compute stream per measured token */
    double hit_rate;          /* (hits + in-flight hits) / acquires, measured tokens */
    double resident_rate;     /* hits / acquires (weights already complete) */
    double copy_gbps;         /* bytes / time of the timed copies, measured tokens */
    double observe_us;        /* mean host time of ec_loader_observe per layer */
    double acquire_us;        /* mean host time of a layer's k acquires */
    double release_us;        /* mean host time of a layer's k releases */
    double acquire_us_max;    /* slowest single layer's acquires */
    int64_t verified;         /* acquisitions checksummed */
    int64_t verify_failures;  /* of which the slot did not hold the expert's weights */
    int64_t host_runs;        /* hybrid: expert uses run on the host, measured tokens */
    double host_ms_per_token; /* host wall time of those runs (input, FFN, output) */
} ec_replay_result;

/*
 * Replays t through a new loader over b and s (the store's shape must
 * match the trace's layers and experts). predictor may be NULL unless the
 * policy needs one; the oracle's future is built here. On failure err says
 * which call failed (loader messages included).
 */
ec_status ec_replay_run(ec_backend *b, ec_store *s, const ec_trace *t,
                        const ec_predictor *predictor, const ec_replay_opts *o,
                        ec_replay_result *out, ec_error *err);

/*
 * Milliseconds to copy one expert of s host -> device on b: the median of 5
 * timed copies (experts of layer 0 in turn) on a stream of its own. This is
 * the transfer cost the gated policy weighs when no other is given. On
 * failure err names the backend call that failed.
 */
ec_status ec_replay_measure_copy_ms(ec_backend *b, ec_store *s, double *ms, ec_error *err);

#ifdef __cplusplus
}
#endif
#endif
