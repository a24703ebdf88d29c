/* Rules JSON: the seed's layout written as json.dump(indent=2) does, read
 * back from our files and from the seed's own; and the compact model
 * section of a predictor file. */
#include "rules.h"
#include "../core/json.h"
#include "pywrite.h"
#include "../core/json.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const char *const SOURCE_NAMES[] = {"given", "inferred", "default"};

/* The seed keeps the three skip tables under level5.rules.skip_K. */
static const struct {
    ec_seed_level lv;
    const char *name;
} SKIPS[3] = {{EC_SEED_SKIP2, "skip_2"}, {EC_SEED_SKIP4, "skip_4"}, {EC_SEED_SKIP8, "skip_8"}};

static void write_table(pyw *w, const ec_seed_rules *r, ec_seed_level lv)
{
    char key[96];
    const seed_table *t = &r->lv[lv];
    pyw_begin_object(w);
    for (size_t i = 0; i < t->n; i++) {
        const ec_seed_rule *u = &t->rules[i];
        seed_key_format(u->key, ec_seed_level_arity(lv), key, sizeof key);
        pyw_key(w, key);
        pyw_begin_object(w);
        pyw_key(w, "prediction");
        pyw_int(w, u->prediction);
        pyw_key(w, "confidence");
        pyw_float(w, u->samples ? (double)u->votes / (double)u->samples : 0.0);
        /* dict(Counter): every target with its count, first seen first. A
         * rule whose other targets are unknown (read from an older file or
         * a compact predictor file) keeps its winner's count as an integer */
        pyw_key(w, "votes");
        if (t->head && t->head[i] >= 0) {
            pyw_begin_object(w);
            for (int32_t c = t->head[i]; c >= 0; c = r->cand[c].next) {
                snprintf(key, sizeof key, "%d", r->cand[c].expert);
                pyw_key(w, key);
                pyw_int(w, r->cand[c].count);
            }
            pyw_end_object(w);
        } else {
            pyw_int(w, u->votes);
        }
        pyw_key(w, "samples");
        pyw_int(w, u->samples);
        pyw_end_object(w);
    }
    pyw_end_object(w);
}

/* The shape a seed-made file implies by saying nothing: Mixtral-8x7B's. */
static int default_shape(const ec_seed_rules *r)
{
    return r->n_layers == 32 && r->n_experts == 8 && r->k == 2;
}

/*
 * Writes the layout of the seed's create_rules.py byte for byte (json.dump
 * with indent=2: metadata with training_files, num_training_files and
 * description, then level1..level5 with description and rules; every rule
 * with prediction, confidence, votes as {expert: count} and samples); a
 * rule read with only its winner's count keeps that integer. A model of
 * another shape than Mixtral-8x7B's, which a seed-made file implies by
 * saying nothing, adds n_layers, n_experts and k to the metadata so that
 * the file reads back with its own shape.
 */
ec_status ec_seed_rules_write(const ec_seed_rules *r, FILE *f, ec_error *err)
{
    if (!r || !f)
        return ec_error_set(err, EC_ERR_INVALID, "ec_seed_rules_write: NULL argument");
    pyw w;
    pyw_init(&w, f);
    pyw_begin_object(&w);
    pyw_key(&w, "metadata");
    pyw_begin_object(&w);
    pyw_key(&w, "training_files");
    pyw_begin_array(&w);
    for (size_t i = 0; i < r->n_train; i++)
        pyw_string(&w, r->train_files[i]);
    pyw_end_array(&w);
    pyw_key(&w, "num_training_files");
    pyw_int(&w, (int64_t)r->n_train);
    pyw_key(&w, "description");
    if (default_shape(r)) {
        pyw_string(&w, "Expert prediction rules for Mixtral 8x7B");
    } else {
        char desc[160];
        snprintf(desc, sizeof desc, "Expert prediction rules for %d layers x %d experts, top-%d",
                 r->n_layers, r->n_experts, r->k);
        pyw_string(&w, desc);
        pyw_key(&w, "n_layers");
        pyw_int(&w, r->n_layers);
        pyw_key(&w, "n_experts");
        pyw_int(&w, r->n_experts);
        pyw_key(&w, "n_experts_source");
        pyw_string(&w, SOURCE_NAMES[r->experts_source]);
        pyw_key(&w, "k");
        pyw_int(&w, r->k);
    }
    pyw_end_object(&w);
    for (int lv = EC_SEED_L1; lv <= EC_SEED_L4; lv++) {
        pyw_key(&w, ec_seed_level_name((ec_seed_level)lv));
        pyw_begin_object(&w);
        pyw_key(&w, "description");
        pyw_string(&w, ec_seed_level_description((ec_seed_level)lv));
        pyw_key(&w, "rules");
        write_table(&w, r, (ec_seed_level)lv);
        pyw_end_object(&w);
    }
    pyw_key(&w, "level5");
    pyw_begin_object(&w);
    pyw_key(&w, "description");
    pyw_string(&w, "(Layer, Expert) -> Expert at Layer+K");
    pyw_key(&w, "rules");
    pyw_begin_object(&w);
    for (int i = 0; i < 3; i++) {
        pyw_key(&w, SKIPS[i].name);
        write_table(&w, r, SKIPS[i].lv);
    }
    pyw_end_object(&w);
    pyw_end_object(&w);
    pyw_end_object(&w);
    return pyw_finish(&w, err);
}

