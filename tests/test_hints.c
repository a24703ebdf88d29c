/*
 * The runtime's own guesses: hints in the routing history, the hint
 * predictor, guesses carried by traces, what-if guesses of a chosen recall,
 * and the loader's hint API (cpu backend; cuda skipped without a device).
 */
#include "testutil.h"

#include "expertcast/eval.h"
#include "expertcast/loader.h"
#include "expertcast/sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- history and the hint predictor ------------------------------------------------ */

Test(history, a_hint_lasts_until_its_target_is_observed)
{
    ec_history *h;
    cr_assert_eq(ec_history_create(4, 8, 2, 2, &h), EC_OK);
    int16_t a[2] = {0, 1}, g[2] = {5, 6};
    float p[2] = {0.6f, 0.3f};
    ec_history_observe(h, 0, a);
    cr_assert_null(ec_history_hint_get(h, 1));
    cr_assert_eq(ec_history_hint(h, 2, g, p, 2), EC_OK); /* for layer 2 of this token */
    const float *row = ec_history_hint_get(h, 2);
    cr_assert_not_null(row);
    cr_assert_float_eq(row[5], 0.6f, 1e-6);
    cr_assert_float_eq(row[6], 0.3f, 1e-6);
    cr_assert_float_eq(row[0], 0.1f / 6, 1e-6, "the rest spread over the 6 experts not listed");
    cr_assert_null(ec_history_hint_get(h, 1), "no guess for layer 1");
    ec_history_observe(h, 1, a);
    cr_assert_not_null(ec_history_hint_get(h, 1), "layer 2 is now one step ahead");
    ec_history_observe(h, 2, a);
    cr_assert_null(ec_history_hint_get(h, 4), "layer 2 of the next token: another target");
    ec_history_destroy(h);
}

Test(history, bad_hints_are_refused_and_leave_nothing)
{
    ec_history *h;
    cr_assert_eq(ec_history_create(4, 8, 2, 2, &h), EC_OK);
    int16_t twice[2] = {3, 3}, out[1] = {8}, ok[2] = {1, 2};
    float over[2] = {0.7f, 0.5f}, neg[2] = {-0.1f, 0.5f}, nan_[2] = {NAN, 0.1f};
    cr_assert_eq(ec_history_hint(h, 1, twice, NULL, 2), EC_ERR_INVALID);
    cr_assert_eq(ec_history_hint(h, 1, out, NULL, 1), EC_ERR_INVALID);
    cr_assert_eq(ec_history_hint(h, 1, ok, over, 2), EC_ERR_INVALID);
    cr_assert_eq(ec_history_hint(h, 1, ok, neg, 2), EC_ERR_INVALID);
    cr_assert_eq(ec_history_hint(h, 1, ok, nan_, 2), EC_ERR_INVALID);
    cr_assert_eq(ec_history_hint(h, 0, ok, NULL, 2), EC_ERR_INVALID);
    cr_assert_eq(ec_history_hint(h, 5, ok, NULL, 2), EC_ERR_INVALID);
    cr_assert_eq(ec_history_hint(h, 1, ok, NULL, 0), EC_ERR_INVALID);
    cr_assert_null(ec_history_hint_get(h, 1));
    cr_assert_eq(ec_history_hint(h, 1, ok, NULL, 2), EC_OK, "before any observation: layer 0");
    cr_assert_float_eq(ec_history_hint_get(h, 1)[1], 0.5f, 1e-6);
    ec_history_destroy(h);
}

Test(predictor, hint_answers_with_the_guess_and_abstains_without_one)
{
    ec_predictor *p;
    cr_assert_eq(ec_predictor_create("hint", NULL, &p, NULL), EC_OK);
    for (const char *const *n = ec_predictor_names(); *n; n++)
        cr_assert_neq(strcmp(*n, "hint"), 0, "hint learns nothing from routing: not in 'all'");
    ec_history *h;
    cr_assert_eq(ec_history_create(4, 8, 2, 2, &h), EC_OK);
    int16_t a[2] = {0, 1}, g[2] = {4, 7};
    float probs[8];
    ec_history_observe(h, 0, a);
    cr_assert_eq(ec_predictor_predict(p, h, 1, probs), 0, "unfitted, no guess: abstains");
    cr_assert_float_eq(probs[3], 0.125f, 1e-6, "uniform");
    cr_assert_eq(ec_history_hint(h, 1, g, NULL, 2), EC_OK);
    cr_assert_eq(ec_predictor_predict(p, h, 1, probs), 1);
    cr_assert_float_eq(probs[4], 0.5f, 1e-6);
    cr_assert_float_eq(probs[7], 0.5f, 1e-6);
    cr_assert_float_eq(probs[0], 0.0f, 1e-6);
    ec_history_destroy(h);
    ec_predictor_destroy(p);
}

/* ---- guesses in traces ------------------------------------------------------------- */

