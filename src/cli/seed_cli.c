/* The seed's workflow on the command line: argument expansion, the
 * printed reports, and the three steps shared by their commands and demo. */
#include "seed_cli.h"

#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

void seed_free_list(char **list, size_t n)
{
    if (!list)
        return;
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static int push(char ***list, size_t *n, size_t *cap, const char *s)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        char **l = realloc(*list, nc * sizeof *l);
        if (!l)
            return -1;
        *list = l;
        *cap = nc;
    }
    if (!((*list)[*n] = strdup(s)))
        return -1;
    (*n)++;
    return 0;
}

int seed_expand_args(char *const *args, size_t n, char ***out, size_t *n_out)
{
    char **list = NULL;
    size_t len = 0, cap = 0;
    *out = NULL;
    *n_out = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strpbrk(args[i], "*?[")) {
            if (push(&list, &len, &cap, args[i]))
                goto oom;
            continue;
        }
        glob_t g;
        int rc = glob(args[i], 0, NULL, &g);
        if (rc == GLOB_NOMATCH) {
            cli_error("%s: no file matches this pattern", args[i]);
            seed_free_list(list, len);
            return CLI_DATA;
        }
        if (rc != 0) {
            globfree(&g);
            cli_error("%s: cannot expand the pattern", args[i]);
            seed_free_list(list, len);
            return CLI_DATA;
        }
        for (size_t j = 0; j < g.gl_pathc; j++)
            if (push(&list, &len, &cap, g.gl_pathv[j])) {
                globfree(&g);
                goto oom;
            }
        globfree(&g);
    }
    *out = list;
    *n_out = len;
    return CLI_OK;
oom:
    seed_free_list(list, len);
    cli_error("out of memory");
    return CLI_DATA;
}

int seed_check_output_parent(const char *file)
{
    if (strcmp(file, "-") == 0)
        return CLI_OK;
    char *copy = strdup(file);
    if (!copy) {
        cli_error("out of memory");
        return CLI_DATA;
    }
    const char *dir = dirname(copy);
    struct stat sb;
    int rc = CLI_OK;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        cli_error("%s: output directory does not exist (HINT: mkdir -p %s)", dir, dir);
        rc = CLI_DATA;
    }
    free(copy);
    return rc;
}

void seed_timestamp(char *buf, size_t size)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    time_t t = tv.tv_sec;
    localtime_r(&t, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%06ld", (long)tv.tv_usec);
}

/* ---- reports --------------------------------------------------------------- */

void seed_print_extract(FILE *f, const char *raw, const ec_extract_opts *o,
                        const ec_extract_report *r)
{
    const char *dir = o->output_dir && o->output_dir[0] ? o->output_dir : ".";
    char name[256];
    fprintf(f, "Extracting problem %lld%s%s%s, tokens [%lld, %lld) of %s (%d layers)\n",
            (long long)o->problem_id, r->dataset[0] ? " of dataset '" : "",
            cli_printable(r->dataset, name, sizeof name),
            r->dataset[0] ? "'" : "", (long long)o->token_begin, (long long)o->token_end, raw,
            r->n_layers);
    int64_t next = o->token_begin; /* first token not yet reported */
    for (size_t i = 0; i <= r->n_tokens; i++) {
        int64_t tok = i < r->n_tokens ? r->tokens[i].token : o->token_end;
        if (tok > next) {
            if (tok - next == 1)
                fprintf(f, "  skipped token %lld: no record\n", (long long)next);
            else
                fprintf(f, "  skipped tokens %lld-%lld: no record\n", (long long)next,
                        (long long)tok - 1);
        }
        if (i == r->n_tokens)
            break;
        const ec_extract_token *t = &r->tokens[i];
        if (t->layers == r->n_layers)
            fprintf(f, "  wrote %s/p%lld_token_%lld.jsonl (%d layers)\n", dir,
                    (long long)o->problem_id, (long long)t->token, t->layers);
        else
            fprintf(f, "  skipped token %lld: incomplete, %d of %d layers\n", (long long)t->token,
                    t->layers, r->n_layers);
        next = tok + 1;
    }
    fprintf(f,
            "%zu of %lld tokens written; skipped %zu incomplete and %lld without records; "
            "%zu repeated records ignored (the first one of each (token, layer) kept)\n",
            r->n_written, (long long)(o->token_end - o->token_begin), r->n_incomplete,
            (long long)r->n_absent, r->n_duplicates);
}

