/*
 * Replays every seed and every past failure of the fuzz targets through the
 * same property checks libFuzzer runs (tests/fuzz/targets.c), so that a
 * fixed crash stays fixed in the normal suite (and under ASan in build-asan).
 */
#include "testutil.h"
#include "fuzz/targets.h"
#include "predict/predictor.h"
#include "trace/jsonl.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_DIR EC_SOURCE_DIR "/tests/fuzz"

/* Runs fn on every regular file of dir; returns how many were replayed. */
static size_t replay_dir(const char *target, fuzz_fn fn, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        char *data = tu_read(path, &len);
        if (!data)
            continue;
        const char *bad = fn((const uint8_t *)data, len);
        free(data);
        cr_assert_null(bad, "%s on %s: %s", target, path, bad);
        n++;
    }
    closedir(d);
    return n;
}

Test(fuzz_regress, every_corpus_and_regression_input_upholds_the_properties)
{
    for (const fuzz_target *t = fuzz_targets; t->name; t++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/corpus/%s", FUZZ_DIR, t->name);
        size_t seeds = replay_dir(t->name, t->fn, dir);
        cr_assert_geq(seeds, 3, "%s: only %zu seed files in %s", t->name, seeds, dir);
        snprintf(dir, sizeof dir, "%s/regress/%s", FUZZ_DIR, t->name);
        replay_dir(t->name, t->fn, dir);
    }
}

Test(fuzz_regress, the_checks_catch_what_they_claim)
{
    /* pyrepr: not JSON is a clean parse error; JSON comes back canonical. */
    cr_assert_null(fuzz_pyrepr((const uint8_t *)"[1,", 3));
    cr_assert_null(fuzz_pyrepr((const uint8_t *)"{\"a\":[1.50,-0]}", 15));
    /* traces: one valid record round-trips, an empty input fails cleanly. */
    const char *rec = "{\"layer\": 1, \"experts\": [3, 0], \"token_idx\": 2}\n";
    cr_assert_null(fuzz_trace_line((const uint8_t *)rec, strlen(rec)));
    cr_assert_null(fuzz_trace_line((const uint8_t *)"", 0));
}

Test(fuzz_regress, buffer_and_file_trace_readers_agree)
{
    static const char *const files[] = {"synth_gates.jsonl", "bom_crlf_extra.jsonl",
                                        "dup_incomplete.jsonl", "bad_k_changes.jsonl",
                                        "bad_truncated.jsonl"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/corpus/fuzz_trace_line/%s", FUZZ_DIR, files[i]);
        size_t len;
        char *data = tu_read(path, &len);
        cr_assert_not_null(data, "%s missing", path);
        const char *p = path;
        ec_trace *a = NULL, *b = NULL;
        ec_error ea = {0}, eb = {0};
        ec_status sa = ec_trace_load(&p, 1, NULL, &a, &ea);
        ec_status sb = ec_trace_load_buffer(path, data, len, NULL, &b, &eb);
        free(data);
        cr_assert_eq(sa, sb, "%s: file %d, buffer %d", files[i], sa, sb);
        cr_assert_str_eq(ea.message, eb.message);
        if (sa == EC_OK) {
            cr_assert_eq(a->n_rows, b->n_rows);
            cr_assert_eq(a->n_duplicates, b->n_duplicates);
            cr_assert_eq(memcmp(a->experts, b->experts,
                                a->n_rows * (size_t)a->n_layers * (size_t)a->k * sizeof(int16_t)),
                         0);
        }
        ec_trace_destroy(a);
        ec_trace_destroy(b);
    }
}

Test(fuzz_regress, buffer_and_file_predictor_loaders_agree)
{
    static const char *const files[] = {"prior_2x3.json", "bad_fraction.json",
                                        "bad_negative_prior.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/corpus/fuzz_predictor_json/%s", FUZZ_DIR, files[i]);
        size_t len;
        char *data = tu_read(path, &len);
        cr_assert_not_null(data, "%s missing", path);
        ec_predictor *a = NULL, *b = NULL;
        ec_error ea = {0}, eb = {0};
        ec_status sa = ec_predictor_load(path, &a, &ea);
        ec_status sb = ec_predictor_load_text(path, data, len, &b, &eb);
        free(data);
        cr_assert_eq(sa, sb, "%s: file %d, text %d", files[i], sa, sb);
        cr_assert_str_eq(ea.message, eb.message);
        if (sa == EC_OK)
            cr_assert_eq(memcmp(a->prior, b->prior, (size_t)a->n_layers * (size_t)a->n_experts *
                                                        sizeof(float)),
                         0);
        ec_predictor_destroy(a);
        ec_predictor_destroy(b);
    }
}
