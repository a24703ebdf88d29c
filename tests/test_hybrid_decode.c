/*
 * A short decode through the loader with policy hybrid on the CPU backend:
 * every layer's MoE output, with each expert computed where the loader says
 * (device slot: the backend's FFN kernel on the reader stream; host: the
 * host FFN on the store's weights), equals the all-resident reference (every
 * expert computed from the store). Every expert the router chose runs
 * exactly once: none skipped, none run twice.
 *
 * Tolerance: |out - ref| <= 1e-5 * (1 + |ref|) per element. The CPU
 * backend's device kernel and the host path both run the reference FFN, so
 * the sums match exactly here; the tolerance leaves room for a vectorised
 * host kernel or a device kernel accumulating in float in another order.
 */
#include "testutil.h"

#include <math.h>
#include <string.h>

enum { L = 4, E = 8, K = 2, D = 64, FF = 96, TOKENS = 24 };

static void make_x(int tok, int layer, uint16_t *x)
{
    for (int i = 0; i < D; i++)
        x[i] = ec_half_from_float(0.5f * sinf(0.37f * (float)(i + 1) + 1.3f * (float)tok +
                                              0.7f * (float)layer));
}

typedef struct counts {
    int device, host, copies_seen;
} counts;

/* Decodes sequence 0 of t (the predictor is fitted on the others) through a
 * hybrid loader with the given host cost; checks every layer's output. */
static counts decode(const ec_trace *t, double host_ms)
{
    ec_backend *b;
    ec_store *store;
    ec_error err = {0};
    cr_assert_eq(ec_backend_create("cpu", NULL, &b, &err), EC_OK, "%s", err.message);
    cr_assert_eq(ec_store_create(b, L, E, ec_ffn_bytes(D, FF), &store, &err), EC_OK, "%s",
                 err.message);
    cr_assert_eq(ec_store_fill_synthetic(store, 7, 1), EC_OK);

    ec_predictor *pred;
    cr_assert_eq(ec_predictor_create("temporal", NULL, &pred, NULL), EC_OK);
    uint8_t mask[8] = {0};
    for (size_t i = 1; i < t->n_seqs && i < 8; i++)
        mask[i] = 1;
    cr_assert_eq(ec_predictor_fit(pred, t, mask), EC_OK);

    ec_loader_config cfg;
    ec_loader_config_default(&cfg);
    cfg.k = K;
    cfg.cache_per_layer = 3;
    cfg.policy.kind = EC_POLICY_HYBRID;
    cfg.policy.horizon = 1;
    cfg.policy.transfer_ms = 3.7;
    cfg.policy.compute_ms = 0.3;
    cfg.policy.host_ms = host_ms;
    cfg.policy.host_act_ms = 0.02;
    ec_loader *l;
    cr_assert_eq(ec_loader_create(b, store, pred, &cfg, &l, &err), EC_OK, "%s", err.message);

    ec_stream *cs;
    cr_assert_eq(ec_stream_create(b, &cs), EC_OK);
    void *x_dev, *out_dev, *scratch_dev;
    cr_assert_eq(ec_backend_dev_alloc(b, D * sizeof(uint16_t), &x_dev), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, K * D * sizeof(float), &out_dev), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, FF * sizeof(float), &scratch_dev), EC_OK);

    counts n = {0};
    const ec_seq *sq = &t->seqs[0];
    uint16_t x[D];
    float out[K][D], ref[D], tmp[D], scratch[FF];
    for (size_t r = 0; r < sq->n_rows && r < TOKENS; r++)
        for (int layer = 0; layer < L; layer++) {
            const int16_t *ex = ec_trace_experts(t, sq->row0 + r, layer);
            make_x((int)r, layer, x);
            cr_assert_eq(ec_loader_observe(l, layer, ex), EC_OK, "%s", ec_loader_errmsg(l));
            cr_assert_eq(ec_stream_copy_h2d(cs, x_dev, x, sizeof x), EC_OK);
            int runs[E] = {0}, on_dev[K] = {0};
            for (int j = 0; j < K; j++) {
                ec_expert_ref w;
                cr_assert_eq(ec_loader_acquire_where(l, layer, ex[j], cs, &w), EC_OK, "%s",
                             ec_loader_errmsg(l));
                cr_assert_eq(w.bytes, ec_ffn_bytes(D, FF));
                if (w.where == EC_WHERE_DEVICE) {
                    cr_assert_not_null(w.dev);
                    cr_assert_null(w.host);
                    float *o = (float *)out_dev + (size_t)j * D;
                    cr_assert_eq(ec_stream_ffn(cs, w.dev, x_dev, o, D, FF, scratch_dev), EC_OK);
                    on_dev[j] = 1;
                    n.device++;
                } else {
                    cr_assert_eq(w.where, EC_WHERE_HOST);
                    cr_assert_null(w.dev);
                    cr_assert_eq(w.host, ec_store_expert(store, layer, ex[j]));
                    ec_ffn_reference(w.host, x, out[j], D, FF, scratch);
                    n.host++;
                }
                runs[ex[j]]++;
                cr_assert_eq(ec_loader_release(l, layer, ex[j], cs), EC_OK, "%s",
                             ec_loader_errmsg(l));
            }
            for (int j = 0; j < K; j++)
                if (on_dev[j])
                    cr_assert_eq(ec_stream_copy_d2h(cs, out[j], (float *)out_dev + (size_t)j * D,
                                                    D * sizeof(float)),
                                 EC_OK);
            cr_assert_eq(ec_stream_sync(cs), EC_OK);
            /* none skipped, none run twice */
            for (int e = 0; e < E; e++) {
                int chosen = 0;
                for (int j = 0; j < K; j++)
                    chosen += ex[j] == e;
                cr_assert_eq(runs[e], chosen, "token %zu layer %d expert %d ran %d times", r,
                             layer, e, runs[e]);
            }
            /* the all-resident reference: every expert from the store */
            memset(ref, 0, sizeof ref);
            for (int j = 0; j < K; j++) {
                ec_ffn_reference(ec_store_expert(store, layer, ex[j]), x, tmp, D, FF, scratch);
                for (int i = 0; i < D; i++)
                    ref[i] += tmp[i];
            }
            for (int i = 0; i < D; i++) {
                float got = out[0][i] + out[1][i];
                cr_assert_leq(fabsf(got - ref[i]), 1e-5f * (1.0f + fabsf(ref[i])),
                              "token %zu layer %d element %d: %g vs reference %g", r, layer, i,
                              (double)got, (double)ref[i]);
            }
        }
    cr_assert_eq(ec_loader_sync(l), EC_OK);
    ec_loader_stats st;
    ec_loader_stats_get(l, &st);
    cr_assert_eq(st.host_acquires, n.host);
    cr_assert_eq(st.cache.host_runs, n.host);
    n.copies_seen = (int)st.copies;
    ec_loader_destroy(l);
    ec_backend_dev_free(b, x_dev);
    ec_backend_dev_free(b, out_dev);
    ec_backend_dev_free(b, scratch_dev);
    ec_stream_destroy(cs);
    ec_predictor_destroy(pred);
    ec_store_destroy(store);
    ec_backend_destroy(b);
    return n;
}

