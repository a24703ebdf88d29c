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

static int parse_experts(const char *cmd, const char *val, int32_t *out)
{
    long long v;
    if (!cli_int(cmd, "--experts", val, 1, EC_MAX_EXPERTS, &v))
        return CLI_USAGE;
    *out = (int32_t)v;
    return CLI_OK;
}

static int rules_create(int argc, char **argv)
{
    const char *output = "rules.json";
    int32_t n_experts = 0;
    char **inputs = calloc((size_t)argc, sizeof *inputs);
    size_t n = 0;
    int rc = CLI_OK;
    if (!inputs) {
        cli_error("out of memory");
        return CLI_DATA;
    }
    for (int i = 1; i < argc && rc == CLI_OK; i++) {
        const char *a = argv[i], *val;
        if (cli_is_help(a)) {
            fputs(USAGE, stdout);
            free(inputs);
            return CLI_OK;
        }
        if (!cli_looks_like_option(a)) {
            inputs[n++] = argv[i];
            continue;
        }
        if (!(val = cli_value("rules create", argc, argv, &i)))
            rc = CLI_USAGE;
        else if (cli_is(a, "--output", "-o"))
            output = val;
        else if (cli_is(a, "--experts", NULL))
            rc = parse_experts("rules create", val, &n_experts);
        else
            rc = cli_usage_error("rules create", "unknown option '%s'", a);
    }
    if (rc == CLI_OK && n == 0)
        rc = cli_usage_error("rules create", "no journey file given");
    char **paths = NULL;
    size_t n_paths = 0;
    if (rc == CLI_OK)
        rc = seed_expand_args(inputs, n, &paths, &n_paths);
    if (rc == CLI_OK)
        rc = seed_run_create(paths, n_paths, output, n_experts);
    seed_free_list(paths, n_paths);
    free(inputs);
    return rc;
}

static int rules_evaluate(int argc, char **argv)
{
    const char *rules = NULL, *output = NULL;
    int32_t n_experts = 0;
    char **tests = calloc((size_t)argc, sizeof *tests);
    size_t n = 0;
    int rc = CLI_OK, in_test = 0;
    if (!tests) {
        cli_error("out of memory");
        return CLI_DATA;
    }
    for (int i = 1; i < argc && rc == CLI_OK; i++) {
        const char *a = argv[i], *val;
        if (cli_is_help(a)) {
            fputs(USAGE, stdout);
            free(tests);
            return CLI_OK;
        }
        if (!cli_looks_like_option(a)) {
            if (!in_test)
                rc = cli_usage_error("rules evaluate", "unexpected argument '%s' (test files "
                                                       "follow --test)", a);
            else
                tests[n++] = argv[i];
            continue;
        }
        in_test = 0;
        if (cli_is(a, "--test", "-t")) {
            in_test = 1;
            if (i + 1 >= argc || cli_looks_like_option(argv[i + 1]))
                rc = cli_usage_error("rules evaluate", "%s needs at least one file", a);
            continue;
        }
        if (!(val = cli_value("rules evaluate", argc, argv, &i)))
            rc = CLI_USAGE;
        else if (cli_is(a, "--rules", "-r"))
            rules = val;
        else if (cli_is(a, "--output", "-o"))
            output = val;
        else if (cli_is(a, "--experts", NULL))
            rc = parse_experts("rules evaluate", val, &n_experts);
        else
            rc = cli_usage_error("rules evaluate", "unknown option '%s'", a);
    }
    if (rc == CLI_OK && !rules)
        rc = cli_usage_error("rules evaluate", "--rules is required");
    if (rc == CLI_OK && n == 0)
        rc = cli_usage_error("rules evaluate", "--test needs at least one file");
    char **paths = NULL;
    size_t n_paths = 0;
    if (rc == CLI_OK)
        rc = seed_expand_args(tests, n, &paths, &n_paths);
    if (rc == CLI_OK)
        rc = seed_run_evaluate(rules, paths, n_paths, output, n_experts);
    seed_free_list(paths, n_paths);
    free(tests);
    return rc;
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
        return rules_create(argc - 1, argv + 1);
    if (strcmp(argv[1], "evaluate") == 0)
        return rules_evaluate(argc - 1, argv + 1);
    return cli_usage_error("rules", "unknown subcommand '%s' (expected create or evaluate)",
                           argv[1]);
}
