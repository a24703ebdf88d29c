/* The seed's three tools as a library: extract, rules create, rules evaluate. */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIXTRAL "mixtral-8x7b-instruct/humaneval_2_routing.jsonl"
#define FLAME "flame-moe-290m/pretrain_32x64_routing.jsonl"

/* ---- helpers ------------------------------------------------------------- */

static ec_extract_report *extract(const char *raw, int64_t problem, int64_t begin, int64_t end,
                                  const char *dir)
{
    ec_extract_opts o = {problem, begin, end, NULL, dir};
    ec_extract_report *r = NULL;
    ec_error err = {0};
    ec_status s = ec_seed_extract(raw, &o, &r, &err);
    cr_assert_eq(s, EC_OK, "extract p%lld [%lld, %lld): %s", (long long)problem,
                 (long long)begin, (long long)end, err.message);
    return r;
}

/* dir/pP_token_T.jsonl for each token, in a static rotation of buffers. */
static const char **journeys(const char *dir, int64_t problem, const int64_t *tokens, size_t n)
{
    static char buf[4][64][512];
    static const char *ptrs[4][64];
    static int next;
    int slot = next++ % 4;
    cr_assert(n <= 64);
    for (size_t i = 0; i < n; i++) {
        snprintf(buf[slot][i], sizeof buf[slot][i], "%s/p%lld_token_%lld.jsonl", dir,
                 (long long)problem, (long long)tokens[i]);
        ptrs[slot][i] = buf[slot][i];
    }
    return ptrs[slot];
}

static ec_seed_rules *create(const char *const *paths, size_t n, int32_t experts)
{
    ec_seed_rules *r = NULL;
    ec_error err = {0};
    ec_status s = ec_seed_rules_create(paths, n, experts, &r, &err);
    cr_assert_eq(s, EC_OK, "rules create: %s", err.message);
    return r;
}

static ec_seed_eval *evaluate(const ec_seed_rules *r, const char *const *paths, size_t n)
{
    ec_seed_eval *e = NULL;
    ec_error err = {0};
    ec_status s = ec_seed_evaluate(r, paths, n, 0, &e, &err);
    cr_assert_eq(s, EC_OK, "rules evaluate: %s", err.message);
    return e;
}

/* Checks correct/total of the seven levels against want[7][2]. */
static void expect_scores(const ec_seed_eval *e, const size_t want[EC_SEED_N_LEVELS][2],
                          const char *what)
{
    for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++) {
        cr_expect_eq(e->total[lv].correct, want[lv][0], "%s %s: correct %zu, want %zu", what,
                     ec_seed_level_name(lv), e->total[lv].correct, want[lv][0]);
        cr_expect_eq(e->total[lv].total, want[lv][1], "%s %s: total %zu, want %zu", what,
                     ec_seed_level_name(lv), e->total[lv].total, want[lv][1]);
    }
}

/* A journey line in the raw format. */
static void put_rec(FILE *f, int64_t problem, int64_t token, int layer, int a, int b)
{
    fprintf(f,
            "{\"dataset\": \"d\", \"problem_id\": %lld, \"layer\": %d, \"experts\": [%d, %d], "
            "\"gating_probs\": [0.75, 0.25], \"token_idx\": %lld}\n",
            (long long)problem, layer, a, b, (long long)token);
}

/* Writes a journey of primaries p[n] (secondary = (p + 1) % 8) to dir/name. */
static const char *write_journey(const char *dir, const char *name, const int *p, int n)
{
    static char paths[8][512];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, 512, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    for (int l = 0; l < n; l++)
        put_rec(f, 0, 0, l, p[l], (p[l] + 1) % 8);
    fclose(f);
    return path;
}

static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* ---- level table and keys ------------------------------------------------- */

Test(seed, level_names_arities_and_distances_are_the_seeds)
{
    static const char *names[] = {"level1",       "level2",       "level3",      "level4",
                                  "level5_skip2", "level5_skip4", "level5_skip8"};
    static const int arity[] = {2, 3, 4, 3, 2, 2, 2}, dist[] = {1, 1, 1, 1, 2, 4, 8};
    for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++) {
        cr_expect_str_eq(ec_seed_level_name(lv), names[lv]);
        cr_expect_eq(ec_seed_level_arity(lv), arity[lv]);
        cr_expect_eq(ec_seed_level_distance(lv), dist[lv]);
    }
    cr_expect_null(ec_seed_level_name(EC_SEED_N_LEVELS));
    cr_expect_str_eq(ec_seed_level_description(EC_SEED_L1), "(Layer, Expert) -> Next Expert");
    cr_expect_str_eq(ec_seed_level_description(EC_SEED_L4),
                     "(Layer, Primary, Secondary) -> Next Primary");
}

Test(seed, python_round_two_decimals)
{
    cr_expect_eq(ec_seed_round2(100.0 * 32 / 75), 42.67);
    cr_expect_eq(ec_seed_round2(65.625), 65.62); /* exact tie: to even, as round() */
    cr_expect_eq(ec_seed_round2(0.125 * 100), 12.5);
    cr_expect_eq(ec_seed_round2(2.675), 2.67); /* 2.675 is below the tie in binary */
}

/* ---- rules create: votes, ties, keys, file layout -------------------------- */

