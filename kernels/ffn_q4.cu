// SwiGLU expert FFN for batch-1 decode from q4 weights (ggml Q4_0 blocks, see
// include/expertcast/hostffn.h), dequantized on the fly, float accumulation.
//   h[d_ff]      = silu(w1 · x) ⊙ (w3 · x)     (ffn_q4_gate_up, one warp per row of w1/w3)
//   out[d_model] = w2 · h                       (ffn_q4_down,    one warp per row of w2)
// Lane i of a warp takes groups i, i + 32, ... of its row, so the warp reads 32
// consecutive 18-byte blocks (576 contiguous bytes) per step. Blocks are only
// 2-byte aligned: the scale and the quants are read as 16-bit words; x (fp16)
// and h (float) are read with 16-byte loads (the caller keeps them 16-byte
// aligned; every group starts at a multiple of 32 elements).
#include "ec_kernels.h"

#include <cuda_fp16.h>
#include <stdint.h>

#define WARPS_PER_BLOCK 8
#define Q4_GROUP 32
#define Q4_BLOCK 18

__device__ __forceinline__ float q4_warp_sum(float v)
{
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, off);
    return v;
}

// The 16 quant bytes of a block as 8 little-endian 16-bit words: word j holds
// bytes 2j (bits 0-7) and 2j+1 (bits 8-15); byte b holds weight b (low nibble)
// and weight b + 16 (high nibble).
__device__ __forceinline__ void q4_load(const uint8_t *blk, float *d, unsigned short *q)
{
    const unsigned short *p = reinterpret_cast<const unsigned short *>(blk);
    *d = __half2float(__ushort_as_half(__ldg(p)));
#pragma unroll
    for (int j = 0; j < 8; j++)
        q[j] = __ldg(p + 1 + j);
}

// d * sum_k (q_k - 8) * x_k over one group; x: 32 fp16, 16-byte aligned.
__device__ __forceinline__ float q4_dot_half(const uint8_t *blk, const __half *x)
{
    float d;
    unsigned short q[8];
    q4_load(blk, &d, q);
    const uint4 *vx = reinterpret_cast<const uint4 *>(x);
    uint4 xv[4] = {__ldg(vx), __ldg(vx + 1), __ldg(vx + 2), __ldg(vx + 3)};
    const __half2 *x2 = reinterpret_cast<const __half2 *>(xv); // x2[i] = weights 2i, 2i+1
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        float2 lo = __half22float2(x2[j]);     // weights 2j, 2j+1
        float2 hi = __half22float2(x2[8 + j]); // weights 16+2j, 17+2j
        unsigned w = q[j];
        s += (float)((int)(w & 15u) - 8) * lo.x + (float)((int)((w >> 8) & 15u) - 8) * lo.y +
             (float)((int)((w >> 4) & 15u) - 8) * hi.x + (float)((int)(w >> 12) - 8) * hi.y;
    }
    return d * s;
}

// The same with float inputs h (32 floats, 16-byte aligned).
__device__ __forceinline__ float q4_dot_float(const uint8_t *blk, const float *h)
{
    float d;
    unsigned short q[8];
    q4_load(blk, &d, q);
    const float4 *vh = reinterpret_cast<const float4 *>(h);
    float hv[32];
#pragma unroll
    for (int i = 0; i < 8; i++) {
        float4 f = vh[i];
        hv[4 * i] = f.x;
        hv[4 * i + 1] = f.y;
        hv[4 * i + 2] = f.z;
        hv[4 * i + 3] = f.w;
    }
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        unsigned w = q[j];
        s += (float)((int)(w & 15u) - 8) * hv[2 * j] +
             (float)((int)((w >> 8) & 15u) - 8) * hv[2 * j + 1] +
             (float)((int)((w >> 4) & 15u) - 8) * hv[16 + 2 * j] +
             (float)((int)(w >> 12) - 8) * hv[17 + 2 * j];
    }
    return d * s;
}

__global__ void ffn_q4_gate_up(const uint8_t *__restrict__ w1, const uint8_t *__restrict__ w3,
                               const __half *__restrict__ x, float *__restrict__ h, int d, int ff)
{
    int row = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (row >= ff)
        return;
    int groups = d / Q4_GROUP;
    const uint8_t *r1 = w1 + (size_t)row * groups * Q4_BLOCK;
    const uint8_t *r3 = w3 + (size_t)row * groups * Q4_BLOCK;
    float a = 0.f, b = 0.f;
    for (int g = lane; g < groups; g += 32) {
        a += q4_dot_half(r1 + (size_t)g * Q4_BLOCK, x + (size_t)g * Q4_GROUP);
        b += q4_dot_half(r3 + (size_t)g * Q4_BLOCK, x + (size_t)g * Q4_GROUP);
    }
    a = q4_warp_sum(a);
    b = q4_warp_sum(b);
    if (lane == 0)
        h[row] = a / (1.f + expf(-a)) * b;
}

__global__ void ffn_q4_down(const uint8_t *__restrict__ w2, const float *__restrict__ h,
                            float *__restrict__ out, int d, int ff)
{
    int row = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (row >= d)
        return;
    int groups = ff / Q4_GROUP;
    const uint8_t *r = w2 + (size_t)row * groups * Q4_BLOCK;
    float s = 0.f;
    for (int g = lane; g < groups; g += 32)
        s += q4_dot_float(r + (size_t)g * Q4_BLOCK, h + (size_t)g * Q4_GROUP);
    s = q4_warp_sum(s);
    if (lane == 0)
        out[row] = s;
}

extern "C" cudaError_t ec_kernel_ffn_q4(const void *w, const void *x, float *out, int32_t d_model,
                                        int32_t d_ff, float *scratch, cudaStream_t stream)
{
    if (d_model < Q4_GROUP || d_ff < Q4_GROUP || d_model % Q4_GROUP || d_ff % Q4_GROUP ||
        (uintptr_t)w % 2 || (uintptr_t)x % 16 || (uintptr_t)scratch % 16)
        return cudaErrorInvalidValue;
    const uint8_t *w1 = (const uint8_t *)w;
    const uint8_t *w3 = w1 + (size_t)d_ff * (d_model / Q4_GROUP) * Q4_BLOCK;
    const uint8_t *w2 = w3 + (size_t)d_ff * (d_model / Q4_GROUP) * Q4_BLOCK;
    int threads = 32 * WARPS_PER_BLOCK;
    ffn_q4_gate_up<<<(d_ff + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK, threads, 0, stream>>>(
        w1, w3, (const __half *)x, scratch, d_model, d_ff);
    ffn_q4_down<<<(d_model + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK, threads, 0, stream>>>(
        w2, scratch, out, d_model, d_ff);
    return cudaGetLastError();
}

extern "C" cudaError_t ec_kernel_ffn_q4_preload(void)
{
    cudaFuncAttributes a;
    cudaError_t e = cudaFuncGetAttributes(&a, ffn_q4_gate_up);
    return e == cudaSuccess ? cudaFuncGetAttributes(&a, ffn_q4_down) : e;
}