ec_status ec_seed_rules_save(const ec_seed_rules *r, const char *path, ec_error *err)
{
    if (!r || !path)
        return ec_error_set(err, EC_ERR_INVALID, "ec_seed_rules_save: NULL argument");
    ec_outfile *o;
    FILE *f;
    ec_status s = ec_outfile_open(path, &o, &f, err);
    if (s)
        return s;
    if ((s = ec_seed_rules_write(r, f, err))) {
        ec_outfile_abort(o);
        char msg[EC_ERROR_MAX];
        snprintf(msg, sizeof msg, "%s", err ? err->message : "");
        return ec_error_set(err, s, "%s: %s", path, msg);
    }
    return ec_outfile_commit(o, err);
}

/* ---- reading ---------------------------------------------------------------- */

/* An integral JSON number in [lo, hi] at obj.field; def when absent and
 * not required. where names the object for messages. */
static ec_status get_int(const cJSON *obj, const char *field, int required, int64_t def,
                         int64_t lo, int64_t hi, int64_t *out, const char *path,
                         const char *where, ec_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!v) {
        if (required)
            return ec_error_set(err, EC_ERR_PARSE, "%s: field '%s%s': missing", path, where,
                                field);
        *out = def;
        return EC_OK;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!isfinite(d) || d != floor(d))
        return ec_error_set(err, EC_ERR_PARSE, "%s: field '%s%s': expected an integer", path,
                            where, field);
    if (d < (double)lo || d > (double)hi)
        return ec_error_set(err, EC_ERR_PARSE,
                            fabs(d) < 1e19 ? "%s: field '%s%s': %.0f is out of range [%lld, %lld]"
                                           : "%s: field '%s%s': %g is out of range [%lld, %lld]",
                            path, where, field, d, (long long)lo, (long long)hi);
    *out = (int64_t)d;
    return EC_OK;
}

/* The seed's votes object of rule ri: {"6": 2, "3": 1}. Fills the rule's
 * vote list; *votes = the prediction's count, *samples = the sum. */
static ec_status parse_votes(ec_seed_rules *r, ec_seed_level lv, size_t ri, const cJSON *vo,
                             int64_t pred, int64_t *votes, int64_t *samples, const char *path,
                             const char *at, ec_error *err)
{
    int64_t sum = 0, best = 0, of_pred = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, vo)
    {
        /* str(int) of an expert: decimal digits only, no sign, space or
         * leading zero */
        const char *k = v->string;
        char shown[33];
        long id = 0;
        size_t nd = 0;
        for (; k[nd] >= '0' && k[nd] <= '9' && id < EC_MAX_EXPERTS; nd++)
            id = id * 10 + (k[nd] - '0');
        if (nd == 0 || k[nd] || id >= EC_MAX_EXPERTS || (k[0] == '0' && nd > 1))
            return ec_error_set(err, EC_ERR_PARSE,
                                "%s: field '%svotes': key \"%s\" is not an expert id", path, at,
                                ec_one_line(v->string, shown, sizeof shown));
        double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        if (!isfinite(d) || d != floor(d) || d < 1 || d > INT32_MAX)
            return ec_error_set(err, EC_ERR_PARSE,
                                "%s: field '%svotes.%s': expected a count >= 1", path, at,
                                v->string); /* a valid id, checked above */
        int64_t n = (int64_t)d;
        if (sum > INT32_MAX - n)
            return ec_error_set(err, EC_ERR_PARSE, "%s: field '%svotes': more than %d votes",
                                path, at, INT32_MAX);
        sum += n;
        best = EC_MAX(best, n);
        if (id == pred)
            of_pred += n;
        if (seed_rules_add_votes(r, lv, ri, (int32_t)id, (int32_t)n))
            return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
    }
    if (of_pred == 0 || of_pred < best)
        return ec_error_set(err, EC_ERR_PARSE,
                            "%s: field '%sprediction': %lld is not among the most voted experts",
                            path, at, (long long)pred);
    *votes = of_pred;
    *samples = sum;
    return EC_OK;
}