Test(seed, majority_vote_and_first_seen_tie_break)
{
    const char *d = tu_tmpdir();
    /* layer 0 primary 1 -> next 2, 3, 3 in files a, b, c: 3 wins by votes */
    int a[] = {1, 2}, b[] = {1, 3}, c[] = {1, 3};
    const char *abc[] = {write_journey(d, "a.jsonl", a, 2), write_journey(d, "b.jsonl", b, 2),
                         write_journey(d, "c.jsonl", c, 2)};
    ec_seed_rules *r = create(abc, 3, 8);
    int32_t key[2] = {0, 1};
    const ec_seed_rule *u = ec_seed_rules_find(r, EC_SEED_L1, key);
    cr_assert_not_null(u);
    cr_expect_eq(u->prediction, 3);
    cr_expect_eq(u->votes, 2);
    cr_expect_eq(u->samples, 3);
    ec_seed_rules_destroy(r);

    /* a tie goes to the target seen first, in the order the files are given */
    const char *ab[] = {abc[0], abc[1]}, *ba[] = {abc[1], abc[0]};
    r = create(ab, 2, 8);
    cr_expect_eq(ec_seed_rules_find(r, EC_SEED_L1, key)->prediction, 2);
    ec_seed_rules_destroy(r);
    r = create(ba, 2, 8);
    cr_expect_eq(ec_seed_rules_find(r, EC_SEED_L1, key)->prediction, 3);
    cr_expect_eq(ec_seed_rules_find(r, EC_SEED_L1, key)->votes, 1);
    ec_seed_rules_destroy(r);
}

Test(seed, levels_use_only_layers_of_this_token)
{
    const char *d = tu_tmpdir();
    int p[] = {5, 6, 7, 0, 1, 2, 3, 4, 5, 6};
    const char *path = write_journey(d, "j.jsonl", p, 10);
    ec_seed_rules *r = create(&path, 1, 8);
    /* 10 layers: 9 transitions; level2 from layer 1, level3 from layer 2 */
    cr_expect_eq(ec_seed_rules_count(r, EC_SEED_L1), 9);
    cr_expect_eq(ec_seed_rules_count(r, EC_SEED_L2), 8);
    cr_expect_eq(ec_seed_rules_count(r, EC_SEED_L3), 7);
    cr_expect_eq(ec_seed_rules_count(r, EC_SEED_L4), 9);
    cr_expect_eq(ec_seed_rules_count(r, EC_SEED_SKIP2), 8);
    cr_expect_eq(ec_seed_rules_count(r, EC_SEED_SKIP4), 6);
    cr_expect_eq(ec_seed_rules_count(r, EC_SEED_SKIP8), 2);
    const ec_seed_rule *u = ec_seed_rules_at(r, EC_SEED_L3, 0);
    cr_expect(u->key[0] == 2 && u->key[1] == 5 && u->key[2] == 6 && u->key[3] == 7 &&
              u->prediction == 0);
    u = ec_seed_rules_at(r, EC_SEED_L4, 3);
    cr_expect(u->key[0] == 3 && u->key[1] == 0 && u->key[2] == 1 && u->prediction == 1);
    u = ec_seed_rules_at(r, EC_SEED_SKIP8, 1);
    cr_expect(u->key[0] == 1 && u->key[1] == 6 && u->prediction == 6);
    ec_seed_rules_destroy(r);
}

Test(seed, a_missing_layer_never_shifts_a_journey)
{
    const char *d = tu_tmpdir();
    const char *path = tu_write(d, "gap.jsonl", "");
    FILE *f = fopen(path, "w");
    for (int l = 0; l < 6; l++)
        if (l != 2)
            put_rec(f, 0, 0, l, l, (l + 1) % 8);
    fclose(f);
    ec_seed_rules *r = create(&path, 1, 8);
    /* transitions 0->1, 3->4, 4->5 only: nothing spans the gap */
    cr_expect_eq(ec_seed_rules_count(r, EC_SEED_L1), 3);
    int32_t k12[2] = {1, 1}, k34[2] = {3, 3};
    cr_expect_null(ec_seed_rules_find(r, EC_SEED_L1, k12));
    cr_expect_not_null(ec_seed_rules_find(r, EC_SEED_L1, k34));
    /* level2 at layer 4 needs layer 3; level3 at 4 would need layer 2 */
    cr_expect_eq(ec_seed_rules_count(r, EC_SEED_L2), 1);
    cr_expect_eq(ec_seed_rules_count(r, EC_SEED_L3), 0);
    ec_seed_rules_destroy(r);
}

Test(seed, rules_json_has_the_seeds_layout_and_python_keys)
{
    const char *d = tu_tmpdir();
    int a[] = {5, 6, 3}, b[] = {5, 6, 4}, c[] = {5, 6, 4};
    const char *paths[] = {write_journey(d, "a.jsonl", a, 3), write_journey(d, "b.jsonl", b, 3),
                           write_journey(d, "c.jsonl", c, 3)};
    ec_seed_rules *r = create(paths, 3, 8);
    char out[600];
    snprintf(out, sizeof out, "%s/rules.json", d);
    ec_error err = {0};
    cr_assert_eq(ec_seed_rules_save(r, out, &err), EC_OK, "%s", err.message);
    char *text = tu_read(out, NULL);
    cr_assert_not_null(text);
    /* json.dump(indent=2) layout; key "(1, 6)" -> 4 with 2 votes of 3, the
     * votes as the seed's dict(Counter): every target, first seen first */
    cr_expect_not_null(strstr(text, "{\n  \"metadata\": {\n    \"training_files\": [\n"));
    cr_expect_not_null(strstr(text, "  \"level1\": {\n    \"description\": \"(Layer, Expert) -> "
                                    "Next Expert\",\n    \"rules\": {\n"));
    cr_expect_not_null(strstr(text, "      \"(1, 6)\": {\n        \"prediction\": 4,\n"
                                    "        \"confidence\": 0.6666666666666666,\n"
                                    "        \"votes\": {\n          \"3\": 1,\n"
                                    "          \"4\": 2\n        },\n"
                                    "        \"samples\": 3\n      }"), "%s", text);
    cr_expect_not_null(strstr(text, "\"(1, 5, 6)\": {"));
    cr_expect_not_null(strstr(text, "\"(0, 5, 6)\": {"), "level4 key (layer, primary, secondary)");
    cr_expect_not_null(strstr(text, "\"level5\": {\n    \"description\": "));
    cr_expect_not_null(strstr(text, "\"skip_2\": {\n        \"(0, 5)\": {"));
    cr_expect_not_null(strstr(text, "\"skip_8\": {}"));
    /* a shape other than Mixtral's is written out; json.dump ends without a newline */
    cr_expect_not_null(strstr(text, "\"description\": \"Expert prediction rules for 3 layers x 8 "
                                    "experts, top-2\",\n    \"n_layers\": 3,\n"));
    cr_expect_not_null(strstr(text, "\"n_experts\": 8,"));
    cr_expect_eq(text[strlen(text) - 1], '}');
    free(text);

    /* and it loads back to the same rules, in the same order */
    ec_seed_rules *back = NULL;
    cr_assert_eq(ec_seed_rules_load(out, &back, &err), EC_OK, "%s", err.message);
    for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++) {
        cr_assert_eq(ec_seed_rules_count(back, lv), ec_seed_rules_count(r, lv));
        for (size_t i = 0; i < ec_seed_rules_count(r, lv); i++)
            cr_expect_eq(memcmp(ec_seed_rules_at(r, lv, i), ec_seed_rules_at(back, lv, i),
                                sizeof(ec_seed_rule)),
                         0);
    }
    cr_expect_eq(ec_seed_rules_n_experts(back), 8);
    cr_expect_eq(ec_seed_rules_n_layers(back), 3);
    cr_expect_eq(ec_seed_rules_n_training_files(back), 3);
    ec_seed_rules_destroy(back);
    ec_seed_rules_destroy(r);
}

