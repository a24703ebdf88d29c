/* expertcast synth: write a synthetic routing trace. */
#include "cli.h"

#include <string.h>

static const char *USAGE =
    "usage: expertcast synth [options] --output FILE\n\n"
    "Generates a synthetic raw routing trace (JSONL) with tunable locality.\n\n"
    "Options:\n"
    "  -o, --output FILE        where to write ('-' for stdout; required)\n"
    "  --layers N               MoE layers (default 32)\n"
    "  --experts N              experts per layer (default 8)\n"
    "  -k, --top-k N            experts chosen per token and layer (default 2)\n"
    "  --sequences N            sequences (prompts) (default 4)\n"
    "  --tokens N               tokens per sequence (default 64)\n"
    "  --seed N                 random seed (default 1)\n"
    "  --layer-locality P       0..1, pull towards the previous layer's successor (default 0.5)\n"
    "  --token-locality P       0..1, reuse of the previous token's experts (default 0.4)\n"
    "  --skew S                 Zipf exponent of expert popularity (default 0.8)\n"
    "  --no-gates               omit gating_probs\n"
    "  --dataset NAME           dataset name on every record (default synth)\n"
    "  -h, --help               this text\n";

static ec_status write_trace(FILE *f, void *ctx, ec_error *err)
{
    return ec_trace_write_jsonl(ctx, f, err);
}

int cmd_synth(int argc, char **argv)
{
    ec_synth_opts o;
    ec_synth_opts_default(&o);
    const char *output = NULL;
    long long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (cli_is_help(a)) {
            fputs(USAGE, stdout);
            return CLI_OK;
        }
        if (cli_is(a, "--no-gates", NULL)) {
            o.gates = 0;
            continue;
        }
        if (!cli_looks_like_option(a))
            return cli_usage_error("synth", "unexpected argument '%s'", a);
        if (!(val = cli_value("synth", argc, argv, &i)))
            return CLI_USAGE;
        if (cli_is(a, "--output", "-o"))
            output = val;
        else if (cli_is(a, "--dataset", NULL))
            o.dataset = val;
        else if (cli_is(a, "--layers", NULL)) {
            if (!cli_int("synth", a, val, 1, EC_MAX_LAYERS, &v)) return CLI_USAGE;
            o.n_layers = (int32_t)v;
        } else if (cli_is(a, "--experts", NULL)) {
            if (!cli_int("synth", a, val, 1, EC_MAX_EXPERTS, &v)) return CLI_USAGE;
            o.n_experts = (int32_t)v;
        } else if (cli_is(a, "--top-k", "-k")) {
            if (!cli_int("synth", a, val, 1, EC_MAX_K, &v)) return CLI_USAGE;
            o.k = (int32_t)v;
        } else if (cli_is(a, "--sequences", NULL)) {
            if (!cli_int("synth", a, val, 1, 1000000, &v)) return CLI_USAGE;
            o.n_seqs = (int32_t)v;
        } else if (cli_is(a, "--tokens", NULL)) {
            if (!cli_int("synth", a, val, 1, 100000000, &v)) return CLI_USAGE;
            o.n_tokens = (int32_t)v;
        } else if (cli_is(a, "--seed", NULL)) {
            if (!cli_int("synth", a, val, 0, INT64_MAX, &v)) return CLI_USAGE;
            o.seed = (uint64_t)v;
        } else if (cli_is(a, "--layer-locality", NULL)) {
            if (!cli_double("synth", a, val, 0, 1, &o.layer_locality)) return CLI_USAGE;
        } else if (cli_is(a, "--token-locality", NULL)) {
            if (!cli_double("synth", a, val, 0, 1, &o.token_locality)) return CLI_USAGE;
        } else if (cli_is(a, "--skew", NULL)) {
            if (!cli_double("synth", a, val, 0, 100, &o.skew)) return CLI_USAGE;
        } else
            return cli_usage_error("synth", "unknown option '%s'", a);
    }
    if (!output)
        return cli_usage_error("synth", "--output is required");
    if (o.k > o.n_experts)
        return cli_usage_error("synth", "--top-k %d exceeds --experts %d", o.k, o.n_experts);
    ec_trace *t;
    ec_error err = {0};
    ec_status s = ec_synth_generate(&o, &t, &err);
    if (s)
        return cli_fail(s, &err);
    int rc = cli_write_file(output, write_trace, t);
    if (rc == CLI_OK && strcmp(output, "-") != 0)
        fprintf(stderr, "wrote %s: %d sequences x %d tokens x %d layers, %d experts, top-%d\n",
                output, o.n_seqs, o.n_tokens, o.n_layers, o.n_experts, o.k);
    ec_trace_destroy(t);
    return rc;
}
