/* The seed's rules as predictors: seed-l1..seed-l5 and hybrid. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MIXTRAL "mixtral-8x7b-instruct/humaneval_2_routing.jsonl"
#define SAMPLE EC_SOURCE_DIR "/data/sample_trace.jsonl"

static const char *const SEED_NAMES[] = {"seed-l1", "seed-l2", "seed-l3", "seed-l4", "seed-l5",
                                         "hybrid"};

/* Cases of one horizon: covered = the predictor answered (returned 1). */
typedef struct tally {
    size_t correct, covered, cases;
} tally;

static ec_predictor *fitted(const char *name, const ec_trace *t)
{
    ec_predictor *p = NULL;
    ec_error err = {0};
    cr_assert_eq(ec_predictor_create(name, NULL, &p, &err), EC_OK, "%s", err.message);
    cr_assert_eq(ec_predictor_fit(p, t, NULL), EC_OK, "%s", ec_predictor_errmsg(p));
    return p;
}

static ec_trace *load(const char *const *paths, size_t n)
{
    ec_trace *t = NULL;
    ec_error err = {0};
    cr_assert_eq(ec_trace_load(paths, n, NULL, &t, &err), EC_OK, "%s", err.message);
    return t;
}

/* Walks every row of t layer by layer; after layer N predicts N + horizon
 * (inside the token) and scores top-1 against the actual primary. When
 * trace_of is non-NULL, records (rc, top-1) of every case in it. */
static tally score(const ec_predictor *p, const ec_trace *t, int32_t horizon, int *trace_of)
{
    ec_history *h;
    cr_assert_eq(ec_history_create(t->n_layers, ec_predictor_n_experts(p), t->k, 2, &h), EC_OK);
    float *probs = malloc((size_t)ec_predictor_n_experts(p) * sizeof *probs);
    tally s = {0, 0, 0};
    size_t i = 0;
    for (size_t row = 0; row < t->n_rows; row++) {
        if (!t->complete[row])
            continue;
        for (int32_t l = 0; l < t->n_layers; l++) {
            ec_history_observe(h, l, ec_trace_experts(t, row, l));
            if (l + horizon >= t->n_layers)
                continue;
            int rc = ec_predictor_predict(p, h, horizon, probs);
            cr_assert(rc == 0 || rc == 1, "rc %d", rc);
            int32_t top;
            ec_rank(probs, ec_predictor_n_experts(p), &top, 1);
            int hit = top == ec_trace_experts(t, row, l + horizon)[0];
            s.cases++;
            s.covered += rc == 1;
            s.correct += rc == 1 && hit;
            if (trace_of) {
                trace_of[2 * i] = rc;
                trace_of[2 * i + 1] = top;
            }
            i++;
        }
    }
    free(probs);
    ec_history_destroy(h);
    return s;
}

/* ---- the seed's numbers through the predictor interface --------------------- */

/* Journey files pP_token_T.jsonl of the Mixtral trace in dir. */
static const char **mixtral_journeys(const char *dir, int problem, const int *tokens, size_t n)
{
    static char buf[4][16][512];
    static const char *ptrs[4][16];
    static int next;
    int slot = next++ % 4;
    for (size_t i = 0; i < n; i++) {
        snprintf(buf[slot][i], 512, "%s/p%d_token_%d.jsonl", dir, problem, tokens[i]);
        ptrs[slot][i] = buf[slot][i];
    }
    return ptrs[slot];
}

static void extract_mixtral(const char *raw, const char *dir)
{
    for (int p = 0; p < 2; p++) {
        ec_extract_opts o = {p, 0, 12, NULL, dir};
        ec_extract_report *r;
        ec_error err = {0};
        cr_assert_eq(ec_seed_extract(raw, &o, &r, &err), EC_OK, "%s", err.message);
        ec_extract_report_destroy(r);
    }
}

/* Fits the five one-level predictors on train and checks the covered
 * cases of test against want (level order of the seed's results). */
