/* expertcast guesses: a what-if copy of a trace carrying guesses of chosen recall. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: expertcast guesses TRACE.jsonl... --recall R --output FILE [options]\n\n"
    "Writes a what-if copy of the traces whose every record carries guesses for the next\n"
    "layers (\"guesses\": [{\"ahead\", \"experts\", \"probs\"}]) drawn from the trace's own\n"
    "future with recall R: each expert the router used at the target is in the guess with\n"
    "probability R, each one left out is replaced by an expert drawn from those not used\n"
    "(k experts per guess, random order, probability 1/k each). A what-if, not a predictor:\n"
    "it answers how good a runtime's guess would have to be (score it with\n"
    "'expertcast eval --predictor hint', replay it with 'expertcast simulate').\n\n"
    "Options:\n"
    "  --recall R               recall of every guess, 0..1 (required)\n"
    "  --ahead H                guesses for 1..H layers ahead (default 2)\n"
    "  --seed N                 random seed (default 1)\n"
    "  -o, --output FILE        where to write ('-' for stdout; required)\n"
    "  -h, --help               this text\n";

static ec_status write_trace(FILE *f, void *ctx, ec_error *err)
{
    return ec_trace_write_jsonl(ctx, f, err);
}

int cmd_guesses(int argc, char **argv)
{
    const char **paths = calloc((size_t)argc, sizeof *paths);
    if (!paths)
        return cli_error("out of memory"), CLI_DATA;
    size_t n_paths = 0;
    const char *output = NULL;
    double recall = -1;
    long long ahead = 2, seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (cli_is_help(a)) {
            fputs(USAGE, stdout);
            free(paths);
            return CLI_OK;
        }
        if (!cli_looks_like_option(a)) {
            paths[n_paths++] = a;
            continue;
        }
        int ok = (val = cli_value("guesses", argc, argv, &i)) != NULL;
        if (!ok)
            ;
        else if (cli_is(a, "--output", "-o"))
            output = val;
        else if (cli_is(a, "--recall", NULL))
            ok = cli_double("guesses", a, val, 0, 1, &recall);
        else if (cli_is(a, "--ahead", NULL))
            ok = cli_int("guesses", a, val, 1, EC_MAX_GUESSES, &ahead);
        else if (cli_is(a, "--seed", NULL))
            ok = cli_int("guesses", a, val, 0, INT64_MAX, &seed);
        else
            ok = (cli_usage_error("guesses", "unknown option '%s'", a), 0);
        if (!ok) {
            free(paths);
            return CLI_USAGE;
        }
    }
    int rc = CLI_USAGE;
    if (n_paths == 0)
        cli_usage_error("guesses", "no trace given");
    else if (recall < 0)
        cli_usage_error("guesses", "--recall is required");
    else if (!output)
        cli_usage_error("guesses", "--output is required");
    else
        rc = CLI_OK;
    if (rc) {
        free(paths);
        return rc;
    }
    ec_trace *t = cli_load_trace(paths, n_paths, &rc);
    free(paths);
    if (!t)
        return rc;
    ec_trace *g;
    ec_error err = {0};
    ec_status s = ec_trace_draw_guesses(t, recall, (int32_t)ahead, (uint64_t)seed, &g, &err);
    ec_trace_destroy(t);
    if (s)
        return cli_fail(s, &err);
    rc = cli_write_file(output, write_trace, g);
    if (rc == CLI_OK && strcmp(output, "-") != 0)
        fprintf(stderr, "wrote %s: %zu what-if guesses (recall %g, ahead 1..%lld, seed %lld)\n",
                output, g->n_guesses, recall, ahead, seed);
    ec_trace_destroy(g);
    return rc;
}
