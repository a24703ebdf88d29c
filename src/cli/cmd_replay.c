/* expertcast replay: the real loader over a recorded routing trace, per policy. */
#include "replay_run.h"

#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: expertcast replay [options] TRACE.jsonl [TRACE.jsonl...]\n\n"
    "Runs the real expert loader over a recorded routing trace. For every token and layer:\n"
    "an attention stand-in on the compute stream, the router's choice from the trace, then\n"
    "observe / acquire / expert FFN stand-in / release, with expert weights copied from a\n"
    "pinned host store into the device cache. The host waits for each layer's router point,\n"
    "as a runtime reading the router's output does. Prints, per policy, the hit rate and the\n"
    "measured stall per token over the tokens after the warm-up. With --backend auto and no\n"
    "usable GPU, or when the cache or the pinned store does not fit it, the replay runs on\n"
    "the cpu backend and says why; --backend cuda never falls back: without a usable device\n"
    "(none, driver too old, no CUDA in this build) it fails with the reason (exit 2).\n\n"
    "Options:\n"
    "  --backend NAME           cpu, cuda or auto (default auto: cuda when a device is usable,\n"
    "                           else cpu, saying why); cuda: fail when it is not (exit 2)\n"
    "  --policy LIST            comma-separated policies: on-demand, lru, lfu, predict, gated,\n"
    "                           oracle, resident, or 'all' (default on-demand,lru,predict,gated,\n"
    "                           oracle)\n"
    "  --cache-experts N        device slots per layer (default 4)\n"
    "  --cache-global N         one pool of N slots shared by all layers instead\n"
    "  --expert-bytes N         bytes per expert; suffix K, M or G for 2^10, 2^20, 2^30\n"
    "                           (default 1M)\n"
    "  --predictor NAME         predictor of predict and gated (default temporal); fitted on the\n"
    "                           sequences not replayed (in-sample when there are none)\n"
    "  --horizon H              layers ahead to prefetch for (default 1)\n"
    "  --window W               prefetch copies in flight at most (default 2)\n"
    "  --attn-us US             attention stand-in per layer, microseconds (default 200)\n"
    "  --ffn-us US              expert FFN stand-in per expert, microseconds (default 50)\n"
    "  --tokens N               complete tokens replayed at most (default 64)\n"
    "  --warmup N               first tokens left out of the figures (default 4)\n"
    "  --replay-seqs N          sequences replayed, from the first (default 1)\n"
    "  --transfer-ms MS         gated's cost of one expert copy (default: measured here)\n"
    "  --host-ffn-us US         hybrid: host time of an expert run on the host, spent by the\n"
    "                           replaying thread (default 0: no host execution, hybrid replays\n"
    "                           as gated)\n"
    "  --verify                 checksum every acquired slot against the host store\n"
    "  --record FILE            write what the first policy's loader observed as raw JSONL\n"
    "                           ('-' for stdout, then the table goes to stderr)\n"
    "  --json FILE              also write the results as JSON ('-' for stdout, then the\n"
    "                           table goes to stderr)\n"
    "  -h, --help               this text\n";

/* The command line: the replay's settings and what to do with its results. */
typedef struct opts {
    replay_args r;
    const char *policies, *json;
    const char **paths;
    size_t n_paths;
} opts;

/* Parses "123", "4K", "88M", "1G". */
static bool parse_bytes(const char *s, long long *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    long long mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1LL << 10;
    else if (*end == 'M' || *end == 'm')
        mul = 1LL << 20;
    else if (*end == 'G' || *end == 'g')
        mul = 1LL << 30;
    if (end == s || v <= 0 || (mul > 1 && end[1] != '\0') || (mul == 1 && *end != '\0') ||
        v > (1LL << 40) / mul)
        return false;
    *out = v * mul;
    return true;
}

