/* The demo's loader replay and simulator parts: every policy, numbers that
 * parse, and the same lru figures as the replay and simulate commands print
 * for the settings the demo shows. (The seed part: test_seed_cli.c.) */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const POLICIES[] = {"on-demand", "lru",    "lfu",     "predict",
                                       "gated",     "oracle", "resident"};
#define N_POLICIES (sizeof POLICIES / sizeof POLICIES[0])

#define TMPDIR(name)                                                                               \
    char name[64];                                                                                 \
    snprintf(name, sizeof name, "%s", tu_tmpdir())

/* The numbers of the table row of `policy` below `header` in text (the
 * first table after `from`): up to max, each checked to parse whole.
 * "-" counts as NaN; "+1.2 (+5%)" gives 1.2 and 5. Returns how many, or
 * -1 when the row is absent. */
static int row(const char *from, const char *header, const char *policy, double *v, int max)
{
    const char *h = strstr(from, header);
    if (!h)
        return -1;
    const char *end = strstr(h, "\n\n"); /* the table ends at a blank line */
    char want[64];
    snprintf(want, sizeof want, "\n%s ", policy);
    const char *r = strstr(h, want);
    if (!r || (end && r > end))
        return -1;
    r += strlen(want);
    int n = 0;
    while (n < max) {
        while (*r == ' ' || *r == '(' || *r == ')' || *r == '%')
            r++;
        if (*r == '\n' || *r == '\0')
            break;
        if (*r == '-' && (r[1] == ' ' || r[1] == '\n')) {
            v[n++] = NAN;
            r++;
            continue;
        }
        char *e;
        v[n] = strtod(r, &e);
        cr_assert(e != r && (*e == ' ' || *e == '\n' || *e == '%' || *e == ')'),
                  "policy %s: unparsable number at '%.20s'", policy, r);
        n++;
        r = e;
    }
    return n;
}

/* The command the demo printed after "$ expertcast CMD ", up to the end of
 * the line, without its --json FILE (replaced by json). */
static void shown_command(const char *out, const char *cmd, const char *json, char *buf,
                          size_t size)
{
    char key[64];
    snprintf(key, sizeof key, "$ expertcast %s ", cmd);
    const char *s = strstr(out, key);
    cr_assert_not_null(s, "no '%s' line in:\n%s", key, out);
    s += strlen("$ expertcast ");
    const char *nl = strchr(s, '\n'), *j = strstr(s, " --json ");
    cr_assert(nl && j && j < nl, "the %s command names no --json", cmd);
    snprintf(buf, size, "%.*s --json %s", (int)(j - s), s, json);
}

static int count_matching(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, needle) != NULL;
    closedir(d);
    return n;
}

