/*
 * Model and hardware profiles: small JSON files in which every value is an
 * object {"value": number, "source": "where it comes from"}. A value
 * without a source is rejected: numbers in this project say where they
 * come from.
 */
#include "../core/json.h"
#include "expertcast/sim.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

static ec_status load_json(const char *path, cJSON **out, ec_error *err)
{
    cJSON *root = NULL;
    ec_status s = ec_json_load(path, &root, err);
    if (s)
        return s;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ec_error_set(err, EC_ERR_PARSE, "%s: expected a JSON object", path);
    }
    *out = root;
    return EC_OK;
}

static ec_status check_format(const cJSON *root, const char *want, const char *path,
                              ec_error *err)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(f) || strcmp(f->valuestring, want) != 0)
        return ec_error_set(err, EC_ERR_PARSE, "%s: field 'format': expected \"%s\"", path,
                            want);
    return EC_OK;
}

static ec_status get_name(const cJSON *root, char *dst, const char *path, ec_error *err)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (!cJSON_IsString(n) || !n->valuestring[0] ||
        strlen(n->valuestring) >= EC_PROFILE_NAME_MAX)
        return ec_error_set(err, EC_ERR_PARSE,
                            "%s: field 'name': expected a non-empty string (< %d chars)", path,
                            EC_PROFILE_NAME_MAX);
    strcpy(dst, n->valuestring);
    return EC_OK;
}

/* Reads obj[field] = {"value": v, "source": "..."} with lo <= v <= hi.
 * prefix names the enclosing object in messages ("" at top level). */
static ec_status get_value(const cJSON *obj, const char *prefix, const char *field, double lo,
                           double hi, int integer, double *out, const char *path, ec_error *err)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!o)
        return ec_error_set(err, EC_ERR_PARSE, "%s: field '%s%s': missing", path, prefix, field);
    if (!cJSON_IsObject(o))
        return ec_error_set(err, EC_ERR_PARSE,
                            "%s: field '%s%s': expected {\"value\": N, \"source\": \"...\"}",
                            path, prefix, field);
    char at[2 * EC_PROFILE_NAME_MAX + 128];
    snprintf(at, sizeof at, "%s%s.", prefix, field);
    double x;
    ec_status st = ec_json_get_number(o, "value", lo, hi, integer, &x, path, at, err);
    if (st)
        return st;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "source");
    if (!cJSON_IsString(s) || !s->valuestring[0])
        return ec_error_set(err, EC_ERR_PARSE,
                            "%s: field '%s%s.source': missing (every value names its source)",
                            path, prefix, field);
    *out = x;
    return EC_OK;
}

