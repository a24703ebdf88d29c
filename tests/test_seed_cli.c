/* The seed's commands on the command line: extract, rules, demo. */
#include "testutil.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MIXTRAL "mixtral-8x7b-instruct/humaneval_2_routing.jsonl"
#define FLAME "flame-moe-290m/pretrain_32x64_routing.jsonl"

static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* tu_cli takes a fresh directory from tu_tmpdir's rotation of 8 buffers,
 * so a test keeps its own copy of the directory name. */
#define TMPDIR(name)                                                                               \
    char name[64];                                                                                 \
    snprintf(name, sizeof name, "%s", tu_tmpdir())

static int exists(const char *dir, const char *name)
{
    char p[4096];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) == 0;
}

/* Runs the CLI, expects exit code rc and (when non-NULL) needle in stderr. */
static void expect_cli(int rc, const char *needle, const char *args)
{
    char *out = NULL, *err = NULL;
    int got = tu_cli(&out, &err, "%s", args);
    cr_expect_eq(got, rc, "'%s': exit %d, want %d\nstderr: %s", args, got, rc, err);
    if (needle)
        cr_expect_not_null(strstr(err, needle), "'%s': stderr lacks '%s':\n%s", args, needle,
                           err);
    free(out);
    free(err);
}

static const char *sample_raw(const char *dir)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/raw.jsonl", dir);
    char args[1200];
    snprintf(args, sizeof args, "synth --sequences 2 --tokens 6 --layers 6 -o %s", path);
    cr_assert_eq(tu_cli(NULL, NULL, "%s", args), 0);
    return path;
}

