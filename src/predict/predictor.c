/* The predictor interface: registry, common fit (layer prior), save/load. */
#include "predictor.h"
#include "../core/json.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Registry: one row per predictor module. */
static const ec_predictor_vt *const registry[] = {
    &ec_prior_vt,
    &ec_seed_l1_vt, &ec_seed_l2_vt, &ec_seed_l3_vt, &ec_seed_l4_vt, &ec_seed_l5_vt,
    &ec_hybrid_vt,
    &ec_ngram_vt,
    &ec_temporal_vt,
    &ec_logistic_vt,
    &ec_mix_vt,
    &ec_hint_vt, /* not in names[]: it reads the runtime's guesses, not routing */
};

static const char *const names[] = {
    "prior",
    "seed-l1", "seed-l2", "seed-l3", "seed-l4", "seed-l5", "hybrid",
    "ngram",
    "temporal",
    "logistic",
    "mix",
    NULL,
};

const char *const *ec_predictor_names(void) { return names; }

ec_status ec_predictor_fail(const ec_predictor *p, ec_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(((ec_predictor *)p)->errmsg, sizeof p->errmsg, fmt, ap);
    va_end(ap);
    return s;
}

static const ec_predictor_vt *find_vt(const char *name)
{
    for (size_t i = 0; i < EC_COUNTOF(registry); i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

ec_status ec_predictor_create(const char *name, const ec_predictor_opts *opts,
                              ec_predictor **out, ec_error *err)
{
    if (!out || !name)
        return ec_error_set(err, EC_ERR_INVALID, "ec_predictor_create: NULL argument");
    *out = NULL;
    const ec_predictor_vt *vt = find_vt(name);
    if (!vt)
        return ec_error_set(err, EC_ERR_NOT_FOUND, "unknown predictor '%s'", name);
    ec_predictor *p = ec_calloc(1, sizeof *p);
    if (!p)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory creating predictor '%s'", name);
    p->vt = vt;
    if (opts)
        p->opts = *opts;
    if (p->opts.max_horizon <= 0)
        p->opts.max_horizon = 4;
    if (p->opts.smoothing <= 0)
        p->opts.smoothing = 1.0;
    ec_status s = vt->init ? vt->init(p) : EC_OK;
    if (s) {
        ec_error_set(err, s, "predictor '%s': %s", name,
                     p->errmsg[0] ? p->errmsg : ec_status_str(s));
        ec_predictor_destroy(p);
        return s;
    }
    *out = p;
    return EC_OK;
}

void ec_predictor_destroy(ec_predictor *p)
{
    if (!p)
        return;
    if (p->vt->free_state)
        p->vt->free_state(p);
    ec_free(p->prior);
    ec_free(p);
}

const char *ec_predictor_name(const ec_predictor *p) { return p->vt->name; }
const char *ec_predictor_errmsg(const ec_predictor *p) { return p->errmsg; }
int32_t ec_predictor_n_layers(const ec_predictor *p) { return p->n_layers; }
int32_t ec_predictor_history_depth(const ec_predictor *p) { return p->opts.tokens_back; }
int32_t ec_predictor_n_experts(const ec_predictor *p) { return p->n_experts; }

void ec_normalize(float *probs, int32_t n)
{
    double sum = 0;
    for (int32_t i = 0; i < n; i++)
        sum += probs[i];
    if (!(sum > 0) || !isfinite(sum)) {
        for (int32_t i = 0; i < n; i++)
            probs[i] = 1.0f / (float)n;
        return;
    }
    /* Divide in double: 1 / sum overflows float when sum is subnormal. */
    for (int32_t i = 0; i < n; i++)
        probs[i] = (float)((double)probs[i] / sum);
}

void ec_predictor_prior(const ec_predictor *p, int32_t layer, float *probs)
{
    memcpy(probs, p->prior + (size_t)layer * (size_t)p->n_experts,
           (size_t)p->n_experts * sizeof *probs);
}

ec_status ec_predictor_fit(ec_predictor *p, const ec_trace *t, const uint8_t *seq_mask)
{
    if (!p || !t)
        return EC_ERR_INVALID;
    p->errmsg[0] = '\0';
    size_t n = (size_t)t->n_layers * (size_t)t->n_experts;
    /* the prior and up to two more dense layer x expert tables (temporal's
     * halves), sized by the largest ids: checked before any is allocated */
    char what[160];
    snprintf(what, sizeof what,
             "its layer x expert tables (%d layers x %d experts, from the largest ids)",
             (int)t->n_layers, (int)t->n_experts);
    ec_error merr = {0};
    size_t need = ec_mul_size(n, 3 * sizeof(float));
    if (ec_memory_check(need, what, &merr))
        return ec_predictor_fail(p, EC_ERR_RANGE, "%s", merr.message);
    /* By default the tables must also follow the data: beyond 64 MiB, at
     * most 16 times the trace's routing matrix (two records naming layer
     * 4091 and expert 32766 would ask for 1.5 GiB). A limit set explicitly
     * replaces this rule. */
    size_t data = ec_mul_size(ec_mul_size(t->n_rows, (size_t)t->n_layers * (size_t)t->k),
                              sizeof *t->experts);
    if (!ec_memory_limit_explicit() && need > ((size_t)64 << 20) &&
        need / 16 > data) {
        char nb[40], db[40];
        return ec_predictor_fail(
            p, EC_ERR_RANGE,
            "%s needs %s, more than 16 times the %s of routing data present (%zu tokens): the "
            "largest ids, not the data, set the size (set EXPERTCAST_MAX_MEMORY to allow it)",
            what, ec_fmt_bytes(need, nb, sizeof nb), ec_fmt_bytes(data, db, sizeof db),
            t->n_rows);
    }
    float *prior = ec_calloc(n, sizeof *prior);
    if (!prior)
        return ec_predictor_fail(p, EC_ERR_NOMEM, "out of memory");
    /* Layer prior: frequency of each expert in the top-k, add-one smoothed. */
    for (size_t s = 0; s < t->n_seqs; s++) {
        if (seq_mask && !seq_mask[s])
            continue;
        const ec_seq *sq = &t->seqs[s];
        for (size_t r = sq->row0; r < sq->row0 + sq->n_rows; r++) {
            if (!t->complete[r])
                continue;
            for (int32_t l = 0; l < t->n_layers; l++) {
                const int16_t *e = ec_trace_experts(t, r, l);
                for (int32_t i = 0; i < t->k; i++)
                    prior[(size_t)l * (size_t)t->n_experts + (size_t)e[i]] += 1.0f;
            }
        }
    }
    for (int32_t l = 0; l < t->n_layers; l++) {
        float *row = prior + (size_t)l * (size_t)t->n_experts;
        for (int32_t e = 0; e < t->n_experts; e++)
            row[e] += (float)p->opts.smoothing;
        ec_normalize(row, t->n_experts);
    }
    ec_free(p->prior);
    p->prior = prior;
    p->n_layers = t->n_layers;
    p->n_experts = t->n_experts;
    p->k = t->k;
    ec_status s = p->vt->fit ? p->vt->fit(p, t, seq_mask) : EC_OK;
    if (s && !p->errmsg[0])
        ec_predictor_fail(p, s, "fit failed: %s", ec_status_str(s));
    return s;
}

int ec_predictor_predict(const ec_predictor *p, const ec_history *h, int32_t horizon,
                         float *probs)
{
    if (p && h && probs && !p->prior)
        return ec_predictor_predict_unfitted(p, h, horizon, probs);
    if (!p || !h || !probs || !p->prior || ec_history_n_layers(h) != p->n_layers ||
        ec_history_n_experts(h) != p->n_experts)
        return -1;
    int next;
    int32_t target = ec_history_target(h, horizon, &next);
    if (target < 0)
        return -1;
    if (p->vt->predict)
        return p->vt->predict(p, h, target, next, horizon, probs);
    ec_predictor_prior(p, target, probs);
    return 0;
}

void ec_rank(const float *probs, int32_t n, int32_t *idx, int32_t m)
{
    /* Partial insertion sort: O(n * m), m is small (k or a few more). */
    int32_t filled = 0;
    for (int32_t e = 0; e < n; e++) {
        float v = probs[e];
        if (filled == m && !(v > probs[idx[m - 1]]))
            continue;
        int32_t j = filled < m ? filled++ : m - 1;
        while (j > 0 && v > probs[idx[j - 1]]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = e;
    }
}

/* ---- JSON ---------------------------------------------------------------- */

cJSON *ec_json_float_array(const float *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    if (!a)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateNumber((double)v[i]);
        if (!x || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(x);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

ec_status ec_json_read_floats(const cJSON *arr, float *v, size_t n, const char *field,
                              const char *path, ec_error *err)
{
    if (!cJSON_IsArray(arr) || (size_t)cJSON_GetArraySize(arr) != n)
        return ec_error_set(err, EC_ERR_PARSE, "%s: field '%s': expected an array of %zu numbers",
                            path, field, n);
    size_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr)
    {
        /* Beyond FLT_MAX the conversion to float is undefined. */
        if (!cJSON_IsNumber(x) || !(fabs(x->valuedouble) <= FLT_MAX))
            return ec_error_set(err, EC_ERR_PARSE,
                                "%s: field '%s': element %zu is not a finite single-precision "
                                "number", path, field, i);
        v[i++] = (float)x->valuedouble;
    }
    return EC_OK;
}

/* File layout:
 *   {"format": "expertcast-predictor", "version": 1, "predictor": NAME,
 *    "n_layers": L, "n_experts": E, "k": K, "opts": {...},
 *    "prior": [L*E numbers], "model": {...predictor specific...}} */

static ec_status write_json(const char *path, cJSON *root, ec_error *err)
{
    char *text = cJSON_PrintUnformatted(root);
    if (!text)
        return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory serialising", path);
    ec_outfile *o;
    FILE *f;
    ec_status s = ec_outfile_open(path, &o, &f, err);
    if (s == EC_OK) {
        fputs(text, f);
        fputc('\n', f);
        s = ec_outfile_commit(o, err);
    }
    ec_free(text);
    return s;
}

ec_status ec_predictor_save(const ec_predictor *p, const char *path, ec_error *err)
{
    if (!p || !path)
        return ec_error_set(err, EC_ERR_INVALID, "ec_predictor_save: NULL argument");
    if (!p->prior)
        return ec_error_set(err, EC_ERR_STATE, "predictor '%s' is not fitted", p->vt->name);
    size_t failures = ec_alloc_failures();
    cJSON *root = cJSON_CreateObject(), *opts = cJSON_CreateObject(), *model = cJSON_CreateObject();
    cJSON *prior = ec_json_float_array(p->prior, (size_t)p->n_layers * (size_t)p->n_experts);
    int ok = root && opts && model && prior;
    if (ok) {
        const ec_predictor_opts *o = &p->opts;
        ok = cJSON_AddStringToObject(root, "format", "expertcast-predictor") &&
             cJSON_AddNumberToObject(root, "version", 1) &&
             cJSON_AddStringToObject(root, "predictor", p->vt->name) &&
             cJSON_AddNumberToObject(root, "n_layers", p->n_layers) &&
             cJSON_AddNumberToObject(root, "n_experts", p->n_experts) &&
             cJSON_AddNumberToObject(root, "k", p->k) &&
             cJSON_AddNumberToObject(opts, "context", o->context) &&
             cJSON_AddNumberToObject(opts, "tokens_back", o->tokens_back) &&
             cJSON_AddNumberToObject(opts, "smoothing", o->smoothing) &&
             cJSON_AddNumberToObject(opts, "epochs", o->epochs) &&
             cJSON_AddNumberToObject(opts, "learning_rate", o->learning_rate) &&
             cJSON_AddNumberToObject(opts, "l2", o->l2) &&
             cJSON_AddNumberToObject(opts, "per_layer", o->per_layer) &&
             cJSON_AddNumberToObject(opts, "seed", (double)o->seed) &&
             cJSON_AddNumberToObject(opts, "max_horizon", o->max_horizon);
        if (ok) {
            cJSON_AddItemToObjectCS(root, "opts", opts); /* constant keys: no allocation */
            opts = NULL;
            cJSON_AddItemToObjectCS(root, "prior", prior);
            prior = NULL;
            ec_status s = p->vt->save ? p->vt->save(p, model) : EC_OK;
            cJSON_AddItemToObjectCS(root, "model", model);
            model = NULL;
            if (s) {
                cJSON_Delete(root);
                if (s == EC_ERR_NOMEM || ec_alloc_failures() != failures)
                    return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory serialising",
                                        path);
                return ec_error_set(err, s, "%s: cannot serialise predictor '%s'", path,
                                    p->vt->name);
            }
        }
    }
    cJSON_Delete(opts);
    cJSON_Delete(model);
    cJSON_Delete(prior);
    if (!ok) {
        cJSON_Delete(root);
        return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory serialising", path);
    }
    ec_status s = write_json(path, root, err);
    cJSON_Delete(root);
    return s;
}

ec_status ec_predictor_load(const char *path, ec_predictor **out, ec_error *err)
{
    if (!path || !out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_predictor_load: NULL argument");
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    ec_status s = ec_read_file(path, &text, &len, err);
    if (s)
        return s;
    s = ec_predictor_load_text(path, text, len, out, err);
    ec_free(text);
    return s;
}

ec_status ec_predictor_load_text(const char *path, const char *text, size_t len,
                                 ec_predictor **out, ec_error *err)
{
    if (!path || !out || (!text && len))
        return ec_error_set(err, EC_ERR_INVALID, "ec_predictor_load_text: NULL argument");
    *out = NULL;
    ec_status s;
    size_t failures = ec_alloc_failures();
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root)
        return ec_alloc_failures() != failures
                   ? ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path)
                   : ec_error_set(err, EC_ERR_PARSE, "%s: %s (near byte %td)", path,
                                  ec_json_why(text, end ? (size_t)(end - text) : 0),
                                  end ? end - text : (ptrdiff_t)0);
    while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (end != text + len) {
        cJSON_Delete(root);
        return ec_error_set(err, EC_ERR_PARSE,
                            "%s: trailing data after the JSON document (near byte %td)", path,
                            end - text);
    }
    long nul = ec_json_nul_escape(text, len);
    if (nul >= 0) {
        cJSON_Delete(root);
        return ec_error_set(err, EC_ERR_PARSE,
                            "%s: \\u0000 (NUL) in a string or key is not accepted (near byte "
                            "%ld)",
                            path, nul);
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "predictor");
    if (cJSON_IsObject(root) && !fmt && cJSON_GetObjectItemCaseSensitive(root, "level1")) {
        /* A rules file of "rules create" or the seed: the hybrid predictor,
         * from the text already read (not the file again). */
        ec_status rs = ec_predictor_seed_rules_json(root, path, "hybrid", out, err);
        cJSON_Delete(root);
        return rs;
    }
    if (!cJSON_IsObject(root) || !cJSON_IsString(fmt) ||
        strcmp(fmt->valuestring, "expertcast-predictor") != 0) {
        cJSON_Delete(root);
        return ec_error_set(err, EC_ERR_PARSE,
                            "%s: field 'format': not an expertcast predictor file", path);
    }
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (!cJSON_IsNumber(ver) || ver->valuedouble != 1) {
        char got[32];
        if (cJSON_IsNumber(ver))
            snprintf(got, sizeof got, "%.6g", ver->valuedouble);
        cJSON_Delete(root);
        return ec_error_set(err, EC_ERR_PARSE,
                            "%s: field 'version': %s%s (this build reads version 1)", path,
                            !ver ? "missing" : cJSON_IsNumber(ver) ? "unsupported version " :
                            "expected a number", cJSON_IsNumber(ver) ? got : "");
    }
    if (!cJSON_IsString(name)) {
        cJSON_Delete(root);
        return ec_error_set(err, EC_ERR_PARSE, "%s: field 'predictor': expected a string", path);
    }
    double L, E, K;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "opts");
    ec_predictor_opts po = {0};
    double v;
    if ((s = ec_json_get_number(root, "n_layers", 1, EC_MAX_LAYERS, true, &L, path, "",
                                err)) ||
        (s = ec_json_get_number(root, "n_experts", 1, EC_MAX_EXPERTS, true, &E, path, "",
                                err)) ||
        (s = ec_json_get_number(root, "k", 1, EC_MIN(EC_MAX_K, E), true, &K, path, "", err))) {
        cJSON_Delete(root);
        return s;
    }
    /* Check the prior's length before allocating L x E floats for it, so
     * that a small file cannot ask for gigabytes. */
    const cJSON *prior = cJSON_GetObjectItemCaseSensitive(root, "prior");
    size_t n = (size_t)L * (size_t)E;
    if (!cJSON_IsArray(prior) || (size_t)cJSON_GetArraySize(prior) != n) {
        cJSON_Delete(root);
        return ec_error_set(err, EC_ERR_PARSE, "%s: field 'prior': expected an array of %zu numbers",
                            path, n);
    }
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(root);
        return ec_error_set(err, EC_ERR_PARSE, "%s: field 'opts': expected an object", path);
    }
#define OPT(field, lo, hi, assign)                                                                 \
    if ((s = ec_json_get_number(o, field, lo, hi, integral, &v, path, "", err))) {                \
        cJSON_Delete(root);                                                                        \
        return s;                                                                                  \
    }                                                                                              \
    assign;
    bool integral = true;
    OPT("context", 0, 64, po.context = (int32_t)v)
    OPT("tokens_back", 0, 4096, po.tokens_back = (int32_t)v)
    OPT("epochs", 0, 1e6, po.epochs = (int32_t)v)
    OPT("per_layer", 0, 1, po.per_layer = (int32_t)v)
    OPT("seed", 0, 1.8e19, po.seed = (uint64_t)v)
    OPT("max_horizon", 0, EC_MAX_LAYERS, po.max_horizon = (int32_t)v)
    integral = false;
    OPT("smoothing", 0, 1e9, po.smoothing = v)
    OPT("learning_rate", 0, 1e6, po.learning_rate = v)
    OPT("l2", 0, 1e6, po.l2 = v)
#undef OPT
    ec_predictor *p;
    if ((s = ec_predictor_create(name->valuestring, &po, &p, err))) {
        if (s == EC_ERR_NOT_FOUND) { /* name lives in root: report before freeing it */
            char shown[64];
            s = ec_error_set(err, EC_ERR_PARSE, "%s: field 'predictor': unknown predictor '%s'",
                             path, ec_one_line(name->valuestring, shown, sizeof shown));
        } else if (s == EC_ERR_INVALID) { /* options the predictor refuses: bad data here */
            char why[EC_ERROR_MAX];
            snprintf(why, sizeof why, "%s", err ? err->message : "invalid options");
            s = ec_error_set(err, EC_ERR_PARSE, "%s: field 'opts': %s", path, why);
        }
        cJSON_Delete(root);
        return s;
    }
    p->n_layers = (int32_t)L;
    p->n_experts = (int32_t)E;
    p->k = (int32_t)K;
    p->prior = ec_malloc(n * sizeof *p->prior);
    if (!p->prior)
        s = ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
    else
        s = ec_json_read_floats(prior, p->prior, n, "prior", path, err);
    /* Probabilities: a negative entry would survive normalisation. */
    for (size_t i = 0; s == EC_OK && i < n; i++)
        if (p->prior[i] < 0)
            s = ec_error_set(err, EC_ERR_PARSE,
                             "%s: field 'prior': element %zu (%g) is negative",
                             path, i, (double)p->prior[i]);
    if (s == EC_OK) {
        /* Stored normalised: keep the values bit for bit, only reject nonsense. */
        for (int32_t l = 0; l < p->n_layers && s == EC_OK; l++) {
            const float *row = p->prior + (size_t)l * (size_t)p->n_experts;
            double sum = 0;
            for (int32_t e = 0; e < p->n_experts; e++)
                sum += row[e] < 0 ? -1e9 : row[e];
            if (!(sum > 0.999 && sum < 1.001))
                s = ec_error_set(err, EC_ERR_PARSE,
                                 "%s: field 'prior': layer %d is not a distribution "
                                 "(negative values or a sum other than 1)",
                                 path, l);
        }
    }
    if (s == EC_OK) {
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
        if (!cJSON_IsObject(model))
            s = ec_error_set(err, EC_ERR_PARSE, "%s: field 'model': expected an object", path);
        else if (p->vt->load && (s = p->vt->load(p, model, err)) && err &&
                 strncmp(err->message, path, strlen(path)) != 0) {
            char msg[EC_ERROR_MAX];
            snprintf(msg, sizeof msg, "%s", err->message);
            ec_error_set(err, s, "%s: %s", path, msg);
        }
    }
    cJSON_Delete(root);
    if (s) {
        ec_predictor_destroy(p);
        return s;
    }
    *out = p;
    return EC_OK;
}