static int parse(int argc, char **argv, opts *o)
{
    *o = (opts){.policies = "on-demand,lru,predict,gated,oracle"};
    replay_args_default(&o->r);
    o->paths = calloc((size_t)argc, sizeof *o->paths);
    if (!o->paths) {
        cli_error("out of memory");
        return CLI_DATA;
    }
    long long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (cli_is_help(a)) {
            fputs(USAGE, stdout);
            return -1;
        }
        if (cli_is(a, "--verify", NULL)) {
            o->r.verify = 1;
            continue;
        }
        if (!cli_looks_like_option(a)) {
            o->paths[o->n_paths++] = a;
            continue;
        }
        if (!(val = cli_value("replay", argc, argv, &i)))
            return CLI_USAGE;
        if (cli_is(a, "--backend", NULL))
            o->r.backend = val;
        else if (cli_is(a, "--policy", NULL))
            o->policies = val;
        else if (cli_is(a, "--predictor", NULL))
            o->r.predictor = val;
        else if (cli_is(a, "--record", NULL))
            o->r.record = val;
        else if (cli_is(a, "--json", NULL))
            o->json = val;
        else if (cli_is(a, "--expert-bytes", NULL)) {
            if (!parse_bytes(val, &o->r.expert_bytes))
                return cli_usage_error("replay", "--expert-bytes: '%s' is not a size", val);
        } else if (cli_is(a, "--cache-experts", NULL)) {
            if (!cli_int("replay", a, val, 1, EC_MAX_EXPERTS, &v)) return CLI_USAGE;
            o->r.cache_experts = (int32_t)v;
        } else if (cli_is(a, "--cache-global", NULL)) {
            if (!cli_int("replay", a, val, 1, 1 << 24, &v)) return CLI_USAGE;
            o->r.cache_global = (int32_t)v;
        } else if (cli_is(a, "--horizon", NULL)) {
            if (!cli_int("replay", a, val, 1, EC_MAX_LAYERS, &v)) return CLI_USAGE;
            o->r.horizon = (int32_t)v;
        } else if (cli_is(a, "--window", NULL)) {
            if (!cli_int("replay", a, val, 1, 1024, &v)) return CLI_USAGE;
            o->r.window = (int32_t)v;
        } else if (cli_is(a, "--tokens", NULL)) {
            if (!cli_int("replay", a, val, 1, 100000000, &o->r.tokens)) return CLI_USAGE;
        } else if (cli_is(a, "--warmup", NULL)) {
            if (!cli_int("replay", a, val, 0, 100000000, &o->r.warmup)) return CLI_USAGE;
        } else if (cli_is(a, "--replay-seqs", NULL)) {
            if (!cli_int("replay", a, val, 1, 100000000, &o->r.replay_seqs)) return CLI_USAGE;
        } else if (cli_is(a, "--attn-us", NULL)) {
            if (!cli_double("replay", a, val, 0, 1e6, &o->r.attn_us)) return CLI_USAGE;
        } else if (cli_is(a, "--ffn-us", NULL)) {
            if (!cli_double("replay", a, val, 0, 1e6, &o->r.ffn_us)) return CLI_USAGE;
        } else if (cli_is(a, "--transfer-ms", NULL)) {
            if (!cli_double("replay", a, val, 0, 1e6, &o->r.transfer_ms)) return CLI_USAGE;
        } else if (cli_is(a, "--host-ffn-us", NULL)) {
            if (!cli_double("replay", a, val, 0, 1e6, &o->r.host_ffn_us)) return CLI_USAGE;
        } else
            return cli_usage_error("replay", "unknown option '%s'", a);
    }
    if (o->n_paths == 0)
        return cli_usage_error("replay", "a trace file is required");
    if (o->r.cache_global)
        o->r.cache_experts = 0;
    return CLI_OK;
}

/* Splits the policy list; returns how many (at most 16), 0 after an error. */
static int parse_policies(const char *list, ec_policy_kind *kinds)
{
    if (strcmp(list, "all") == 0) {
        for (int i = 0; i <= EC_POLICY_RESIDENT; i++)
            kinds[i] = (ec_policy_kind)i;
        return EC_POLICY_RESIDENT + 1;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (n == 16 || ec_policy_kind_parse(tok, &kinds[n]) != EC_OK) {
            cli_usage_error("replay", "--policy: unknown policy '%s'", tok);
            return 0;
        }
        n++;
    }
    if (n == 0)
        cli_usage_error("replay", "--policy: empty list");
    return n;
}

int cmd_replay(int argc, char **argv)
{
    opts o;
    int rc = parse(argc, argv, &o);
    if (rc) {
        free(o.paths);
        return rc < 0 ? CLI_OK : rc;
    }
    const char *outputs[] = {o.json, o.r.record};
    if ((rc = cli_check_outputs(outputs, 2, o.paths, o.n_paths))) {
        free(o.paths);
        return rc;
    }
    ec_policy_kind kinds[16];
    int n_kinds = parse_policies(o.policies, kinds);
    ec_trace *t = n_kinds ? cli_load_trace(o.paths, o.n_paths, &rc) : NULL;
    free(o.paths);
    if (!n_kinds)
        return CLI_USAGE;
    if (!t)
        return rc;
    replay_report rep;
    rc = replay_execute(&o.r, t, kinds, n_kinds, &rep);
    if (rc == CLI_OK) {
        int std = (o.json && strcmp(o.json, "-") == 0) ||
                  (o.r.record && strcmp(o.r.record, "-") == 0);
        replay_print_table(std ? stderr : stdout, &rep);
        if (o.json)
            rc = cli_write_file(o.json, replay_write_json, &rep);
        for (int i = 0; i < n_kinds && rc == CLI_OK; i++)
            if (rep.rows[i].r.verify_failures)
                rc = CLI_DATA;
    }
    replay_report_free(&rep);
    ec_trace_destroy(t);
    return rc;
}
