/*
 * gpu_replay: the loader on the device, a Mixtral-shaped decode loop per
 * policy, measured.
 *
 * Per token and layer: an attention stand-in kernel of fixed duration, the
 * router's choice from a routing trace (a file, or a synthetic trace made
 * here), ec_loader_observe, then per chosen expert ec_loader_acquire, the
 * real SwiGLU FFN kernel on the slot's weights, ec_loader_release.
 * Default expert: d_model 4096 x d_ff 3584 in fp16 = 88,080,384 bytes, the
 * size of a 4-bit Mixtral expert (whose 4-bit GEMV reads as many bytes).
 * --dtype q4 stores, copies and runs real 4-bit experts instead (Q4_0
 * blocks, kernels/ffn_q4.cu): Mixtral's 4096 x 14336 is 99,090,432 bytes.
 *
 * Measured in the same run and written to the JSON: the device name, the
 * host->device peak of plain back-to-back cudaMemcpyAsync copies of one
 * expert from pinned memory, one copy's latency, the attention stand-in's
 * and the FFN's durations, and per policy the TPOT, stall per token, hit
 * rate, achieved copy bandwidth (and its ratio to the peak), and the host
 * time of observe / acquire / release per layer. The simulator then replays
 * the same tokens with those measured times, for the relative error of its
 * TPOT.
 *
 * Runs on the cpu backend too (tiny shapes) so that it can be tried
 * without a device.
 */
#include "core/jsonstr.h"
#include "expertcast/replay.h"
#include "expertcast/sim.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *USAGE =
    "usage: gpu_replay [options]\n\n"
    "Options:\n"
    "  --backend NAME       cuda, cpu or auto (default cuda)\n"
    "  --trace PATH         routing trace (raw JSONL); default the bundled sample_trace.jsonl when\n"
    "                       present, else a synthetic Mixtral-shaped trace made here\n"
    "  --layers N           layers of the synthetic trace (default 32)\n"
    "  --synth-seqs N       sequences of the synthetic trace (default 4)\n"
    "  --synth-tokens N     tokens per synthetic sequence (default 96)\n"
    "  --d-model N          expert input/output width (default 4096)\n"
    "  --d-ff N             expert hidden width (default 3584: 88 MB fp16 experts)\n"
    "  --dtype f16|q4       expert weight format (default f16; q4: multiples of 32)\n"
    "  --cache-experts N    device slots per layer (default 4 of 8)\n"
    "  --cache-global N     one pool of N slots instead\n"
    "  --policies LIST      comma-separated (default on-demand,lru,predict,gated,hybrid,oracle,\n"
    "                       resident); hybrid's host runs the host expert kernel, whose\n"
    "                       time (measured here) decides whether a miss goes to the host\n"
    "  --predictor NAME     for predict and gated (default temporal), fitted on the sequences\n"
    "                       not replayed\n"
    "  --horizon H          layers ahead to prefetch for (default 1)\n"
    "  --window W           prefetch copies in flight (default 2)\n"
    "  --attn-us US         attention stand-in per layer (default 200)\n"
    "  --tokens N           tokens replayed per policy (default 48)\n"
    "  --warmup N           tokens left out of the figures (default 4)\n"
    "  --verify             checksum every acquired slot on the device\n"
    "  --threads N          host threads filling the store (default 16)\n"
    "  --json PATH          write the results here (default: stdout only)\n";

typedef struct args {
    const char *backend, *trace, *policies, *predictor, *json;
    ec_dtype dtype;
    int layers, synth_seqs, synth_tokens, d_model, d_ff, cache_experts, cache_global;
    int horizon, window, tokens, warmup, verify, threads;
    double attn_us;
} args;

