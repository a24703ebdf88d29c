/* expertcast replay and demo: the real loader over a recorded trace, one
 * run per policy (store, copy calibration, predictor fit, backend choice
 * and fallback), and the replay command's table and JSON. */
#include "replay_run.h"
#include "core/jsonstr.h"

#include <stdlib.h>
#include <string.h>

void replay_args_default(replay_args *a)
{
    *a = (replay_args){.backend = "auto", .predictor = "temporal", .cache_experts = 4,
                       .horizon = 1, .window = 2, .expert_bytes = 1 << 20, .attn_us = 200,
                       .ffn_us = 50, .tokens = 64, .warmup = 4, .replay_seqs = 1};
}

double replay_per_token(int64_t v, size_t n) { return n ? (double)v / (double)n : 0; }

/* Fits the predictor on the sequences not replayed (all when none is left). */
static ec_predictor *fit_predictor(const replay_args *o, const ec_trace *t,
                                   const uint8_t *replayed, const char **split, int *rc)
{
    ec_predictor *p = NULL;
    ec_error err = {0};
    int in_sample = 0;
    ec_status s = ec_predictor_create_heldout(o->predictor, NULL, t, replayed, &p, &in_sample,
                                              &err);
    if (s) {
        *rc = cli_fail(s, &err);
        return NULL;
    }
    *split = in_sample ? "in-sample: no other sequence" : "fitted on the sequences not replayed";
    return p;
}

/* Everything that runs on one backend: store, copy calibration, the
 * policies. On failure err says which step failed. */
static ec_status run_on(ec_backend *b, const replay_args *o, const ec_trace *t,
                        const ec_policy_kind *kinds, int n_kinds, const ec_predictor *pred,
                        const uint8_t *replayed, replay_row *rows, double *copy_ms, ec_error *err)
{
    ec_store *s = NULL;
    ec_status st = ec_store_create(b, t->n_layers, t->n_experts, (size_t)o->expert_bytes, &s, err);
    if (st)
        return st;
    ec_store_fill_synthetic(s, 1, 4);
    if ((st = ec_replay_measure_copy_ms(b, s, copy_ms, err))) {
        ec_store_destroy(s);
        return st;
    }
    for (int i = 0; i < n_kinds && !st; i++) {
        ec_replay_opts ro = {0};
        ec_loader_config_default(&ro.loader);
        ro.loader.policy.kind = kinds[i];
        ro.loader.policy.horizon = o->horizon;
        ro.loader.policy.transfer_ms = o->transfer_ms > 0 ? o->transfer_ms : *copy_ms;
        ro.loader.policy.compute_ms = (o->attn_us + t->k * o->ffn_us) / 1e3;
        ro.loader.policy.host_ms = o->host_ffn_us / 1e3;
        ro.host_ffn_us = o->host_ffn_us;
        ro.loader.cache_per_layer =
            kinds[i] == EC_POLICY_RESIDENT ? t->n_experts : o->cache_experts;
        ro.loader.cache_global = kinds[i] == EC_POLICY_RESIDENT ? 0 : o->cache_global;
        ro.loader.issue_window = o->window;
        ro.loader.record_path = i == 0 ? o->record : NULL;
        ro.attn_us = o->attn_us;
        ro.ffn_us = o->ffn_us;
        ro.max_tokens = (size_t)o->tokens;
        ro.warmup_tokens = (size_t)o->warmup;
        ro.verify = o->verify;
        ro.seq_mask = replayed;
        ro.host_poll_us = strcmp(ec_backend_name(b), "cpu") == 0 ? 20 : 0;
        rows[i].kind = kinds[i];
        ec_error e2 = {0};
        if ((st = ec_replay_run(b, s, t, pred, &ro, &rows[i].r, &e2)))
            snprintf(err->message, sizeof err->message, "policy %s: %.400s",
                     ec_policy_kind_name(kinds[i]), e2.message);
    }
    ec_store_destroy(s);
    return st;
}

/* Opens backend `name`: an explicit cuda that has no usable device (or no
 * CUDA in this build) is a usage error (exit 2) naming the reason; auto
 * falls back to cpu and says why. Returns CLI_OK or an exit code. */
static int open_backend(const char *name, ec_backend **b)
{
    ec_error err = {0};
    ec_status st = ec_backend_create(name, NULL, b, &err);
    if (st == EC_ERR_NO_DEVICE || st == EC_ERR_UNSUPPORTED) {
        cli_error("--backend %s: %s", name, err.message);
        return CLI_USAGE;
    }
    if (st)
        return cli_fail(st, &err);
    if (ec_backend_fallback_reason(*b)[0])
        fprintf(stderr, "expertcast: %s: replaying on the cpu backend instead (copies are "
                        "memcpy, compute stand-ins sleep)\n",
                ec_backend_fallback_reason(*b));
    return CLI_OK;
}

