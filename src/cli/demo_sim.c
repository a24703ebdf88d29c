/* expertcast demo, part 2: the whole trace through the simulator on each
 * hardware profile, every policy, against lru and the oracle. */
#include "demo.h"
#include "sim_report.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* lru's row (always run as the reference), or NULL. */
static const ec_sim_result *lru_of(const sim_report *rep)
{
    for (size_t i = 0; i < rep->n_rows; i++)
        if (rep->rows[i].r.kind == EC_POLICY_LRU)
            return &rep->rows[i].r;
    return NULL;
}

static void print_rows(const sim_report *rep)
{
    const ec_sim_result *lru = lru_of(rep);
    printf("%-10s %8s %13s %6s %11s %17s\n", "policy", "TPOT ms", "stall ms/tok", "hit %",
           "gap closed", "saved vs lru");
    for (size_t i = 0; i < rep->n_rows; i++) {
        const sim_row *w = &rep->rows[i];
        char gap[16], saved[40];
        snprintf(gap, sizeof gap, isnan(w->c.gap_closed) ? "-" : "%.3f", w->c.gap_closed);
        demo_saved(saved, sizeof saved, lru->stall_ms_per_token, w->r.stall_ms_per_token, 1);
        printf("%-10s %8.3f %13.3f %6.1f %11s %17s\n", ec_policy_kind_name(w->r.kind),
               w->r.tpot_ms, w->r.stall_ms_per_token, 100 * w->r.hit_rate, gap, saved);
    }
}

/* One hardware profile: the runs, the table and the JSON. */
static int run_hardware(const demo_ctx *d, ec_sim *sim, const int *want, const char *hw_name,
                        sim_report *rep)
{
    ec_model_profile model;
    ec_hw_profile hw;
    char mpath[PATH_MAX], json[4096];
    int rc = sim_load_profiles("demo", d->model, hw_name, &model, &hw, mpath);
    if (rc)
        return rc;
    ec_sim_timing tm;
    ec_sim_timing_derive(&model, &hw, &tm);
    int32_t horizon = 1;
    sim_plan plan = {.sim = sim, .tm = &tm, .want = want, .caches = &d->cache, .n_caches = 1,
                     .horizons = &horizon, .n_horizons = 1};
    if ((rc = sim_run_rows(&plan, rep)))
        return rc;
    rep->model = &model;
    rep->hw = &hw;
    rep->timing = &tm;
    snprintf(json, sizeof json, "%s/simulate-%s.json", d->outdir, hw.name);
    printf("$ expertcast simulate %s --model %s --hardware %s --cache-experts %d%s --json %s\n",
           d->trace_path, d->model, hw_name, (int)d->cache,
           want[EC_POLICY_PREDICT] ? "" : " --policy on-demand,lru,lfu,oracle,resident", json);
    printf("%s: %.1f GB/s host-to-device, %d copy engine(s): transfer %.3f ms/expert; compute "
           "%.3f ms/layer + %.3f ms/expert\n",
           hw.name, hw.h2d_gbs, hw.copy_engines, tm.transfer_ms, tm.compute_fixed_ms,
           tm.compute_per_expert_ms);
    print_rows(rep);
    /* why the table looks as it does: whether the link has room to prefetch */
    double layer_ms = tm.compute_fixed_ms + tm.compute_per_expert_ms * model.k;
    if (tm.transfer_ms / tm.engines > layer_ms)
        printf("why: one copy (%.3f ms) outlasts a layer's compute (%.3f ms), so demand misses "
               "saturate the link:\nprefetching hides little and eviction "
               "decides.\n",
               tm.transfer_ms, layer_ms);
    else
        printf("why: one copy (%.3f ms) fits in a layer's compute (%.3f ms): the link has "
               "slack, so a prefetch\nstarted a layer or more ahead can hide a copy.\n",
               tm.transfer_ms, layer_ms);
    rc = cli_write_file(json, sim_write_json, rep);
    if (rc == CLI_OK)
        printf("wrote %s\n\n", json);
    rep->model = NULL;
    rep->hw = NULL;
    rep->timing = NULL;
    return rc;
}

/* Copies the next non-empty name of the comma-separated list at *p into
 * name[size] and moves *p past it; 0 at the end of the list. */