static int die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gpu_replay: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static int parse(int argc, char **argv, args *a)
{
    *a = (args){.backend = "cuda", .policies = "on-demand,lru,predict,gated,hybrid,oracle,resident",
                .predictor = "temporal", .layers = 32, .synth_seqs = 4, .synth_tokens = 96,
                .d_model = 4096, .d_ff = 3584, .cache_experts = 4, .horizon = 1, .window = 2,
                .tokens = 48, .warmup = 4, .threads = 16, .attn_us = 200};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            fputs(USAGE, stdout);
            exit(0);
        }
        if (!strcmp(o, "--verify")) {
            a->verify = 1;
            continue;
        }
        if (i + 1 >= argc)
            return die("option %s needs a value (see --help)", o);
        const char *v = argv[++i];
        int *iv = NULL;
        if (!strcmp(o, "--backend")) a->backend = v;
        else if (!strcmp(o, "--trace")) a->trace = v;
        else if (!strcmp(o, "--policies")) a->policies = v;
        else if (!strcmp(o, "--predictor")) a->predictor = v;
        else if (!strcmp(o, "--json")) a->json = v;
        else if (!strcmp(o, "--attn-us")) a->attn_us = atof(v);
        else if (!strcmp(o, "--dtype")) {
            if (ec_dtype_parse(v, &a->dtype))
                return die("--dtype: '%s' is not f16 or q4", v);
        }
        else if (!strcmp(o, "--layers")) iv = &a->layers;
        else if (!strcmp(o, "--synth-seqs")) iv = &a->synth_seqs;
        else if (!strcmp(o, "--synth-tokens")) iv = &a->synth_tokens;
        else if (!strcmp(o, "--d-model")) iv = &a->d_model;
        else if (!strcmp(o, "--d-ff")) iv = &a->d_ff;
        else if (!strcmp(o, "--cache-experts")) iv = &a->cache_experts;
        else if (!strcmp(o, "--cache-global")) iv = &a->cache_global;
        else if (!strcmp(o, "--horizon")) iv = &a->horizon;
        else if (!strcmp(o, "--window")) iv = &a->window;
        else if (!strcmp(o, "--tokens")) iv = &a->tokens;
        else if (!strcmp(o, "--warmup")) iv = &a->warmup;
        else if (!strcmp(o, "--threads")) iv = &a->threads;
        else return die("unknown option %s (see --help)", o);
        if (iv) {
            char *end;
            long x = strtol(v, &end, 10);
            if (*end || x < 0 || x > 1 << 30)
                return die("%s: '%s' is not a count", o, v);
            *iv = (int)x;
        }
    }
    if (a->d_model < 1 || a->d_ff < 1 || a->layers < 1 || a->tokens < 1)
        return die("shapes and --tokens must be positive");
    if (!ec_expert_bytes(a->dtype, a->d_model, a->d_ff))
        return die("--d-model %d x --d-ff %d is not a valid %s shape (q4: multiples of 32)",
                   a->d_model, a->d_ff, ec_dtype_name(a->dtype));
    if (a->cache_global)
        a->cache_experts = 0;
    return 0;
}

/* ---- measurements outside the loader ------------------------------------------------ */

typedef struct calib {
    double peak_gbps;   /* 10 back-to-back copies of one expert, one stream */
    double copy_ms;     /* one copy, median of 5 */
    double attn_ms;     /* the attention stand-in, mean of 20 */
    double ffn_ms;      /* one expert FFN on resident weights, mean of 20 */
    double host_ms;     /* one expert on the host (host kernel on the store), median of 3 */
    double act_ms;      /* the layer input to the host and an output back, median of 5 */
} calib;

