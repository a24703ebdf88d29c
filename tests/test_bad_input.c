/*
 * The bad-input matrix: every malformed input in tests/bad (and the ones too
 * big or too odd to commit, made here) gives one line naming file:line and
 * field, exit code 1 (data) or 2 (usage), and no output. What real
 * profilers add (unknown fields, a BOM, CRLF) keeps loading.
 */
#include "testutil.h"
#include "predict/predictor.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BAD_DIR EC_SOURCE_DIR "/tests/bad"

/* Number of lines in s (a final line without '\n' counts). */
static int count_lines(const char *s)
{
    int n = 0;
    for (const char *p = s; *p; p++)
        n += *p == '\n';
    return n + (s[0] && s[strlen(s) - 1] != '\n');
}

/* Entries of dir (dot files excluded). */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot list %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/*
 * Runs `expertcast ARGS`, asserts the exit code, that stdout is empty, and
 * that stderr's first line is "expertcast: " + want (or, for usage errors,
 * starts "expertcast CMD: " + want followed by the HINT line).
 */
static void expect_failure(const char *args, int code, const char *want)
{
    char *out = NULL, *err = NULL;
    int rc = tu_cli(&out, &err, "%s", args);
    cr_assert_eq(rc, code, "'%s': exit %d, expected %d; stderr: %s", args, rc, code, err);
    cr_assert(out && out[0] == '\0', "'%s' printed to stdout: %s", args, out);
    cr_assert(err && strstr(err, want), "'%s': stderr '%s' lacks '%s'", args, err, want);
    if (code == 1) {
        cr_assert_eq(count_lines(err), 1, "'%s': not one line: %s", args, err);
        cr_assert(strncmp(err, "expertcast: ", 12) == 0, "'%s': %s", args, err);
    } else {
        cr_assert_eq(count_lines(err), 2, "'%s': usage error is not message + hint: %s", args,
                     err);
        cr_assert(strstr(err, "\nHINT: run 'expertcast "), "'%s': %s", args, err);
    }
    free(out);
    free(err);
}

/* Committed malformed traces: file, extra options, expected message after the path. */
typedef struct bad_trace {
    const char *file;
    const char *opts;
    const char *want;
} bad_trace;

static const bad_trace bad_traces[] = {
    {"truncated_line.jsonl", "", ":2: field 'experts': not valid JSON (near byte 60)"},
    {"binary_nul.jsonl", "", ":1: NUL byte in line (binary data?)"},
    {"binary_garbage.jsonl", "", ":1: not valid JSON (near byte 0)"},
    {"deep_nesting.jsonl", "", ":1: field 'extra': JSON nested deeper than 1000 levels"},
    {"number_1e309.jsonl", "", ":1: field 'experts': number out of range"},
    {"expert_negative_zero.jsonl", "", ":1: field 'experts': expected an integer, got -0"},
    {"expert_fraction.jsonl", "", ":1: field 'experts': expected an integer, got 7.5"},
    {"expert_string.jsonl", "", ":1: field 'experts': expected an integer, got a string"},
    {"expert_id_ge_8.jsonl", "--experts 8", ":2: field 'experts': 9 is out of range [0, 7]"},
    {"expert_duplicate.jsonl", "", ":1: field 'experts': expert 3 appears twice"},
    {"gate_negative.jsonl", "",
     ":1: field 'gating_probs': gate -0.5 is not a finite non-negative number"},
    {"gate_nan.jsonl", "", ":1: field 'gating_probs': NaN is not a finite number"},
    {"gate_beyond_float.jsonl", "",
     ":1: field 'gating_probs': gate 1e+39 is not a finite non-negative number"},
    {"k_changes.jsonl", "", ":3: field 'experts': top-k is 3 here but 2 on the first record"},
    {"layer_ge_32.jsonl", "--layers 32", ":2: field 'layer': 40 is out of range [0, 31]"},
    {"field_repeated.jsonl", "", ":1: field 'layer': appears twice in the record"},
    {"problem_id_beyond_int64.jsonl", "",
     ":1: field 'problem_id': 9223372036854775807 is out of range [-4611686018427387904, "
     "4611686018427387903]"},
    {"token_exponent_beyond_2p53.jsonl", "",
     ":1: field 'token_idx': 1e17 cannot be read exactly in this form (beyond 2^53: write it "
     "as plain digits)"},
    {"dataset_nul.jsonl", "",
     ":2: field 'dataset': \\u0000 (NUL) in a string or key is not accepted (near byte 14)"},
    {"key_nul.jsonl", "", ":1: \\u0000 (NUL) in a string or key is not accepted (near byte 40)"},
    {"guess_probs_over_one.jsonl", "",
     ":2: field 'guesses[0].probs': probabilities sum to 1.25, more than 1"},
    {"guess_expert_duplicate.jsonl", "", ":1: field 'guesses[0].experts': expert 4 appears twice"},
    {"cr_only_line_ends.jsonl", "",
     ":1: carriage return inside the line (near byte 64): CR-only line ends are not supported; "
     "convert them to LF (e.g. tr '\\r' '\\n')"},
    {"problem_id_1e300.jsonl", "",
     ":1: field 'problem_id': 1e300 is out of range [-4611686018427387904, "
     "4611686018427387903]"},
    {"empty.jsonl", "", ": empty file, no routing record"},
    {"blank_lines.jsonl", "", ": empty file, no routing record"},
};