static void expect_levels(const ec_trace *train, const ec_trace *test,
                          const size_t want[EC_SEED_N_LEVELS][2], const char *what)
{
    static const int32_t skips[3] = {2, 4, 8};
    for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++) {
        ec_predictor *p = fitted(SEED_NAMES[lv < 4 ? lv : 4], train);
        tally s = score(p, test, lv < 4 ? 1 : skips[lv - 4], NULL);
        cr_expect_eq(s.correct, want[lv][0], "%s %s: correct %zu, want %zu", what,
                     ec_seed_level_name(lv), s.correct, want[lv][0]);
        cr_expect_eq(s.covered, want[lv][1], "%s %s: covered %zu, want %zu", what,
                     ec_seed_level_name(lv), s.covered, want[lv][1]);
        ec_predictor_destroy(p);
    }
}

Test(seed_predict_real, mixtral_one_level_predictors_reproduce_the_seed)
{
    const char *raw = TU_SHARED_OR_SKIP(MIXTRAL);
    const char *dir = tu_tmpdir();
    extract_mixtral(raw, dir);
    int t0[] = {0}, p1[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11}, a[] = {0, 1, 2, 3, 4},
        b[] = {5, 6, 7, 8, 9}, c[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};

    ec_trace *train = load(mixtral_journeys(dir, 0, t0, 1), 1);
    ec_trace *test = load(mixtral_journeys(dir, 1, p1, 11), 11);
    static const size_t want1[EC_SEED_N_LEVELS][2] = {{32, 75}, {22, 31}, {18, 21}, {21, 32},
                                                      {32, 71}, {32, 66}, {28, 54}};
    expect_levels(train, test, want1, "p0_token_0 on p1");
    ec_trace_destroy(train);
    ec_trace_destroy(test);

    train = load(mixtral_journeys(dir, 0, a, 5), 5);
    const char *tests[15];
    memcpy(tests, mixtral_journeys(dir, 0, b, 5), 5 * sizeof *tests);
    memcpy(tests + 5, mixtral_journeys(dir, 1, c, 10), 10 * sizeof *tests);
    test = load(tests, 15);
    static const size_t want5[EC_SEED_N_LEVELS][2] = {{74, 246}, {40, 91},  {25, 38}, {38, 87},
                                                      {68, 241}, {60, 223}, {52, 188}};
    expect_levels(train, test, want5, "p0 0-4 on p0 5-9 + p1 0-9");
    ec_trace_destroy(train);
    ec_trace_destroy(test);

    train = load(mixtral_journeys(dir, 1, t0, 1), 1);
    test = load(mixtral_journeys(dir, 0, a, 5), 5);
    ec_predictor *l2 = fitted("seed-l2", train), *l3 = fitted("seed-l3", train);
    tally s2 = score(l2, test, 1, NULL), s3 = score(l3, test, 1, NULL);
    cr_expect(s2.correct == 25 && s2.covered == 30, "level2 %zu/%zu", s2.correct, s2.covered);
    cr_expect(s3.correct == 21 && s3.covered == 24, "level3 %zu/%zu", s3.correct, s3.covered);
    ec_predictor_destroy(l2);
    ec_predictor_destroy(l3);
    ec_trace_destroy(train);
    ec_trace_destroy(test);
}

