/*
 * expertcast/hostffn.h - expert weight formats and the host expert kernel.
 *
 * An expert is the SwiGLU FFN of one MoE expert:
 *
 *     y = W2 · (silu(W1 · x) ⊙ (W3 · x)),   silu(a) = a / (1 + e^-a)
 *
 * with W1, W3 of shape (d_ff, d_model) and W2 of shape (d_model, d_ff).
 * Its weights are one contiguous blob of ec_expert_bytes(dtype, d_model,
 * d_ff) bytes, the three matrices back to back in the order
 *
 *     [ W1 | W3 | W2 ]
 *
 * each row-major (row r of W1 is the d_model inputs of intermediate unit r;
 * row i of W2 is the d_ff inputs of output i). These bytes are what the
 * store holds, what a copy moves to the device, and what both the host
 * kernel below and the device kernels read.
 *
 * Formats (ec_dtype):
 *
 *   EC_DTYPE_F16  IEEE 754 binary16, little-endian, one value per 2 bytes:
 *                 3 * d_model * d_ff * 2 bytes (= ec_ffn_bytes).
 *
 *   EC_DTYPE_Q4   4-bit, symmetric, groups of EC_Q4_GROUP = 32 consecutive
 *                 weights of one row, one fp16 scale per group: the block
 *                 layout of ggml's Q4_0 ("block_q4_0"), byte for byte. Every
 *                 row is cut into groups along its inputs (so d_model and
 *                 d_ff must both be multiples of 32), and a row is its groups
 *                 in order. One group is EC_Q4_BLOCK_BYTES = 18 bytes:
 *
 *                     bytes 0-1    d, the scale: fp16, little-endian
 *                     bytes 2-17   qs[16], the 32 quants: byte 2 + j holds
 *                                  weight j in its low nibble (bits 0-3)
 *                                  and weight j + 16 in its high nibble
 *                                  (bits 4-7), j = 0..15
 *
 *                 weight k of the group = d * (q_k - 8), q_k in 0..15 (so
 *                 -8d..7d; no separate minimum or zero point). 4.5 bits per
 *                 weight: 3 * d_model * d_ff / 32 * 18 bytes per expert.
 *                 Blocks are not aligned (18-byte stride); readers use
 *                 unaligned loads. Any finite scale is valid (its sign may
 *                 be negative); a NaN or infinite scale is bad data
 *                 (ec_expert_validate). Quantizing (ec_expert_quantize_q4)
 *                 takes per group the weight m of largest magnitude, d =
 *                 m / -8 and q = min(15, (int)(w * (1 / d) + 8.5)) (q = 8
 *                 when d = 0), as ggml's reference quantizer does, so m
 *                 itself is exact (q = 0).
 *
 * The host kernel (ec_hostffn) runs one expert for a batch of 1 to
 * EC_HOSTFFN_MAX_BATCH tokens on a small pool of threads the handle owns
 * (created once; no thread is created per call), vectorised for the host
 * (AVX2 + F16C + FMA when the CPU has them, chosen at run time, else
 * portable C the compiler vectorises). Activations are float in and float
 * out, accumulation is float. ec_hostffn_reference is the scalar reference
 * (double accumulation, same dequantized weights) the fast path is tested
 * against.
 */
#ifndef EXPERTCAST_HOSTFFN_H
#define EXPERTCAST_HOSTFFN_H

#include "expertcast/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ec_dtype {
    EC_DTYPE_F16 = 0, /* fp16 weights */
    EC_DTYPE_Q4 = 1   /* 4-bit groups of 32 with an fp16 scale (ggml Q4_0 blocks) */
} ec_dtype;

#define EC_Q4_GROUP 32
#define EC_Q4_BLOCK_BYTES 18
#define EC_HOSTFFN_MAX_BATCH 8

/* "f16" or "q4" (NULL for an unknown value). */
const char *ec_dtype_name(ec_dtype dt);
/* Parses "f16"/"fp16" or "q4"/"q4_0"/"int4". EC_ERR_NOT_FOUND otherwise. */
ec_status ec_dtype_parse(const char *name, ec_dtype *out);

/*
 * Bytes of one expert's weights in format dt, or 0 when the shape is not
 * valid for it (d_model or d_ff < 1; for q4 not multiples of 32; or the
 * size does not fit in size_t).
 */
size_t ec_expert_bytes(ec_dtype dt, int32_t d_model, int32_t d_ff);