Test(bad_input, every_committed_malformed_trace_fails_with_file_line_field)
{
    for (size_t i = 0; i < sizeof bad_traces / sizeof bad_traces[0]; i++) {
        const bad_trace *c = &bad_traces[i];
        char args[2048], want[2048];
        snprintf(args, sizeof args, "info %s '%s/%s'", c->opts, BAD_DIR, c->file);
        snprintf(want, sizeof want, "expertcast: %s/%s%s", BAD_DIR, c->file, c->want);
        expect_failure(args, 1, want);
    }
}

Test(bad_input, every_file_in_tests_bad_has_an_expectation)
{
    DIR *d = opendir(BAD_DIR);
    cr_assert_not_null(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 6, ".jsonl") != 0)
            continue;
        files++;
        int found = 0;
        for (size_t i = 0; i < sizeof bad_traces / sizeof bad_traces[0]; i++)
            found |= strcmp(bad_traces[i].file, e->d_name) == 0;
        cr_assert(found, "tests/bad/%s has no expected message in test_bad_input.c", e->d_name);
    }
    closedir(d);
    cr_assert_eq(files, (int)(sizeof bad_traces / sizeof bad_traces[0]));
}

Test(bad_input, the_bound_options_are_what_rejects_ids_past_the_model)
{
    /* Without --experts the same file loads, with the shape inferred. */
    char *out = NULL;
    int rc = tu_cli(&out, NULL, "info '%s/expert_id_ge_8.jsonl'", BAD_DIR);
    cr_assert_eq(rc, 0);
    cr_assert(strstr(out, "layers 2, experts 10, top-2"), "%s", out);
    free(out);
}

Test(bad_input, a_later_file_is_named_in_its_own_message)
{
    char args[2048], want[2048];
    snprintf(args, sizeof args, "info '%s/accepted/crlf.jsonl' '%s/expert_fraction.jsonl'",
             BAD_DIR, BAD_DIR);
    snprintf(want, sizeof want, "expertcast: %s/expert_fraction.jsonl:1: field 'experts'", BAD_DIR);
    expect_failure(args, 1, want);
}

Test(bad_input, a_10_mb_line_is_refused_past_the_line_limit_and_loads_within_it)
{
    char d[256]; /* tu_tmpdir reuses its buffers after 8 calls (tu_cli makes one each) */
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    char path[512];
    snprintf(path, sizeof path, "%s/long.jsonl", d);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs("{\"layer\": 0, \"experts\": [1, 0], \"token_idx\": 0, \"pad\": \"", f);
    for (int i = 0; i < 10 * 1024 * 1024 / 64; i++)
        fputs("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", f);
    fputs("\"}\n", f);
    fclose(f);
    char args[1024], want[1024];
    snprintf(args, sizeof args, "info '%s'", path);
    snprintf(want, sizeof want, "expertcast: %s:1: line longer than 1048576 bytes", path);
    expect_failure(args, 1, want);
    char *out = NULL;
    cr_assert_eq(tu_cli(&out, NULL, "info --max-line 11000000 '%s'", path), 0);
    cr_assert(strstr(out, "layers 1, experts 2, top-2"), "%s", out);
    free(out);
    unlink(path); /* 10 MB: do not leave it in /tmp */
}

Test(bad_input, a_directory_or_a_missing_file_is_an_io_error)
{
    char d[256]; /* tu_tmpdir reuses its buffers after 8 calls (tu_cli makes one each) */
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    char args[1024], want[1024];
    snprintf(args, sizeof args, "info '%s'", d);
    snprintf(want, sizeof want, "expertcast: %s: is a directory, expected a file", d);
    expect_failure(args, 1, want);
    snprintf(args, sizeof args, "info '%s/absent.jsonl'", d);
    snprintf(want, sizeof want, "expertcast: %s/absent.jsonl: cannot open: No such file", d);
    expect_failure(args, 1, want);
}

