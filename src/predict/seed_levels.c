/*
 * The seed's lookup rules as predictors:
 *   seed-l1 ... seed-l4  one level, horizon 1 inside the token;
 *   seed-l5              the skip rules, horizons 2, 4 and 8 inside the token;
 *   hybrid               the seed's recommendation: level3, else level2, else
 *                        level1 (horizon 1), the skip rule (2, 4, 8), else the
 *                        layer prior; so it always answers (returns 1).
 * A one-level predictor abstains (returns 0 with the prior) when no rule
 * matches, for any other horizon, and for a target in the next token (the
 * seed's rules never cross tokens).
 *
 * Distribution of an answer: the rule's expert gets
 *   m = 1/2 + 1/2 * votes / (samples + 1)          (in [0.5, 1))
 * and the other experts share 1 - m in proportion to the layer prior, so
 * the rule's expert is always the argmax and the others keep a ranking.
 *
 * The model is an ec_seed_rules learnt with the same majority vote as
 * "rules create" (ties: first seen), from the complete rows in trace order.
 */
#include "predictor.h"
#include "../seed/rules.h"

#include <string.h>

typedef enum seed_mode { MODE_L1, MODE_L2, MODE_L3, MODE_L4, MODE_L5, MODE_HYBRID } seed_mode;

static seed_mode mode_of(const ec_predictor *p)
{
    const char *n = p->vt->name;
    if (strcmp(n, "hybrid") == 0)
        return MODE_HYBRID;
    return (seed_mode)(n[6] - '1'); /* "seed-lN" */
}

static void seed_free(ec_predictor *p)
{
    ec_seed_rules_destroy(p->state);
    p->state = NULL;
}

static ec_status seed_fit(ec_predictor *p, const ec_trace *t, const uint8_t *seq_mask)
{
    ec_seed_rules *r;
    ec_error err = {0};
    ec_status s = ec_seed_rules_fit(t, seq_mask, &r, &err);
    if (s)
        return ec_predictor_fail(p, s, "%s", err.message);
    seed_free(p);
    p->state = r;
    return EC_OK;
}

/* The rule of level lv for the history's position, or NULL. */
static const ec_seed_rule *lookup(const ec_seed_rules *r, const ec_history *h, ec_seed_level lv)
{
    int32_t n = ec_history_layer(h);
    const int16_t *cur = n >= 0 ? ec_history_get(h, 0, n) : NULL;
    if (!cur)
        return NULL;
    int32_t key[4] = {n, cur[0], 0, 0};
    const int16_t *p1, *p2;
    switch (lv) {
    case EC_SEED_L2:
        if (n < 1 || !(p1 = ec_history_get(h, 0, n - 1)))
            return NULL;
        key[1] = p1[0];
        key[2] = cur[0];
        break;
    case EC_SEED_L3:
        if (n < 2 || !(p1 = ec_history_get(h, 0, n - 1)) || !(p2 = ec_history_get(h, 0, n - 2)))
            return NULL;
        key[1] = p2[0];
        key[2] = p1[0];
        key[3] = cur[0];
        break;
    case EC_SEED_L4:
        if (ec_history_k(h) < 2)
            return NULL;
        key[2] = cur[1];
        break;
    default:
        break;
    }
    return ec_seed_rules_find(r, lv, key);
}

/* probs = the rule's answer over the prior of the target layer. */
static void answer(const ec_predictor *p, const ec_seed_rule *u, int32_t target, float *probs)
{
    ec_predictor_prior(p, target, probs);
    int32_t e = u->prediction;
    double m = 0.5 + 0.5 * (double)u->votes / ((double)u->samples + 1.0);
    double rest = 1.0 - (double)probs[e];
    if (rest > 0) {
        float scale = (float)((1.0 - m) / rest);
        for (int32_t i = 0; i < p->n_experts; i++)
            probs[i] *= scale;
        probs[e] = (float)m;
    } else {
        memset(probs, 0, (size_t)p->n_experts * sizeof *probs);
        probs[e] = 1.0f;
    }
}

static ec_seed_level skip_level(int32_t horizon)
{
    switch (horizon) {
    case 2: return EC_SEED_SKIP2;
    case 4: return EC_SEED_SKIP4;
    case 8: return EC_SEED_SKIP8;
    default: return EC_SEED_N_LEVELS;
    }
}

static int seed_predict(const ec_predictor *p, const ec_history *h, int32_t target,
                        int next_token, int32_t horizon, float *probs)
{
    const ec_seed_rules *r = p->state;
    seed_mode mode = mode_of(p);
    const ec_seed_rule *u = NULL;
    if (r && !next_token) {
        if (horizon == 1 && mode <= MODE_L4) {
            u = lookup(r, h, (ec_seed_level)mode);
        } else if (horizon == 1 && mode == MODE_HYBRID) {
            if (!(u = lookup(r, h, EC_SEED_L3)) && !(u = lookup(r, h, EC_SEED_L2)))
                u = lookup(r, h, EC_SEED_L1);
        } else if ((mode == MODE_L5 || mode == MODE_HYBRID) &&
                   skip_level(horizon) != EC_SEED_N_LEVELS) {
            u = lookup(r, h, skip_level(horizon));
        }
    }
    if (u) {
        answer(p, u, target, probs);
        return 1;
    }
    ec_predictor_prior(p, target, probs);
    return mode == MODE_HYBRID;
}