static const char *source_text(ec_seed_shape_source s)
{
    switch (s) {
    case EC_SEED_SHAPE_GIVEN: return "given";
    case EC_SEED_SHAPE_INFERRED: return "inferred from the largest expert id; set it with --experts";
    default: return "the seed's default (Mixtral); set it with --experts";
    }
}

void seed_print_rules(FILE *f, const ec_seed_rules *r)
{
    fprintf(f, "Rules from %zu journeys in %zu files: %d layers, %d experts (%s), top-%d\n",
            ec_seed_rules_n_journeys(r), ec_seed_rules_n_training_files(r),
            ec_seed_rules_n_layers(r), ec_seed_rules_n_experts(r),
            source_text(ec_seed_rules_experts_source(r)), ec_seed_rules_k(r));
    for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++)
        fprintf(f, "  %-14s %-46s %6zu rules\n", ec_seed_level_name((ec_seed_level)lv),
                ec_seed_level_description((ec_seed_level)lv),
                ec_seed_rules_count(r, (ec_seed_level)lv));
}

static const char *const SHORT[EC_SEED_N_LEVELS] = {"L1", "L2", "L3", "L4",
                                                    "skip2", "skip4", "skip8"};
static const char *const LABEL[EC_SEED_N_LEVELS] = {
    "Level 1 (Layer, E)",         "Level 2 (Layer, Prev, Curr)", "Level 3 (Layer, E-2, E-1, E)",
    "Level 4 (Layer, P, S)",      "Level 5 skip 2 (Layer, E)",   "Level 5 skip 4 (Layer, E)",
    "Level 5 skip 8 (Layer, E)"};

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

void seed_print_eval_files(FILE *f, const ec_seed_eval *e)
{
    fprintf(f, "Per-file results: correct/covered (covered = a rule exists for the key)\n");
    fprintf(f, "%-28s", "File");
    for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++)
        fprintf(f, " %9s", SHORT[lv]);
    fputc('\n', f);
    for (size_t i = 0; i < e->n_files; i++) {
        fprintf(f, "%-28s", base_name(e->files[i]));
        for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++) {
            const ec_seed_score *s = &e->per_file[i * EC_SEED_N_LEVELS + (size_t)lv];
            char cell[32];
            snprintf(cell, sizeof cell, "%zu/%zu", s->correct, s->total);
            fprintf(f, " %9s", cell);
        }
        fputc('\n', f);
    }
    fputc('\n', f);
}

void seed_print_eval_summary(FILE *f, const ec_seed_eval *e)
{
    size_t journeys = 0;
    for (size_t i = 0; i < e->n_files; i++)
        journeys += e->journeys[i];
    fprintf(f, "EVALUATION RESULTS: %zu test files, %zu journeys; Total = n covered cases, "
               "Coverage = covered / all cases of the level\n",
            e->n_files, journeys);
    fprintf(f, "%-30s %-10s %-10s %-12s %-11s %s\n", "Level", "Correct", "Total", "Accuracy",
            "vs Random", "Coverage");
    for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++) {
        const ec_seed_score *s = &e->total[lv];
        char acc[32], vs[32], cov[64];
        snprintf(acc, sizeof acc, "%.1f%%", ec_seed_accuracy(s));
        snprintf(vs, sizeof vs, "%.1fx", ec_seed_vs_random(s, e->n_experts));
        snprintf(cov, sizeof cov, "%zu/%zu (%.1f%%)", s->total, s->cases,
                 s->cases ? 100.0 * (double)s->total / (double)s->cases : 0.0);
        fprintf(f, "%-30s %-10zu %-10zu %-12s %-11s %s\n", LABEL[lv], s->correct, s->total, acc,
                vs, cov);
    }
    fprintf(f, "Random: %g%% = 1 of %d experts (%s)\n", 100.0 / e->n_experts, e->n_experts,
            source_text(e->experts_source));
    ec_seed_level best = ec_seed_eval_best(e);
    char num[40];
    double a = ec_seed_round2(ec_seed_accuracy(&e->total[best]));
    snprintf(num, sizeof num, "%.2f", a);
    /* print as Python prints a float: no trailing zeros beyond one decimal */
    size_t n = strlen(num);
    while (n > 0 && num[n - 1] == '0' && num[n - 2] != '.')
        num[--n] = '\0';
    fprintf(f, "\nBEST: %s with %s%% accuracy (%zu/%zu covered cases)\n",
            ec_seed_level_name(best), num, e->total[best].correct, e->total[best].total);
}