Test(bad_input, an_unreadable_file_is_an_io_error)
{
    char d[256]; /* tu_tmpdir reuses its buffers after 8 calls (tu_cli makes one each) */
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    char src[1024];
    snprintf(src, sizeof src, "%s/accepted/crlf.jsonl", BAD_DIR);
    size_t len;
    char *text = tu_read(src, &len);
    cr_assert_not_null(text);
    const char *p = tu_write(d, "locked.jsonl", text);
    free(text);
    cr_assert_eq(chmod(d, 0755), 0);
    cr_assert_eq(chmod(p, 0000), 0);
    /* root reads anything: drop to nobody for this one run when we can. */
    const char *as = "";
    if (geteuid() == 0) {
        if (system("setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null") != 0)
            cr_skip_test("running as root without setpriv: an unreadable file cannot be made");
        as = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
    }
    char cmd[2048], errpath[1024];
    snprintf(errpath, sizeof errpath, "%s/err", tu_tmpdir());
    snprintf(cmd, sizeof cmd, "%s%s info '%s' >/dev/null 2>'%s'", as, EC_CLI_PATH, p, errpath);
    int rc = system(cmd);
    char *err = tu_read(errpath, NULL);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "exit %d: %s", rc, err);
    char want[1024];
    snprintf(want, sizeof want, "expertcast: %s: cannot open: Permission denied\n", p);
    cr_assert_str_eq(err, want);
    free(err);
}

Test(bad_input, usage_errors_exit_2)
{
    char ok[1024];
    snprintf(ok, sizeof ok, "'%s/accepted/crlf.jsonl'", BAD_DIR);
    static const struct { const char *args; const char *want; } u[] = {
        {"info", "expertcast info: no trace given"},
        {"info --experts 0 %s", "expertcast info: --experts: 0 is out of range [1, 32767]"},
        {"info --layers x %s", "expertcast info: --layers: 'x' is not an integer"},
        {"info --bogus %s", "expertcast info: unknown option '--bogus'"},
        {"info %s --experts", "expertcast info: option --experts needs a value"},
        {"synth", "expertcast synth: --output is required"},
        {"synth --tokens abc -o x", "expertcast synth: --tokens: 'abc' is not an integer"},
        {"nonsense", "expertcast: unknown command 'nonsense'"},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        char args[2048];
        snprintf(args, sizeof args, u[i].args, ok);
        expect_failure(args, 2, u[i].want);
    }
}

/* synth failures: the message, the exit code, and an output folder left empty. */
Test(bad_input, failed_synth_writes_nothing)
{
    char d[256]; /* tu_tmpdir reuses its buffers after 8 calls (tu_cli makes one each) */
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    char args[2048], want[2048];
    snprintf(args, sizeof args, "synth --tokens 4 -o '%s/missing/out.jsonl'", d);
    snprintf(want, sizeof want,
             "expertcast: %s/missing/out.jsonl: cannot create: No such file or directory", d);
    expect_failure(args, 1, want);
    snprintf(args, sizeof args, "synth --tokens 4 -o '%s'", d);
    snprintf(want, sizeof want, "expertcast: %s: is a directory, expected a file path", d);
    expect_failure(args, 1, want);
    snprintf(args, sizeof args, "synth --experts 8 --top-k 9 -o '%s/out.jsonl'", d);
    expect_failure(args, 2, "expertcast synth: --top-k 9 exceeds --experts 8");
    snprintf(args, sizeof args, "synth --layers 0 -o '%s/out.jsonl'", d);
    expect_failure(args, 2, "expertcast synth: --layers: 0 is out of range [1, 4096]");
    snprintf(args, sizeof args, "synth --skew -1 -o '%s/out.jsonl'", d);
    expect_failure(args, 2, "expertcast synth: --skew: -1 is out of range [0, 100]");
    cr_assert_eq(count_entries(d), 0, "a failed synth left files in %s", d);
}

Test(bad_input, integers_beyond_2p53_are_read_exactly_not_merged)
{
    /* 2^53 + 1 and 2^53 are one double apart from nothing: read as doubles
     * they were one sequence and one token, and two records were dropped as
     * duplicates. */
    char *out = NULL, *err = NULL;
    int rc = tu_cli(&out, &err, "info '%s/accepted/ids_beyond_2p53.jsonl'", BAD_DIR);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, err);
    cr_assert(strstr(out, "sequences 3, tokens 4,"), "%s", out);
    cr_assert(strstr(out, "records 4 kept, 0 duplicates dropped\n"), "%s", out);
    cr_assert(strstr(out, "  d/9007199254740993: 2 tokens\n"), "%s", out);
    cr_assert(strstr(out, "  d/9007199254740992: 1 tokens\n"), "%s", out);
    cr_assert(strstr(out, "  d/-4611686018427387904: 1 tokens\n"), "%s", out);
    free(out);
    free(err);
}