Test(seed, a_seed_made_rules_file_defaults_to_mixtral_shape)
{
    const char *d = tu_tmpdir();
    const char *p = tu_write(
        d, "seed_rules.json",
        "{\"metadata\": {\"training_files\": [\"p0_token_0.jsonl\"]},\n"
        " \"level1\": {\"description\": \"x\", \"rules\": {\"(5, 6)\": {\"prediction\": 3, "
        "\"confidence\": 0.75, \"samples\": 4}}},\n"
        " \"level2\": {\"rules\": {}}, \"level3\": {\"rules\": {}}, \"level4\": {\"rules\": {}},\n"
        " \"level5\": {\"rules\": {\"skip_8\": {\"(30,2)\": {\"prediction\": 1}}}}}");
    ec_seed_rules *r = NULL;
    ec_error err = {0};
    ec_status s = ec_seed_rules_load(p, &r, &err);
    cr_assert_eq(s, EC_OK, "%s", err.message);
    cr_expect_eq(ec_seed_rules_n_experts(r), 8);
    cr_expect_eq(ec_seed_rules_experts_source(r), EC_SEED_SHAPE_DEFAULT);
    /* skip_8 at layer 30 needs 39 layers: the default 32 is raised */
    cr_expect_eq(ec_seed_rules_n_layers(r), 39);
    int32_t key[2] = {5, 6};
    const ec_seed_rule *u = ec_seed_rules_find(r, EC_SEED_L1, key);
    cr_assert_not_null(u);
    cr_expect(u->prediction == 3 && u->votes == 3 && u->samples == 4); /* votes = 0.75 * 4 */
    ec_seed_rules_destroy(r);
}

Test(seed, a_seed_made_votes_object_loads_and_writes_back_byte_for_byte)
{
    /* the layout of the seed's create_rules.py (json.dump, indent=2) */
    static const char seed_file[] =
        "{\n  \"metadata\": {\n    \"training_files\": [\n      \"a.jsonl\",\n"
        "      \"b.jsonl\"\n    ],\n    \"num_training_files\": 2,\n"
        "    \"description\": \"Expert prediction rules for Mixtral 8x7B\"\n  },\n"
        "  \"level1\": {\n    \"description\": \"(Layer, Expert) -> Next Expert\",\n"
        "    \"rules\": {\n      \"(5, 6)\": {\n        \"prediction\": 3,\n"
        "        \"confidence\": 0.6666666666666666,\n        \"votes\": {\n"
        "          \"1\": 1,\n          \"3\": 2\n        },\n        \"samples\": 3\n"
        "      }\n    }\n  },\n"
        "  \"level2\": {\n    \"description\": \"(Layer, Prev, Curr) -> Next Expert\",\n"
        "    \"rules\": {}\n  },\n"
        "  \"level3\": {\n    \"description\": \"(Layer, E-2, E-1, E) -> Next Expert\",\n"
        "    \"rules\": {}\n  },\n"
        "  \"level4\": {\n    \"description\": \"(Layer, Primary, Secondary) -> Next "
        "Primary\",\n    \"rules\": {}\n  },\n"
        "  \"level5\": {\n    \"description\": \"(Layer, Expert) -> Expert at Layer+K\",\n"
        "    \"rules\": {\n      \"skip_2\": {},\n      \"skip_4\": {},\n"
        "      \"skip_8\": {}\n    }\n  }\n}";
    const char *d = tu_tmpdir();
    const char *p = tu_write(d, "seed_rules.json", seed_file);
    ec_seed_rules *r = NULL;
    ec_error err = {0};
    cr_assert_eq(ec_seed_rules_load(p, &r, &err), EC_OK, "%s", err.message);
    int32_t key[2] = {5, 6};
    const ec_seed_rule *u = ec_seed_rules_find(r, EC_SEED_L1, key);
    cr_assert_not_null(u);
    cr_expect(u->prediction == 3 && u->votes == 2 && u->samples == 3);
    char out[600];
    snprintf(out, sizeof out, "%s/again.json", d);
    cr_assert_eq(ec_seed_rules_save(r, out, &err), EC_OK, "%s", err.message);
    char *text = tu_read(out, NULL);
    cr_assert_not_null(text);
    cr_expect_str_eq(text, seed_file);
    free(text);
    ec_seed_rules_destroy(r);
}

