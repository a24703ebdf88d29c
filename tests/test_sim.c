/* The simulator: hand-computed timings, invariants on synthetic traces, profiles. */
#include "testutil.h"

#include "expertcast/sim.h"
#include "predict/predictor.h"
#include "policy/internal.h"
#include "sim/internal.h"

#include <math.h>
#include <string.h>

static ec_trace *trace_text(const char *text, int32_t n_experts)
{
    const char *p = tu_write(tu_tmpdir(), "t.jsonl", text);
    ec_trace *t = NULL;
    ec_error err = {0};
    ec_trace_opts o = {.n_experts = n_experts};
    cr_assert_eq(ec_trace_load(&p, 1, &o, &t, &err), EC_OK, "%s", err.message);
    return t;
}

/* ---- hand-computed: 2 layers, 3 experts, top-1, one slot per layer ---------
 * tokens: (layer 0, layer 1) = (0, 1), (0, 2); transfer 10 ms, one engine,
 * compute 1 ms per layer, no overheads.
 *   lru:  s0 miss 0-10, compute 10-11 | s1 miss 11-21, 21-22 | s2 hit 22-23 |
 *         s3 miss 23-33, 33-34  -> 34 ms, stall 30
 *   oracle (looks 2 steps ahead): s0 demand 0-10, prefetch e1 10-20, compute
 *         10-11 | s1 waits 11-20, 20-21 | s2 hit, plan evicts e1 (never used
 *         again) for e2: 21-31, compute 21-22 | s3 waits 22-31, 31-32
 *         -> 32 ms, stall 10 + 9 + 0 + 9 = 28
 *   on-demand: 4 loads in a row: 44 ms; resident: 4 ms.
 *   bound: Belady loads 1 (layer 0) + 2 (layer 1) = 30 ms > 4 ms compute. */
static const char *TINY =
    "{\"layer\":0,\"experts\":[0],\"token_idx\":0}\n{\"layer\":1,\"experts\":[1],\"token_idx\":0}\n"
    "{\"layer\":0,\"experts\":[0],\"token_idx\":1}\n{\"layer\":1,\"experts\":[2],\"token_idx\":1}\n";

static const ec_sim_timing TINY_TM = {.transfer_ms = 10, .engines = 1, .compute_fixed_ms = 1,
                                      .expert_bytes = 1000};

