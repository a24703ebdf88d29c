/* hybrid: where a miss runs (host or copy), that it reduces to gated when
 * the host cannot help, that it is never slower than gated on the shipped
 * profiles, and where it passes the copy-only oracle. The real traces come
 * from ../shared (skipped without it). */
#include "testutil.h"

#include "expertcast/sim.h"

#include <stdlib.h>
#include <string.h>

/* ---- the policy on its own ---------------------------------------------- */

typedef struct rig {
    ec_cache *c;
    ec_queue *q;
    ec_policy *p;
    ec_history *h;
    ec_predictor *pred;
} rig;

/* 2 layers x 4 experts, top-1, 2 slots per layer; a prior fitted on a
 * short trace; copy 3.7 ms, device step 0.3 ms, host as given. */
static rig rig_make(double host_ms, double act_ms)
{
    rig r = {0};
    const char *dir = tu_tmpdir();
    const char *path = tu_write(dir, "t.jsonl",
                                "{\"problem_id\": 0, \"token_idx\": 0, \"layer\": 0, \"experts\": [0]}\n"
                                "{\"problem_id\": 0, \"token_idx\": 0, \"layer\": 1, \"experts\": [1]}\n"
                                "{\"problem_id\": 0, \"token_idx\": 1, \"layer\": 0, \"experts\": [2]}\n"
                                "{\"problem_id\": 0, \"token_idx\": 1, \"layer\": 1, \"experts\": [3]}\n");
    ec_trace *t = NULL;
    ec_error err = {0};
    ec_trace_opts o = {.n_experts = 4};
    cr_assert_eq(ec_trace_load(&path, 1, &o, &t, &err), EC_OK, "%s", err.message);
    cr_assert_eq(ec_predictor_create("prior", NULL, &r.pred, NULL), EC_OK);
    cr_assert_eq(ec_predictor_fit(r.pred, t, NULL), EC_OK);
    ec_trace_destroy(t);
    cr_assert_eq(ec_cache_create(2, 4, 2, 0, &r.c), EC_OK);
    cr_assert_eq(ec_queue_create(ec_cache_n_slots(r.c), &r.q), EC_OK);
    ec_policy_config cfg = {.kind = EC_POLICY_HYBRID, .horizon = 1, .transfer_ms = 3.7,
                            .compute_ms = 0.3, .host_ms = host_ms, .host_act_ms = act_ms};
    cr_assert_eq(ec_policy_create(&cfg, r.c, r.q, r.pred, NULL, &r.p, &err), EC_OK, "%s",
                 err.message);
    cr_assert_eq(ec_history_create(2, 4, 1, 4, &r.h), EC_OK);
    return r;
}

static void rig_free(rig *r)
{
    ec_policy_destroy(r->p);
    ec_queue_destroy(r->q);
    ec_cache_destroy(r->c);
    ec_history_destroy(r->h);
    ec_predictor_destroy(r->pred);
}

/* Queued demand transfers for (layer, expert). */
static int demands_for(const rig *r, int32_t layer, int32_t expert)
{
    int n = 0;
    for (int32_t i = 0; i < ec_queue_len(r->q); i++) {
        const ec_transfer *t = ec_queue_at(r->q, i);
        n += t->demand && t->layer == layer && t->expert == expert;
    }
    return n;
}

Test(hybrid_policy, a_miss_runs_on_the_host_when_that_ends_the_step_sooner)
{
    rig r = rig_make(1.5, 0.02); /* host 1.52 ms < copy 3.7 + 0.3 */
    int16_t e = 2;
    ec_history_observe(r.h, 0, &e);
    cr_assert_eq(ec_policy_observe(r.p, 0, 0, &e, 1, r.h), EC_OK);
    cr_assert_eq(ec_policy_on_host(r.p, 0, 2), 1);
    cr_assert_eq(demands_for(&r, 0, 2), 0, "a host run needs no copy");
    cr_assert_eq(ec_cache_stats_get(r.c)->host_runs, 1);
    cr_assert_eq(ec_cache_stats_get(r.c)->misses, 1);
    /* what did not run on the host is not reported as such */
    cr_assert_eq(ec_policy_on_host(r.p, 0, 1), 0);
    cr_assert_eq(ec_policy_on_host(r.p, 1, 2), 0);
    rig_free(&r);
}

