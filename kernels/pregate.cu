// Pre-gating: softmax(w · x) over a layer's experts, written where the host
// reads it (a mapped pinned buffer). One block; each warp takes expert rows
// in turn and reduces its dot product with shuffles; the logits wait in
// shared memory for the block-wide max and sum.
#include "ec_kernels.h"

#include <cuda_fp16.h>
#include <math.h>

#define PREGATE_THREADS 256
#define PREGATE_MAX_EXPERTS 4096

template <typename T> __device__ __forceinline__ float as_float(T v);
template <> __device__ __forceinline__ float as_float<float>(float v) { return v; }
template <> __device__ __forceinline__ float as_float<__half>(__half v) { return __half2float(v); }

__device__ float block_reduce(float v, float *red, bool is_max)
{
    for (int off = 16; off > 0; off >>= 1) {
        float o = __shfl_down_sync(0xffffffffu, v, off);
        v = is_max ? fmaxf(v, o) : v + o;
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        float r = red[0];
        for (int i = 1; i < (int)(blockDim.x >> 5); i++)
            r = is_max ? fmaxf(r, red[i]) : r + red[i];
        red[0] = r;
    }
    __syncthreads();
    float r = red[0];
    __syncthreads();
    return r;
}

template <typename T>
__global__ void pregate(const T *__restrict__ w, const T *__restrict__ x, int E, int d,
                        float *probs)
{
    __shared__ float logit[PREGATE_MAX_EXPERTS];
    __shared__ float red[PREGATE_THREADS / 32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int e = warp; e < E; e += warps) {
        const T *row = w + (size_t)e * (size_t)d;
        float acc = 0.f;
        for (int j = lane; j < d; j += 32)
            acc += as_float<T>(row[j]) * as_float<T>(x[j]);
        for (int off = 16; off > 0; off >>= 1)
            acc += __shfl_down_sync(0xffffffffu, acc, off);
        if (lane == 0)
            logit[e] = acc;
    }
    __syncthreads();
    float m = -INFINITY;
    for (int e = threadIdx.x; e < E; e += blockDim.x)
        m = fmaxf(m, logit[e]);
    m = block_reduce(m, red, true);
    float s = 0.f;
    for (int e = threadIdx.x; e < E; e += blockDim.x)
        s += expf(logit[e] - m);
    s = block_reduce(s, red, false);
    for (int e = threadIdx.x; e < E; e += blockDim.x)
        probs[e] = expf(logit[e] - m) / s;
    __threadfence_system(); // the host reads these after the stream's next event
}

extern "C" cudaError_t ec_kernel_pregate(const void *w, const void *x, int dtype,
                                         int32_t n_experts, int32_t d, float *probs,
                                         cudaStream_t stream)
{
    if (n_experts < 1 || n_experts > PREGATE_MAX_EXPERTS || d < 1 || (dtype != 0 && dtype != 1))
        return cudaErrorInvalidValue;
    if (dtype == 0)
        pregate<float><<<1, PREGATE_THREADS, 0, stream>>>((const float *)w, (const float *)x,
                                                          n_experts, d, probs);
    else
        pregate<__half><<<1, PREGATE_THREADS, 0, stream>>>((const __half *)w, (const __half *)x,
                                                           n_experts, d, probs);
    return cudaGetLastError();
}

extern "C" cudaError_t ec_kernel_pregate_preload(void)
{
    cudaFuncAttributes a;
    cudaError_t e = cudaFuncGetAttributes(&a, pregate<float>);
    if (e == cudaSuccess)
        e = cudaFuncGetAttributes(&a, pregate<__half>);
    return e;
}