Test(seed_predict_real, mixtral_hybrid_is_level3_then_2_then_1_then_the_prior)
{
    const char *raw = TU_SHARED_OR_SKIP(MIXTRAL);
    const char *dir = tu_tmpdir();
    extract_mixtral(raw, dir);
    int t0[] = {0}, p1[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11};
    ec_trace *train = load(mixtral_journeys(dir, 0, t0, 1), 1);
    ec_trace *test = load(mixtral_journeys(dir, 1, p1, 11), 11);
    enum { N = 11 * 31 };
    static int cases[6][2 * N];
    ec_predictor *p[6];
    tally s[6];
    for (int i = 0; i < 6; i++) {
        p[i] = fitted(SEED_NAMES[i], train);
        s[i] = score(p[i], test, 1, cases[i]);
        cr_assert_eq(s[i].cases, N);
    }
    /* the prior's top-1, for the last resort */
    float probs[8];
    ec_predictor *prior = fitted("prior", train);
    ec_history *h;
    cr_assert_eq(ec_history_create(32, 8, 2, 0, &h), EC_OK);
    size_t by_level[4][2] = {{0}}; /* hybrid's correct / cases answered by L3, L2, L1, prior */
    size_t i = 0;
    for (size_t row = 0; row < test->n_rows; row++)
        for (int32_t l = 0; l + 1 < test->n_layers; l++, i++) {
            int src = cases[2][2 * i] ? 2 : cases[1][2 * i] ? 1 : cases[0][2 * i] ? 0 : 3;
            int32_t want;
            if (src < 3) {
                want = cases[src][2 * i + 1];
            } else {
                ec_history_reset(h);
                ec_history_observe(h, l, ec_trace_experts(test, row, l));
                ec_predictor_predict(prior, h, 1, probs);
                ec_rank(probs, 8, &want, 1);
            }
            cr_expect_eq(cases[5][2 * i], 1, "hybrid always answers");
            cr_expect_eq(cases[5][2 * i + 1], want, "row %zu layer %d: hybrid %d, want %d (from %s)",
                         row, l, cases[5][2 * i + 1], want,
                         src == 3 ? "prior" : SEED_NAMES[src]);
            int idx = src == 2 ? 0 : src == 1 ? 1 : src == 0 ? 2 : 3;
            by_level[idx][0] += cases[5][2 * i + 1] == ec_trace_experts(test, row, l + 1)[0];
            by_level[idx][1]++;
        }
    /* restricted to level3's covered cases, hybrid is level3: 18/21 */
    cr_expect_eq(by_level[0][0], 18);
    cr_expect_eq(by_level[0][1], 21);
    cr_expect_eq(s[5].covered, N);
    cr_log_info("hybrid, rules from p0_token_0, on p1 tokens 0-9,11 (horizon 1): %zu/%zu correct "
                "(%.1f%%, coverage 100%%); answered by level3 %zu/%zu, level2 %zu/%zu, "
                "level1 %zu/%zu, prior %zu/%zu",
                s[5].correct, s[5].cases, 100.0 * (double)s[5].correct / (double)s[5].cases,
                by_level[0][0], by_level[0][1], by_level[1][0], by_level[1][1], by_level[2][0],
                by_level[2][1], by_level[3][0], by_level[3][1]);
    for (int j = 0; j < 6; j++)
        ec_predictor_destroy(p[j]);
    ec_predictor_destroy(prior);
    ec_history_destroy(h);
    ec_trace_destroy(train);
    ec_trace_destroy(test);
}

/* ---- distributions and abstention (bundled sample trace) ---------------------- */

static ec_trace *sample(void)
{
    const char *path = SAMPLE;
    return load(&path, 1);
}

Test(seed_predict, answers_put_the_rule_on_top_and_keep_a_distribution)
{
    ec_trace *t = sample();
    ec_predictor *p = fitted("seed-l1", t);
    ec_history *h;
    cr_assert_eq(ec_history_create(t->n_layers, t->n_experts, t->k, 1, &h), EC_OK);
    float probs[8], prior[8];
    size_t answered = 0;
    for (int32_t l = 0; l + 1 < t->n_layers; l++) {
        const int16_t *e = ec_trace_experts(t, 0, l);
        ec_history_observe(h, l, e);
        int rc = ec_predictor_predict(p, h, 1, probs);
        cr_assert_eq(rc, 1, "a training row is always covered");
        answered++;
        int32_t key[2] = {l, e[0]};
        ec_seed_rules *r;
        cr_assert_eq(ec_seed_rules_fit(t, NULL, &r, NULL), EC_OK);
        const ec_seed_rule *u = ec_seed_rules_find(r, EC_SEED_L1, key);
        cr_assert_not_null(u);
        double sum = 0;
        for (int i = 0; i < 8; i++) {
            cr_expect_geq(probs[i], 0);
            sum += probs[i];
        }
        cr_expect(fabs(sum - 1) < 1e-5, "sum %g", sum);
        double m = 0.5 + 0.5 * u->votes / (u->samples + 1.0);
        cr_expect(fabs(probs[u->prediction] - m) < 1e-6, "mass %g, want %g", probs[u->prediction],
                  m);
        /* the others keep the prior's order */
        ec_predictor *pr = fitted("prior", t);
        ec_predictor_predict(pr, h, 1, prior);
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 8; j++)
                if (i != u->prediction && j != u->prediction && prior[i] > prior[j])
                    cr_expect_gt(probs[i], probs[j]);
        ec_predictor_destroy(pr);
        ec_seed_rules_destroy(r);
    }
    cr_expect_eq(answered, 31);
    ec_history_destroy(h);
    ec_predictor_destroy(p);
    ec_trace_destroy(t);
}