Test(hybrid_policy, a_miss_is_copied_when_the_host_is_slower)
{
    rig r = rig_make(5.0, 0.02); /* host 5.02 ms > copy 3.7 + 0.3 */
    int16_t e = 2;
    ec_history_observe(r.h, 0, &e);
    cr_assert_eq(ec_policy_observe(r.p, 0, 0, &e, 1, r.h), EC_OK);
    cr_assert_eq(ec_policy_on_host(r.p, 0, 2), 0);
    cr_assert_eq(demands_for(&r, 0, 2), 1);
    cr_assert_eq(ec_cache_stats_get(r.c)->host_runs, 0);
    rig_free(&r);
}

Test(hybrid_policy, a_busy_link_sends_the_miss_to_a_slower_host)
{
    rig r = rig_make(5.0, 0.02);
    ec_policy_set_lanes(r.p, 10.0, 0.0); /* the link is busy for 10 ms */
    int16_t e = 2;
    ec_history_observe(r.h, 0, &e);
    cr_assert_eq(ec_policy_observe(r.p, 0, 0, &e, 1, r.h), EC_OK);
    cr_assert_eq(ec_policy_on_host(r.p, 0, 2), 1);
    cr_assert_eq(demands_for(&r, 0, 2), 0);
    rig_free(&r);
}

Test(hybrid_policy, the_lanes_are_balanced_within_a_step)
{
    /* top-2 of 4 with both absent: host 2.5 ms each, copy 3.7: the first
     * goes to the host (2.5 < 4.0), the second is copied (host 5.0 >
     * copy 4.0) */
    rig r = rig_make(2.5, 0.0);
    ec_history *h2;
    cr_assert_eq(ec_history_create(2, 4, 2, 4, &h2), EC_OK);
    int16_t ex[2] = {1, 3};
    ec_history_observe(h2, 0, ex);
    cr_assert_eq(ec_policy_observe(r.p, 0, 0, ex, 2, h2), EC_OK);
    cr_assert_eq(ec_policy_on_host(r.p, 0, 1), 1);
    cr_assert_eq(ec_policy_on_host(r.p, 0, 3), 0);
    cr_assert_eq(demands_for(&r, 0, 3), 1);
    ec_history_destroy(h2);
    rig_free(&r);
}

Test(hybrid_policy, without_a_host_no_miss_runs_there)
{
    rig r = rig_make(0.0, 0.0);
    ec_policy_set_lanes(r.p, 100.0, 0.0);
    int16_t e = 2;
    ec_history_observe(r.h, 0, &e);
    cr_assert_eq(ec_policy_observe(r.p, 0, 0, &e, 1, r.h), EC_OK);
    cr_assert_eq(ec_policy_on_host(r.p, 0, 2), 0);
    cr_assert_eq(demands_for(&r, 0, 2), 1);
    rig_free(&r);
}

Test(hybrid_policy, bad_host_costs_are_refused)
{
    ec_cache *c;
    ec_queue *q;
    ec_policy *p = NULL;
    cr_assert_eq(ec_cache_create(1, 2, 1, 0, &c), EC_OK);
    cr_assert_eq(ec_queue_create(1, &q), EC_OK);
    ec_policy_config cfg = {.kind = EC_POLICY_LRU, .host_ms = -1};
    ec_error err = {0};
    cr_assert_eq(ec_policy_create(&cfg, c, q, NULL, NULL, &p, &err), EC_ERR_INVALID);
    cr_assert(strstr(err.message, "host_ms"), "%s", err.message);
    cfg.host_ms = 0;
    cfg.copy_engines = -2;
    cr_assert_eq(ec_policy_create(&cfg, c, q, NULL, NULL, &p, &err), EC_ERR_INVALID);
    cr_assert(strstr(err.message, "copy_engines"), "%s", err.message);
    cr_assert_null(p);
    ec_queue_destroy(q);
    ec_cache_destroy(c);
}

Test(hybrid_policy, the_name_parses)
{
    ec_policy_kind k;
    cr_assert_eq(ec_policy_kind_parse("hybrid", &k), EC_OK);
    cr_assert_eq(k, EC_POLICY_HYBRID);
    cr_assert_str_eq(ec_policy_kind_name(EC_POLICY_HYBRID), "hybrid");
}

/* ---- profiles -------------------------------------------------------------- */

