// A kernel of fixed duration: the attention stand-in of the replay benchmark.
#include "ec_kernels.h"

__device__ __forceinline__ uint64_t global_ns(void)
{
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__global__ void spin_kernel(uint64_t ns)
{
    uint64_t t0 = global_ns();
    while (global_ns() - t0 < ns) {
    }
}

extern "C" cudaError_t ec_kernel_spin(uint64_t ns, cudaStream_t stream)
{
    spin_kernel<<<1, 1, 0, stream>>>(ns);
    return cudaGetLastError();
}

extern "C" cudaError_t ec_kernel_spin_preload(void)
{
    cudaFuncAttributes a;
    return cudaFuncGetAttributes(&a, spin_kernel);
}