Test(seed_cli, help_describes_every_option)
{
    static const struct {
        const char *cmd;
        const char *options[6];
    } cases[] = {
        {"extract --help", {"--problem", "--tokens", "--output-dir", "--dataset", "-p, ", "-t, "}},
        {"rules --help", {"--output", "--experts", "--rules", "--test", "-r, ", "-t, "}},
        {"rules create --help", {"--output", "--experts", NULL}},
        {"rules evaluate -h", {"--rules", "--test", "--output", NULL}},
        {"demo --help", {"--trace", "--output-dir", "--seed-tools", "--backend", "--model",
                         "--hardware"}},
        {"--help", {"extract", "rules", "demo", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL;
        cr_expect_eq(tu_cli(&out, NULL, "%s", cases[i].cmd), 0, "%s", cases[i].cmd);
        for (int j = 0; j < 6 && cases[i].options[j]; j++)
            cr_expect_not_null(strstr(out, cases[i].options[j]), "'%s' lacks %s", cases[i].cmd,
                               cases[i].options[j]);
        free(out);
    }
}

Test(seed_cli, usage_errors_exit_2)
{
    TMPDIR(d);
    const char *raw = sample_raw(d);
    char a[1200];
    static const struct {
        const char *fmt, *needle;
    } cases[] = {
        {"extract", "no input file given"},
        {"extract %s -t 0 4", "--problem is required"},
        {"extract %s -p 0", "--tokens START END is required"},
        {"extract %s -p 0 -t 3", "needs two values"},
        {"extract %s -p 0 -t 4 4", "END must be above START"},
        {"extract %s -p 0 -t 5 2", "END must be above START"},
        {"extract %s -p 0 -t -1 2", "out of range"},
        {"extract %s -p x -t 0 2", "'x' is not an integer"},
        {"extract %s -p 0 -t 0 2 --bogus 1", "unknown option '--bogus'"},
        {"extract %s %s -p 0 -t 0 2", "unexpected argument"},
        {"rules", "expected 'create' or 'evaluate'"},
        {"rules frobnicate", "unknown subcommand"},
        {"rules create", "no journey file given"},
        {"rules create %s --experts 0", "out of range"},
        {"rules evaluate -t %s", "--rules is required"},
        {"rules evaluate -r %s", "--test needs at least one file"},
        {"rules evaluate -r %s -t", "needs at least one file"},
        {"rules evaluate -r x %s", "unexpected argument"},
        {"demo extra", "unexpected argument"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(a, sizeof a, cases[i].fmt, raw, raw);
        expect_cli(2, cases[i].needle, a);
    }
}

Test(seed_cli, data_errors_exit_1_and_write_nothing)
{
    TMPDIR(d);
    TMPDIR(out);
    const char *raw = sample_raw(d);
    char a[1200];
    /* a missing output directory */
    snprintf(a, sizeof a, "extract %s -p 0 -t 0 4 -o %s/missing", raw, out);
    expect_cli(1, "missing: output directory does not exist", a);
    /* an unknown problem, a range without a complete token */
    snprintf(a, sizeof a, "extract %s -p 7 -t 0 4 -o %s", raw, out);
    expect_cli(1, "no record of problem 7", a);
    snprintf(a, sizeof a, "extract %s -p 0 -t 100 104 -o %s", raw, out);
    expect_cli(1, "nothing written", a);
    snprintf(a, sizeof a, "extract %s/none.jsonl -p 0 -t 0 4 -o %s", d, out);
    expect_cli(1, "cannot open", a);
    cr_expect_eq(count_files(out), 0);

    snprintf(a, sizeof a, "extract %s -p 0 -t 0 2 -o %s", raw, out);
    expect_cli(0, NULL, a);
    cr_expect_eq(count_files(out), 2);
    /* rules create into a missing directory; a pattern matching nothing */
    snprintf(a, sizeof a, "rules create %s/p0_token_0.jsonl -o %s/missing/rules.json", out, out);
    expect_cli(1, "output directory does not exist", a);
    snprintf(a, sizeof a, "rules create '%s/p9_token_*.jsonl' -o %s/rules.json", out, out);
    expect_cli(1, "no file matches", a);
    cr_expect(!exists(out, "rules.json"));
    snprintf(a, sizeof a, "rules create %s/p0_token_0.jsonl -o %s/rules.json", out, out);
    expect_cli(0, NULL, a);
    /* evaluate: missing rules, missing output directory, a bad test file */
    snprintf(a, sizeof a, "rules evaluate -r %s/none.json -t %s/p0_token_1.jsonl", out, out);
    expect_cli(1, "none.json: cannot open", a);
    snprintf(a, sizeof a, "rules evaluate -r %s/rules.json -t %s/p0_token_1.jsonl -o %s/no/r.json",
             out, out, out);
    expect_cli(1, "output directory does not exist", a);
    const char *bad = tu_write(out, "bad.jsonl", "{\"layer\": 0}\n");
    snprintf(a, sizeof a, "rules evaluate -r %s/rules.json -t %s -o %s/results.json", out, bad,
             out);
    expect_cli(1, "bad.jsonl:1: field 'token_idx': missing", a);
    cr_expect(!exists(out, "results.json"));
    /* a journey file given as rules */
    snprintf(a, sizeof a, "rules evaluate -r %s/p0_token_0.jsonl -t %s/p0_token_1.jsonl", out,
             out);
    expect_cli(1, "not valid JSON", a);
}

Test(seed_cli_real, mixtral_workflow_prints_the_seeds_numbers)
{
    const char *raw = TU_SHARED_OR_SKIP(MIXTRAL);
    TMPDIR(d);
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_cli(&out, &err, "extract %s --problem 0 --tokens 0 12 --output-dir %s", raw,
                        d),
                 0, "%s", err);
    cr_expect_not_null(strstr(out, "12 of 12 tokens written"), "%s", out);
    free(out);
    free(err);
    cr_assert_eq(tu_cli(NULL, NULL, "extract %s -p 1 -t 0 12 -o %s", raw, d), 0);
    cr_expect_eq(count_files(d), 24);
    char hex[65], path[1024];
    snprintf(path, sizeof path, "%s/p0_token_3.jsonl", d);
    cr_assert_eq(tu_sha256(path, hex), 0);
    cr_expect_str_eq(hex, "de1715c153cef4d59e914e15a943c7cabf9b3ae50b483e797f7d5b79f0c77597");

    cr_assert_eq(tu_cli(&out, &err, "rules create %s/p0_token_0.jsonl -o %s/rules.json", d, d),
                 0, "%s", err);
    cr_expect_not_null(strstr(out, "level1 "), "%s", out);
    free(out);
    free(err);
    /* quoted globs are expanded by the tool, sorted */
    cr_assert_eq(tu_cli(&out, &err,
                        "rules evaluate --rules %s/rules.json --test '%s/p1_token_?.jsonl' "
                        "%s/p1_token_11.jsonl --output %s/results.json",
                        d, d, d, d),
                 0, "%s", err);
    static const char *lines[] = {
        "Level 1 (Layer, E)             32         75         42.7%        3.4x",
        "Level 2 (Layer, Prev, Curr)    22         31         71.0%        5.7x",
        "Level 3 (Layer, E-2, E-1, E)   18         21         85.7%        6.9x",
        "Level 4 (Layer, P, S)          21         32         65.6%        5.2x",
        "Level 5 skip 2 (Layer, E)      32         71",
        "Level 5 skip 4 (Layer, E)      32         66",
        "Level 5 skip 8 (Layer, E)      28         54",
        "BEST: level3 with 85.71% accuracy (18/21 covered cases)",
        "11 test files, 11 journeys",
        "p1_token_11.jsonl",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        cr_expect_not_null(strstr(out, lines[i]), "stdout lacks '%s':\n%s", lines[i], out);
    free(out);
    free(err);
    snprintf(path, sizeof path, "%s/results.json", d);
    char *json = tu_read(path, NULL);
    cr_assert_not_null(json);
    cr_expect_not_null(strstr(json, "\"num_test_files\": 11,"));
    cr_expect_not_null(strstr(json, "\"accuracy_percent\": 85.71,\n      \"vs_random\": 6.86"));
    free(json);

    /* the seed note's headline table: rules from p0_token_0 on p0 tokens 1-4
     * and p1 tokens 0-4 */
    cr_assert_eq(tu_cli(&out, NULL,
                        "rules evaluate -r %s/rules.json -t %s/p0_token_[1-4].jsonl "
                        "'%s/p1_token_[0-4].jsonl'",
                        d, d, d),
                 0);
    static const char *head[] = {
        "Level 1 (Layer, E)             31         69         44.9%",
        "Level 2 (Layer, Prev, Curr)    25         30         83.3%",
        "Level 3 (Layer, E-2, E-1, E)   21         24         87.5%",
        "Level 4 (Layer, P, S)          23         35         65.7%",
        "BEST: level3 with 87.5% accuracy",
    };
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        cr_expect_not_null(strstr(out, head[i]), "stdout lacks '%s':\n%s", head[i], out);
    free(out);
}

Test(seed_cli_real, flame_uses_64_experts_for_vs_random)
{
    const char *raw = TU_SHARED_OR_SKIP(FLAME);
    TMPDIR(d);
    cr_assert_eq(tu_cli(NULL, NULL, "extract %s -p 0 -t 0 5 -o %s", raw, d), 0);
    cr_assert_eq(tu_cli(NULL, NULL, "extract %s -p 1 -t 0 10 -o %s", raw, d), 0);
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_cli(&out, &err, "rules create '%s/p0_token_*.jsonl' -o %s/rules.json", d, d),
                 0, "%s", err);
    cr_expect_not_null(strstr(out, "8 layers, 64 experts"), "%s", out);
    cr_expect_not_null(strstr(out, "top-6"), "%s", out);
    free(out);
    free(err);
    cr_assert_eq(tu_cli(&out, &err,
                        "rules evaluate -r %s/rules.json -t '%s/p1_token_*.jsonl' -o "
                        "%s/results.json",
                        d, d, d),
                 0, "%s", err);
    cr_expect_not_null(strstr(out, "Random: 1.5625% = 1 of 64 experts"), "%s", out);
    free(out);
    free(err);
    char path[1024];
    snprintf(path, sizeof path, "%s/results.json", d);
    char *json = tu_read(path, NULL);
    cr_assert_not_null(json);
    cr_expect_not_null(strstr(json, "\"n_experts\": 64,"));
    cr_expect_not_null(strstr(json, "\"random_baseline_percent\": 1.5625"));
    /* every level's vs_random is its accuracy / 1.5625, rounded */
    const char *p = json;
    int checked = 0;
    while ((p = strstr(p, "\"correct\": "))) {
        long c = strtol(p + 11, NULL, 10);
        const char *q = strstr(p, "\"total\": ");
        long t = strtol(q + 9, NULL, 10);
        const char *v = strstr(p, "\"vs_random\": ");
        double vs = strtod(v + 13, NULL);
        double want = t ? ec_seed_round2((double)c / (double)t * 100.0 / (100.0 / 64)) : 0;
        cr_expect_eq(vs, want, "vs_random %g, want %g (%ld/%ld)", vs, want, c, t);
        checked++;
        p = v;
    }
    cr_expect_eq(checked, 7);
    free(json);
}

Test(seed_cli, a_synthetic_trace_end_to_end_agrees_with_the_library)
{
    TMPDIR(d);
    char raw[1024];
    snprintf(raw, sizeof raw, "%s/synth.jsonl", d);
    cr_assert_eq(tu_cli(NULL, NULL,
                        "synth --layers 12 --experts 16 -k 4 --sequences 3 --tokens 10 "
                        "--seed 7 -o %s",
                        raw),
                 0);
    for (int p = 0; p < 3; p++)
        cr_assert_eq(tu_cli(NULL, NULL, "extract %s -p %d -t 0 10 -o %s", raw, p, d), 0);
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_cli(&out, &err,
                        "rules create %s/p0_token_*.jsonl %s/p1_token_*.jsonl --experts 16 -o "
                        "%s/rules.json",
                        d, d, d),
                 0, "%s", err);
    free(out);
    free(err);
    cr_assert_eq(tu_cli(&out, &err,
                        "rules evaluate -r %s/rules.json -t '%s/p2_token_*.jsonl' -o "
                        "%s/results.json",
                        d, d, d),
                 0, "%s", err);

    /* The same through the library, in the order the shell sorts the globs. */
    char files[30][1024];
    const char *train[20], *test[10];
    for (int i = 0; i < 30; i++)
        snprintf(files[i], sizeof files[i], "%s/p%d_token_%d.jsonl", d, i / 10, i % 10);
    /* lexicographic order of 0..9 is numeric order */
    for (int i = 0; i < 20; i++)
        train[i] = files[i];
    for (int i = 0; i < 10; i++)
        test[i] = files[20 + i];
    ec_seed_rules *r;
    ec_seed_eval *e;
    ec_error er = {0};
    cr_assert_eq(ec_seed_rules_create(train, 20, 16, &r, &er), EC_OK, "%s", er.message);
    cr_assert_eq(ec_seed_evaluate(r, test, 10, 0, &e, &er), EC_OK, "%s", er.message);
    static const char *labels[] = {"Level 1 (Layer, E)",         "Level 2 (Layer, Prev, Curr)",
                                   "Level 3 (Layer, E-2, E-1, E)", "Level 4 (Layer, P, S)",
                                   "Level 5 skip 2 (Layer, E)",  "Level 5 skip 4 (Layer, E)",
                                   "Level 5 skip 8 (Layer, E)"};
    for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++) {
        char line[128];
        snprintf(line, sizeof line, "%-30s %-10zu %-10zu", labels[lv], e->total[lv].correct,
                 e->total[lv].total);
        cr_expect_not_null(strstr(out, line), "stdout lacks '%s':\n%s", line, out);
        cr_expect_eq(e->total[lv].cases,
                     lv < 4 ? (size_t)10 * (11 - (lv == 1) - 2 * (lv == 2))
                            : (size_t)10 * (12 - ec_seed_level_distance(lv)));
    }
    cr_expect_eq(e->n_experts, 16);
    ec_seed_eval_destroy(e);
    ec_seed_rules_destroy(r);
    free(out);
    free(err);
}