static const char *HW_BASE =
    "{\"format\": \"expertcast-hardware-profile\", \"name\": \"x\",\n"
    " \"h2d_gbs\": {\"value\": 20, \"source\": \"s\"},\n"
    " \"latency_us\": {\"value\": 10, \"source\": \"s\"},\n"
    " \"copy_engines\": {\"value\": 1, \"source\": \"s\"},\n"
    " \"hbm_gbs\": {\"value\": 1000, \"source\": \"s\"},\n"
    " \"device_memory_gb\": {\"value\": 24, \"source\": \"s\"},\n"
    " \"reserved_gb\": {\"value\": 2, \"source\": \"s\"},\n"
    " \"layer_overhead_us\": {\"value\": 20, \"source\": \"s\"},\n"
    " \"router_us\": {\"value\": 15, \"source\": \"s\"},\n"
    " \"predictor_us\": {\"value\": 5, \"source\": \"s\"}%s}\n";

static const char *hw_file(const char *name, const char *extra)
{
    char text[4096];
    snprintf(text, sizeof text, HW_BASE, extra);
    return tu_write(tu_tmpdir(), name, text);
}

Test(hybrid_profile, a_profile_without_host_facts_loads_with_no_host)
{
    ec_hw_profile h;
    ec_error err = {0};
    cr_assert_eq(ec_hw_profile_load(hw_file("old.json", ""), &h, &err), EC_OK, "%s",
                 err.message);
    cr_assert_eq(h.has_host, 0);
    ec_model_profile m;
    cr_assert_eq(ec_model_profile_load(tu_profile_path("mixtral-8x7b"), "int4", &m, NULL), EC_OK);
    ec_sim_timing tm;
    ec_sim_timing_derive(&m, &h, &tm);
    cr_assert_eq(tm.host_lanes, 0);
    cr_assert_eq(ec_sim_host_ms(&tm, 1), 0.0);
}

Test(hybrid_profile, host_facts_load_and_give_the_host_time)
{
    ec_hw_profile h;
    ec_error err = {0};
    const char *p = hw_file("new.json", ",\n \"host_cores\": {\"value\": 16, \"source\": \"s\"},\n"
                                        " \"host_read_gbs\": {\"value\": 50, \"source\": \"s\"},\n"
                                        " \"host_act_d2h_us\": {\"value\": 10, \"source\": \"s\"},\n"
                                        " \"host_act_h2d_us\": {\"value\": 5, \"source\": \"s\"}");
    cr_assert_eq(ec_hw_profile_load(p, &h, &err), EC_OK, "%s", err.message);
    cr_assert_eq(h.has_host, 1);
    cr_assert_eq(h.host_cores, 16);
    ec_model_profile m;
    cr_assert_eq(ec_model_profile_load(tu_profile_path("mixtral-8x7b"), "int4", &m, NULL), EC_OK);
    ec_sim_timing tm;
    ec_sim_timing_derive(&m, &h, &tm);
    cr_assert_eq(tm.host_lanes, 1);
    /* 88080384 bytes at 50 GB/s: 1.7616 ms per pass of up to 8 tokens */
    cr_assert_float_eq(ec_sim_host_ms(&tm, 1), 88080384 / 50e9 * 1e3, 1e-12);
    cr_assert_float_eq(ec_sim_host_ms(&tm, 8), ec_sim_host_ms(&tm, 1), 1e-12);
    cr_assert_float_eq(ec_sim_host_ms(&tm, 9), 2 * ec_sim_host_ms(&tm, 1), 1e-12);
    cr_assert_float_eq(tm.host_d2h_ms, 0.010, 1e-12);
    cr_assert_float_eq(tm.host_h2d_ms, 0.005, 1e-12);
}

Test(hybrid_profile, some_host_facts_without_the_others_are_refused)
{
    ec_hw_profile h;
    ec_error err = {0};
    const char *p = hw_file("part.json", ",\n \"host_cores\": {\"value\": 16, \"source\": \"s\"}");
    cr_assert_eq(ec_hw_profile_load(p, &h, &err), EC_ERR_PARSE);
    cr_assert(strstr(err.message, "part.json") && strstr(err.message, "'host_read_gbs'"), "%s",
              err.message);
    p = hw_file("nosrc.json", ",\n \"host_cores\": {\"value\": 16, \"source\": \"s\"},\n"
                              " \"host_read_gbs\": {\"value\": 50},\n"
                              " \"host_act_d2h_us\": {\"value\": 10, \"source\": \"s\"},\n"
                              " \"host_act_h2d_us\": {\"value\": 5, \"source\": \"s\"}");
    cr_assert_eq(ec_hw_profile_load(p, &h, &err), EC_ERR_PARSE);
    cr_assert(strstr(err.message, "host_read_gbs.source"), "%s", err.message);
}

