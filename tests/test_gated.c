/* gated against lru on real traces and a token-local synthetic one: never
 * slower, and faster where the predictor is informative. The real traces
 * come from ../shared (skipped without it). */
#include "testutil.h"

#include "expertcast/sim.h"

#include <string.h>

/* ---- Mixtral: gated does no harm ----------------------------------------- */

/* Replays the trace through lru and gated at every shipped profile (the
 * model's dtypes x the four machines), each cache size and horizon given,
 * with the predictor `fit` fitted for each sequence on the others only,
 * and expects gated's TPOT <= lru's in every run. Returns the runs. */
static int gated_no_slower_than_lru(const char *trace, const char *model, const char *const *dtypes,
                                    size_t n_dtypes, const char *fit, const int32_t *caches,
                                    size_t n_caches)
{
    ec_trace *t;
    cr_assert_eq(ec_trace_load(&trace, 1, NULL, &t, NULL), EC_OK);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    cr_assert_eq(ec_sim_fit_heldout(s, fit, NULL, NULL), EC_OK);
    const char *hws[] = {"rtx4090-pcie4", "a100-pcie4", "h100-pcie5", "gh200-c2c"};
    int checked = 0;
    for (size_t d = 0; d < n_dtypes; d++)
        for (size_t h = 0; h < 4; h++) {
            ec_model_profile mp;
            ec_hw_profile hp;
            cr_assert_eq(ec_model_profile_load(tu_profile_path(model), dtypes[d], &mp, NULL), EC_OK);
            cr_assert_eq(ec_hw_profile_load(tu_profile_path(hws[h]), &hp, NULL), EC_OK);
            ec_sim_timing tm;
            ec_sim_timing_derive(&mp, &hp, &tm);
            for (size_t ci = 0; ci < n_caches; ci++) {
                int32_t c = caches[ci];
                ec_sim_result lru = tu_sim_run(s, EC_POLICY_LRU, c, 0, 1, &tm);
                for (int32_t hz = 1; hz <= 4; hz *= 2) {
                    ec_sim_result g = tu_sim_run(s, EC_POLICY_GATED, c, 0, hz, &tm);
                    cr_expect_leq(g.tpot_ms, lru.tpot_ms,
                                  "%s %s %s, %s predictor, cache %d horizon %d: gated %.6f > "
                                  "lru %.6f",
                                  model, mp.dtype, hws[h], fit, c, hz, g.tpot_ms, lru.tpot_ms);
                    checked++;
                    ec_sim_result_clear(&g);
                }
                ec_sim_result_clear(&lru);
            }
        }
    ec_sim_destroy(s);
    ec_trace_destroy(t);
    return checked;
}

#ifdef EC_TEST_SANITIZED
/* Under the sanitizers these sweeps check memory, not the property: one
 * dtype and cache size each (the normal build runs every one). */
static const char *const MIXTRAL_DTYPES[] = {"int4"};
static const int32_t MIXTRAL_CACHES[] = {4};
static const int32_t QWEN3_CACHES[] = {16};
#else
static const char *const MIXTRAL_DTYPES[] = {"fp16", "int8", "int4"};
static const int32_t MIXTRAL_CACHES[] = {2, 3, 4, 5, 6, 7, 8};
static const int32_t QWEN3_CACHES[] = {16, 32, 64};
#endif
#define N_OF(a) (sizeof(a) / sizeof(a)[0])

Test(mixtral_real, gated_is_never_slower_than_lru_on_any_shipped_profile_and_cache_size)
{
    const char *path = TU_SHARED_OR_SKIP("mixtral-8x7b-instruct/humaneval_2_routing.jsonl");
    /* each problem replayed with a prior fitted on the other problem only */
    int n = gated_no_slower_than_lru(path, "mixtral-8x7b", MIXTRAL_DTYPES, N_OF(MIXTRAL_DTYPES),
                                     "prior", MIXTRAL_CACHES, N_OF(MIXTRAL_CACHES));
    cr_assert_eq(n, (int)(N_OF(MIXTRAL_DTYPES) * 4 * N_OF(MIXTRAL_CACHES) * 3));
}

Test(mixtral_real, gated_with_the_default_predictor_is_never_slower_than_lru)
{
    const char *path = TU_SHARED_OR_SKIP("mixtral-8x7b-instruct/humaneval_2_routing.jsonl");
    /* temporal, the default of `expertcast simulate`, fitted held out */
    int n = gated_no_slower_than_lru(path, "mixtral-8x7b", MIXTRAL_DTYPES, N_OF(MIXTRAL_DTYPES),
                                     "temporal", MIXTRAL_CACHES, N_OF(MIXTRAL_CACHES));
    cr_assert_eq(n, (int)(N_OF(MIXTRAL_DTYPES) * 4 * N_OF(MIXTRAL_CACHES) * 3));
}

