/* The reuse model (fit, held-out evaluation) and gated's eviction by it. */
#include "testutil.h"

#include "expertcast/sim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A one-layer trace where recency is the wrong guide: expert 0 comes back
 * every third token, experts 1..5 scan in between. With 2 slots, LRU drops
 * expert 0 one token before it is needed; Belady keeps it. */
static char scan_path[4096]; /* the file the last scan_trace wrote */

/* Writes a trace of n_seqs x n_tok tokens x L layers whose step (s, t, l)
 * uses the one expert uses[(s * n_tok + t) * L + l], as `name` in a fresh
 * folder, and loads it; *path_out (if not NULL) names the file. */
static ec_trace *load_uses(const char *name, int n_seqs, int n_tok, int L, int E, const int *uses,
                           const char **path_out)
{
    size_t cap = (size_t)n_seqs * (size_t)n_tok * (size_t)L * 96 + 1, len = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    for (int s = 0, i = 0; s < n_seqs; s++)
        for (int t = 0; t < n_tok; t++)
            for (int l = 0; l < L; l++, i++)
                len += (size_t)snprintf(text + len, cap - len,
                                        "{\"problem_id\": %d, \"token_idx\": %d, \"layer\": %d, "
                                        "\"experts\": [%d]}\n",
                                        s, t, l, uses[i]);
    const char *path = tu_write(tu_tmpdir(), name, text);
    free(text);
    if (path_out)
        *path_out = path;
    ec_trace_opts o = {.n_layers = L, .n_experts = E};
    ec_trace *t;
    cr_assert_eq(ec_trace_load(&path, 1, &o, &t, NULL), EC_OK);
    return t;
}

static ec_trace *scan_trace(int n_seqs, int n_tok)
{
    int *u = malloc((size_t)n_seqs * (size_t)n_tok * sizeof *u);
    cr_assert_not_null(u);
    for (int s = 0, n = 0; s < n_seqs; s++) {
        int scan = s; /* each sequence starts the scan elsewhere */
        for (int t = 0; t < n_tok; t++)
            u[n++] = t % 3 == 0 ? 0 : 1 + scan++ % 5;
    }
    const char *path;
    ec_trace *t = load_uses("scan.jsonl", n_seqs, n_tok, 1, 6, u, &path);
    snprintf(scan_path, sizeof scan_path, "%s", path);
    free(u);
    return t;
}

static ec_sim_timing slow_link(void)
{
    ec_sim_timing tm = {.transfer_ms = 1.0, .engines = 1, .compute_fixed_ms = 0.1,
                        .compute_per_expert_ms = 0.01, .router_ms = 0.01, .expert_bytes = 1e6};
    return tm;
}

