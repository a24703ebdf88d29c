/* Predictors: distributions, save/load, no allocation on the hot path,
 * determinism, thread safety, fault injection, and hand-computed cases. */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The predictors of this module must be registered; the property tests
 * below visit every registered predictor (the seed levels too). */
static const char *const MINE[] = {"prior", "ngram", "temporal", "logistic", "mix"};
#define N_MINE (sizeof MINE / sizeof *MINE)

static size_t n_all(void)
{
    size_t n = 0;
    while (ec_predictor_names()[n])
        n++;
    return n;
}
#define ALL (ec_predictor_names())

static ec_trace *synth(int32_t L, int32_t E, int32_t K, int32_t seqs, int32_t tokens,
                       uint64_t seed)
{
    ec_synth_opts o;
    ec_synth_opts_default(&o);
    o.n_layers = L;
    o.n_experts = E;
    o.k = K;
    o.n_seqs = seqs;
    o.n_tokens = tokens;
    o.seed = seed;
    ec_trace *t;
    ec_error err = {0};
    cr_assert_eq(ec_synth_generate(&o, &t, &err), EC_OK, "%s", err.message);
    return t;
}

static ec_predictor *fitted(const char *name, const ec_trace *t, const ec_predictor_opts *o)
{
    ec_predictor *p;
    ec_error err = {0};
    cr_assert_eq(ec_predictor_create(name, o, &p, &err), EC_OK, "%s: %s", name, err.message);
    cr_assert_eq(ec_predictor_fit(p, t, NULL), EC_OK, "%s: %s", name, ec_predictor_errmsg(p));
    return p;
}

/*
 * Replays sequence s of t through a history and calls predict at every
 * layer for horizons 1..max_h, writing all distributions to out
 * (positions x max_h x E, in order). Returns how many were written.
 */
static size_t replay(const ec_predictor *p, const ec_trace *t, size_t s, int32_t max_h,
                     float *out, int *informed)
{
    ec_history *h;
    int32_t depth = ec_predictor_history_depth(p) + 1;
    cr_assert_eq(ec_history_create(t->n_layers, t->n_experts, t->k, depth, &h), EC_OK);
    const ec_seq *sq = &t->seqs[s];
    size_t n = 0;
    for (size_t r = sq->row0; r < sq->row0 + sq->n_rows; r++)
        for (int32_t l = 0; l < t->n_layers; l++) {
            ec_history_observe(h, l, ec_trace_experts(t, r, l));
            for (int32_t hz = 1; hz <= max_h; hz++, n++) {
                int ret = ec_predictor_predict(p, h, hz, out + n * (size_t)t->n_experts);
                cr_assert(ret == 0 || ret == 1, "%s: predict returned %d",
                          ec_predictor_name(p), ret);
                if (informed)
                    informed[n] = ret;
            }
        }
    ec_history_destroy(h);
    return n;
}

Test(predictors, registry_lists_every_module)
{
    const char *const *names = ec_predictor_names();
    for (size_t i = 0; i < N_MINE; i++) {
        int found = 0;
        for (const char *const *n = names; *n; n++)
            found |= strcmp(*n, MINE[i]) == 0;
        cr_assert(found, "%s is not registered", MINE[i]);
        ec_predictor *p;
        cr_assert_eq(ec_predictor_create(MINE[i], NULL, &p, NULL), EC_OK);
        cr_assert_str_eq(ec_predictor_name(p), MINE[i]);
        ec_predictor_destroy(p);
    }
    ec_predictor *p = (void *)1;
    ec_error err = {0};
    cr_assert_eq(ec_predictor_create("nonesuch", NULL, &p, &err), EC_ERR_NOT_FOUND);
    cr_assert_null(p);
}