static ec_status load_text_opts(const char *text, const ec_trace_opts *opts, ec_trace **t,
                                ec_error *err)
{
    const char *path = tu_write(tu_tmpdir(), "g.jsonl", text);
    return ec_trace_load(&path, 1, opts, t, err);
}

static ec_status load_text(const char *text, ec_trace **t, ec_error *err)
{
    return load_text_opts(text, NULL, t, err);
}

Test(trace, guesses_load_and_write_back)
{
    ec_trace *t;
    ec_error err = {0};
    cr_assert_eq(load_text("{\"layer\": 0, \"experts\": [1, 2], \"token_idx\": 0, \"guesses\": "
                           "[{\"ahead\": 1, \"experts\": [3, 0], \"probs\": [0.5, 0.25]}, "
                           "{\"ahead\": 2, \"experts\": [2], \"probs\": [1.0]}]}\n"
                           "{\"layer\": 1, \"experts\": [3, 0], \"token_idx\": 0}\n",
                           &t, &err),
                 EC_OK, "%s", err.message);
    size_t n;
    const ec_guess *g = ec_trace_guesses(t, 0, 0, &n);
    cr_assert_eq(n, 2);
    cr_assert_eq(g[0].ahead, 1);
    cr_assert_eq(g[0].n, 2);
    cr_assert_eq(g[0].experts[0], 3);
    cr_assert_float_eq(g[0].probs[1], 0.25f, 1e-7);
    cr_assert_eq(g[1].ahead, 2);
    cr_assert_null(ec_trace_guesses(t, 0, 1, &n));
    cr_assert_eq(n, 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(ec_trace_write_jsonl(t, f, NULL), EC_OK);
    fclose(f);
    cr_assert_not_null(strstr(buf, "\"guesses\": [{\"ahead\": 1, \"experts\": [3, 0], \"probs\": "
                                   "[0.5, 0.25]}, {\"ahead\": 2, \"experts\": [2], \"probs\": "
                                   "[1.0]}]"),
                       "%s", buf);
    ec_trace *back;
    cr_assert_eq(load_text(buf, &back, &err), EC_OK, "%s", err.message);
    cr_assert_eq(back->n_guesses, 2);
    free(buf);
    ec_trace_destroy(back);
    ec_trace_destroy(t);
}

/* Loads one bad record and expects the message to name line and field. */
static void bad_guess(const char *guesses, const char *field, const char *what)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"layer\": 1, \"experts\": [1, 2], \"token_idx\": 0}\n"
             "{\"layer\": 0, \"experts\": [1, 2], \"token_idx\": 1, \"guesses\": %s}\n",
             guesses);
    ec_trace *t = NULL;
    ec_error err = {0};
    cr_assert_eq(load_text(text, &t, &err), EC_ERR_PARSE, "%s accepted", guesses);
    cr_assert_null(t);
    char want[128];
    snprintf(want, sizeof want, ":2: field '%s'", field);
    cr_assert_not_null(strstr(err.message, want), "%s: %s", guesses, err.message);
    cr_assert_not_null(strstr(err.message, what), "%s: %s", guesses, err.message);
}

Test(trace, bad_guesses_name_line_and_field)
{
    bad_guess("{}", "guesses", "expected an array");
    bad_guess("[3]", "guesses[0]", "expected an object");
    bad_guess("[{\"experts\": [1], \"probs\": [1]}]", "guesses[0].ahead", "missing");
    bad_guess("[{\"ahead\": 0, \"experts\": [1], \"probs\": [1]}]", "guesses[0].ahead",
              "out of range");
    bad_guess("[{\"ahead\": 1.5, \"experts\": [1], \"probs\": [1]}]", "guesses[0].ahead",
              "integer");
    bad_guess("[{\"ahead\": 1, \"experts\": [1], \"probs\": [1]}, {\"ahead\": 1, \"experts\": [2], "
              "\"probs\": [1]}]",
              "guesses[1].ahead", "twice");
    bad_guess("[{\"ahead\": 1, \"experts\": [], \"probs\": []}]", "guesses[0].experts", "empty");
    bad_guess("[{\"ahead\": 1, \"experts\": [2, 2], \"probs\": [0.5, 0.5]}]",
              "guesses[0].experts", "twice");
    bad_guess("[{\"ahead\": 1, \"experts\": [\"2\"], \"probs\": [1]}]", "guesses[0].experts",
              "string");
    bad_guess("[{\"ahead\": 1, \"experts\": [1]}]", "guesses[0].probs", "missing");
    bad_guess("[{\"ahead\": 1, \"experts\": [1, 2], \"probs\": [1]}]", "guesses[0].probs",
              "1 values for 2 experts");
    bad_guess("[{\"ahead\": 1, \"experts\": [1, 2], \"probs\": [0.7, 0.5]}]", "guesses[0].probs",
              "sum");
    bad_guess("[{\"ahead\": 1, \"experts\": [1], \"probs\": [-0.5]}]", "guesses[0].probs",
              "not in [0, 1]");
    bad_guess("[{\"ahead\": 1, \"ahead\": 2, \"experts\": [1], \"probs\": [1]}]",
              "guesses[0].ahead", "twice");
    /* ahead past the trace's 2 layers: known once the whole file is read */
    bad_guess("[{\"ahead\": 3, \"experts\": [1], \"probs\": [1]}]", "guesses", "exceeds");
}

