/* rules evaluate: coverage and accuracy of each level on test journeys, and
 * the seed's results JSON. */
#include "rules.h"
#include "pywrite.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double ec_seed_accuracy(const ec_seed_score *s)
{
    return s && s->total ? (double)s->correct / (double)s->total * 100.0 : 0.0;
}

double ec_seed_vs_random(const ec_seed_score *s, int32_t n_experts)
{
    return n_experts > 0 ? ec_seed_accuracy(s) / (100.0 / (double)n_experts) : 0.0;
}

double ec_seed_round2(double x)
{
    /* printf rounds the exact binary value correctly, ties to even, as
     * Python's round(x, 2) does. */
    char buf[64];
    snprintf(buf, sizeof buf, "%.2f", x);
    return strtod(buf, NULL);
}

ec_seed_level ec_seed_eval_best(const ec_seed_eval *e)
{
    ec_seed_level best = EC_SEED_L1;
    double acc = -1;
    for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++) {
        double a = ec_seed_round2(ec_seed_accuracy(&e->total[lv]));
        if (a > acc) {
            acc = a;
            best = (ec_seed_level)lv;
        }
    }
    return best;
}

void ec_seed_eval_destroy(ec_seed_eval *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n_files; i++)
        ec_free(e->files[i]);
    ec_free(e->files);
    ec_free(e->journeys);
    ec_free(e->per_file);
    ec_free(e);
}

typedef struct score_ctx {
    const ec_seed_rules *r;
    ec_seed_score *scores; /* [EC_SEED_N_LEVELS] of the current file */
} score_ctx;

static ec_status score_case(void *ctx, ec_seed_level lv, const int32_t *key, int32_t target)
{
    score_ctx *c = ctx;
    ec_seed_score *s = &c->scores[lv];
    s->cases++;
    const ec_seed_rule *u = ec_seed_rules_find(c->r, lv, key);
    if (u) {
        s->total++;
        s->correct += u->prediction == target;
    }
    return EC_OK;
}

ec_status ec_seed_evaluate(const ec_seed_rules *r, const char *const *paths, size_t n_paths,
                           int32_t n_experts, ec_seed_eval **out, ec_error *err)
{
    if (!out || !r)
        return ec_error_set(err, EC_ERR_INVALID, "ec_seed_evaluate: NULL argument");
    *out = NULL;
    if (!paths || n_paths == 0)
        return ec_error_set(err, EC_ERR_INVALID, "rules evaluate: no test file given");
    if (n_experts < 0 || n_experts > EC_MAX_EXPERTS)
        return ec_error_set(err, EC_ERR_INVALID, "rules evaluate: %d experts is out of range",
                            n_experts);
    ec_seed_eval *e = ec_calloc(1, sizeof *e);
    if (e) {
        e->files = ec_calloc(n_paths, sizeof *e->files);
        e->journeys = ec_calloc(n_paths, sizeof *e->journeys);
        e->per_file = ec_calloc(n_paths * EC_SEED_N_LEVELS, sizeof *e->per_file);
    }
    if (!e || !e->files || !e->journeys || !e->per_file) {
        ec_seed_eval_destroy(e);
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory evaluating rules");
    }
    ec_status s = EC_OK;
    int32_t *prim = NULL, *sec = NULL;
    size_t cap_p = 0, cap_s = 0;
    int32_t max_id = -1;
    for (size_t i = 0; i < n_paths && s == EC_OK; i++) {
        if (!(e->files[i] = ec_strdup(paths[i]))) {
            s = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
            break;
        }
        e->n_files++;
        ec_trace *t = NULL;
        if ((s = ec_trace_load(&paths[i], 1, NULL, &t, err)))
            break;
        if (ec_grow((void **)&prim, &cap_p, (size_t)t->n_layers, sizeof *prim) ||
            ec_grow((void **)&sec, &cap_s, (size_t)t->n_layers, sizeof *sec)) {
            s = ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", paths[i]);
        } else {
            score_ctx c = {r, e->per_file + i * EC_SEED_N_LEVELS};
            for (size_t row = 0; row < t->n_rows; row++) {
                seed_row_journey(t, row, prim, sec);
                seed_journey_cases(prim, sec, t->n_layers, score_case, &c);
            }
            e->journeys[i] = t->n_rows;
            max_id = EC_MAX(max_id, t->n_experts - 1);
        }
        ec_trace_destroy(t);
    }
    ec_free(prim);
    ec_free(sec);
    if (s) {
        ec_seed_eval_destroy(e);
        return s;
    }
    for (size_t i = 0; i < e->n_files; i++)
        for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++) {
            const ec_seed_score *f = &e->per_file[i * EC_SEED_N_LEVELS + (size_t)lv];
            e->total[lv].correct += f->correct;
            e->total[lv].total += f->total;
            e->total[lv].cases += f->cases;
        }
    /* The expert count behind "vs random". */
    if (n_experts > 0) {
        e->n_experts = n_experts;
        e->experts_source = EC_SEED_SHAPE_GIVEN;
    } else if (r->experts_source == EC_SEED_SHAPE_GIVEN) {
        e->n_experts = r->n_experts;
        e->experts_source = EC_SEED_SHAPE_GIVEN;
    } else {
        /* A lower bound: widen it with what the tests show. */
        e->n_experts = EC_MAX(r->n_experts, max_id + 1);
        e->experts_source = r->experts_source;
        if (e->n_experts > r->n_experts)
            e->experts_source = EC_SEED_SHAPE_INFERRED;
    }
    *out = e;
    return EC_OK;
}