Test(reuse, gated_keeps_the_expert_that_comes_back_where_lru_drops_it)
{
    ec_trace *t = scan_trace(4, 96);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    cr_assert_eq(ec_sim_fit_heldout(s, "prior", NULL, NULL), EC_OK);
    ec_sim_timing tm = slow_link();
    ec_sim_result lru = tu_sim_run(s, EC_POLICY_LRU, 2, 0, 1, &tm);
    ec_sim_result g = tu_sim_run(s, EC_POLICY_GATED, 2, 0, 1, &tm);
    /* lru reloads expert 0 at every one of its returns; gated keeps it */
    cr_expect_lt(g.stats.loads, lru.stats.loads * 3 / 4, "gated %lld loads, lru %lld",
                 (long long)g.stats.loads, (long long)lru.stats.loads);
    cr_expect_lt(g.tpot_ms, lru.tpot_ms);
    ec_sim_result_clear(&lru);
    ec_sim_result_clear(&g);
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

/* ---- what-if eviction (ec_sim_set_whatif_evict) ----------------------- */

/* Belady's MIN on one layer: the fewest loads a cache of `slots` makes on
 * the use sequence u[0..n) (one expert per step). */
static long long belady_loads(const int *u, int n, int slots)
{
    int cached[8], nc = 0;
    long long loads = 0;
    for (int i = 0; i < n; i++) {
        int hit = 0;
        for (int j = 0; j < nc; j++)
            hit |= cached[j] == u[i];
        if (hit)
            continue;
        loads++;
        if (nc < slots) {
            cached[nc++] = u[i];
            continue;
        }
        int victim = 0, far = -1;
        for (int j = 0; j < nc; j++) {
            int next = n;
            for (int k = i + 1; k < n; k++)
                if (u[k] == cached[j]) {
                    next = k;
                    break;
                }
            if (next > far)
                far = next, victim = j;
        }
        cached[victim] = u[i];
    }
    return loads;
}

/* One layer of 6 experts, one per token, drawn from a fixed generator with
 * a skew (expert e about twice as likely as e + 1): neither recency nor
 * the model can tell the victims apart as the future does. */
static ec_trace *random_trace(int n_seqs, int n_tok, int *u)
{
    uint32_t x = 12345;
    for (int n = 0; n < n_seqs * n_tok; n++) {
        x = x * 1664525u + 1013904223u;
        uint32_t r = (x >> 8) % 63; /* 32, 16, 8, 4, 2, 1 of 63 */
        u[n] = r < 32 ? 0 : r < 48 ? 1 : r < 56 ? 2 : r < 60 ? 3 : r < 62 ? 4 : 5;
    }
    return load_uses("random.jsonl", n_seqs, n_tok, 1, 6, u, NULL);
}

Test(whatif_evict, belady_victims_load_what_belady_loads_and_a_window_lies_between)
{
    enum { SEQS = 4, TOK = 256 };
    int u[SEQS * TOK];
    ec_trace *t = random_trace(SEQS, TOK, u);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    cr_assert_eq(ec_sim_fit_heldout(s, "prior", NULL, NULL), EC_OK);
    ec_sim_timing tm = slow_link();
    ec_sim_result g = tu_sim_run(s, EC_POLICY_GATED, 3, 0, 1, &tm);
    ec_sim_result lru0 = tu_sim_run(s, EC_POLICY_LRU, 3, 0, 1, &tm);
    cr_assert_eq(ec_sim_set_whatif_evict(s, EC_WHATIF_EVICT_ALL, NULL), EC_OK);
    ec_sim_result all = tu_sim_run(s, EC_POLICY_GATED, 3, 0, 1, &tm);
    ec_sim_result lru = tu_sim_run(s, EC_POLICY_LRU, 3, 0, 1, &tm); /* other kinds: unchanged */
    cr_assert_eq(ec_sim_set_whatif_evict(s, 1, NULL), EC_OK);
    ec_sim_result one = tu_sim_run(s, EC_POLICY_GATED, 3, 0, 1, &tm);
    cr_assert_eq(ec_sim_set_whatif_evict(s, 0, NULL), EC_OK);
    ec_sim_result again = tu_sim_run(s, EC_POLICY_GATED, 3, 0, 1, &tm);
    long long min = belady_loads(u, SEQS * TOK, 3);
    cr_log_info("loads: lru %lld, gated %lld, knows 1 token %lld, all %lld, Belady %lld",
                (long long)lru.stats.loads, (long long)g.stats.loads, (long long)one.stats.loads,
                (long long)all.stats.loads, min);
    cr_expect_gt(g.stats.loads, min, "the trace must leave gated room to gain");
    cr_expect_eq(all.stats.prefetches, 0, "gated's gate prefetched: the count below is not MIN");
    cr_expect_eq(all.stats.loads, min, "Belady's victims: %lld loads, MIN %lld",
                 (long long)all.stats.loads, min);
    cr_expect_lt(one.stats.loads, g.stats.loads, "knowing the next token must help here");
    cr_expect_gt(one.stats.loads, all.stats.loads, "... and knowing all must help more");
    cr_expect_eq(lru.stats.loads, lru0.stats.loads, "lru does not take the what-if");
    cr_expect_eq(again.stats.loads, g.stats.loads, "0 turns the what-if off");
    cr_expect_eq(ec_sim_set_whatif_evict(s, -1, NULL), EC_ERR_INVALID);
    ec_sim_result *rs[] = {&g, &all, &lru, &one, &again, &lru0};
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++)
        ec_sim_result_clear(rs[i]);
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

static int64_t never_used(void *ctx, int64_t from, int32_t layer, int32_t expert)
{
    (void)ctx, (void)from, (void)layer, (void)expert;
    return INT64_MAX;
}

static int32_t no_experts(void *ctx, int64_t step, int32_t *layer, int16_t *experts)
{
    (void)ctx, (void)step, (void)layer, (void)experts;
    return 0;
}

Test(whatif_evict, needs_gated_or_hybrid_and_the_future)
{
    ec_cache *c;
    ec_queue *q;
    ec_policy *lru, *gated, *blind;
    cr_assert_eq(ec_cache_create(2, 6, 2, 0, &c), EC_OK);
    cr_assert_eq(ec_queue_create(ec_cache_n_slots(c), &q), EC_OK);
    ec_predictor *pr;
    cr_assert_eq(ec_predictor_create("prior", NULL, &pr, NULL), EC_OK);
    ec_future fut = {never_used, no_experts, NULL};
    ec_policy_config cfg = {.kind = EC_POLICY_LRU};
    cr_assert_eq(ec_policy_create(&cfg, c, q, NULL, &fut, &lru, NULL), EC_OK);
    cfg.kind = EC_POLICY_GATED;
    cr_assert_eq(ec_policy_create(&cfg, c, q, pr, &fut, &gated, NULL), EC_OK);
    cr_assert_eq(ec_policy_create(&cfg, c, q, pr, NULL, &blind, NULL), EC_OK);
    cr_expect_eq(ec_policy_set_whatif_evict(lru, 1), EC_ERR_INVALID);
    cr_expect_eq(ec_policy_set_whatif_evict(blind, 1), EC_ERR_INVALID, "no future to know");
    cr_expect_eq(ec_policy_set_whatif_evict(blind, 0), EC_OK);
    cr_expect_eq(ec_policy_set_whatif_evict(gated, -1), EC_ERR_INVALID);
    cr_expect_eq(ec_policy_set_whatif_evict(gated, 2), EC_OK);
    cr_expect_eq(ec_policy_set_whatif_evict(gated, EC_WHATIF_EVICT_ALL), EC_OK);
    cr_expect_eq(ec_policy_set_whatif_evict(NULL, 1), EC_ERR_INVALID);
    ec_policy_destroy(lru);
    ec_policy_destroy(gated);
    ec_policy_destroy(blind);
    ec_predictor_destroy(pr);
    ec_queue_destroy(q);
    ec_cache_destroy(c);
}

Test(whatif_evict, simulate_labels_its_rows_in_table_json_and_csv)
{
    const char *d = tu_tmpdir();
    cr_assert_eq(tu_cli(NULL, NULL, "synth --layers 32 --experts 8 --sequences 3 --tokens 24 -o "
                                    "%s/w.jsonl",
                        d),
                 0);
    char *out = NULL, *err = NULL;
    const char *common = "--model mixtral-8x7b-int4 --hardware rtx4090-pcie4 --cache-experts 3 "
                         "--policy gated,hybrid --horizon 2";
    cr_assert_eq(tu_cli(&out, &err, "simulate %s/w.jsonl %s --what-if-evict 1,all", d, common), 0,
                 "%s", err);
    cr_expect_not_null(strstr(out, "WHAT-IF rows 'what-if evict N'"), "%s", out);
    cr_expect_not_null(strstr(out, "what-if evict 1\n"), "%s", out);
    cr_expect_not_null(strstr(out, "what-if evict all\n"), "%s", out);
    free(out);
    free(err);
    cr_assert_eq(tu_cli(&out, &err, "simulate %s/w.jsonl %s --what-if-evict 2,all --json -", d,
                        common),
                 0, "%s", err);
    cr_expect_not_null(strstr(out, "\"what_if_evict\": {\"note\": "), "%s", out);
    int rows = tu_count(out, "\"policy\":"),
        two = tu_count(out, "\"label\": \"what-if\", \"what_if_evict_tokens\": 2,"),
        all = tu_count(out, "\"label\": \"what-if\", \"what_if_evict_tokens\": \"all\",");
    cr_expect_eq(rows, 6, "gated and hybrid, each plain and twice what-if: %d rows", rows);
    cr_expect_eq(two, 2, "gated and hybrid knowing 2 tokens");
    cr_expect_eq(all, 2, "gated and hybrid knowing all");
    free(out);
    free(err);
    cr_assert_eq(tu_cli(&out, &err, "simulate %s/w.jsonl %s --what-if-evict 4 --csv -", d, common),
                 0, "%s", err);
    cr_expect_not_null(strstr(out, ",what_if_recall,what_if_evict_tokens\n"), "%s", out);
    cr_expect_not_null(strstr(out, ",4\n"), "%s", out);
    free(out);
    free(err);
    /* with drawn guesses: perfect prefetch guesses and eviction that knows */
    cr_assert_eq(tu_cli(&out, &err, "simulate %s/w.jsonl %s --what-if-evict 1 --what-if-recall 1",
                        d, common),
                 0, "%s", err);
    cr_expect_not_null(strstr(out, "what-if R=1.00 evict 1\n"), "%s", out);
    cr_expect_not_null(strstr(out, "what-if R=1.00\n"), "%s", out);
    free(out);
    free(err);
    /* refused: a window of 0, a word other than all, an empty list */
    const char *bad[] = {"--what-if-evict 0", "--what-if-evict most", "--what-if-evict ,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(tu_cli(NULL, &err, "simulate %s/w.jsonl %s %s", d, common, bad[i]), 2,
                     "%s", bad[i]);
        cr_expect(strstr(err, "--what-if") != NULL, "%s: %s", bad[i], err);
        free(err);
    }
}