/* An inferred shape counts guessed experts as seen, and takes its layers
 * from the records: a guess past them is refused unless layers are declared. */
Test(trace, guesses_and_the_inferred_shape)
{
    const char *text = "{\"layer\": 0, \"experts\": [0, 1], \"token_idx\": 0, \"guesses\": "
                       "[{\"ahead\": 1, \"experts\": [9], \"probs\": [0.5]}]}\n"
                       "{\"layer\": 1, \"experts\": [1, 0], \"token_idx\": 0}\n";
    ec_trace *t = NULL;
    ec_error err = {0};
    cr_assert_eq(load_text(text, &t, &err), EC_OK, "%s", err.message);
    cr_assert_eq(t->n_experts, 10, "expert 9 was guessed: %d experts", t->n_experts);
    ec_trace_destroy(t);
    ec_trace_opts eight = {.n_layers = 8, .n_experts = 8};
    cr_assert_eq(load_text_opts(text, &eight, &t, &err), EC_ERR_PARSE, "expert 9 of 8");
    cr_assert_not_null(strstr(err.message, "guesses[0].experts"), "%s", err.message);

    const char *far = "{\"layer\": 0, \"experts\": [0, 1], \"token_idx\": 0, \"guesses\": "
                      "[{\"ahead\": 3, \"experts\": [1], \"probs\": [0.5]}]}\n";
    cr_assert_eq(load_text(far, &t, &err), EC_ERR_PARSE, "ahead 3 past 1 inferred layer");
    cr_assert_not_null(strstr(err.message, "exceeds the trace's 1 layers"), "%s", err.message);
    cr_assert_eq(load_text_opts(far, &eight, &t, &err), EC_OK, "%s", err.message);
    size_t n;
    cr_assert_eq(ec_trace_guesses(t, 0, 0, &n)[0].ahead, 3);
    ec_trace_destroy(t);
}

Test(trace, drawn_guesses_have_the_recall_asked_for_and_are_deterministic)
{
    ec_synth_opts o;
    ec_synth_opts_default(&o);
    ec_trace *t, *g1, *g2;
    cr_assert_eq(ec_synth_generate(&o, &t, NULL), EC_OK);
    cr_assert_eq(ec_trace_draw_guesses(t, 0.7, 2, 9, &g1, NULL), EC_OK);
    cr_assert_eq(ec_trace_draw_guesses(t, 0.7, 2, 9, &g2, NULL), EC_OK);
    cr_assert_eq(g1->n_guesses, g2->n_guesses);
    double right = 0, all = 0;
    for (size_t r = 0; r < t->n_rows; r++)
        for (int32_t l = 0; l < t->n_layers; l++) {
            size_t n, n2;
            const ec_guess *g = ec_trace_guesses(g1, r, l, &n), *h = ec_trace_guesses(g2, r, l, &n2);
            cr_assert_eq(n, n2);
            for (size_t i = 0; i < n; i++) {
                cr_assert_eq(g[i].n, t->k, "a guess names k experts");
                cr_assert_eq(memcmp(g[i].experts, h[i].experts, (size_t)g[i].n * 2), 0);
                int32_t tl = (l + g[i].ahead) % t->n_layers;
                size_t tr = r + (size_t)((l + g[i].ahead) / t->n_layers);
                const int16_t *used = ec_trace_experts(t, tr, tl);
                for (int32_t j = 0; j < g[i].n; j++) {
                    cr_assert_float_eq(g[i].probs[j], 1.0f / (float)t->k, 1e-7);
                    for (int32_t u = 0; u < t->k; u++)
                        right += g[i].experts[j] == used[u];
                }
                all += t->k;
            }
        }
    cr_assert_gt(all, 10000);
    cr_assert(fabs(right / all - 0.7) < 0.02, "drawn recall %.4f", right / all);
    ec_trace_destroy(g1);
    ec_trace_destroy(g2);
    ec_trace_destroy(t);
}

