/* expertcast demo: the main job on the bundled trace. Part 1 replays it
 * through the real loader (demo_replay.c), part 2 through the simulator
 * (demo_sim.c), part 3 runs the seed's tools on it (demo_seed.c). */
#define _XOPEN_SOURCE 700 /* realpath */
#include "demo.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *USAGE =
    "usage: expertcast demo [options]\n\n"
    "The main job, on a routing trace (by default the bundled sample), in three parts; each\n"
    "prints the command that reproduces it:\n"
    "  1. the loader: the trace's first sequence replayed through the real expert loader\n"
    "     (cuda when a device is usable, else the cpu backend, saying why), every policy:\n"
    "     hit rate, stall per token, and the stall saved against lru and on-demand\n"
    "     ('expertcast replay');\n"
    "  2. the simulator: the whole trace on modeled hardware, every policy: TPOT, stall,\n"
    "     hit rate, the share of the lru -> oracle gap closed ('expertcast simulate');\n"
    "  3. the seed's tools: extract -> rules create -> rules evaluate, the first sequence\n"
    "     training and the second testing (with one sequence, its two halves).\n"
    "predict and gated use the temporal predictor fitted on sequences they are not tested\n"
    "on; with a one-sequence trace they are left out of parts 1 and 2.\n\n"
    "Written into the output directory, each file atomically: replay.json,\n"
    "simulate-HARDWARE.json, journeys/pP_token_T.jsonl, rules.json, results.json.\n\n"
    "Options:\n"
    "  --trace FILE             raw routing JSONL (default: the bundled\n"
    "                           sample_trace.jsonl, made by 'expertcast synth', found\n"
    "                           like the profiles: $EXPERTCAST_DATA, the executable's\n"
    "                           ../share/expertcast, the source tree's data/, the install\n"
    "                           prefix's share/expertcast)\n"
    "  -o, --output-dir DIR     where to write (created; default ./expertcast-demo)\n"
    "  --backend NAME           part 1's backend: auto, cuda or cpu (default auto; cuda\n"
    "                           fails, exit 2, when no device is usable)\n"
    "  --cache-experts N        expert slots per layer in parts 1 and 2 (default half the\n"
    "                           experts, at least top-k: 4 of 8 for the sample)\n"
    "  --tokens N               tokens of the first sequence replayed in part 1 at most\n"
    "                           (default 24; the first 4 are warm-up, fewer below 8)\n"
    "  --model PROFILE          part 2's model profile (default mixtral-8x7b-int4)\n"
    "  --hardware LIST          part 2's hardware profiles, comma-separated (default\n"
    "                           rtx4090-pcie4,h100-pcie5)\n"
    "  --seed-tools             part 3 prints each tool's full report\n"
    "  -h, --help               this text\n";

#define SAMPLE "sample_trace.jsonl"

/* The bundled trace, found like the profiles (ec_data_find). */
static int find_sample(char *out, size_t size)
{
    ec_error err = {0};
    if (ec_data_find(SAMPLE, out, size, &err) == EC_OK)
        return 0;
    snprintf(out, size, "%s", err.message);
    return -1;
}

/* Refuses a trace that one of the demo's output files would replace. */
static int check_demo_outputs(const char *outdir, const char *trace)
{
    static const char *const fixed[] = {"replay.json", "rules.json", "results.json"};
    char paths[3][PATH_MAX], pattern[PATH_MAX];
    const char *outs[3];
    for (int i = 0; i < 3; i++) {
        snprintf(paths[i], PATH_MAX, "%s/%s", outdir, fixed[i]);
        outs[i] = paths[i];
    }
    int rc = cli_check_outputs(outs, 3, &trace, 1);
    glob_t g;
    snprintf(pattern, sizeof pattern, "%s/simulate-*.json", outdir);
    if (rc == CLI_OK && glob(pattern, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc && rc == CLI_OK; i++)
            rc = cli_check_outputs((const char *const *)&g.gl_pathv[i], 1, &trace, 1);
        globfree(&g);
    }
    return rc;
}