Test(sim, hand_computed_lru_oracle_on_demand_resident)
{
    ec_trace *t = trace_text(TINY, 3);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    cr_assert_eq(ec_sim_n_steps(s), 4);
    cr_assert_eq(ec_sim_n_tokens(s), 2);
    ec_sim_result r = tu_sim_run(s, EC_POLICY_LRU, 1, 0, 1, &TINY_TM);
    cr_assert_eq(r.total_ms, 34.0);
    cr_assert_eq(r.tpot_ms, 17.0);
    cr_assert_eq(r.stall_ms_per_token, 15.0);
    cr_assert_eq(r.stats.loads, 3);
    cr_assert_eq(r.hit_rate, 0.25);
    cr_assert_eq(r.bytes_per_token, 1500.0);
    cr_assert_eq(r.wasted_bytes_per_token, 0.0);
    cr_assert_eq(r.stall_per_layer[0], 5.0);
    cr_assert_eq(r.stall_per_layer[1], 10.0);
    cr_assert_eq(r.lower_bound_ms_per_token, 15.0);
    cr_assert_eq(r.bound_per_layer[0], 5.0);
    cr_assert_eq(r.bound_per_layer[1], 10.0);
    ec_sim_result_clear(&r);
    r = tu_sim_run(s, EC_POLICY_ORACLE, 1, 0, 1, &TINY_TM);
    cr_assert_eq(r.total_ms, 32.0);
    cr_assert_eq(r.stall_ms_per_token, 14.0);
    cr_assert_eq(r.stats.loads, 3);
    cr_assert_eq(r.stats.prefetches, 2);
    cr_assert_eq(r.stats.prefetch_hits, 2);
    cr_assert_eq(r.prefetch_precision, 1.0);
    cr_assert_eq(r.hit_rate, 0.75, "s1, s3 in flight, s2 resident");
    cr_assert_eq(r.resident_rate, 0.25);
    ec_sim_result_clear(&r);
    r = tu_sim_run(s, EC_POLICY_ON_DEMAND, 1, 0, 1, &TINY_TM);
    cr_assert_eq(r.total_ms, 44.0);
    cr_assert_eq(r.stats.loads, 4);
    ec_sim_result_clear(&r);
    r = tu_sim_run(s, EC_POLICY_RESIDENT, 0, 0, 1, &TINY_TM);
    cr_assert_eq(r.total_ms, 4.0);
    cr_assert_eq(r.stall_ms_per_token, 0.0);
    cr_assert_eq(r.stats.loads, 0);
    ec_sim_result_clear(&r);
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

/* ---- the oracle is a reference, not a bound --------------------------------
 * 1 layer, 3 experts, top-1, 2 slots; uses 0 0 2 1 0; transfer 10 ms, one
 * engine, compute 1 ms, horizon 1.
 *   lfu: s0 miss 0-10, 10-11 | s1 hit 11-12 | s2 miss (free slot) 12-22,
 *        22-23 | s3 miss, evicts e2 (1 use against e0's 2) 23-33, 33-34 |
 *        s4 hit 34-35 -> 35 ms, 3 loads (only cold misses).
 *   oracle: prefetches e2 during s1 (11-21) and, at s2, e1 for s3; the one
 *        expert never used again, e2, is being read at s2 and cannot be the
 *        victim, so Belady's choice among the rest evicts e0 (21-31), which
 *        s4 then loads again on demand -> 4 loads, 42 ms.
 * Greedy perfect prefetch evicts too early: a policy can beat it. */
Test(sim, a_policy_can_beat_the_oracle)
{
    ec_trace *t = trace_text("{\"layer\":0,\"experts\":[0],\"token_idx\":0}\n"
                             "{\"layer\":0,\"experts\":[0],\"token_idx\":1}\n"
                             "{\"layer\":0,\"experts\":[2],\"token_idx\":2}\n"
                             "{\"layer\":0,\"experts\":[1],\"token_idx\":3}\n"
                             "{\"layer\":0,\"experts\":[0],\"token_idx\":4}\n",
                             3);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    ec_sim_result f = tu_sim_run(s, EC_POLICY_LFU, 2, 0, 1, &TINY_TM);
    ec_sim_result o = tu_sim_run(s, EC_POLICY_ORACLE, 2, 0, 1, &TINY_TM);
    cr_expect_eq(f.total_ms, 35.0);
    cr_expect_eq(f.stats.loads, 3);
    cr_expect_eq(o.total_ms, 42.0);
    cr_expect_eq(o.stats.loads, 4);
    cr_expect_lt(f.tpot_ms, o.tpot_ms, "lfu beats the oracle");
    /* the analytic bound stays below both: 3 Belady loads x 10 ms */
    cr_expect_eq(f.lower_bound_ms_per_token, 6.0);
    cr_expect_leq(f.lower_bound_ms_per_token, f.tpot_ms);
    ec_sim_result_clear(&f);
    ec_sim_result_clear(&o);
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

Test(sim, router_overhead_delays_the_demand_and_counts_as_compute)
{
    ec_trace *t = trace_text(TINY, 3);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    ec_sim_timing tm = TINY_TM;
    tm.router_ms = 0.5;
    tm.compute_per_expert_ms = 2;
    /* lru: each step 0.5 router, then load if missing, then 1 + 2 compute:
     * s0 0.5 + 10 + 3 = 13.5 | s1 14 + 10 + 3 = 27 | s2 27.5 + 3 = 30.5 |
     * s3 31 + 10 + 3 = 44 */
    ec_sim_result r = tu_sim_run(s, EC_POLICY_LRU, 1, 0, 1, &tm);
    cr_assert_eq(r.total_ms, 44.0);
    cr_assert_eq(r.compute_ms_per_token, 7.0, "2 layers x (0.5 + 3)");
    ec_sim_result_clear(&r);
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

Test(sim, two_engines_overlap_transfers)
{
    /* one step needing 2 absent experts: one engine 0-10-20, two engines 0-10 */
    ec_trace *t = trace_text("{\"layer\":0,\"experts\":[0,1],\"token_idx\":0}\n", 2);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    ec_sim_timing tm = TINY_TM;
    ec_sim_result r = tu_sim_run(s, EC_POLICY_LRU, 2, 0, 1, &tm);
    cr_assert_eq(r.total_ms, 21.0);
    ec_sim_result_clear(&r);
    tm.engines = 2;
    r = tu_sim_run(s, EC_POLICY_LRU, 2, 0, 1, &tm);
    cr_assert_eq(r.total_ms, 11.0);
    ec_sim_result_clear(&r);
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

Test(sim, batch_needs_the_union_of_the_sequences)
{
    ec_trace *t = trace_text(
        "{\"problem_id\":0,\"layer\":0,\"experts\":[0],\"token_idx\":0}\n"
        "{\"problem_id\":1,\"layer\":0,\"experts\":[2],\"token_idx\":0}\n"
        "{\"problem_id\":1,\"layer\":0,\"experts\":[0],\"token_idx\":1}\n",
        3);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 2, &s, NULL), EC_OK);
    cr_assert_eq(ec_sim_n_tokens(s), 2);
    cr_assert_eq(ec_sim_max_union(s), 2);
    ec_sim_result r = tu_sim_run(s, EC_POLICY_LRU, 2, 0, 1, &TINY_TM);
    /* step 0 loads 0 and 2 (0-10, 10-20), compute 20-21; step 1 hits 0 */
    cr_assert_eq(r.total_ms, 22.0);
    cr_assert_eq(r.stats.acquires, 3);
    ec_sim_result_clear(&r);
    ec_sim_config cfg = {.kind = EC_POLICY_LRU, .cache_per_layer = 1, .timing = TINY_TM};
    ec_error err = {0};
    cr_assert_eq(ec_sim_run(s, &cfg, &r, &err), EC_ERR_INVALID);
    cr_assert(strstr(err.message, "cannot hold"), "%s", err.message);
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

/* ---- invariants on random synthetic traces ------------------------------- */

static ec_trace *synth(uint64_t seed, int32_t L, int32_t E, int32_t k, int32_t seqs,
                       int32_t tokens)
{
    ec_synth_opts o;
    ec_synth_opts_default(&o);
    o.seed = seed;
    o.n_layers = L;
    o.n_experts = E;
    o.k = k;
    o.n_seqs = seqs;
    o.n_tokens = tokens;
    ec_trace *t;
    cr_assert_eq(ec_synth_generate(&o, &t, NULL), EC_OK);
    return t;
}

static const ec_policy_kind ALL[] = {EC_POLICY_ON_DEMAND, EC_POLICY_LRU,    EC_POLICY_LFU,
                                     EC_POLICY_PREDICT,   EC_POLICY_GATED,  EC_POLICY_ORACLE,
                                     EC_POLICY_RESIDENT};

typedef struct synth_case {
    uint64_t seed;
    int32_t L, E, k, per_layer, global, horizon, engines;
    double transfer, fixed, per_expert;
} synth_case;

static const synth_case CASES[] = {
    {1, 4, 8, 2, 4, 0, 1, 1, 3.0, 0.3, 0.2},
    {2, 6, 8, 2, 6, 0, 2, 1, 1.0, 0.5, 0.1},
    {3, 4, 16, 4, 8, 0, 3, 2, 2.0, 0.2, 0.05},
    {4, 5, 8, 2, 0, 14, 2, 1, 2.5, 0.4, 0.2},
    {5, 8, 8, 1, 3, 0, 4, 1, 0.8, 0.3, 0.3},
    {6, 3, 6, 2, 0, 9, 1, 2, 5.0, 1.0, 0.5},
};

Test(sim, on_synthetic_traces_the_bound_and_resident_are_below_every_policy)
{
    for (size_t ci = 0; ci < (sizeof CASES / sizeof CASES[0]); ci++) {
        const synth_case *c = &CASES[ci];
        ec_trace *t = synth(c->seed, c->L, c->E, c->k, 4, 24);
        ec_sim *s;
        cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
        cr_assert_eq(ec_sim_fit_heldout(s, "prior", NULL, NULL), EC_OK);
        ec_sim_timing tm = {.transfer_ms = c->transfer, .engines = c->engines,
                            .compute_fixed_ms = c->fixed, .compute_per_expert_ms = c->per_expert,
                            .router_ms = 0.01, .expert_bytes = 1};
        double tpot[7], stall[7], bound = 0;
        for (size_t i = 0; i < 7; i++) {
            ec_sim_result r = tu_sim_run(s, ALL[i], c->per_layer, c->global, c->horizon, &tm);
            tpot[i] = r.tpot_ms;
            stall[i] = r.stall_ms_per_token;
            if (ALL[i] == EC_POLICY_LRU)
                bound = r.lower_bound_ms_per_token;
            ec_sim_result_clear(&r);
        }
        for (size_t i = 0; i < 7; i++) {
            cr_assert_leq(stall[6], stall[i] + 1e-9, "case %zu: resident stall <= %s", ci,
                          ec_policy_kind_name(ALL[i]));
            if (ALL[i] != EC_POLICY_RESIDENT)
                cr_assert_leq(bound, tpot[i] + 1e-9, "case %zu: bound %g <= %s %g", ci, bound,
                              ec_policy_kind_name(ALL[i]), tpot[i]);
        }
        ec_sim_destroy(s);
        ec_trace_destroy(t);
    }
}

/* Not a theorem (a_policy_can_beat_the_oracle): on these traces none does. */
Test(sim, on_these_synthetic_traces_no_policy_beats_the_oracle)
{
    int beaten = 0;
    for (size_t ci = 0; ci < (sizeof CASES / sizeof CASES[0]); ci++) {
        const synth_case *c = &CASES[ci];
        ec_trace *t = synth(c->seed, c->L, c->E, c->k, 4, 24);
        ec_sim *s;
        cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
        cr_assert_eq(ec_sim_fit_heldout(s, "prior", NULL, NULL), EC_OK);
        ec_sim_timing tm = {.transfer_ms = c->transfer, .engines = c->engines,
                            .compute_fixed_ms = c->fixed, .compute_per_expert_ms = c->per_expert,
                            .router_ms = 0.01, .expert_bytes = 1};
        ec_sim_result o = tu_sim_run(s, EC_POLICY_ORACLE, c->per_layer, c->global, c->horizon, &tm);
        for (size_t i = 0; i < 5; i++) {
            ec_sim_result r = tu_sim_run(s, ALL[i], c->per_layer, c->global, c->horizon, &tm);
            if (r.stall_ms_per_token + 1e-9 < o.stall_ms_per_token) {
                beaten++;
                cr_log_warn("case %zu: %s stall %g < oracle %g", ci, ec_policy_kind_name(ALL[i]),
                            r.stall_ms_per_token, o.stall_ms_per_token);
            }
            cr_assert_leq(o.stats.loads, r.stats.loads + r.stats.loads, "sanity");
            ec_sim_result_clear(&r);
        }
        ec_sim_result_clear(&o);
        ec_sim_destroy(s);
        ec_trace_destroy(t);
    }
    cr_assert_eq(beaten, 0);
}

Test(sim, infinite_bandwidth_means_zero_stall)
{
    ec_trace *t = synth(7, 4, 8, 2, 3, 20);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    cr_assert_eq(ec_sim_fit_heldout(s, "prior", NULL, NULL), EC_OK);
    ec_sim_timing tm = {.transfer_ms = 0, .engines = 1, .compute_fixed_ms = 0.5,
                        .compute_per_expert_ms = 0.1, .expert_bytes = 1};
    for (size_t i = 0; i < 7; i++) {
        ec_sim_result r = tu_sim_run(s, ALL[i], 2, 0, 2, &tm);
        cr_assert_eq(r.stall_ms_per_token, 0.0, "%s", ec_policy_kind_name(ALL[i]));
        ec_sim_result_clear(&r);
    }
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

Test(sim, a_cache_holding_every_expert_has_only_cold_misses)
{
    ec_trace *t = synth(8, 4, 8, 2, 3, 30);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    cr_assert_eq(ec_sim_fit_heldout(s, "prior", NULL, NULL), EC_OK);
    /* distinct (layer, expert) pairs used: the cold misses */
    uint8_t seen[4][8] = {{0}};
    int64_t distinct = 0;
    for (size_t r = 0; r < t->n_rows; r++)
        for (int32_t l = 0; l < 4; l++)
            for (int32_t i = 0; i < 2; i++) {
                int16_t e = ec_trace_experts(t, r, l)[i];
                if (!seen[l][e]++)
                    distinct++;
            }
    ec_sim_timing tm = {.transfer_ms = 2, .engines = 1, .compute_fixed_ms = 0.5,
                        .expert_bytes = 1};
    for (size_t i = 1; i < 6; i++) {
        for (int global = 0; global < 2; global++) {
            ec_sim_result r = tu_sim_run(s, ALL[i], global ? 0 : 8, global ? 32 : 0, 2, &tm);
            cr_assert_leq(r.stats.misses, distinct, "%s", ec_policy_kind_name(ALL[i]));
            cr_assert_eq(r.stats.misses + r.stats.inflight_hits + r.stats.hits, r.stats.acquires);
            cr_assert_eq(r.stats.evictions, 0, "%s: nothing to evict", ec_policy_kind_name(ALL[i]));
            if (ALL[i] == EC_POLICY_LRU || ALL[i] == EC_POLICY_LFU)
                cr_assert_eq(r.stats.misses, distinct);
            ec_sim_result_clear(&r);
        }
    }
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

Test(sim, replays_are_bit_for_bit_deterministic)
{
    ec_trace *t = synth(9, 6, 16, 2, 4, 30);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 2, &s, NULL), EC_OK);
    cr_assert_eq(ec_sim_fit_heldout(s, "prior", NULL, NULL), EC_OK);
    ec_sim_timing tm = {.transfer_ms = 1.7, .engines = 2, .compute_fixed_ms = 0.31,
                        .compute_per_expert_ms = 0.07, .router_ms = 0.013, .predictor_ms = 0.005,
                        .expert_bytes = 123};
    for (size_t i = 0; i < 7; i++) {
        ec_sim_result a = tu_sim_run(s, ALL[i], 6, 0, 3, &tm), b = tu_sim_run(s, ALL[i], 6, 0, 3, &tm);
        cr_assert_eq(memcmp(&a.total_ms, &b.total_ms, sizeof a.total_ms), 0);
        cr_assert_eq(memcmp(&a.stats, &b.stats, sizeof a.stats), 0);
        cr_assert_eq(memcmp(a.stall_per_layer, b.stall_per_layer, 6 * sizeof(double)), 0);
        ec_sim_result_clear(&a);
        ec_sim_result_clear(&b);
    }
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

/* ---- profiles ------------------------------------------------------------ */

Test(profile, shipped_profiles_load_and_derive_sane_timings)
{
    const char *models[] = {"mixtral-8x7b", "qwen3-30b-a3b", "flame-moe-290m", "deepseek-v3"};
    const char *hws[] = {"rtx4090-pcie4", "a100-pcie4", "h100-pcie5", "gh200-c2c"};
    for (size_t m = 0; m < 4; m++) {
        ec_model_profile mp;
        ec_error err = {0};
        cr_assert_eq(ec_model_profile_load(tu_profile_path(models[m]), NULL, &mp, &err), EC_OK, "%s",
                     err.message);
        for (size_t h = 0; h < 4; h++) {
            ec_hw_profile hp;
            cr_assert_eq(ec_hw_profile_load(tu_profile_path(hws[h]), &hp, &err), EC_OK, "%s",
                         err.message);
            ec_sim_timing tm;
            ec_sim_timing_derive(&mp, &hp, &tm);
            cr_assert_gt(tm.transfer_ms, 0);
            cr_assert_gt(tm.compute_per_expert_ms, 0);
            int32_t c = ec_sim_default_cache(&mp, &hp);
            cr_assert(c >= mp.k && c <= mp.n_experts);
        }
    }
    ec_model_profile mp;
    ec_hw_profile hp;
    cr_assert_eq(ec_model_profile_load(tu_profile_path("mixtral-8x7b"), "int4", &mp, NULL), EC_OK);
    cr_assert_eq(mp.expert_bytes, 88080384.0);
    cr_assert_eq(ec_hw_profile_load(tu_profile_path("rtx4090-pcie4"), &hp, NULL), EC_OK);
    ec_sim_timing tm;
    ec_sim_timing_derive(&mp, &hp, &tm);
    /* 88080384 B / 23.9e9 B/s = 3.685 ms, + 10 us latency */
    cr_assert_float_eq(tm.transfer_ms, 88080384.0 / 23.9e9 * 1e3 + 0.01, 1e-12);
    ec_error err = {0};
    cr_assert_eq(ec_model_profile_load(tu_profile_path("mixtral-8x7b"), "int2", &mp, &err),
                 EC_ERR_NOT_FOUND);
    cr_assert(strstr(err.message, "int4"), "lists what exists: %s", err.message);
}

Test(profile, a_value_without_source_is_rejected_naming_file_and_field)
{
    const char *d = tu_tmpdir();
    const char *p = tu_write(
        d, "m.json",
        "{\"format\": \"expertcast-model-profile\", \"name\": \"x\", \"layers\": {\"value\": 2, "
        "\"source\": \"s\"}, \"experts\": {\"value\": 4, \"source\": \"s\"}, \"top_k\": {\"value\": "
        "1, \"source\": \"s\"}, \"default_dtype\": \"fp16\", \"dtypes\": {\"fp16\": "
        "{\"expert_bytes\": {\"value\": 10}, \"layer_fixed_bytes\": {\"value\": 1, \"source\": "
        "\"s\"}}}}");
    ec_model_profile mp;
    ec_error err = {0};
    cr_assert_eq(ec_model_profile_load(p, NULL, &mp, &err), EC_ERR_PARSE);
    cr_assert(strstr(err.message, "m.json") && strstr(err.message, "dtypes.fp16.expert_bytes.source"),
              "%s", err.message);
    p = tu_write(d, "h.json", "{\"format\": \"expertcast-hardware-profile\", \"name\": \"h\", "
                              "\"h2d_gbs\": {\"value\": -1, \"source\": \"s\"}}");
    ec_hw_profile hp;
    cr_assert_eq(ec_hw_profile_load(p, &hp, &err), EC_ERR_PARSE);
    cr_assert(strstr(err.message, "h.json: field 'h2d_gbs.value'"), "%s", err.message);
    p = tu_write(d, "bad.json", "{\"format\": ");
    cr_assert_eq(ec_hw_profile_load(p, &hp, &err), EC_ERR_PARSE);
    cr_assert_eq(ec_hw_profile_load("/nonexistent/x.json", &hp, &err), EC_ERR_IO);
}

Test(mixtral_real, flame_and_a_deepseek_sized_trace_replay_without_code_changes)
{
    const char *path = TU_SHARED_OR_SKIP("flame-moe-290m/pretrain_32x64_routing.jsonl");
    ec_trace *t;
    cr_assert_eq(ec_trace_load(&path, 1, NULL, &t, NULL), EC_OK);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    cr_assert_eq(ec_sim_fit_heldout(s, "prior", NULL, NULL), EC_OK);
    ec_sim_timing tm = {.transfer_ms = 0.2, .engines = 1, .compute_fixed_ms = 0.05,
                        .compute_per_expert_ms = 0.005, .router_ms = 0.01, .expert_bytes = 4e6};
    for (size_t i = 0; i < 7; i++) {
        ec_sim_result r = tu_sim_run(s, ALL[i], 32, 0, 2, &tm);
        cr_assert_gt(r.tpot_ms, 0);
        ec_sim_result_clear(&r);
    }
    ec_sim_destroy(s);
    ec_trace_destroy(t);
    t = synth(11, 58, 256, 8, 2, 6);
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    cr_assert_eq(ec_sim_fit_heldout(s, "prior", NULL, NULL), EC_OK);
    for (size_t i = 0; i < 7; i++) {
        ec_sim_result r = tu_sim_run(s, ALL[i], 64, 0, 2, &tm);
        cr_assert_gt(r.tpot_ms, 0);
        ec_sim_result_clear(&r);
        r = tu_sim_run(s, ALL[i], 0, 58 * 64, 2, &tm);
        cr_assert_gt(r.tpot_ms, 0);
        ec_sim_result_clear(&r);
    }
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

/* ---- the command --------------------------------------------------------- */

Test(cli, simulate_json_has_every_field_and_is_deterministic)
{
    const char *d = tu_tmpdir();
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_cli(NULL, NULL, "synth --layers 32 --experts 8 --sequences 3 --tokens 20 -o %s/s.jsonl", d), 0);
    int rc = tu_cli(&out, &err,
                    "simulate %s/s.jsonl --model %s --hardware %s --cache-experts 4 --json %s/a.json",
                    d, tu_profile_path("mixtral-8x7b"), tu_profile_path("rtx4090-pcie4"), d);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert(strstr(out, "gated") && strstr(out, "other 2 sequence(s) only"), "%s", out);
    free(out);
    free(err);
    rc = tu_cli(NULL, NULL,
                "simulate %s/s.jsonl --model mixtral-8x7b --hardware rtx4090-pcie4 --cache-experts 4 "
                "--json %s/b.json",
                d, d);
    cr_assert_eq(rc, 0, "profiles by name resolve next to the executable");
    char a[65], b[65], p[1100];
    snprintf(p, sizeof p, "%s/a.json", d);
    cr_assert_eq(tu_sha256(p, a), 0);
    snprintf(p, sizeof p, "%s/b.json", d);
    cr_assert_eq(tu_sha256(p, b), 0);
    cr_assert_str_eq(a, b, "same inputs, same bytes");
    char *j = tu_read(p, NULL);
    const char *fields[] = {"\"model\"", "\"hardware\"", "\"results\"", "\"policy\"",
                            "\"cache_experts\"", "\"tpot_ms\"", "\"stall_ms_per_token\"",
                            "\"hit_rate\"", "\"bytes_per_token\"", "\"wasted_bytes_per_token\"",
                            "\"gap_closed\"", "\"stall_per_layer_ms\"", "\"prefetch_precision\""};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        cr_assert(strstr(j, fields[i]), "missing %s", fields[i]);
    free(j);
}

Test(cli, simulate_errors_are_usage_or_data_and_write_nothing)
{
    const char *d = tu_tmpdir();
    char *err = NULL;
    cr_assert_eq(tu_cli(NULL, NULL, "synth --layers 4 --experts 8 --sequences 2 --tokens 5 -o %s/s.jsonl", d), 0);
    cr_assert_eq(tu_cli(NULL, &err, "simulate %s/s.jsonl --model nosuch --hardware rtx4090-pcie4", d), 2);
    free(err);
    cr_assert_eq(tu_cli(NULL, &err, "simulate %s/s.jsonl --model mixtral-8x7b --hardware rtx4090-pcie4 --policy belady", d), 2);
    free(err);
    cr_assert_eq(tu_cli(NULL, &err, "simulate %s/s.jsonl --model mixtral-8x7b --hardware rtx4090-pcie4 --plot x.png", d), 2);
    cr_expect_not_null(strstr(err, "--plot needs --sweep"), "%s", err);
    free(err);
    /* 4 layers in the trace, 32 in the profile: a data error naming the file */
    cr_assert_eq(tu_cli(NULL, &err, "simulate %s/s.jsonl --model mixtral-8x7b --hardware rtx4090-pcie4 --json %s/o.json", d, d), 1);
    cr_assert(strstr(err, "mixtral-8x7b.json") && strstr(err, "layers"), "%s", err);
    free(err);
    char p[1100];
    snprintf(p, sizeof p, "%s/o.json", d);
    cr_assert_null(tu_read(p, NULL), "nothing half-written");
    char *out = NULL;
    cr_assert_eq(tu_cli(&out, NULL, "simulate --help"), 0);
    cr_assert(strstr(out, "--sweep") && strstr(out, "--batch") && strstr(out, "--fit"));
    free(out);
}

Test(cli, sweep_writes_csv_rows_for_every_cache_horizon_and_policy)
{
    const char *d = tu_tmpdir();
    cr_assert_eq(tu_cli(NULL, NULL, "synth --layers 32 --experts 8 --sequences 2 --tokens 8 -o %s/s.jsonl", d), 0);
    char *err = NULL;
    int rc = tu_cli(NULL, &err,
                    "simulate %s/s.jsonl --model mixtral-8x7b --hardware h100-pcie5 --policy lru,gated "
                    "--sweep --cache-experts 2,4 --horizon 1,2 --csv %s/s.csv --plot %s/s.png",
                    d, d, d);
    cr_assert_eq(rc, 0, "%s", err);
    /* stderr is a file here: whole progress lines, no carriage return */
    cr_expect_not_null(strstr(err, "simulate: 8/8 runs\n"), "progress on stderr: %s", err);
    cr_expect_null(strchr(err, '\r'), "%s", err);
    free(err);
    char p[1100];
    snprintf(p, sizeof p, "%s/s.csv", d);
    char *csv = tu_read(p, NULL);
    cr_assert_not_null(csv);
    int lines = 0;
    for (char *c = csv; *c; c++)
        lines += *c == '\n';
    /* header + per cache: lru + gated x 2 horizons */
    cr_assert_eq(lines, 1 + 2 * 3, "%s", csv);
    free(csv);
}

Test(sim, every_allocation_failure_is_reported_cleanly)
{
    ec_trace *t = synth(12, 4, 8, 2, 3, 6);
    ec_sim_timing tm = {.transfer_ms = 1, .engines = 2, .compute_fixed_ms = 0.1,
                        .expert_bytes = 1};
    ec_policy_kind kinds[] = {EC_POLICY_LRU, EC_POLICY_GATED, EC_POLICY_ORACLE};
    for (size_t ki = 0; ki < 3; ki++) {
        int succeeded = 0;
        for (size_t fail = 1; fail < 400 && !succeeded; fail++) {
            tu_alloc_state st = {.fail_at = fail};
            tu_alloc_install(&st);
            ec_sim *s = NULL;
            ec_sim_result r;
            ec_status rc = ec_sim_create(t, 1, &s, NULL);
            if (rc == EC_OK)
                rc = ec_sim_fit_heldout(s, "prior", NULL, NULL);
            if (rc == EC_OK) {
                ec_sim_config cfg = {.kind = kinds[ki], .cache_per_layer = 4, .horizon = 2,
                                     .timing = tm};
                rc = ec_sim_run(s, &cfg, &r, NULL);
                if (rc == EC_OK) {
                    ec_sim_result_clear(&r);
                    succeeded = 1;
                }
            }
            ec_sim_destroy(s);
            tu_alloc_uninstall();
            cr_assert(rc == EC_OK || rc == EC_ERR_NOMEM, "fail at %zu: status %d", fail, rc);
            cr_assert_eq(st.live, 0, "%s: %ld blocks leaked failing allocation %zu",
                         ec_policy_kind_name(kinds[ki]), st.live, fail);
        }
        cr_assert(succeeded);
    }
    ec_trace_destroy(t);
}

/* Beyond EC_SIM_MAX_FOLDS groups, held-out fitting makes EC_SIM_MAX_FOLDS
 * predictors, each fitted exactly on the sequences outside its fold. */
Test(sim, heldout_fits_at_most_max_folds_each_outside_its_fold)
{
    ec_synth_opts o;
    ec_synth_opts_default(&o);
    o.n_layers = 4;
    o.n_experts = 8;
    o.k = 2;
    o.n_seqs = 21;
    o.n_tokens = 6;
    ec_trace *t;
    ec_sim *s;
    ec_error err = {0};
    cr_assert_eq(ec_synth_generate(&o, &t, &err), EC_OK, "%s", err.message);
    cr_assert_eq(ec_sim_create(t, 1, &s, &err), EC_OK, "%s", err.message);
    cr_assert_eq(ec_sim_fit_heldout(s, "prior", NULL, &err), EC_OK, "%s", err.message);
    int owned = 0;
    for (int32_t g = 0; g < s->n_groups; g++)
        owned += s->owned[g] != NULL;
    cr_assert_eq(owned, EC_SIM_MAX_FOLDS);
    uint8_t mask[21];
    size_t n = (size_t)t->n_layers * (size_t)t->n_experts;
    for (int32_t f = 0; f < EC_SIM_MAX_FOLDS; f++) {
        int32_t g0 = f * 21 / EC_SIM_MAX_FOLDS, g1 = (f + 1) * 21 / EC_SIM_MAX_FOLDS;
        for (int q = 0; q < 21; q++)
            mask[q] = q < g0 || q >= g1;
        ec_predictor *p;
        cr_assert_eq(ec_predictor_create("prior", NULL, &p, &err), EC_OK);
        cr_assert_eq(ec_predictor_fit(p, t, mask), EC_OK);
        for (int32_t g = g0; g < g1; g++) {
            cr_assert_eq(s->pred[g], s->pred[g0], "group %d is not predicted by its fold's fit", g);
            cr_assert_eq(memcmp(s->pred[g]->prior, p->prior, n * sizeof *p->prior), 0,
                         "group %d: not fitted on the sequences outside fold %d", g, f);
        }
        ec_predictor_destroy(p);
    }
    /* gated's reuse models follow the same folds: one fit each, on the
     * sequences outside the fold with the fold's predictor */
    ec_sim_config cfg = {.kind = EC_POLICY_GATED, .cache_per_layer = 3, .horizon = 1,
                         .timing = {.transfer_ms = 1, .engines = 1, .compute_fixed_ms = 0.1,
                                    .expert_bytes = 1}};
    ec_sim_result res;
    cr_assert_eq(ec_sim_run(s, &cfg, &res, &err), EC_OK, "%s", err.message);
    ec_sim_result_clear(&res);
    for (int32_t f = 0; f < EC_SIM_MAX_FOLDS; f++) {
        int32_t g0 = f * 21 / EC_SIM_MAX_FOLDS, g1 = (f + 1) * 21 / EC_SIM_MAX_FOLDS;
        for (int q = 0; q < 21; q++)
            mask[q] = q < g0 || q >= g1;
        ec_reuse_model *m;
        cr_assert_eq(ec_reuse_model_create(4, 8, 2, &m), EC_OK);
        cr_assert_eq(ec_reuse_model_fit(m, t, mask, s->pred[g0], &err), EC_OK, "%s", err.message);
        cr_assert_not_null(s->reuse_fold[f]);
        for (int32_t g = g0; g < g1; g++)
            cr_assert_eq(s->reuse[g], s->reuse_fold[f], "group %d does not use its fold's model", g);
        cr_assert_eq(memcmp(&s->reuse_fold[f]->fit, &m->fit, sizeof m->fit), 0,
                     "fold %d: reuse model not fitted on the sequences outside it", f);
        ec_reuse_model_destroy(m);
    }
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

/* The text table says how many prefetches each policy started and the gap
 * against both references. */
Test(cli, simulate_table_counts_prefetches_and_both_gaps)
{
    const char *d = tu_tmpdir();
    cr_assert_eq(tu_cli(NULL, NULL, "synth --layers 32 --experts 8 --sequences 2 --tokens 8 -o %s/s.jsonl", d), 0);
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_cli(&out, &err,
                        "simulate %s/s.jsonl --model mixtral-8x7b-int4 --hardware gh200-c2c "
                        "--policy lru,oracle --cache-experts 4",
                        d),
                 0, "%s", err);
    cr_expect_not_null(strstr(out, "pf/tok"), "%s", out);
    cr_expect_not_null(strstr(out, "oracle   bound"), "%s", out);
    cr_expect_not_null(strstr(out, "a reference, not a bound"), "%s", out);
    /* lru starts no prefetch; the oracle does */
    double v[12];
    const char *lru = strstr(out, "\nlru "), *orc = strstr(out, "\noracle ");
    cr_assert(lru && orc, "%s", out);
    cr_assert_eq(sscanf(lru, " lru %*s %*s %lf %lf %lf %lf (%lf) %lf", &v[0], &v[1], &v[2], &v[3],
                        &v[4], &v[5]),
                 6, "%s", lru);
    cr_expect_eq(v[5], 0.0, "lru pf/tok");
    cr_assert_eq(sscanf(orc, " oracle %*s %*s %lf %lf %lf %lf (%lf) %lf", &v[0], &v[1], &v[2],
                        &v[3], &v[4], &v[5]),
                 6, "%s", orc);
    cr_expect_gt(v[5], 0.0, "oracle pf/tok");
    free(out);
    free(err);
}
