/* The raw JSONL trace loader: shape, de-duplication, and every malformation. */
#include "testutil.h"
#include "trace/jsonl.h"

#include <string.h>

static ec_trace *load_text(const char *text, ec_error *err, ec_status *st)
{
    const char *d = tu_tmpdir();
    const char *p = tu_write(d, "t.jsonl", text);
    ec_trace *t = NULL;
    *st = ec_trace_load(&p, 1, NULL, &t, err);
    return t;
}

#define REC(tok, layer, ex) "{\"problem_id\": 0, \"layer\": " #layer ", \"experts\": " ex ", \"token_idx\": " #tok "}\n"

Test(trace, loads_shape_and_rows_in_token_order)
{
    ec_error err = {0};
    ec_status s;
    ec_trace *t = load_text(REC(1, 0, "[1, 2]") REC(0, 1, "[3, 0]") REC(0, 0, "[2, 1]")
                                REC(1, 1, "[0, 3]"),
                            &err, &s);
    cr_assert_eq(s, EC_OK, "%s", err.message);
    cr_assert_eq(t->n_layers, 2);
    cr_assert_eq(t->n_experts, 4);
    cr_assert_eq(t->k, 2);
    cr_assert_eq(t->n_rows, 2);
    cr_assert_eq(t->has_gates, 0);
    cr_assert_eq(t->token_idx[0], 0);
    cr_assert_eq(ec_trace_experts(t, 0, 0)[0], 2);
    cr_assert_eq(ec_trace_experts(t, 0, 1)[0], 3);
    cr_assert_eq(ec_trace_experts(t, 1, 0)[1], 2);
    cr_assert_eq(t->n_incomplete, 0);
    ec_trace_destroy(t);
}

Test(trace, duplicate_keys_keep_the_first_and_are_counted)
{
    ec_error err = {0};
    ec_status s;
    ec_trace *t = load_text(REC(0, 0, "[1, 2]") REC(0, 0, "[3, 0]") REC(0, 1, "[0, 1]"), &err, &s);
    cr_assert_eq(s, EC_OK, "%s", err.message);
    cr_assert_eq(t->n_duplicates, 1);
    cr_assert_eq(t->n_records, 2);
    cr_assert_eq(ec_trace_experts(t, 0, 0)[0], 1);
    ec_trace_destroy(t);
}

Test(trace, missing_layer_is_flagged_never_shifted)
{
    ec_error err = {0};
    ec_status s;
    ec_trace *t = load_text(REC(0, 0, "[1, 2]") REC(0, 2, "[3, 0]") REC(1, 0, "[0, 1]")
                                REC(1, 1, "[0, 1]") REC(1, 2, "[0, 1]"),
                            &err, &s);
    cr_assert_eq(s, EC_OK, "%s", err.message);
    cr_assert_eq(t->n_rows, 2);
    cr_assert_eq(t->complete[0], 0);
    cr_assert_eq(t->complete[1], 1);
    cr_assert_eq(t->n_incomplete, 1);
    cr_assert_eq(ec_trace_experts(t, 0, 1)[0], -1);
    cr_assert_eq(ec_trace_experts(t, 0, 2)[0], 3);
    ec_trace_destroy(t);
}

Test(trace, sequences_are_keyed_by_dataset_and_problem)
{
    ec_error err = {0};
    ec_status s;
    ec_trace *t = load_text(
        "{\"dataset\": \"a\", \"problem_id\": 0, \"layer\": 0, \"experts\": [1], \"token_idx\": 0}\n"
        "{\"dataset\": \"b\", \"problem_id\": 0, \"layer\": 0, \"experts\": [2], \"token_idx\": 0}\n",
        &err, &s);
    cr_assert_eq(s, EC_OK, "%s", err.message);
    cr_assert_eq(t->n_seqs, 2);
    cr_assert_str_eq(t->seqs[1].dataset, "b");
    ec_trace_destroy(t);
}

Test(trace, accepts_bom_crlf_token_pos_unknown_fields_and_blank_lines)
{
    ec_error err = {0};
    ec_status s;
    ec_trace *t = load_text("\xEF\xBB\xBF{\"layer\": 0, \"experts\": [1, 0], \"gating_probs\": "
                            "[0.6, 0.4], \"token_pos\": 3, \"extra\": {\"x\": [1]}}\r\n\r\n",
                            &err, &s);
    cr_assert_eq(s, EC_OK, "%s", err.message);
    cr_assert_eq(t->token_idx[0], 3);
    cr_assert_eq(t->has_gates, 1);
    cr_assert_float_eq(ec_trace_gates(t, 0, 0)[0], 0.6f, 1e-6);
    ec_trace_destroy(t);
}

