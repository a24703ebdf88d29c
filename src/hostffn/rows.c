/*
 * Portable row kernels: plain C11 written in lanes of 8 so that the
 * compiler vectorises it (no intrinsics). Each weight row is decoded in
 * pieces into a small float buffer, which every token of the tile then
 * reads from L1.
 */
#include "internal.h"

#include <string.h>

#define LANES 8
#define PIECE 64 /* columns decoded at a time (a multiple of 32 and of LANES) */

/* binary16 -> float without branches on the common path: the exponent and
 * mantissa bits moved into place and rebiased by a multiply by 2^112,
 * which also normalises subnormals; Inf/NaN get the all-ones exponent. */
static inline float half_to_float_fast(uint16_t h)
{
    uint32_t u = (uint32_t)(h & 0x7fffu) << 13;
    float f;
    memcpy(&f, &u, sizeof f);
    f *= 0x1p112f;
    memcpy(&u, &f, sizeof u);
    u |= (uint32_t)((h & 0x7c00u) == 0x7c00u) * 0x7f800000u;
    u |= (uint32_t)(h & 0x8000u) << 16;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline float hsum(const float *a)
{
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

/* acc[l] += sum over the n (a multiple of LANES) columns of w * x, in lanes. */
static inline void dot_lanes(const float *w, const float *x, int32_t n, float *acc)
{
    for (int32_t c = 0; c < n; c += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += w[c + l] * x[c + l];
}

static void rows_f16(const uint8_t *mat, int32_t n_cols, int32_t r0, int32_t r1, const float *x,
                     size_t x_stride, int32_t nt, float *out, size_t out_stride)
{
    float wbuf[PIECE];
    uint16_t hbuf[PIECE];
    for (int32_t r = r0; r < r1; r++) {
        const uint8_t *row = mat + (size_t)r * (size_t)n_cols * 2;
        float acc[EC_HOSTFFN_MAX_BATCH][LANES] = {{0}}, tail[EC_HOSTFFN_MAX_BATCH] = {0};
        for (int32_t c0 = 0; c0 < n_cols; c0 += PIECE) {
            int32_t n = EC_MIN(PIECE, n_cols - c0), nv = n / LANES * LANES;
            memcpy(hbuf, row + 2 * (size_t)c0, 2 * (size_t)n);
            if (n < PIECE)
                memset(hbuf + n, 0, 2 * (size_t)(PIECE - n));
            for (int k = 0; k < PIECE; k++) /* a fixed count the compiler vectorises */
                wbuf[k] = half_to_float_fast(hbuf[k]);
            for (int32_t t = 0; t < nt; t++) {
                const float *xt = x + (size_t)t * x_stride + c0;
                dot_lanes(wbuf, xt, nv, acc[t]);
                for (int32_t k = nv; k < n; k++)
                    tail[t] += wbuf[k] * xt[k];
            }
        }
        for (int32_t t = 0; t < nt; t++)
            out[(size_t)t * out_stride + (size_t)(r - r0)] = hsum(acc[t]) + tail[t];
    }
}

static void rows_q4(const uint8_t *mat, int32_t n_cols, int32_t r0, int32_t r1, const float *x,
                    size_t x_stride, int32_t nt, float *out, size_t out_stride)
{
    size_t row_bytes = ec_row_bytes(EC_DTYPE_Q4, n_cols);
    int32_t groups = n_cols / EC_Q4_GROUP;
    float q[EC_Q4_GROUP];
    for (int32_t r = r0; r < r1; r++) {
        const uint8_t *blk = mat + (size_t)r * row_bytes;
        float acc[EC_HOSTFFN_MAX_BATCH][LANES] = {{0}};
        for (int32_t g = 0; g < groups; g++, blk += EC_Q4_BLOCK_BYTES) {
            float d = half_to_float_fast(ec_q4_scale_bits(blk));
            for (int j = 0; j < 16; j++) {
                q[j] = (float)((blk[2 + j] & 15) - 8);
                q[16 + j] = (float)((blk[2 + j] >> 4) - 8);
            }
            for (int32_t t = 0; t < nt; t++) {
                float s[LANES] = {0};
                dot_lanes(q, x + (size_t)t * x_stride + (size_t)g * EC_Q4_GROUP, EC_Q4_GROUP, s);
                for (int l = 0; l < LANES; l++)
                    acc[t][l] += d * s[l];
            }
        }
        for (int32_t t = 0; t < nt; t++)
            out[(size_t)t * out_stride + (size_t)(r - r0)] = hsum(acc[t]);
    }
}

const ec_rows_kernels ec_rows_portable = {.isa = "portable", .f16 = rows_f16, .q4 = rows_q4};