Test(seed, bad_votes_objects_name_the_field)
{
    static const struct {
        const char *votes, *needle;
    } cases[] = {
        {"\"votes\": {\"x\": 1}, \"samples\": 1", "field 'level1.rules.(5, 6).votes': key \"x\""},
        {"\"votes\": {\"3\": 0}, \"samples\": 1", "field 'level1.rules.(5, 6).votes.3': expected a count"},
        {"\"votes\": {\"3\": 1.5}, \"samples\": 1", "votes.3': expected a count"},
        {"\"votes\": {\"3\": 2}, \"samples\": 3", "field 'level1.rules.(5, 6).samples': 3 but the votes add up to 2"},
        {"\"votes\": {\"1\": 2, \"3\": 1}", "field 'level1.rules.(5, 6).prediction': 3 is not among the most voted"},
        {"\"votes\": {\"1\": 2}", "3 is not among the most voted"},
        {"\"votes\": {\"03\": 2}", "key \"03\" is not an expert id"},
        /* str(int) only: no space, sign or control byte before the digits */
        {"\"votes\": {\" 3\": 2}", "key \" 3\" is not an expert id"},
        {"\"votes\": {\"\\n3\": 2}", "key \"?3\" is not an expert id"},
        {"\"votes\": {\"+3\": 2}", "key \"+3\" is not an expert id"},
        {"\"votes\": {\"-0\": 2}", "key \"-0\" is not an expert id"},
        {"\"votes\": {\"99999999999999999999\": 2}", "is not an expert id"},
    };
    const char *d = tu_tmpdir();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "{\"level1\": {\"rules\": {\"(5, 6)\": {\"prediction\": 3, %s}}}, \"level2\": "
                 "{\"rules\": {}}, \"level3\": {\"rules\": {}}, \"level4\": {\"rules\": {}}}",
                 cases[i].votes);
        const char *p = tu_write(d, "bad.json", text);
        ec_seed_rules *r = (ec_seed_rules *)1;
        ec_error err = {0};
        cr_expect_eq(ec_seed_rules_load(p, &r, &err), EC_ERR_PARSE, "case %zu", i);
        cr_expect_null(r);
        cr_expect_not_null(strstr(err.message, cases[i].needle), "case %zu: '%s' lacks '%s'", i,
                           err.message, cases[i].needle);
    }
}

Test(seed, bad_rules_files_name_the_field)
{
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"[1, 2]", "expected a JSON object"},
        {"{\"level1\": {\"rules\": {}}}", "field 'level2': missing"},
        {"{\"level1\": {\"rules\": {\"(5 6)\": {\"prediction\": 1}}}, \"level2\": {\"rules\": "
         "{}}, \"level3\": {\"rules\": {}}, \"level4\": {\"rules\": {}}}",
         "field 'level1.rules.(5 6)'"},
        {"{\"level1\": {\"rules\": {\"(5, 6)\": {\"prediction\": 1.5}}}, \"level2\": {\"rules\": "
         "{}}, \"level3\": {\"rules\": {}}, \"level4\": {\"rules\": {}}}",
         "field 'level1.rules.(5, 6).prediction': expected an integer"},
        {"{\"level1\": {\"rules\": {\"(5, 6, 7)\": {\"prediction\": 1}}}, \"level2\": "
         "{\"rules\": {}}, \"level3\": {\"rules\": {}}, \"level4\": {\"rules\": {}}}",
         "expected a key like \"(5, 6)\""},
        {"{\"metadata\": {\"n_experts\": 4}, \"level1\": {\"rules\": {\"(5, 6)\": "
         "{\"prediction\": 1}}}, \"level2\": {\"rules\": {}}, \"level3\": {\"rules\": {}}, "
         "\"level4\": {\"rules\": {}}}",
         "field 'metadata.n_experts': expert id 6 seen"},
        {"not json", "not valid JSON"},
    };
    const char *d = tu_tmpdir();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = tu_write(d, "bad.json", cases[i].text);
        ec_seed_rules *r = (ec_seed_rules *)1;
        ec_error err = {0};
        ec_status s = ec_seed_rules_load(p, &r, &err);
        cr_expect_eq(s, EC_ERR_PARSE, "case %zu: status %d", i, s);
        cr_expect_null(r);
        cr_expect_not_null(strstr(err.message, cases[i].needle), "case %zu: '%s' lacks '%s'", i,
                           err.message, cases[i].needle);
        cr_expect_not_null(strstr(err.message, "bad.json"), "case %zu names the file", i);
    }
}

/* ---- extract ----------------------------------------------------------------- */

/* A raw file: problem 3 tokens 0..4 with 4 layers; token 2 misses layer 1;
 * token 1 has a repeated layer 0 (the second one differs). */
static const char *small_raw(const char *d)
{
    const char *p = tu_write(d, "raw.jsonl", "");
    FILE *f = fopen(p, "w");
    for (int t = 0; t < 5; t++)
        for (int l = 0; l < 4; l++) {
            if (t == 2 && l == 1)
                continue;
            put_rec(f, 3, t, l, (t + l) % 8, (t + l + 1) % 8);
            if (t == 1 && l == 0)
                put_rec(f, 3, t, l, 7, 6);
        }
    put_rec(f, 4, 0, 0, 1, 2); /* another problem */
    fclose(f);
    return p;
}