/* Each malformed input: the status, and a message naming file:line and field. */
typedef struct bad_case {
    const char *text;
    const char *expect; /* substring of the message */
} bad_case;

static const bad_case bad[] = {
    {"not json\n", ":1: not valid JSON"},
    {"[1, 2]\n", ":1: expected a JSON object"},
    {"{\"experts\": [1], \"token_idx\": 0}\n", ":1: field 'layer': missing"},
    {"{\"layer\": 0, \"token_idx\": 0}\n", ":1: field 'experts': missing"},
    {"{\"layer\": 0, \"experts\": [1]}\n", ":1: field 'token_idx': missing"},
    {"{\"layer\": \"0\", \"experts\": [1], \"token_idx\": 0}\n", "field 'layer': expected an integer, got a string"},
    {"{\"layer\": 0, \"experts\": 1, \"token_idx\": 0}\n", "field 'experts': expected an array"},
    {"{\"layer\": 0, \"experts\": [7.5], \"token_idx\": 0}\n", "field 'experts': expected an integer, got 7.5"},
    {"{\"layer\": 0, \"experts\": [\"7\"], \"token_idx\": 0}\n", "field 'experts': expected an integer, got a string"},
    {"{\"layer\": 0, \"experts\": [-1], \"token_idx\": 0}\n", "field 'experts': -1 is out of range"},
    {"{\"layer\": 0, \"experts\": [-0], \"token_idx\": 0}\n", "field 'experts': expected an integer, got -0"},
    {"{\"layer\": 0, \"experts\": [1e309], \"token_idx\": 0}\n", "field 'experts': number out of range"},
    {"{\"layer\": 0, \"experts\": [40000], \"token_idx\": 0}\n", "field 'experts': 40000 is out of range"},
    {"{\"layer\": 0, \"experts\": [1, 1], \"token_idx\": 0}\n", "field 'experts': expert 1 appears twice"},
    {"{\"layer\": 0, \"experts\": [], \"token_idx\": 0}\n", "field 'experts': empty array"},
    {"{\"layer\": 0, \"experts\": [1, 2], \"gating_probs\": [1], \"token_idx\": 0}\n", "field 'gating_probs': 1 values for 2 experts"},
    {"{\"layer\": 0, \"experts\": [1], \"gating_probs\": [-0.5], \"token_idx\": 0}\n", "field 'gating_probs': gate -0.5"},
    {"{\"layer\": 0, \"experts\": [1], \"gating_probs\": [NaN], \"token_idx\": 0}\n", ":1: field 'gating_probs': NaN is not a finite number"},
    {"{\"layer\": -1, \"experts\": [1], \"token_idx\": 0}\n", "field 'layer': -1 is out of range"},
    {"{\"layer\": 0, \"experts\": [1], \"token_idx\": -2}\n", "field 'token_idx': -2 is out of range"},
    {"{\"layer\": 0, \"experts\": [1, 2], \"token_idx\": 0}\n{\"layer\": 1, \"experts\": [1], \"token_idx\": 0}\n", ":2: field 'experts': top-k is 1 here but 2"},
    {"{\"layer\": 0, \"experts\": [1], \"gating_probs\": [1], \"token_idx\": 0}\n{\"layer\": 1, \"experts\": [1], \"token_idx\": 0}\n", ":2: field 'gating_probs': absent here but present"},
    {"{\"layer\": 0, \"experts\": [1], \"token_idx\": 0} x\n", ":1: trailing data"},
    {"{\"layer\": 0, \"experts\": [1], \"token_idx\": 0\n", ":1: field 'token_idx': not valid JSON"},
    {"{\"layer\": 0, \"experts\": [1, 2\n", ":1: field 'experts': not valid JSON"},
    {"{\"layer\": 0, \"experts\": [1], \"x\" 1}\n", ":1: not valid JSON"},
    {"\x01\x02\xff\xfe garbage\n", ":1: not valid JSON"},
    {"", "empty file"},
    {"\n\n", "empty file"},
};

Test(trace, rejects_malformed_input_naming_file_line_and_field)
{
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const bad_case *c = &bad[i];
        ec_error err = {0};
        ec_status s;
        ec_trace *t = load_text(c->text, &err, &s);
        cr_assert_null(t, "case %zu accepted", i);
        cr_assert_eq(s, EC_ERR_PARSE, "case %zu: status %d", i, s);
        cr_assert(strstr(err.message, "t.jsonl") != NULL, "no file name in '%s'", err.message);
        cr_assert(strstr(err.message, c->expect) != NULL, "case %zu: '%s' does not contain '%s'",
                  i, err.message, c->expect);
    }
}

