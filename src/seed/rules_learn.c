/* Learning the seed's rules: from journey files (rules create) or from the
 * complete rows of a trace (the seed predictors' fit). */
#include "rules.h"

#include <string.h>

static ec_status vote_case(void *ctx, ec_seed_level lv, const int32_t *key, int32_t target)
{
    return seed_rules_vote(ctx, lv, key, target);
}

/* Votes every case of row `row` of t. prim / sec have t->n_layers entries. */
static ec_status vote_row(ec_seed_rules *r, const ec_trace *t, size_t row, int32_t *prim,
                          int32_t *sec)
{
    seed_row_journey(t, row, prim, sec);
    r->n_journeys++;
    return seed_journey_cases(prim, sec, t->n_layers, vote_case, r);
}

static int32_t max_expert(const ec_trace *t)
{
    int32_t m = -1;
    size_t n = t->n_rows * (size_t)t->n_layers * (size_t)t->k;
    for (size_t i = 0; i < n; i++)
        if (t->experts[i] > m)
            m = t->experts[i];
    return m;
}

ec_status ec_seed_rules_create(const char *const *paths, size_t n_paths, int32_t n_experts,
                               ec_seed_rules **out, ec_error *err)
{
    if (!out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_seed_rules_create: out is NULL");
    *out = NULL;
    if (!paths || n_paths == 0)
        return ec_error_set(err, EC_ERR_INVALID, "rules create: no journey file given");
    if (n_experts < 0 || n_experts > EC_MAX_EXPERTS)
        return ec_error_set(err, EC_ERR_INVALID, "rules create: %d experts is out of range",
                            n_experts);
    ec_seed_rules *r = seed_rules_new();
    if (!r || !(r->train_files = ec_calloc(n_paths, sizeof *r->train_files))) {
        ec_seed_rules_destroy(r);
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory creating rules");
    }
    ec_status s = EC_OK;
    int32_t max_id = -1;
    int32_t *prim = NULL, *sec = NULL;
    size_t cap_p = 0, cap_s = 0;
    const char *first_k_path = NULL;
    for (size_t i = 0; i < n_paths && s == EC_OK; i++) {
        if (!(r->train_files[i] = ec_strdup(paths[i]))) {
            s = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
            break;
        }
        r->n_train++;
        ec_trace *t = NULL;
        /* A journey file is read with the raw reader; its own largest layer
         * + 1 is its length, so a missing top layer just ends it early. */
        if ((s = ec_trace_load(&paths[i], 1, NULL, &t, err)))
            break;
        if (r->k && t->k != r->k) {
            s = ec_error_set(err, EC_ERR_PARSE,
                             "%s: field 'experts': top-%d here but top-%d in %s", paths[i], t->k,
                             r->k, first_k_path);
        } else if (ec_grow((void **)&prim, &cap_p, (size_t)t->n_layers, sizeof *prim) ||
                   ec_grow((void **)&sec, &cap_s, (size_t)t->n_layers, sizeof *sec)) {
            s = ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", paths[i]);
        } else {
            if (!r->k) {
                r->k = t->k;
                first_k_path = paths[i];
            }
            r->n_layers = EC_MAX(r->n_layers, t->n_layers);
            max_id = EC_MAX(max_id, max_expert(t));
            for (size_t row = 0; row < t->n_rows && s == EC_OK; row++)
                if (vote_row(r, t, row, prim, sec))
                    s = ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", paths[i]);
        }
        ec_trace_destroy(t);
    }
    ec_free(prim);
    ec_free(sec);
    if (s == EC_OK && n_experts > 0 && max_id >= n_experts)
        s = ec_error_set(err, EC_ERR_RANGE,
                         "rules create: expert id %d seen but the model has %d experts", max_id,
                         n_experts);
    if (s) {
        ec_seed_rules_destroy(r);
        return s;
    }
    seed_rules_finish(r);
    if (n_experts > 0) {
        r->n_experts = n_experts;
        r->experts_source = EC_SEED_SHAPE_GIVEN;
    } else {
        r->n_experts = max_id + 1;
        r->experts_source = EC_SEED_SHAPE_INFERRED;
    }
    *out = r;
    return EC_OK;
}

ec_status ec_seed_rules_fit(const ec_trace *t, const uint8_t *seq_mask, ec_seed_rules **out,
                            ec_error *err)
{
    if (!out || !t)
        return ec_error_set(err, EC_ERR_INVALID, "ec_seed_rules_fit: NULL argument");
    *out = NULL;
    ec_seed_rules *r = seed_rules_new();
    int32_t *prim = ec_malloc((size_t)t->n_layers * sizeof *prim);
    int32_t *sec = ec_malloc((size_t)t->n_layers * sizeof *sec);
    ec_status s = r && prim && sec ? EC_OK : EC_ERR_NOMEM;
    for (size_t q = 0; q < t->n_seqs && s == EC_OK; q++) {
        if (seq_mask && !seq_mask[q])
            continue;
        const ec_seq *sq = &t->seqs[q];
        for (size_t row = sq->row0; row < sq->row0 + sq->n_rows && s == EC_OK; row++)
            if (t->complete[row])
                s = vote_row(r, t, row, prim, sec);
    }
    ec_free(prim);
    ec_free(sec);
    if (s) {
        ec_seed_rules_destroy(r);
        return ec_error_set(err, s, "out of memory learning the seed rules");
    }
    seed_rules_finish(r);
    r->n_layers = t->n_layers;
    r->n_experts = t->n_experts;
    r->k = t->k;
    r->experts_source = EC_SEED_SHAPE_GIVEN;
    *out = r;
    return EC_OK;
}