Test(hybrid_profile, every_shipped_hardware_profile_has_host_facts)
{
    const char *hws[] = {"rtx4090-pcie4", "a100-pcie4", "h100-pcie5", "gh200-c2c"};
    for (size_t i = 0; i < 4; i++) {
        ec_hw_profile h;
        cr_assert_eq(ec_hw_profile_load(tu_profile_path(hws[i]), &h, NULL), EC_OK);
        cr_expect_eq(h.has_host, 1, "%s", hws[i]);
        cr_expect_gt(h.host_read_gbs, 0, "%s", hws[i]);
    }
}

/* ---- the simulator ----------------------------------------------------------- */

static ec_sim *synthetic_sim(ec_trace **t)
{
    ec_synth_opts o;
    ec_synth_opts_default(&o);
    o.n_layers = 8;
    o.n_experts = 16;
    o.k = 2;
    o.n_seqs = 4;
    o.n_tokens = 64;
    o.token_locality = 0.6;
    o.seed = 5;
    cr_assert_eq(ec_synth_generate(&o, t, NULL), EC_OK);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(*t, 1, &s, NULL), EC_OK);
    cr_assert_eq(ec_sim_fit_heldout(s, "temporal", NULL, NULL), EC_OK);
    return s;
}

static const ec_sim_timing SYN_TM = {.transfer_ms = 3.7, .engines = 1, .compute_fixed_ms = 0.1,
                                     .compute_per_expert_ms = 0.09, .router_ms = 0.015,
                                     .predictor_ms = 0.005, .expert_bytes = 88e6};

static void expect_same_run(const ec_sim_result *a, const ec_sim_result *b, const char *what)
{
    cr_expect_eq(a->tpot_ms, b->tpot_ms, "%s: %.9f vs %.9f", what, a->tpot_ms, b->tpot_ms);
    cr_expect_eq(a->stall_ms_per_token, b->stall_ms_per_token, "%s", what);
    cr_expect_eq(memcmp(&a->stats, &b->stats, sizeof a->stats), 0, "%s: counters differ", what);
    cr_expect_eq(b->host_runs_per_token, 0.0, "%s", what);
}