Test(demo, replays_and_simulates_every_policy_as_the_commands_do)
{
    TMPDIR(d);
    char *out = NULL, *err = NULL, cmd[8192], path[512];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(tu_cli(&out, &err, "demo -o %s/demo", d), 0, "%s", err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    cr_expect_lt(secs, 60.0, "the demo took %.1f s", secs);

    /* part 1: the loader replay; n and the split are said */
    const char *p1 = strstr(out, "== 1. the loader:");
    const char *p2 = strstr(out, "== 2. the simulator:");
    const char *p3 = strstr(out, "== 3. the seed's tools:");
    cr_assert(p1 && p2 && p3 && p1 < p2 && p2 < p3, "%s", out);
    cr_expect_not_null(strstr(p1, "n = 20 tokens measured: 24 complete tokens of sequence 0 "
                                  "replayed, the first 4 as warm-up; 1280 expert uses"),
                       "%s", out);
    cr_expect_not_null(strstr(p1, "predictor temporal, fitted on the 1 other sequence(s), not "
                                  "replayed (held out)"),
                       "%s", out);
    /* each part says why its table looks as it does: the link's slack */
    const char *why1 = strstr(p1, "why: one copy ("), *why2 = strstr(p2, "why: one copy (");
    cr_expect(why1 && why1 < p2, "part 1 explains itself:\n%s", out);
    cr_expect(why2 && why2 < p3 && strstr(why2, "outlasts a layer's compute"),
              "part 2 (RTX 4090, 3.7 ms copies) says the link is saturated:\n%s", out);
    cr_expect_not_null(strstr(p2, "suits lfu's counts"), "%s", out);
    double v[8], lru[8], od[8];
    const char *h1 = "policy       hit %  stall ms/tok";
    cr_assert_eq(row(p1, h1, "lru", lru, 8), 5);
    cr_assert_eq(row(p1, h1, "on-demand", od, 8), 5);
    for (size_t i = 0; i < N_POLICIES; i++) {
        cr_assert_eq(row(p1, h1, POLICIES[i], v, 8), 5, "part 1 lacks %s:\n%s", POLICIES[i],
                     out);
        cr_expect(v[0] >= 0 && v[0] <= 100, "%s hit %g", POLICIES[i], v[0]);
        cr_expect(isfinite(v[1]) && v[1] >= 0 && isfinite(v[4]) && v[4] > 0, "%s", POLICIES[i]);
        /* saved = the reference's stall minus the policy's (3 decimals each) */
        cr_expect_leq(fabs(v[2] - (lru[1] - v[1])), 0.0015, "%s vs lru", POLICIES[i]);
        cr_expect_leq(fabs(v[3] - (od[1] - v[1])), 0.0015, "%s vs on-demand", POLICIES[i]);
    }
    cr_expect_eq(od[0], 0.0, "on-demand keeps nothing: no use finds its expert resident");

    /* the replay command with the settings shown gives lru the same hit rate */
    snprintf(path, sizeof path, "%s/replay-lru.json", d);
    shown_command(out, "replay", path, cmd, sizeof cmd);
    char *policy = strstr(cmd, "--policy all");
    cr_assert_not_null(policy, "%s", cmd);
    memcpy(policy, "--policy lru", strlen("--policy lru"));
    char *rout = NULL;
    cr_assert_eq(tu_cli(&rout, NULL, "%s", cmd), 0, "%s", cmd);
    double r[16];
    cr_assert_geq(row(rout, "policy        hit%", "lru", r, 16), 2, "%s", rout);
    cr_expect_eq(r[0], lru[0], "replay prints lru hit %.2f%%, the demo %.2f%%", r[0], lru[0]);
    free(rout);

    /* part 2: both hardware tables, each policy; lru's reference figures */
    cr_expect_not_null(strstr(p2, "n = 48 decode steps (2 sequence(s), batch 1) x 32 layers"),
                       "%s", out);
    cr_expect_not_null(strstr(p2, "'temporal' fitted for each batch of 1 sequence(s) on the "
                                  "other 1 sequence(s) only (held out"),
                       "%s", out);
    static const char *const HW[] = {"rtx4090-pcie4", "h100-pcie5"};
    for (size_t h = 0; h < 2; h++) {
        char key[128];
        snprintf(key, sizeof key, "--hardware %s ", HW[h]);
        const char *s = strstr(p2, key);
        cr_assert(s && s < p3, "no %s table:\n%s", HW[h], out);
        const char *h2 = "policy      TPOT ms  stall ms/tok";
        double l[8];
        cr_assert_eq(row(s, h2, "lru", l, 8), 6);
        cr_expect_eq(l[3], 0.0, "lru closes none of its own gap");
        for (size_t i = 0; i < N_POLICIES; i++) {
            cr_assert_eq(row(s, h2, POLICIES[i], v, 8), 6, "%s lacks %s", HW[h], POLICIES[i]);
            cr_expect(v[0] > 0 && v[1] >= 0 && v[2] >= 0 && v[2] <= 100, "%s", POLICIES[i]);
            cr_expect_leq(fabs(v[4] - (l[1] - v[1])), 0.0015, "%s %s", HW[h], POLICIES[i]);
        }
        cr_assert_eq(row(s, h2, "oracle", v, 8), 6);
        cr_expect_eq(v[3], 1.0, "the oracle closes its own gap");

        /* simulate with the settings shown: the same lru row, the same JSON */
        char json[512], demo_json[512];
        snprintf(json, sizeof json, "%s/sim-%s.json", d, HW[h]);
        snprintf(demo_json, sizeof demo_json, "%s/demo/simulate-%s.json", d, HW[h]);
        char sub[8192];
        const char *line = s;
        while (line > p2 && line[-1] != '\n')
            line--;
        shown_command(line, "simulate", json, sub, sizeof sub);
        char *sout = NULL;
        cr_assert_eq(tu_cli(&sout, NULL, "%s", sub), 0, "%s", sub);
        /* simulate's row: cache and horizon columns, then TPOT, stall, hit % */
        const char *sl = strstr(sout, "\nlru ");
        cr_assert_not_null(sl, "%s", sout);
        char cache[32], hz[8];
        double tpot, stall, hit;
        cr_assert_eq(sscanf(sl, " lru %31s %7s %lf %lf %lf", cache, hz, &tpot, &stall, &hit), 5);
        cr_expect_str_eq(cache, "4/layer");
        cr_expect_eq(hit, l[2], "%s: simulate prints lru hit %.1f%%, the demo %.1f%%", HW[h],
                     hit, l[2]);
        cr_expect_eq(tpot, l[0]);
        cr_expect_eq(stall, l[1]);
        char *a = tu_read(json, NULL), *b = tu_read(demo_json, NULL);
        cr_assert(a && b, "%s / %s", json, demo_json);
        cr_expect_str_eq(a, b, "the demo's JSON differs from simulate's");
        free(a);
        free(b);
        free(sout);
    }

    /* its files, each committed (no temporary left behind) */
    snprintf(path, sizeof path, "%s/demo", d);
    cr_expect_eq(count_matching(path, "replay.json"), 1);
    cr_expect_eq(count_matching(path, "simulate-"), 2);
    cr_expect_eq(count_matching(path, ".tmp"), 0);
    free(out);
    free(err);
}

Test(demo, one_sequence_leaves_predictors_out_and_other_shapes_skip_the_simulator)
{
    TMPDIR(d);
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_cli(NULL, NULL, "synth --sequences 1 --tokens 10 -o %s/one.jsonl", d), 0);
    cr_assert_eq(tu_cli(&out, &err, "demo --trace %s/one.jsonl -o %s/o1 --backend cpu", d, d),
                 0, "%s", err);
    const char *p2 = strstr(out, "== 2. the simulator:");
    cr_assert_not_null(p2, "%s", out);
    cr_expect_not_null(strstr(out, "predict and gated left out"), "%s", out);
    cr_expect_not_null(strstr(out, "n = 6 tokens measured: 10 complete tokens"), "%s", out);
    cr_expect_null(strstr(out, "\npredict "), "%s", out);
    cr_expect_null(strstr(out, "\ngated "), "%s", out);
    cr_expect_not_null(strstr(out, "\nlru "), "%s", out);
    cr_expect_not_null(strstr(out, "--policy on-demand,lru,lfu,oracle,resident"), "%s", out);
    free(out);
    free(err);

    cr_assert_eq(tu_cli(NULL, NULL, "synth --sequences 2 --tokens 4 --layers 6 -o %s/l6.jsonl",
                        d),
                 0);
    cr_assert_eq(tu_cli(&out, &err, "demo --trace %s/l6.jsonl -o %s/o2 --backend cpu", d, d), 0,
                 "%s", err);
    cr_expect_not_null(strstr(out, "skipped: the model profile"), "%s", out);
    cr_expect_not_null(strstr(out, "n = 2 tokens measured: 4 complete tokens"), "%s", out);
    cr_expect_null(strstr(out, "$ expertcast simulate"), "%s", out);
    cr_expect_not_null(strstr(out, "== 3. the seed's tools:"), "%s", out);
    free(out);
    free(err);
}