Test(seed, extract_writes_complete_tokens_and_reports_the_rest)
{
    const char *d = tu_tmpdir(), *out = tu_tmpdir();
    const char *raw = small_raw(d);
    ec_extract_report *r = extract(raw, 3, 0, 8, out);
    cr_expect_eq(r->n_layers, 4);
    cr_expect_eq(r->n_written, 4);
    cr_expect_eq(r->n_incomplete, 1);
    cr_expect_eq(r->n_absent, 3);
    cr_expect_eq(r->n_duplicates, 1);
    cr_expect_str_eq(r->dataset, "d");
    cr_assert_eq(r->n_tokens, 5);
    cr_expect_eq(r->tokens[2].token, 2);
    cr_expect_eq(r->tokens[2].layers, 3);
    ec_extract_report_destroy(r);
    cr_expect_eq(count_files(out), 4);
    char path[600];
    snprintf(path, sizeof path, "%s/p3_token_2.jsonl", out);
    cr_expect_null(tu_read(path, NULL), "an incomplete token is not written");
    snprintf(path, sizeof path, "%s/p3_token_1.jsonl", out);
    char *text = tu_read(path, NULL);
    cr_assert_not_null(text);
    /* the first record of the repeated (token 1, layer 0) wins */
    const char *first = "{\"dataset\": \"d\", \"problem_id\": 3, \"layer\": 0, \"experts\": [1, 2]";
    cr_expect_eq(strncmp(text, first, strlen(first)), 0, "%s", text);
    free(text);
}

Test(seed, extract_rewrites_lines_as_python_json_dumps)
{
    const char *d = tu_tmpdir(), *out = tu_tmpdir();
    const char *raw = tu_write(d, "raw.jsonl",
                               "{\"layer\":0,\"experts\":[1,2],\"gating_probs\":[5e-1,0.50],"
                               "\"token_idx\":0,\"note\":\"caf\xc3\xa9\"}\n");
    ec_extract_report *r = extract(raw, 0, 0, 1, out);
    ec_extract_report_destroy(r);
    char path[600];
    snprintf(path, sizeof path, "%s/p0_token_0.jsonl", out);
    char *text = tu_read(path, NULL);
    cr_assert_not_null(text);
    cr_expect_str_eq(text, "{\"layer\": 0, \"experts\": [1, 2], \"gating_probs\": [0.5, 0.5], "
                           "\"token_idx\": 0, \"note\": \"caf\\u00e9\"}\n");
    free(text);
}

Test(seed, extract_errors_leave_nothing_written)
{
    const char *d = tu_tmpdir(), *out = tu_tmpdir();
    const char *raw = small_raw(d);
    static const struct {
        int64_t problem, begin, end;
        const char *dataset;
        ec_status status;
        const char *needle;
    } cases[] = {
        {3, 5, 5, NULL, EC_ERR_INVALID, "empty"},
        {3, -1, 4, NULL, EC_ERR_INVALID, "negative"},
        {9, 0, 4, NULL, EC_ERR_PARSE, "no record of problem 9 (the file has problems 3, 4)"},
        {3, 0, 4, "other", EC_ERR_PARSE, "no record in dataset 'other' (it is in 'd')"},
        {3, 2, 3, NULL, EC_ERR_PARSE, "has all 4 layers (1 incomplete, 0 absent)"},
        {3, 10, 20, NULL, EC_ERR_PARSE, "(0 incomplete, 10 absent)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ec_extract_opts o = {cases[i].problem, cases[i].begin, cases[i].end, cases[i].dataset,
                             out};
        ec_extract_report *r = (ec_extract_report *)1;
        ec_error err = {0};
        ec_status s = ec_seed_extract(raw, &o, &r, &err);
        cr_expect_eq(s, cases[i].status, "case %zu: %d (%s)", i, s, err.message);
        cr_expect_null(r);
        cr_expect_not_null(strstr(err.message, cases[i].needle), "case %zu: '%s' lacks '%s'", i,
                           err.message, cases[i].needle);
    }
    /* a bad line anywhere in the file stops everything before any write */
    FILE *f = fopen(raw, "a");
    fputs("{\"layer\": 0, \"experts\": [1, 1], \"token_idx\": 9}\n", f);
    fclose(f);
    ec_extract_opts o = {3, 0, 5, NULL, out};
    ec_extract_report *r;
    ec_error err = {0};
    cr_expect_eq(ec_seed_extract(raw, &o, &r, &err), EC_ERR_PARSE);
    cr_expect_not_null(strstr(err.message, "raw.jsonl:22: field 'experts'"), "%s", err.message);
    /* a missing output directory is an I/O error */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope", out);
    o.output_dir = missing;
    cr_expect_eq(ec_seed_extract(raw, &o, &r, &err), EC_ERR_IO);
    cr_expect_not_null(strstr(err.message, "output directory does not exist"), "%s",
                       err.message);
    cr_expect_eq(count_files(out), 0, "no file written by a failed extract");
}

Test(seed, extract_needs_a_dataset_when_a_problem_is_in_several)
{
    const char *d = tu_tmpdir(), *out = tu_tmpdir();
    const char *raw = tu_write(
        d, "two.jsonl",
        "{\"dataset\": \"a\", \"problem_id\": 0, \"layer\": 0, \"experts\": [1], \"token_idx\": 0}\n"
        "{\"dataset\": \"b\", \"problem_id\": 0, \"layer\": 0, \"experts\": [2], \"token_idx\": 0}\n");
    ec_extract_opts o = {0, 0, 1, NULL, out};
    ec_extract_report *r;
    ec_error err = {0};
    cr_expect_eq(ec_seed_extract(raw, &o, &r, &err), EC_ERR_PARSE);
    cr_expect_not_null(strstr(err.message, "problem 0 is in 2 datasets ('a', 'b')"), "%s",
                       err.message);
    cr_expect_not_null(strstr(err.message, "--dataset"), "%s", err.message);
    o.dataset = "b";
    cr_assert_eq(ec_seed_extract(raw, &o, &r, &err), EC_OK, "%s", err.message);
    ec_extract_report_destroy(r);
    char path[600];
    snprintf(path, sizeof path, "%s/p0_token_0.jsonl", out);
    char *text = tu_read(path, NULL);
    cr_expect_not_null(strstr(text, "\"experts\": [2]"));
    free(text);
}

/* ---- the seed's acceptance numbers on the Mixtral trace ----------------------- */

