/* expertcast demo: the seed's workflow (extract -> rules create -> rules
 * evaluate) on the sample trace bundled in data/. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "seed_cli.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *USAGE =
    "usage: expertcast demo [--trace FILE] [--output-dir DIR]\n\n"
    "Runs the seed's three tools on a routing trace, as these commands would:\n"
    "  1. expertcast extract TRACE -p A -t ... -o DIR/journeys   (and the same for B)\n"
    "  2. expertcast rules create DIR/journeys/pA_token_*.jsonl -o DIR/rules.json\n"
    "  3. expertcast rules evaluate -r DIR/rules.json -t DIR/journeys/pB_token_*.jsonl\n"
    "                               -o DIR/results.json\n"
    "where A and B are the trace's first two sequences (train on A, test on B; with a\n"
    "single sequence, its first half trains and its second half tests).\n\n"
    "Options:\n"
    "  --trace FILE             raw routing JSONL (default: the bundled\n"
    "                           data/sample_trace.jsonl, made by 'expertcast synth',\n"
    "                           looked up beside the binary: ../data, ../share/expertcast)\n"
    "  -o, --output-dir DIR     where to write (created; default ./expertcast-demo)\n"
    "  -h, --help               this text\n";

#define SAMPLE "sample_trace.jsonl"

/* The bundled trace, looked up relative to the running binary. */
static int find_sample(char *out, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        const char *dir = dirname(exe);
        static const char *const rel[] = {"../data/", "../share/expertcast/", "data/",
                                          "../../data/"};
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            snprintf(out, size, "%s/%s" SAMPLE, dir, rel[i]);
            if (access(out, R_OK) == 0)
                return 0;
        }
    }
    snprintf(out, size, "data/" SAMPLE);
    return access(out, R_OK) == 0 ? 0 : -1;
}

static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return -1;
    struct stat sb;
    return stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode) ? 0 : -1;
}

/* One side of the split: a sequence and a token range. */
typedef struct part {
    int64_t problem_id;
    char dataset[256]; /* "" when the trace has none */
    int64_t begin, end;
} part;

static part part_of(const ec_trace *t, const ec_seq *q)
{
    part p = {q->problem_id, "", t->token_idx[q->row0], t->token_idx[q->row0 + q->n_rows - 1] + 1};
    snprintf(p.dataset, sizeof p.dataset, "%s", q->dataset);
    return p;
}