Test(predictors, distributions_sum_to_one_at_every_horizon)
{
    /* 64-expert top-6 as in FLAME, and 8-expert top-2 as in Mixtral; the
     * horizons go past max_horizon (4) to the next token's last layer. */
    const int32_t shapes[][3] = {{6, 8, 2}, {5, 64, 6}};
    for (size_t sh = 0; sh < 2; sh++) {
        const int32_t L = shapes[sh][0], E = shapes[sh][1], K = shapes[sh][2];
        ec_trace *t = synth(L, E, K, 3, 24, 1);
        float *probs = malloc((size_t)24 * L * L * E * sizeof *probs);
        for (size_t i = 0; i < n_all(); i++) {
            ec_predictor *p = fitted(ALL[i], t, NULL);
            size_t n = replay(p, t, 1, L, probs, NULL);
            for (size_t c = 0; c < n; c++) {
                double sum = 0;
                for (int32_t e = 0; e < E; e++) {
                    float v = probs[c * (size_t)E + (size_t)e];
                    cr_assert(isfinite(v) && v >= 0.0f, "%s: p = %g", ALL[i], v);
                    sum += v;
                }
                cr_assert_float_eq(sum, 1.0, 1e-4, "%s (E=%d) case %zu sums to %g", ALL[i], E,
                                   c, sum);
            }
            ec_predictor_destroy(p);
        }
        free(probs);
        ec_trace_destroy(t);
    }
}

Test(predictors, save_and_load_predict_bit_for_bit_the_same)
{
    const char *d = tu_tmpdir();
    ec_trace *t = synth(6, 8, 2, 3, 24, 2);
    const size_t cap = (size_t)24 * 6 * 6 * 8;
    float *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b);
    for (size_t i = 0; i < n_all(); i++) {
        ec_predictor_opts o = {.max_horizon = 6};
        ec_predictor *p = fitted(ALL[i], t, &o), *q;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.json", d, ALL[i]);
        ec_error err = {0};
        cr_assert_eq(ec_predictor_save(p, path, &err), EC_OK, "%s: %s", ALL[i], err.message);
        cr_assert_eq(ec_predictor_load(path, &q, &err), EC_OK, "%s: %s", ALL[i], err.message);
        cr_assert_str_eq(ec_predictor_name(q), ALL[i]);
        cr_assert_eq(ec_predictor_history_depth(q), ec_predictor_history_depth(p));
        size_t n = replay(p, t, 0, 6, a, NULL);
        cr_assert_eq(replay(q, t, 0, 6, b, NULL), n);
        cr_assert(memcmp(a, b, n * 8 * sizeof *a) == 0, "%s: loaded model predicts differently",
                  ALL[i]);
        ec_predictor_destroy(p);
        ec_predictor_destroy(q);
    }
    free(a);
    free(b);
    ec_trace_destroy(t);
}

Test(predictors, predict_never_allocates)
{
    tu_alloc_state st = {0};
    tu_alloc_install(&st);
    ec_trace *t = synth(6, 8, 2, 2, 20, 3);
    float *probs = malloc((size_t)20 * 6 * 4 * 8 * sizeof *probs);
    for (size_t i = 0; i < n_all(); i++) {
        ec_predictor *p = fitted(ALL[i], t, NULL);
        ec_history *h;
        cr_assert_eq(ec_history_create(6, 8, 2, ec_predictor_history_depth(p) + 1, &h), EC_OK);
        size_t before = st.calls;
        const ec_seq *sq = &t->seqs[1];
        for (size_t r = sq->row0; r < sq->row0 + sq->n_rows; r++)
            for (int32_t l = 0; l < 6; l++) {
                ec_history_observe(h, l, ec_trace_experts(t, r, l));
                for (int32_t hz = 1; hz <= 6; hz++)
                    ec_predictor_predict(p, h, hz, probs);
            }
        cr_assert_eq(st.calls, before, "%s: %zu allocations while predicting", ALL[i],
                     st.calls - before);
        ec_history_destroy(h);
        ec_predictor_destroy(p);
    }
    ec_trace_destroy(t);
    cr_assert_eq(st.live, 0, "%ld blocks leaked", st.live);
    tu_alloc_uninstall();
    free(probs);
}