/* eval --predictor hint scores guesses drawn with recall R at about R. */
Test(eval_real, hint_recall_matches_the_recall_the_guesses_were_drawn_with)
{
    const char *path = TU_SHARED_OR_SKIP("mixtral-8x7b-instruct/humaneval_2_routing.jsonl");
    ec_trace *t;
    cr_assert_eq(ec_trace_load(&path, 1, NULL, &t, NULL), EC_OK);
    const double R[] = {0.3, 0.6, 0.9};
    const char *names[] = {"hint"};
    const int32_t hz[] = {1, 2};
    for (size_t i = 0; i < 3; i++) {
        ec_trace *g;
        cr_assert_eq(ec_trace_draw_guesses(t, R[i], 2, 1, &g, NULL), EC_OK);
        ec_eval_opts o = {.predictors = names, .n_predictors = 1, .horizons = hz,
                          .n_horizons = 2, .resamples = 50};
        ec_eval_report *rep;
        ec_error err = {0};
        cr_assert_eq(ec_eval_run(g, NULL, &o, &rep, &err), EC_OK, "%s", err.message);
        for (size_t j = 0; j < rep->n_results; j++) {
            const ec_eval_result *x = &rep->results[j];
            size_t k2 = 0;
            while (rep->ks[k2] != 2)
                k2++;
            cr_log_info("R %.1f horizon %d: recall@2 %.4f (n %zu)", R[i], x->horizon,
                        x->recall_at_k[k2], x->n);
            cr_expect(fabs(x->recall_at_k[k2] - R[i]) <= 0.02, "R %.1f h %d: recall@2 %.4f",
                      R[i], x->horizon, x->recall_at_k[k2]);
            cr_expect_gt(x->coverage, 0.99);
        }
        ec_eval_report_destroy(rep);
        ec_trace_destroy(g);
    }
    ec_trace_destroy(t);
}

/* ---- what-if replays ------------------------------------------------------------------ */

static ec_sim_timing mixtral_int4_on(const char *hw)
{
    ec_model_profile mp;
    ec_hw_profile hp;
    cr_assert_eq(ec_model_profile_load(tu_profile_path("mixtral-8x7b"), "int4", &mp, NULL), EC_OK);
    cr_assert_eq(ec_hw_profile_load(tu_profile_path(hw), &hp, NULL), EC_OK);
    ec_sim_timing tm;
    ec_sim_timing_derive(&mp, &hp, &tm);
    return tm;
}

/* A replay of t carrying what-if guesses of the given recall (horizon 2,
 * seed 1; *g holds them) with a held-out `predictor` fitted behind them. */
static ec_sim *whatif_sim(const ec_trace *t, double recall, const char *predictor, ec_trace **g)
{
    cr_assert_eq(ec_trace_draw_guesses(t, recall, 2, 1, g, NULL), EC_OK);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(*g, 1, &s, NULL), EC_OK);
    cr_assert_eq(ec_sim_fit_heldout(s, predictor, NULL, NULL), EC_OK);
    return s;
}

/* Mixtral int4, 4 experts per layer, horizon 2, what-if guesses of recall
 * 0.3 .. 1.0 with the held-out temporal predictor behind them: on every
 * shipped machine the best policy (gated, predict) is never slower than lru. */
Test(whatif_real, the_best_policy_is_never_slower_than_lru_at_any_recall_from_0_3)
{
    const char *path = TU_SHARED_OR_SKIP("mixtral-8x7b-instruct/humaneval_2_routing.jsonl");
    ec_trace *t;
    cr_assert_eq(ec_trace_load(&path, 1, NULL, &t, NULL), EC_OK);
    const char *hws[] = {"rtx4090-pcie4", "a100-pcie4", "h100-pcie5", "gh200-c2c"};
    int checked = 0;
#ifdef EC_TEST_SANITIZED
    /* under the sanitizers the sweep checks memory: two recalls */
    const int r_step = 7;
#else
    const int r_step = 1;
#endif
    for (int ri = 3; ri <= 10; ri += r_step) {
        ec_trace *g;
        ec_sim *s = whatif_sim(t, ri / 10.0, "temporal", &g);
        for (size_t h = 0; h < 4; h++) {
            ec_sim_timing tm = mixtral_int4_on(hws[h]);
            ec_sim_result lru = tu_sim_run(s, EC_POLICY_LRU, 4, 0, 1, &tm);
            ec_sim_result gated = tu_sim_run(s, EC_POLICY_GATED, 4, 0, 2, &tm);
            ec_sim_result pred = tu_sim_run(s, EC_POLICY_PREDICT, 4, 0, 2, &tm);
            double best = fmin(gated.tpot_ms, pred.tpot_ms);
            cr_expect_leq(best, lru.tpot_ms, "R %.1f %s: best %.4f > lru %.4f", ri / 10.0,
                          hws[h], best, lru.tpot_ms);
            cr_expect_leq(gated.tpot_ms, lru.tpot_ms, "R %.1f %s: gated %.4f > lru %.4f",
                          ri / 10.0, hws[h], gated.tpot_ms, lru.tpot_ms);
            checked++;
            ec_sim_result_clear(&lru);
            ec_sim_result_clear(&gated);
            ec_sim_result_clear(&pred);
        }
        ec_sim_destroy(s);
        ec_trace_destroy(g);
    }
    cr_assert_eq(checked, 4 * (7 / r_step + 1));
    ec_trace_destroy(t);
}