Test(seed_predict, one_level_predictors_abstain_outside_their_horizon)
{
    ec_trace *t = sample();
    ec_predictor *p[6];
    for (int i = 0; i < 6; i++)
        p[i] = fitted(SEED_NAMES[i], t);
    ec_predictor *pr = fitted("prior", t);
    ec_history *h;
    cr_assert_eq(ec_history_create(t->n_layers, t->n_experts, t->k, 1, &h), EC_OK);
    for (int32_t l = 0; l < t->n_layers; l++)
        ec_history_observe(h, l, ec_trace_experts(t, 0, l));
    float probs[8], prior[8];
    /* position 31: every horizon lands in the next token: the rules never cross tokens */
    for (int i = 0; i < 6; i++)
        for (int32_t hz = 1; hz <= 8; hz++) {
            int rc = ec_predictor_predict(p[i], h, hz, probs);
            ec_predictor_predict(pr, h, hz, prior);
            cr_expect_eq(rc, i == 5, "%s horizon %d", SEED_NAMES[i], hz);
            cr_expect_eq(memcmp(probs, prior, sizeof probs), 0, "%s gives the prior",
                         SEED_NAMES[i]);
        }
    /* position 3 of a training row: l1..l4 answer horizon 1 only, l5 2/4/8 only */
    ec_history_reset(h);
    for (int32_t l = 0; l <= 3; l++)
        ec_history_observe(h, l, ec_trace_experts(t, 0, l));
    for (int32_t hz = 1; hz <= 9; hz++) {
        for (int i = 0; i < 4; i++)
            cr_expect_eq(ec_predictor_predict(p[i], h, hz, probs), hz == 1, "%s h %d",
                         SEED_NAMES[i], hz);
        int skip = hz == 2 || hz == 4 || hz == 8;
        cr_expect_eq(ec_predictor_predict(p[4], h, hz, probs), skip, "seed-l5 h %d", hz);
        cr_expect_eq(ec_predictor_predict(p[5], h, hz, probs), 1, "hybrid h %d", hz);
    }
    ec_history_destroy(h);
    for (int i = 0; i < 6; i++)
        ec_predictor_destroy(p[i]);
    ec_predictor_destroy(pr);
    ec_trace_destroy(t);
}

/* ---- files -------------------------------------------------------------------- */

/* Every (rc, probs) of every case at horizons 1..8 of the sequences of t. */
static float *all_predictions(const ec_predictor *p, const ec_trace *t, size_t *n)
{
    int32_t E = ec_predictor_n_experts(p);
    ec_history *h;
    cr_assert_eq(ec_history_create(t->n_layers, E, t->k, 1, &h), EC_OK);
    size_t cap = t->n_rows * (size_t)t->n_layers * 8 * (size_t)(E + 1);
    float *out = malloc(cap * sizeof *out);
    size_t k = 0;
    for (size_t row = 0; row < t->n_rows; row++)
        for (int32_t l = 0; l < t->n_layers; l++) {
            ec_history_observe(h, l, ec_trace_experts(t, row, l));
            for (int32_t hz = 1; hz <= 8; hz++) {
                out[k] = (float)ec_predictor_predict(p, h, hz, out + k + 1);
                k += (size_t)E + 1;
            }
        }
    ec_history_destroy(h);
    *n = k;
    return out;
}

