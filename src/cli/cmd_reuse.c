/* expertcast reuse: the reuse model that gated evicts by, evaluated held out. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: expertcast reuse TRACE.jsonl... [--predictor NAME] [--json FILE]\n\n"
    "Evaluates the reuse model that gated evicts by: for every expert of a layer, the\n"
    "probability that the layer uses it again within the next 1, 2, 4 and 8 tokens,\n"
    "from its recency, its uses over the last 16 tokens and the predictor's vote for\n"
    "the next token. Each sequence is replayed with a predictor and a reuse model\n"
    "fitted on the other sequences only (leave one out up to 8 sequences, beyond that\n"
    "8 contiguous folds, as simulate fits gated's); every (token, layer, expert) whose\n"
    "outcome is known is a case. Variants: recency (age alone), recency+uses, full (with the\n"
    "vote), full without calibration on the stream (fit only), and full without the\n"
    "fit (stream only). Brier score (lower is better) and AUC of 'used within n';\n"
    "intervals are 95 % bootstraps over the test sequences (1000 draws).\n\n"
    "Options:\n"
    "  -p, --predictor NAME   the vote's predictor (default temporal; 'none': no vote)\n"
    "  --json FILE            also write the report as JSON ('-': stdout, instead of the\n"
    "                         table)\n"
    "  -h, --help             this text\n";

static ec_status write_json(FILE *f, void *ctx, ec_error *err)
{
    return ec_reuse_eval_write_json(ctx, f, err);
}

static void print_table(const ec_reuse_eval_report *r)
{
    if (r->n_folds == r->n_seqs)
        printf("reuse model, leave one sequence out (%d folds, %lld tokens)", r->n_folds,
               (long long)r->n_tokens);
    else
        printf("reuse model, held out in %d contiguous folds of the %d sequences (%lld tokens)",
               r->n_folds, r->n_seqs, (long long)r->n_tokens);
    printf("; vote: %s\n"
           "n = (token, layer, expert) cases with a known outcome; CI = 95%% bootstrap over "
           "test sequences\n\n",
           r->predictor ? r->predictor : "none");
    printf("%-18s %3s %9s %6s %7s %17s %6s %17s\n", "variant", "n<=", "cases", "base", "Brier",
           "Brier CI", "AUC", "AUC CI");
    for (int v = 0; v < EC_REUSE_N_VARIANTS; v++)
        for (int h = 0; h < EC_REUSE_N_HORIZONS; h++) {
            const ec_reuse_eval_result *x = &r->v[v];
            printf("%-18s %3d %9lld %6.3f %7.4f [%.4f, %.4f] %6.3f [%.3f, %.3f]\n",
                   h == 0 ? x->variant : "", r->horizons[h], (long long)x->n[h],
                   x->base_rate[h], x->brier[h], x->brier_lo[h], x->brier_hi[h], x->auc[h],
                   x->auc_lo[h], x->auc_hi[h]);
        }
}

int cmd_reuse(int argc, char **argv)
{
    const char **paths = calloc((size_t)argc, sizeof *paths);
    const char *pred = "temporal", *json = NULL;
    size_t n = 0;
    int rc = paths ? CLI_OK : CLI_DATA;
    for (int i = 1; rc == CLI_OK && i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(USAGE, stdout);
            free(paths);
            return CLI_OK;
        } else if (cli_is(a, "--predictor", "-p") || cli_is(a, "--json", NULL)) {
            const char *v = cli_value("reuse", argc, argv, &i);
            if (!v)
                rc = CLI_USAGE;
            else if (a[2] == 'j')
                json = v;
            else
                pred = strcmp(v, "none") == 0 ? NULL : v;
        } else if (cli_looks_like_option(a))
            rc = cli_usage_error("reuse", "unknown option '%s'", a);
        else
            paths[n++] = a;
    }
    if (rc == CLI_OK && n == 0)
        rc = cli_usage_error("reuse", "no trace given");
    if (rc == CLI_OK)
        rc = cli_check_outputs(&json, 1, paths, n); /* never write over an input */
    ec_trace *t = rc == CLI_OK ? cli_load_trace(paths, n, &rc) : NULL;
    if (t) {
        ec_reuse_eval_report rep;
        ec_error err = {0};
        ec_status s = ec_reuse_eval(t, pred, NULL, &rep, &err);
        if (s)
            rc = s == EC_ERR_NOT_FOUND ? cli_usage_error("reuse", "%s", err.message)
                                       : cli_fail(s, &err);
        else {
            if (!json || strcmp(json, "-") != 0)
                print_table(&rep);
            if (json)
                rc = cli_write_file(json, write_json, &rep);
        }
    }
    ec_trace_destroy(t);
    free(paths);
    return rc;
}