Test(seed_cli, a_seed_made_rules_file_is_evaluated_with_8_experts_and_says_so)
{
    TMPDIR(d);
    const char *raw = sample_raw(d);
    cr_assert_eq(tu_cli(NULL, NULL, "extract %s -p 0 -t 0 2 -o %s", raw, d), 0);
    tu_write(d, "seed.json",
             "{\"level1\": {\"rules\": {\"(0, 1)\": {\"prediction\": 2, \"confidence\": 1.0, "
             "\"samples\": 1}}}, \"level2\": {\"rules\": {}}, \"level3\": {\"rules\": {}}, "
             "\"level4\": {\"rules\": {}}}");
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_cli(&out, &err, "rules evaluate -r %s/seed.json -t %s/p0_token_0.jsonl", d,
                        d),
                 0, "%s", err);
    cr_expect_not_null(strstr(out, "1 of 8 experts (the seed's default"), "%s", out);
    free(out);
    free(err);
    /* --experts overrides */
    cr_assert_eq(tu_cli(&out, &err,
                        "rules evaluate -r %s/seed.json -t %s/p0_token_0.jsonl --experts 16", d,
                        d),
                 0);
    cr_expect_not_null(strstr(out, "1 of 16 experts (given)"), "%s", out);
    free(out);
    free(err);
}