Test(qwen3_real, gated_with_the_default_predictor_is_never_slower_than_lru)
{
    const char *path = TU_SHARED_OR_SKIP("qwen3-30b-a3b/decode_4prompts_routing.jsonl");
    /* 128 experts, top-8, 48 layers: per-layer caches of 16, 32 and 64 */
    const char *const dtypes[] = {"bf16"};
    int n = gated_no_slower_than_lru(path, "qwen3-30b-a3b", dtypes, 1, "temporal", QWEN3_CACHES,
                                     N_OF(QWEN3_CACHES));
    cr_assert_eq(n, (int)(4 * N_OF(QWEN3_CACHES) * 3));
}

/* TPOT of lru and gated (horizon 2) on one machine and cache size. */
static void lru_and_gated(ec_sim *s, const ec_sim_timing *tm, int32_t cache, double *lru,
                          double *gated, double *oracle)
{
    ec_sim_result r = tu_sim_run(s, EC_POLICY_LRU, cache, 0, 1, tm);
    *lru = r.tpot_ms;
    ec_sim_result_clear(&r);
    r = tu_sim_run(s, EC_POLICY_GATED, cache, 0, 2, tm);
    *gated = r.tpot_ms;
    ec_sim_result_clear(&r);
    r = tu_sim_run(s, EC_POLICY_ORACLE, cache, 0, 2, tm);
    *oracle = r.tpot_ms;
    ec_sim_result_clear(&r);
}

Test(sim, gated_beats_lru_where_tokens_reuse_their_predecessors_experts)
{
    /* strong token locality: a token mostly reuses the previous token's
     * experts at each layer, which the temporal predictor (fitted on the
     * other sequences) sees; a cache of 5 of 16 experts per layer on a
     * bandwidth-bound link, where only eviction can help */
    ec_synth_opts o;
    ec_synth_opts_default(&o);
    o.n_layers = 8;
    o.n_experts = 16;
    o.k = 2;
    o.n_seqs = 4;
    o.n_tokens = 96;
    o.token_locality = 0.8;
    o.seed = 21;
    ec_trace *t;
    cr_assert_eq(ec_synth_generate(&o, &t, NULL), EC_OK);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    cr_assert_eq(ec_sim_fit_heldout(s, "temporal", NULL, NULL), EC_OK);
    ec_sim_timing tm = {.transfer_ms = 3.7, .engines = 1, .compute_fixed_ms = 0.1,
                        .compute_per_expert_ms = 0.09, .router_ms = 0.015,
                        .predictor_ms = 0.005, .expert_bytes = 88e6};
    double lru, gated, oracle;
    lru_and_gated(s, &tm, 5, &lru, &gated, &oracle);
    cr_assert_lt(gated, lru, "gated %.4f, lru %.4f ms", gated, lru);
    cr_assert_leq(oracle, gated);
    cr_log_info("synthetic, token locality 0.8: lru %.3f gated %.3f oracle %.3f ms, gap closed %.3f",
                lru, gated, oracle, (lru - gated) / (lru - oracle));
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

Test(mixtral_real, gated_with_the_default_predictor_beats_lru_on_int4_rtx4090)
{
    const char *path = TU_SHARED_OR_SKIP("mixtral-8x7b-instruct/humaneval_2_routing.jsonl");
    ec_trace *t;
    cr_assert_eq(ec_trace_load(&path, 1, NULL, &t, NULL), EC_OK);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    cr_assert_eq(ec_sim_fit_heldout(s, "temporal", NULL, NULL), EC_OK);
    ec_model_profile mp;
    ec_hw_profile hp;
    cr_assert_eq(ec_model_profile_load(tu_profile_path("mixtral-8x7b"), "int4", &mp, NULL), EC_OK);
    cr_assert_eq(ec_hw_profile_load(tu_profile_path("rtx4090-pcie4"), &hp, NULL), EC_OK);
    ec_sim_timing tm;
    ec_sim_timing_derive(&mp, &hp, &tm);
    double lru, gated, oracle;
    lru_and_gated(s, &tm, 4, &lru, &gated, &oracle);
    cr_assert_lt(gated, lru, "gated %.4f, lru %.4f ms", gated, lru);
    cr_log_info("mixtral int4 rtx4090, 4 per layer: lru %.3f gated %.3f oracle %.3f ms, gap "
                "closed %.3f", lru, gated, oracle, (lru - gated) / (lru - oracle));
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

