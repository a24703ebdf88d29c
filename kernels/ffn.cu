// SwiGLU expert FFN for batch-1 decode, fp16 weights, float accumulation.
//   h[d_ff]      = silu(w1 · x) ⊙ (w3 · x)     (ffn_gate_up, one warp per row of w1/w3)
//   out[d_model] = w2 · h                       (ffn_down,    one warp per row of w2)
// Rows are read with 16-byte loads when the shapes and pointers allow it.
#include "ec_kernels.h"

#include <cuda_fp16.h>
#include <stdint.h>

#define WARPS_PER_BLOCK 8

__device__ __forceinline__ float warp_sum(float v)
{
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, off);
    return v;
}

// Dot product of 8 halves with 8 halves.
__device__ __forceinline__ float dot8(uint4 a, uint4 b)
{
    const __half2 *pa = reinterpret_cast<const __half2 *>(&a);
    const __half2 *pb = reinterpret_cast<const __half2 *>(&b);
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        float2 fa = __half22float2(pa[k]), fb = __half22float2(pb[k]);
        s += fa.x * fb.x + fa.y * fb.y;
    }
    return s;
}

__global__ void ffn_gate_up(const __half *__restrict__ w1, const __half *__restrict__ w3,
                            const __half *__restrict__ x, float *__restrict__ h, int d, int ff,
                            int vec)
{
    int row = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (row >= ff)
        return;
    const __half *r1 = w1 + (size_t)row * d, *r3 = w3 + (size_t)row * d;
    float a = 0.f, b = 0.f;
    if (vec) {
        const uint4 *v1 = reinterpret_cast<const uint4 *>(r1);
        const uint4 *v3 = reinterpret_cast<const uint4 *>(r3);
        const uint4 *vx = reinterpret_cast<const uint4 *>(x);
        for (int i = lane; i < d / 8; i += 32) {
            uint4 xx = __ldg(vx + i);
            a += dot8(__ldg(v1 + i), xx);
            b += dot8(__ldg(v3 + i), xx);
        }
    } else {
        for (int i = lane; i < d; i += 32) {
            float xv = __half2float(x[i]);
            a += __half2float(r1[i]) * xv;
            b += __half2float(r3[i]) * xv;
        }
    }
    a = warp_sum(a);
    b = warp_sum(b);
    if (lane == 0)
        h[row] = a / (1.f + expf(-a)) * b;
}

__global__ void ffn_down(const __half *__restrict__ w2, const float *__restrict__ h,
                         float *__restrict__ out, int d, int ff, int vec)
{
    int row = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (row >= d)
        return;
    const __half *r = w2 + (size_t)row * ff;
    float s = 0.f;
    if (vec) {
        const uint4 *v = reinterpret_cast<const uint4 *>(r);
        const float4 *vh = reinterpret_cast<const float4 *>(h);
        for (int i = lane; i < ff / 8; i += 32) {
            uint4 p = __ldg(v + i);
            float4 h0 = vh[2 * i], h1 = vh[2 * i + 1];
            const __half2 *ph = reinterpret_cast<const __half2 *>(&p);
            float2 f0 = __half22float2(ph[0]), f1 = __half22float2(ph[1]);
            float2 f2 = __half22float2(ph[2]), f3 = __half22float2(ph[3]);
            s += f0.x * h0.x + f0.y * h0.y + f1.x * h0.z + f1.y * h0.w + f2.x * h1.x +
                 f2.y * h1.y + f3.x * h1.z + f3.y * h1.w;
        }
    } else {
        for (int i = lane; i < ff; i += 32)
            s += __half2float(r[i]) * h[i];
    }
    s = warp_sum(s);
    if (lane == 0)
        out[row] = s;
}

extern "C" cudaError_t ec_kernel_ffn(const void *w, const void *x, float *out, int32_t d_model,
                                     int32_t d_ff, float *scratch, cudaStream_t stream)
{
    const __half *w1 = (const __half *)w;
    const __half *w3 = w1 + (size_t)d_ff * d_model;
    const __half *w2 = w3 + (size_t)d_ff * d_model;
    int aligned = ((uintptr_t)w % 16 == 0) && ((uintptr_t)x % 16 == 0) &&
                  ((uintptr_t)scratch % 16 == 0);
    int vec_up = aligned && d_model % 8 == 0;
    int vec_down = aligned && d_model % 8 == 0 && d_ff % 8 == 0;
    int threads = 32 * WARPS_PER_BLOCK;
    ffn_gate_up<<<(d_ff + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK, threads, 0, stream>>>(
        w1, w3, (const __half *)x, scratch, d_model, d_ff, vec_up);
    ffn_down<<<(d_model + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK, threads, 0, stream>>>(
        w2, scratch, out, d_model, d_ff, vec_down);
    return cudaGetLastError();
}

extern "C" cudaError_t ec_kernel_ffn_preload(void)
{
    cudaFuncAttributes a;
    cudaError_t e = cudaFuncGetAttributes(&a, ffn_gate_up);
    return e == cudaSuccess ? cudaFuncGetAttributes(&a, ffn_down) : e;
}