Test(seed_cli, demo_runs_on_the_bundled_sample)
{
    TMPDIR(d);
    char *out = NULL, *err = NULL;
    /* the default trace is found beside the binary (build dir inside the source tree) */
    cr_assert_eq(tu_cli(&out, &err, "demo --output-dir %s/demo", d), 0, "%s", err);
    cr_expect_not_null(strstr(out, "sample_trace.jsonl"), "%s", out);
    /* the seed's workflow is part 3, after the loader replay and the simulator */
    const char *seed =
        strstr(out, "== 3. the seed's tools: extract -> rules create -> rules evaluate ==");
    cr_assert_not_null(seed, "%s", out);
    cr_expect_not_null(strstr(seed, "$ expertcast rules create "), "%s", out);
    cr_expect_not_null(strstr(seed, "$ expertcast rules evaluate -r "), "%s", out);
    cr_expect_not_null(strstr(seed, "EVALUATION RESULTS: 24 test files"), "%s", out);
    cr_expect_not_null(strstr(seed, "BEST: "), "%s", out);
    /* short by default: no per-file table, no line per journey written */
    cr_expect_null(strstr(seed, "Per-file results"), "%s", out);
    cr_expect_null(strstr(seed, "  wrote "), "%s", out);
    free(out);
    free(err);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/demo", d);
    cr_expect(exists(dir, "rules.json"));
    cr_expect(exists(dir, "results.json"));
    snprintf(dir, sizeof dir, "%s/demo/journeys", d);
    cr_expect_eq(count_files(dir), 48);

    /* the printed commands reproduce the demo's rules file */
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "rules create %s/demo/journeys/p0_token_*.jsonl --experts 8 -o %s/again.json", d, d);
    cr_assert_eq(tu_cli(NULL, NULL, "%s", cmd), 0);
    snprintf(dir, sizeof dir, "%s/demo/rules.json", d);
    char *a = tu_read(dir, NULL);
    snprintf(dir, sizeof dir, "%s/again.json", d);
    char *b = tu_read(dir, NULL);
    cr_assert(a && b);
    /* equal apart from the order of training_files, which the glob sorts the same way */
    cr_expect_str_eq(strstr(a, "\"level1\""), strstr(b, "\"level1\""));
    free(a);
    free(b);

    /* any trace, and one sequence split in two */
    const char *raw = sample_raw(d);
    cr_assert_eq(tu_cli(&out, NULL, "demo --trace %s -o %s/d2 --seed-tools", raw, d), 0);
    /* --seed-tools: each tool's full report */
    cr_expect_not_null(strstr(out, "Per-file results"), "%s", out);
    cr_expect_not_null(strstr(out, "/d2/journeys/p0_token_0.jsonl (6 layers)"), "%s", out);
    free(out);
    char one[1024];
    snprintf(one, sizeof one, "%s/one.jsonl", d);
    cr_assert_eq(tu_cli(NULL, NULL, "synth --sequences 1 --tokens 8 -o %s", one), 0);
    cr_assert_eq(tu_cli(&out, NULL, "demo --trace %s -o %s/d3", one, d), 0);
    cr_expect_not_null(strstr(out, "-p 0 -t 4 8"), "%s", out);
    free(out);
    expect_cli(1, "cannot open", "demo --trace /nonexistent/x.jsonl -o /tmp/never");
}
