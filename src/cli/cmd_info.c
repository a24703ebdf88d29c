/* expertcast info: what a trace holds. */
#include "cli.h"

static const char *USAGE =
    "usage: expertcast info TRACE.jsonl...\n\n"
    "Loads raw routing traces (validating every line) and prints their shape:\n"
    "layers, experts, top-k, sequences, tokens, complete journeys, duplicates.\n";

int cmd_info(int argc, char **argv)
{
    const char **paths = (const char **)argv + 1;
    size_t n = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(USAGE, stdout);
            return CLI_OK;
        }
        if (cli_looks_like_option(argv[i]))
            return cli_usage_error("info", "unknown option '%s'", argv[i]);
        n++;
    }
    if (n == 0)
        return cli_usage_error("info", "no trace given");
    int rc;
    ec_trace *t = cli_load_trace(paths, n, &rc);
    if (!t)
        return rc;
    printf("layers %d, experts %d, top-%d, gates %s\n", t->n_layers, t->n_experts, t->k,
           t->has_gates ? "yes" : "no");
    printf("sequences %zu, tokens %zu, complete journeys %zu, incomplete %zu\n", t->n_seqs,
           t->n_rows, t->n_rows - t->n_incomplete, t->n_incomplete);
    printf("records %zu kept, %zu duplicates dropped\n", t->n_records, t->n_duplicates);
    for (size_t s = 0; s < t->n_seqs; s++)
        printf("  %s/%lld: %zu tokens\n", t->seqs[s].dataset[0] ? t->seqs[s].dataset : "-",
               (long long)t->seqs[s].problem_id, t->seqs[s].n_rows);
    ec_trace_destroy(t);
    return CLI_OK;
}