Test(bad_input, unknown_fields_bom_and_crlf_keep_loading)
{
    static const char *const files[] = {"unknown_fields.jsonl", "utf8_bom.jsonl", "crlf.jsonl",
                                        "bom_crlf_no_final_newline.jsonl"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *out = NULL, *err = NULL;
        int rc = tu_cli(&out, &err, "info '%s/accepted/%s'", BAD_DIR, files[i]);
        cr_assert_eq(rc, 0, "%s: exit %d: %s", files[i], rc, err);
        cr_assert(strstr(out, "layers 2, experts 4, top-2, gates yes\n"
                              "sequences 1, tokens 1, complete journeys 1, incomplete 0\n"
                              "records 2 kept, 0 duplicates dropped\n"
                              "  d/0: 1 tokens\n"),
                  "%s: %s", files[i], out);
        cr_assert_str_eq(err, "");
        free(out);
        free(err);
    }
}

/* ---- predictor files (library: no command loads them yet) ---------------- */

typedef struct bad_model {
    const char *file;
    const char *want; /* after "PATH: " */
} bad_model;

static const bad_model bad_models[] = {
    {"layers_fraction.json", "field 'n_layers': 1.5 is not an integer"},
    {"k_above_experts.json", "field 'k': 3 is out of range [1, 2]"},
    {"huge_shape_short_prior.json", "field 'prior': expected an array of 134213632 numbers"},
    {"prior_negative.json", "field 'prior': element 0 (-1) is negative"},
    {"prior_row_not_distribution.json",
     "field 'prior': layer 1 is not a distribution (negative values or a sum other than 1)"},
    {"prior_beyond_float.json",
     "field 'prior': element 0 is not a finite single-precision number"},
    {"unknown_predictor.json", "field 'predictor': unknown predictor 'nope'"},
    {"truncated.json", "not valid JSON (near byte 282)"},
    {"trailing_data.json", "trailing data after the JSON document (near byte 321)"},
    {"wrong_format.json", "field 'format': not an expertcast predictor file"},
    {"option_fraction.json", "field 'context': 0.5 is not an integer"},
    {"ngram_entries_beyond_data.json", "field 'model.keys': not base64 of 34359738352 bytes"},
    {"version_2.json", "field 'version': unsupported version 2 (this build reads version 1)"},
    {"deep_nesting.json", "JSON nested deeper than 1000 levels (near byte 1057)"},
};

static size_t g_largest; /* bytes of the largest request seen */
static void *largest_malloc(size_t n, void *ctx)
{
    (void)ctx;
    g_largest = n > g_largest ? n : g_largest;
    return malloc(n);
}
static void *largest_realloc(void *p, size_t n, void *ctx)
{
    (void)ctx;
    g_largest = n > g_largest ? n : g_largest;
    return realloc(p, n);
}
static void largest_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}

Test(bad_input, malformed_predictor_files_name_the_field)
{
    tu_alloc_state st = {0};
    tu_alloc_install(&st);
    for (size_t i = 0; i < sizeof bad_models / sizeof bad_models[0]; i++) {
        char path[1024], want[2048];
        snprintf(path, sizeof path, "%s/predictor/%s", BAD_DIR, bad_models[i].file);
        snprintf(want, sizeof want, "%s: %s", path, bad_models[i].want);
        ec_predictor *p = (ec_predictor *)&st; /* must be reset to NULL */
        ec_error err = {0};
        cr_assert_eq(ec_predictor_load(path, &p, &err), EC_ERR_PARSE, "%s: %s",
                     bad_models[i].file, err.message);
        cr_assert_null(p);
        cr_assert_str_eq(err.message, want);
        cr_assert_eq(st.live, 0, "%s: %ld blocks leaked", bad_models[i].file, st.live);
    }
    tu_alloc_uninstall();
    cr_assert_eq(count_entries(BAD_DIR "/predictor"),
                 (int)(sizeof bad_models / sizeof bad_models[0]),
                 "a file of tests/bad/predictor has no expected message here");
    /* huge_shape_short_prior.json is refused before allocating its 4096 x 32767 floats. */
    ec_allocator big = {largest_malloc, largest_realloc, largest_free, NULL};
    ec_set_allocator(&big);
    char huge[1024];
    snprintf(huge, sizeof huge, "%s/predictor/huge_shape_short_prior.json", BAD_DIR);
    ec_predictor *h = NULL;
    cr_assert_eq(ec_predictor_load(huge, &h, NULL), EC_ERR_PARSE);
    ec_set_allocator(NULL);
    cr_assert_lt(g_largest, 1 << 20, "largest allocation %zu bytes", g_largest);
    char path[1024];
    snprintf(path, sizeof path, "%s/accepted/predictor_extra_field.json", BAD_DIR);
    ec_predictor *p = NULL;
    ec_error err = {0};
    cr_assert_eq(ec_predictor_load(path, &p, &err), EC_OK, "%s", err.message);
    cr_assert_str_eq(ec_predictor_name(p), "prior");
    ec_predictor_destroy(p);
}

/* ---- the seed's commands: extract, rules create, rules evaluate ------------ */