Test(hybrid_sim, without_host_lanes_it_is_gated_exactly)
{
    ec_trace *t;
    ec_sim *s = synthetic_sim(&t);
    for (int32_t c = 2; c <= 8; c += 3) {
        ec_sim_result g = tu_sim_run(s, EC_POLICY_GATED, c, 0, 2, &SYN_TM);
        ec_sim_result h = tu_sim_run(s, EC_POLICY_HYBRID, c, 0, 2, &SYN_TM);
        expect_same_run(&g, &h, "no host lanes");
        ec_sim_result_clear(&g);
        ec_sim_result_clear(&h);
    }
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

Test(hybrid_sim, with_a_host_too_slow_to_finish_first_it_is_gated_exactly)
{
    ec_trace *t;
    ec_sim *s = synthetic_sim(&t);
    ec_sim_timing tm = SYN_TM;
    tm.host_lanes = 1;
    tm.host_stream_ms = 1e6; /* never finishes before a copy */
    tm.host_d2h_ms = tm.host_h2d_ms = 0.01;
    ec_sim_result g = tu_sim_run(s, EC_POLICY_GATED, 4, 0, 2, &tm);
    ec_sim_result h = tu_sim_run(s, EC_POLICY_HYBRID, 4, 0, 2, &tm);
    expect_same_run(&g, &h, "slow host");
    ec_sim_result_clear(&g);
    ec_sim_result_clear(&h);
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

Test(hybrid_sim, a_fast_host_takes_misses_and_shortens_the_decode)
{
    ec_trace *t;
    ec_sim *s = synthetic_sim(&t);
    ec_sim_timing tm = SYN_TM;
    tm.host_lanes = 1;
    tm.host_stream_ms = 1.3; /* 88 MB at ~68 GB/s */
    tm.host_d2h_ms = tm.host_h2d_ms = 0.01;
    ec_sim_result g = tu_sim_run(s, EC_POLICY_GATED, 4, 0, 2, &tm);
    ec_sim_result h = tu_sim_run(s, EC_POLICY_HYBRID, 4, 0, 2, &tm);
    cr_assert_gt(h.host_runs_per_token, 0);
    cr_assert_lt(h.tpot_ms, g.tpot_ms, "hybrid %.4f, gated %.4f", h.tpot_ms, g.tpot_ms);
    cr_assert_lt(h.transfers_per_token, g.transfers_per_token);
    /* every use is a hit or a miss, and host runs are misses */
    cr_assert_eq(h.stats.hits + h.stats.inflight_hits + h.stats.misses, h.stats.acquires);
    cr_assert_leq(h.stats.host_runs, h.stats.misses);
    ec_sim_result_clear(&g);
    ec_sim_result_clear(&h);
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

/* ---- real traces: never slower than gated; below the copy-only oracle ---- */

static const char *const HWS[] = {"rtx4090-pcie4", "a100-pcie4", "h100-pcie5", "gh200-c2c"};

/* Every hardware profile x dtype x cache x horizon: hybrid's TPOT <=
 * gated's (temporal predictor fitted held out). Returns the runs. */
static int hybrid_no_slower_than_gated(const char *trace, const char *model,
                                       const char *const *dtypes, size_t n_dtypes,
                                       const int32_t *caches, size_t n_caches,
                                       const int32_t *horizons, size_t n_horizons)
{
    ec_trace *t;
    cr_assert_eq(ec_trace_load(&trace, 1, NULL, &t, NULL), EC_OK);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    cr_assert_eq(ec_sim_fit_heldout(s, "temporal", NULL, NULL), EC_OK);
    int checked = 0;
    for (size_t d = 0; d < n_dtypes; d++)
        for (size_t hw = 0; hw < 4; hw++) {
            ec_model_profile mp;
            ec_hw_profile hp;
            cr_assert_eq(ec_model_profile_load(tu_profile_path(model), dtypes[d], &mp, NULL), EC_OK);
            cr_assert_eq(ec_hw_profile_load(tu_profile_path(HWS[hw]), &hp, NULL), EC_OK);
            ec_sim_timing tm;
            ec_sim_timing_derive(&mp, &hp, &tm);
            cr_assert_gt(tm.host_lanes, 0, "%s has host facts", HWS[hw]);
            for (size_t ci = 0; ci < n_caches; ci++)
                for (size_t hi = 0; hi < n_horizons; hi++) {
                    ec_sim_result g =
                        tu_sim_run(s, EC_POLICY_GATED, caches[ci], 0, horizons[hi], &tm);
                    ec_sim_result h =
                        tu_sim_run(s, EC_POLICY_HYBRID, caches[ci], 0, horizons[hi], &tm);
                    cr_expect_leq(h.tpot_ms, g.tpot_ms,
                                  "%s %s %s, cache %d horizon %d: hybrid %.6f > gated %.6f",
                                  model, mp.dtype, HWS[hw], caches[ci], horizons[hi], h.tpot_ms,
                                  g.tpot_ms);
                    checked++;
                    ec_sim_result_clear(&g);
                    ec_sim_result_clear(&h);
                }
        }
    ec_sim_destroy(s);
    ec_trace_destroy(t);
    return checked;
}

#define N_OF(a) (sizeof(a) / sizeof(a)[0])

Test(mixtral_real, hybrid_is_never_slower_than_gated_on_any_shipped_profile_and_cache_size,
     .timeout = 900)
{
    const char *path = TU_SHARED_OR_SKIP("mixtral-8x7b-instruct/humaneval_2_routing.jsonl");
#ifdef EC_TEST_SANITIZED
    /* under the sanitizers the sweep checks memory: one cell per profile */
    const char *dtypes[] = {"int4"};
    const int32_t caches[] = {4}, horizons[] = {2};
#else
    const char *dtypes[] = {"fp16", "int8", "int4"};
    const int32_t caches[] = {2, 3, 4, 5, 6, 7, 8}, horizons[] = {1, 2, 4};
#endif
    int n = hybrid_no_slower_than_gated(path, "mixtral-8x7b", dtypes, N_OF(dtypes), caches,
                                        N_OF(caches), horizons, N_OF(horizons));
    cr_log_info("hybrid <= gated checked in %d Mixtral runs", n);
}

Test(qwen3_real, hybrid_is_never_slower_than_gated_on_any_shipped_profile, .timeout = 1200)
{
    const char *path = TU_SHARED_OR_SKIP("qwen3-30b-a3b/decode_4prompts_routing.jsonl");
    const char *dtypes[] = {"q4_k_m"};
#ifdef EC_TEST_SANITIZED
    const int32_t caches[] = {16}, horizons[] = {2};
#else
    const int32_t caches[] = {8, 16, 32, 64}, horizons[] = {2};
#endif
    int n = hybrid_no_slower_than_gated(path, "qwen3-30b-a3b", dtypes, 1, caches, N_OF(caches),
                                        horizons, 1);
    cr_log_info("hybrid <= gated checked in %d Qwen3 runs", n);
}

/* TPOT of hybrid (horizon 2) and of the copy-only oracle on rtx4090-pcie4. */
static void hybrid_vs_oracle(const char *rel, const char *model, const char *dtype,
                             int32_t cache, double *hybrid, double *oracle)
{
    const char *path = tu_shared(rel);
    ec_trace *t;
    cr_assert_eq(ec_trace_load(&path, 1, NULL, &t, NULL), EC_OK);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    cr_assert_eq(ec_sim_fit_heldout(s, "temporal", NULL, NULL), EC_OK);
    ec_model_profile mp;
    ec_hw_profile hp;
    cr_assert_eq(ec_model_profile_load(tu_profile_path(model), dtype, &mp, NULL), EC_OK);
    cr_assert_eq(ec_hw_profile_load(tu_profile_path("rtx4090-pcie4"), &hp, NULL), EC_OK);
    ec_sim_timing tm;
    ec_sim_timing_derive(&mp, &hp, &tm);
    ec_sim_result r = tu_sim_run(s, EC_POLICY_HYBRID, cache, 0, 2, &tm);
    *hybrid = r.tpot_ms;
    ec_sim_result_clear(&r);
    r = tu_sim_run(s, EC_POLICY_ORACLE, cache, 0, 2, &tm);
    *oracle = r.tpot_ms;
    ec_sim_result_clear(&r);
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

Test(mixtral_real, hybrid_beats_the_copy_only_oracle_on_int4_rtx4090)
{
    const char *rel = "mixtral-8x7b-instruct/humaneval_2_routing.jsonl";
    TU_SHARED_OR_SKIP(rel);
    for (int32_t c = 4; c <= 6; c += 2) {
        double h, o;
        hybrid_vs_oracle(rel, "mixtral-8x7b", "int4", c, &h, &o);
        cr_expect_lt(h, o, "%d per layer: hybrid %.4f, oracle %.4f ms", c, h, o);
        cr_log_info("mixtral int4 rtx4090, %d per layer: hybrid %.3f oracle %.3f ms", c, h, o);
    }
}

Test(qwen3_real, hybrid_beats_the_copy_only_oracle_on_q4_rtx4090, .timeout = 900)
{
    const char *rel = "qwen3-30b-a3b/decode_4prompts_routing.jsonl";
    TU_SHARED_OR_SKIP(rel);
    for (int32_t c = 16; c <= 32; c *= 2) {
        double h, o;
        hybrid_vs_oracle(rel, "qwen3-30b-a3b", "q4_k_m", c, &h, &o);
        cr_expect_lt(h, o, "%d per layer: hybrid %.4f, oracle %.4f ms", c, h, o);
        cr_log_info("qwen3 q4_k_m rtx4090, %d per layer: hybrid %.3f oracle %.3f ms", c, h, o);
    }
}

/* ---- the command line ------------------------------------------------------ */

Test(hybrid_cli, policy_all_json_has_a_hybrid_row_with_host_figures)
{
    char *out = NULL, *err = NULL;
    int rc = tu_cli(&out, &err,
                    "simulate %s/data/sample_trace.jsonl --model mixtral-8x7b-int4 --hardware "
                    "rtx4090-pcie4 --cache-experts 4 --policy all --json -",
                    EC_SOURCE_DIR);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert(strstr(out, "\"policy\": \"hybrid\""), "%s", out);
    cr_assert(strstr(out, "\"host\": {\"cores\": 16"), "%s", out);
    cr_assert(strstr(out, "\"host_runs_per_token\""), "%s", out);
    free(out);
    free(err);
}

Test(hybrid_cli, a_profile_without_host_facts_is_announced)
{
    const char *hw = hw_file("nohost.json", "");
    char *out = NULL, *err = NULL;
    int rc = tu_cli(&out, &err,
                    "simulate %s/data/sample_trace.jsonl --model mixtral-8x7b-int4 --hardware %s "
                    "--cache-experts 4 --policy hybrid",
                    EC_SOURCE_DIR, hw);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert(strstr(err, "no host facts") && strstr(err, "hybrid decides as gated"), "%s", err);
    cr_assert(strstr(out, "host execution unavailable"), "%s", out);
    free(out);
    free(err);
}
