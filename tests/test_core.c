/* Core utilities: status names, atomic output files, history ring, ranking, prior. */
#include "testutil.h"
#include "core/internal.h"
#include "core/json.h"
#include "core/jsonstr.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

Test(core, every_status_has_a_distinct_name)
{
    for (int a = EC_OK; a <= EC_ERR_BUSY; a++)
        for (int b = a + 1; b <= EC_ERR_BUSY; b++)
            cr_assert_str_neq(ec_status_str((ec_status)a), ec_status_str((ec_status)b));
    cr_assert_str_eq(ec_status_str((ec_status)999), "unknown status");
}

Test(core, error_messages_are_one_line_whatever_the_input_held)
{
    ec_error err = {0};
    /* a key from a file with a newline, a tab, an escape and DEL in it */
    cr_assert_eq(ec_error_set(&err, EC_ERR_PARSE, "f.json: field '%s': bad", "a\nb\tc\x1b[0m\x7f"),
                 EC_ERR_PARSE);
    cr_assert_str_eq(err.message, "f.json: field 'a?b?c?[0m?': bad");
    /* UTF-8 passes through: paths may hold it */
    ec_error_set(&err, EC_ERR_IO, "%s: gone", "caf\xc3\xa9.json");
    cr_assert_str_eq(err.message, "caf\xc3\xa9.json: gone");
    char buf[6];
    cr_assert_str_eq(ec_one_line("ab\ncd\xc3\xa9zz", buf, sizeof buf), "ab?cd");
}

Test(core, outfile_commit_replaces_and_abort_keeps_the_old_file)
{
    const char *d = tu_tmpdir();
    const char *p = tu_write(d, "out.txt", "old\n");
    ec_outfile *o;
    FILE *f;
    cr_assert_eq(ec_outfile_open(p, &o, &f, NULL), EC_OK);
    fputs("half", f);
    ec_outfile_abort(o);
    char *text = tu_read(p, NULL);
    cr_assert_str_eq(text, "old\n");
    free(text);
    cr_assert_eq(ec_outfile_open(p, &o, &f, NULL), EC_OK);
    fputs("new\n", f);
    cr_assert_eq(ec_outfile_commit(o, NULL), EC_OK);
    text = tu_read(p, NULL);
    cr_assert_str_eq(text, "new\n");
    free(text);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test $(ls %s | wc -l) -eq 1", d);
    cr_assert_eq(system(cmd), 0, "a temporary file was left behind");
}

Test(core, outfile_in_a_missing_directory_fails_cleanly)
{
    ec_outfile *o;
    FILE *f;
    ec_error err = {0};
    cr_assert_eq(ec_outfile_open("/nonexistent-dir/x.json", &o, &f, &err), EC_ERR_IO);
    cr_assert_null(o);
    cr_assert(strstr(err.message, "/nonexistent-dir/x.json: cannot create"), "%s", err.message);
}

Test(core, read_file_returns_the_bytes_and_names_the_path_on_failure)
{
    const char *d = tu_tmpdir();
    /* more than one 64 KiB growth step */
    size_t want = 200000;
    char *text = malloc(want + 1);
    cr_assert_not_null(text);
    for (size_t i = 0; i < want; i++)
        text[i] = (char)('a' + i % 26);
    text[want] = '\0';
    const char *p = tu_write(d, "big.txt", text);
    char *buf;
    size_t len;
    ec_error err = {0};
    cr_assert_eq(ec_read_file(p, &buf, &len, &err), EC_OK, "%s", err.message);
    cr_assert_eq(len, want);
    cr_assert_eq(buf[len], '\0');
    cr_assert_eq(memcmp(buf, text, want), 0);
    ec_free(buf);
    free(text);

    p = tu_write(d, "empty.txt", "");
    cr_assert_eq(ec_read_file(p, &buf, &len, &err), EC_OK);
    cr_assert_eq(len, 0);
    cr_assert_str_eq(buf, "");
    ec_free(buf);

    cr_assert_eq(ec_read_file("/nonexistent-dir/x.json", &buf, &len, &err), EC_ERR_IO);
    cr_assert_null(buf);
    cr_assert_str_eq(err.message, "/nonexistent-dir/x.json: cannot open: No such file or directory");
    cr_assert_eq(ec_read_file(d, &buf, &len, &err), EC_ERR_IO);
    cr_assert_null(buf);
    cr_assert(strstr(err.message, ": read error (is it a directory?)"), "%s", err.message);
}