/* Beyond 8 sequences the evaluation fits 8 contiguous folds (linear cost),
 * and still replays every sequence exactly once. */
Test(reuse, held_out_evaluation_fits_at_most_eight_folds_and_replays_each_sequence_once)
{
    ec_trace *t = scan_trace(12, 24);
    ec_reuse_eval_report r;
    ec_error err = {0};
    cr_assert_eq(ec_reuse_eval(t, "prior", NULL, &r, &err), EC_OK, "%s", err.message);
    cr_expect_eq(r.n_seqs, 12);
    cr_expect_eq(r.n_folds, EC_REUSE_EVAL_MAX_FOLDS);
    for (int v = 0; v < EC_REUSE_N_VARIANTS; v++)
        for (int h = 0; h < EC_REUSE_N_HORIZONS; h++)
            cr_expect_eq(r.v[v].n[h], 12 * 6 * (24 - r.horizons[h]), "%s n<=%d",
                         r.v[v].variant, r.horizons[h]);
    ec_trace_destroy(t);
    t = scan_trace(3, 24);
    cr_assert_eq(ec_reuse_eval(t, NULL, NULL, &r, &err), EC_OK, "%s", err.message);
    cr_expect_eq(r.n_folds, 3, "up to 8 sequences: leave one out");
    ec_trace_destroy(t);
}