Test(predictors, same_seed_same_model_other_seed_other_logistic)
{
    const char *d = tu_tmpdir();
    ec_trace *t = synth(6, 8, 2, 3, 24, 4);
    for (size_t i = 0; i < n_all(); i++) {
        ec_predictor_opts o = {.seed = 11};
        char p1[1024], p2[1024], h1[65], h2[65];
        snprintf(p1, sizeof p1, "%s/%s-1.json", d, ALL[i]);
        snprintf(p2, sizeof p2, "%s/%s-2.json", d, ALL[i]);
        for (int rep = 0; rep < 2; rep++) {
            ec_predictor *p = fitted(ALL[i], t, &o);
            cr_assert_eq(ec_predictor_save(p, rep ? p2 : p1, NULL), EC_OK);
            ec_predictor_destroy(p);
        }
        cr_assert_eq(tu_sha256(p1, h1), 0);
        cr_assert_eq(tu_sha256(p2, h2), 0);
        cr_assert_str_eq(h1, h2, "%s: two fits with one seed differ", ALL[i]);
    }
    /* The seed drives the logistic's shuffling: another seed, other weights. */
    ec_predictor_opts o1 = {.seed = 1}, o2 = {.seed = 2};
    ec_predictor *a = fitted("logistic", t, &o1), *b = fitted("logistic", t, &o2);
    char pa[1024], pb[1024], ha[65], hb[65];
    snprintf(pa, sizeof pa, "%s/la.json", d);
    snprintf(pb, sizeof pb, "%s/lb.json", d);
    cr_assert_eq(ec_predictor_save(a, pa, NULL), EC_OK);
    cr_assert_eq(ec_predictor_save(b, pb, NULL), EC_OK);
    cr_assert_eq(tu_sha256(pa, ha), 0);
    cr_assert_eq(tu_sha256(pb, hb), 0);
    cr_assert_str_neq(ha, hb);
    ec_predictor_destroy(a);
    ec_predictor_destroy(b);
    ec_trace_destroy(t);
}

typedef struct job {
    const ec_predictor *p;
    const ec_trace *t;
    float *out;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    replay(j->p, j->t, 2, 4, j->out, NULL);
    return NULL;
}

Test(predictors, concurrent_predictions_match_serial_ones)
{
    ec_trace *t = synth(6, 8, 2, 3, 24, 5);
    const size_t cap = (size_t)24 * 6 * 4 * 8;
    for (size_t i = 0; i < n_all(); i++) {
        ec_predictor *p = fitted(ALL[i], t, NULL);
        float *serial = malloc(cap * sizeof(float));
        job jobs[4];
        pthread_t th[4];
        size_t n = replay(p, t, 2, 4, serial, NULL);
        for (int k = 0; k < 4; k++) {
            jobs[k] = (job){p, t, malloc(cap * sizeof(float))};
            pthread_create(&th[k], NULL, run_job, &jobs[k]);
        }
        for (int k = 0; k < 4; k++) {
            pthread_join(th[k], NULL);
            cr_assert(memcmp(serial, jobs[k].out, n * 8 * sizeof(float)) == 0,
                      "%s: thread %d differs", ALL[i], k);
            free(jobs[k].out);
        }
        free(serial);
        ec_predictor_destroy(p);
    }
    ec_trace_destroy(t);
}

Test(predictors, every_failed_allocation_in_fit_save_and_load_is_clean)
{
    const char *d = tu_tmpdir();
    ec_trace *t = synth(3, 4, 2, 3, 6, 6);
    tu_alloc_state st = {0};
    tu_alloc_install(&st);
    for (size_t i = 0; i < n_all(); i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.json", d, ALL[i]);
        st = (tu_alloc_state){0};
        ec_predictor *p = fitted(ALL[i], t, NULL);
        cr_assert_eq(ec_predictor_save(p, path, NULL), EC_OK);
        ec_predictor_destroy(p);
        ec_predictor *q;
        cr_assert_eq(ec_predictor_load(path, &q, NULL), EC_OK);
        ec_predictor_destroy(q);
        size_t total = st.calls;
        for (size_t k = 1; k <= total; k++) {
            st = (tu_alloc_state){.fail_at = k};
            ec_status s = ec_predictor_create(ALL[i], NULL, &p, NULL);
            if (s == EC_OK) {
                s = ec_predictor_fit(p, t, NULL);
                if (s == EC_OK)
                    s = ec_predictor_save(p, path, NULL);
                ec_predictor_destroy(p);
            }
            cr_assert(s == EC_OK || s == EC_ERR_NOMEM, "%s: allocation %zu gave status %d",
                      ALL[i], k, s);
            if (s == EC_OK) {
                s = ec_predictor_load(path, &q, NULL);
                cr_assert(s == EC_OK || s == EC_ERR_NOMEM, "%s: load, allocation %zu: %d",
                          ALL[i], k, s);
                ec_predictor_destroy(s == EC_OK ? q : NULL);
            }
            cr_assert_eq(st.live, 0, "%s: allocation %zu: %ld blocks leaked", ALL[i], k,
                         st.live);
        }
    }
    tu_alloc_uninstall();
    ec_trace_destroy(t);
}

