/* expertcast demo, part 1: the first sequence of the trace through the real
 * loader (cuda when a device exists, else the cpu backend), every policy. */
#include "demo.h"
#include "replay_run.h"

#include <stdio.h>
#include <string.h>

void demo_saved(char *buf, size_t size, double ref, double policy, int share)
{
    if (!share)
        snprintf(buf, size, "%+.3f", ref - policy);
    else if (ref > 0)
        snprintf(buf, size, "%+.3f (%+.0f%%)", ref - policy, 100 * (ref - policy) / ref);
    else
        snprintf(buf, size, "%+.3f (-)", ref - policy);
}

/* The row of kind k, or NULL. */
static const ec_replay_result *row_of(const replay_report *rep, ec_policy_kind k)
{
    for (int i = 0; i < rep->n; i++)
        if (rep->rows[i].kind == k)
            return &rep->rows[i].r;
    return NULL;
}

int demo_replay(const demo_ctx *d)
{
    const ec_trace *t = d->t;
    const ec_seq *q = &t->seqs[0];
    size_t complete = 0;
    for (size_t r = q->row0; r < q->row0 + q->n_rows; r++)
        complete += t->complete[r];
    size_t replayed = complete < (size_t)d->tokens ? complete : (size_t)d->tokens;
    replay_args a;
    replay_args_default(&a);
    a.backend = d->backend;
    a.cache_experts = d->cache;
    a.tokens = d->tokens;
    a.warmup = replayed >= 8 ? 4 : (long long)replayed / 2;
    /* every policy; predict and gated only with a sequence to fit on */
    ec_policy_kind kinds[EC_POLICY_RESIDENT + 1];
    char list[256] = "";
    int n = 0;
    for (int k = 0; k <= EC_POLICY_RESIDENT; k++) {
        if ((k == EC_POLICY_PREDICT || k == EC_POLICY_GATED) && t->n_seqs < 2)
            continue;
        kinds[n++] = (ec_policy_kind)k;
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%s", len ? "," : "", ec_policy_kind_name(k));
    }
    char json[4096];
    snprintf(json, sizeof json, "%s/replay.json", d->outdir);
    printf("== 1. the loader: sequence 0 (problem %lld) replayed through the real loader ==\n"
           "$ expertcast replay %s --backend %s --policy %s --cache-experts %d --tokens %lld "
           "--warmup %lld --json %s\n",
           (long long)q->problem_id, d->trace_path, d->backend,
           t->n_seqs < 2 ? list : "all", (int)d->cache, d->tokens, a.warmup, json);
    fflush(stdout);
    replay_report rep;
    int rc = replay_execute(&a, t, kinds, n, &rep);
    if (rc == CLI_OK)
        rc = cli_write_file(json, replay_write_json, &rep);
    if (rc != CLI_OK) {
        replay_report_free(&rep);
        return rc;
    }
    const ec_replay_result *first = &rep.rows[0].r;
    const ec_replay_result *lru = row_of(&rep, EC_POLICY_LRU);
    const ec_replay_result *od = row_of(&rep, EC_POLICY_ON_DEMAND);
    if (strcmp(rep.backend, "cpu") == 0)
        printf("backend cpu (%s): copies are memcpy by a copy thread, the compute stand-ins "
               "sleep; with a CUDA device this part runs on cuda\n",
               rep.device);
    else
        printf("backend %s (%s)\n", rep.backend, rep.device);
    printf("cache %d of %d experts per layer; expert %.2f MiB, copy %.3f ms/expert; attention "
           "%g us/layer, FFN %g us/expert\n",
           (int)d->cache, (int)t->n_experts, (double)a.expert_bytes / 1048576.0, rep.copy_ms,
           a.attn_us, a.ffn_us);
    if (t->n_seqs < 2)
        printf("predictor: none (predict and gated left out: no other sequence to fit one on "
               "without testing on its own training data)\n");
    else
        printf("predictor %s, fitted on the %zu other sequence(s), not replayed (held out)\n",
               a.predictor, t->n_seqs - rep.n_seqs);
    printf("n = %zu tokens measured: %zu complete tokens of sequence 0 replayed, the first %zu "
           "as warm-up; %lld expert uses\n\n",
           first->tokens_measured, first->tokens, first->tokens - first->tokens_measured,
           (long long)first->measured.cache.acquires);
    printf("%-10s %7s %13s %13s %19s %9s\n", "policy", "hit %", "stall ms/tok", "saved vs lru",
           "saved vs on-demand", "TPOT ms");
    for (int i = 0; i < rep.n; i++) {
        const ec_replay_result *r = &rep.rows[i].r;
        char vs_lru[40], vs_od[40];
        demo_saved(vs_lru, sizeof vs_lru, lru->stall_ms_per_token, r->stall_ms_per_token, 0);
        demo_saved(vs_od, sizeof vs_od, od->stall_ms_per_token, r->stall_ms_per_token, 0);
        printf("%-10s %7.2f %13.3f %13s %19s %9.3f\n", ec_policy_kind_name(rep.rows[i].kind),
               100 * r->hit_rate, r->stall_ms_per_token, vs_lru, vs_od, r->tpot_ms);
    }
    /* why the table looks as it does: whether the link has room to prefetch */
    double layer_ms = (a.attn_us + a.ffn_us * t->k) / 1000.0;
    printf("\nwhy: one copy (%.3f ms) %s a layer's compute (%.3f ms)%s\n", rep.copy_ms,
           rep.copy_ms < layer_ms ? "fits in" : "outlasts", layer_ms,
           rep.copy_ms < layer_ms
               ? ": the link has slack, so prefetching\n(predict, gated) can hide copies that "
                 "lru and lfu wait for."
               : ": demand misses saturate the link, so\nprefetching hides little and eviction "
                 "decides.");
    printf("\nhit %%: uses whose expert was resident or in flight when the router chose it; "
           "stall: measured wait of the\ncompute stream per token; saved: the reference's "
           "stall minus the policy's, ms per token. The hit rates of\non-demand, lru and lfu "
           "depend on the trace only; stall and TPOT are measured and vary from run to run%s\n"
           "wrote %s\n\n",
           strcmp(rep.backend, "cpu") == 0
               ? "\n(on the cpu backend a busy host's late wake-ups from the stand-in sleeps "
                 "hide or expose copies: part 2 models them)."
               : ".",
           json);
    replay_report_free(&rep);
    return CLI_OK;
}