static ec_trace *trace(void)
{
    ec_synth_opts o;
    ec_synth_opts_default(&o);
    o.n_layers = L;
    o.n_experts = E;
    o.k = K;
    o.n_seqs = 4;
    o.n_tokens = TOKENS;
    o.token_locality = 0.5;
    o.seed = 3;
    ec_trace *t;
    cr_assert_eq(ec_synth_generate(&o, &t, NULL), EC_OK);
    return t;
}

Test(hybrid_decode, every_layer_matches_the_all_resident_reference)
{
    /* host 2.5 ms per expert against copy 3.7 + compute 0.3: of a layer's
     * two misses the first runs on the host, the second is copied */
    ec_trace *t = trace();
    counts n = decode(t, 2.5);
    cr_assert_gt(n.host, 0, "some experts ran on the host");
    cr_assert_gt(n.device, 0, "some experts ran on the device");
    cr_assert_gt(n.copies_seen, 0, "some experts were copied");
    cr_log_info("hybrid decode: %d expert runs on the device, %d on the host, %d copies",
                n.device, n.host, n.copies_seen);
    ec_trace_destroy(t);
}

Test(hybrid_decode, without_a_host_every_expert_runs_on_the_device)
{
    ec_trace *t = trace();
    counts n = decode(t, 0.0);
    cr_assert_eq(n.host, 0);
    cr_assert_eq(n.device, TOKENS * L * K);
    ec_trace_destroy(t);
}