Test(predictors, a_damaged_model_file_names_its_field)
{
    const char *d = tu_tmpdir();
    ec_trace *t = synth(4, 8, 2, 2, 12, 7);
    const char *cases[][3] = {
        {"ngram", "\"keys\":\"", "\"keys\":\"!!"},
        {"logistic", "\"weights\":\"", "\"weights\":\"A"},
        {"temporal", "\"power\":", "\"power\":-"},
        {"mix", "\"weights\":[", "\"weights\":[7,"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.json", d, cases[i][0]);
        ec_predictor *p = fitted(cases[i][0], t, NULL);
        cr_assert_eq(ec_predictor_save(p, path, NULL), EC_OK);
        ec_predictor_destroy(p);
        char *text = tu_read(path, NULL), *at = strstr(text, cases[i][1]);
        cr_assert_not_null(at, "%s: no %s in the file", cases[i][0], cases[i][1]);
        size_t pre = (size_t)(at - text);
        char *bad = malloc(strlen(text) + 16);
        memcpy(bad, text, pre);
        strcpy(bad + pre, cases[i][2]);
        strcat(bad, at + strlen(cases[i][1]));
        tu_write(d, "bad.json", bad);
        char bpath[1024];
        snprintf(bpath, sizeof bpath, "%s/bad.json", d);
        ec_predictor *q = (void *)1;
        ec_error err = {0};
        cr_assert_eq(ec_predictor_load(bpath, &q, &err), EC_ERR_PARSE, "%s", cases[i][0]);
        cr_assert_null(q);
        cr_assert(strstr(err.message, "bad.json") && strstr(err.message, "field 'model."),
                  "%s: %s", cases[i][0], err.message);
        free(text);
        free(bad);
    }
    ec_trace_destroy(t);
}

/* ---- hand-computed cases ------------------------------------------------------------- */

/* Loads a trace written as JSONL text. */
static ec_trace *load_text(const char *text)
{
    const char *path = tu_write(tu_tmpdir(), "t.jsonl", text);
    ec_trace *t;
    ec_error err = {0};
    cr_assert_eq(ec_trace_load(&path, 1, NULL, &t, &err), EC_OK, "%s", err.message);
    return t;
}

Test(ngram, smoothed_counts_match_a_hand_computation)
{
    /* 2 layers, 6 experts, top-2. n = 5 tokens route {0,1} -> {2,3}; one
     * token routes {4,5} -> {4,5}. With a = 1 and the add-one prior of layer
     * 1, prior(2) = (5 + 1) / (12 + 6), and after the context {0,1}:
     *   P(2) = (5/2 + a prior(2)) / (5 + a),  P(4) = (0 + a prior(4)) / 6. */
    char text[4096];
    size_t n = 0;
    for (int tok = 0; tok < 6; tok++) {
        int x = tok < 5 ? 0 : 4, y = tok < 5 ? 2 : 4;
        n += (size_t)sprintf(text + n,
                             "{\"layer\": 0, \"experts\": [%d, %d], \"token_idx\": %d}\n"
                             "{\"layer\": 1, \"experts\": [%d, %d], \"token_idx\": %d}\n",
                             x, x + 1, tok, y, y + 1, tok);
    }
    ec_trace *t = load_text(text);
    ec_predictor_opts o = {.context = 1, .smoothing = 1.0};
    ec_predictor *p = fitted("ngram", t, &o);
    ec_history *h;
    cr_assert_eq(ec_history_create(2, 6, 2, 1, &h), EC_OK);
    const int16_t ctx[] = {1, 0}; /* the set, in another order */
    ec_history_observe(h, 0, ctx);
    float probs[6];
    cr_assert_eq(ec_predictor_predict(p, h, 1, probs), 1);
    double prior2 = 6.0 / 18.0, prior4 = 2.0 / 18.0;
    cr_assert_float_eq(probs[2], (2.5 + prior2) / 6.0, 1e-6);
    cr_assert_float_eq(probs[3], (2.5 + prior2) / 6.0, 1e-6);
    cr_assert_float_eq(probs[4], prior4 / 6.0, 1e-6);
    /* An unseen context backs off to the prior and abstains. */
    const int16_t unseen[] = {2, 3};
    ec_history_reset(h);
    ec_history_observe(h, 0, unseen);
    cr_assert_eq(ec_predictor_predict(p, h, 1, probs), 0);
    cr_assert_float_eq(probs[2], prior2, 1e-6);
    ec_history_destroy(h);
    ec_predictor_destroy(p);
    ec_trace_destroy(t);
}

Test(temporal, the_previous_token_leads_when_nothing_else_is_known)
{
    ec_trace *t = synth(4, 8, 2, 2, 30, 8);
    ec_predictor *p = fitted("temporal", t, NULL);
    ec_history *h;
    cr_assert_eq(ec_history_create(4, 8, 2, 64, &h), EC_OK);
    const int16_t a[] = {6, 7}, b[] = {1, 2};
    for (int32_t l = 0; l < 4; l++)
        ec_history_observe(h, l, l == 2 ? a : b);
    float probs[8];
    /* At the last layer, horizon 3 targets layer 2 of the next token: the
     * only earlier token used {6, 7} there. */
    cr_assert_eq(ec_predictor_predict(p, h, 3, probs), 1);
    int32_t idx[2];
    ec_rank(probs, 8, idx, 2);
    cr_assert((idx[0] == 6 && idx[1] == 7) || (idx[0] == 7 && idx[1] == 6), "%d %d", idx[0],
              idx[1]);
    /* Before any token: the prior, and an abstention. */
    ec_history_reset(h);
    ec_history_observe(h, 0, b);
    cr_assert_eq(ec_predictor_predict(p, h, 1, probs), 0);
    ec_history_destroy(h);
    ec_predictor_destroy(p);
    ec_trace_destroy(t);
}

Test(predictors, horizons_past_the_fitted_ones_fall_back_or_extend)
{
    ec_trace *t = synth(8, 8, 2, 2, 20, 9);
    ec_predictor_opts o = {.max_horizon = 2};
    float probs[8];
    ec_history *h;
    cr_assert_eq(ec_history_create(8, 8, 2, 64, &h), EC_OK);
    const ec_seq *sq = &t->seqs[0];
    for (size_t r = sq->row0; r < sq->row0 + 3; r++)
        for (int32_t l = 0; l < 8; l++)
            ec_history_observe(h, l, ec_trace_experts(t, r, l));
    for (size_t i = 0; i < N_MINE; i++) {
        ec_predictor *p = fitted(MINE[i], t, &o);
        cr_assert_eq(ec_predictor_predict(p, h, 0, probs), -1);
        cr_assert_eq(ec_predictor_predict(p, h, 9, probs), -1);
        int r = ec_predictor_predict(p, h, 5, probs);
        cr_assert(r == 0 || r == 1);
        if (strcmp(MINE[i], "ngram") == 0 || strcmp(MINE[i], "logistic") == 0 ||
            strcmp(MINE[i], "mix") == 0)
            cr_assert_eq(r, 0, "%s: no model for horizon 5, it must fall back", MINE[i]);
        ec_predictor_destroy(p);
    }
    ec_history_destroy(h);
    ec_trace_destroy(t);
}

Test(predictors, fit_cli_writes_a_model_that_loads)
{
    const char *d = tu_tmpdir();
    char trace[1024], model[1024];
    snprintf(trace, sizeof trace, "%s/s.jsonl", d);
    snprintf(model, sizeof model, "%s/m.json", d);
    cr_assert_eq(tu_cli(NULL, NULL, "synth --layers 4 --sequences 2 --tokens 16 -o %s", trace), 0);
    char *out, *err;
    cr_assert_eq(tu_cli(&out, &err, "fit %s -p logistic --epochs 2 --seed 3 -o %s", trace, model),
                 0, "%s", err);
    cr_assert(strstr(out, "fitted logistic on 2 sequences"), "%s", out);
    ec_predictor *p;
    ec_error e = {0};
    cr_assert_eq(ec_predictor_load(model, &p, &e), EC_OK, "%s", e.message);
    cr_assert_eq(ec_predictor_n_layers(p), 4);
    ec_predictor_destroy(p);
    free(out);
    free(err);
    cr_assert_eq(tu_cli(NULL, &err, "fit %s -o %s", trace, model), 2);
    cr_assert(strstr(err, "--predictor"), "%s", err);
    free(err);
    cr_assert_eq(tu_cli(NULL, &err, "fit %s -p nope -o %s", trace, model), 2);
    free(err);
    cr_assert_eq(tu_cli(&out, NULL, "fit --help"), 0);
    cr_assert(strstr(out, "--output") && strstr(out, "--tokens-back") && strstr(out, "mix"),
              "%s", out);
    free(out);
}
