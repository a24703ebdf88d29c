/* expertcast info: what a trace holds. */
#include "cli.h"

static const char *USAGE =
    "usage: expertcast info [options] TRACE.jsonl...\n\n"
    "Loads raw routing traces (validating every line) and prints their shape:\n"
    "layers, experts, top-k, sequences, tokens, complete journeys, duplicates.\n\n"
    "Options:\n"
    "  --layers N               the model has N MoE layers: a record with layer >= N is an\n"
    "                           error (default: inferred as the largest layer + 1)\n"
    "  --experts N              the model has N experts per layer: an expert id >= N is an\n"
    "                           error (default: inferred as the largest id + 1)\n"
    "  --max-line BYTES         longest accepted line (default 1048576)\n"
    "  -h, --help               this text\n";

int cmd_info(int argc, char **argv)
{
    ec_trace_opts opts = {0};
    const char **paths = (const char **)argv + 1; /* paths are packed here in order */
    size_t n = 0;
    long long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (cli_is_help(a)) {
            fputs(USAGE, stdout);
            return CLI_OK;
        }
        if (!cli_looks_like_option(a)) {
            paths[n++] = a;
            continue;
        }
        if (!cli_is(a, "--layers", NULL) && !cli_is(a, "--experts", NULL) &&
            !cli_is(a, "--max-line", NULL))
            return cli_usage_error("info", "unknown option '%s'", a);
        if (!(val = cli_value("info", argc, argv, &i)))
            return CLI_USAGE;
        if (cli_is(a, "--layers", NULL)) {
            if (!cli_int("info", a, val, 1, EC_MAX_LAYERS, &v)) return CLI_USAGE;
            opts.n_layers = (int32_t)v;
        } else if (cli_is(a, "--experts", NULL)) {
            if (!cli_int("info", a, val, 1, EC_MAX_EXPERTS, &v)) return CLI_USAGE;
            opts.n_experts = (int32_t)v;
        } else {
            if (!cli_int("info", a, val, 16, (long long)1 << 30, &v)) return CLI_USAGE;
            opts.max_line = (size_t)v;
        }
    }
    if (n == 0)
        return cli_usage_error("info", "no trace given");
    ec_trace *t = NULL;
    ec_error err = {0};
    ec_status status = ec_trace_load(paths, n, &opts, &t, &err);
    if (status)
        return cli_fail(status, &err);
    printf("layers %d, experts %d, top-%d, gates %s\n", t->n_layers, t->n_experts, t->k,
           t->has_gates ? "yes" : "no");
    printf("sequences %zu, tokens %zu, complete journeys %zu, incomplete %zu\n", t->n_seqs,
           t->n_rows, t->n_rows - t->n_incomplete, t->n_incomplete);
    printf("records %zu kept, %zu duplicates dropped\n", t->n_records, t->n_duplicates);
    char name[256]; /* dataset names come from the data: no terminal escapes */
    for (size_t s = 0; s < t->n_seqs; s++)
        printf("  %s/%lld: %zu tokens\n",
               t->seqs[s].dataset[0] ? cli_printable(t->seqs[s].dataset, name, sizeof name) : "-",
               (long long)t->seqs[s].problem_id, t->seqs[s].n_rows);
    ec_trace_destroy(t);
    return CLI_OK;
}