Test(whatif_real, recall_0_9_at_horizon_2_on_gh200_closes_0_30_of_the_lru_oracle_gap)
{
    const char *path = TU_SHARED_OR_SKIP("mixtral-8x7b-instruct/humaneval_2_routing.jsonl");
    ec_trace *t, *g;
    cr_assert_eq(ec_trace_load(&path, 1, NULL, &t, NULL), EC_OK);
    ec_sim *s = whatif_sim(t, 0.9, "temporal", &g);
    ec_sim_timing tm = mixtral_int4_on("gh200-c2c");
    ec_sim_result lru = tu_sim_run(s, EC_POLICY_LRU, 4, 0, 1, &tm);
    ec_sim_result orc = tu_sim_run(s, EC_POLICY_ORACLE, 4, 0, 2, &tm);
    ec_sim_result gated = tu_sim_run(s, EC_POLICY_GATED, 4, 0, 2, &tm);
    double gap = (lru.tpot_ms - gated.tpot_ms) / (lru.tpot_ms - orc.tpot_ms);
    cr_log_info("gh200 int4 cache 4, R 0.9 h 2: lru %.3f gated %.3f oracle %.3f: gap closed %.3f",
                lru.tpot_ms, gated.tpot_ms, orc.tpot_ms, gap);
    cr_assert_geq(gap, 0.30, "gap closed %.3f", gap);
    ec_sim_result_clear(&lru);
    ec_sim_result_clear(&orc);
    ec_sim_result_clear(&gated);
    ec_sim_destroy(s);
    ec_trace_destroy(g);
    ec_trace_destroy(t);
}

/* Right guesses never make hybrid slower than it is without them: its
 * prefetch gate prices a prefetch against running the miss on the host
 * and against the link's queue (on PCIe a copy takes 3-4x a host run, and
 * trusting every right guess once made hybrid 2-3x slower there). */
Test(whatif_real, right_guesses_never_slow_hybrid_down)
{
    const char *path = TU_SHARED_OR_SKIP("mixtral-8x7b-instruct/humaneval_2_routing.jsonl");
    ec_trace *t;
    cr_assert_eq(ec_trace_load(&path, 1, NULL, &t, NULL), EC_OK);
    const char *hws[] = {"rtx4090-pcie4", "a100-pcie4", "h100-pcie5", "gh200-c2c"};
    ec_sim *s0;
    cr_assert_eq(ec_sim_create(t, 1, &s0, NULL), EC_OK);
    cr_assert_eq(ec_sim_fit_heldout(s0, "temporal", NULL, NULL), EC_OK);
    for (int ri = 9; ri <= 10; ri++) {
        ec_trace *g;
        ec_sim *s = whatif_sim(t, ri / 10.0, "temporal", &g);
        for (size_t h = 0; h < 4; h++) {
            ec_sim_timing tm = mixtral_int4_on(hws[h]);
            cr_assert_gt(tm.host_lanes, 0, "%s has host facts", hws[h]);
            ec_sim_result without = tu_sim_run(s0, EC_POLICY_HYBRID, 4, 0, 2, &tm);
            ec_sim_result with = tu_sim_run(s, EC_POLICY_HYBRID, 4, 0, 2, &tm);
            cr_log_info("hybrid %s R %.1f: %.3f ms with guesses, %.3f without", hws[h],
                        ri / 10.0, with.tpot_ms, without.tpot_ms);
            cr_expect_leq(with.tpot_ms, without.tpot_ms * 1.005,
                          "R %.1f %s: hybrid %.4f with right guesses, %.4f without", ri / 10.0,
                          hws[h], with.tpot_ms, without.tpot_ms);
            ec_sim_result_clear(&without);
            ec_sim_result_clear(&with);
        }
        ec_sim_destroy(s);
        ec_trace_destroy(g);
    }
    ec_sim_destroy(s0);
    ec_trace_destroy(t);
}

/* Guesses that are always wrong (recall 0) never make gated slower than it
 * is with no guesses at all beyond a few early prefetches: it stops trusting
 * them once the stream has scored them. */
Test(whatif_real, wrong_guesses_are_not_trusted)
{
    const char *path = TU_SHARED_OR_SKIP("mixtral-8x7b-instruct/humaneval_2_routing.jsonl");
    ec_trace *t, *g;
    cr_assert_eq(ec_trace_load(&path, 1, NULL, &t, NULL), EC_OK);
    ec_sim *s = whatif_sim(t, 0.0, "hint", &g);
    ec_sim_timing tm = mixtral_int4_on("gh200-c2c");
    ec_sim_result lru = tu_sim_run(s, EC_POLICY_LRU, 4, 0, 1, &tm);
    ec_sim_result gated = tu_sim_run(s, EC_POLICY_GATED, 4, 0, 2, &tm);
    cr_assert_leq(gated.tpot_ms, lru.tpot_ms);
    cr_assert_leq(gated.stats.prefetches, 10, "%lld prefetches on guesses always wrong",
                  (long long)gated.stats.prefetches);
    ec_sim_result_clear(&lru);
    ec_sim_result_clear(&gated);
    ec_sim_destroy(s);
    ec_trace_destroy(g);
    ec_trace_destroy(t);
}