#define CK(call)                                                                                   \
    do {                                                                                           \
        if ((s = (call)) != EC_OK) {                                                               \
            fprintf(stderr, "gpu_replay: %s: %s\n", #call, ec_backend_errmsg(b));                   \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

static ec_status calibrate(ec_backend *b, ec_store *st, const args *a, calib *c)
{
    ec_status s = EC_OK;
    size_t n = ec_store_expert_bytes(st);
    ec_stream *q = NULL;
    ec_event *e0 = NULL, *e1 = NULL;
    void *dev = NULL, *dx = NULL, *dout = NULL, *dscr = NULL;
    float ms;
    CK(ec_stream_create(b, &q));
    CK(ec_event_create(b, EC_EVENT_TIMING, &e0));
    CK(ec_event_create(b, EC_EVENT_TIMING, &e1));
    CK(ec_backend_dev_alloc(b, n, &dev));
    CK(ec_backend_dev_alloc(b, (size_t)a->d_model * 2, &dx));
    CK(ec_backend_dev_alloc(b, (size_t)a->d_model * 4, &dout));
    CK(ec_backend_dev_alloc(b, (size_t)a->d_ff * 4, &dscr));
    const void *src = ec_store_expert(st, 0, 0);
    CK(ec_stream_copy_h2d(q, dev, src, n)); /* warm the path */
    CK(ec_stream_sync(q));
    CK(ec_event_record(e0, q));
    for (int i = 0; i < 10; i++)
        CK(ec_stream_copy_h2d(q, dev, ec_store_expert(st, 0, i % ec_store_n_experts(st)), n));
    CK(ec_event_record(e1, q));
    CK(ec_event_sync(e1));
    CK(ec_event_elapsed(e0, e1, &ms));
    c->peak_gbps = 10.0 * (double)n / ((double)ms * 1e6);
    float one[5];
    for (int i = 0; i < 5; i++) {
        CK(ec_event_record(e0, q));
        CK(ec_stream_copy_h2d(q, dev, src, n));
        CK(ec_event_record(e1, q));
        CK(ec_event_sync(e1));
        CK(ec_event_elapsed(e0, e1, &one[i]));
    }
    for (int i = 1; i < 5; i++)
        for (int j = i; j > 0 && one[j] < one[j - 1]; j--) {
            float t = one[j];
            one[j] = one[j - 1];
            one[j - 1] = t;
        }
    c->copy_ms = one[2];
    CK(ec_event_record(e0, q));
    for (int i = 0; i < 20; i++)
        CK(ec_stream_spin(q, a->attn_us));
    CK(ec_event_record(e1, q));
    CK(ec_event_sync(e1));
    CK(ec_event_elapsed(e0, e1, &ms));
    c->attn_ms = ms / 20.0;
    /* dx holds whatever: the FFN's time does not depend on the values */
    CK(ec_stream_expert_ffn(q, a->dtype, dev, dx, dout, a->d_model, a->d_ff, dscr)); /* warm-up */
    CK(ec_event_record(e0, q));
    for (int i = 0; i < 20; i++)
        CK(ec_stream_expert_ffn(q, a->dtype, dev, dx, dout, a->d_model, a->d_ff, dscr));
    CK(ec_event_record(e1, q));
    CK(ec_event_sync(e1));
    CK(ec_event_elapsed(e0, e1, &ms));
    c->ffn_ms = ms / 20.0;
    {
        /* hybrid's host: the host expert kernel (every CPU) on the store's
         * weights in their format, wall clock */
        size_t d = (size_t)a->d_model;
        uint16_t *hx = calloc(d, sizeof *hx);
        float *hout = calloc(d, sizeof *hout), *hscr = calloc(d, sizeof *hscr);
        ec_hostffn *hf = NULL;
        double h[5];
        if (!hx || !hout || !hscr || ec_hostffn_create(0, &hf, NULL)) {
            free(hx);
            free(hout);
            free(hscr);
            s = EC_ERR_NOMEM;
            goto out;
        }
        for (int i = 0; i < 3; i++) {
            double t0 = wall_ms();
            if ((s = ec_hostffn_run(hf, a->dtype, src, hscr, hout, 1, a->d_model, a->d_ff)))
                break;
            h[i] = wall_ms() - t0;
        }
        ec_hostffn_destroy(hf);
        if (s) {
            free(hx);
            free(hout);
            free(hscr);
            goto out;
        }
        c->host_ms = median(h, 3);
        for (int i = 0; i < 5; i++) {
            double t0 = wall_ms();
            if ((s = ec_stream_copy_d2h(q, hx, dx, d * 2)) || (s = ec_stream_sync(q)) ||
                (s = ec_stream_copy_h2d(q, dout, hout, d * 4)) || (s = ec_stream_sync(q)))
                break;
            h[i] = wall_ms() - t0;
        }
        c->act_ms = median(h, 5);
        free(hx);
        free(hout);
        free(hscr);
        if (s) {
            fprintf(stderr, "gpu_replay: activation copies: %s\n", ec_backend_errmsg(b));
            goto out;
        }
    }
out:
    ec_backend_dev_free(b, dev);
    ec_backend_dev_free(b, dx);
    ec_backend_dev_free(b, dout);
    ec_backend_dev_free(b, dscr);
    ec_event_destroy(e0);
    ec_event_destroy(e1);
    ec_stream_destroy(q);
    return s;
}

/* ---- report ------------------------------------------------------------------------------ */

typedef struct row {
    ec_policy_kind kind;
    ec_status status;
    char error[EC_ERROR_MAX];
    ec_replay_result r;
    int sim_ok;           /* the simulator ran this policy */
    double sim_tpot_ms;   /* its TPOT over the same tokens (warm-up included) */
    double sim_hit_rate;
    int cal_ok;           /* ... and again with the host's per-layer overhead */
    double sim_cal_tpot_ms;
} row;

static double per_tok(int64_t v, size_t n) { return n ? (double)v / (double)n : 0; }

static void write_json(FILE *f, const args *a, ec_backend *b, const ec_trace *t,
                       const char *source, size_t bytes, const calib *c, const row *rows, int n,
                       const char *pred_fit, double overhead)
{
    fputs("{\n  \"bench\": \"gpu_replay\",\n  \"backend\": ", f);
    ec_json_write_string(f, ec_backend_name(b));
    fputs(",\n  \"device\": ", f);
    ec_json_write_string(f, ec_backend_device_name(b));
    fputs(",\n  \"trace\": {\"source\": ", f);
    ec_json_write_string(f, source);
    fprintf(f, ", \"layers\": %d, \"experts\": %d, \"k\": %d, \"sequences\": %zu},\n",
            (int)t->n_layers, (int)t->n_experts, (int)t->k, t->n_seqs);
    fprintf(f, "  \"expert\": {\"d_model\": %d, \"d_ff\": %d, \"bytes\": %zu, \"dtype\": \"%s\"},\n",
            a->d_model, a->d_ff, bytes, a->dtype == EC_DTYPE_Q4 ? "q4_0" : "fp16");
    fprintf(f, "  \"cache_per_layer\": %d, \"cache_global\": %d, \"window\": %d, \"horizon\": %d,\n",
            a->cache_experts, a->cache_global, a->window, a->horizon);
    fputs("  \"predictor\": ", f);
    ec_json_write_string(f, a->predictor);
    fputs(", \"predictor_fit\": ", f);
    ec_json_write_string(f, pred_fit);
    fprintf(f, ",\n  \"attn_us_requested\": %g, \"tokens_requested\": %d, \"warmup\": %d,\n", a->attn_us,
            a->tokens, a->warmup);
    fprintf(f,
            "  \"measured\": {\"h2d_peak_gbps\": %.4f, \"h2d_peak_method\": \"10 back-to-back "
            "%s of one expert from %s memory on one stream, event-timed\", "
            "\"copy_ms\": %.5f, \"attn_ms\": %.5f, \"ffn_ms\": %.5f, \"layer_compute_ms\": "
            "%.5f, \"host_ffn_ms\": %.5f, \"host_ffn_method\": \"the library's reference FFN "
            "(scalar) on one expert in the store, wall clock, median of 3\", "
            "\"host_act_ms\": %.5f},\n",
            c->peak_gbps, strcmp(ec_backend_name(b), "cuda") == 0 ? "cudaMemcpyAsync" : "memcpy",
            strcmp(ec_backend_name(b), "cuda") == 0 ? "pinned" : "host", c->copy_ms, c->attn_ms,
            c->ffn_ms, c->attn_ms + t->k * c->ffn_ms, c->host_ms, c->act_ms);
    fputs("  \"sim_model\": \"ec_sim_run on the replayed tokens: 1 copy engine, transfer = "
          "measured copy_ms, router = measured attn_ms, per expert = measured ffn_ms; its TPOT "
          "includes the warm-up tokens, so sim_rel_error compares it with tpot_all_ms. "
          "sim_cal_*: the same with the host overhead per layer (resident replay minus its "
          "simulation, per layer) added to the router time\",\n",
          f);
    if (overhead > 0)
        fprintf(f, "  \"sim_host_overhead_ms_per_layer\": %.5f,\n", overhead);
    else
        fputs("  \"sim_host_overhead_ms_per_layer\": null,\n", f);
    fputs("  \"policies\": [\n", f);
    for (int i = 0; i < n; i++) {
        const ec_replay_result *r = &rows[i].r;
        const ec_loader_stats *m = &r->measured;
        fputs("    {\"policy\": ", f);
        ec_json_write_string(f, ec_policy_kind_name(rows[i].kind));
        if (rows[i].status) {
            fputs(", \"error\": ", f);
            ec_json_write_string(f, rows[i].error);
            fprintf(f, "}%s\n", i + 1 < n ? "," : "");
            continue;
        }
        fprintf(f,
                ", \"tokens_measured\": %zu, \"acquires\": %lld, \"tpot_ms\": %.5f, "
                "\"stall_ms_per_token\": %.5f, \"hit_rate\": %.5f, \"resident_rate\": %.5f, "
                "\"copies_per_token\": %.3f, \"prefetches_per_token\": %.3f, "
                "\"wasted_per_token\": %.3f, \"cancelled_per_token\": %.3f, "
                "\"copy_gbps\": %.4f, \"copy_vs_peak\": %.4f, \"observe_us\": %.3f, "
                "\"acquire_us\": %.3f, \"release_us\": %.3f, \"acquire_us_max\": %.3f, "
                "\"wall_ms_per_token\": %.4f, \"verified\": %lld, \"verify_failures\": %lld, "
                "\"tpot_all_ms\": %.5f, \"host_runs_per_token\": %.3f, "
                "\"host_ms_per_token\": %.4f, ",
                r->tokens_measured, (long long)m->cache.acquires, r->tpot_ms,
                r->stall_ms_per_token, r->hit_rate, r->resident_rate,
                per_tok(m->copies, r->tokens_measured),
                per_tok(m->prefetch_copies, r->tokens_measured),
                per_tok(m->cache.wasted, r->tokens_measured),
                per_tok(m->cache.cancelled, r->tokens_measured), r->copy_gbps,
                c->peak_gbps > 0 ? r->copy_gbps / c->peak_gbps : 0, r->observe_us,
                r->acquire_us, r->release_us, r->acquire_us_max,
                r->wall_ms / (double)(r->tokens_measured ? r->tokens_measured : 1),
                (long long)r->verified, (long long)r->verify_failures, r->tpot_all_ms,
                per_tok(r->host_runs, r->tokens_measured), r->host_ms_per_token);
        fprintf(f, "\"hit_rate_all\": %.5f, ",
                r->total.cache.acquires
                    ? (double)(r->total.cache.hits + r->total.cache.inflight_hits) /
                          (double)r->total.cache.acquires
                    : 0);
        if (rows[i].sim_ok)
            fprintf(f, "\"sim_tpot_ms\": %.5f, \"sim_hit_rate\": %.5f, \"sim_rel_error\": %.5f, ",
                    rows[i].sim_tpot_ms, rows[i].sim_hit_rate,
                    (rows[i].sim_tpot_ms - r->tpot_all_ms) / r->tpot_all_ms);
        else
            fputs("\"sim_tpot_ms\": null, \"sim_hit_rate\": null, \"sim_rel_error\": null, ", f);
        if (rows[i].cal_ok)
            fprintf(f, "\"sim_cal_tpot_ms\": %.5f, \"sim_cal_rel_error\": %.5f}",
                    rows[i].sim_cal_tpot_ms,
                    (rows[i].sim_cal_tpot_ms - r->tpot_all_ms) / r->tpot_all_ms);
        else
            fputs("\"sim_cal_tpot_ms\": null, \"sim_cal_rel_error\": null}", f);
        fputs(i + 1 < n ? ",\n" : "\n", f);
    }
    fputs("  ]\n}\n", f);
}

static void print_table(const args *a, ec_backend *b, const ec_trace *t, size_t bytes,
                        const calib *c, const row *rows, int n)
{
    printf("gpu_replay on %s (%s), %d layers x %d experts top-%d, expert %.1f MB %s "
           "(%d x %d)\n",
           ec_backend_name(b), ec_backend_device_name(b), (int)t->n_layers, (int)t->n_experts,
           (int)t->k, (double)bytes / 1e6, a->dtype == EC_DTYPE_Q4 ? "q4_0" : "fp16", a->d_model,
           a->d_ff);
    printf("measured: h2d peak %.2f GB/s, one copy %.3f ms, attention %.3f ms, FFN %.3f ms; "
           "host FFN %.3f ms, activations there and back %.3f ms\n",
           c->peak_gbps, c->copy_ms, c->attn_ms, c->ffn_ms, c->host_ms, c->act_ms);
    printf("%-10s %9s %10s %7s %9s %8s %10s %10s %9s %9s %8s %8s\n", "policy", "TPOT ms",
           "stall ms", "hit%", "copy GB/s", "vs peak", "observe us", "acquire us", "all-tok",
           "sim TPOT", "sim err", "cal err");
    for (int i = 0; i < n; i++) {
        const ec_replay_result *r = &rows[i].r;
        if (rows[i].status) {
            printf("%-10s failed: %s\n", ec_policy_kind_name(rows[i].kind), rows[i].error);
            continue;
        }
        printf("%-10s %9.3f %10.3f %7.2f %9.2f %8.3f %10.2f %10.2f %9.3f",
               ec_policy_kind_name(rows[i].kind), r->tpot_ms, r->stall_ms_per_token,
               100 * r->hit_rate, r->copy_gbps, c->peak_gbps > 0 ? r->copy_gbps / c->peak_gbps : 0,
               r->observe_us, r->acquire_us, r->tpot_all_ms);
        if (rows[i].sim_ok)
            printf(" %9.3f %7.1f%%", rows[i].sim_tpot_ms,
                   100 * (rows[i].sim_tpot_ms - r->tpot_all_ms) / r->tpot_all_ms);
        else
            printf(" %9s %8s", "-", "-");
        if (rows[i].cal_ok)
            printf(" %7.1f%%\n", 100 * (rows[i].sim_cal_tpot_ms - r->tpot_all_ms) / r->tpot_all_ms);
        else
            printf(" %8s\n", "-");
    }
    printf("(per token means over %zu measured tokens after %d warm-up; hit%% over %lld uses;\n"
           " all-tok: TPOT over every token, warm-up included, as the simulator counts it)\n",
           rows[0].r.tokens_measured, a->warmup, (long long)rows[0].r.measured.cache.acquires);
}

/* ---- the simulator on the same tokens and measured times ------------------------------------ */

/* The first max_tokens complete rows of sequence 0, as a trace of their own
 * (written to a temporary file and read back). */
static ec_trace *replayed_rows(const ec_trace *t, size_t max_tokens)
{
    char path[] = "/tmp/gpu_replay_rows_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return NULL;
    const ec_seq *q = &t->seqs[0];
    size_t n = 0;
    for (size_t i = q->row0; i < q->row0 + q->n_rows && n < max_tokens; i++) {
        if (!t->complete[i])
            continue;
        for (int32_t l = 0; l < t->n_layers; l++) {
            const int16_t *e = ec_trace_experts(t, i, l);
            fprintf(f, "{\"problem_id\": 0, \"layer\": %d, \"experts\": [", (int)l);
            for (int32_t j = 0; j < t->k; j++)
                fprintf(f, "%s%d", j ? ", " : "", e[j]);
            fprintf(f, "], \"token_idx\": %zu}\n", n);
        }
        n++;
    }
    fclose(f);
    ec_trace_opts opts = {.n_layers = t->n_layers, .n_experts = t->n_experts};
    ec_trace *sub = NULL;
    const char *p = path;
    if (ec_trace_load(&p, 1, &opts, &sub, NULL))
        sub = NULL;
    unlink(path);
    return sub;
}

/*
 * Timing model for the simulator, from this run's measurements: one copy
 * engine (the loader's copy stream) taking the measured single-copy time;
 * the attention stand-in between a layer's experts and the next router is
 * the router time; each expert's FFN is the per-expert compute.
 */
static void sim_all(ec_sim *sim, const ec_trace *sub, const args *a, const ec_sim_timing *tm,
                    row *rows, int n, int calibrated)
{
    ec_error err = {0};
    for (int i = 0; i < n; i++) {
        if (rows[i].status)
            continue;
        ec_sim_config sc = {.kind = rows[i].kind, .horizon = a->horizon, .timing = *tm};
        sc.cache_per_layer = rows[i].kind == EC_POLICY_RESIDENT ? sub->n_experts : a->cache_experts;
        sc.cache_global = rows[i].kind == EC_POLICY_RESIDENT ? 0 : a->cache_global;
        ec_sim_result res;
        if (ec_sim_run(sim, &sc, &res, &err) == EC_OK) {
            if (calibrated) {
                rows[i].cal_ok = 1;
                rows[i].sim_cal_tpot_ms = res.tpot_ms;
            } else {
                rows[i].sim_ok = 1;
                rows[i].sim_tpot_ms = res.tpot_ms;
                rows[i].sim_hit_rate = res.hit_rate;
            }
        } else {
            fprintf(stderr, "gpu_replay: simulator, policy %s: %s\n",
                    ec_policy_kind_name(rows[i].kind), err.message);
        }
        ec_sim_result_clear(&res);
    }
}

/* Returns the host overhead per layer used by the calibrated run (ms), or
 * -1 when it could not be derived (no resident row). */
static double simulate(const ec_trace *sub, const ec_predictor *pred, const args *a,
                       const calib *c, size_t bytes, row *rows, int n)
{
    ec_sim *sim = NULL;
    ec_error err = {0};
    if (!sub || ec_sim_create(sub, 1, &sim, &err) || ec_sim_set_predictor(sim, pred, &err)) {
        fprintf(stderr, "gpu_replay: simulator not run: %s\n", sub ? err.message : "no rows");
        ec_sim_destroy(sim);
        return -1;
    }
    ec_sim_timing tm = {.transfer_ms = c->copy_ms, .engines = 1, .compute_fixed_ms = 0,
                        .compute_per_expert_ms = c->ffn_ms, .router_ms = c->attn_ms,
                        .predictor_ms = 0, .expert_bytes = (double)bytes,
                        .host_lanes = 1, .host_stream_ms = c->host_ms,
                        .host_d2h_ms = c->act_ms / 2, .host_h2d_ms = c->act_ms / 2};
    sim_all(sim, sub, a, &tm, rows, n, 0);
    /* The resident replay has no copies: what it takes beyond the modeled
     * compute is the host's per-layer overhead (router read-back, launches,
     * loader calls). Charged to every policy's router time, it gives the
     * calibrated prediction. */
    double overhead = -1;
    for (int i = 0; i < n; i++)
        if (rows[i].kind == EC_POLICY_RESIDENT && !rows[i].status && rows[i].sim_ok)
            overhead = (rows[i].r.tpot_all_ms - rows[i].sim_tpot_ms) / sub->n_layers;
    if (overhead > 0) {
        tm.router_ms += overhead;
        sim_all(sim, sub, a, &tm, rows, n, 1);
    }
    ec_sim_destroy(sim);
    return overhead;
}

/* ---- main ---------------------------------------------------------------------------------- */

static ec_trace *load_or_synth(const args *a, const char **source)
{
    ec_trace *t = NULL;
    ec_error err = {0};
    const char *path = a->trace;
    static char sample[4096]; /* the bundled trace, found from any directory */
    if (!path && ec_data_find("sample_trace.jsonl", sample, sizeof sample, NULL) == EC_OK)
        path = sample;
    if (path) {
        *source = path;
        if (ec_trace_load(&path, 1, NULL, &t, &err))
            die("%s", err.message);
        return t;
    }
    ec_synth_opts so;
    ec_synth_opts_default(&so);
    so.n_layers = a->layers;
    so.n_seqs = a->synth_seqs;
    so.n_tokens = a->synth_tokens;
    *source = "synthetic (ec_synth_generate defaults: locality 0.5/0.4, skew 0.8, seed 1)";
    if (ec_synth_generate(&so, &t, &err))
        die("%s", err.message);
    return t;
}

int main(int argc, char **argv)
{
    args a;
    if (parse(argc, argv, &a))
        return 2;
    const char *source = NULL;
    ec_trace *t = load_or_synth(&a, &source);
    if (!t)
        return 1;
    size_t bytes = ec_expert_bytes(a.dtype, a.d_model, a.d_ff);
    ec_error err = {0};
    ec_backend *b = NULL;
    ec_store *st = NULL;
    ec_predictor *pred = NULL;
    row rows[16];
    int n = 0, rc = 0;
    if (ec_backend_create(a.backend, NULL, &b, &err)) {
        rc = die("%s", err.message);
        goto done;
    }
    double host_need = (double)t->n_layers * t->n_experts * (double)bytes;
    double host_have = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (host_need > 0.7 * host_have) {
        rc = die("the store needs %.1f GB of pinned host memory, the machine has %.1f GB. "
                 "HINT: --layers N (synthetic trace) or a smaller --d-ff",
                 host_need / 1e9, host_have / 1e9);
        goto done;
    }
    fprintf(stderr, "gpu_replay: %s (%s); filling %.1f GB of pinned host memory\n",
            ec_backend_name(b), ec_backend_device_name(b), host_need / 1e9);
    if (ec_store_create(b, t->n_layers, t->n_experts, bytes, &st, &err)) {
        rc = die("%s", err.message);
        goto done;
    }
    if (ec_store_set_format(st, a.dtype, a.d_model, a.d_ff)) {
        rc = die("%s", ec_store_errmsg(st));
        goto done;
    }
    ec_store_fill_synthetic(st, 1, a.threads);
    calib c = {0};
    if (calibrate(b, st, &a, &c)) {
        rc = 1;
        goto done;
    }
    /* replay the first sequence, fit the predictor on the others */
    uint8_t *mask = calloc(t->n_seqs, 1), *others = calloc(t->n_seqs, 1);
    if (!mask || !others) {
        free(mask);
        free(others);
        rc = die("out of memory");
        goto done;
    }
    mask[0] = 1;
    size_t n_others = 0;
    for (size_t i = 1; i < t->n_seqs; i++)
        n_others += others[i] = 1;
    const char *pred_fit = n_others ? "sequences 1.. (the replayed sequence 0 held out)"
                                    : "in-sample (one sequence only)";
    if (ec_predictor_create(a.predictor, NULL, &pred, &err) ||
        ec_predictor_fit(pred, t, n_others ? others : NULL)) {
        rc = die("predictor %s: %s", a.predictor, err.message[0] ? err.message : ec_predictor_errmsg(pred));
        free(mask);
        free(others);
        goto done;
    }
    char list[256];
    snprintf(list, sizeof list, "%s", a.policies);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok && n < 16;
         tok = strtok_r(NULL, ",", &save)) {
        row *r = &rows[n];
        memset(r, 0, sizeof *r);
        if (ec_policy_kind_parse(tok, &r->kind)) {
            die("unknown policy %s", tok);
            continue;
        }
        ec_replay_opts o = {0};
        ec_loader_config_default(&o.loader);
        o.loader.policy.kind = r->kind;
        o.loader.policy.horizon = a.horizon;
        o.loader.policy.transfer_ms = c.copy_ms;
        o.loader.policy.compute_ms = c.attn_ms + t->k * c.ffn_ms;
        o.loader.policy.host_ms = c.host_ms;
        o.loader.policy.host_act_ms = c.act_ms;
        o.loader.cache_per_layer = r->kind == EC_POLICY_RESIDENT ? t->n_experts : a.cache_experts;
        o.loader.cache_global = r->kind == EC_POLICY_RESIDENT ? 0 : a.cache_global;
        o.loader.issue_window = a.window;
        o.attn_us = a.attn_us;
        o.d_model = a.d_model;
        o.d_ff = a.d_ff;
        o.dtype = a.dtype;
        o.max_tokens = (size_t)a.tokens;
        o.warmup_tokens = (size_t)a.warmup;
        o.verify = a.verify;
        o.seq_mask = mask;
        fprintf(stderr, "gpu_replay: policy %s...\n", tok);
        ec_error e2 = {0};
        r->status = ec_replay_run(b, st, t, pred, &o, &r->r, &e2);
        if (r->status) {
            snprintf(r->error, sizeof r->error, "%s", e2.message);
            fprintf(stderr, "gpu_replay: policy %s: %s\n", tok, e2.message);
            if (r->kind != EC_POLICY_RESIDENT)
                rc = 1; /* resident may simply not fit on the device */
        } else if (r->r.verify_failures) {
            rc = 1;
        }
        n++;
    }
    free(others);
    if (n > 0) {
        ec_trace *sub = replayed_rows(t, (size_t)a.tokens);
        double overhead = simulate(sub, pred, &a, &c, bytes, rows, n);
        ec_trace_destroy(sub);
        print_table(&a, b, t, bytes, &c, rows, n);
        if (a.json) {
            ec_outfile *of;
            FILE *f;
            if (ec_outfile_open(a.json, &of, &f, &err)) {
                rc = die("%s", err.message);
            } else {
                write_json(f, &a, b, t, source, bytes, &c, rows, n, pred_fit, overhead);
                if (ec_outfile_commit(of, &err))
                    rc = die("%s", err.message);
            }
        }
    }
    free(mask);
done:
    ec_predictor_destroy(pred);
    ec_store_destroy(st);
    ec_backend_destroy(b);
    ec_trace_destroy(t);
    return rc;
}