/* ---- the three steps -------------------------------------------------------- */

int seed_run_extract(const char *raw, const ec_extract_opts *o)
{
    ec_extract_report *r;
    ec_error err = {0};
    ec_status s = ec_seed_extract(raw, o, &r, &err);
    if (s)
        return cli_fail(s, &err);
    seed_print_extract(stdout, raw, o, r);
    ec_extract_report_destroy(r);
    return CLI_OK;
}

static ec_status write_rules(FILE *f, void *ctx, ec_error *err)
{
    return ec_seed_rules_write(ctx, f, err);
}

int seed_run_create(char *const *paths, size_t n, const char *output, int32_t n_experts)
{
    int rc = seed_check_output_parent(output);
    if (rc)
        return rc;
    ec_seed_rules *r;
    ec_error err = {0};
    ec_status s = ec_seed_rules_create((const char *const *)paths, n, n_experts, &r, &err);
    if (s)
        return cli_fail(s, &err);
    rc = cli_write_file(output, write_rules, r);
    if (rc == CLI_OK) {
        seed_print_rules(strcmp(output, "-") ? stdout : stderr, r);
        if (strcmp(output, "-"))
            printf("wrote %s\n", output);
    }
    ec_seed_rules_destroy(r);
    return rc;
}

typedef struct results_ctx {
    const ec_seed_eval *e;
    const ec_seed_rules *r;
    const char *rules_path;
    char timestamp[64];
} results_ctx;

static ec_status write_results(FILE *f, void *ctx, ec_error *err)
{
    results_ctx *c = ctx;
    return ec_seed_eval_write(c->e, c->r, c->rules_path, c->timestamp, f, err);
}

int seed_run_evaluate(const char *rules_path, char *const *tests, size_t n, const char *output,
                      int32_t n_experts, int per_file)
{
    int rc = output ? seed_check_output_parent(output) : CLI_OK;
    if (rc)
        return rc;
    ec_seed_rules *r;
    ec_error err = {0};
    ec_status s = ec_seed_rules_load(rules_path, &r, &err);
    if (s)
        return cli_fail(s, &err);
    /* a file without n_experts (the seed's layout) means Mixtral's 8: the
     * report's Random line says so and how to change it */
    ec_seed_eval *e;
    if ((s = ec_seed_evaluate(r, (const char *const *)tests, n, n_experts, &e, &err))) {
        ec_seed_rules_destroy(r);
        return cli_fail(s, &err);
    }
    FILE *out = output && strcmp(output, "-") == 0 ? stderr : stdout;
    fprintf(out, "Rules: %s\n", rules_path);
    if (per_file)
        seed_print_eval_files(out, e);
    seed_print_eval_summary(out, e);
    if (output) {
        results_ctx c = {e, r, rules_path, {0}};
        seed_timestamp(c.timestamp, sizeof c.timestamp);
        rc = cli_write_file(output, write_results, &c);
        if (rc == CLI_OK && strcmp(output, "-"))
            printf("wrote %s\n", output);
    }
    ec_seed_eval_destroy(e);
    ec_seed_rules_destroy(r);
    return rc;
}