static ec_status seed_save(const ec_predictor *p, cJSON *model)
{
    if (!p->state)
        return EC_ERR_STATE;
    cJSON *rules = seed_rules_to_cjson(p->state);
    if (!rules || !cJSON_AddItemToObject(model, "rules", rules)) {
        cJSON_Delete(rules);
        return EC_ERR_NOMEM;
    }
    return EC_OK;
}

static ec_status seed_load(ec_predictor *p, const cJSON *model, ec_error *err)
{
    ec_seed_rules *r;
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(model, "rules");
    if (!cJSON_IsObject(rules))
        return ec_error_set(err, EC_ERR_PARSE, "predictor file: field 'model.rules': expected "
                                               "an object");
    ec_status s = seed_rules_from_cjson(rules, p->n_layers, p->n_experts, p->k,
                                        "predictor file", &r, err);
    if (s)
        return s;
    seed_free(p);
    p->state = r;
    return EC_OK;
}

#define SEED_VT(ident, label)                                                                      \
    const ec_predictor_vt ident = {                                                                \
        .name = label,                                                                             \
        .free_state = seed_free,                                                                   \
        .fit = seed_fit,                                                                           \
        .predict = seed_predict,                                                                   \
        .save = seed_save,                                                                         \
        .load = seed_load,                                                                         \
    }

SEED_VT(ec_seed_l1_vt, "seed-l1");
SEED_VT(ec_seed_l2_vt, "seed-l2");
SEED_VT(ec_seed_l3_vt, "seed-l3");
SEED_VT(ec_seed_l4_vt, "seed-l4");
SEED_VT(ec_seed_l5_vt, "seed-l5");
SEED_VT(ec_hybrid_vt, "hybrid");

/* Creates the seed predictor `name` (NULL: hybrid); EC_ERR_INVALID when it
 * is not one. */
static ec_status seed_create(const char *name, ec_predictor **out, ec_error *err)
{
    ec_predictor *p;
    ec_status s = ec_predictor_create(name ? name : "hybrid", NULL, &p, err);
    if (s)
        return s;
    if (p->vt->fit != seed_fit) {
        ec_predictor_destroy(p);
        return ec_error_set(err, EC_ERR_INVALID,
                            "predictor '%s' is not a seed predictor (seed-l1..seed-l5, hybrid)",
                            name);
    }
    *out = p;
    return EC_OK;
}

/* Gives p the rules r (taken in every case) and their shape; on success
 * *out = p, on failure p is destroyed. */
static ec_status seed_adopt(ec_predictor *p, ec_seed_rules *r, const char *path,
                            ec_predictor **out, ec_error *err)
{
    p->state = r;
    p->n_layers = ec_seed_rules_n_layers(r);
    p->n_experts = ec_seed_rules_n_experts(r);
    p->k = ec_seed_rules_k(r);
    /* A rules file has no layer frequencies: the prior is uniform. */
    size_t n = (size_t)p->n_layers * (size_t)p->n_experts;
    if (!(p->prior = ec_malloc(n * sizeof *p->prior))) {
        ec_predictor_destroy(p);
        return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < n; i++)
        p->prior[i] = 1.0f / (float)p->n_experts;
    *out = p;
    return EC_OK;
}

ec_status ec_predictor_load_seed_rules(const char *path, const char *name, ec_predictor **out,
                                       ec_error *err)
{
    if (!out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_predictor_load_seed_rules: out is NULL");
    *out = NULL;
    if (!path)
        return ec_error_set(err, EC_ERR_INVALID, "ec_predictor_load_seed_rules: path is NULL");
    ec_predictor *p = NULL;
    ec_status s = seed_create(name, &p, err);
    if (s)
        return s;
    ec_seed_rules *r;
    if ((s = ec_seed_rules_load(path, &r, err))) {
        ec_predictor_destroy(p);
        return s;
    }
    return seed_adopt(p, r, path, out, err);
}

ec_status ec_predictor_seed_rules_json(const cJSON *root, const char *path, const char *name,
                                       ec_predictor **out, ec_error *err)
{
    *out = NULL;
    ec_predictor *p = NULL;
    ec_status s = seed_create(name, &p, err);
    if (s)
        return s;
    ec_seed_rules *r;
    if ((s = seed_rules_parse(root, path, &r, err))) {
        ec_predictor_destroy(p);
        return s;
    }
    return seed_adopt(p, r, path, out, err);
}
