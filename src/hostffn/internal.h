/* Internal pieces of the host expert kernel and the weight formats. Not installed. */
#ifndef EC_HOSTFFN_INTERNAL_H
#define EC_HOSTFFN_INTERNAL_H

#include "../core/internal.h"
#include "expertcast/backend.h"
#include "expertcast/hostffn.h"

#include <stdint.h>

/* ---- q4 blocks (layout in expertcast/hostffn.h) ------------------------------------ */

static inline uint16_t ec_q4_scale_bits(const uint8_t *blk)
{
    return (uint16_t)(blk[0] | (blk[1] << 8));
}

/* Quant k (0..31) of a block, 0..15. */
static inline int ec_q4_quant(const uint8_t *blk, int k)
{
    return k < 16 ? (blk[2 + k] & 15) : (blk[2 + k - 16] >> 4);
}

/* Bytes of one row of n_cols weights in format dt (n_cols valid for dt). */
static inline size_t ec_row_bytes(ec_dtype dt, int32_t n_cols)
{
    return dt == EC_DTYPE_Q4 ? (size_t)n_cols / EC_Q4_GROUP * EC_Q4_BLOCK_BYTES
                             : (size_t)n_cols * 2;
}

/* The weight at (row, col) of a matrix of n_cols columns starting at mat. */
float ec_weight_at(ec_dtype dt, const uint8_t *mat, size_t row, size_t col, size_t n_cols);

/*
 * The reference for one token (double accumulation): x is float (xf) or
 * fp16 (xh; the other NULL); out: float [d_model]; scratch: float [d_ff].
 * Allocates nothing (the cpu backend runs it on its stream threads).
 */
void ec_expert_reference_token(ec_dtype dt, const void *w, const float *xf, const uint16_t *xh,
                               float *out, int32_t d_model, int32_t d_ff, float *scratch);

/* ---- row kernels --------------------------------------------------------------------- */

/*
 * out[t * out_stride + (r - r0)] = row r of the matrix at mat (n_cols columns,
 * format dt) · x[t * x_stride ...], for rows r0 <= r < r1 and tokens t < nt
 * (1 <= nt <= EC_HOSTFFN_MAX_BATCH). Float accumulation.
 */
typedef void (*ec_rows_fn)(const uint8_t *mat, int32_t n_cols, int32_t r0, int32_t r1,
                           const float *x, size_t x_stride, int32_t nt, float *out,
                           size_t out_stride);

typedef struct ec_rows_kernels {
    const char *isa;
    ec_rows_fn f16, q4;
} ec_rows_kernels;

/* Portable C (auto-vectorised), always available. */
extern const ec_rows_kernels ec_rows_portable;
/* AVX2 + FMA + F16C kernels, or NULL when this build or CPU has none. */
const ec_rows_kernels *ec_rows_avx2(void);

/* Creates an executor on the named kernels ("avx2", "portable"; NULL: the
 * best the CPU runs). EC_ERR_UNSUPPORTED when the CPU lacks them. */
ec_status ec_hostffn_create_isa(int32_t threads, const char *isa, ec_hostffn **out,
                                ec_error *err);

#endif