Test(reuse, held_out_evaluation_ranks_the_returning_expert_above_chance)
{
    ec_trace *t = scan_trace(4, 96);
    ec_reuse_eval_report r;
    ec_error err = {0};
    cr_assert_eq(ec_reuse_eval(t, "prior", NULL, &r, &err), EC_OK, "%s", err.message);
    cr_expect_eq(r.n_seqs, 4);
    cr_expect_eq(r.n_tokens, 4 * 96);
    for (int v = 0; v < EC_REUSE_N_VARIANTS; v++)
        for (int h = 0; h < EC_REUSE_N_HORIZONS; h++) {
            /* 6 experts per token; outcomes known for tokens n .. 95 */
            cr_expect_eq(r.v[v].n[h], 4 * 6 * (96 - r.horizons[h]), "%s n<=%d", r.v[v].variant,
                         r.horizons[h]);
            cr_expect(r.v[v].brier_lo[h] <= r.v[v].brier_hi[h]);
            cr_expect(isnan(r.v[v].auc[h]) || r.v[v].auc_lo[h] <= r.v[v].auc_hi[h]);
        }
    /* "full" (with uses) separates expert 0 from the scan at n = 2: it
     * comes back within 3 tokens always, a scanned expert after 5 */
    const ec_reuse_eval_result *full = &r.v[2];
    double b = full->base_rate[1];
    cr_expect_gt(full->auc[1], 0.8, "AUC %.3f", full->auc[1]);
    cr_expect_lt(full->brier[1], b * (1 - b), "Brier %.4f vs constant %.4f", full->brier[1],
                 b * (1 - b));
    ec_trace_destroy(t);
}

