/* The library functions the CLI is a shell over: comparisons with lru, the
 * oracle and the bound; profile and data lookup; held-out fitting; the
 * backend fallback reason. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 2 layers, 3 experts, top-1, one slot per layer (hand-computed in
 * test_sim.c): lru 34 ms, oracle 32 ms, bound 30 ms over 2 tokens. */
static const char *TINY =
    "{\"layer\":0,\"experts\":[0],\"token_idx\":0}\n{\"layer\":1,\"experts\":[1],\"token_idx\":0}\n"
    "{\"layer\":0,\"experts\":[0],\"token_idx\":1}\n{\"layer\":1,\"experts\":[2],\"token_idx\":1}\n";

static ec_trace *tiny(void)
{
    const char *p = tu_write(tu_tmpdir(), "t.jsonl", TINY);
    ec_trace *t = NULL;
    ec_error err = {0};
    ec_trace_opts o = {.n_experts = 3};
    cr_assert_eq(ec_trace_load(&p, 1, &o, &t, &err), EC_OK, "%s", err.message);
    return t;
}

Test(compare, baselines_are_lru_and_the_oracle_at_the_same_cache)
{
    ec_trace *t = tiny();
    ec_sim *s = NULL;
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    ec_sim_config cfg = {.kind = EC_POLICY_PREDICT, /* ignored */
                         .cache_per_layer = 1,
                         .horizon = 2,
                         .timing = {.transfer_ms = 10, .engines = 1, .compute_fixed_ms = 1,
                                    .expert_bytes = 1000}};
    ec_sim_baselines b;
    ec_error err = {0};
    cr_assert_eq(ec_sim_run_baselines(s, &cfg, &b, &err), EC_OK, "%s", err.message);
    cr_expect_eq(b.lru.kind, EC_POLICY_LRU);
    cr_expect_eq(b.oracle.kind, EC_POLICY_ORACLE);
    cr_expect_float_eq(b.lru.tpot_ms, 17.0, 1e-9);
    cr_expect_float_eq(b.oracle.tpot_ms, 16.0, 1e-9);
    cr_expect_float_eq(b.lru.lower_bound_ms_per_token, 15.0, 1e-9);

    /* lru against itself; the oracle against the baselines */
    ec_sim_comparison c;
    ec_sim_compare(&b.lru, &b, &c);
    cr_expect_float_eq(c.vs_lru, 1.0, 1e-12);
    cr_expect_float_eq(c.gap_closed, 0.0, 1e-12);
    cr_expect_float_eq(c.saved_vs_lru_ms, 0.0, 1e-12);
    cr_expect_eq(c.beats_oracle, 0);
    ec_sim_compare(&b.oracle, &b, &c);
    cr_expect_float_eq(c.gap_closed, 1.0, 1e-12);
    cr_expect_float_eq(c.gap_closed_bound, 0.5, 1e-12); /* (17 - 16) / (17 - 15) */
    cr_expect_float_eq(c.vs_bound_ms, 1.0, 1e-12);

    /* any kind, also one the simulator does not have: a result between the
     * bound and the oracle beats the oracle, and closes more than its gap */
    ec_sim_result r = b.oracle;
    r.kind = (ec_policy_kind)(EC_POLICY_RESIDENT + 1);
    r.tpot_ms = 15.5;
    ec_sim_compare(&r, &b, &c);
    cr_expect_eq(c.beats_oracle, 1);
    cr_expect_float_eq(c.gap_closed, 1.5, 1e-12);
    cr_expect_float_eq(c.gap_closed_bound, 0.75, 1e-12);
    cr_expect_float_eq(c.vs_oracle_ms, -0.5, 1e-12);
    cr_expect_float_eq(c.vs_lru, 15.5 / 17.0, 1e-12);
    /* resident loads nothing: it is never said to beat the oracle */
    r.kind = EC_POLICY_RESIDENT;
    ec_sim_compare(&r, &b, &c);
    cr_expect_eq(c.beats_oracle, 0);
    /* lru no slower than the oracle: no gap to close */
    ec_sim_baselines same = b;
    same.oracle.tpot_ms = same.lru.tpot_ms;
    ec_sim_compare(&r, &same, &c);
    cr_expect(isnan(c.gap_closed));

    ec_sim_baselines_clear(&b);
    cr_expect_null(b.lru.stall_per_layer);
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

Test(compare, predicting_kinds)
{
    cr_expect(ec_policy_kind_predicts(EC_POLICY_PREDICT));
    cr_expect(ec_policy_kind_predicts(EC_POLICY_GATED));
    cr_expect_not(ec_policy_kind_predicts(EC_POLICY_LRU));
    cr_expect_not(ec_policy_kind_predicts(EC_POLICY_ORACLE));
}

/* ---- data and profile lookup --------------------------------------------- */

Test(lookup, profiles_by_name_whatever_the_current_directory)
{
    unsetenv("EXPERTCAST_DATA");
    unsetenv("EXPERTCAST_PROFILES");
    cr_assert_eq(chdir(tu_tmpdir()), 0);
    char path[4096], dtype[EC_PROFILE_NAME_MAX];
    ec_error err = {0};
    cr_assert_eq(ec_profile_find("mixtral-8x7b-int4", 1, path, sizeof path, dtype, &err), EC_OK,
                 "%s", err.message);
    cr_expect(strstr(path, "/profiles/mixtral-8x7b.json"), "%s", path);
    cr_expect_str_eq(dtype, "int4");
    cr_assert_eq(ec_profile_find("h100-pcie5", 0, path, sizeof path, dtype, &err), EC_OK);
    cr_expect_str_eq(dtype, "");
    cr_assert_eq(ec_data_find("sample_trace.jsonl", path, sizeof path, &err), EC_OK, "%s",
                 err.message);
    ec_model_profile m;
    ec_hw_profile h;
    cr_assert_eq(ec_profiles_load("qwen3-30b-a3b", "a100-pcie4", &m, &h, &err), EC_OK, "%s",
                 err.message);
    cr_expect_eq(m.n_experts, 128);
    cr_expect_str_eq(h.name, "a100-pcie4");
}

Test(lookup, unknown_names_list_the_known_ones_and_hardware_is_not_a_model)
{
    unsetenv("EXPERTCAST_DATA");
    unsetenv("EXPERTCAST_PROFILES");
    char path[4096];
    ec_error err = {0};
    cr_assert_eq(ec_profile_find("nosuch", 1, path, sizeof path, NULL, &err), EC_ERR_NOT_FOUND);
    cr_expect(strstr(err.message, "'nosuch'") && strstr(err.message, "mixtral-8x7b") &&
                  !strstr(err.message, "h100-pcie5"),
              "%s", err.message);
    cr_assert_eq(ec_profile_find("nosuch", 0, path, sizeof path, NULL, &err), EC_ERR_NOT_FOUND);
    cr_expect(strstr(err.message, "h100-pcie5") && !strstr(err.message, "qwen3"), "%s",
              err.message);
    cr_assert_eq(ec_profile_find("./nosuch.json", 0, path, sizeof path, NULL, &err),
                 EC_ERR_NOT_FOUND);
    cr_assert_eq(ec_data_find("no/such/file", path, sizeof path, &err), EC_ERR_NOT_FOUND);
    cr_expect(strstr(err.message, "EXPERTCAST_DATA"), "%s", err.message);
}

Test(lookup, expertcast_data_comes_first_and_a_path_is_a_path)
{
    const char *d = tu_tmpdir();
    char dir[1100], src[1200], path[4096];
    snprintf(dir, sizeof dir, "%s/profiles", d);
    cr_assert_eq(mkdir(dir, 0777), 0);
    /* a copy of a shipped profile under another name, only in $EXPERTCAST_DATA */
    char *text = tu_read(tu_profile_path("h100-pcie5"), NULL);
    cr_assert_not_null(text);
    snprintf(src, sizeof src, "%s/mylab.json", dir);
    tu_write(dir, "mylab.json", text);
    free(text);
    ec_error err = {0};
    unsetenv("EXPERTCAST_PROFILES");
    unsetenv("EXPERTCAST_DATA");
    cr_expect_eq(ec_profile_find("mylab", 0, path, sizeof path, NULL, &err), EC_ERR_NOT_FOUND);
    setenv("EXPERTCAST_DATA", d, 1);
    cr_assert_eq(ec_profile_find("mylab", 0, path, sizeof path, NULL, &err), EC_OK, "%s",
                 err.message);
    cr_expect_str_eq(path, src);
    char first[1100];
    cr_assert(ec_data_dir(0, first, sizeof first));
    cr_expect_str_eq(first, d);
    /* names not in $EXPERTCAST_DATA still come from the next directories */
    cr_expect_eq(ec_profile_find("a100-pcie4", 0, path, sizeof path, NULL, &err), EC_OK);
    unsetenv("EXPERTCAST_DATA");
    setenv("EXPERTCAST_PROFILES", dir, 1);
    cr_expect_eq(ec_profile_find("mylab", 0, path, sizeof path, NULL, &err), EC_OK);
    unsetenv("EXPERTCAST_PROFILES");
    cr_expect_eq(ec_profile_find(src, 0, path, sizeof path, NULL, &err), EC_OK);
    cr_expect_str_eq(path, src);
}

/* ---- held-out fitting ------------------------------------------------------ */

Test(heldout, fitted_on_the_others_unless_every_sequence_is_held_out)
{
    ec_synth_opts so;
    ec_synth_opts_default(&so);
    so.n_layers = 4;
    so.n_experts = 8;
    so.k = 2;
    so.n_seqs = 3;
    so.n_tokens = 12;
    ec_trace *t = NULL;
    cr_assert_eq(ec_synth_generate(&so, &t, NULL), EC_OK);
    uint8_t held[3] = {1, 0, 0};
    ec_predictor *p = NULL;
    int in_sample = -1;
    ec_error err = {0};
    cr_assert_eq(ec_predictor_create_heldout("prior", NULL, t, held, &p, &in_sample, &err), EC_OK,
                 "%s", err.message);
    cr_expect_eq(in_sample, 0);
    cr_expect_eq(ec_predictor_n_layers(p), 4);
    ec_predictor_destroy(p);
    uint8_t all[3] = {1, 1, 1};
    cr_assert_eq(ec_predictor_create_heldout("prior", NULL, t, all, &p, &in_sample, &err), EC_OK);
    cr_expect_eq(in_sample, 1, "nothing left to fit on: said to be in-sample");
    ec_predictor_destroy(p);
    cr_expect_eq(ec_predictor_create_heldout("nosuch", NULL, t, held, &p, NULL, &err),
                 EC_ERR_NOT_FOUND);
    cr_expect_null(p);
    ec_trace_destroy(t);
}

/* ---- backend choice ---------------------------------------------------------- */

Test(backend_choice, auto_says_why_it_is_not_cuda_and_cuda_never_falls_back)
{
    ec_backend *b = NULL;
    ec_error err = {0};
    cr_assert_eq(ec_backend_create("auto", NULL, &b, &err), EC_OK, "%s", err.message);
    ec_backend *c = NULL;
    ec_status s = ec_backend_create("cuda", NULL, &c, &err);
    if (strcmp(ec_backend_name(b), "cpu") == 0) {
        /* no usable device here: auto kept cuda's reason, cuda fails with it */
        cr_expect_neq(s, EC_OK);
        cr_expect_null(c);
        cr_expect(s == EC_ERR_NO_DEVICE || s == EC_ERR_UNSUPPORTED, "%s", ec_status_str(s));
        cr_expect_str_eq(ec_backend_fallback_reason(b), err.message);
        cr_expect(strstr(ec_backend_fallback_reason(b), "cuda"), "%s",
                  ec_backend_fallback_reason(b));
    } else {
        cr_expect_eq(s, EC_OK);
        cr_expect_str_eq(ec_backend_fallback_reason(b), "");
    }
    ec_backend_destroy(c);
    ec_backend_destroy(b);
    cr_assert_eq(ec_backend_create("cpu", NULL, &b, &err), EC_OK);
    cr_expect_str_eq(ec_backend_fallback_reason(b), "", "asked for cpu: no fallback");
    ec_backend_destroy(b);
}

/* ---- the CLI from any directory ------------------------------------------------ */

Test(cli_anywhere, profiles_and_the_sample_are_found_from_another_directory)
{
    unsetenv("EXPERTCAST_DATA");
    unsetenv("EXPERTCAST_PROFILES");
    const char *d = tu_tmpdir();
    cr_assert_eq(chdir(d), 0);
    char sample[4096];
    cr_assert_eq(ec_data_find("sample_trace.jsonl", sample, sizeof sample, NULL), EC_OK);
    char *out = NULL, *err = NULL;
    int rc = tu_cli(&out, &err,
                    "simulate %s --model mixtral-8x7b-int4 --hardware h100-pcie5 "
                    "--cache-experts 4 --policy lru",
                    sample);
    cr_expect_eq(rc, 0, "%s", err);
    cr_expect(out && strstr(out, "hardware h100-pcie5"), "%s", out);
    free(out);
    free(err);
    /* the demo's default trace, and its profiles, with no data/ below the
     * current directory */
    rc = tu_cli(&out, &err, "demo --backend cpu --tokens 8 -o %s/demo", d);
    cr_expect_eq(rc, 0, "%s", err);
    cr_expect(out && strstr(out, "sample_trace.jsonl") && strstr(out, "rtx4090-pcie4"), "%s",
              out);
    free(out);
    free(err);
}