static int next_name(const char **p, char *name, size_t size)
{
    while (**p) {
        size_t len = strcspn(*p, ",");
        snprintf(name, size, "%.*s", (int)len, *p);
        *p += len + ((*p)[len] == ',');
        if (name[0])
            return 1;
    }
    return 0;
}

int demo_check_profiles(const demo_ctx *d)
{
    ec_model_profile model;
    ec_hw_profile hw;
    char mpath[PATH_MAX], name[256];
    const char *p = d->hardware;
    int rc = CLI_OK, n = 0;
    while (rc == CLI_OK && next_name(&p, name, sizeof name)) {
        rc = sim_load_profiles("demo", d->model, name, &model, &hw, mpath);
        n++;
    }
    if (rc == CLI_OK && n == 0)
        rc = cli_usage_error("demo", "--hardware: no profile named");
    return rc;
}

int demo_simulate(const demo_ctx *d)
{
    const ec_trace *t = d->t;
    ec_model_profile model;
    ec_hw_profile hw;
    char mpath[PATH_MAX];
    char name[256];
    const char *p = d->hardware;
    next_name(&p, name, sizeof name); /* demo_check_profiles saw one */
    int rc = sim_load_profiles("demo", d->model, name, &model, &hw, mpath);
    if (rc)
        return rc;
    printf("== 2. the simulator: the whole trace on modeled hardware, model %s (%s) ==\n",
           model.name, model.dtype);
    if (t->n_layers != model.n_layers || t->n_experts != model.n_experts) {
        printf("skipped: the model profile %s says %d layers x %d experts, the trace has %d x "
               "%d (pick another with --model)\n\n",
               mpath, model.n_layers, model.n_experts, t->n_layers, t->n_experts);
        return CLI_OK;
    }
    int want[SIM_N_POLICIES];
    for (int k = 0; k < SIM_N_POLICIES; k++)
        want[k] = !ec_policy_kind_predicts((ec_policy_kind)k) || t->n_seqs >= 2;
    ec_sim *sim = NULL;
    ec_error err = {0};
    ec_status s = ec_sim_create(t, 1, &sim, &err);
    if (s)
        return cli_fail(s, &err);
    sim_report rep = {.n_tokens = ec_sim_n_tokens(sim), .n_steps = ec_sim_n_steps(sim),
                      .n_skipped = ec_sim_n_skipped(sim), .n_seqs = t->n_seqs, .batch = 1};
    char note[512] = "none: predict, gated and hybrid left out (one sequence: no held-out data "
                     "to fit a predictor on)";
    if (t->n_seqs >= 2 && (rc = sim_fit_heldout(sim, "temporal", 1, t->n_seqs, note,
                                                sizeof note))) {
        ec_sim_destroy(sim);
        return rc;
    }
    rep.predictor_note = note;
    printf("%d layers, %d experts, top-%d, %.1f MB per expert; cache %d of %d experts per layer, "
           "horizon 1\n"
           "predictor: %s\n"
           "n = %lld decode steps (%zu sequence(s), batch 1) x %d layers per run, the trace "
           "whole; %lld incomplete rows skipped\n\n",
           model.n_layers, model.n_experts, model.k, model.expert_bytes / 1e6, (int)d->cache,
           model.n_experts, note, (long long)rep.n_tokens, t->n_seqs, model.n_layers,
           (long long)rep.n_skipped);
    for (p = d->hardware; rc == CLI_OK && next_name(&p, name, sizeof name);) {
        rc = run_hardware(d, sim, want, name, &rep);
        sim_report_clear_rows(&rep);
    }
    if (rc == CLI_OK)
        printf("TPOT and stall per decode step of a modeled run over all %lld steps; hit %% = "
               "experts resident or already loading\nwhen the router asked; gap closed = (lru - "
               "policy) / (lru - oracle) on TPOT at the same cache size.%s%s\n\n",
               (long long)rep.n_tokens,
               d->synthetic ? "\nOn the synthetic trace each layer's expert popularity is "
                              "fixed (a Zipf law), which suits lfu's counts." : "",
               want[EC_POLICY_HYBRID] ? "\nhybrid runs some misses on the host CPU instead of "
                                        "copying them (the profiles' host facts): the oracle, "
                                        "which only copies,\nis not its floor."
                                      : "");
    ec_sim_destroy(sim);
    return rc;
}