Test(trace, declared_bounds_are_checked)
{
    const char *d = tu_tmpdir();
    const char *p = tu_write(d, "t.jsonl", "{\"layer\": 0, \"experts\": [9], \"token_idx\": 0}\n");
    ec_trace_opts o = {.n_layers = 32, .n_experts = 8};
    ec_trace *t;
    ec_error err = {0};
    cr_assert_eq(ec_trace_load(&p, 1, &o, &t, &err), EC_ERR_PARSE);
    cr_assert(strstr(err.message, "field 'experts': 9 is out of range [0, 7]"), "%s", err.message);
}

Test(trace, line_longer_than_the_buffer_is_an_error)
{
    const char *d = tu_tmpdir();
    char *big = malloc(5000);
    memset(big, ' ', 4999);
    big[4999] = '\0';
    memcpy(big, "{\"layer\": 0, \"experts\": [1], \"token_idx\": 0}", 43);
    const char *p = tu_write(d, "t.jsonl", big);
    free(big);
    ec_trace_opts o = {.max_line = 1000};
    ec_trace *t;
    ec_error err = {0};
    cr_assert_eq(ec_trace_load(&p, 1, &o, &t, &err), EC_ERR_PARSE);
    cr_assert(strstr(err.message, ":1: line longer than 1000 bytes"), "%s", err.message);
}

Test(trace, directory_and_missing_file_are_io_errors)
{
    const char *d = tu_tmpdir();
    ec_trace *t;
    ec_error err = {0};
    cr_assert_eq(ec_trace_load(&d, 1, NULL, &t, &err), EC_ERR_IO);
    cr_assert(strstr(err.message, "is a directory"), "%s", err.message);
    const char *missing = "/nonexistent/x.jsonl";
    cr_assert_eq(ec_trace_load(&missing, 1, NULL, &t, &err), EC_ERR_IO);
    cr_assert(strstr(err.message, "/nonexistent/x.jsonl: cannot open"), "%s", err.message);
}

Test(trace, write_then_load_round_trips)
{
    ec_synth_opts o;
    ec_synth_opts_default(&o);
    o.n_layers = 5;
    o.n_experts = 16;
    o.k = 3;
    o.n_seqs = 3;
    o.n_tokens = 7;
    ec_trace *a, *b;
    cr_assert_eq(ec_synth_generate(&o, &a, NULL), EC_OK);
    const char *d = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/rt.jsonl", d);
    FILE *f = fopen(path, "w");
    cr_assert_eq(ec_trace_write_jsonl(a, f, NULL), EC_OK);
    fclose(f);
    const char *p = path;
    ec_error err = {0};
    cr_assert_eq(ec_trace_load(&p, 1, NULL, &b, &err), EC_OK, "%s", err.message);
    cr_assert_eq(b->n_rows, a->n_rows);
    cr_assert_eq(b->n_seqs, a->n_seqs);
    cr_assert_eq(b->k, 3);
    cr_assert_eq(memcmp(a->experts, b->experts, a->n_rows * 5 * 3 * sizeof(int16_t)), 0);
    cr_assert_eq(memcmp(a->gates, b->gates, a->n_rows * 5 * 3 * sizeof(float)), 0);
    ec_trace_destroy(a);
    ec_trace_destroy(b);
}

Test(trace_real, loads_the_real_traces_of_every_shape)
{
    static const struct { const char *rel; int L, E, k, gates; size_t seqs; } real[] = {
        {"mixtral-8x7b-instruct/humaneval_2_routing.jsonl", 32, 8, 2, 1, 2},
        {"flame-moe-290m/pretrain_32x64_routing.jsonl", 8, 64, 6, 1, 32},
        {"qwen3-30b-a3b/decode_4prompts_routing.jsonl", 48, 128, 8, 0, 4},
    };
    for (size_t i = 0; i < sizeof real / sizeof real[0]; i++) {
        const char *p = TU_SHARED_OR_SKIP(real[i].rel);
        ec_trace *t;
        ec_error err = {0};
        cr_assert_eq(ec_trace_load(&p, 1, NULL, &t, &err), EC_OK, "%s", err.message);
        cr_assert_eq(t->n_layers, real[i].L);
        cr_assert_eq(t->n_experts, real[i].E);
        cr_assert_eq(t->k, real[i].k);
        cr_assert_eq(t->has_gates, real[i].gates);
        cr_assert_eq(t->n_seqs, real[i].seqs);
        ec_trace_destroy(t);
    }
}