static const bad_trace bad_rules[] = {
    {"key_malformed.json", "", ": field 'level1.rules.(0, 5': expected a key like \"(5, 6)\""},
    {"prediction_negative.json", "",
     ": field 'level1.rules.(0, 5).prediction': -3 is out of range [0, 32766]"},
    {"votes_above_samples.json", "",
     ": field 'level1.rules.(0, 5).votes': 4 is out of range [1, 2]"},
    {"layer_past_the_limit.json", "",
     ": field 'level5_skip8': a rule at layer 4095 needs 4104 layers, more than the 4096 "
     "supported"},
    {"expert_past_metadata.json", "",
     ": field 'metadata.n_experts': expert id 9 seen but n_experts is 8"},
    {"k_above_experts.json", "", ": field 'metadata.k': top-7 exceeds the 6 experts"},
    {"two_documents.json", "",
     ": not valid JSON (near byte 101; a rules file is one JSON document)"},
    {"truncated.json", "", ": not valid JSON (near byte 48; a rules file is one JSON document)"},
    {"key_nul.json", "", ": \\u0000 (NUL) in a string or key is not accepted (near byte 29)"},
    {"level5_skip_3.json", "",
     ": field 'level5.rules.skip_3': unknown table (expected skip_2, skip_4 or skip_8)"},
    {"a_trace_not_rules.json", "",
     ": not valid JSON (near byte 110; a rules file is one JSON document)"},
};

Test(bad_input, malformed_rules_files_fail_evaluate_and_write_nothing)
{
    char d[256]; /* tu_tmpdir reuses its buffers after 8 calls (tu_cli makes one each) */
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    for (size_t i = 0; i < sizeof bad_rules / sizeof bad_rules[0]; i++) {
        char args[2048], want[2048];
        snprintf(args, sizeof args,
                 "rules evaluate --rules '%s/rules/%s' --test '%s/accepted/crlf.jsonl' -o "
                 "'%s/results.json'",
                 BAD_DIR, bad_rules[i].file, BAD_DIR, d);
        snprintf(want, sizeof want, "expertcast: %s/rules/%s%s", BAD_DIR, bad_rules[i].file,
                 bad_rules[i].want);
        expect_failure(args, 1, want);
    }
    cr_assert_eq(count_entries(d), 0, "a failed evaluate wrote into %s", d);
    /* every committed rules file has its expectation */
    cr_assert_eq(count_entries(BAD_DIR "/rules"), (int)(sizeof bad_rules / sizeof bad_rules[0]));
}

Test(bad_input, seed_commands_fail_cleanly_and_write_nothing)
{
    char d[256]; /* tu_tmpdir reuses its buffers after 8 calls (tu_cli makes one each) */
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    char args[2048], want[2048];
    /* extract: a malformed line anywhere means no journey file at all */
    snprintf(args, sizeof args, "extract '%s/truncated_line.jsonl' -p 0 -t 0 1 -o '%s'", BAD_DIR,
             d);
    snprintf(want, sizeof want,
             "expertcast: %s/truncated_line.jsonl:2: field 'experts': not valid JSON", BAD_DIR);
    expect_failure(args, 1, want);
    snprintf(args, sizeof args, "extract '%s/accepted/crlf.jsonl' -p 0 -t 0 1 -o '%s/missing'",
             BAD_DIR, d);
    snprintf(want, sizeof want, "expertcast: %s/missing: output directory does not exist", d);
    expect_failure(args, 1, want);
    snprintf(args, sizeof args, "extract '%s/accepted/crlf.jsonl' -p 0 -t 1 0 -o '%s'", BAD_DIR,
             d);
    expect_failure(args, 2, "expertcast extract: --tokens 1 0: END must be above START");
    /* rules create */
    snprintf(args, sizeof args, "rules create '%s/expert_fraction.jsonl' -o '%s/rules.json'",
             BAD_DIR, d);
    snprintf(want, sizeof want,
             "expertcast: %s/expert_fraction.jsonl:1: field 'experts': expected an integer, got 7.5",
             BAD_DIR);
    expect_failure(args, 1, want);
    snprintf(args, sizeof args, "rules create '%s/accepted/crlf.jsonl' -o '%s/missing/r.json'",
             BAD_DIR, d);
    snprintf(want, sizeof want, "expertcast: %s/missing: output directory does not exist", d);
    expect_failure(args, 1, want);
    snprintf(args, sizeof args, "rules create -o '%s/rules.json'", d);
    expect_failure(args, 2, "expertcast rules create: no journey file given");
    /* rules evaluate: a missing or directory rules file, a bad test file */
    snprintf(args, sizeof args, "rules evaluate --rules '%s/absent.json' --test '%s/accepted/crlf.jsonl'",
             d, BAD_DIR);
    snprintf(want, sizeof want, "expertcast: %s/absent.json: cannot open: No such file or directory",
             d);
    expect_failure(args, 1, want);
    snprintf(args, sizeof args, "rules evaluate --rules '%s' --test '%s/accepted/crlf.jsonl'", d,
             BAD_DIR);
    snprintf(want, sizeof want, "expertcast: %s: read error (is it a directory?)", d);
    expect_failure(args, 1, want);
    cr_assert_eq(count_entries(d), 0, "a failed seed command wrote into %s", d);
}

