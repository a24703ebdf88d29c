/* expertcast eval: score predictors on held-out sequences. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE_HEAD =
    "usage: expertcast eval TRACE.jsonl... [options]\n"
    "       expertcast eval --train TRAIN.jsonl --test TEST.jsonl [options]\n\n"
    "Fits each predictor on training sequences, replays every test sequence token by\n"
    "token and layer by layer, and after each observed layer N scores the prediction\n"
    "for layer N+h (the next token's layer N+h-L past the last layer) against the\n"
    "router's actual top-k. Every figure is a micro-average over n cases; intervals are\n"
    "95 % percentile bootstraps over test sequences (and, secondary, over blocks of\n"
    "tokens, which correlate and so give narrower intervals).\n\n"
    "Options:\n"
    "  -p, --predictor LIST     comma-separated names, or 'all' (default all)\n"
    "  --horizon LIST           horizons h >= 1, comma-separated (default 1)\n"
    "  -k, --k LIST             guess sizes for recall@k / precision@k (default 1,2,4 and\n"
    "                           the trace's top-k)\n"
    "  --split problem|token    problem (default): leave one sequence (dataset, problem_id)\n"
    "                           out; token: train on the first part of every sequence and\n"
    "                           test on the rest (leaks neighbouring tokens; warned)\n"
    "  --token-fraction X       token split: training share of each sequence (default 0.5)\n"
    "  --folds N                problem split: N folds of sequences (default one per sequence)\n"
    "  --train FILE             train on FILE (repeatable); needs --test\n"
    "  --test FILE              test on FILE (repeatable); needs --train\n"
    "  --json FILE              also write the report as JSON ('-': stdout, instead of the\n"
    "                           table)\n"
    "  --by-layer               print recall@k (k of the trace) by target layer\n"
    "  --resamples N            bootstrap draws (default 1000)\n"
    "  --block N                tokens per block of the block bootstrap (default 16)\n"
    "  --bootstrap-seed N       bootstrap seed (default 1)\n"
    "  -h, --help               this text\n\n";

/* Parses "1,2,4" into v (at most cap values in [lo, hi]). */
static bool int_list(const char *opt, const char *s, long long lo, long long hi, int32_t *v,
                     size_t cap, size_t *n)
{
    char buf[1024];
    if (strlen(s) >= sizeof buf) {
        cli_usage_error("eval", "%s: list too long", opt);
        return false;
    }
    strcpy(buf, s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        long long x;
        if (*n == cap) {
            cli_usage_error("eval", "%s: at most %zu values", opt, cap);
            return false;
        }
        if (!cli_int("eval", opt, tok, lo, hi, &x))
            return false;
        for (size_t i = 0; i < *n; i++)
            if (v[i] == x) {
                cli_usage_error("eval", "%s: %lld is given twice", opt, x);
                return false;
            }
        v[(*n)++] = (int32_t)x;
    }
    if (*n == 0) {
        cli_usage_error("eval", "%s: empty list", opt);
        return false;
    }
    return true;
}

static ec_status write_report(FILE *f, void *ctx, ec_error *err)
{
    return ec_eval_write_json(ctx, f, err);
}

static void print_ci(ec_ci c)
{
    if (isnan(c.lo))
        printf(" [   n/a    ]");
    else
        printf(" [%.3f,%.3f]", c.lo, c.hi);
}

/* Same scores on every metric: two predictors that answered alike. */
static bool same_scores(const ec_eval_report *r, const ec_eval_result *a, const ec_eval_result *b)
{
    if (a->horizon != b->horizon || a->n != b->n || a->coverage != b->coverage ||
        a->top1 != b->top1 || a->exact_set != b->exact_set ||
        a->primary_in_top2 != b->primary_in_top2)
        return false;
    for (size_t i = 0; i < r->n_ks; i++)
        if (a->recall_at_k[i] != b->recall_at_k[i] || a->precision_at_k[i] != b->precision_at_k[i])
            return false;
    return true;
}

