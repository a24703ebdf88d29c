/*
 * bench_predict: nanoseconds per prediction and fit time of every predictor.
 *
 *   bench_predict [TRACE.jsonl] [--predictor a,b] [--repeat N]
 *
 * Fits each predictor on the whole trace (the Mixtral HumanEval trace from
 * ../shared when present and no trace is given, else a synthetic 32-layer,
 * 8-expert, top-2 trace of 4 x 256 tokens), then replays every sequence
 * through an ec_history and times ec_predictor_predict at each observed
 * layer for horizons 1, 2 and 4, `repeat` calls per horizon (clock read
 * once per layer). Prints one JSON object naming the trace and the build.
 */
#include "expertcast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef EC_BUILD_TYPE
#define EC_BUILD_TYPE "unknown"
#endif

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static const int32_t HORIZONS[] = {1, 2, 4};

/* Replays the trace and returns ns per predict call; *calls gets the count.
 * The sum of probabilities is accumulated in *sink so no call is elided. */
static double time_predict(const ec_predictor *p, const ec_trace *t, int repeat, size_t *calls,
                           double *sink)
{
    ec_history *h;
    if (ec_history_create(t->n_layers, t->n_experts, t->k, ec_predictor_history_depth(p) + 1,
                          &h))
        return -1;
    float *probs = malloc((size_t)t->n_experts * sizeof *probs);
    double total = 0;
    *calls = 0;
    for (size_t s = 0; s < t->n_seqs; s++) {
        const ec_seq *sq = &t->seqs[s];
        ec_history_reset(h);
        for (size_t r = sq->row0; r < sq->row0 + sq->n_rows; r++) {
            ec_history_next_token(h);
            for (int32_t l = 0; l < t->n_layers; l++) {
                const int16_t *e = ec_trace_experts(t, r, l);
                if (e[0] < 0)
                    continue;
                ec_history_observe(h, l, e);
                double t0 = now_ns();
                for (size_t i = 0; i < sizeof HORIZONS / sizeof *HORIZONS; i++)
                    for (int k = 0; k < repeat; k++) {
                        ec_predictor_predict(p, h, HORIZONS[i], probs);
                        *sink += probs[k % t->n_experts];
                    }
                total += now_ns() - t0;
                *calls += (size_t)repeat * (sizeof HORIZONS / sizeof *HORIZONS);
            }
        }
    }
    free(probs);
    ec_history_destroy(h);
    return total / (double)*calls;
}

int main(int argc, char **argv)
{
    const char *trace_path = NULL, *list = NULL;
    int repeat = 8;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--predictor") == 0 && i + 1 < argc)
            list = argv[++i];
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (argv[i][0] != '-')
            trace_path = argv[i];
        else {
            fprintf(stderr, "usage: bench_predict [TRACE.jsonl] [--predictor a,b] [--repeat N]\n");
            return 2;
        }
    }
    if (repeat < 1)
        repeat = 1;
    static const char *mixtral = EC_SHARED_DIR "/data/mixtral-8x7b-instruct/humaneval_2_routing.jsonl";
    FILE *probe = trace_path ? NULL : fopen(mixtral, "rb");
    if (probe) {
        fclose(probe);
        trace_path = mixtral;
    }
    ec_trace *t = NULL;
    ec_error err = {0};
    char trace_name[1200];
    if (trace_path) {
        if (ec_trace_load(&trace_path, 1, NULL, &t, &err)) {
            fprintf(stderr, "bench_predict: %s\n", err.message);
            return 1;
        }
        snprintf(trace_name, sizeof trace_name, "%s", trace_path);
    } else {
        ec_synth_opts o;
        ec_synth_opts_default(&o);
        o.n_tokens = 256;
        if (ec_synth_generate(&o, &t, &err)) {
            fprintf(stderr, "bench_predict: %s\n", err.message);
            return 1;
        }
        snprintf(trace_name, sizeof trace_name,
                 "synthetic (expertcast synth defaults, 4 x 256 tokens, seed 1)");
    }
    const char *names[64];
    size_t n = 0;
    char *buf = list ? strdup(list) : NULL;
    if (buf)
        for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok && n < 64;
             tok = strtok_r(NULL, ",", &save))
            names[n++] = tok;
    else
        for (const char *const *nm = ec_predictor_names(); *nm && n < 64; nm++)
            names[n++] = *nm;

    printf("{\n  \"bench\": \"predict\",\n  \"build\": \"%s\",\n  \"trace\": \"%s\",\n", EC_BUILD_TYPE,
           trace_name);
    printf("  \"shape\": {\"n_layers\": %d, \"n_experts\": %d, \"k\": %d, \"sequences\": %zu, "
           "\"tokens\": %zu},\n",
           t->n_layers, t->n_experts, t->k, t->n_seqs, t->n_rows);
    printf("  \"horizons\": [1, 2, 4],\n  \"results\": [");
    double sink = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        ec_predictor *p;
        if (ec_predictor_create(names[i], NULL, &p, &err)) {
            fprintf(stderr, "bench_predict: %s\n", err.message);
            rc = 1;
            continue;
        }
        double t0 = now_ns();
        ec_status s = ec_predictor_fit(p, t, NULL);
        double fit_ms = (now_ns() - t0) / 1e6;
        if (s) {
            fprintf(stderr, "bench_predict: %s: %s\n", names[i], ec_predictor_errmsg(p));
            ec_predictor_destroy(p);
            rc = 1;
            continue;
        }
        size_t calls = 0;
        double ns = time_predict(p, t, repeat, &calls, &sink);
        printf("%s\n    {\"predictor\": \"%s\", \"fit_ms\": %.2f, \"predict_ns\": %.1f, "
               "\"predict_calls\": %zu}",
               i ? "," : "", names[i], fit_ms, ns, calls);
        ec_predictor_destroy(p);
    }
    printf("\n  ],\n  \"checksum\": %.3f\n}\n", sink);
    free(buf);
    ec_trace_destroy(t);
    return rc;
}
