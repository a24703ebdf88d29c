/* expertcast replay: the real loader over a recorded routing trace, per policy. */
#include "cli.h"
#include "core/jsonstr.h"
#include "expertcast/replay.h"

#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: expertcast replay [options] TRACE.jsonl [TRACE.jsonl...]\n\n"
    "Runs the real expert loader over a recorded routing trace. For every token and layer:\n"
    "an attention stand-in on the compute stream, the router's choice from the trace, then\n"
    "observe / acquire / expert FFN stand-in / release, with expert weights copied from a\n"
    "pinned host store into the device cache. The host waits for each layer's router point,\n"
    "as a runtime reading the router's output does. Prints, per policy, the hit rate and the\n"
    "measured stall per token over the tokens after the warm-up. Without a usable GPU, or\n"
    "when the cache or the pinned store does not fit it, the replay runs on the cpu backend\n"
    "(with a message).\n\n"
    "Options:\n"
    "  --backend NAME           cpu, cuda or auto (default auto: cuda when a device exists,\n"
    "                           else cpu with a message)\n"
    "  --policy LIST            comma-separated policies: on-demand, lru, lfu, predict, gated,\n"
    "                           oracle, resident, or 'all' (default on-demand,lru,predict,gated,\n"
    "                           oracle)\n"
    "  --cache-experts N        device slots per layer (default 4)\n"
    "  --cache-global N         one pool of N slots shared by all layers instead\n"
    "  --expert-bytes N         bytes per expert; suffix K, M or G for 2^10, 2^20, 2^30\n"
    "                           (default 1M)\n"
    "  --predictor NAME         predictor of predict and gated (default temporal); fitted on the\n"
    "                           sequences not replayed (in-sample when there are none)\n"
    "  --horizon H              layers ahead to prefetch for (default 1)\n"
    "  --window W               prefetch copies in flight at most (default 2)\n"
    "  --attn-us US             attention stand-in per layer, microseconds (default 200)\n"
    "  --ffn-us US              expert FFN stand-in per expert, microseconds (default 50)\n"
    "  --tokens N               complete tokens replayed at most (default 64)\n"
    "  --warmup N               first tokens left out of the figures (default 4)\n"
    "  --replay-seqs N          sequences replayed, from the first (default 1)\n"
    "  --transfer-ms MS         gated's cost of one expert copy (default: measured here)\n"
    "  --verify                 checksum every acquired slot against the host store\n"
    "  --record FILE            write what the first policy's loader observed as raw JSONL\n"
    "  --json FILE              also write the results as JSON ('-' for stdout)\n"
    "  -h, --help               this text\n";

typedef struct opts {
    const char *backend, *policies, *predictor, *record, *json;
    int32_t cache_experts, cache_global, horizon, window;
    long long expert_bytes;
    double attn_us, ffn_us, transfer_ms;
    long long tokens, warmup, replay_seqs;
    int verify;
    const char **paths;
    size_t n_paths;
} opts;

/* Parses "123", "4K", "88M", "1G". */
static bool parse_bytes(const char *s, long long *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    long long mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1LL << 10;
    else if (*end == 'M' || *end == 'm')
        mul = 1LL << 20;
    else if (*end == 'G' || *end == 'g')
        mul = 1LL << 30;
    if (end == s || v <= 0 || (mul > 1 && end[1] != '\0') || (mul == 1 && *end != '\0') ||
        v > (1LL << 40) / mul)
        return false;
    *out = v * mul;
    return true;
}