/* ---- simulate: malformed model and hardware profiles ------------------------- */

static const bad_trace bad_profiles[] = {
    /* file, "model" or "hw", message after the path */
    {"model_value_without_source.json", "model",
     ": field 'layers.source': missing (every value names its source)"},
    {"model_top_k_above_experts.json", "model", ": field 'top_k.value': 9 exceeds 8 experts"},
    {"model_default_dtype_missing.json", "model",
     ": field 'default_dtype': no dtype 'fp8' (have: bf16)"},
    {"model_fractional_layers.json", "model", ": field 'layers.value': 4.5 is not an integer"},
    {"hw_zero_bandwidth.json", "hw", ": field 'h2d_gbs.value': 0 is out of range [1e-06, 1e+06]"},
    {"hw_two_documents.json", "hw", ": trailing data after the JSON document (near byte 55)"},
};

Test(bad_input, malformed_profiles_fail_simulate_and_write_nothing)
{
    char d[256];
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    char trace[512];
    snprintf(trace, sizeof trace, "%s/t.jsonl", tu_tmpdir());
    cr_assert_eq(tu_cli(NULL, NULL, "synth --layers 4 --experts 8 --tokens 8 -o '%s'", trace), 0);
    const char *good_model = EC_SOURCE_DIR "/tests/fuzz/corpus/fuzz_profile/flame-moe-290m.json";
    for (size_t i = 0; i < sizeof bad_profiles / sizeof bad_profiles[0]; i++) {
        const bad_trace *c = &bad_profiles[i];
        int model = strcmp(c->opts, "model") == 0;
        char bad[1024], args[4096], want[2048];
        snprintf(bad, sizeof bad, "%s/profiles/%s", BAD_DIR, c->file);
        snprintf(args, sizeof args, "simulate '%s' --model '%s' --hardware '%s' --json '%s/r.json'",
                 trace, model ? bad : good_model, model ? "h100-pcie5" : bad, d);
        snprintf(want, sizeof want, "expertcast: %s%s", bad, c->want);
        expect_failure(args, 1, want);
    }
    cr_assert_eq(count_entries(d), 0, "a failed simulate wrote into %s", d);
    cr_assert_eq(count_entries(BAD_DIR "/profiles"),
                 (int)(sizeof bad_profiles / sizeof bad_profiles[0]));
    /* a dtype the user names and the file lacks is a usage error */
    char *err = NULL;
    int rc = tu_cli(NULL, &err, "simulate '%s' --model mixtral-8x7b-int2 --hardware h100-pcie5",
                    trace);
    cr_assert_eq(rc, 2, "%s", err);
    cr_assert(strstr(err, "mixtral-8x7b.json: field 'dtypes': no dtype 'int2' (have: fp16, int8, "
                          "int4)\n"),
              "%s", err);
    free(err);
}

/* ---- memory that follows the data, not the ids it names ------------------- */

/*
 * Runs the CLI with its address space capped at limit_kb (ulimit -v) and the
 * environment env ("" for none); returns the exit code, stderr in *err. In
 * a sanitizer build the cap is left out (ASan reserves terabytes of
 * address space for its shadow); the normal build checks the bound.
 */