Test(trace_real, mixtral_trace_counts_match_its_readme)
{
    const char *p = TU_SHARED_OR_SKIP("mixtral-8x7b-instruct/humaneval_2_routing.jsonl");
    ec_trace *t;
    cr_assert_eq(ec_trace_load(&p, 1, NULL, &t, NULL), EC_OK);
    cr_assert_eq(t->n_records + t->n_duplicates, 10779);
    cr_assert_eq(t->n_rows, 338);
    cr_assert_eq(t->n_rows - t->n_incomplete, 333);
    ec_trace_destroy(t);
}

/* The fast line scanner and the cJSON path read the same values: numbers in
 * every form, escapes, unknown fields of every type, the alias, null gates. */
Test(trace, fast_scanner_reads_lines_as_the_cjson_path_does)
{
    static const char *const lines[] = {
        "{\"dataset\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \\/ \\n\", \"problem_id\": -7, "
        "\"layer\": 3, \"experts\": [1, 0], \"token_idx\": 12}",
        "{\"layer\": 0, \"experts\": [2, 1], \"gating_probs\": [0.1, 0.30000000000000004], "
        "\"token_pos\": 5}",
        "{\"layer\": 0, \"experts\": [2, 1], \"gating_probs\": [1e-3, 5E-1], \"token_idx\": 1}",
        "{\"layer\": 0, \"experts\": [2, 1], \"gating_probs\": [-0.0, 0], \"token_idx\": 1}",
        "{\"layer\": 0, \"experts\": [2, 1], \"gating_probs\": [123456789012345678, "
        "0.000000000000000000000001234], \"token_idx\": 1}",
        "{\"layer\": 0, \"experts\": [2, 1], \"gating_probs\": [3.4028234663852886e38, "
        "1.7976931348623157e308], \"token_idx\": 1}",
        "{\"layer\": 0, \"experts\": [2, 1], \"gating_probs\": null, \"token_idx\": 1}",
        "{\"token_pos\": 9, \"layer\": 0, \"experts\": [2], \"token_idx\": 4}",
        "{\"x\": {\"a\": [1, -2.5e+3, true, false, null, \"s\", {}], \"b\": []}, \"layer\": 1, "
        "\"experts\": [0], \"token_idx\": 0, \"long_unknown_key_name\": 1}",
        "  {\"layer\": 0, \"experts\": [1], \"token_idx\": 0}  \t",
        "{\"layer\": 0, \"experts\": [1], \"token_idx\": 1.0}",
        "{\"layer\": 0, \"experts\": [1], \"token_idx\": 01}",
        "{\"layer\": 0, \"experts\": [1], \"token_idx\": 9007199254740993}",
        "{\"layer\": 0, \"experts\": [1], \"token_idx\": 4611686018427387904}",
        "{\"layer\": 0, \"experts\": [1], \"token_idx\": -0}",
        "{\"layer\": 0, \"experts\": [1, 1], \"token_idx\": 0}",
        "{\"layer\": 0, \"experts\": [1], \"token_idx\": 0, \"layer\": 1}",
        "{\"la\\u0079er\": 0, \"experts\": [1], \"token_idx\": 0}",
        "{\"layer\": 0, \"experts\": [1], \"token_idx\": 0, \"d\": \"\\ud800\"}",
        "{\"layer\": 0, \"experts\": [1], \"gating_probs\": [1e39], \"token_idx\": 0}",
        "{\"layer\": 0, \"experts\": [1], \"gating_probs\": [], \"token_idx\": 0}",
        "{\"layer\": 0, \"experts\": [], \"token_idx\": 0}",
        "{\"layer\": 0, \"experts\": [1], \"token_idx\": 0} x",
        "[1]",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        const char *why = ec_jsonl_paths_disagree(lines[i], strlen(lines[i]), NULL);
        cr_assert_null(why, "%s: %s", lines[i], why);
    }
}