/* ---- the loader's hint API ------------------------------------------------------------ */

#define HINT_TEST(name)                                                                            \
    static void name##_case(const char *backend);                                                  \
    Test(hints_cpu, name) { name##_case("cpu"); }                                                  \
    Test(hints_cuda, name) { name##_case("cuda"); }                                                \
    static void name##_case(const char *backend)

typedef struct rig {
    ec_backend *b;
    ec_store *s;
    ec_loader *l;
    ec_stream *cs;
    ec_predictor *p;
} rig;

static void rig_open(rig *r, const char *backend, ec_policy_kind kind, const char *record)
{
    memset(r, 0, sizeof *r);
    ec_error err = {0};
    ec_status s = ec_backend_create(backend, NULL, &r->b, &err);
    if (s == EC_ERR_NO_DEVICE || s == EC_ERR_UNSUPPORTED)
        cr_skip_test("backend %s unavailable here: %s", backend, err.message);
    cr_assert_eq(s, EC_OK, "%s", err.message);
    cr_assert_eq(ec_store_create(r->b, 4, 8, 256, &r->s, &err), EC_OK, "%s", err.message);
    cr_assert_eq(ec_store_fill_synthetic(r->s, 7, 1), EC_OK);
    cr_assert_eq(ec_stream_create(r->b, &r->cs), EC_OK);
    cr_assert_eq(ec_predictor_create("hint", NULL, &r->p, NULL), EC_OK); /* unfitted */
    ec_loader_config c;
    ec_loader_config_default(&c);
    c.cache_per_layer = 4;
    c.policy.kind = kind;
    c.policy.horizon = 1;
    c.policy.transfer_ms = 1.0;
    c.policy.compute_ms = 1.0;
    c.record_path = record;
    cr_assert_eq(ec_loader_create(r->b, r->s, r->p, &c, &r->l, &err), EC_OK, "%s", err.message);
}

static void rig_close(rig *r)
{
    cr_assert_eq(ec_loader_finish(r->l), EC_OK, "%s", ec_loader_errmsg(r->l));
    ec_loader_destroy(r->l);
    ec_predictor_destroy(r->p);
    ec_stream_destroy(r->cs);
    ec_store_destroy(r->s);
    ec_backend_destroy(r->b);
}

/* Observes layer with experts {a, b}, acquires and releases them. */
static void rig_layer(rig *r, int32_t layer, int16_t a, int16_t b)
{
    int16_t ex[2] = {a, b};
    cr_assert_eq(ec_loader_observe(r->l, layer, ex), EC_OK, "%s", ec_loader_errmsg(r->l));
    for (int i = 0; i < 2; i++) {
        void *w;
        cr_assert_eq(ec_loader_acquire(r->l, layer, ex[i], r->cs, &w), EC_OK, "%s",
                     ec_loader_errmsg(r->l));
        cr_assert_eq(ec_loader_release(r->l, layer, ex[i], r->cs), EC_OK);
    }
}

HINT_TEST(a_hint_after_observe_prefetches_the_next_layer_at_once)
{
    rig r;
    rig_open(&r, backend, EC_POLICY_PREDICT, NULL);
    rig_layer(&r, 0, 0, 1);
    ec_loader_stats st;
    ec_loader_stats_get(r.l, &st);
    int64_t before = st.prefetch_copies;
    int16_t g[2] = {5, 6};
    float p[2] = {0.5f, 0.5f};
    cr_assert_eq(ec_loader_hint(r.l, 1, g, p, 2), EC_OK, "%s", ec_loader_errmsg(r.l));
    const ec_cache *c = ec_loader_cache(r.l);
    cr_assert_geq(ec_cache_find(c, 1, 5), 0, "the guess for layer 1 is on its way");
    cr_assert_geq(ec_cache_find(c, 1, 6), 0);
    cr_assert_eq(ec_loader_sync(r.l), EC_OK);
    rig_layer(&r, 1, 5, 6);
    cr_assert_eq(ec_loader_sync(r.l), EC_OK);
    ec_loader_stats_get(r.l, &st);
    cr_assert_geq(st.prefetch_copies - before, 2);
    cr_assert_eq(st.cache.misses, 2, "only layer 0 missed");
    cr_assert_eq(st.hints, 1);
    int16_t bad[2] = {5, 9};
    cr_assert_eq(ec_loader_hint(r.l, 1, bad, NULL, 2), EC_ERR_INVALID);
    cr_assert_not_null(strstr(ec_loader_errmsg(r.l), "hint"));
    rig_close(&r);
}

HINT_TEST(gated_trusts_hints_once_they_prove_right)
{
    /* layer l of token t routes to {(t + 2l) % 8, (t + 2l + 1) % 8}: a new
     * pair every token, so lru misses everything; the runtime guesses the
     * next layer right every time. gated starts by not trusting the hints
     * and ends up prefetching nearly everything. */
    rig r;
    rig_open(&r, backend, EC_POLICY_GATED, NULL);
    int tokens = 24;
    for (int t = 0; t < tokens; t++)
        for (int32_t l = 0; l < 4; l++) {
            rig_layer(&r, l, (int16_t)((t + 2 * l) % 8), (int16_t)((t + 2 * l + 1) % 8));
            int32_t nl = (l + 1) % 4, nt = t + (l == 3);
            int16_t g[2] = {(int16_t)((nt + 2 * nl) % 8), (int16_t)((nt + 2 * nl + 1) % 8)};
            cr_assert_eq(ec_loader_hint(r.l, 1, g, NULL, 2), EC_OK, "%s", ec_loader_errmsg(r.l));
            cr_assert_eq(ec_loader_sync(r.l), EC_OK);
        }
    ec_loader_stats st;
    ec_loader_stats_get(r.l, &st);
    cr_log_info("gated with right hints: %lld misses of %lld uses, %lld prefetches",
                (long long)st.cache.misses, (long long)st.cache.acquires,
                (long long)st.prefetch_copies);
    cr_assert_gt(st.prefetch_copies, 0);
    cr_assert_lt(st.cache.misses, st.cache.acquires / 4, "%lld misses of %lld",
                 (long long)st.cache.misses, (long long)st.cache.acquires);
    cr_assert_geq(st.cache.misses, 4, "the first guesses are not trusted");
    rig_close(&r);
}

HINT_TEST(hybrid_prefetches_right_hints_instead_of_running_misses_on_the_host)
{
    /* The routing of gated_trusts_hints_once_they_prove_right, with the
     * host faster than a copy: without a prefetch every miss runs on the
     * host. Right hints end up prefetched in time, so most uses are device
     * hits; every use is handed out exactly once, on the device or the host. */
    rig r;
    rig_open(&r, backend, EC_POLICY_HYBRID, NULL);
    ec_loader_destroy(r.l); /* again, with the host's costs */
    ec_loader_config c;
    ec_loader_config_default(&c);
    c.cache_per_layer = 4;
    c.policy.kind = EC_POLICY_HYBRID;
    c.policy.horizon = 1;
    c.policy.transfer_ms = 1.0;
    c.policy.compute_ms = 1.0;
    c.policy.host_ms = 0.5;
    c.policy.host_act_ms = 0.05;
    ec_error err = {0};
    cr_assert_eq(ec_loader_create(r.b, r.s, r.p, &c, &r.l, &err), EC_OK, "%s", err.message);
    int tokens = 24;
    int64_t on_device = 0, on_host = 0;
    for (int t = 0; t < tokens; t++)
        for (int32_t l = 0; l < 4; l++) {
            int16_t ex[2] = {(int16_t)((t + 2 * l) % 8), (int16_t)((t + 2 * l + 1) % 8)};
            cr_assert_eq(ec_loader_observe(r.l, l, ex), EC_OK, "%s", ec_loader_errmsg(r.l));
            for (int i = 0; i < 2; i++) {
                ec_expert_ref ref;
                cr_assert_eq(ec_loader_acquire_where(r.l, l, ex[i], r.cs, &ref), EC_OK, "%s",
                             ec_loader_errmsg(r.l));
                if (ref.where == EC_WHERE_HOST) {
                    cr_assert_not_null(ref.host);
                    cr_assert_eq(ref.host, ec_store_expert(r.s, l, ex[i]));
                    on_host++;
                } else {
                    cr_assert_not_null(ref.dev);
                    on_device++;
                }
                cr_assert_eq(ec_loader_release(r.l, l, ex[i], r.cs), EC_OK);
            }
            int32_t nl = (l + 1) % 4, nt = t + (l == 3);
            int16_t g[2] = {(int16_t)((nt + 2 * nl) % 8), (int16_t)((nt + 2 * nl + 1) % 8)};
            cr_assert_eq(ec_loader_hint(r.l, 1, g, NULL, 2), EC_OK, "%s", ec_loader_errmsg(r.l));
            cr_assert_eq(ec_loader_sync(r.l), EC_OK);
        }
    ec_loader_stats st;
    ec_loader_stats_get(r.l, &st);
    cr_log_info("hybrid with right hints: %lld on the device, %lld on the host, %lld prefetches",
                (long long)on_device, (long long)on_host, (long long)st.prefetch_copies);
    cr_assert_eq(on_device + on_host, (int64_t)tokens * 4 * 2, "every use handed out once");
    cr_assert_eq(st.host_acquires, on_host);
    cr_assert_eq(st.hints, tokens * 4);
    cr_assert_gt(st.prefetch_copies, 0);
    cr_assert_gt(on_host, 0, "the first misses, before the hints are trusted, run on the host");
    cr_assert_lt(on_host, (int64_t)tokens * 4 * 2 / 4, "%lld of %d uses on the host",
                 (long long)on_host, tokens * 4 * 2);
    rig_close(&r);
}

HINT_TEST(the_recording_carries_the_hints_as_guesses)
{
    const char *path = tu_write(tu_tmpdir(), "rec.jsonl", "");
    rig r;
    rig_open(&r, backend, EC_POLICY_LRU, path);
    int16_t g[2] = {3, 4}, g2[1] = {7};
    float p[2] = {0.75f, 0.25f};
    rig_layer(&r, 0, 0, 1);
    cr_assert_eq(ec_loader_hint(r.l, 1, g, p, 2), EC_OK);
    cr_assert_eq(ec_loader_hint(r.l, 2, g2, NULL, 1), EC_OK);
    cr_assert_eq(ec_loader_hint(r.l, 1, g, NULL, 2), EC_OK, "replaces the first for ahead 1");
    rig_layer(&r, 1, 3, 4);
    rig_close(&r);
    ec_trace *t;
    ec_error err = {0};
    cr_assert_eq(ec_trace_load(&path, 1, NULL, &t, &err), EC_OK, "%s", err.message);
    size_t n;
    const ec_guess *gs = ec_trace_guesses(t, 0, 0, &n);
    cr_assert_eq(n, 2);
    cr_assert_eq(gs[0].ahead, 1);
    cr_assert_eq(gs[0].experts[1], 4);
    cr_assert_float_eq(gs[0].probs[0], 0.5f, 1e-7);
    cr_assert_eq(gs[1].ahead, 2);
    cr_assert_eq(gs[1].experts[0], 7);
    cr_assert_null(ec_trace_guesses(t, 0, 1, &n));
    ec_trace_destroy(t);
}

/* ---- the command line ----------------------------------------------------------------- */

Test(cli, what_if_rows_are_labelled_and_the_json_gives_the_break_even_recall)
{
    const char *d = tu_tmpdir();
    cr_assert_eq(tu_cli(NULL, NULL,
                        "synth -o %s/s.jsonl --sequences 3 --tokens 24 --seed 2 --token-locality 0",
                        d),
                 0);
    char *out = NULL, *err = NULL;
    int rc = tu_cli(&out, &err,
                    "simulate %s/s.jsonl --model mixtral-8x7b-int4 --hardware gh200-c2c "
                    "--cache-experts 4 --horizon 2 --policy lru,gated,oracle "
                    "--what-if-recall 0.2,1 --json %s/w.json",
                    d, d);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_not_null(strstr(out, "WHAT-IF"), "%s", out);
    cr_assert_not_null(strstr(out, "what-if R=0.20"), "%s", out);
    cr_assert_not_null(strstr(out, "break-even recall at cache 4/layer"), "%s", out);
    char p[512];
    snprintf(p, sizeof p, "%s/w.json", d);
    char *json = tu_read(p, NULL);
    cr_assert_not_null(json);
    cr_assert_not_null(strstr(json, "\"break_even_recall\": [{\"model\": \"mixtral-8x7b\""),
                       "%s", json);
    cr_assert_not_null(strstr(json, "\"what_if\": {\"note\""), "%s", json);
    int rows = tu_count(json, "\"policy\":"),
        labelled = tu_count(json, "\"label\": \"what-if\", \"what_if_recall\": ");
    cr_assert_eq(rows, 6, "lru, gated, oracle x 2 recalls");
    cr_assert_eq(labelled, rows, "every row is labelled what-if with its recall");
    free(json);
    free(out);
    free(err);
    cr_assert_eq(tu_cli(NULL, NULL,
                        "simulate %s/s.jsonl --model mixtral-8x7b-int4 --hardware gh200-c2c "
                        "--what-if-recall 1.5",
                        d),
                 2);
}

Test(cli, guesses_then_eval_and_simulate_with_the_hint_predictor)
{
    const char *d = tu_tmpdir();
    cr_assert_eq(tu_cli(NULL, NULL, "synth -o %s/s.jsonl --sequences 3 --tokens 24 --seed 4", d),
                 0);
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_cli(NULL, &err, "guesses %s/s.jsonl --recall 1 --ahead 2 -o %s/g.jsonl", d,
                        d),
                 0, "%s", err);
    free(err);
    cr_assert_eq(tu_cli(&out, NULL, "eval %s/g.jsonl -p hint --horizon 1,2 --resamples 20", d),
                 0);
    cr_assert_not_null(strstr(out, "hint         1"), "%s", out);
    cr_assert_not_null(strstr(out, "1.000  1.000"), "recall 1 guesses score 1: %s", out);
    free(out);
    out = NULL;
    cr_assert_eq(tu_cli(&out, NULL,
                        "simulate %s/g.jsonl --model mixtral-8x7b-int4 --hardware gh200-c2c "
                        "--cache-experts 4 --horizon 2 --policy lru,predict --predictor hint",
                        d),
                 0);
    cr_assert_not_null(strstr(out, "predictor: 'hint'"), "%s", out);
    free(out);
    cr_assert_eq(tu_cli(NULL, NULL, "guesses %s/s.jsonl -o %s/x.jsonl", d, d), 2,
                 "--recall is required");
}