Test(seed_predict, save_and_load_give_identical_predictions)
{
    ec_trace *t = sample();
    const char *d = tu_tmpdir();
    for (int i = 0; i < 6; i++) {
        ec_predictor *p = fitted(SEED_NAMES[i], t);
        char path[600];
        snprintf(path, sizeof path, "%s/%s.json", d, SEED_NAMES[i]);
        ec_error err = {0};
        cr_assert_eq(ec_predictor_save(p, path, &err), EC_OK, "%s", err.message);
        ec_predictor *q = NULL;
        cr_assert_eq(ec_predictor_load(path, &q, &err), EC_OK, "%s", err.message);
        cr_expect_str_eq(ec_predictor_name(q), SEED_NAMES[i]);
        size_t n1, n2;
        float *a = all_predictions(p, t, &n1), *b = all_predictions(q, t, &n2);
        cr_assert_eq(n1, n2);
        /* Same answers and the same ranking of every expert; the common
         * prior is renormalised on load, so values agree to float noise. */
        size_t stride = 9, diffs = 0;
        for (size_t c = 0; c < n1; c += stride) {
            cr_expect_eq(a[c], b[c], "%s case %zu: rc", SEED_NAMES[i], c / stride);
            int32_t ra[8], rb[8];
            ec_rank(a + c + 1, 8, ra, 8);
            ec_rank(b + c + 1, 8, rb, 8);
            diffs += memcmp(ra, rb, sizeof ra) != 0;
            for (int e = 0; e < 8; e++)
                cr_expect(fabsf(a[c + 1 + e] - b[c + 1 + e]) <= 1e-6f, "%s case %zu",
                          SEED_NAMES[i], c / stride);
        }
        cr_expect_eq(diffs, 0, "%s: %zu rankings differ after reload", SEED_NAMES[i], diffs);
        free(a);
        free(b);
        ec_predictor_destroy(p);
        ec_predictor_destroy(q);
    }
    ec_trace_destroy(t);
}

