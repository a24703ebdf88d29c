/* expertcast extract: the seed's extract_tokens.py. */
#include "seed_cli.h"

#include <string.h>

static const char *USAGE =
    "usage: expertcast extract RAW.jsonl --problem P --tokens START END [options]\n\n"
    "Writes the complete token journeys of one problem, one file per token:\n"
    "DIR/pP_token_I.jsonl, one line per layer in layer order, each line the record\n"
    "as Python's json.dumps prints it (byte-identical to the seed's extract_tokens.py).\n"
    "A token of the range that misses a layer is skipped and reported; for a repeated\n"
    "(token, layer) the first record wins. Every line of RAW.jsonl is validated first;\n"
    "files are written atomically, so an error leaves nothing half-written.\n\n"
    "Options:\n"
    "  -p, --problem P          problem_id to extract (required)\n"
    "  -t, --tokens START END   token range [START, END), 0 <= START < END (required)\n"
    "  -o, --output-dir DIR     existing directory for the files (default: .)\n"
    "  --dataset NAME           the dataset holding the problem; required when several\n"
    "                           datasets use the same problem_id\n"
    "  -h, --help               this text\n";

int cmd_extract(int argc, char **argv)
{
    const char *raw = NULL;
    ec_extract_opts o = {0};
    int have_problem = 0, have_tokens = 0;
    long long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (cli_is_help(a)) {
            fputs(USAGE, stdout);
            return CLI_OK;
        }
        if (!cli_looks_like_option(a)) {
            if (raw)
                return cli_usage_error("extract", "unexpected argument '%s' (one input file)",
                                       a);
            raw = a;
            continue;
        }
        if (!(val = cli_value("extract", argc, argv, &i)))
            return CLI_USAGE;
        if (cli_is(a, "--problem", "-p")) {
            if (!cli_int("extract", a, val, INT64_MIN / 2, INT64_MAX / 2, &v))
                return CLI_USAGE;
            o.problem_id = v;
            have_problem = 1;
        } else if (cli_is(a, "--tokens", "-t")) {
            if (i + 1 >= argc)
                return cli_usage_error("extract", "%s needs two values: START END", a);
            if (!cli_int("extract", "--tokens START", val, 0, INT64_MAX / 2, &v))
                return CLI_USAGE;
            o.token_begin = v;
            if (!cli_int("extract", "--tokens END", argv[++i], 0, INT64_MAX / 2, &v))
                return CLI_USAGE;
            o.token_end = v;
            have_tokens = 1;
        } else if (cli_is(a, "--output-dir", "-o")) {
            o.output_dir = val;
        } else if (cli_is(a, "--dataset", NULL)) {
            o.dataset = val;
        } else {
            return cli_usage_error("extract", "unknown option '%s'", a);
        }
    }
    if (!raw)
        return cli_usage_error("extract", "no input file given");
    if (!have_problem)
        return cli_usage_error("extract", "--problem is required");
    if (!have_tokens)
        return cli_usage_error("extract", "--tokens START END is required");
    if (o.token_end <= o.token_begin)
        return cli_usage_error("extract", "--tokens %lld %lld: END must be above START",
                               (long long)o.token_begin, (long long)o.token_end);
    return seed_run_extract(raw, &o);
}