/* Extracts one part; appends the journey files written to *paths. */
static int extract_part(const char *trace, const part *p, const char *dir, char ***paths,
                        size_t *n_paths)
{
    ec_extract_opts o = {p->problem_id, p->begin, p->end, p->dataset[0] ? p->dataset : NULL,
                         dir};
    printf("$ expertcast extract %s -p %lld -t %lld %lld -o %s%s%s\n", trace,
           (long long)o.problem_id, (long long)o.token_begin, (long long)o.token_end, dir,
           o.dataset ? " --dataset " : "", o.dataset ? o.dataset : "");
    ec_extract_report *r;
    ec_error err = {0};
    ec_status s = ec_seed_extract(trace, &o, &r, &err);
    if (s)
        return cli_fail(s, &err);
    seed_print_extract(stdout, trace, &o, r);
    char **l = realloc(*paths, (*n_paths + r->n_written) * sizeof *l);
    if (!l) {
        ec_extract_report_destroy(r);
        cli_error("out of memory");
        return CLI_DATA;
    }
    *paths = l;
    for (size_t i = 0; i < r->n_tokens; i++) {
        if (r->tokens[i].layers != r->n_layers)
            continue;
        char file[PATH_MAX];
        snprintf(file, sizeof file, "%s/p%lld_token_%lld.jsonl", dir, (long long)o.problem_id,
                 (long long)r->tokens[i].token);
        if (!(l[*n_paths] = strdup(file))) {
            ec_extract_report_destroy(r);
            cli_error("out of memory");
            return CLI_DATA;
        }
        ++*n_paths;
    }
    ec_extract_report_destroy(r);
    putchar('\n');
    return CLI_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int cmd_demo(int argc, char **argv)
{
    const char *trace = NULL, *outdir = "expertcast-demo";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (cli_is_help(a)) {
            fputs(USAGE, stdout);
            return CLI_OK;
        }
        if (!cli_looks_like_option(a))
            return cli_usage_error("demo", "unexpected argument '%s'", a);
        if (!(val = cli_value("demo", argc, argv, &i)))
            return CLI_USAGE;
        if (cli_is(a, "--trace", NULL))
            trace = val;
        else if (cli_is(a, "--output-dir", "-o"))
            outdir = val;
        else
            return cli_usage_error("demo", "unknown option '%s'", a);
    }
    char sample[PATH_MAX];
    if (!trace) {
        if (find_sample(sample, sizeof sample)) {
            cli_error("cannot find the bundled %s beside the binary or in ./data\n"
                      "HINT: pass --trace FILE, or run from the source tree",
                      SAMPLE);
            return CLI_DATA;
        }
        char *real = realpath(sample, NULL);
        if (real) {
            snprintf(sample, sizeof sample, "%s", real);
            free(real);
        }
        trace = sample;
    }
    int rc;
    ec_trace *t = cli_load_trace(&trace, 1, &rc);
    if (!t)
        return rc;
    /* Train on the first sequence, test on the second (or split one). */
    const ec_seq *a = &t->seqs[0];
    part train = part_of(t, a), test;
    if (t->n_seqs >= 2) {
        test = part_of(t, &t->seqs[1]);
    } else if (a->n_rows >= 2) {
        test = train;
        test.begin = train.end = t->token_idx[a->row0 + a->n_rows / 2];
    } else {
        ec_trace_destroy(t);
        cli_error("%s: one token only; the demo needs two sequences or two tokens", trace);
        return CLI_DATA;
    }
    printf("expertcast demo: the seed's workflow on %s\n"
           "(%d layers, %d experts, top-%d; %zu sequences, %zu tokens)\n\n",
           trace, t->n_layers, t->n_experts, t->k, t->n_seqs, t->n_rows);
    int32_t n_experts = t->n_experts;

    char journeys[PATH_MAX], rules[PATH_MAX], results[PATH_MAX];
    snprintf(journeys, sizeof journeys, "%s/journeys", outdir);
    snprintf(rules, sizeof rules, "%s/rules.json", outdir);
    snprintf(results, sizeof results, "%s/results.json", outdir);
    if (mkdir_p(journeys) != 0) {
        ec_trace_destroy(t);
        cli_error("%s: cannot create the directory: %s", journeys, strerror(errno));
        return CLI_DATA;
    }
    char **train_files = NULL, **test_files = NULL;
    size_t n_train = 0, n_test = 0;
    printf("== 1. extract token journeys ==\n");
    rc = extract_part(trace, &train, journeys, &train_files, &n_train);
    if (rc == CLI_OK)
        rc = extract_part(trace, &test, journeys, &test_files, &n_test);
    ec_trace_destroy(t);
    /* In the order the shell expands the globs printed below, so that the
     * commands shown reproduce these files exactly (ties go to the first). */
    if (train_files)
        qsort(train_files, n_train, sizeof *train_files, cmp_str);
    if (test_files)
        qsort(test_files, n_test, sizeof *test_files, cmp_str);
    if (rc == CLI_OK) {
        printf("== 2. rules create: %zu training journeys ==\n"
               "$ expertcast rules create %s/p%lld_token_*.jsonl --experts %d -o %s\n",
               n_train, journeys, (long long)train.problem_id, n_experts, rules);
        rc = seed_run_create(train_files, n_train, rules, n_experts);
    }
    if (rc == CLI_OK) {
        printf("\n== 3. rules evaluate: %zu test journeys ==\n"
               "$ expertcast rules evaluate -r %s -t %s/p%lld_token_*.jsonl -o %s\n",
               n_test, rules, journeys, (long long)test.problem_id, results);
        rc = seed_run_evaluate(rules, test_files, n_test, results, 0);
    }
    seed_free_list(train_files, n_train);
    seed_free_list(test_files, n_test);
    return rc;
}