Test(seed_predict, a_rules_file_loads_as_hybrid_with_the_fitted_rules)
{
    /* Rules made by "rules create" from the sample's journeys and the
     * predictors fitted on the same rows must agree on every answer. */
    const char *d = tu_tmpdir();
    ec_extract_opts o = {0, 0, 24, NULL, d};
    ec_extract_report *x;
    ec_error err = {0};
    cr_assert_eq(ec_seed_extract(SAMPLE, &o, &x, &err), EC_OK, "%s", err.message);
    cr_assert_eq(x->n_written, 24);
    ec_extract_report_destroy(x);
    char files[24][600];
    const char *paths[24];
    for (int i = 0; i < 24; i++) {
        snprintf(files[i], sizeof files[i], "%s/p0_token_%d.jsonl", d, i);
        paths[i] = files[i];
    }
    ec_seed_rules *r;
    cr_assert_eq(ec_seed_rules_create(paths, 24, 8, &r, &err), EC_OK, "%s", err.message);
    char rules[600];
    snprintf(rules, sizeof rules, "%s/rules.json", d);
    cr_assert_eq(ec_seed_rules_save(r, rules, &err), EC_OK, "%s", err.message);
    ec_seed_rules_destroy(r);

    ec_predictor *loaded;
    cr_assert_eq(ec_predictor_load(rules, &loaded, &err), EC_OK, "%s", err.message);
    cr_expect_str_eq(ec_predictor_name(loaded), "hybrid");
    cr_expect_eq(ec_predictor_n_layers(loaded), 32);
    cr_expect_eq(ec_predictor_n_experts(loaded), 8);

    ec_trace *t = load(paths, 24), *all = sample();
    uint8_t first_only[2] = {1, 0};
    for (int i = 0; i < 5; i++) {
        ec_predictor *from_file;
        cr_assert_eq(ec_predictor_load_seed_rules(rules, SEED_NAMES[i], &from_file, &err), EC_OK,
                     "%s", err.message);
        ec_predictor *fit = fitted(SEED_NAMES[i], t);
        /* also fitting on the whole sample masked to problem 0 gives the same rules */
        ec_predictor *masked;
        cr_assert_eq(ec_predictor_create(SEED_NAMES[i], NULL, &masked, NULL), EC_OK);
        cr_assert_eq(ec_predictor_fit(masked, all, first_only), EC_OK);
        for (int32_t hz = 1; hz <= 8; hz *= 2) {
            static int a[2 * 48 * 31], b[2 * 48 * 31], c[2 * 48 * 31];
            cr_assert_eq(all->n_rows, 48);
            score(from_file, all, hz, a);
            score(fit, all, hz, b);
            score(masked, all, hz, c);
            size_t n = 0;
            for (size_t row = 0; row < all->n_rows; row++)
                n += (size_t)(all->n_layers - hz);
            for (size_t j = 0; j < n; j++) {
                cr_expect_eq(a[2 * j], b[2 * j], "%s h%d case %zu: coverage", SEED_NAMES[i], hz, j);
                if (a[2 * j] == 1)
                    cr_expect_eq(a[2 * j + 1], b[2 * j + 1], "%s h%d case %zu", SEED_NAMES[i], hz,
                                 j);
                cr_expect_eq(b[2 * j], c[2 * j]);
                cr_expect_eq(b[2 * j + 1], c[2 * j + 1]);
            }
        }
        ec_predictor_destroy(from_file);
        ec_predictor_destroy(fit);
        ec_predictor_destroy(masked);
    }
    ec_predictor *bad = (ec_predictor *)1;
    cr_expect_eq(ec_predictor_load_seed_rules(rules, "prior", &bad, &err), EC_ERR_INVALID);
    cr_expect_null(bad);
    ec_predictor_destroy(loaded);
    ec_trace_destroy(t);
    ec_trace_destroy(all);
}

Test(seed_predict, the_names_are_registered)
{
    const char *const *names = ec_predictor_names();
    for (int i = 0; i < 6; i++) {
        int found = 0;
        for (const char *const *n = names; *n; n++)
            found |= strcmp(*n, SEED_NAMES[i]) == 0;
        cr_expect(found, "%s", SEED_NAMES[i]);
        ec_predictor *p;
        cr_expect_eq(ec_predictor_create(SEED_NAMES[i], NULL, &p, NULL), EC_OK);
        ec_predictor_destroy(p);
    }
}

Test(seed_predict, a_flame_shaped_synthetic_trace_works)
{
    ec_synth_opts o;
    ec_synth_opts_default(&o);
    o.n_layers = 8;
    o.n_experts = 64;
    o.k = 6;
    o.n_seqs = 2;
    o.n_tokens = 32;
    ec_trace *t;
    cr_assert_eq(ec_synth_generate(&o, &t, NULL), EC_OK);
    for (int i = 0; i < 6; i++) {
        ec_predictor *p = fitted(SEED_NAMES[i], t);
        cr_expect_eq(ec_predictor_n_experts(p), 64);
        tally s1 = score(p, t, 1, NULL), s4 = score(p, t, 4, NULL);
        cr_expect_eq(s1.cases, 64 * 7);
        cr_expect_eq(s4.cases, 64 * 4);
        /* trained on these very rows: every one-level case is covered */
        if (i < 4)
            cr_expect_eq(s1.covered, s1.cases - (i == 1 ? 64 : i == 2 ? 128 : 0), "%s",
                         SEED_NAMES[i]);
        if (i >= 4)
            cr_expect_eq(s4.covered, s4.cases, "%s", SEED_NAMES[i]);
        ec_predictor_destroy(p);
    }
    ec_trace_destroy(t);
}