static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return -1;
    struct stat sb;
    return stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode) ? 0 : -1;
}

int cmd_demo(int argc, char **argv)
{
    demo_ctx d = {.outdir = "expertcast-demo", .backend = "auto", .model = "mixtral-8x7b-int4",
                  .hardware = "rtx4090-pcie4,h100-pcie5", .tokens = 24};
    const char *trace = NULL;
    long long cache = 0, v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (cli_is_help(a)) {
            fputs(USAGE, stdout);
            return CLI_OK;
        }
        if (!cli_looks_like_option(a))
            return cli_usage_error("demo", "unexpected argument '%s'", a);
        if (cli_is(a, "--seed-tools", NULL)) {
            d.seed_tools = 1;
            continue;
        }
        if (!(val = cli_value("demo", argc, argv, &i)))
            return CLI_USAGE;
        if (cli_is(a, "--trace", NULL))
            trace = val;
        else if (cli_is(a, "--output-dir", "-o"))
            d.outdir = val;
        else if (cli_is(a, "--backend", NULL))
            d.backend = val;
        else if (cli_is(a, "--model", NULL))
            d.model = val;
        else if (cli_is(a, "--hardware", NULL))
            d.hardware = val;
        else if (cli_is(a, "--cache-experts", NULL)) {
            if (!cli_int("demo", a, val, 1, EC_MAX_EXPERTS, &cache))
                return CLI_USAGE;
        } else if (cli_is(a, "--tokens", NULL)) {
            if (!cli_int("demo", a, val, 1, 100000000, &v))
                return CLI_USAGE;
            d.tokens = v;
        } else
            return cli_usage_error("demo", "unknown option '%s'", a);
    }
    if (strcmp(d.backend, "auto") && strcmp(d.backend, "cuda") && strcmp(d.backend, "cpu"))
        return cli_usage_error("demo", "--backend: '%s' is not auto, cuda or cpu", d.backend);
    int rc = demo_check_profiles(&d);
    if (rc)
        return rc;
    char sample[PATH_MAX];
    if (!trace) {
        if (find_sample(sample, sizeof sample)) {
            cli_error("%s; or pass --trace FILE", sample);
            return CLI_DATA;
        }
        char *real = realpath(sample, NULL);
        if (real) {
            snprintf(sample, sizeof sample, "%s", real);
            free(real);
        }
        trace = sample;
    }
    if ((rc = check_demo_outputs(d.outdir, trace)))
        return rc;
    ec_trace *t = cli_load_trace(&trace, 1, &rc);
    if (!t)
        return rc;
    d.trace_path = trace;
    d.synthetic = trace == sample;
    d.t = t;
    d.cache = cache ? (int32_t)cache : t->n_experts / 2 > t->k ? t->n_experts / 2 : t->k;
    if (d.cache < t->k || d.cache > t->n_experts) {
        rc = cli_usage_error("demo", "--cache-experts %d: the trace needs %d to %d (top-%d of %d "
                                     "experts)",
                             (int)d.cache, t->k, t->n_experts, t->k, t->n_experts);
        ec_trace_destroy(t);
        return rc;
    }
    if (mkdir_p(d.outdir) != 0) {
        cli_error("%s: cannot create the directory: %s", d.outdir, strerror(errno));
        ec_trace_destroy(t);
        return CLI_DATA;
    }
    printf("expertcast demo on %s\n(%d layers, %d experts, top-%d; %zu sequences, %zu tokens; "
           "results in %s/)\n%s\n",
           trace, t->n_layers, t->n_experts, t->k, t->n_seqs, t->n_rows, d.outdir,
           trace == sample ? "The bundled trace is synthetic ('expertcast synth'): its numbers "
                             "describe the generator, not a model.\n"
                           : "");
    rc = demo_replay(&d);
    if (rc == CLI_OK)
        rc = demo_simulate(&d);
    if (rc == CLI_OK)
        rc = demo_seed(&d);
    ec_trace_destroy(t);
    return rc;
}