/* What a reader of the table would otherwise wonder about. */
static void print_notes(const ec_eval_report *r)
{
    for (size_t j = 0; j < r->n_results; j++) {
        const ec_eval_result *x = &r->results[j];
        if (x->n > 0 && x->n_covered == 0)
            printf("note: %s answers no case at horizon %d%s: every case is scored as its "
                   "fallback, the layer prior\n",
                   x->predictor, x->horizon,
                   strcmp(x->predictor, "seed-l5") == 0 ? " (its skip rules look 2, 4 or 8 "
                                                          "layers ahead)"
                                                        : "");
        for (size_t i = 0; i < j; i++)
            if (strcmp(r->results[i].predictor, x->predictor) != 0 &&
                same_scores(r, &r->results[i], x))
                printf("note: %s scores exactly as %s at horizon %d%s\n", x->predictor,
                       r->results[i].predictor, x->horizon,
                       strcmp(x->predictor, "mix") == 0
                           ? " (its weights, fitted per fold on held-out training data, went "
                             "to one component)"
                           : "");
    }
}

static void print_table(const ec_eval_report *r, bool by_layer)
{
    size_t K = 0; /* index of the trace's k among the report's ks, if there */
    bool has_K = false;
    for (size_t i = 0; i < r->n_ks; i++)
        if (r->ks[i] == r->k) {
            K = i;
            has_K = true;
        }
    if (!has_K)
        K = r->n_ks - 1;
    int32_t kk = r->ks[K];
    printf("split %s, %zu fold%s; tested %zu sequences, %zu tokens; %d layers, %d experts, "
           "top-%d\n",
           ec_split_name(r->split), r->folds, r->folds == 1 ? "" : "s", r->n_test_seqs,
           r->n_test_tokens, r->n_layers, r->n_experts, r->k);
    printf("n = cases (prediction after layer N for layer N+h); cover = share not abstaining;\n"
           "CI = 95%% bootstrap (%d draws) over test sequences; blk = over %d-token blocks "
           "(secondary)\n",
           r->resamples, r->block);
    printf("random guess: top1 %.3f", 1.0 / r->n_experts);
    for (size_t i = 0; i < r->n_ks; i++)
        printf(", r@%d %.3f", r->ks[i], (double)r->ks[i] / r->n_experts);
    printf(", p@k %.3f\n\n", (double)r->k / r->n_experts);
    printf("%-10s %3s %7s %6s %6s %13s", "predictor", "h", "n", "cover", "top1", "top1 CI");
    for (size_t i = 0; i < r->n_ks; i++)
        printf("  r@%-3d", r->ks[i]);
    printf(" %13s %13s %6s %6s %6s\n", "r@k CI", "r@k blk CI", "p@k", "exact", "pri@2");
    for (size_t j = 0; j < r->n_results; j++) {
        const ec_eval_result *x = &r->results[j];
        printf("%-10s %3d %7zu %6.3f %6.3f", x->predictor, x->horizon, x->n, x->coverage,
               x->top1);
        print_ci(x->ci_top1);
        for (size_t i = 0; i < r->n_ks; i++)
            printf("  %.3f", x->recall_at_k[i]);
        print_ci(x->ci_recall_at_k[K]);
        print_ci(x->block_ci_recall_at_k[K]);
        printf(" %6.3f %6.3f %6.3f\n", x->precision_at_k[K], x->exact_set, x->primary_in_top2);
        if (x->n_covered < x->n && x->n_covered > 0) {
            printf("%-10s     covered only: n %zu, top1 %.3f", "", x->n_covered, x->covered_top1);
            for (size_t i = 0; i < r->n_ks; i++)
                printf(", r@%d %.3f", r->ks[i], x->covered_recall_at_k[i]);
            printf("\n");
        }
    }
    printf("(r@k CI, blk CI and p@k are for k = %d; sequences tested per row: %zu)\n", kk,
           r->n_results ? r->results[0].n_seqs : (size_t)0);
    print_notes(r);
    if (!by_layer)
        return;
    printf("\nrecall@%d by target layer (n per layer in the JSON):\n%-10s %3s", r->k, "predictor",
           "h");
    for (int32_t l = 0; l < r->n_layers; l++)
        printf(" %5d", l);
    printf("\n");
    for (size_t j = 0; j < r->n_results; j++) {
        const ec_eval_result *x = &r->results[j];
        printf("%-10s %3d", x->predictor, x->horizon);
        for (int32_t l = 0; l < r->n_layers; l++)
            if (isnan(x->layer_recall[l]))
                printf("   n/a");
            else
                printf(" %5.3f", x->layer_recall[l]);
        printf("\n");
    }
}