ec_status ec_model_profile_load(const char *path, const char *dtype, ec_model_profile *out,
                                ec_error *err)
{
    if (!path || !out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_model_profile_load: NULL argument");
    memset(out, 0, sizeof *out);
    cJSON *root = NULL;
    ec_status s = load_json(path, &root, err);
    if (s)
        return s;
    double L, E, K;
    if ((s = check_format(root, "expertcast-model-profile", path, err)) ||
        (s = get_name(root, out->name, path, err)) ||
        (s = get_value(root, "", "layers", 1, EC_MAX_LAYERS, 1, &L, path, err)) ||
        (s = get_value(root, "", "experts", 1, EC_MAX_EXPERTS, 1, &E, path, err)) ||
        (s = get_value(root, "", "top_k", 1, EC_MAX_K, 1, &K, path, err)))
        goto done;
    if (K > E) {
        s = ec_error_set(err, EC_ERR_PARSE, "%s: field 'top_k.value': %g exceeds %g experts", path,
                         K, E);
        goto done;
    }
    const cJSON *dts = cJSON_GetObjectItemCaseSensitive(root, "dtypes");
    if (!cJSON_IsObject(dts) || !dts->child) {
        s = ec_error_set(err, EC_ERR_PARSE, "%s: field 'dtypes': expected a non-empty object",
                         path);
        goto done;
    }
    int from_file = !dtype || !dtype[0];
    if (from_file) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "default_dtype");
        if (!cJSON_IsString(d)) {
            s = ec_error_set(err, EC_ERR_PARSE, "%s: field 'default_dtype': expected a string",
                             path);
            goto done;
        }
        dtype = d->valuestring;
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(dts, dtype);
    if (!cJSON_IsObject(dt)) {
        char have[256] = "", shown[EC_PROFILE_NAME_MAX];
        const cJSON *c;
        cJSON_ArrayForEach(c, dts)
        {
            if (strlen(have) + strlen(c->string) + 3 < sizeof have) {
                if (have[0])
                    strcat(have, ", ");
                strcat(have, c->string);
            }
        }
        /* The caller's dtype: not found (a usage error); the file's own
         * default_dtype: the file is inconsistent (a data error). */
        s = ec_error_set(err, from_file ? EC_ERR_PARSE : EC_ERR_NOT_FOUND,
                         "%s: field '%s': no dtype '%s' (have: %s)", path,
                         from_file ? "default_dtype" : "dtypes",
                         ec_one_line(dtype, shown, sizeof shown), ec_one_line(have, have, sizeof have));
        goto done;
    }
    if (strlen(dtype) >= EC_PROFILE_NAME_MAX) {
        s = ec_error_set(err, EC_ERR_PARSE, "%s: field 'dtypes': name too long", path);
        goto done;
    }
    char prefix[EC_PROFILE_NAME_MAX + 16];
    snprintf(prefix, sizeof prefix, "dtypes.%s.", dtype);
    if ((s = get_value(dt, prefix, "expert_bytes", 1, 1e13, 0, &out->expert_bytes, path, err)) ||
        (s = get_value(dt, prefix, "layer_fixed_bytes", 0, 1e13, 0, &out->layer_fixed_bytes,
                       path, err)))
        goto done;
    strcpy(out->dtype, dtype);
    out->n_layers = (int32_t)L;
    out->n_experts = (int32_t)E;
    out->k = (int32_t)K;
done:
    cJSON_Delete(root);
    return s;
}

