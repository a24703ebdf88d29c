/*
 * example_decode_loop: the loader wired into a CUDA MoE decode loop (the
 * README's example). The runtime's attention and router are stubbed: a
 * fixed-duration kernel, and a top-2 drawn on the host where a real runtime
 * reads its router's output back.
 */
#include "expertcast/loader.h"
#include "ec_kernels.h" /* ec_kernel_ffn / ec_kernel_spin: the runtime's own kernels */

#include <cuda_runtime_api.h>
#include <stdio.h>

#define TRY(call, msg)                                                                             \
    do {                                                                                           \
        if ((call) != EC_OK) {                                                                     \
            fprintf(stderr, "%s: %s\n", #call, (msg));                                             \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

enum { L = 32, E = 8, K = 2, D = 4096, FF = 3584, TOKENS = 8 };

static void router_topk(int token, int layer, int16_t out[K])
{
    out[0] = (int16_t)((token * 7 + layer * 3) % E);
    out[1] = (int16_t)((out[0] + 1 + (token + layer) % (E - 1)) % E);
}

int main(void)
{
    ec_error err = {0};
    ec_backend *b;
    ec_store *store;
    ec_loader *l;
    ec_stream *cs;
    cudaStream_t compute;
    void *x, *out, *scratch; /* the layer's activation, FFN output, FFN scratch */
    TRY(ec_backend_create("cuda", NULL, &b, &err), err.message);
    TRY(ec_store_create(b, L, E, ec_ffn_bytes(D, FF), &store, &err), err.message);
    TRY(ec_store_fill_synthetic(store, 1, 16), "fill");   /* or ec_store_load_file() */
    ec_loader_config cfg;
    ec_loader_config_default(&cfg);                       /* k = 2, lru, window 2 */
    cfg.cache_per_layer = 4;                              /* 4 of 8 experts per layer */
    TRY(ec_loader_create(b, store, NULL, &cfg, &l, &err), err.message);
    cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking);
    TRY(ec_stream_wrap(b, compute, &cs), ec_backend_errmsg(b)); /* the runtime's stream */
    cudaMalloc(&x, D * 2);
    cudaMemset(x, 0, D * 2);
    cudaMalloc(&out, D * 4);
    cudaMalloc(&scratch, FF * 4);

    for (int token = 0; token < TOKENS; token++) {
        for (int layer = 0; layer < L; layer++) {
            ec_kernel_spin(200000, compute);              /* attention + router of layer */
            cudaStreamSynchronize(compute);               /* read the router's top-k back */
            int16_t experts[K];
            router_topk(token, layer, experts);
            TRY(ec_loader_observe(l, layer, experts), ec_loader_errmsg(l));
            for (int j = 0; j < K; j++) {
                void *w;                                  /* the expert's weights on the device */
                TRY(ec_loader_acquire(l, layer, experts[j], cs, &w), ec_loader_errmsg(l));
                ec_kernel_ffn(w, x, out, D, FF, scratch, compute); /* waits on the copy, on-device */
                TRY(ec_loader_release(l, layer, experts[j], cs), ec_loader_errmsg(l));
            }
        }
    }

    TRY(ec_loader_sync(l), ec_loader_errmsg(l));
    ec_loader_stats st;
    ec_loader_stats_get(l, &st);
    printf("%lld uses: %lld hits, %lld in flight, %lld misses; %.1f GB copied; stall %.2f ms\n",
           (long long)st.cache.acquires, (long long)st.cache.hits,
           (long long)st.cache.inflight_hits, (long long)st.cache.misses, st.bytes / 1e9,
           st.stall_ms);
    ec_loader_destroy(l);
    ec_stream_destroy(cs); /* frees the wrapper; the stream stays the runtime's */
    cudaStreamDestroy(compute);
    cudaFree(x);
    cudaFree(out);
    cudaFree(scratch);
    ec_store_destroy(store);
    ec_backend_destroy(b);
    return 0;
}