typedef struct args {
    const char **paths, **train, **test;
    size_t n_paths, n_train, n_test;
    const char *json;
    bool by_layer;
    char *pred_buf;
    const char *preds[64];
    size_t n_preds;
    int32_t horizons[EC_EVAL_MAX_HORIZONS], ks[EC_EVAL_MAX_KS];
    ec_eval_opts o;
    ec_predictor_opts po;
} args;

static int parse(args *A, int argc, char **argv)
{
    long long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        int r;
        if (cli_is_help(a)) {
            cli_predictor_usage(USAGE_HEAD);
            return -1;
        }
        if (!cli_looks_like_option(a)) {
            A->paths[A->n_paths++] = a;
            continue;
        }
        if ((r = cli_predictor_opt("eval", argc, argv, &i, &A->po)) != 0) {
            if (r < 0)
                return CLI_USAGE;
            continue;
        }
        if (cli_is(a, "--by-layer", NULL)) {
            A->by_layer = true;
            continue;
        }
        if (!(val = cli_value("eval", argc, argv, &i)))
            return CLI_USAGE;
        if (cli_is(a, "--predictor", "-p")) {
            free(A->pred_buf);
            A->pred_buf = strdup(val);
            A->n_preds = 0;
            if (!A->pred_buf)
                return CLI_DATA;
            if (strcmp(val, "all") == 0)
                continue;
            for (char *save = NULL, *tok = strtok_r(A->pred_buf, ",", &save); tok;
                 tok = strtok_r(NULL, ",", &save)) {
                if (A->n_preds == sizeof A->preds / sizeof A->preds[0])
                    return cli_usage_error("eval", "--predictor: too many names");
                A->preds[A->n_preds++] = tok;
            }
            if (A->n_preds == 0)
                return cli_usage_error("eval", "--predictor: empty list");
        } else if (cli_is(a, "--horizon", NULL)) {
            if (!int_list(a, val, 1, EC_MAX_LAYERS, A->horizons, EC_EVAL_MAX_HORIZONS,
                          &A->o.n_horizons))
                return CLI_USAGE;
            A->o.horizons = A->horizons;
        } else if (cli_is(a, "--k", "-k")) {
            if (!int_list(a, val, 1, EC_MAX_EXPERTS, A->ks, EC_EVAL_MAX_KS, &A->o.n_ks))
                return CLI_USAGE;
            A->o.ks = A->ks;
        } else if (cli_is(a, "--split", NULL)) {
            if (strcmp(val, "problem") == 0)
                A->o.split = EC_SPLIT_PROBLEM;
            else if (strcmp(val, "token") == 0)
                A->o.split = EC_SPLIT_TOKEN;
            else
                return cli_usage_error("eval", "--split: '%s' is not problem or token", val);
        } else if (cli_is(a, "--token-fraction", NULL)) {
            if (!cli_double("eval", a, val, 0.01, 0.99, &A->o.token_fraction))
                return CLI_USAGE;
        } else if (cli_is(a, "--folds", NULL)) {
            if (!cli_int("eval", a, val, 2, 1000000, &v))
                return CLI_USAGE;
            A->o.folds = (int32_t)v;
        } else if (cli_is(a, "--train", NULL))
            A->train[A->n_train++] = val;
        else if (cli_is(a, "--test", NULL))
            A->test[A->n_test++] = val;
        else if (cli_is(a, "--json", NULL))
            A->json = val;
        else if (cli_is(a, "--resamples", NULL)) {
            if (!cli_int("eval", a, val, 1, 1000000, &v))
                return CLI_USAGE;
            A->o.resamples = (int32_t)v;
        } else if (cli_is(a, "--block", NULL)) {
            if (!cli_int("eval", a, val, 1, 1000000, &v))
                return CLI_USAGE;
            A->o.block = (int32_t)v;
        } else if (cli_is(a, "--bootstrap-seed", NULL)) {
            if (!cli_int("eval", a, val, 1, INT64_MAX, &v))
                return CLI_USAGE;
            A->o.seed = (uint64_t)v;
        } else
            return cli_usage_error("eval", "unknown option '%s'", a);
    }
    if ((A->n_train > 0) != (A->n_test > 0))
        return cli_usage_error("eval", "--train and --test go together");
    if (A->n_train && A->n_paths)
        return cli_usage_error("eval", "give traces either positionally or with --train/--test");
    if (A->n_train && A->o.split == EC_SPLIT_TOKEN)
        return cli_usage_error("eval", "--split token does not apply to --train/--test");
    if (!A->n_train && !A->n_paths)
        return cli_usage_error("eval", "no trace given");
    if (A->n_train)
        A->o.split = EC_SPLIT_TRAIN_TEST;
    if (A->n_preds) {
        A->o.predictors = A->preds;
        A->o.n_predictors = A->n_preds;
    }
    A->o.predictor_opts = &A->po;
    const char **inputs = A->n_train ? A->train : A->paths;
    size_t n_in = A->n_train ? A->n_train : A->n_paths;
    int rc = cli_check_outputs(&A->json, 1, inputs, n_in);
    if (rc == CLI_OK && A->n_test)
        rc = cli_check_outputs(&A->json, 1, A->test, A->n_test);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    args A = {0};
    A.paths = calloc((size_t)argc, sizeof *A.paths);
    A.train = calloc((size_t)argc, sizeof *A.train);
    A.test = calloc((size_t)argc, sizeof *A.test);
    int rc = A.paths && A.train && A.test ? parse(&A, argc, argv) : CLI_DATA;
    ec_trace *train = NULL, *test = NULL;
    ec_eval_report *rep = NULL;
    if (rc == -1)
        rc = CLI_OK; /* --help */
    else if (rc == CLI_OK) {
        if (A.n_train) {
            if ((train = cli_load_trace(A.train, A.n_train, &rc)))
                test = cli_load_trace(A.test, A.n_test, &rc);
        } else
            train = cli_load_trace(A.paths, A.n_paths, &rc);
    }
    if (rc == CLI_OK && train && (!A.n_train || test)) {
        /* Default k: 1, 2, 4 and the trace's own k, within its experts. */
        if (!A.o.ks) {
            const int32_t cand[] = {1, 2, 4, train->k};
            for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++) {
                bool dup = false;
                for (size_t j = 0; j < A.o.n_ks; j++)
                    dup |= A.ks[j] == cand[i];
                if (!dup && cand[i] <= train->n_experts)
                    A.ks[A.o.n_ks++] = cand[i];
            }
            A.o.ks = A.ks;
        }
        if (A.o.split == EC_SPLIT_TOKEN)
            cli_warn("--split token trains and tests on tokens of the same prompts: neighbouring "
                     "tokens route alike, so these figures leak and overstate held-out accuracy");
        ec_error err = {0};
        ec_status s = ec_eval_run(train, test, &A.o, &rep, &err);
        if (s) {
            if (s == EC_ERR_NOT_FOUND || s == EC_ERR_INVALID)
                rc = cli_usage_error("eval", "%s", err.message);
            else
                rc = cli_fail(s, &err);
        } else {
            if (!A.json || strcmp(A.json, "-") != 0)
                print_table(rep, A.by_layer);
            if (A.json)
                rc = cli_write_file(A.json, write_report, rep);
        }
    }
    ec_eval_report_destroy(rep);
    ec_trace_destroy(train);
    ec_trace_destroy(test);
    free(A.pred_buf);
    free(A.paths);
    free(A.train);
    free(A.test);
    return rc;
}