/*
 * Checks an expert blob of `bytes` bytes in format dt before use:
 *   - bytes must equal ec_expert_bytes (EC_ERR_RANGE when the shape is
 *     invalid for dt; EC_ERR_PARSE when the blob is truncated or too long,
 *     naming the first incomplete group, e.g. "q4 expert: 7000 bytes, 9216
 *     expected for d_model 64 x d_ff 32: truncated at W3 row 3 group 0
 *     (blob offset 6984)");
 *   - q4: every scale must be finite; fp16: every value finite.
 *     EC_ERR_PARSE names the matrix, row, group and byte offset of the
 *     first bad one ("W2 row 17 group 3 (blob offset 12345): scale is
 *     NaN").
 * err may be NULL.
 */
ec_status ec_expert_validate(ec_dtype dt, const void *blob, size_t bytes, int32_t d_model,
                             int32_t d_ff, ec_error *err);

/*
 * Quantizes an expert to q4. w is [W1 | W3 | W2] row-major as above, float
 * (ec_expert_quantize_q4) or fp16 (ec_expert_quantize_q4_f16); dst holds
 * ec_expert_bytes(EC_DTYPE_Q4, d_model, d_ff) bytes. A non-finite weight
 * is EC_ERR_RANGE naming its matrix, row and column (dst is then
 * undefined).
 */
ec_status ec_expert_quantize_q4(const float *w, int32_t d_model, int32_t d_ff, void *dst,
                                ec_error *err);
ec_status ec_expert_quantize_q4_f16(const uint16_t *w, int32_t d_model, int32_t d_ff, void *dst,
                                    ec_error *err);

/*
 * Dequantizes (q4) or converts (f16) one expert's weights to float, in the
 * same [W1 | W3 | W2] layout: 3 * d_model * d_ff floats into dst.
 */
ec_status ec_expert_dequantize(ec_dtype dt, const void *w, int32_t d_model, int32_t d_ff,
                               float *dst, ec_error *err);

/*
 * The scalar reference: y[b][i] for b < batch, i < d_model, from x[b][j],
 * j < d_model, accumulating in double over the dequantized weights. Any
 * batch >= 1. Allocates its scratch (EC_ERR_NOMEM).
 */
ec_status ec_hostffn_reference(ec_dtype dt, const void *w, const float *x, float *y,
                               int32_t batch, int32_t d_model, int32_t d_ff, ec_error *err);

/* ---- the host executor ------------------------------------------------------------ */

typedef struct ec_hostffn ec_hostffn;

/*
 * A host executor running each expert on `threads` threads: the calling
 * thread and threads - 1 workers started here and kept until destroy.
 * threads <= 0 means one per online CPU; at most 64.
 */
ec_status ec_hostffn_create(int32_t threads, ec_hostffn **out, ec_error *err);
/* Stops and joins the workers. NULL is harmless. */
void ec_hostffn_destroy(ec_hostffn *h);

/*
 * y[batch][d_model] = the expert (format dt, weights w of ec_expert_bytes)
 * applied to each of x[batch][d_model]; 1 <= batch <= EC_HOSTFFN_MAX_BATCH.
 * Returns when y is complete. x and y must not overlap. The weights are
 * trusted (run ec_expert_validate on data from outside first). Scratch
 * grows to the largest d_ff seen (EC_ERR_NOMEM). One call at a time per
 * handle; different handles run concurrently.
 */
ec_status ec_hostffn_run(ec_hostffn *h, ec_dtype dt, const void *w, const float *x, float *y,
                         int32_t batch, int32_t d_model, int32_t d_ff);

/*
 * Reads `bytes` bytes at p once with the executor's threads, in chunks
 * handed out the way a run hands out weight rows, and stores the sum
 * (mod 2^64) of its little-endian 64-bit words (the last one zero-padded)
 * in *sum, so that no read can be skipped. This is the plain streaming
 * read bench_host_ffn times as the host's read bandwidth.
 */
ec_status ec_hostffn_read(ec_hostffn *h, const void *p, size_t bytes, uint64_t *sum);

/* Threads the executor runs on (the caller included). */
int32_t ec_hostffn_threads(const ec_hostffn *h);
/* The code path chosen at creation: "avx2" or "portable". */
const char *ec_hostffn_isa(const ec_hostffn *h);
/* Message of the last failed call ("" if none). */
const char *ec_hostffn_errmsg(const ec_hostffn *h);

#ifdef __cplusplus
}
#endif
#endif
