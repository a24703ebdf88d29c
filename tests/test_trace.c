/* The raw JSONL trace loader: shape, de-duplication, and every malformation. */
#include "testutil.h"

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
