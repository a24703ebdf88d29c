/* Predictor options shared by the fit and eval commands. */
#include "cli.h"

const char *const CLI_PREDICTOR_OPTS_HELP =
    "Predictor options (0 or absent = the predictor's default):\n"
    "  --context N              layers of this token used (default 3): ngram's context,\n"
    "                           temporal's and logistic's similarity window, logistic's\n"
    "                           features\n"
    "  --tokens-back N          temporal / logistic: earlier tokens read (default 64)\n"
    "  --smoothing X            add-X smoothing of the layer prior and ngram's backoff\n"
    "                           weight (default 1)\n"
    "  --epochs N               logistic: passes over the training data (default 4)\n"
    "  --learning-rate X        logistic: Adagrad step size (default 0.1)\n"
    "  --l2 X                   logistic: L2 penalty (default 1e-4)\n"
    "  --per-layer              logistic: one model per target layer instead of one shared\n"
    "  --seed N                 seed of anything random in fitting (default 0)\n"
    "  --max-horizon N          largest horizon fitted (default 4; eval raises it to its\n"
    "                           largest --horizon)\n";

void cli_predictor_usage(const char *head)
{
    fputs(head, stdout);
    fputs(CLI_PREDICTOR_OPTS_HELP, stdout);
    fputs("\nPredictors:", stdout);
    for (const char *const *n = ec_predictor_names(); *n; n++)
        printf(" %s", *n);
    fputs("\n", stdout);
}

int cli_predictor_opt(const char *cmd, int argc, char **argv, int *i, ec_predictor_opts *o)
{
    const char *a = argv[*i], *v;
    long long n;
    if (cli_is(a, "--per-layer", NULL)) {
        o->per_layer = 1;
        return 1;
    }
    if (!cli_is(a, "--context", NULL) && !cli_is(a, "--tokens-back", NULL) &&
        !cli_is(a, "--smoothing", NULL) && !cli_is(a, "--epochs", NULL) &&
        !cli_is(a, "--learning-rate", NULL) && !cli_is(a, "--l2", NULL) &&
        !cli_is(a, "--seed", NULL) && !cli_is(a, "--max-horizon", NULL))
        return 0;
    if (!(v = cli_value(cmd, argc, argv, i)))
        return -1;
    if (cli_is(a, "--context", NULL)) {
        if (!cli_int(cmd, a, v, 0, 64, &n))
            return -1;
        o->context = (int32_t)n;
    } else if (cli_is(a, "--tokens-back", NULL)) {
        if (!cli_int(cmd, a, v, 0, 4096, &n))
            return -1;
        o->tokens_back = (int32_t)n;
    } else if (cli_is(a, "--epochs", NULL)) {
        if (!cli_int(cmd, a, v, 0, 1000000, &n))
            return -1;
        o->epochs = (int32_t)n;
    } else if (cli_is(a, "--seed", NULL)) {
        if (!cli_int(cmd, a, v, 0, INT64_MAX, &n))
            return -1;
        o->seed = (uint64_t)n;
    } else if (cli_is(a, "--max-horizon", NULL)) {
        if (!cli_int(cmd, a, v, 0, EC_MAX_LAYERS, &n))
            return -1;
        o->max_horizon = (int32_t)n;
    } else if (cli_is(a, "--smoothing", NULL)) {
        if (!cli_double(cmd, a, v, 0, 1e9, &o->smoothing))
            return -1;
    } else if (cli_is(a, "--learning-rate", NULL)) {
        if (!cli_double(cmd, a, v, 0, 1e6, &o->learning_rate))
            return -1;
    } else if (!cli_double(cmd, a, v, 0, 1e6, &o->l2))
        return -1;
    return 1;
}