static int parse(int argc, char **argv, opts *o)
{
    *o = (opts){.backend = "auto", .policies = "on-demand,lru,predict,gated,oracle",
                .predictor = "temporal", .cache_experts = 4, .horizon = 1, .window = 2,
                .expert_bytes = 1 << 20, .attn_us = 200, .ffn_us = 50, .tokens = 64,
                .warmup = 4, .replay_seqs = 1};
    o->paths = calloc((size_t)argc, sizeof *o->paths);
    if (!o->paths) {
        cli_error("out of memory");
        return CLI_DATA;
    }
    long long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (cli_is_help(a)) {
            fputs(USAGE, stdout);
            return -1;
        }
        if (cli_is(a, "--verify", NULL)) {
            o->verify = 1;
            continue;
        }
        if (!cli_looks_like_option(a)) {
            o->paths[o->n_paths++] = a;
            continue;
        }
        if (!(val = cli_value("replay", argc, argv, &i)))
            return CLI_USAGE;
        if (cli_is(a, "--backend", NULL))
            o->backend = val;
        else if (cli_is(a, "--policy", NULL))
            o->policies = val;
        else if (cli_is(a, "--predictor", NULL))
            o->predictor = val;
        else if (cli_is(a, "--record", NULL))
            o->record = val;
        else if (cli_is(a, "--json", NULL))
            o->json = val;
        else if (cli_is(a, "--expert-bytes", NULL)) {
            if (!parse_bytes(val, &o->expert_bytes))
                return cli_usage_error("replay", "--expert-bytes: '%s' is not a size", val);
        } else if (cli_is(a, "--cache-experts", NULL)) {
            if (!cli_int("replay", a, val, 1, EC_MAX_EXPERTS, &v)) return CLI_USAGE;
            o->cache_experts = (int32_t)v;
        } else if (cli_is(a, "--cache-global", NULL)) {
            if (!cli_int("replay", a, val, 1, 1 << 24, &v)) return CLI_USAGE;
            o->cache_global = (int32_t)v;
        } else if (cli_is(a, "--horizon", NULL)) {
            if (!cli_int("replay", a, val, 1, EC_MAX_LAYERS, &v)) return CLI_USAGE;
            o->horizon = (int32_t)v;
        } else if (cli_is(a, "--window", NULL)) {
            if (!cli_int("replay", a, val, 1, 1024, &v)) return CLI_USAGE;
            o->window = (int32_t)v;
        } else if (cli_is(a, "--tokens", NULL)) {
            if (!cli_int("replay", a, val, 1, 100000000, &o->tokens)) return CLI_USAGE;
        } else if (cli_is(a, "--warmup", NULL)) {
            if (!cli_int("replay", a, val, 0, 100000000, &o->warmup)) return CLI_USAGE;
        } else if (cli_is(a, "--replay-seqs", NULL)) {
            if (!cli_int("replay", a, val, 1, 100000000, &o->replay_seqs)) return CLI_USAGE;
        } else if (cli_is(a, "--attn-us", NULL)) {
            if (!cli_double("replay", a, val, 0, 1e6, &o->attn_us)) return CLI_USAGE;
        } else if (cli_is(a, "--ffn-us", NULL)) {
            if (!cli_double("replay", a, val, 0, 1e6, &o->ffn_us)) return CLI_USAGE;
        } else if (cli_is(a, "--transfer-ms", NULL)) {
            if (!cli_double("replay", a, val, 0, 1e6, &o->transfer_ms)) return CLI_USAGE;
        } else
            return cli_usage_error("replay", "unknown option '%s'", a);
    }
    if (o->n_paths == 0)
        return cli_usage_error("replay", "a trace file is required");
    if (o->cache_global)
        o->cache_experts = 0;
    return CLI_OK;
}

/* Splits the policy list; returns how many (at most 16), 0 after an error. */
static int parse_policies(const char *list, ec_policy_kind *kinds)
{
    if (strcmp(list, "all") == 0) {
        for (int i = 0; i <= EC_POLICY_RESIDENT; i++)
            kinds[i] = (ec_policy_kind)i;
        return EC_POLICY_RESIDENT + 1;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (n == 16 || ec_policy_kind_parse(tok, &kinds[n]) != EC_OK) {
            cli_usage_error("replay", "--policy: unknown policy '%s'", tok);
            return 0;
        }
        n++;
    }
    if (n == 0)
        cli_usage_error("replay", "--policy: empty list");
    return n;
}

/* Milliseconds to copy one expert host -> device, median of 5 timed copies. */
static ec_status measure_copy_ms(ec_backend *b, ec_store *s, double *ms_out)
{
    ec_stream *st = NULL;
    ec_event *e0 = NULL, *e1 = NULL;
    void *dev = NULL;
    size_t n = ec_store_expert_bytes(s);
    ec_status r;
    float ms[5];
    if (!(r = ec_stream_create(b, &st)) && !(r = ec_event_create(b, EC_EVENT_TIMING, &e0)) &&
        !(r = ec_event_create(b, EC_EVENT_TIMING, &e1)) && !(r = ec_backend_dev_alloc(b, n, &dev))) {
        for (int i = 0; i < 5 && !r; i++) {
            if (!(r = ec_event_record(e0, st)) &&
                !(r = ec_stream_copy_h2d(st, dev, ec_store_expert(s, 0, i % ec_store_n_experts(s)), n)) &&
                !(r = ec_event_record(e1, st)) && !(r = ec_event_sync(e1)))
                r = ec_event_elapsed(e0, e1, &ms[i]);
        }
    }
    if (!r) {
        for (int i = 1; i < 5; i++) /* insertion sort of 5 */
            for (int j = i; j > 0 && ms[j] < ms[j - 1]; j--) {
                float t = ms[j];
                ms[j] = ms[j - 1];
                ms[j - 1] = t;
            }
        *ms_out = ms[2];
    }
    ec_backend_dev_free(b, dev);
    ec_event_destroy(e0);
    ec_event_destroy(e1);
    ec_stream_destroy(st);
    return r;
}