Test(hybrid_decode, the_plain_acquire_refuses_a_host_expert)
{
    ec_backend *b;
    ec_store *store;
    cr_assert_eq(ec_backend_create("cpu", NULL, &b, NULL), EC_OK);
    cr_assert_eq(ec_store_create(b, L, E, ec_ffn_bytes(D, FF), &store, NULL), EC_OK);
    ec_trace *t = trace();
    ec_predictor *pred;
    cr_assert_eq(ec_predictor_create("prior", NULL, &pred, NULL), EC_OK);
    cr_assert_eq(ec_predictor_fit(pred, t, NULL), EC_OK);
    ec_loader_config cfg;
    ec_loader_config_default(&cfg);
    cfg.k = K;
    cfg.cache_per_layer = 3;
    cfg.policy.kind = EC_POLICY_HYBRID;
    cfg.policy.transfer_ms = 3.7;
    cfg.policy.compute_ms = 0.3;
    cfg.policy.host_ms = 1.0; /* every first-time miss runs on the host */
    ec_loader *l;
    cr_assert_eq(ec_loader_create(b, store, pred, &cfg, &l, NULL), EC_OK);
    ec_stream *cs;
    cr_assert_eq(ec_stream_create(b, &cs), EC_OK);
    int16_t ex[K] = {0, 1};
    cr_assert_eq(ec_loader_observe(l, 0, ex), EC_OK);
    void *w;
    cr_assert_eq(ec_loader_acquire(l, 0, 0, cs, &w), EC_ERR_STATE);
    cr_assert(strstr(ec_loader_errmsg(l), "host"), "%s", ec_loader_errmsg(l));
    cr_assert_null(w);
    /* a release without an acquire is refused, host expert or not */
    cr_assert_eq(ec_loader_release(l, 0, 0, cs), EC_ERR_STATE);
    ec_expert_ref r;
    cr_assert_eq(ec_loader_acquire_where(l, 0, 0, cs, &r), EC_OK);
    cr_assert_eq(r.where, EC_WHERE_HOST);
    cr_assert_eq(ec_loader_release(l, 0, 0, cs), EC_OK);
    cr_assert_eq(ec_loader_release(l, 0, 0, cs), EC_ERR_STATE, "released twice");
    ec_loader_destroy(l);
    ec_stream_destroy(cs);
    ec_predictor_destroy(pred);
    ec_trace_destroy(t);
    ec_store_destroy(store);
    ec_backend_destroy(b);
}

Test(hybrid_decode, the_replay_driver_runs_host_experts_on_the_host)
{
    ec_backend *b;
    ec_store *store;
    cr_assert_eq(ec_backend_create("cpu", NULL, &b, NULL), EC_OK);
    cr_assert_eq(ec_store_create(b, L, E, ec_ffn_bytes(D, FF), &store, NULL), EC_OK);
    cr_assert_eq(ec_store_fill_synthetic(store, 9, 1), EC_OK);
    ec_trace *t = trace();
    ec_predictor *pred;
    cr_assert_eq(ec_predictor_create("temporal", NULL, &pred, NULL), EC_OK);
    cr_assert_eq(ec_predictor_fit(pred, t, NULL), EC_OK);
    ec_replay_opts o = {0};
    ec_loader_config_default(&o.loader);
    o.loader.cache_per_layer = 3;
    o.loader.policy.kind = EC_POLICY_HYBRID;
    o.loader.policy.transfer_ms = 3.7;
    o.loader.policy.compute_ms = 0.3;
    o.loader.policy.host_ms = 2.5;
    o.loader.policy.host_act_ms = 0.02;
    o.d_model = D;
    o.d_ff = FF;
    o.verify = 1;
    o.max_tokens = 16;
    o.warmup_tokens = 2;
    ec_replay_result res;
    ec_error err = {0};
    cr_assert_eq(ec_replay_run(b, store, t, pred, &o, &res, &err), EC_OK, "%s", err.message);
    cr_assert_gt(res.host_runs, 0);
    cr_assert_eq(res.host_runs, res.measured.host_acquires);
    cr_assert_eq(res.measured.cache.host_runs, res.host_runs);
    /* every device acquisition was checksummed and held its expert */
    cr_assert_gt(res.verified, 0);
    cr_assert_eq(res.verify_failures, 0);
    cr_assert_eq(res.verified + res.total.host_acquires, (int64_t)res.tokens * L * K);
    ec_predictor_destroy(pred);
    ec_trace_destroy(t);
    ec_store_destroy(store);
    ec_backend_destroy(b);
}