ec_status ec_hw_profile_load(const char *path, ec_hw_profile *out, ec_error *err)
{
    if (!path || !out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_hw_profile_load: NULL argument");
    memset(out, 0, sizeof *out);
    cJSON *root = NULL;
    ec_status s = load_json(path, &root, err);
    if (s)
        return s;
    double engines;
    if ((s = check_format(root, "expertcast-hardware-profile", path, err)) ||
        (s = get_name(root, out->name, path, err)) ||
        (s = get_value(root, "", "h2d_gbs", 1e-6, 1e6, 0, &out->h2d_gbs, path, err)) ||
        (s = get_value(root, "", "latency_us", 0, 1e6, 0, &out->latency_us, path, err)) ||
        (s = get_value(root, "", "copy_engines", 1, 64, 1, &engines, path, err)) ||
        (s = get_value(root, "", "hbm_gbs", 1e-6, 1e6, 0, &out->hbm_gbs, path, err)) ||
        (s = get_value(root, "", "device_memory_gb", 0, 1e6, 0, &out->device_memory_gb, path,
                       err)) ||
        (s = get_value(root, "", "reserved_gb", 0, 1e6, 0, &out->reserved_gb, path, err)) ||
        (s = get_value(root, "", "layer_overhead_us", 0, 1e6, 0, &out->layer_overhead_us, path,
                       err)) ||
        (s = get_value(root, "", "router_us", 0, 1e6, 0, &out->router_us, path, err)) ||
        (s = get_value(root, "", "predictor_us", 0, 1e6, 0, &out->predictor_us, path, err)))
        goto done;
    out->copy_engines = (int32_t)engines;
    out->compute_fixed_ms = out->compute_per_expert_ms = -1;
    if (cJSON_GetObjectItemCaseSensitive(root, "compute_fixed_ms") &&
        (s = get_value(root, "", "compute_fixed_ms", 0, 1e6, 0, &out->compute_fixed_ms, path,
                       err)))
        goto done;
    if (cJSON_GetObjectItemCaseSensitive(root, "compute_per_expert_ms") &&
        (s = get_value(root, "", "compute_per_expert_ms", 0, 1e6, 0,
                       &out->compute_per_expert_ms, path, err)))
        goto done;
    /* the host's facts: all or none */
    static const char *const HOST[] = {"host_cores", "host_read_gbs", "host_act_d2h_us",
                                       "host_act_h2d_us"};
    int n_host = 0;
    for (size_t i = 0; i < sizeof HOST / sizeof HOST[0]; i++)
        n_host += cJSON_GetObjectItemCaseSensitive(root, HOST[i]) != NULL;
    if (n_host) {
        double cores;
        if ((s = get_value(root, "", "host_cores", 1, 4096, 1, &cores, path, err)) ||
            (s = get_value(root, "", "host_read_gbs", 1e-6, 1e6, 0, &out->host_read_gbs, path,
                           err)) ||
            (s = get_value(root, "", "host_act_d2h_us", 0, 1e6, 0, &out->host_act_d2h_us, path,
                           err)) ||
            (s = get_value(root, "", "host_act_h2d_us", 0, 1e6, 0, &out->host_act_h2d_us, path,
                           err)))
            goto done;
        out->host_cores = (int32_t)cores;
        out->has_host = 1;
    }
done:
    cJSON_Delete(root);
    return s;
}

void ec_sim_timing_derive(const ec_model_profile *m, const ec_hw_profile *h, ec_sim_timing *out)
{
    memset(out, 0, sizeof *out);
    out->engines = h->copy_engines;
    /* engines share the link: each moves bytes at h2d / engines */
    double per_engine_bps = h->h2d_gbs * 1e9 / h->copy_engines;
    out->transfer_ms = h->latency_us / 1e3 + m->expert_bytes / per_engine_bps * 1e3;
    /* batch-1 decode is memory bound: a layer reads its weights once */
    double hbm_bps = h->hbm_gbs * 1e9;
    out->compute_fixed_ms = h->compute_fixed_ms >= 0
                                ? h->compute_fixed_ms
                                : m->layer_fixed_bytes / hbm_bps * 1e3 + h->layer_overhead_us / 1e3;
    out->compute_per_expert_ms =
        h->compute_per_expert_ms >= 0 ? h->compute_per_expert_ms : m->expert_bytes / hbm_bps * 1e3;
    out->router_ms = h->router_us / 1e3;
    out->predictor_ms = h->predictor_us / 1e3;
    out->expert_bytes = m->expert_bytes;
    if (h->has_host) {
        /* one lane: the host kernel spreads one expert over every core, and
         * concurrent experts would share the same memory bandwidth */
        out->host_lanes = 1;
        out->host_stream_ms = m->expert_bytes / (h->host_read_gbs * 1e9) * 1e3;
        out->host_d2h_ms = h->host_act_d2h_us / 1e3;
        out->host_h2d_ms = h->host_act_h2d_us / 1e3;
    }
}

double ec_sim_host_ms(const ec_sim_timing *tm, int32_t b)
{
    if (!tm || tm->host_lanes < 1)
        return 0;
    int32_t passes = b < 1 ? 1 : (b + EC_SIM_HOST_BATCH - 1) / EC_SIM_HOST_BATCH;
    return passes * tm->host_stream_ms;
}

int32_t ec_sim_default_cache(const ec_model_profile *m, const ec_hw_profile *h)
{
    double free_bytes = (h->device_memory_gb - h->reserved_gb) * 1e9 -
                        (double)m->n_layers * m->layer_fixed_bytes;
    double per_layer = floor(free_bytes / m->expert_bytes / m->n_layers);
    if (!(per_layer >= m->k))
        return m->k;
    if (per_layer > m->n_experts)
        return m->n_experts;
    return (int32_t)per_layer;
}