static ec_status parse_table(ec_seed_rules *r, ec_seed_level lv, const cJSON *rules,
                             const char *path, const char *where, ec_error *err)
{
    if (!cJSON_IsObject(rules))
        return ec_error_set(err, EC_ERR_PARSE, "%s: field '%s': expected an object", path,
                            where);
    int32_t arity = ec_seed_level_arity(lv);
    const cJSON *it;
    cJSON_ArrayForEach(it, rules)
    {
        /* The key as shown in messages: one line, printable, bounded. */
        char shown[64];
        ec_one_line(it->string, shown, sizeof shown);
        char at[256];
        snprintf(at, sizeof at, "%s.%s.", where, shown);
        int32_t key[4];
        if (seed_key_parse(it->string, arity, key) || key[0] >= EC_MAX_LAYERS)
            return ec_error_set(err, EC_ERR_PARSE,
                                "%s: field '%s.%s': expected a key like %s", path, where,
                                shown, arity == 2 ? "\"(5, 6)\"" : arity == 3 ? "\"(5, 0, 6)\"" : "\"(5, 3, 0, 6)\"");
        for (int32_t i = 1; i < arity; i++)
            if (key[i] >= EC_MAX_EXPERTS)
                return ec_error_set(err, EC_ERR_PARSE, "%s: field '%s.%s': expert id %d too large",
                                    path, where, shown, key[i]);
        if (!cJSON_IsObject(it))
            return ec_error_set(err, EC_ERR_PARSE, "%s: field '%s.%s': expected an object",
                                path, where, shown);
        int64_t pred, samples = 0, votes = 0;
        ec_status s;
        if ((s = get_int(it, "prediction", 1, 0, 0, EC_MAX_EXPERTS - 1, &pred, path, at, err)))
            return s;
        ec_seed_rule *u;
        int created;
        if (seed_table_get(r, lv, key, &u, &created))
            return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
        size_t ri = (size_t)(u - r->lv[lv].rules);
        if (!created) /* a repeated key replaces the earlier value, as json.load does */
            r->lv[lv].head[ri] = r->lv[lv].tail[ri] = -1;
        const cJSON *vo = cJSON_GetObjectItemCaseSensitive(it, "votes");
        if (cJSON_IsObject(vo)) {
            /* the seed's {"expert": count}: samples are their sum, the
             * prediction one of the most voted */
            if ((s = parse_votes(r, lv, ri, vo, pred, &votes, &samples, path, at, err)))
                return s;
            int64_t given;
            if ((s = get_int(it, "samples", 0, samples, 1, INT32_MAX, &given, path, at, err)))
                return s;
            if (given != samples)
                return ec_error_set(err, EC_ERR_PARSE,
                                    "%s: field '%ssamples': %lld but the votes add up to %lld",
                                    path, at, (long long)given, (long long)samples);
        } else {
            if ((s = get_int(it, "samples", 0, 1, 1, INT32_MAX, &samples, path, at, err)))
                return s;
            /* votes: an integer, else confidence * samples, else every sample */
            const cJSON *conf = cJSON_GetObjectItemCaseSensitive(it, "confidence");
            int64_t def = samples;
            if (cJSON_IsNumber(conf) && conf->valuedouble > 0 && conf->valuedouble <= 1)
                def = EC_MAX(1, (int64_t)llround(conf->valuedouble * (double)samples));
            if ((s = get_int(it, "votes", 0, def, 1, samples, &votes, path, at, err)))
                return s;
        }
        u->prediction = (int32_t)pred;
        u->votes = (int32_t)votes;
        u->samples = (int32_t)samples;
    }
    return EC_OK;
}

