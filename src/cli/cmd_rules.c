/* expertcast rules create / evaluate: the seed's create_rules.py and
 * evaluate_rules.py. */
#include "seed_cli.h"

#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: expertcast rules create JOURNEY.jsonl... [-o rules.json] [--experts N]\n"
    "       expertcast rules evaluate --rules rules.json --test JOURNEY.jsonl...\n"
    "                                 [-o results.json] [--experts N]\n\n"
    "The seed's lookup rules, which predict the primary expert (experts[0]) of a\n"
    "later layer from the primaries of this token's earlier layers:\n"
    "  level1        (Layer, E)            -> E at Layer+1\n"
    "  level2        (Layer, Prev, Curr)   -> E at Layer+1   (Layer >= 1)\n"
    "  level3        (Layer, E-2, E-1, E)  -> E at Layer+1   (Layer >= 2)\n"
    "  level4        (Layer, Primary, Secondary) -> primary at Layer+1\n"
    "  level5 skip_K (Layer, E)            -> E at Layer+K, K = 2, 4, 8\n"
    "A rule predicts the target seen most often for its key; a tie goes to the one\n"
    "seen first (files in the order given, layers ascending).\n\n"
    "create: learns the rules from journey files (from 'expertcast extract'; any raw\n"
    "routing JSONL works, each token being one journey) and writes the seed's rules JSON.\n"
    "  -o, --output FILE        rules file to write (default rules.json; '-' = stdout)\n"
    "  --experts N              experts per layer of the model (default: largest id + 1)\n\n"
    "evaluate: for every level, counts the test cases a rule covers and how many it\n"
    "predicts right; prints a per-file and a summary table and the best level.\n"
    "  -r, --rules FILE         rules JSON from 'rules create' or the seed (required)\n"
    "  -t, --test FILE...       test journey files (required; repeatable)\n"
    "  -o, --output FILE        also write the seed's results JSON ('-' = stdout)\n"
    "  --experts N              experts per layer, for vs Random = accuracy / (100 / N)\n"
    "                           (default: the rules' metadata)\n\n"
    "Arguments holding * ? [ are expanded here (sorted), as the seed did for quoted globs.\n"
    "  -h, --help               this text\n";

/* What both subcommands read from the command line. */
typedef struct rules_args {
    const char *output, *rules; /* rules: evaluate only */
    int32_t n_experts;          /* 0: not given */
    char **files;               /* journeys (create), or the files after --test (evaluate) */
    size_t n_files;
} rules_args;

/* Parses the arguments of "rules create" (evaluate 0) or "rules evaluate"
 * into *a (a->files borrows argv; free it). Returns CLI_OK, an exit code
 * after a message, or -1 after printing --help. */
static int parse_args(const char *cmd, int evaluate, int argc, char **argv, rules_args *a)
{
    *a = (rules_args){.output = evaluate ? NULL : "rules.json"};
    if (!(a->files = calloc((size_t)argc, sizeof *a->files))) {
        cli_error("out of memory");
        return CLI_DATA;
    }
    int in_test = 0;
    long long v;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *val;
        if (cli_is_help(o)) {
            fputs(USAGE, stdout);
            return -1;
        }
        if (!cli_looks_like_option(o)) {
            if (evaluate && !in_test)
                return cli_usage_error(cmd, "unexpected argument '%s' (test files follow "
                                            "--test)", o);
            a->files[a->n_files++] = argv[i];
            continue;
        }
        in_test = 0;
        if (evaluate && cli_is(o, "--test", "-t")) {
            in_test = 1;
            if (i + 1 >= argc || cli_looks_like_option(argv[i + 1]))
                return cli_usage_error(cmd, "%s needs at least one file", o);
            continue;
        }
        if (!(val = cli_value(cmd, argc, argv, &i)))
            return CLI_USAGE;
        if (cli_is(o, "--output", "-o"))
            a->output = val;
        else if (evaluate && cli_is(o, "--rules", "-r"))
            a->rules = val;
        else if (cli_is(o, "--experts", NULL)) {
            if (!cli_int(cmd, "--experts", val, 1, EC_MAX_EXPERTS, &v))
                return CLI_USAGE;
            a->n_experts = (int32_t)v;
        } else
            return cli_usage_error(cmd, "unknown option '%s'", o);
    }
    return CLI_OK;
}

/* Parses, checks, expands the file arguments (globs) and runs the step. */
static int rules_run(int evaluate, int argc, char **argv)
{
    const char *cmd = evaluate ? "rules evaluate" : "rules create";
    rules_args a;
    int rc = parse_args(cmd, evaluate, argc, argv, &a);
    if (rc == CLI_OK && evaluate && !a.rules)
        rc = cli_usage_error(cmd, "--rules is required");
    if (rc == CLI_OK && a.n_files == 0)
        rc = evaluate ? cli_usage_error(cmd, "--test needs at least one file")
                      : cli_usage_error(cmd, "no journey file given");
    char **paths = NULL;
    size_t n_paths = 0;
    if (rc == CLI_OK)
        rc = seed_expand_args(a.files, a.n_files, &paths, &n_paths);
    if (rc == CLI_OK)
        rc = cli_check_outputs(&a.output, 1, (const char *const *)paths, n_paths);
    if (rc == CLI_OK && a.rules)
        rc = cli_check_outputs(&a.output, 1, &a.rules, 1);
    if (rc == CLI_OK)
        rc = evaluate ? seed_run_evaluate(a.rules, paths, n_paths, a.output, a.n_experts, 1)
                      : seed_run_create(paths, n_paths, a.output, a.n_experts);
    seed_free_list(paths, n_paths);
    free(a.files);
    return rc < 0 ? CLI_OK : rc;
}

int cmd_rules(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("rules", "expected 'create' or 'evaluate'");
    if (cli_is_help(argv[1])) {
        fputs(USAGE, stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "create") == 0)
        return rules_run(0, argc - 1, argv + 1);
    if (strcmp(argv[1], "evaluate") == 0)
        return rules_run(1, argc - 1, argv + 1);
    return cli_usage_error("rules", "unknown subcommand '%s' (expected create or evaluate)",
                           argv[1]);
}