Test(reuse, evaluation_needs_two_sequences_and_fit_checks_the_shape)
{
    ec_trace *t = scan_trace(1, 24);
    ec_reuse_eval_report r;
    ec_error err = {0};
    cr_expect_eq(ec_reuse_eval(t, "prior", NULL, &r, &err), EC_ERR_INVALID);
    cr_expect(strstr(err.message, "2 sequences") != NULL, "%s", err.message);
    ec_reuse_model *m;
    cr_assert_eq(ec_reuse_model_create(2, 6, 1, &m), EC_OK);
    cr_expect_eq(ec_reuse_model_fit(m, t, NULL, NULL, NULL), EC_ERR_INVALID);
    ec_reuse_model_destroy(m);
    cr_assert_eq(ec_reuse_model_create(1, 6, 1, &m), EC_OK);
    cr_expect_eq(ec_reuse_model_fit(m, t, NULL, NULL, NULL), EC_OK);
    cr_expect_eq(ec_reuse_model_n_cases(m), 6 * (24 - 1)); /* horizon 1 outcomes */
    cr_expect_eq(ec_reuse_model_create(1, 6, 7, &m), EC_ERR_INVALID);
    ec_trace_destroy(t);
}

Test(reuse, policy_takes_a_model_of_its_own_shape_only)
{
    ec_cache *c;
    ec_queue *q;
    ec_policy *p;
    cr_assert_eq(ec_cache_create(2, 6, 2, 0, &c), EC_OK);
    cr_assert_eq(ec_queue_create(ec_cache_n_slots(c), &q), EC_OK);
    ec_policy_config cfg = {.kind = EC_POLICY_LRU};
    cr_assert_eq(ec_policy_create(&cfg, c, q, NULL, NULL, &p, NULL), EC_OK);
    ec_reuse_model *m1, *m2;
    cr_assert_eq(ec_reuse_model_create(1, 6, 1, &m1), EC_OK);
    cr_assert_eq(ec_reuse_model_create(2, 6, 1, &m2), EC_OK);
    cr_expect_eq(ec_policy_set_reuse_model(p, m1), EC_ERR_INVALID);
    cr_expect_eq(ec_policy_set_reuse_model(p, m2), EC_OK);
    cr_expect_eq(ec_policy_set_reuse_model(p, NULL), EC_OK);
    ec_reuse_model_destroy(m1);
    ec_reuse_model_destroy(m2);
    ec_policy_destroy(p);
    ec_queue_destroy(q);
    ec_cache_destroy(c);
}

/* ---- cache shapes: per-layer sizes from a use profile, quotas ---------- */

/* Two layers: layer 0 cycles over 4 experts (an LRU pool of 4 hits them
 * all), layer 1 always uses expert 0 (1 slot is enough). */
static ec_trace *two_layer_trace(int n_seqs, int n_tok)
{
    int *u = malloc((size_t)n_seqs * (size_t)n_tok * 2 * sizeof *u);
    cr_assert_not_null(u);
    for (int s = 0, n = 0; s < n_seqs; s++)
        for (int t = 0; t < n_tok; t++) {
            u[n++] = t % 4; /* layer 0 */
            u[n++] = 0;     /* layer 1 */
        }
    ec_trace *t = load_uses("two.jsonl", n_seqs, n_tok, 2, 6, u, NULL);
    free(u);
    return t;
}

Test(shape, sizes_follow_the_use_profile)
{
    ec_trace *t = two_layer_trace(2, 40);
    int32_t sizes[2];
    cr_assert_eq(ec_cache_size_layers(t, NULL, 6, 1, sizes, NULL), EC_OK);
    cr_expect_geq(sizes[0], 4, "layer 0 gets the 4 slots its cycle hits in, got %d", sizes[0]);
    cr_expect_eq(sizes[0] + sizes[1], 6);
    uint8_t only_first[2] = {1, 0};
    cr_assert_eq(ec_cache_size_layers(t, only_first, 5, 1, sizes, NULL), EC_OK);
    cr_expect_eq(sizes[0], 4);
    cr_expect_eq(sizes[1], 1);
    ec_error err = {0};
    cr_expect_eq(ec_cache_size_layers(t, NULL, 1, 1, sizes, &err), EC_ERR_INVALID);
    cr_expect(strstr(err.message, "sized pools") != NULL, "%s", err.message);
    cr_expect_eq(ec_cache_size_layers(t, NULL, 13, 1, sizes, NULL), EC_ERR_INVALID);
    ec_trace_destroy(t);
}

