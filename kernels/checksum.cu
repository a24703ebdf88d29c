// ec_checksum64 on the device: every thread mixes words, a warp reduces,
// one atomic per warp, then a single thread adds the tail and finalises.
#include "ec_kernels.h"

#include <stdint.h>

#define EC_CHECKSUM_SALT 0x9e3779b97f4a7c15ull

__device__ __forceinline__ uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb93fe53ec34full;
    k ^= k >> 33;
    return k;
}

__global__ void checksum_words(const uint64_t *__restrict__ w, size_t words,
                               unsigned long long *out)
{
    uint64_t sum = 0;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < words; i += stride)
        sum += fmix64(__ldg(w + i) ^ ((uint64_t)i * EC_CHECKSUM_SALT));
    for (int off = 16; off > 0; off >>= 1)
        sum += __shfl_down_sync(0xffffffffu, sum, off);
    if ((threadIdx.x & 31) == 0)
        atomicAdd(out, (unsigned long long)sum);
}

__global__ void checksum_finish(const unsigned char *src, size_t bytes, unsigned long long *out)
{
    size_t words = bytes / 8, tail = bytes % 8;
    uint64_t sum = *out;
    if (tail) {
        uint64_t w = 0;
        for (size_t k = 0; k < tail; k++)
            w |= (uint64_t)src[words * 8 + k] << (8 * k);
        sum += fmix64(w ^ ((uint64_t)words * EC_CHECKSUM_SALT));
    }
    *out = fmix64(sum ^ (uint64_t)bytes);
}

extern "C" cudaError_t ec_kernel_checksum(const void *src, size_t bytes, uint64_t *out,
                                          cudaStream_t stream)
{
    if (((uintptr_t)src & 7u) || ((uintptr_t)out & 7u))
        return cudaErrorInvalidValue; // slot bases are 256-byte aligned
    cudaError_t e = cudaMemsetAsync(out, 0, sizeof *out, stream);
    if (e != cudaSuccess)
        return e;
    size_t words = bytes / 8;
    if (words) {
        size_t blocks = (words + 255) / 256;
        if (blocks > 2048)
            blocks = 2048;
        checksum_words<<<(unsigned)blocks, 256, 0, stream>>>((const uint64_t *)src, words,
                                                             (unsigned long long *)out);
    }
    checksum_finish<<<1, 1, 0, stream>>>((const unsigned char *)src, bytes,
                                         (unsigned long long *)out);
    return cudaGetLastError();
}

extern "C" cudaError_t ec_kernel_checksum_preload(void)
{
    cudaFuncAttributes a;
    cudaError_t e = cudaFuncGetAttributes(&a, checksum_words);
    return e == cudaSuccess ? cudaFuncGetAttributes(&a, checksum_finish) : e;
}
