/*
 * fuzz_profile: the same bytes loaded as a model profile (default dtype)
 * and as a hardware profile (the loaders read files, so the bytes go to a
 * scratch file on tmpfs). Either a clean one-line error naming the file
 * (EC_ERR_PARSE), or a
 * profile whose values are in range and, paired with a fixed valid profile
 * of the other kind, derive finite non-negative timings and a cache size
 * within [k, experts].
 */
#include "targets.h"

#include "expertcast/sim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *scratch(const char *name)
{
    static char dir[64];
    static char path[3][128];
    static int next;
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/ec_fuzz_profile_XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(dir))
            abort();
    }
    char *p = path[next++ % 3];
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
}

#define V(x) "{\"value\": " #x ", \"source\": \"fuzz fixture\"}"
static const char MODEL[] =
    "{\"format\": \"expertcast-model-profile\", \"name\": \"m\", \"layers\": " V(4)
    ", \"experts\": " V(8) ", \"top_k\": " V(2) ", \"default_dtype\": \"bf16\", \"dtypes\": "
    "{\"bf16\": {\"expert_bytes\": " V(1000000) ", \"layer_fixed_bytes\": " V(50000) "}}}";
static const char HW[] =
    "{\"format\": \"expertcast-hardware-profile\", \"name\": \"h\", \"h2d_gbs\": " V(25)
    ", \"latency_us\": " V(10) ", \"copy_engines\": " V(2) ", \"hbm_gbs\": " V(2000)
    ", \"device_memory_gb\": " V(0.01) ", \"reserved_gb\": " V(0.001)
    ", \"layer_overhead_us\": " V(20) ", \"router_us\": " V(5) ", \"predictor_us\": " V(3) "}";

static const char *check_error(ec_status s, const ec_error *err, const char *path)
{
    /* NOT_FOUND is only for a dtype the caller names; these loads name none. */
    if (s != EC_ERR_PARSE)
        return "malformed profile gave a status other than EC_ERR_PARSE";
    if (err->status != s || !err->message[0])
        return "error report missing or with another status";
    if (strchr(err->message, '\n'))
        return "error message spans several lines";
    if (strncmp(err->message, path, strlen(path)) != 0)
        return "error message does not start with the file name";
    return NULL;
}

static const char *check_pair(const ec_model_profile *m, const ec_hw_profile *h)
{
    ec_sim_timing t;
    ec_sim_timing_derive(m, h, &t);
    const double v[] = {t.transfer_ms,   t.compute_fixed_ms, t.compute_per_expert_ms,
                        t.router_ms,     t.predictor_ms,     t.expert_bytes};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (!(isfinite(v[i]) && v[i] >= 0))
            return "derived timing not finite and non-negative";
    if (t.engines < 1 || !(t.transfer_ms > 0))
        return "derived transfer time or engine count impossible";
    int32_t c = ec_sim_default_cache(m, h);
    if (c < m->k || c > m->n_experts)
        return "default cache outside [k, experts]";
    return NULL;
}

static int terminated(const char *s) { return memchr(s, '\0', EC_PROFILE_NAME_MAX) != NULL; }

const char *fuzz_profile(const uint8_t *data, size_t size)
{
    static ec_model_profile fixed_model;
    static ec_hw_profile fixed_hw;
    static int ready;
    if (!ready) {
        const char *mp = scratch("fixed_model.json"), *hp = scratch("fixed_hw.json");
        write_file(mp, MODEL, sizeof MODEL - 1);
        write_file(hp, HW, sizeof HW - 1);
        if (ec_model_profile_load(mp, NULL, &fixed_model, NULL) ||
            ec_hw_profile_load(hp, &fixed_hw, NULL))
            abort(); /* the fixtures are valid */
        ready = 1;
    }
    const char *path = scratch("profile.json");
    write_file(path, data, size);
    ec_error err = {0};
    ec_model_profile m;
    ec_status s = ec_model_profile_load(path, NULL, &m, &err);
    const char *bad = NULL;
    if (s != EC_OK) {
        bad = check_error(s, &err, path);
    } else if (m.n_layers < 1 || m.n_layers > EC_MAX_LAYERS || m.n_experts < 1 ||
               m.n_experts > EC_MAX_EXPERTS || m.k < 1 || m.k > m.n_experts || m.k > EC_MAX_K ||
               !(m.expert_bytes >= 1) || !(m.layer_fixed_bytes >= 0) || !terminated(m.name) ||
               !m.name[0] || !terminated(m.dtype) || !m.dtype[0]) {
        bad = "model profile loaded with values out of range";
    } else {
        bad = check_pair(&m, &fixed_hw);
    }
    if (bad)
        return bad;
    memset(&err, 0, sizeof err);
    ec_hw_profile h;
    s = ec_hw_profile_load(path, &h, &err);
    if (s != EC_OK)
        return check_error(s, &err, path);
    if (!(h.h2d_gbs > 0) || h.copy_engines < 1 || h.copy_engines > 64 || !(h.hbm_gbs > 0) ||
        !(h.latency_us >= 0) || !terminated(h.name) || !h.name[0])
        return "hardware profile loaded with values out of range";
    return check_pair(&fixed_model, &h);
}