Test(shape, quotas_keep_the_partition_of_one_pool)
{
    ec_cache *c;
    ec_queue *q;
    ec_policy *p;
    cr_assert_eq(ec_cache_create(2, 6, 2, 0, &c), EC_OK);
    int32_t bad[2] = {2, 2};
    cr_expect_eq(ec_cache_set_quotas(c, bad), EC_ERR_INVALID, "per-layer pools take no quotas");
    ec_cache_destroy(c);
    cr_assert_eq(ec_cache_create(2, 6, 0, 4, &c), EC_OK);
    int32_t wrong_sum[2] = {3, 2}, quota[2] = {3, 1};
    cr_expect_eq(ec_cache_set_quotas(c, wrong_sum), EC_ERR_INVALID);
    cr_assert_eq(ec_cache_set_quotas(c, quota), EC_OK);
    cr_expect_eq(ec_cache_quota(c, 0), 3);
    cr_assert_eq(ec_queue_create(ec_cache_n_slots(c), &q), EC_OK);
    ec_policy_config cfg = {.kind = EC_POLICY_LRU};
    cr_assert_eq(ec_policy_create(&cfg, c, q, NULL, NULL, &p, NULL), EC_OK);
    int64_t step = 0;
    for (int tok = 0; tok < 30; tok++)
        for (int32_t l = 0; l < 2; l++, step++) {
            int16_t e = (int16_t)(l == 0 ? tok % 5 : (tok * 7) % 6);
            cr_assert_eq(ec_policy_observe(p, step, l, &e, 1, NULL), EC_OK);
            ec_transfer tr;
            while (ec_queue_pop(q, &tr)) {
                ec_policy_started(p, &tr);
                ec_policy_completed(p, tr.slot);
            }
            ec_policy_release(p, ec_policy_acquire(p, step, l, e));
            if (tok >= 4) { /* once filled, each layer holds its quota */
                int32_t n[2] = {0, 0};
                for (int32_t i = 0; i < 4; i++)
                    if (ec_cache_slot(c, i)->layer >= 0)
                        n[ec_cache_slot(c, i)->layer]++;
                cr_expect(n[0] == 3 && n[1] == 1, "token %d: %d + %d slots", tok, n[0], n[1]);
            }
        }
    ec_policy_destroy(p);
    ec_queue_destroy(q);
    ec_cache_destroy(c);
}

Test(shape, simulate_sized_pools_held_out)
{
    ec_trace *t = scan_trace(4, 48);
    ec_sim *s;
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    ec_sim_timing tm = slow_link();
    ec_sim_config cfg = {.kind = EC_POLICY_LRU, .cache_global = 2, .cache_sized = 1,
                         .horizon = 1, .timing = tm};
    ec_sim_result r;
    ec_error err = {0};
    cr_assert_eq(ec_sim_run(s, &cfg, &r, &err), EC_OK, "%s", err.message);
    cr_expect_eq(r.cache_sized, 1);
    ec_sim_result_clear(&r);
    cfg.cache_global = 0;
    cfg.cache_per_layer = 2;
    cr_expect_eq(ec_sim_run(s, &cfg, &r, &err), EC_ERR_INVALID);
    ec_sim_destroy(s);
    ec_trace_destroy(t);
    t = scan_trace(1, 48);
    cr_assert_eq(ec_sim_create(t, 1, &s, NULL), EC_OK);
    cfg.cache_per_layer = 0;
    cfg.cache_global = 2;
    cr_expect_eq(ec_sim_run(s, &cfg, &r, &err), EC_ERR_INVALID, "one sequence: nothing to fit on");
    ec_sim_destroy(s);
    ec_trace_destroy(t);
}