static int cli_capped(long limit_kb, const char *env, char **err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int cli_capped(long limit_kb, const char *env, char **err, const char *fmt, ...)
{
    char args[4096], cmd[8192], errpath[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(errpath, sizeof errpath, "%s/err", tu_tmpdir());
#ifdef EC_TEST_SANITIZED
    limit_kb = -1;
#endif
    char cap[64] = "";
    if (limit_kb > 0)
        snprintf(cap, sizeof cap, "ulimit -v %ld; ", limit_kb);
    snprintf(cmd, sizeof cmd, "%s%s %s %s >/dev/null 2>'%s' </dev/null", cap, env, EC_CLI_PATH,
             args, errpath);
    int rc = system(cmd);
    *err = tu_read(errpath, NULL);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

Test(bad_input, a_tiny_trace_naming_a_high_layer_or_expert_is_refused_before_allocating)
{
    char d[256];
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    /* one record at layer 4091: a pinned store of 4092 x 2 experts x 1 MiB */
    const char *layer = tu_write(d, "layer.jsonl",
                                 "{\"problem_id\": 0, \"layer\": 0, \"experts\": [1, 0], "
                                 "\"token_idx\": 0}\n"
                                 "{\"problem_id\": 0, \"layer\": 4091, \"experts\": [1, 0], "
                                 "\"token_idx\": 0}\n");
    /* expert 32766: 32767 experts x 1 MiB */
    const char *expert = tu_write(d, "expert.jsonl",
                                  "{\"problem_id\": 0, \"layer\": 0, \"experts\": [32766, 0], "
                                  "\"token_idx\": 0}\n"
                                  "{\"problem_id\": 1, \"layer\": 0, \"experts\": [1, 0], "
                                  "\"token_idx\": 0}\n");
    /* both: two records whose dense tables would take 1.5 GiB */
    const char *both = tu_write(d, "both.jsonl",
                                "{\"problem_id\": 0, \"layer\": 4091, \"experts\": [32766, 0], "
                                "\"token_idx\": 0}\n"
                                "{\"problem_id\": 1, \"layer\": 4091, \"experts\": [1, 0], "
                                "\"token_idx\": 0}\n");
    static const struct {
        const char *cmd;
        int which;
        const char *want;
    } cases[] = {
        {"replay --backend cpu", 0,
         "the pinned expert store (4092 layers x 2 experts x 1.0 MiB) needs 8.0 GiB, above the "
         "memory limit of 4.0 GiB (set EXPERTCAST_MAX_MEMORY to change it)"},
        {"demo --backend cpu --trace", 0, "the pinned expert store (4092 layers x 2 experts"},
        {"replay --backend cpu", 1,
         "the pinned expert store (1 layers x 32767 experts x 1.0 MiB) needs 32.0 GiB"},
        /* its two tokens lack layers 0..4090: refused as no data before any table */
        {"eval --predictor prior,temporal", 2, "the training data has no complete token"},
    };
    const char *files[] = {layer, expert, both};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err = NULL;
        /* 512 MiB of address space: the refusal must come before any of it */
        int rc = cli_capped(512 * 1024, "", &err, "%s '%s'", cases[i].cmd,
                            files[cases[i].which]);
        cr_assert_eq(rc, 1, "%s: exit %d: %s", cases[i].cmd, rc, err);
        cr_assert(err && strstr(err, cases[i].want), "%s: %s", cases[i].cmd, err);
        free(err);
    }
    /* a limit set explicitly is the one in force */
    char *err = NULL;
    int rc = cli_capped(512 * 1024, "EXPERTCAST_MAX_MEMORY=1M", &err,
                        "replay --backend cpu --expert-bytes 4K '%s'", layer);
    cr_assert_eq(rc, 1, "exit %d: %s", rc, err);
    cr_assert(strstr(err, "needs 32.0 MiB, above the memory limit of 1.0 MiB"), "%s", err);
    free(err);
}

Test(bad_input, json_files_are_read_up_to_the_limit)
{
    /* /dev/zero has no end: the reader stops at 1/8 of the memory limit */
    char *err = NULL;
    int rc = cli_capped(512 * 1024, "EXPERTCAST_MAX_MEMORY=64M", &err,
                        "rules evaluate --rules /dev/zero --test '%s/accepted/crlf.jsonl' "
                        "-o '%s/r.json'",
                        BAD_DIR, tu_tmpdir());
    cr_assert_eq(rc, 1, "exit %d: %s", rc, err);
    cr_assert(strstr(err, "/dev/zero: larger than 8.0 MiB, the read limit for JSON files (1/8 "
                          "of the memory limit; set EXPERTCAST_MAX_MEMORY to change it)"),
              "%s", err);
    free(err);
    ec_set_memory_limit((size_t)8 << 20);
    ec_predictor *p = NULL;
    ec_error e = {0};
    cr_assert_eq(ec_predictor_load("/dev/zero", &p, &e), EC_ERR_RANGE);
    cr_assert(strstr(e.message, "larger than 1.0 MiB, the read limit"), "%s", e.message);
    cr_assert_null(p);
    /* a regular file over the limit is refused by its size, before reading */
    char path[1024];
    snprintf(path, sizeof path, "%s/predictor/ngram_entries_beyond_data.json", BAD_DIR);
    ec_set_memory_limit(64);
    cr_assert_eq(ec_predictor_load(path, &p, &e), EC_ERR_RANGE);
    cr_assert(strstr(e.message, "larger than 8 bytes"), "%s", e.message);
    ec_set_memory_limit((size_t)-1);
    cr_assert_eq(ec_memory_limit(), getenv("EXPERTCAST_MAX_MEMORY") ? ec_memory_limit()
                                                                     : EC_MEMORY_LIMIT_DEFAULT);
}

Test(bad_input, replay_on_the_qwen3_trace_refuses_before_fitting_or_allocating)
{
    const char *q = TU_SHARED_OR_SKIP("qwen3-30b-a3b/decode_4prompts_routing.jsonl");
    char *err = NULL;
    /* the default 4 slots per layer cannot hold its top-8: found before the store */
    int rc = cli_capped(512 * 1024, "", &err, "replay --backend cpu '%s'", q);
    cr_assert_eq(rc, 2, "exit %d: %s", rc, err);
    cr_assert_str_eq(err, "expertcast: --cache-experts 4 cannot hold the top-8 experts of one "
                          "layer of this trace\n");
    free(err);
    /* 48 x 128 experts of 1 MiB: 6 GiB, above the default limit */
    rc = cli_capped(512 * 1024, "", &err, "replay --backend cpu --cache-experts 8 '%s'", q);
    cr_assert_eq(rc, 1, "exit %d: %s", rc, err);
    cr_assert_str_eq(err, "expertcast: the pinned expert store (48 layers x 128 experts x 1.0 "
                          "MiB) needs 6.0 GiB, above the memory limit of 4.0 GiB (set "
                          "EXPERTCAST_MAX_MEMORY to change it)\n");
    free(err);
}

/* ---- well-formed data that is of no use, and names that are not text -------- */

#define MSG_DIR BAD_DIR "/messages"

Test(bad_input, no_complete_token_is_a_data_error_in_fit_eval_and_replay)
{
    char d[256]; /* tu_tmpdir reuses its buffers after 8 calls (tu_cli makes one each) */
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    char args[2048], want[2048];
    snprintf(args, sizeof args, "fit '%s/no_complete_token.jsonl' -p prior -o '%s/m.json'",
             MSG_DIR, d);
    snprintf(want, sizeof want,
             "expertcast: %s/no_complete_token.jsonl: no complete token (4 tokens, each missing "
             "a layer): nothing to fit",
             MSG_DIR);
    expect_failure(args, 1, want);
    snprintf(args, sizeof args, "eval '%s/no_complete_token.jsonl' --json '%s/r.json'", MSG_DIR,
             d);
    expect_failure(args, 1,
                   "expertcast: eval: the training data has no complete token (4 tokens, each "
                   "missing a layer): nothing to fit");
    cr_assert_eq(count_entries(d), 0, "a failed run wrote into %s", d);
    char *err = NULL;
    int rc = tu_cli(NULL, &err, "replay --backend cpu '%s/no_complete_token.jsonl'", MSG_DIR);
    cr_assert_eq(rc, 1, "exit %d: %s", rc, err);
    cr_assert(strstr(err, "replay: no complete token to replay"), "%s", err);
    free(err);
}

Test(bad_input, eval_with_complete_training_but_no_complete_test_token_fails)
{
    char train[1024], args[3000];
    snprintf(train, sizeof train, "%s/accepted/crlf.jsonl", BAD_DIR);
    snprintf(args, sizeof args, "eval --train '%s' --test '%s/no_complete_token.jsonl'", train,
             MSG_DIR);
    /* the shapes differ (2 x 4 both): only completeness is wrong */
    expect_failure(args, 1, "expertcast: eval: the test tokens (4) have no complete one: nothing "
                            "to score");
}

Test(bad_input, extract_names_the_byte_that_is_not_utf8)
{
    char d[256]; /* tu_tmpdir reuses its buffers after 8 calls (tu_cli makes one each) */
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    char args[2048], want[2048];
    snprintf(args, sizeof args, "extract '%s/bad_utf8.jsonl' -p 3 -t 0 1 -o '%s'", MSG_DIR, d);
    snprintf(want, sizeof want,
             "expertcast: %s/bad_utf8.jsonl:1: not valid UTF-8 (byte 0xe9 near byte 16)", MSG_DIR);
    expect_failure(args, 1, want);
    cr_assert_eq(count_entries(d), 0);
}

Test(bad_input, info_escapes_control_characters_in_dataset_names)
{
    char *out = NULL;
    cr_assert_eq(tu_cli(&out, NULL, "info '%s/ansi_dataset.jsonl'", MSG_DIR), 0);
    cr_assert(strstr(out, "  \\x1b[2J\\x1b[31mred\\x07/1: 1 tokens\n"), "%s", out);
    for (const char *p = out; *p; p++)
        cr_assert(*p == '\n' || (unsigned char)*p >= 0x20, "raw control byte 0x%02x printed",
                  (unsigned char)*p);
    free(out);
}

Test(bad_input, the_simulator_reports_no_complete_token_as_no_data)
{
    const char *path = MSG_DIR "/no_complete_token.jsonl";
    ec_trace *t = NULL;
    ec_sim *s = NULL;
    ec_error err = {0};
    cr_assert_eq(ec_trace_load(&path, 1, NULL, &t, &err), EC_OK, "%s", err.message);
    cr_assert_eq(ec_sim_create(t, 1, &s, &err), EC_ERR_NO_DATA, "%s", err.message);
    cr_assert_null(s);
    cr_assert_str_eq(err.message, "simulate: the trace has no complete token");
    cr_assert_str_eq(ec_status_str(EC_ERR_NO_DATA), "no usable data");
    ec_trace_destroy(t);
}