/* Checks every key and prediction against the shape; when the file did not
 * give it (defaulted), raises the shape instead. */
static ec_status fit_shape(ec_seed_rules *r, int layers_given, const char *path, ec_error *err)
{
    int32_t max_id = -1;
    for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++) {
        const seed_table *t = &r->lv[lv];
        for (size_t i = 0; i < t->n; i++) {
            const ec_seed_rule *u = &t->rules[i];
            int32_t need = u->key[0] + 1 + ec_seed_level_distance((ec_seed_level)lv);
            if (need > EC_MAX_LAYERS)
                return ec_error_set(err, EC_ERR_PARSE,
                                    "%s: field '%s': a rule at layer %d needs %d layers, more "
                                    "than the %d supported",
                                    path, ec_seed_level_name((ec_seed_level)lv), u->key[0], need,
                                    EC_MAX_LAYERS);
            if (need > r->n_layers) {
                if (layers_given)
                    return ec_error_set(err, EC_ERR_PARSE,
                                        "%s: field '%s': a rule at layer %d needs %d layers but "
                                        "metadata.n_layers is %d",
                                        path, ec_seed_level_name((ec_seed_level)lv), u->key[0],
                                        need, r->n_layers);
                r->n_layers = need;
            }
            max_id = EC_MAX(max_id, u->prediction);
            for (int32_t j = 1; j < ec_seed_level_arity((ec_seed_level)lv); j++)
                max_id = EC_MAX(max_id, u->key[j]);
        }
    }
    if (max_id >= r->n_experts) {
        if (r->experts_source != EC_SEED_SHAPE_DEFAULT)
            return ec_error_set(err, EC_ERR_PARSE,
                                "%s: field 'metadata.n_experts': expert id %d seen but n_experts "
                                "is %d",
                                path, max_id, r->n_experts);
        r->n_experts = max_id + 1;
    }
    /* A router cannot pick more distinct experts than the layer has. */
    if (r->k > r->n_experts)
        return ec_error_set(err, EC_ERR_PARSE,
                            "%s: field 'metadata.k': top-%d exceeds the %d experts", path, r->k,
                            r->n_experts);
    return EC_OK;
}

static ec_status parse_metadata(ec_seed_rules *r, const cJSON *meta, int *layers_given,
                                const char *path, ec_error *err)
{
    int64_t v;
    ec_status s;
    *layers_given = 0;
    r->n_layers = 32; /* Mixtral-8x7B, the model the seed was written for */
    r->n_experts = 8;
    r->k = 2;
    r->experts_source = EC_SEED_SHAPE_DEFAULT;
    r->shape_defaulted = 1;
    if (!meta)
        return EC_OK;
    if (!cJSON_IsObject(meta))
        return ec_error_set(err, EC_ERR_PARSE, "%s: field 'metadata': expected an object", path);
    if (cJSON_GetObjectItemCaseSensitive(meta, "n_layers")) {
        if ((s = get_int(meta, "n_layers", 1, 0, 1, EC_MAX_LAYERS, &v, path, "metadata.", err)))
            return s;
        r->n_layers = (int32_t)v;
        *layers_given = 1;
        r->shape_defaulted = 0;
    }
    if (cJSON_GetObjectItemCaseSensitive(meta, "n_experts")) {
        if ((s = get_int(meta, "n_experts", 1, 0, 1, EC_MAX_EXPERTS, &v, path, "metadata.", err)))
            return s;
        r->n_experts = (int32_t)v;
        r->experts_source = EC_SEED_SHAPE_GIVEN;
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(meta, "n_experts_source");
        if (cJSON_IsString(src) && strcmp(src->valuestring, "inferred") == 0)
            r->experts_source = EC_SEED_SHAPE_INFERRED;
    }
    if ((s = get_int(meta, "k", 0, 2, 1, EC_MAX_K, &v, path, "metadata.", err)))
        return s;
    r->k = (int32_t)v;
    if ((s = get_int(meta, "num_journeys", 0, 0, 0, INT64_MAX / 2, &v, path, "metadata.", err)))
        return s;
    r->n_journeys = (size_t)v;
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(meta, "training_files");
    if (cJSON_IsArray(files)) {
        size_t n = (size_t)cJSON_GetArraySize(files);
        if (n && !(r->train_files = ec_calloc(n, sizeof *r->train_files)))
            return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
        const cJSON *f;
        cJSON_ArrayForEach(f, files)
        {
            if (!cJSON_IsString(f))
                return ec_error_set(err, EC_ERR_PARSE,
                                    "%s: field 'metadata.training_files': expected strings", path);
            if (!(r->train_files[r->n_train] = ec_strdup(f->valuestring)))
                return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
            r->n_train++;
        }
    }
    return EC_OK;
}