Test(demo, bad_options_exit_2_before_anything_is_written)
{
    TMPDIR(d);
    static const struct {
        const char *args, *needle;
    } cases[] = {
        {"--backend gpu", "'gpu' is not auto, cuda or cpu"},
        {"--cache-experts 1", "--cache-experts 1: the trace needs 2 to 8"},
        {"--cache-experts 9", "--cache-experts 9: the trace needs 2 to 8"},
        {"--tokens 0", "out of range"},
        {"--hardware nope", "--hardware: no hardware profile 'nope'"},
        {"--hardware nope", "h100-pcie5"}, /* the names that exist are listed */
        {"--hardware ,", "--hardware: no profile named"},
        {"--model nope", "--model: no model profile 'nope'"},
        {"--model nope", "mixtral-8x7b"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err = NULL;
        cr_expect_eq(tu_cli(NULL, &err, "demo %s -o %s/x%zu", cases[i].args, d, i), 2, "%s",
                     cases[i].args);
        cr_expect(err && strstr(err, cases[i].needle), "%s: %s", cases[i].args, err);
        free(err);
        char dir[256];
        snprintf(dir, sizeof dir, "%s/x%zu", d, i);
        cr_expect_eq(count_matching(dir, ""), -1, "%s: %s was created", cases[i].args, dir);
    }
    char *out = NULL;
    cr_assert_eq(tu_cli(&out, NULL, "demo --help"), 0);
    cr_expect(strstr(out, "--cache-experts") && strstr(out, "--tokens"), "%s", out);
    free(out);
}