Test(trace, integers_are_read_exactly_past_2p53)
{
    ec_error err = {0};
    ec_status s;
    ec_trace *t = load_text("{\"problem_id\": 9007199254740993, \"layer\": 0, \"experts\": [1], "
                            "\"token_idx\": 9007199254740993}\n"
                            "{\"problem_id\": 9007199254740993, \"layer\": 0, \"experts\": [0], "
                            "\"token_idx\": 9007199254740992}\n"
                            "{\"problem_id\": 9007199254740992, \"layer\": 0, \"experts\": [0], "
                            "\"token_idx\": 4611686018427387903}\n",
                            &err, &s);
    cr_assert_eq(s, EC_OK, "%s", err.message);
    cr_assert_eq(t->n_seqs, 2);
    cr_assert_eq(t->n_rows, 3);
    cr_assert_eq(t->n_duplicates, 0);
    cr_assert_eq(t->seqs[0].problem_id, INT64_C(9007199254740993));
    cr_assert_eq(t->seqs[1].problem_id, INT64_C(9007199254740992));
    cr_assert_eq(t->token_idx[0], INT64_C(9007199254740992));
    cr_assert_eq(t->token_idx[1], INT64_C(9007199254740993));
    cr_assert_eq(t->token_idx[2], INT64_C(4611686018427387903));
    ec_trace_destroy(t);
}

/* The same on 50,000 random edits of record lines (characters JSON uses
 * inserted, replaced or deleted): wherever the fast scanner accepts a
 * line, the cJSON path reads the same values. */
Test(trace, fast_scanner_agrees_with_cjson_on_edited_lines)
{
    static const char *const seeds[] = {
        "{\"dataset\": \"caf\\u00e9\", \"problem_id\": 9007199254740993, \"layer\": 3, "
        "\"experts\": [1, 0], \"gating_probs\": [0.25, 1e-3], \"token_idx\": 12}",
        "{\"layer\": 0, \"experts\": [2, 1], \"gating_probs\": [0.1, 0.30000000000000004], "
        "\"token_pos\": 5, \"x\": {\"a\": [1, -2.5e+3, true, null, \"s\\n\"]}}",
        "{\"dataset\": \"github_issues\", \"problem_id\": 0, \"layer\": 0, \"experts\": [40, 52, "
        "95, 102, 108, 100, 13, 96], \"token_idx\": 1}",
    };
    static const char alpha[] = "{}[]\":,0123456789-+.eE \\u\tabcdefnrtlsx";
    uint64_t rng = 42;
    char buf[512];
    for (int it = 0; it < 50000; it++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        const char *s = seeds[(rng >> 33) % 3];
        size_t n = strlen(s);
        memcpy(buf, s, n);
        for (int m = 0; m < 1 + (int)((rng >> 40) % 4); m++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t at = (size_t)(rng >> 20) % n;
            char c = alpha[(rng >> 50) % (sizeof alpha - 1)];
            int op = (int)((rng >> 12) % 3);
            if (op == 0) {
                buf[at] = c;
            } else if (op == 1 && n < sizeof buf - 1) {
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = c;
                n++;
            } else if (n > 1) {
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
            }
        }
        const char *why = ec_jsonl_paths_disagree(buf, n, NULL);
        cr_assert_null(why, "%s: %.*s", why, (int)n, buf);
    }
}

/* A line with guesses goes to the cJSON path, which reads them; the fast
 * path never drops them nor leaves the record's guess count unset. */
Test(trace, guesses_are_read_whichever_path_a_line_takes)
{
    const char *line = "{\"dataset\": \"d\", \"problem_id\": 0, \"layer\": 0, \"experts\": [7, 0], "
                       "\"gating_probs\": [0.5, 0.4], \"token_idx\": 0, \"guesses\": [{\"ahead\": "
                       "1, \"experts\": [4, 2], \"probs\": [0.25, 0.125]}]}";
    cr_assert_null(ec_jsonl_paths_disagree(line, strlen(line), NULL));
    char text[1024];
    snprintf(text, sizeof text,
             "%s\n{\"dataset\": \"d\", \"problem_id\": 0, \"layer\": 1, \"experts\": [1, 4], "
             "\"gating_probs\": [0.5, 0.4], \"token_idx\": 0}\n",
             line);
    ec_error err = {0};
    ec_status s;
    ec_trace *t = load_text(text, &err, &s);
    cr_assert_eq(s, EC_OK, "%s", err.message);
    cr_assert_eq(t->n_guesses, 1);
    size_t n;
    const ec_guess *g = ec_trace_guesses(t, 0, 0, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(g->ahead, 1);
    cr_assert_eq(g->n, 2);
    cr_assert_eq(g->experts[0], 4);
    cr_assert_float_eq(g->probs[1], 0.125f, 1e-9);
    cr_assert_null(ec_trace_guesses(t, 0, 1, &n));
    cr_assert_eq(n, 0);
    ec_trace_destroy(t);
}
