/*
 * example_decode_loop: the loader wired into a CUDA MoE decode loop (the
 * README's example). The runtime's attention and router are stubbed: a
 * fixed-duration kernel, and a top-2 drawn on the host where a real runtime
 * reads its router's output back. Policy hybrid: an expert runs in a device
 * slot (device kernel) or, when the loader says so, on the host (host
 * kernel on the store's weights; the activations come to the host and the
 * output goes back). The host kernel here is the library's reference FFN,
 * single-threaded; a runtime brings its own vectorised one.
 */
#include "expertcast/loader.h"
#include "expertcast/trace.h"
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
    ec_predictor *pred;
    ec_trace *hist;
    cudaStream_t compute;
    void *x, *out, *scratch; /* the layer's activation, FFN output, FFN scratch */
    static uint16_t x_host[D];
    static float xf_host[D], out_host[D];
    ec_hostffn *hf;                                       /* the host expert kernel */
    TRY(ec_backend_create("cuda", NULL, &b, &err), err.message);
    TRY(ec_store_create(b, L, E, ec_ffn_bytes(D, FF), &store, &err), err.message);
    TRY(ec_store_fill_synthetic(store, 1, 16), "fill");   /* or ec_store_load_file() */
    ec_synth_opts so;                                     /* routing history to fit on: */
    ec_synth_opts_default(&so);                           /* a real runtime uses a recorded */
    so.n_layers = L, so.n_experts = E, so.k = K;          /* trace (ec_trace_load) */
    TRY(ec_synth_generate(&so, &hist, &err), err.message);
    TRY(ec_predictor_create("temporal", NULL, &pred, &err), err.message);
    TRY(ec_predictor_fit(pred, hist, NULL), ec_predictor_errmsg(pred));
    ec_loader_config cfg;
    ec_loader_config_default(&cfg);                       /* k = 2, lru, window 2 */
    cfg.cache_per_layer = 4;                              /* 4 of 8 experts per layer */
    cfg.policy.kind = EC_POLICY_HYBRID;                   /* costs from the hardware profile: */
    cfg.policy.transfer_ms = 3.7;                         /* ec_sim_timing_derive gives them */
    cfg.policy.compute_ms = 0.3;
    cfg.policy.host_ms = 1.8;                             /* one expert streamed on the host */
    cfg.policy.host_act_ms = 0.02;                        /* activations there and back */
    TRY(ec_loader_create(b, store, pred, &cfg, &l, &err), err.message);
    TRY(ec_hostffn_create(0, &hf, &err), err.message);    /* one thread per CPU */
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
            int x_on_host = 0;
            for (int j = 0; j < K; j++) {
                ec_expert_ref w;                          /* where the expert runs */
                TRY(ec_loader_acquire_where(l, layer, experts[j], cs, &w), ec_loader_errmsg(l));
                if (w.where == EC_WHERE_DEVICE) {         /* a slot: waits on its copy, on-device */
                    ec_kernel_ffn(w.dev, x, out, D, FF, scratch, compute);
                } else {                                  /* the host: its weights in the store */
                    if (!x_on_host) {                     /* the activations, once per layer */
                        cudaMemcpyAsync(x_host, x, sizeof x_host, cudaMemcpyDeviceToHost, compute);
                        cudaStreamSynchronize(compute);
                        for (int i = 0; i < D; i++)
                            xf_host[i] = ec_half_to_float(x_host[i]);
                        x_on_host = 1;
                    }
                    TRY(ec_hostffn_run(hf, EC_DTYPE_F16, w.host, xf_host, out_host, 1, D, FF),
                        "host FFN");
                    cudaMemcpyAsync(out, out_host, sizeof out_host, cudaMemcpyHostToDevice, compute);
                    cudaStreamSynchronize(compute);       /* out_host is reused */
                }
                TRY(ec_loader_release(l, layer, experts[j], cs), ec_loader_errmsg(l));
            }
        }
    }

    TRY(ec_loader_sync(l), ec_loader_errmsg(l));
    ec_loader_stats st;
    ec_loader_stats_get(l, &st);
    printf("%lld uses: %lld hits, %lld in flight, %lld misses (%lld run on the host); %.1f GB "
           "copied; stall %.2f ms\n",
           (long long)st.cache.acquires, (long long)st.cache.hits,
           (long long)st.cache.inflight_hits, (long long)st.cache.misses,
           (long long)st.host_acquires, st.bytes / 1e9, st.stall_ms);
    ec_loader_destroy(l);
    ec_hostffn_destroy(hf);
    ec_stream_destroy(cs); /* frees the wrapper; the stream stays the runtime's */
    cudaStreamDestroy(compute);
    cudaFree(x);
    cudaFree(out);
    cudaFree(scratch);
    ec_predictor_destroy(pred);
    ec_trace_destroy(hist);
    ec_store_destroy(store);
    ec_backend_destroy(b);
    return 0;
}
