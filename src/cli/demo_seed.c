/* expertcast demo, part 3: the seed's workflow (extract -> rules create ->
 * rules evaluate), training on the first sequence and testing on the
 * second (or on the second half of a single one). */
#include "demo.h"
#include "seed_cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
static int extract_part(const demo_ctx *d, const part *p, const char *dir, char ***paths,
                        size_t *n_paths)
{
    ec_extract_opts o = {p->problem_id, p->begin, p->end, p->dataset[0] ? p->dataset : NULL,
                         dir};
    printf("$ expertcast extract %s -p %lld -t %lld %lld -o %s%s%s\n", d->trace_path,
           (long long)o.problem_id, (long long)o.token_begin, (long long)o.token_end, dir,
           o.dataset ? " --dataset " : "", o.dataset ? o.dataset : "");
    ec_extract_report *r;
    ec_error err = {0};
    ec_status s = ec_seed_extract(d->trace_path, &o, &r, &err);
    if (s)
        return cli_fail(s, &err);
    if (d->seed_tools) {
        seed_print_extract(stdout, d->trace_path, &o, r);
        putchar('\n');
    } else
        printf("  %zu journeys written; %zu incomplete tokens and %lld without records "
               "skipped\n",
               r->n_written, r->n_incomplete, (long long)r->n_absent);
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
    return CLI_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int demo_seed(const demo_ctx *d)
{
    const ec_trace *t = d->t;
    /* Train on the first sequence, test on the second (or split one). */
    const ec_seq *a = &t->seqs[0];
    part train = part_of(t, a), test;
    if (t->n_seqs >= 2) {
        test = part_of(t, &t->seqs[1]);
    } else if (a->n_rows >= 2) {
        test = train;
        test.begin = train.end = t->token_idx[a->row0 + a->n_rows / 2];
    } else {
        cli_error("%s: one token only; the seed's workflow needs two sequences or two tokens",
                  d->trace_path);
        return CLI_DATA;
    }
    char journeys[PATH_MAX], rules[PATH_MAX], results[PATH_MAX];
    snprintf(journeys, sizeof journeys, "%s/journeys", d->outdir);
    snprintf(rules, sizeof rules, "%s/rules.json", d->outdir);
    snprintf(results, sizeof results, "%s/results.json", d->outdir);
    if (mkdir(journeys, 0777) != 0 && errno != EEXIST) {
        cli_error("%s: cannot create the directory: %s", journeys, strerror(errno));
        return CLI_DATA;
    }
    printf("== 3. the seed's tools: extract -> rules create -> rules evaluate ==\n"
           "(trained on problem %lld tokens %lld-%lld, tested on problem %lld tokens %lld-%lld; "
           "the lookup rules of the research note the project began from)\n",
           (long long)train.problem_id, (long long)train.begin, (long long)train.end - 1,
           (long long)test.problem_id, (long long)test.begin, (long long)test.end - 1);
    char **train_files = NULL, **test_files = NULL;
    size_t n_train = 0, n_test = 0;
    int rc = extract_part(d, &train, journeys, &train_files, &n_train);
    if (rc == CLI_OK)
        rc = extract_part(d, &test, journeys, &test_files, &n_test);
    /* In the order the shell expands the globs printed below, so that the
     * commands shown reproduce these files exactly (ties go to the first). */
    if (train_files)
        qsort(train_files, n_train, sizeof *train_files, cmp_str);
    if (test_files)
        qsort(test_files, n_test, sizeof *test_files, cmp_str);
    if (rc == CLI_OK) {
        printf("$ expertcast rules create %s/p%lld_token_*.jsonl --experts %d -o %s\n", journeys,
               (long long)train.problem_id, (int)t->n_experts, rules);
        rc = seed_run_create(train_files, n_train, rules, t->n_experts);
    }
    if (rc == CLI_OK) {
        printf("$ expertcast rules evaluate -r %s -t %s/p%lld_token_*.jsonl -o %s\n", rules,
               journeys, (long long)test.problem_id, results);
        rc = seed_run_evaluate(rules, test_files, n_test, results, 0, d->seed_tools);
    }
    if (rc == CLI_OK && !d->seed_tools)
        printf("(expertcast demo --seed-tools adds extract's per-token report and evaluate's "
               "per-file accuracy)\n");
    seed_free_list(train_files, n_train);
    seed_free_list(test_files, n_test);
    return rc;
}
