/* The oracle's future from a trace, and the `replay` command. */
#include "testutil.h"
#include "expertcast/replay.h"

#include <stdlib.h>
#include <string.h>

static ec_trace *synth(int32_t L, int32_t seqs, int32_t tokens)
{
    ec_synth_opts so;
    ec_synth_opts_default(&so);
    so.n_layers = L;
    so.n_seqs = seqs;
    so.n_tokens = tokens;
    ec_trace *t = NULL;
    cr_assert_eq(ec_synth_generate(&so, &t, NULL), EC_OK);
    return t;
}

Test(trace_future, next_use_and_experts_at_agree_with_a_scan)
{
    ec_trace *t = synth(5, 2, 20);
    size_t rows[30];
    size_t n = 0;
    for (size_t r = 3; r < t->n_rows && n < 30; r += 1 + (r % 2)) /* a subset, in order */
        rows[n++] = r;
    ec_trace_future *f;
    cr_assert_eq(ec_trace_future_create(t, rows, n, &f), EC_OK);
    const ec_future *fu = ec_trace_future_get(f);
    int64_t steps = (int64_t)n * t->n_layers;
    for (int64_t from = 0; from <= steps; from += 3)
        for (int32_t l = 0; l < t->n_layers; l++)
            for (int32_t e = 0; e < t->n_experts; e++) {
                int64_t want = INT64_MAX;
                for (int64_t s = from; s < steps && want == INT64_MAX; s++) {
                    if (s % t->n_layers != l)
                        continue;
                    const int16_t *ex = ec_trace_experts(t, rows[s / t->n_layers], l);
                    for (int32_t j = 0; j < t->k; j++)
                        if (ex[j] == e)
                            want = s;
                }
                cr_assert_eq(fu->next_use(fu->ctx, from, l, e), want, "from %lld l %d e %d",
                             (long long)from, l, e);
            }
    int32_t layer;
    int16_t ex[8];
    cr_assert_eq(fu->experts_at(fu->ctx, 7, &layer, ex), t->k);
    cr_assert_eq(layer, 7 % t->n_layers);
    cr_assert_eq(memcmp(ex, ec_trace_experts(t, rows[7 / t->n_layers], layer),
                        (size_t)t->k * sizeof *ex), 0);
    cr_assert_eq(fu->experts_at(fu->ctx, steps, &layer, ex), 0, "past the end");
    ec_trace_future_destroy(f);
    ec_trace_destroy(t);
}

Test(replay_cli, prints_every_policy_and_writes_json)
{
    const char *d = tu_tmpdir();
    char trace[512], json[512];
    snprintf(trace, sizeof trace, "%s/t.jsonl", d);
    snprintf(json, sizeof json, "%s/r.json", d);
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_cli(&out, &err, "synth --layers 4 --sequences 2 --tokens 16 -o %s", trace), 0,
                 "%s", err);
    free(out);
    free(err);
    int rc = tu_cli(&out, &err,
                    "replay %s --backend cpu --policy all --tokens 10 --warmup 2 --attn-us 20 "
                    "--ffn-us 5 --expert-bytes 4K --verify --json %s",
                    trace, json);
    cr_assert_eq(rc, 0, "%s", err);
    const char *names[] = {"on-demand", "lru", "lfu", "predict", "gated", "oracle", "resident"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "\n%s ", names[i]);
        cr_assert(strstr(out, want), "row %s missing:\n%s", names[i], out);
        snprintf(want, sizeof want, "%s: 80 acquisitions checksummed, 0 wrong", names[i]);
        cr_assert(strstr(out, want), "%s missing:\n%s", want, out);
    }
    cr_assert(strstr(out, "8 tokens measured after 2 warm-up"), "%s", out);
    char *j = tu_read(json, NULL);
    cr_assert_not_null(j);
    cr_assert(strstr(j, "\"policy\": \"oracle\""));
    cr_assert(strstr(j, "\"sim_tpot_ms\": null"));
    free(j);
    free(out);
    free(err);
}

Test(replay_cli, bad_input_exits_with_a_usage_or_data_error)
{
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_cli(&out, &err, "replay"), 2);
    cr_assert(strstr(err, "trace file is required"));
    free(out);
    free(err);
    cr_assert_eq(tu_cli(&out, &err, "replay x.jsonl --policy nope"), 2);
    cr_assert(strstr(err, "unknown policy 'nope'"), "%s", err);
    free(out);
    free(err);
    cr_assert_eq(tu_cli(&out, &err, "replay x.jsonl --expert-bytes 12Q"), 2);
    free(out);
    free(err);
    cr_assert_eq(tu_cli(&out, &err, "replay /nonexistent/t.jsonl --backend cpu"), 1);
    cr_assert(strstr(err, "/nonexistent/t.jsonl"), "%s", err);
    free(out);
    free(err);
}