Test(seed_real, mixtral_extract_is_byte_identical_to_the_input_lines)
{
    const char *raw = TU_SHARED_OR_SKIP(MIXTRAL);
    const char *out = tu_tmpdir();
    for (int p = 0; p < 2; p++) {
        ec_extract_report *r = extract(raw, p, 0, 12, out);
        cr_expect_eq(r->n_written, 12);
        cr_expect_eq(r->n_layers, 32);
        ec_extract_report_destroy(r);
    }
    cr_expect_eq(count_files(out), 24);
    char hex[65];
    char path[600];
    snprintf(path, sizeof path, "%s/p0_token_3.jsonl", out);
    cr_assert_eq(tu_sha256(path, hex), 0);
    cr_expect_str_eq(hex, "de1715c153cef4d59e914e15a943c7cabf9b3ae50b483e797f7d5b79f0c77597");

    /* Independently: every written line is the raw line of that record
     * (json.dumps of this file's records gives the line back). */
    size_t len;
    char *all = tu_read(raw, &len);
    cr_assert_not_null(all);
    size_t checked = 0;
    for (int p = 0; p < 2; p++)
        for (int t = 0; t < 12; t++) {
            snprintf(path, sizeof path, "%s/p%d_token_%d.jsonl", out, p, t);
            char *text = tu_read(path, NULL);
            cr_assert_not_null(text, "%s", path);
            int layer = 0;
            for (char *line = text, *nl; (nl = strchr(line, '\n')); line = nl + 1, layer++) {
                *nl = '\0';
                char want[128];
                snprintf(want, sizeof want,
                         "\"problem_id\": %d, \"layer\": %d, \"experts\": [", p, layer);
                cr_expect_not_null(strstr(line, want), "%s line %d", path, layer);
                char tail[64];
                snprintf(tail, sizeof tail, "\"token_idx\": %d}", t);
                cr_expect_not_null(strstr(line, tail), "%s line %d", path, layer);
                /* the line occurs verbatim, followed by a line end, in the raw file */
                size_t n = strlen(line);
                char *hit = strstr(all, line);
                cr_expect(hit && (hit[n] == '\n' || hit[n] == '\r'), "%s line %d not in input",
                          path, layer);
                checked++;
            }
            cr_expect_eq(layer, 32, "%s has %d lines", path, layer);
            free(text);
        }
    cr_expect_eq(checked, 24 * 32);
    free(all);
}

/*
 * Where each correct/total pair below comes from:
 *   SEED  the seed note states it (its results table or its results JSON);
 *   OWN   expertcast's own output on the same journeys, pinned as a
 *         regression (the note gives no figure for it).
 */
Test(seed_real, mixtral_acceptance_numbers)
{
    const char *raw = TU_SHARED_OR_SKIP(MIXTRAL);
    const char *out = tu_tmpdir();
    for (int p = 0; p < 2; p++)
        ec_extract_report_destroy(extract(raw, p, 0, 12, out));

    /* The note's headline table, rules from p0_token_0 (31 level-1 rules),
     * tested on p0 tokens 1-4 and p1 tokens 0-4: L1 31/69, L2 25/30, L3
     * 21/24, L4 23/35 (SEED); the skips 31/64, 31/57, 26/47 (OWN) are
     * 48.4-55.3 %, the note's "48-55%". */
    int64_t t0[] = {0}, p0h[] = {1, 2, 3, 4}, p1h[] = {0, 1, 2, 3, 4};
    ec_seed_rules *r = create(journeys(out, 0, t0, 1), 1, 0);
    cr_expect_eq(ec_seed_rules_n_experts(r), 8);
    cr_expect_eq(ec_seed_rules_count(r, EC_SEED_L1), 31);
    const char *tests[15];
    memcpy(tests, journeys(out, 0, p0h, 4), 4 * sizeof *tests);
    memcpy(tests + 4, journeys(out, 1, p1h, 5), 5 * sizeof *tests);
    ec_seed_eval *e = evaluate(r, tests, 9);
    static const size_t head[EC_SEED_N_LEVELS][2] = {{31, 69}, {25, 30}, {21, 24}, {23, 35},
                                                     {31, 64}, {31, 57}, {26, 47}};
    expect_scores(e, head, "the note's headline split");
    cr_expect_eq(ec_seed_round2(ec_seed_accuracy(&e->total[EC_SEED_L1])), 44.93); /* "44.9%" */
    cr_expect_eq(ec_seed_round2(ec_seed_accuracy(&e->total[EC_SEED_L2])), 83.33); /* "83.3%" */
    cr_expect_eq(ec_seed_round2(ec_seed_accuracy(&e->total[EC_SEED_L3])), 87.5);  /* "87.5%" */
    cr_expect_eq(ec_seed_round2(ec_seed_accuracy(&e->total[EC_SEED_L4])), 65.71); /* "65.7%" */
    cr_expect_eq(ec_seed_eval_best(e), EC_SEED_L3);
    ec_seed_eval_destroy(e);

    /* The note's results JSON example: the same rules on p1 tokens 0-9 and
     * 11 (11 files): L1 32/75 (vs_random 3.41), L2 22/31 (5.68), L3 18/21
     * (6.86) (SEED); L4 and the skips (OWN). */
    int64_t p1[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11};
    e = evaluate(r, journeys(out, 1, p1, 11), 11);
    static const size_t want1[EC_SEED_N_LEVELS][2] = {{32, 75}, {22, 31}, {18, 21}, {21, 32},
                                                      {32, 71}, {32, 66}, {28, 54}};
    expect_scores(e, want1, "p0_token_0 on p1");
    cr_expect_eq(e->n_experts, 8);
    cr_expect_eq(ec_seed_eval_best(e), EC_SEED_L3);
    cr_expect_eq(ec_seed_round2(ec_seed_accuracy(&e->total[EC_SEED_L1])), 42.67);
    cr_expect_eq(ec_seed_round2(ec_seed_vs_random(&e->total[EC_SEED_L1], 8)), 3.41);
    cr_expect_eq(ec_seed_round2(ec_seed_vs_random(&e->total[EC_SEED_L2], 8)), 5.68);
    cr_expect_eq(ec_seed_round2(ec_seed_vs_random(&e->total[EC_SEED_L3], 8)), 6.86);
    ec_seed_eval_destroy(e);
    ec_seed_rules_destroy(r);

    /* rules from p0 tokens 0-4 (the note's rules_from_5tokens), tested on
     * p0 tokens 5-9 and p1 tokens 0-9: every pair OWN */
    int64_t p0a[] = {0, 1, 2, 3, 4}, p0b[] = {5, 6, 7, 8, 9}, p1a[] = {0, 1, 2, 3, 4,
                                                                         5, 6, 7, 8, 9};
    r = create(journeys(out, 0, p0a, 5), 5, 0);
    memcpy(tests, journeys(out, 0, p0b, 5), 5 * sizeof *tests);
    memcpy(tests + 5, journeys(out, 1, p1a, 10), 10 * sizeof *tests);
    e = evaluate(r, tests, 15);
    static const size_t want5[EC_SEED_N_LEVELS][2] = {{74, 246}, {40, 91},  {25, 38}, {38, 87},
                                                      {68, 241}, {60, 223}, {52, 188}};
    expect_scores(e, want5, "p0 0-4 on p0 5-9 + p1 0-9");
    ec_seed_eval_destroy(e);
    ec_seed_rules_destroy(r);
}