Test(core, read_file_out_of_memory_leaks_nothing)
{
    const char *p = tu_write(tu_tmpdir(), "small.txt", "{}\n");
    tu_alloc_state st = {.fail_at = 1};
    tu_alloc_install(&st);
    char *buf;
    size_t len;
    ec_error err = {0};
    ec_status s = ec_read_file(p, &buf, &len, &err);
    tu_alloc_uninstall();
    cr_assert_eq(s, EC_ERR_NOMEM);
    cr_assert_null(buf);
    cr_assert(strstr(err.message, "small.txt: out of memory"), "%s", err.message);
    cr_assert_eq(st.live, 0);
}

Test(core, json_string_escapes_quotes_backslashes_and_control_bytes)
{
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    ec_json_write_string(f, "a\"b\\c\n\x01\x1f \xc3\xa9");
    ec_json_write_string(f, "");
    char buf[128] = {0};
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    /* by hand: " a \" b \\ c \u000a \u0001 \u001f space, then the two UTF-8 bytes as they are */
    const char *want = "\"a\\\"b\\\\c\\u000a\\u0001\\u001f \xc3\xa9\"\"\"";
    cr_assert_eq(n, strlen(want));
    cr_assert_str_eq(buf, want);
}

Test(core, json_number_fields_are_checked_and_named)
{
    cJSON *o = cJSON_Parse("{\"a\": 3, \"b\": 2.5, \"c\": \"3\", \"d\": 70, \"e\": null}");
    cr_assert_not_null(o);
    static const struct {
        const char *field;
        bool integer;
        const char *path, *message; /* NULL message: accepted */
        double want;
    } cases[] = {
        {"a", true, "f.json", NULL, 3},
        {"b", false, "f.json", NULL, 2.5},
        {"b", true, "f.json", "f.json: field 'opts.b': 2.5 is not an integer", 0},
        {"c", false, "f.json", "f.json: field 'opts.c': expected a number", 0},
        {"e", false, "f.json", "f.json: field 'opts.e': expected a number", 0},
        {"d", false, "f.json", "f.json: field 'opts.d': 70 is out of range [0, 64]", 0},
        {"z", false, "f.json", "f.json: field 'opts.z': missing", 0},
        {"z", false, NULL, "field 'opts.z': missing", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double v = -1;
        ec_error err = {0};
        ec_status s = ec_json_get_number(o, cases[i].field, 0, 64, cases[i].integer, &v,
                                         cases[i].path, "opts.", &err);
        if (!cases[i].message) {
            cr_expect_eq(s, EC_OK, "case %zu: %s", i, err.message);
            cr_expect_eq(v, cases[i].want, "case %zu", i);
        } else {
            cr_expect_eq(s, EC_ERR_PARSE, "case %zu", i);
            cr_expect_str_eq(err.message, cases[i].message, "case %zu", i);
            cr_expect_eq(v, -1, "case %zu: output touched on failure", i);
        }
    }
    cJSON_Delete(o);
}

Test(core, json_load_parses_a_file_or_says_why_not)
{
    const char *d = tu_tmpdir();
    cJSON *root;
    ec_error err = {0};
    cr_assert_eq(ec_json_load(tu_write(d, "ok.json", "{\"x\": [1, 2]}\n"), &root, &err), EC_OK);
    cr_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "x")));
    cJSON_Delete(root);
    cr_assert_eq(ec_json_load(tu_write(d, "bad.json", "{\"x\": "), &root, &err), EC_ERR_PARSE);
    cr_assert_null(root);
    cr_assert(strstr(err.message, "bad.json: not valid JSON"), "%s", err.message);
    cr_assert_eq(ec_json_load(d, &root, &err), EC_ERR_IO);
    cr_assert(strstr(err.message, "read error (is it a directory?)"), "%s", err.message);
}