static void write_score(pyw *w, const ec_seed_score *s, int32_t n_experts)
{
    pyw_begin_object(w);
    pyw_key(w, "correct");
    pyw_int(w, (int64_t)s->correct);
    pyw_key(w, "total");
    pyw_int(w, (int64_t)s->total);
    pyw_key(w, "accuracy_percent");
    pyw_float(w, ec_seed_round2(ec_seed_accuracy(s)));
    pyw_key(w, "vs_random");
    pyw_float(w, ec_seed_round2(ec_seed_vs_random(s, n_experts)));
    pyw_end_object(w);
}

ec_status ec_seed_eval_write(const ec_seed_eval *e, const ec_seed_rules *r,
                             const char *rules_file, const char *timestamp, FILE *f,
                             ec_error *err)
{
    if (!e || !r || !f)
        return ec_error_set(err, EC_ERR_INVALID, "ec_seed_eval_write: NULL argument");
    static const char *const SOURCE_NAMES[] = {"given", "inferred", "default"};
    pyw w;
    pyw_init(&w, f);
    pyw_begin_object(&w);
    pyw_key(&w, "metadata");
    pyw_begin_object(&w);
    pyw_key(&w, "timestamp");
    pyw_string(&w, timestamp ? timestamp : "");
    pyw_key(&w, "rules_file");
    pyw_string(&w, rules_file ? rules_file : "");
    pyw_key(&w, "training_files");
    pyw_begin_array(&w);
    for (size_t i = 0; i < r->n_train; i++)
        pyw_string(&w, r->train_files[i]);
    pyw_end_array(&w);
    pyw_key(&w, "test_files");
    pyw_begin_array(&w);
    for (size_t i = 0; i < e->n_files; i++)
        pyw_string(&w, e->files[i]);
    pyw_end_array(&w);
    pyw_key(&w, "num_test_files");
    pyw_int(&w, (int64_t)e->n_files);
    pyw_key(&w, "n_experts");
    pyw_int(&w, e->n_experts);
    pyw_key(&w, "n_experts_source");
    pyw_string(&w, SOURCE_NAMES[e->experts_source]);
    pyw_key(&w, "random_baseline_percent");
    pyw_float(&w, 100.0 / (double)e->n_experts);
    pyw_end_object(&w);
    pyw_key(&w, "results");
    pyw_begin_object(&w);
    for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++) {
        pyw_key(&w, ec_seed_level_name((ec_seed_level)lv));
        write_score(&w, &e->total[lv], e->n_experts);
    }
    pyw_end_object(&w);
    ec_seed_level best = ec_seed_eval_best(e);
    pyw_key(&w, "best_level");
    pyw_begin_object(&w);
    pyw_key(&w, "name");
    pyw_string(&w, ec_seed_level_name(best));
    pyw_key(&w, "accuracy_percent");
    pyw_float(&w, ec_seed_round2(ec_seed_accuracy(&e->total[best])));
    pyw_end_object(&w);
    pyw_key(&w, "coverage");
    pyw_begin_object(&w);
    for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++) {
        const ec_seed_score *s = &e->total[lv];
        pyw_key(&w, ec_seed_level_name((ec_seed_level)lv));
        pyw_begin_object(&w);
        pyw_key(&w, "covered");
        pyw_int(&w, (int64_t)s->total);
        pyw_key(&w, "cases");
        pyw_int(&w, (int64_t)s->cases);
        pyw_key(&w, "coverage_percent");
        pyw_float(&w, ec_seed_round2(s->cases ? 100.0 * (double)s->total / (double)s->cases : 0.0));
        pyw_end_object(&w);
    }
    pyw_end_object(&w);
    pyw_end_object(&w);
    return pyw_finish(&w, err);
}