typedef struct run_row {
    ec_policy_kind kind;
    ec_replay_result r;
} run_row;

typedef struct report {
    const opts *o;
    const ec_trace *t;
    const char *device, *backend, *predictor_split;
    double copy_ms;
    size_t n_seqs;
    run_row *rows;
    int n;
} report;

static double per_tok(int64_t v, size_t n) { return n ? (double)v / (double)n : 0; }

static ec_status write_json(FILE *f, void *ctx, ec_error *err)
{
    const report *p = ctx;
    const opts *o = p->o;
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
                r->stall_ms_per_token, r->tpot_ms, per_tok(m->copies, r->tokens_measured),
                per_tok(m->prefetch_copies, r->tokens_measured),
                per_tok(m->cache.wasted, r->tokens_measured),
                per_tok(m->cache.cancelled, r->tokens_measured), r->copy_gbps, r->observe_us,
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

static void print_table(const report *p)
{
    const opts *o = p->o;
    const run_row *first = &p->rows[0];
    printf("replay on %s (%s): %zu sequence(s), %zu tokens measured after %zu warm-up, "
           "%d layers x %d experts, top-%d\n",
           p->backend, p->device, p->n_seqs, first->r.tokens_measured,
           first->r.tokens - first->r.tokens_measured, (int)p->t->n_layers,
           (int)p->t->n_experts, (int)p->t->k);
    if (o->cache_global)
        printf("cache: %d slots shared by all layers; ", (int)o->cache_global);
    else
        printf("cache: %d of %d experts per layer; ", (int)o->cache_experts, (int)p->t->n_experts);
    printf("expert %.2f MiB, copy %.3f ms/expert (%.2f GB/s); attention %g us, FFN %g us/expert\n",
           (double)o->expert_bytes / 1048576.0, p->copy_ms,
           p->copy_ms > 0 ? (double)o->expert_bytes / (p->copy_ms * 1e6) : 0, o->attn_us,
           o->ffn_us);
    printf("predictor %s (%s), horizon %d, window %d\n\n", o->predictor, p->predictor_split,
           (int)o->horizon, (int)o->window);
    printf("%-10s %7s %9s %12s %9s %10s %10s %9s %10s %10s\n", "policy", "hit%", "resident%",
           "stall ms/tok", "TPOT ms", "copies/tok", "prefch/tok", "waste/tok", "observe us",
           "acquire us");
    for (int i = 0; i < p->n; i++) {
        const ec_replay_result *r = &p->rows[i].r;
        const ec_loader_stats *m = &r->measured;
        printf("%-10s %7.2f %9.2f %12.3f %9.3f %10.2f %10.2f %9.2f %10.2f %10.2f\n",
               ec_policy_kind_name(p->rows[i].kind), 100 * r->hit_rate, 100 * r->resident_rate,
               r->stall_ms_per_token, r->tpot_ms, per_tok(m->copies, r->tokens_measured),
               per_tok(m->prefetch_copies, r->tokens_measured),
               per_tok(m->cache.wasted, r->tokens_measured), r->observe_us, r->acquire_us);
    }
    printf("\nhit%%: uses whose expert was resident or in flight at the router, over %lld uses\n"
           "(%zu tokens x %d layers x top-%d); stall: measured wait of the compute stream;\n"
           "observe/acquire: host time per layer (acquire: all %d of a layer).\n",
           (long long)first->r.measured.cache.acquires, first->r.tokens_measured,
           (int)p->t->n_layers, (int)p->t->k, (int)p->t->k);
    for (int i = 0; i < p->n; i++)
        if (o->verify)
            printf("%s: %lld acquisitions checksummed, %lld wrong\n",
                   ec_policy_kind_name(p->rows[i].kind), (long long)p->rows[i].r.verified,
                   (long long)p->rows[i].r.verify_failures);
}

/* Fits the predictor on the sequences not replayed (all when none is left). */
static ec_predictor *fit_predictor(const opts *o, const ec_trace *t, const uint8_t *replayed,
                                   const char **split, int *rc)
{
    ec_predictor *p = NULL;
    ec_error err = {0};
    ec_status s = ec_predictor_create(o->predictor, NULL, &p, &err);
    if (s) {
        *rc = cli_fail(s, &err);
        return NULL;
    }
    uint8_t *mask = calloc(t->n_seqs, 1);
    size_t others = 0;
    for (size_t i = 0; mask && i < t->n_seqs; i++)
        others += mask[i] = !replayed[i];
    *split = others ? "fitted on the sequences not replayed" : "in-sample: no other sequence";
    s = ec_predictor_fit(p, t, others ? mask : NULL);
    free(mask);
    if (s) {
        cli_error("predictor %s: %s", o->predictor, ec_predictor_errmsg(p));
        ec_predictor_destroy(p);
        *rc = cli_exit_code(s);
        return NULL;
    }
    return p;
}

/* Everything that runs on one backend: store, copy calibration, the
 * policies. On failure err says which step failed. */
static ec_status run_on(ec_backend *b, const opts *o, const ec_trace *t,
                        const ec_policy_kind *kinds, int n_kinds, const ec_predictor *pred,
                        const uint8_t *replayed, run_row *rows, double *copy_ms, ec_error *err)
{
    ec_store *s = NULL;
    ec_status st = ec_store_create(b, t->n_layers, t->n_experts, (size_t)o->expert_bytes, &s, err);
    if (st)
        return st;
    ec_store_fill_synthetic(s, 1, 4);
    if ((st = measure_copy_ms(b, s, copy_ms))) {
        snprintf(err->message, sizeof err->message, "measuring the copy time: %s",
                 ec_backend_errmsg(b));
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

static ec_status open_backend(const char *name, ec_backend **b)
{
    ec_error err = {0};
    ec_status st = ec_backend_create(name, NULL, b, &err);
    if (st && strcmp(name, "cuda") == 0 && (st == EC_ERR_NO_DEVICE || st == EC_ERR_UNSUPPORTED)) {
        cli_warn("%s; using the cpu backend", err.message);
        return ec_backend_create("cpu", NULL, b, &err);
    }
    if (st)
        cli_fail(st, &err);
    else if (strcmp(name, "auto") == 0 && strcmp(ec_backend_name(*b), "cpu") == 0)
        fprintf(stderr, "expertcast: no usable CUDA device: replaying on the cpu backend "
                        "(copies are memcpy, compute stand-ins sleep)\n");
    return st;
}

int cmd_replay(int argc, char **argv)
{
    opts o;
    int rc = parse(argc, argv, &o);
    if (rc) {
        free(o.paths);
        return rc < 0 ? CLI_OK : rc;
    }
    ec_policy_kind kinds[16];
    int n_kinds = parse_policies(o.policies, kinds);
    ec_trace *t = n_kinds ? cli_load_trace(o.paths, o.n_paths, &rc) : NULL;
    free(o.paths);
    if (!n_kinds)
        return CLI_USAGE;
    if (!t)
        return rc;
    ec_backend *b = NULL;
    ec_predictor *pred = NULL;
    run_row *rows = calloc(16, sizeof *rows);
    uint8_t *replayed = calloc(t->n_seqs, 1);
    ec_error err = {0};
    ec_status st;
    if (!rows || !replayed) {
        cli_error("out of memory");
        rc = CLI_DATA;
        goto done;
    }
    size_t n_seqs = 0;
    for (size_t i = 0; i < t->n_seqs && n_seqs < (size_t)o.replay_seqs; i++, n_seqs++)
        replayed[i] = 1;
    const char *split = "unused";
    for (int i = 0; i < n_kinds; i++)
        if ((kinds[i] == EC_POLICY_PREDICT || kinds[i] == EC_POLICY_GATED) && !pred &&
            !(pred = fit_predictor(&o, t, replayed, &split, &rc)))
            goto done;
    if ((st = open_backend(o.backend, &b))) {
        rc = cli_exit_code(st);
        goto done;
    }
    double copy_ms = 0;
    st = run_on(b, &o, t, kinds, n_kinds, pred, replayed, rows, &copy_ms, &err);
    if (st == EC_ERR_NOMEM && strcmp(ec_backend_name(b), "cuda") == 0) {
        cli_warn("%s; falling back to the cpu backend", err.message);
        ec_backend_destroy(b);
        b = NULL;
        memset(rows, 0, 16 * sizeof *rows);
        if ((st = open_backend("cpu", &b))) {
            rc = cli_exit_code(st);
            goto done;
        }
        st = run_on(b, &o, t, kinds, n_kinds, pred, replayed, rows, &copy_ms, &err);
    }
    if (st) {
        rc = cli_fail(st, &err);
        goto done;
    }
    report rep = {.o = &o, .t = t, .device = ec_backend_device_name(b),
                  .backend = ec_backend_name(b), .predictor_split = split, .copy_ms = copy_ms,
                  .n_seqs = n_seqs, .rows = rows, .n = n_kinds};
    print_table(&rep);
    if (o.json)
        rc = cli_write_file(o.json, write_json, &rep);
    for (int i = 0; i < n_kinds && rc == CLI_OK; i++)
        if (rows[i].r.verify_failures)
            rc = CLI_DATA;
done:
    free(rows);
    free(replayed);
    ec_predictor_destroy(pred);
    ec_backend_destroy(b);
    ec_trace_destroy(t);
    return rc;
}
