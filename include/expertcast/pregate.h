/*
 * expertcast/pregate.h - pre-gating for runtimes that want a guess of the
 * next layers' experts: a layer's router applied to an earlier hidden
 * state.
 *
 * Layer N+1's router (weights W: n_experts x d, row-major) applied to
 * layer N's hidden state x (d) gives probabilities over the experts,
 * softmax(W · x), that the router of N+1 will choose each one - a guess to
 * hand to the loader (ec_loader_hint, often its top-k: ec_pregate_topk).
 * Two paths compute the same thing:
 *   - ec_pregate_host: on the host, fp16 or fp32, double accumulation (the
 *     reference);
 *   - ec_stream_pregate: on a stream of a backend. On cuda one kernel
 *     writes the probabilities straight into pinned host memory (from
 *     ec_backend_host_alloc, mapped into the device's address space), so
 *     the host reads them after an event - ec_event_query to poll,
 *     ec_event_sync to wait - without a blocking copy. On cpu an executor
 *     thread runs the host path.
 */
#ifndef EXPERTCAST_PREGATE_H
#define EXPERTCAST_PREGATE_H

#include "expertcast/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The router's and the hidden state's element type (the experts' weight
 * formats are ec_dtype, hostffn.h). */
typedef enum ec_gate_dtype {
    EC_GATE_F32 = 0, /* float */
    EC_GATE_F16 = 1  /* IEEE half, as uint16_t */
} ec_gate_dtype;

/* Largest number of experts the pre-gate helpers take. */
#define EC_PREGATE_MAX_EXPERTS 4096

/*
 * probs[n_experts] = softmax(w · x), w: n_experts x d row-major, x: d, both
 * of dtype dt, in host memory. Accumulates in double. EC_ERR_INVALID for a
 * NULL pointer, an unknown dtype, n_experts outside [1,
 * EC_PREGATE_MAX_EXPERTS] or d < 1; a non-finite logit gives
 * EC_ERR_RANGE and every probability NaN (the stream paths, which cannot
 * return a status, leave NaN too). Never allocates.
 */
ec_status ec_pregate_host(const void *w, const void *x, ec_gate_dtype dt, int32_t n_experts,
                          int32_t d, float *probs);

/*
 * The k most probable experts of probs[n_experts] (ties: lower id first)
 * into experts[k] and their probabilities into p[k] (p may be NULL):
 * what ec_loader_hint takes. k is clamped to n_experts; returns it.
 */
int32_t ec_pregate_topk(const float *probs, int32_t n_experts, int32_t k, int16_t *experts,
                        float *p);

/*
 * ec_pregate_host asynchronously on s: w and x in device memory of s's
 * backend (ec_backend_dev_alloc), probs_host pinned host memory from
 * ec_backend_host_alloc of the same backend (n_experts floats). The values
 * are there once an event recorded on s after this call has completed.
 * Float accumulation on cuda (matches the host reference to ~1e-5
 * relative); one thread block per call, meant for router-sized GEMVs.
 */
ec_status ec_stream_pregate(ec_stream *s, const void *w, const void *x, ec_gate_dtype dt,
                            int32_t n_experts, int32_t d, float *probs_host);

#ifdef __cplusplus
}
#endif
#endif