ec_status seed_rules_parse(const cJSON *root, const char *path, ec_seed_rules **out,
                           ec_error *err)
{
    *out = NULL;
    if (!cJSON_IsObject(root))
        return ec_error_set(err, EC_ERR_PARSE, "%s: expected a JSON object of rule levels", path);
    ec_seed_rules *r = seed_rules_new();
    if (!r)
        return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
    int layers_given;
    ec_status s = parse_metadata(r, cJSON_GetObjectItemCaseSensitive(root, "metadata"),
                                 &layers_given, path, err);
    for (int lv = EC_SEED_L1; lv <= EC_SEED_L4 && s == EC_OK; lv++) {
        const char *name = ec_seed_level_name((ec_seed_level)lv);
        const cJSON *level = cJSON_GetObjectItemCaseSensitive(root, name);
        char where[64];
        snprintf(where, sizeof where, "%s.rules", name);
        if (!cJSON_IsObject(level))
            s = ec_error_set(err, EC_ERR_PARSE, "%s: field '%s': %s", path, name,
                             level ? "expected an object" : "missing (not a rules file?)");
        else
            s = parse_table(r, (ec_seed_level)lv,
                            cJSON_GetObjectItemCaseSensitive(level, "rules"), path, where, err);
    }
    const cJSON *l5 = cJSON_GetObjectItemCaseSensitive(root, "level5");
    if (s == EC_OK && l5) {
        const cJSON *rules = cJSON_GetObjectItemCaseSensitive(l5, "rules");
        if (!cJSON_IsObject(rules))
            s = ec_error_set(err, EC_ERR_PARSE, "%s: field 'level5.rules': expected an object",
                             path);
        const cJSON *key, *tables = s == EC_OK ? rules : NULL;
        cJSON_ArrayForEach(key, tables)
        {
            int known = 0;
            for (int i = 0; i < 3; i++)
                known |= strcmp(key->string, SKIPS[i].name) == 0;
            if (!known) {
                char shown[65];
                s = ec_error_set(err, EC_ERR_PARSE,
                                 "%s: field 'level5.rules.%s': unknown table (expected "
                                 "skip_2, skip_4 or skip_8)",
                                 path, ec_one_line(key->string, shown, sizeof shown));
                break;
            }
        }
        for (int i = 0; i < 3 && s == EC_OK; i++) {
            const cJSON *tab = cJSON_GetObjectItemCaseSensitive(rules, SKIPS[i].name);
            char where[64];
            snprintf(where, sizeof where, "level5.rules.%s", SKIPS[i].name);
            if (tab)
                s = parse_table(r, SKIPS[i].lv, tab, path, where, err);
        }
    }
    if (s == EC_OK)
        s = fit_shape(r, layers_given, path, err);
    if (s) {
        ec_seed_rules_destroy(r);
        return s;
    }
    *out = r;
    return EC_OK;
}

ec_status ec_seed_rules_load(const char *path, ec_seed_rules **out, ec_error *err)
{
    if (!path || !out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_seed_rules_load: NULL argument");
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    ec_status s = ec_read_file(path, &text, &len, err);
    if (s)
        return s;
    size_t failures = ec_alloc_failures();
    const char *end = NULL;
    /* one JSON document: trailing data (a JSONL file?) is an error */
    cJSON *root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    ptrdiff_t at = end ? end - text : 0;
    long nul = root ? ec_json_nul_escape(text, len) : -1;
    const char *why = root ? NULL : ec_json_why(text, (size_t)at);
    ec_free(text);
    if (nul >= 0) {
        cJSON_Delete(root);
        return ec_error_set(err, EC_ERR_PARSE,
                            "%s: \\u0000 (NUL) in a string or key is not accepted (near byte "
                            "%ld)",
                            path, nul);
    }
    if (!root)
        return ec_alloc_failures() != failures
                   ? ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path)
                   : ec_error_set(err, EC_ERR_PARSE,
                                  "%s: %s (near byte %td; a rules file is one JSON document)",
                                  path, why, at);
    s = seed_rules_parse(root, path, out, err);
    cJSON_Delete(root);
    return s;
}

