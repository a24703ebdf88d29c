/* Eager loading of the library's kernels (see ec_kernels_preload). */
#include "ec_kernels.h"

/* Each kernel file exposes one function that loads its kernels
 * (cudaFuncGetAttributes forces a lazily loaded module in). */
extern "C" cudaError_t ec_kernel_checksum_preload(void);
extern "C" cudaError_t ec_kernel_ffn_preload(void);
extern "C" cudaError_t ec_kernel_ffn_q4_preload(void);
extern "C" cudaError_t ec_kernel_spin_preload(void);
extern "C" cudaError_t ec_kernel_pregate_preload(void);

extern "C" cudaError_t ec_kernels_preload(void)
{
    cudaError_t e = ec_kernel_checksum_preload();
    if (e == cudaSuccess)
        e = ec_kernel_ffn_preload();
    if (e == cudaSuccess)
        e = ec_kernel_ffn_q4_preload();
    if (e == cudaSuccess)
        e = ec_kernel_spin_preload();
    if (e == cudaSuccess)
        e = ec_kernel_pregate_preload();
    return e;
}
