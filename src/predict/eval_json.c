/* The evaluation report as JSON (the key names are a contract other tools read). */
#include "../core/internal.h"
#include "expertcast/eval.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>

/* A number, or null for NaN / infinity. NULL when out of memory. */
static cJSON *num(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

/* Adds item under key; false (item freed) when either is NULL. */
static int add(cJSON *obj, const char *key, cJSON *item)
{
    if (!obj || !item) {
        cJSON_Delete(item);
        return 0;
    }
    return cJSON_AddItemToObject(obj, key, item) ? 1 : (cJSON_Delete(item), 0);
}

/* {"1": v[0], "2": v[1], ...} keyed by the report's k values. */
static cJSON *by_k(const ec_eval_report *r, const double *v)
{
    cJSON *o = cJSON_CreateObject();
    char key[16];
    for (size_t i = 0; o && i < r->n_ks; i++) {
        snprintf(key, sizeof key, "%d", r->ks[i]);
        if (!add(o, key, num(v[i]))) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

static cJSON *pair(ec_ci ci)
{
    cJSON *a = cJSON_CreateArray();
    double v[2] = {ci.lo, ci.hi};
    for (int i = 0; a && i < 2; i++) {
        cJSON *x = num(v[i]);
        if (!x || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(x);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

/* {"method": ..., "top1": [lo, hi], "recall_at_k": {"1": [lo, hi], ...}} */
static cJSON *ci_object(const ec_eval_report *r, const char *method, size_t units, ec_ci top1,
                        const ec_ci *recall)
{
    cJSON *o = cJSON_CreateObject(), *rk = cJSON_CreateObject();
    char key[16];
    int ok = o && rk;
    for (size_t i = 0; ok && i < r->n_ks; i++) {
        snprintf(key, sizeof key, "%d", r->ks[i]);
        ok = add(rk, key, pair(recall[i]));
    }
    ok = ok && add(o, "method", cJSON_CreateString(method)) &&
         add(o, "resamples", cJSON_CreateNumber(r->resamples)) &&
         add(o, "units", cJSON_CreateNumber((double)units)) && add(o, "top1", pair(top1));
    if (ok) {
        ok = add(o, "recall_at_k", rk);
        rk = NULL;
    }
    cJSON_Delete(rk);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *per_layer(const ec_eval_report *r, const ec_eval_result *x)
{
    cJSON *o = cJSON_CreateObject(), *rec = cJSON_CreateArray(), *n = cJSON_CreateArray();
    int ok = o && rec && n && add(o, "k", cJSON_CreateNumber(r->k));
    for (int32_t l = 0; ok && l < r->n_layers; l++) {
        cJSON *a = num(x->layer_recall[l]), *b = cJSON_CreateNumber((double)x->layer_n[l]);
        ok = a && b && cJSON_AddItemToArray(rec, a);
        if (!ok) {
            cJSON_Delete(a);
            cJSON_Delete(b);
            break;
        }
        ok = cJSON_AddItemToArray(n, b) ? 1 : (cJSON_Delete(b), 0);
    }
    if (ok) {
        ok = add(o, "recall", rec);
        rec = NULL;
        ok = ok && add(o, "n", n);
        n = NULL;
    }
    cJSON_Delete(rec);
    cJSON_Delete(n);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *result_object(const ec_eval_report *r, const ec_eval_result *x)
{
    cJSON *o = cJSON_CreateObject(), *cov = cJSON_CreateObject();
    int ok = o && cov && add(o, "predictor", cJSON_CreateString(x->predictor)) &&
             add(o, "horizon", cJSON_CreateNumber(x->horizon)) &&
             add(o, "n", cJSON_CreateNumber((double)x->n)) &&
             add(o, "n_covered", cJSON_CreateNumber((double)x->n_covered)) &&
             add(o, "n_seqs", cJSON_CreateNumber((double)x->n_seqs)) &&
             add(o, "coverage", num(x->coverage)) && add(o, "top1", num(x->top1)) &&
             add(o, "top1_in_set", num(x->top1_in_set)) &&
             add(o, "recall_at_k", by_k(r, x->recall_at_k)) &&
             add(o, "precision_at_k", by_k(r, x->precision_at_k)) &&
             add(o, "exact_set", num(x->exact_set)) &&
             add(o, "primary_in_top2", num(x->primary_in_top2)) &&
             add(o, "ci95", ci_object(r, "bootstrap over sequences", x->n_seqs, x->ci_top1,
                                      x->ci_recall_at_k)) &&
             add(o, "ci95_token_block",
                 ci_object(r, "moving-block bootstrap over tokens (correlated: narrower)",
                           (size_t)r->block, x->block_ci_top1, x->block_ci_recall_at_k)) &&
             add(cov, "n", cJSON_CreateNumber((double)x->n_covered)) &&
             add(cov, "top1", num(x->covered_top1)) &&
             add(cov, "recall_at_k", by_k(r, x->covered_recall_at_k));
    if (ok) {
        ok = add(o, "covered", cov);
        cov = NULL;
    }
    ok = ok && add(o, "per_layer", per_layer(r, x)) && add(o, "fit_ms", num(x->fit_ms));
    cJSON_Delete(cov);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *report_object(const ec_eval_report *r)
{
    cJSON *o = cJSON_CreateObject(), *shape = cJSON_CreateObject(), *rnd = cJSON_CreateObject();
    cJSON *results = cJSON_CreateArray();
    double rec[EC_EVAL_MAX_KS], prec[EC_EVAL_MAX_KS];
    for (size_t i = 0; i < r->n_ks; i++) {
        rec[i] = (double)r->ks[i] / r->n_experts;
        prec[i] = (double)r->k / r->n_experts;
    }
    int ok = o && shape && rnd && results && add(o, "split", cJSON_CreateString(ec_split_name(r->split))) &&
             add(o, "folds", cJSON_CreateNumber((double)r->folds)) &&
             add(shape, "n_layers", cJSON_CreateNumber(r->n_layers)) &&
             add(shape, "n_experts", cJSON_CreateNumber(r->n_experts)) &&
             add(shape, "k", cJSON_CreateNumber(r->k)) &&
             add(shape, "test_sequences", cJSON_CreateNumber((double)r->n_test_seqs)) &&
             add(shape, "test_tokens", cJSON_CreateNumber((double)r->n_test_tokens)) &&
             add(rnd, "top1", num(1.0 / r->n_experts)) && add(rnd, "recall_at_k", by_k(r, rec)) &&
             add(rnd, "precision_at_k", by_k(r, prec));
    if (ok && r->split == EC_SPLIT_TOKEN)
        ok = add(o, "token_fraction", num(r->token_fraction)) &&
             add(o, "warning", cJSON_CreateString("token split: training and test tokens come "
                                                  "from the same prompts (leaks)"));
    if (ok) {
        ok = add(o, "shape", shape);
        shape = NULL;
        ok = ok && add(o, "random", rnd);
        rnd = NULL;
    }
    for (size_t i = 0; ok && i < r->n_results; i++) {
        cJSON *x = result_object(r, &r->results[i]);
        ok = x && cJSON_AddItemToArray(results, x);
        if (!ok)
            cJSON_Delete(x);
    }
    if (ok) {
        ok = add(o, "results", results);
        results = NULL;
    }
    cJSON_Delete(shape);
    cJSON_Delete(rnd);
    cJSON_Delete(results);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

ec_status ec_eval_write_json(const ec_eval_report *r, FILE *f, ec_error *err)
{
    if (!r || !f)
        return ec_error_set(err, EC_ERR_INVALID, "ec_eval_write_json: NULL argument");
    cJSON *o = report_object(r);
    char *text = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!text)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory writing the report");
    int bad = fputs(text, f) < 0 || fputc('\n', f) == EOF;
    ec_free(text);
    return bad ? ec_error_set(err, EC_ERR_IO, "cannot write the report") : EC_OK;
}