/* The rules files are byte-identical to what the seed's create_rules.py
 * writes from the same journeys (json.dump(indent=2): key order, the votes
 * object, float repr, no final newline). The hashes were taken from that
 * layout written by Python's json module, independently of expertcast. */
Test(seed_real, mixtral_rules_files_are_byte_identical_to_the_seeds)
{
    const char *raw = TU_SHARED_OR_SKIP(MIXTRAL);
    const char *out = tu_tmpdir();
    for (int p = 0; p < 2; p++)
        ec_extract_report_destroy(extract(raw, p, 0, 10, out));
    cr_assert_eq(chdir(out), 0); /* the metadata keeps the paths as given */
    static const struct {
        const char *files[20];
        size_t n;
        const char *sha256;
    } cases[] = {
        {{"p0_token_0.jsonl"}, 1, "1a743a201ee53f91b9848bf5b9ce079bc77dafd5c458f947cb655cab7e735bc5"},
        {{"p0_token_0.jsonl", "p0_token_1.jsonl", "p0_token_2.jsonl", "p0_token_3.jsonl",
          "p0_token_4.jsonl"},
         5, "27dfc2ed224b9ad2acefb1218772973812a79837c1443cf3301820171db3fb62"},
        {{"p0_token_0.jsonl", "p0_token_1.jsonl", "p0_token_2.jsonl", "p0_token_3.jsonl",
          "p0_token_4.jsonl", "p0_token_5.jsonl", "p0_token_6.jsonl", "p0_token_7.jsonl",
          "p0_token_8.jsonl", "p0_token_9.jsonl", "p1_token_0.jsonl", "p1_token_1.jsonl",
          "p1_token_2.jsonl", "p1_token_3.jsonl", "p1_token_4.jsonl", "p1_token_5.jsonl",
          "p1_token_6.jsonl", "p1_token_7.jsonl", "p1_token_8.jsonl", "p1_token_9.jsonl"},
         20, "86bc6e629dde6585ec364a6efbab2d852f3b357ead43bbc16bed9a5c7ebdaecc"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ec_seed_rules *r = create(cases[i].files, cases[i].n, 0);
        ec_error err = {0};
        cr_assert_eq(ec_seed_rules_save(r, "rules.json", &err), EC_OK, "%s", err.message);
        char hex[65];
        cr_assert_eq(tu_sha256("rules.json", hex), 0);
        cr_expect_str_eq(hex, cases[i].sha256, "rules from %zu journeys", cases[i].n);
        ec_seed_rules_destroy(r);
    }
}

Test(seed_real, mixtral_results_json_matches_the_seeds_format)
{
    const char *raw = TU_SHARED_OR_SKIP(MIXTRAL);
    const char *out = tu_tmpdir();
    ec_extract_report_destroy(extract(raw, 0, 0, 1, out));
    ec_extract_report_destroy(extract(raw, 1, 0, 12, out));
    int64_t t0[] = {0}, p1[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11};
    ec_seed_rules *r = create(journeys(out, 0, t0, 1), 1, 0);
    ec_seed_eval *e = evaluate(r, journeys(out, 1, p1, 11), 11);
    char path[600];
    snprintf(path, sizeof path, "%s/results.json", out);
    FILE *f = fopen(path, "w");
    ec_error err = {0};
    cr_assert_eq(ec_seed_eval_write(e, r, "test_rules.json", "2025-12-10T04:46:48.826806", f,
                                    &err),
                 EC_OK);
    fclose(f);
    char *text = tu_read(path, NULL);
    cr_expect_not_null(strstr(text, "\"timestamp\": \"2025-12-10T04:46:48.826806\",\n"
                                    "    \"rules_file\": \"test_rules.json\",\n"
                                    "    \"training_files\": [\n"));
    cr_expect_not_null(strstr(text, "\"num_test_files\": 11,"));
    cr_expect_not_null(strstr(text, "\"level1\": {\n      \"correct\": 32,\n      \"total\": 75,\n"
                                    "      \"accuracy_percent\": 42.67,\n"
                                    "      \"vs_random\": 3.41\n    }"));
    cr_expect_not_null(strstr(text, "\"level3\": {\n      \"correct\": 18,\n      \"total\": 21,\n"
                                    "      \"accuracy_percent\": 85.71,\n"
                                    "      \"vs_random\": 6.86\n    }"));
    cr_expect_not_null(strstr(text, "\"best_level\": {\n    \"name\": \"level3\",\n"
                                    "    \"accuracy_percent\": 85.71\n  }"));
    cr_expect_not_null(strstr(text, "\"level1\": {\n      \"covered\": 75,\n      \"cases\": 341,"));
    free(text);
    ec_seed_eval_destroy(e);
    ec_seed_rules_destroy(r);
}

/* ---- FLAME: 64 experts, top-6, 8 layers ----------------------------------------- */

Test(seed_real, flame_runs_with_its_own_shape)
{
    const char *raw = TU_SHARED_OR_SKIP(FLAME);
    const char *out = tu_tmpdir();
    ec_extract_report *x = extract(raw, 0, 0, 5, out);
    cr_expect_eq(x->n_layers, 8);
    cr_expect_eq(x->n_written, 5);
    ec_extract_report_destroy(x);
    ec_extract_report_destroy(extract(raw, 1, 0, 10, out));
    int64_t tr[] = {0, 1, 2, 3, 4}, te[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};

    /* inferred from five journeys, the largest id is 63: 64 experts */
    ec_seed_rules *r = create(journeys(out, 0, tr, 5), 5, 0);
    cr_expect_eq(ec_seed_rules_n_layers(r), 8);
    cr_expect_eq(ec_seed_rules_k(r), 6);
    cr_expect_eq(ec_seed_rules_n_experts(r), 64);
    /* 8 layers: 7 transitions per journey, skip_8 has no case */
    cr_expect_eq(ec_seed_rules_count(r, EC_SEED_SKIP8), 0);
    ec_seed_eval *e = evaluate(r, journeys(out, 1, te, 10), 10);
    cr_expect_eq(e->n_experts, 64);
    cr_expect_eq(e->total[EC_SEED_L1].cases, 70);
    cr_expect_eq(e->total[EC_SEED_L2].cases, 60);
    cr_expect_eq(e->total[EC_SEED_L3].cases, 50);
    cr_expect_eq(e->total[EC_SEED_SKIP4].cases, 40);
    cr_expect_eq(e->total[EC_SEED_SKIP8].cases, 0);
    for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++) {
        const ec_seed_score *s = &e->total[lv];
        cr_expect_leq(s->correct, s->total);
        cr_expect_leq(s->total, s->cases);
        /* vs random with 1/64 = 1.5625 % */
        double want = s->total ? (double)s->correct / (double)s->total * 100.0 / 1.5625 : 0;
        cr_expect(fabs(ec_seed_vs_random(s, e->n_experts) - want) < 1e-9, "%s",
                  ec_seed_level_name(lv));
    }
    ec_seed_eval_destroy(e);
    ec_seed_rules_destroy(r);

    /* from one journey the largest id seen is 62: --experts sets the model's 64 */
    r = create(journeys(out, 0, tr, 1), 1, 0);
    cr_expect_eq(ec_seed_rules_n_experts(r), 63);
    cr_expect_eq(ec_seed_rules_experts_source(r), EC_SEED_SHAPE_INFERRED);
    ec_seed_rules_destroy(r);
    r = create(journeys(out, 0, tr, 1), 1, 64);
    cr_expect_eq(ec_seed_rules_n_experts(r), 64);
    cr_expect_eq(ec_seed_rules_experts_source(r), EC_SEED_SHAPE_GIVEN);
    ec_seed_rules_destroy(r);
}

