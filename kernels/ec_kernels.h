/*
 * Launchers of the device kernels, callable from C (the cuda backend's host
 * code and the benchmarks). Each enqueues its kernels on `stream` and
 * returns the launch status (cudaGetLastError after the launch); none
 * synchronises.
 */
#ifndef EC_KERNELS_H
#define EC_KERNELS_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ec_checksum64 of `bytes` device bytes at src (8-byte aligned) into the
 * device word *out. */
cudaError_t ec_kernel_checksum(const void *src, size_t bytes, uint64_t *out,
                               cudaStream_t stream);

/* A one-thread kernel that returns after `ns` nanoseconds of %globaltimer. */
cudaError_t ec_kernel_spin(uint64_t ns, cudaStream_t stream);

/*
 * SwiGLU expert FFN, batch 1: out[d_model] = w2 · (silu(w1·x) ⊙ (w3·x)).
 * w: fp16 [w1 (d_ff, d_model) | w3 (d_ff, d_model) | w2 (d_model, d_ff)]
 * row-major, 16-byte aligned; x: fp16 [d_model]; out: float [d_model];
 * scratch: float [d_ff]. One warp per output row, float accumulation.
 */
cudaError_t ec_kernel_ffn(const void *w, const void *x, float *out, int32_t d_model,
                          int32_t d_ff, float *scratch, cudaStream_t stream);

/*
 * Pre-gating: probs[n_experts] = softmax(w · x), w: n_experts x d row-major,
 * x: d, both fp32 (dtype 0) or fp16 (dtype 1); probs may be a mapped host
 * pointer. One block: a warp per expert row at a time, float accumulation,
 * logits in shared memory (n_experts <= 4096).
 */
cudaError_t ec_kernel_pregate(const void *w, const void *x, int dtype, int32_t n_experts,
                              int32_t d, float *probs, cudaStream_t stream);

/*
 * The same from q4 weights (ggml Q4_0 blocks of 32 weights, 18 bytes each,
 * layout in include/expertcast/hostffn.h), [w1 | w3 | w2] with every row
 * cut into groups, dequantized on the fly. d_model and d_ff multiples of
 * 32; w 2-byte aligned, x and scratch 16-byte aligned, else
 * cudaErrorInvalidValue without a launch. One warp per output row, each
 * lane one group at a time, float accumulation.
 */
cudaError_t ec_kernel_ffn_q4(const void *w, const void *x, float *out, int32_t d_model,
                             int32_t d_ff, float *scratch, cudaStream_t stream);

/*
 * Loads every kernel of this library into the current context now. With
 * CUDA's lazy module loading (the default since CUDA 12) a kernel's first
 * launch loads its module, which can wait on other work in the context; a
 * first launch while a stream is held by a blocked host function then never
 * returns. The cuda backend calls this once at creation, which also keeps
 * module loading out of the first timed layers.
 */
cudaError_t ec_kernels_preload(void);

#ifdef __cplusplus
}
#endif
#endif