int replay_execute(const replay_args *o, const ec_trace *t, const ec_policy_kind *kinds,
                   int n_kinds, replay_report *rep)
{
    *rep = (replay_report){.o = o, .t = t, .predictor_split = "unused", .n = n_kinds};
    ec_backend *b = NULL;
    ec_predictor *pred = NULL;
    uint8_t *replayed = calloc(t->n_seqs, 1);
    rep->rows = calloc((size_t)n_kinds, sizeof *rep->rows);
    ec_error err = {0};
    ec_status st;
    int rc = CLI_OK;
    if (!rep->rows || !replayed) {
        cli_error("out of memory");
        rc = CLI_DATA;
        goto done;
    }
    for (size_t i = 0; i < t->n_seqs && rep->n_seqs < (size_t)o->replay_seqs; i++, rep->n_seqs++)
        replayed[i] = 1;
    for (int i = 0; i < n_kinds; i++)
        if ((kinds[i] == EC_POLICY_PREDICT || kinds[i] == EC_POLICY_GATED ||
             kinds[i] == EC_POLICY_HYBRID) && !pred &&
            !(pred = fit_predictor(o, t, replayed, &rep->predictor_split, &rc)))
            goto done;
    if ((rc = open_backend(o->backend, &b)))
        goto done;
    st = run_on(b, o, t, kinds, n_kinds, pred, replayed, rep->rows, &rep->copy_ms, &err);
    if (st == EC_ERR_NOMEM && strcmp(o->backend, "auto") == 0 &&
        strcmp(ec_backend_name(b), "cuda") == 0) {
        cli_warn("%s; falling back to the cpu backend", err.message);
        ec_backend_destroy(b);
        b = NULL;
        memset(rep->rows, 0, (size_t)n_kinds * sizeof *rep->rows);
        if ((rc = open_backend("cpu", &b)))
            goto done;
        st = run_on(b, o, t, kinds, n_kinds, pred, replayed, rep->rows, &rep->copy_ms, &err);
    }
    if (st) {
        rc = cli_fail(st, &err);
        goto done;
    }
    snprintf(rep->backend, sizeof rep->backend, "%s", ec_backend_name(b));
    snprintf(rep->device, sizeof rep->device, "%s", ec_backend_device_name(b));
done:
    free(replayed);
    ec_predictor_destroy(pred);
    ec_backend_destroy(b);
    return rc;
}

void replay_report_free(replay_report *rep)
{
    free(rep->rows);
    rep->rows = NULL;
    rep->n = 0;
}