/* ---- out of memory: every allocation failure is clean ---------------------------- */

Test(seed, every_allocation_failure_is_reported_and_leaks_nothing)
{
    const char *d = tu_tmpdir(), *out = tu_tmpdir();
    const char *raw = small_raw(d);
    int p1[] = {1, 2, 3, 4, 5, 6, 7, 0, 1}, p2[] = {1, 3, 3, 4, 6, 6, 7, 0, 2};
    const char *paths[] = {write_journey(d, "a.jsonl", p1, 9), write_journey(d, "b.jsonl", p2, 9)};
    char rules_path[600];
    snprintf(rules_path, sizeof rules_path, "%s/rules.json", d);
    {
        ec_seed_rules *r = create(paths, 2, 8);
        ec_error err;
        cr_assert_eq(ec_seed_rules_save(r, rules_path, &err), EC_OK);
        ec_seed_rules_destroy(r);
    }
    for (int op = 0; op < 4; op++) {
        int ok = 0;
        for (size_t k = 1; k < 5000 && !ok; k++) {
            tu_alloc_state st = {0, k, 0};
            tu_alloc_install(&st);
            ec_error err = {0};
            ec_status s;
            if (op == 0) {
                ec_seed_rules *r;
                s = ec_seed_rules_create(paths, 2, 0, &r, &err);
                ec_seed_rules_destroy(s ? NULL : r);
            } else if (op == 1) {
                ec_extract_opts o = {3, 0, 5, NULL, out};
                ec_extract_report *r;
                s = ec_seed_extract(raw, &o, &r, &err);
                ec_extract_report_destroy(s ? NULL : r);
            } else if (op == 2) {
                ec_seed_rules *r;
                s = ec_seed_rules_load(rules_path, &r, &err);
                ec_seed_rules_destroy(s ? NULL : r);
            } else {
                ec_seed_rules *r = NULL;
                ec_seed_eval *e = NULL;
                s = ec_seed_rules_load(rules_path, &r, &err);
                if (s == EC_OK)
                    s = ec_seed_evaluate(r, paths, 2, 0, &e, &err);
                ec_seed_eval_destroy(e);
                ec_seed_rules_destroy(r);
            }
            tu_alloc_uninstall();
            cr_assert(s == EC_OK || s == EC_ERR_NOMEM, "op %d, failing allocation %zu: %s (%s)",
                      op, k, ec_status_str(s), err.message);
            cr_assert_eq(st.live, 0, "op %d, failing allocation %zu: %ld blocks leaked", op, k,
                         st.live);
            ok = s == EC_OK && st.calls < k;
        }
        cr_expect(ok, "op %d never completed", op);
    }
}