Test(history, tokens_advance_when_the_layer_goes_back)
{
    ec_history *h;
    cr_assert_eq(ec_history_create(3, 8, 2, 2, &h), EC_OK);
    int16_t a[2] = {1, 2}, b[2] = {3, 4}, c[2] = {5, 6};
    ec_history_observe(h, 0, a);
    ec_history_observe(h, 1, b);
    cr_assert_eq(ec_history_layer(h), 1);
    cr_assert_eq(ec_history_tokens(h), 1);
    ec_history_observe(h, 0, c); /* new token */
    cr_assert_eq(ec_history_tokens(h), 2);
    cr_assert_eq(ec_history_get(h, 0, 0)[0], 5);
    cr_assert_null(ec_history_get(h, 0, 1), "layer 1 of the new token is not known yet");
    cr_assert_eq(ec_history_get(h, 1, 1)[1], 4);
    int next;
    cr_assert_eq(ec_history_target(h, 1, &next), 1);
    cr_assert_eq(next, 0);
    cr_assert_eq(ec_history_target(h, 3, &next), 0);
    cr_assert_eq(next, 1);
    cr_assert_eq(ec_history_target(h, 0, &next), -1);
    ec_history_destroy(h);
}

Test(history, older_than_depth_is_forgotten)
{
    ec_history *h;
    cr_assert_eq(ec_history_create(1, 8, 1, 1, &h), EC_OK);
    for (int16_t t = 0; t < 4; t++)
        ec_history_observe(h, 0, &t);
    cr_assert_eq(ec_history_get(h, 0, 0)[0], 3);
    cr_assert_eq(ec_history_get(h, 1, 0)[0], 2);
    cr_assert_null(ec_history_get(h, 2, 0));
    ec_history_reset(h);
    cr_assert_null(ec_history_get(h, 0, 0));
    ec_history_destroy(h);
    ec_history_destroy(NULL);
}

Test(rank, orders_by_probability_then_lower_id)
{
    float p[6] = {0.1f, 0.3f, 0.05f, 0.3f, 0.2f, 0.05f};
    int32_t idx[4];
    ec_rank(p, 6, idx, 4);
    cr_assert_eq(idx[0], 1);
    cr_assert_eq(idx[1], 3);
    cr_assert_eq(idx[2], 4);
    cr_assert_eq(idx[3], 0);
}

Test(prior, predicts_the_layer_frequency_and_round_trips)
{
    ec_synth_opts o;
    ec_synth_opts_default(&o);
    o.n_layers = 4;
    ec_trace *t;
    cr_assert_eq(ec_synth_generate(&o, &t, NULL), EC_OK);
    ec_predictor *p, *q;
    cr_assert_eq(ec_predictor_create("prior", NULL, &p, NULL), EC_OK);
    cr_assert_eq(ec_predictor_fit(p, t, NULL), EC_OK);
    ec_history *h;
    cr_assert_eq(ec_history_create(4, 8, 2, 1, &h), EC_OK);
    ec_history_observe(h, 0, ec_trace_experts(t, 0, 0));
    float a[8], b[8], sum = 0;
    cr_assert_eq(ec_predictor_predict(p, h, 1, a), 1);
    for (int e = 0; e < 8; e++)
        sum += a[e];
    cr_assert_float_eq(sum, 1.0f, 1e-5);
    /* the most frequent expert at layer 1 gets the highest probability */
    int count[8] = {0}, best = 0;
    for (size_t r = 0; r < t->n_rows; r++)
        for (int i = 0; i < 2; i++)
            count[ec_trace_experts(t, r, 1)[i]]++;
    for (int e = 1; e < 8; e++)
        if (count[e] > count[best])
            best = e;
    int32_t top;
    ec_rank(a, 8, &top, 1);
    cr_assert_eq(top, best);
    const char *d = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/prior.json", d);
    ec_error err = {0};
    cr_assert_eq(ec_predictor_save(p, path, &err), EC_OK, "%s", err.message);
    cr_assert_eq(ec_predictor_load(path, &q, &err), EC_OK, "%s", err.message);
    cr_assert_eq(ec_predictor_predict(q, h, 1, b), 1);
    for (int e = 0; e < 8; e++)
        cr_assert_float_eq(a[e], b[e], 1e-6);
    ec_predictor_destroy(p);
    ec_predictor_destroy(q);
    ec_history_destroy(h);
    ec_trace_destroy(t);
}

Test(predictor, unknown_name_is_not_found)
{
    ec_predictor *p;
    ec_error err = {0};
    cr_assert_eq(ec_predictor_create("nope", NULL, &p, &err), EC_ERR_NOT_FOUND);
    cr_assert_null(p);
    cr_assert(strstr(err.message, "unknown predictor 'nope'"));
}