ec_status replay_write_json(FILE *f, void *ctx, ec_error *err)
{
    const replay_report *p = ctx;
    const replay_args *o = p->o;
    fputs("{\n  \"backend\": ", f);
    ec_json_write_string(f, p->backend);
    fputs(",\n  \"device\": ", f);
    ec_json_write_string(f, p->device);
    fputs(",\n", f);
    fprintf(f, "  \"trace\": {\"layers\": %d, \"experts\": %d, \"k\": %d, \"sequences_replayed\": %zu},\n",
            (int)p->t->n_layers, (int)p->t->n_experts, (int)p->t->k, p->n_seqs);
    fprintf(f, "  \"expert_bytes\": %lld, \"cache_per_layer\": %d, \"cache_global\": %d,\n",
            o->expert_bytes, (int)o->cache_experts, (int)o->cache_global);
    fprintf(f, "  \"attn_us\": %g, \"ffn_us\": %g, \"copy_ms_per_expert\": %.6f,\n", o->attn_us,
            o->ffn_us, p->copy_ms);
    fputs("  \"predictor\": ", f);
    ec_json_write_string(f, o->predictor);
    fputs(", \"predictor_fit\": ", f);
    ec_json_write_string(f, p->predictor_split);
    fprintf(f, ", \"horizon\": %d, \"window\": %d,\n", (int)o->horizon, (int)o->window);
    fprintf(f, "  \"sim_tpot_ms\": null,\n  \"policies\": [\n");
    for (int i = 0; i < p->n; i++) {
        const ec_replay_result *r = &p->rows[i].r;
        const ec_loader_stats *m = &r->measured;
        fprintf(f,
                "    {\"policy\": \"%s\", \"tokens\": %zu, \"tokens_measured\": %zu, "
                "\"acquires\": %lld, \"hit_rate\": %.6f, \"resident_rate\": %.6f, "
                "\"stall_ms_per_token\": %.6f, \"tpot_ms\": %.6f, \"copies_per_token\": %.4f, "
                "\"prefetches_per_token\": %.4f, \"wasted_per_token\": %.4f, "
                "\"cancelled_per_token\": %.4f, \"copy_gbps\": %.4f, \"observe_us\": %.3f, "
                "\"acquire_us\": %.3f, \"release_us\": %.3f, \"verified\": %lld, "
                "\"verify_failures\": %lld}%s\n",
                ec_policy_kind_name(p->rows[i].kind), r->tokens, r->tokens_measured,
                (long long)m->cache.acquires, r->hit_rate, r->resident_rate,
                r->stall_ms_per_token, r->tpot_ms, replay_per_token(m->copies, r->tokens_measured),
                replay_per_token(m->prefetch_copies, r->tokens_measured),
                replay_per_token(m->cache.wasted, r->tokens_measured),
                replay_per_token(m->cache.cancelled, r->tokens_measured), r->copy_gbps, r->observe_us,
                r->acquire_us, r->release_us, (long long)r->verified,
                (long long)r->verify_failures, i + 1 < p->n ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    if (!ferror(f))
        return EC_OK;
    if (err) {
        err->status = EC_ERR_IO;
        snprintf(err->message, sizeof err->message, "write error");
    }
    return EC_ERR_IO;
}

void replay_print_table(FILE *f, const replay_report *p)
{
    const replay_args *o = p->o;
    const replay_row *first = &p->rows[0];
    fprintf(f, "replay on %s (%s): %zu sequence(s), %zu tokens measured after %zu warm-up, "
           "%d layers x %d experts, top-%d\n",
           p->backend, p->device, p->n_seqs, first->r.tokens_measured,
           first->r.tokens - first->r.tokens_measured, (int)p->t->n_layers,
           (int)p->t->n_experts, (int)p->t->k);
    if (o->cache_global)
        fprintf(f, "cache: %d slots shared by all layers; ", (int)o->cache_global);
    else
        fprintf(f, "cache: %d of %d experts per layer; ", (int)o->cache_experts, (int)p->t->n_experts);
    fprintf(f, "expert %.2f MiB, copy %.3f ms/expert (%.2f GB/s); attention %g us, FFN %g us/expert\n",
           (double)o->expert_bytes / 1048576.0, p->copy_ms,
           p->copy_ms > 0 ? (double)o->expert_bytes / (p->copy_ms * 1e6) : 0, o->attn_us,
           o->ffn_us);
    fprintf(f, "predictor %s (%s), horizon %d, window %d\n\n", o->predictor, p->predictor_split,
           (int)o->horizon, (int)o->window);
    fprintf(f, "%-10s %7s %9s %12s %9s %10s %10s %9s %10s %10s\n", "policy", "hit%", "resident%",
           "stall ms/tok", "TPOT ms", "copies/tok", "prefch/tok", "waste/tok", "observe us",
           "acquire us");
    for (int i = 0; i < p->n; i++) {
        const ec_replay_result *r = &p->rows[i].r;
        const ec_loader_stats *m = &r->measured;
        fprintf(f, "%-10s %7.2f %9.2f %12.3f %9.3f %10.2f %10.2f %9.2f %10.2f %10.2f\n",
               ec_policy_kind_name(p->rows[i].kind), 100 * r->hit_rate, 100 * r->resident_rate,
               r->stall_ms_per_token, r->tpot_ms, replay_per_token(m->copies, r->tokens_measured),
               replay_per_token(m->prefetch_copies, r->tokens_measured),
               replay_per_token(m->cache.wasted, r->tokens_measured), r->observe_us, r->acquire_us);
    }
    fprintf(f, "\nhit%%: uses whose expert was resident or in flight at the router, over %lld uses\n"
           "(%zu tokens x %d layers x top-%d); stall: measured wait of the compute stream;\n"
           "observe/acquire: host time per layer (acquire: all %d of a layer).\n",
           (long long)first->r.measured.cache.acquires, first->r.tokens_measured,
           (int)p->t->n_layers, (int)p->t->k, (int)p->t->k);
    for (int i = 0; i < p->n; i++)
        if (o->verify)
            fprintf(f, "%s: %lld acquisitions checksummed, %lld wrong\n",
                   ec_policy_kind_name(p->rows[i].kind), (long long)p->rows[i].r.verified,
                   (long long)p->rows[i].r.verify_failures);
}