/* ---- the model section of a predictor file ----------------------------------- */

cJSON *seed_rules_to_cjson(const ec_seed_rules *r)
{
    cJSON *obj = cJSON_CreateObject();
    for (int lv = 0; obj && lv < EC_SEED_N_LEVELS; lv++) {
        cJSON *arr = cJSON_CreateArray();
        if (!arr || !cJSON_AddItemToObject(obj, ec_seed_level_name((ec_seed_level)lv), arr)) {
            cJSON_Delete(arr);
            cJSON_Delete(obj);
            return NULL;
        }
        int32_t arity = ec_seed_level_arity((ec_seed_level)lv);
        for (size_t i = 0; i < r->lv[lv].n; i++) {
            const ec_seed_rule *u = &r->lv[lv].rules[i];
            int v[7];
            for (int32_t j = 0; j < arity; j++)
                v[j] = u->key[j];
            v[arity] = u->prediction;
            v[arity + 1] = u->votes;
            v[arity + 2] = u->samples;
            cJSON *row = cJSON_CreateIntArray(v, arity + 3);
            if (!row || !cJSON_AddItemToArray(arr, row)) {
                cJSON_Delete(row);
                cJSON_Delete(obj);
                return NULL;
            }
        }
    }
    return obj;
}

ec_status seed_rules_from_cjson(const cJSON *model, int32_t n_layers, int32_t n_experts,
                                int32_t k, const char *path, ec_seed_rules **out,
                                ec_error *err)
{
    *out = NULL;
    ec_seed_rules *r = seed_rules_new();
    if (!r)
        return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
    r->n_layers = n_layers;
    r->n_experts = n_experts;
    r->k = k;
    ec_status s = EC_OK;
    for (int lv = 0; lv < EC_SEED_N_LEVELS && s == EC_OK; lv++) {
        const char *name = ec_seed_level_name((ec_seed_level)lv);
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(model, name);
        int32_t arity = ec_seed_level_arity((ec_seed_level)lv);
        if (!cJSON_IsArray(arr)) {
            s = ec_error_set(err, EC_ERR_PARSE, "%s: field 'model.%s': expected an array", path,
                             name);
            break;
        }
        const cJSON *row;
        size_t idx = 0;
        cJSON_ArrayForEach(row, arr)
        {
            int32_t v[7];
            int ok = cJSON_IsArray(row) && cJSON_GetArraySize(row) == arity + 3;
            int j = 0;
            const cJSON *x;
            if (ok)
                cJSON_ArrayForEach(x, row)
                {
                    double d = cJSON_IsNumber(x) ? x->valuedouble : -1;
                    if (!(d >= 0 && d <= INT32_MAX && d == floor(d)))
                        ok = 0;
                    else
                        v[j++] = (int32_t)d;
                }
            if (ok) {
                ok = v[0] <= n_layers - 1 - ec_seed_level_distance((ec_seed_level)lv) &&
                     v[arity] < n_experts && v[arity + 1] >= 1 && v[arity + 1] <= v[arity + 2];
                for (int32_t i = 1; i < arity; i++)
                    ok = ok && v[i] < n_experts;
            }
            if (!ok) {
                s = ec_error_set(err, EC_ERR_PARSE,
                                 "%s: field 'model.%s[%zu]': expected [layer, experts..., "
                                 "prediction, votes, samples] within the model's shape",
                                 path, name, idx);
                break;
            }
            ec_seed_rule *u;
            int created;
            if (seed_table_get(r, (ec_seed_level)lv, v, &u, &created)) {
                s = ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            u->prediction = v[arity];
            u->votes = v[arity + 1];
            u->samples = v[arity + 2];
            idx++;
        }
    }
    if (s) {
        ec_seed_rules_destroy(r);
        return s;
    }
    *out = r;
    return EC_OK;
}