/* simulate --cache-sized runs its references, lru and the oracle, at the
 * same sized shape as the policies (not as a plain global pool): each
 * reference row is the library's sized run. */
Test(shape, simulate_cli_references_run_sized)
{
    const char *d = tu_tmpdir();
    cr_assert_eq(tu_cli(NULL, NULL, "synth --layers 32 --experts 8 --sequences 4 --tokens 24 -o "
                                    "%s/s4.jsonl",
                        d),
                 0);
    char path[512];
    snprintf(path, sizeof path, "%s/s4.jsonl", d);
    char *out = NULL;
    cr_assert_eq(tu_cli(&out, NULL,
                        "simulate %s --model mixtral-8x7b-int4 --hardware rtx4090-pcie4 "
                        "--policy lru,gated --cache-sized 96 --csv -",
                        path),
                 0);
    ec_trace *t;
    ec_sim *s;
    ec_error err = {0};
    const char *paths[] = {path};
    cr_assert_eq(ec_trace_load(paths, 1, NULL, &t, &err), EC_OK, "%s", err.message);
    cr_assert_eq(ec_sim_create(t, 1, &s, &err), EC_OK, "%s", err.message);
    ec_sim_timing tm = {.transfer_ms = 3.695, .engines = 1, .compute_fixed_ms = 0.103,
                        .compute_per_expert_ms = 0.087, .expert_bytes = 1};
    ec_sim_config cfg = {.kind = EC_POLICY_LRU, .cache_global = 96, .cache_sized = 1,
                         .horizon = 1, .timing = tm};
    ec_sim_result sized, global;
    cr_assert_eq(ec_sim_run(s, &cfg, &sized, &err), EC_OK, "%s", err.message);
    cfg.cache_sized = 0;
    cr_assert_eq(ec_sim_run(s, &cfg, &global, &err), EC_OK, "%s", err.message);
    cr_assert_neq(sized.stats.loads, global.stats.loads, "the trace must tell the shapes apart");
    /* the CSV's lru row: sized, with the sized run's transfers per token */
    const char *row = strstr(out, ",lru,");
    cr_assert_not_null(row, "%s", out);
    int cache_experts = -1, cache_global = -1;
    cr_assert_eq(sscanf(row, ",lru,%d,%d,", &cache_experts, &cache_global), 2);
    cr_expect_eq(cache_global, 96);
    double xfer = -1;
    const char *line_end = strchr(row, '\n');
    const char *p = row;
    for (int field = 0; field < 14 && p; field++) /* to transfers_per_token, field 17 */
        p = strchr(p + 1, ',');
    cr_assert_not_null(p);
    cr_assert_eq(sscanf(p + 1, "%lf", &xfer), 1);
    cr_assert(p < line_end);
    double want = (double)sized.stats.loads / (double)ec_sim_n_tokens(s);
    cr_expect(fabs(xfer - want) < 1e-6 * want, "lru reference %.6f transfers/token, sized %.6f, "
              "global %.6f", xfer, want, (double)global.stats.loads / (double)ec_sim_n_tokens(s));
    ec_sim_result_clear(&sized);
    ec_sim_result_clear(&global);
    ec_sim_destroy(s);
    ec_trace_destroy(t);
    free(out);
}

Test(reuse_cli, report_and_never_over_its_input)
{
    ec_trace *t = scan_trace(3, 24);
    ec_trace_destroy(t);
    const char *path = scan_path;
    size_t before = 0, after = 0;
    free(tu_read(path, &before));
    char *out = NULL, *err = NULL;
    cr_expect_eq(tu_cli(&out, &err, "reuse '%s' -p prior --json '%s'", path, path), 2);
    cr_expect(strstr(err, "input") != NULL, "%s", err);
    free(tu_read(path, &after));
    cr_expect_eq(after, before, "the input was changed");
    free(out);
    free(err);
    cr_expect_eq(tu_cli(&out, &err, "reuse '%s' -p prior", path), 0, "%s", err);
    cr_expect(strstr(out, "leave one sequence out (3 folds, 72 tokens)") != NULL, "%s", out);
    free(out);
    free(err);
}
