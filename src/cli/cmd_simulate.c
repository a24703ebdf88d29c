/* expertcast simulate: replay traces through loading policies on a modeled machine. */
#include "sim_report.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: expertcast simulate TRACE.jsonl... --model PROFILE --hardware PROFILE [options]\n\n"
    "Replays routing traces (sequences in order) through expert-loading policies on a virtual\n"
    "clock with a modeled copy engine, and reports what each policy costs: TPOT, stall per\n"
    "token, hit rate, bytes moved (useful / wasted), prefetch precision, and the fraction of\n"
    "the lru -> oracle gap it closes at the same cache size.\n\n"
    "Profiles: a file path, or a name NAME looked up as NAME.json in, in order,\n"
    "$EXPERTCAST_PROFILES, then profiles/ of the data directories: $EXPERTCAST_DATA, the\n"
    "executable's ../share/expertcast, the source tree's data/ (compiled in, so a build\n"
    "folder works from any directory), the install prefix's share/expertcast: mixtral-8x7b,\n"
    "mixtral-8x7b-int4 (NAME-DTYPE picks a dtype of NAME.json), qwen3-30b-a3b, flame-moe-290m,\n"
    "deepseek-v3; rtx4090-pcie4, a100-pcie4, h100-pcie5, gh200-c2c.\n\n"
    "Options:\n"
    "  --model PROFILE          model profile (layers, experts, top-k, bytes; required)\n"
    "  --hardware PROFILE       hardware profile (bandwidth, latency, engines, memory; required)\n"
    "  --policy LIST|all        comma list of on-demand, lru, lfu, predict, gated, oracle,\n"
    "                           resident, hybrid (default all); lru and oracle always run as\n"
    "                           references. hybrid runs a miss on the host when the hardware\n"
    "                           profile's host facts say that finishes sooner than its copy\n"
    "  --cache-experts N[,N..]  slots per layer (default: what fits the hardware's memory)\n"
    "  --cache-global N[,N..]   one pool of N slots shared by all layers instead\n"
    "  --cache-sized N[,N..]    one pool of N slots partitioned per layer, each batch's\n"
    "                           partition sized from the other sequences' use profile\n"
    "  --horizon H[,H..]        steps (layers) ahead that predict, gated and hybrid prefetch for\n"
    "                           (default 1; the oracle looks max(H, layers) ahead)\n"
    "  --prefetch-k N           experts per target layer the planners consider (default: the\n"
    "                           step's experts, k x batch at most)\n"
    "  --batch B                replay B sequences together: each layer needs the union of\n"
    "                           their experts (default 1)\n"
    "  --predictor FILE|hint    a predictor fitted elsewhere (expertcast predictor JSON), or\n"
    "                           'hint': the guesses the trace carries (field 'guesses') and,\n"
    "                           where none is given, the layer prior of the other sequences\n"
    "  --fit NAME               without --predictor: fit NAME for each batch of sequences on\n"
    "                           the other sequences only (default temporal); guesses a trace\n"
    "                           carries replace its prediction for their targets\n"
    "  --what-if-recall R[,R..] what-if: replay guesses drawn from the trace's own future with\n"
    "                           recall R for 1..H layers ahead (H the largest --horizon; each\n"
    "                           used expert kept with probability R, the others replaced by\n"
    "                           experts not used); every row is labelled what-if with its R,\n"
    "                           and the output gives the break-even recall per cache size\n"
    "                           (the lowest R at which predict, gated or hybrid beats lru)\n"
    "  --seed N                 seed of the what-if draws (default 1)\n"
    "  --what-if-evict N[,N..]  what-if: gated and hybrid run once more per N with victims\n"
    "                           that know which experts each layer uses within the\n"
    "                           next N tokens of the trace ('all': Belady's victims); rows\n"
    "                           labelled what-if evict N. Measures how much of the gap better\n"
    "                           eviction alone could close; not a policy. With\n"
    "                           --what-if-recall, every recall's gated and hybrid get them too\n"
    "  --json FILE              write the results as JSON ('-' for stdout, then no table)\n"
    "  --sweep                  run every cache size x horizon x policy (lists above; default\n"
    "                           caches: top-k .. experts, horizons 1,2,4); progress on stderr\n"
    "  --csv FILE               write every run as CSV, a row per policy, cache and horizon\n"
    "                           ('-': stdout, no table)\n"
    "  --plot FILE.png          with --sweep: TPOT vs cache size per policy; with\n"
    "                           --what-if-recall: TPOT vs R (gnuplot; skipped with a warning\n"
    "                           when gnuplot is absent; '-': stdout, no table)\n"
    "  -h, --help               this text\n\n"
    "gap closed = (lru - policy) / (lru - oracle) on TPOT; the JSON adds gap_closed_bound, the\n"
    "same against the analytic lower bound max(compute, Belady loads x transfer time).\n";

#define MAX_LIST 64
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

typedef struct sim_args {
    const char **traces;
    size_t n_traces;
    const char *model, *hardware, *policies, *predictor, *fit, *json, *csv, *plot;
    int32_t caches[MAX_LIST], horizons[MAX_LIST];
    int n_caches, n_horizons, global, sized, sweep;
    int32_t prefetch_k, batch;
    double recalls[MAX_LIST];
    int n_recalls;
    int32_t evicts[MAX_LIST];
    int n_evicts;
    uint64_t seed;
} sim_args;

/* What a list's values are: integers, integers or the word "all"
 * (EC_WHATIF_EVICT_ALL), or reals. */
typedef enum { LIST_INT, LIST_INT_OR_ALL, LIST_REAL } list_kind;

/* Parses comma list s of option opt into out (int32_t or double, by kind),
 * each value in [lo, hi]; 0 after a usage error. */
static int parse_list(const char *opt, const char *s, list_kind kind, long long lo, long long hi,
                      void *out, int *n)
{
    *n = 0;
    char buf[1024];
    if (strlen(s) >= sizeof buf)
        return cli_usage_error("simulate", "%s: list too long", opt), 0;
    strcpy(buf, s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        long long v;
        if (*n >= MAX_LIST)
            return cli_usage_error("simulate", "%s: at most %d values", opt, MAX_LIST), 0;
        if (kind == LIST_REAL) {
            if (!cli_double("simulate", opt, tok, (double)lo, (double)hi, (double *)out + *n))
                return 0;
            (*n)++;
            continue;
        }
        if (kind == LIST_INT_OR_ALL && strcmp(tok, "all") == 0)
            v = EC_WHATIF_EVICT_ALL;
        else if (!cli_int("simulate", opt, tok, lo, hi, &v))
            return 0;
        ((int32_t *)out)[(*n)++] = (int32_t)v;
    }
    if (*n == 0)
        return cli_usage_error("simulate", "%s: empty list", opt), 0;
    return 1;
}

static int parse_args(int argc, char **argv, sim_args *a)
{
    memset(a, 0, sizeof *a);
    a->batch = 1;
    a->seed = 1;
    a->traces = calloc((size_t)argc, sizeof *a->traces);
    if (!a->traces)
        return cli_error("out of memory"), CLI_DATA;
    long long v;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *val;
        if (cli_is_help(o)) {
            fputs(USAGE, stdout);
            return -1;
        }
        if (!cli_looks_like_option(o)) {
            a->traces[a->n_traces++] = o;
            continue;
        }
        if (cli_is(o, "--sweep", NULL)) {
            a->sweep = 1;
            continue;
        }
        if (!(val = cli_value("simulate", argc, argv, &i)))
            return CLI_USAGE;
        if (cli_is(o, "--model", NULL))
            a->model = val;
        else if (cli_is(o, "--hardware", NULL))
            a->hardware = val;
        else if (cli_is(o, "--policy", NULL))
            a->policies = val;
        else if (cli_is(o, "--predictor", NULL))
            a->predictor = val;
        else if (cli_is(o, "--fit", NULL))
            a->fit = val;
        else if (cli_is(o, "--json", NULL))
            a->json = val;
        else if (cli_is(o, "--csv", NULL))
            a->csv = val;
        else if (cli_is(o, "--plot", NULL))
            a->plot = val;
        else if (cli_is(o, "--cache-experts", NULL) || cli_is(o, "--cache-global", NULL) ||
                 cli_is(o, "--cache-sized", NULL)) {
            if (a->n_caches)
                return cli_usage_error("simulate", "give one of --cache-experts, --cache-global "
                                                   "and --cache-sized");
            a->sized = cli_is(o, "--cache-sized", NULL);
            a->global = a->sized || cli_is(o, "--cache-global", NULL);
            if (!parse_list(o, val, LIST_INT, 1, 1LL << 30, a->caches, &a->n_caches))
                return CLI_USAGE;
        } else if (cli_is(o, "--horizon", NULL)) {
            if (!parse_list(o, val, LIST_INT, 1, EC_MAX_LAYERS, a->horizons, &a->n_horizons))
                return CLI_USAGE;
        } else if (cli_is(o, "--prefetch-k", NULL)) {
            if (!cli_int("simulate", o, val, 1, EC_MAX_EXPERTS, &v))
                return CLI_USAGE;
            a->prefetch_k = (int32_t)v;
        } else if (cli_is(o, "--what-if-recall", NULL)) {
            if (!parse_list(o, val, LIST_REAL, 0, 1, a->recalls, &a->n_recalls))
                return CLI_USAGE;
        } else if (cli_is(o, "--what-if-evict", NULL)) {
            if (!parse_list(o, val, LIST_INT_OR_ALL, 1, 1 << 20, a->evicts, &a->n_evicts))
                return CLI_USAGE;
        } else if (cli_is(o, "--seed", NULL)) {
            if (!cli_int("simulate", o, val, 0, INT64_MAX, &v))
                return CLI_USAGE;
            a->seed = (uint64_t)v;
        } else if (cli_is(o, "--batch", NULL)) {
            if (!cli_int("simulate", o, val, 1, 4096, &v))
                return CLI_USAGE;
            a->batch = (int32_t)v;
        } else
            return cli_usage_error("simulate", "unknown option '%s'", o);
    }
    if (a->n_traces == 0)
        return cli_usage_error("simulate", "no trace given");
    if (!a->model || !a->hardware)
        return cli_usage_error("simulate", "--model and --hardware are required");
    if (a->predictor && a->fit)
        return cli_usage_error("simulate", "give one of --predictor and --fit");
    if (a->plot && !a->sweep && !a->n_recalls)
        return cli_usage_error("simulate", "--plot needs --sweep or --what-if-recall");
    if (a->predictor && strcmp(a->predictor, "hint") == 0) { /* fitted like --fit hint */
        a->fit = a->predictor;
        a->predictor = NULL;
    }
    if (!a->sweep && (a->n_caches > 1 || a->n_horizons > 1))
        return cli_usage_error("simulate", "lists of cache sizes or horizons need --sweep");
    return CLI_OK;
}

static int parse_policies(const char *s, int want[SIM_N_POLICIES])
{
    memset(want, 0, SIM_N_POLICIES * sizeof *want);
    if (!s || strcmp(s, "all") == 0) {
        for (int i = 0; i < SIM_N_POLICIES; i++)
            want[i] = 1;
        return 1;
    }
    char buf[512];
    if (strlen(s) >= sizeof buf)
        return 0;
    strcpy(buf, s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        ec_policy_kind k;
        if (ec_policy_kind_parse(tok, &k)) {
            cli_usage_error("simulate", "--policy: unknown policy '%s' (on-demand, lru, lfu, "
                                        "predict, gated, oracle, resident, hybrid, all)",
                            tok);
            return 0;
        }
        want[k] = 1;
    }
    return 1;
}

int cmd_simulate(int argc, char **argv)
{
    sim_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) {
        free(a.traces);
        return rc < 0 ? CLI_OK : rc;
    }
    int want[SIM_N_POLICIES];
    if (!parse_policies(a.policies, want)) {
        free(a.traces);
        return CLI_USAGE;
    }
    /* profiles as found by name or path, before anything is read */
    char mpath[PATH_MAX], hpath[PATH_MAX];
    const char *outputs[] = {a.json, a.csv, a.plot};
    const char *more[] = {a.predictor, sim_profile_path(a.model, 1, mpath) ? mpath : NULL,
                          sim_profile_path(a.hardware, 0, hpath) ? hpath : NULL};
    if ((rc = cli_check_outputs(outputs, 3, a.traces, a.n_traces)) ||
        (rc = cli_check_outputs(outputs, 3, more, 3))) {
        free(a.traces);
        return rc;
    }
    ec_model_profile model;
    ec_hw_profile hw;
    if ((rc = sim_load_profiles("simulate", a.model, a.hardware, &model, &hw, mpath))) {
        free(a.traces);
        return rc;
    }
    ec_trace *t = cli_load_trace(a.traces, a.n_traces, &rc);
    free(a.traces);
    if (!t)
        return rc;
    ec_sim *sim = NULL;
    ec_predictor *loaded = NULL;
    ec_error err = {0};
    ec_status s;
    sim_report rep = {0};
    char note[512] = "none needed (no predicting policy)";
    if (t->n_layers != model.n_layers || t->n_experts != model.n_experts) {
        cli_error("%s: field 'layers'/'experts': the model profile says %d layers x %d experts, "
                  "the trace has %d x %d",
                  mpath, model.n_layers, model.n_experts, t->n_layers, t->n_experts);
        rc = CLI_DATA;
        goto out;
    }
    if (t->k != model.k)
        cli_warn("the trace has top-%d, the model profile says top-%d; using the trace", t->k,
                 model.k);
    if ((s = ec_sim_create(t, a.batch, &sim, &err))) {
        rc = cli_fail(s, &err);
        goto out;
    }
    if (want[EC_POLICY_HYBRID] && !hw.has_host)
        cli_warn("hardware profile '%s' has no host facts (host_cores, host_read_gbs, "
                 "host_act_d2h_us, host_act_h2d_us): host execution unavailable, hybrid decides "
                 "as gated",
                 hw.name);
    if (want[EC_POLICY_PREDICT] || want[EC_POLICY_GATED] || want[EC_POLICY_HYBRID]) {
        if (a.n_recalls && !a.predictor) { /* each what-if replay fits its own */
            snprintf(note, sizeof note,
                     "'%s' fitted for each batch of %d sequence(s) on the other sequences only "
                     "(held out, no leakage); the what-if guesses replace it for their targets",
                     a.fit ? a.fit : "temporal", a.batch);
        } else if (a.predictor) {
            if ((s = ec_predictor_load(a.predictor, &loaded, &err)) ||
                (s = ec_sim_set_predictor(sim, loaded, &err))) {
                rc = cli_fail(s, &err);
                goto out;
            }
            snprintf(note, sizeof note, "'%s' loaded from %s (fitted elsewhere)",
                     ec_predictor_name(loaded), a.predictor);
        } else {
            if ((rc = sim_fit_heldout(sim, a.fit ? a.fit : "temporal", a.batch, t->n_seqs, note,
                                      sizeof note)))
                goto out;
        }
    }
    ec_sim_timing tm;
    ec_sim_timing_derive(&model, &hw, &tm);
    /* cache sizes and horizons */
    if (!a.n_caches) {
        if (a.sweep && !a.global) {
            int32_t lo = MIN(ec_sim_max_union(sim), t->n_experts), hi = t->n_experts;
            int32_t steps = MIN(8, hi - lo + 1);
            for (int32_t i = 0; i < steps; i++) {
                int32_t c = steps == 1 ? lo : lo + (int32_t)((int64_t)(hi - lo) * i / (steps - 1));
                if (!a.n_caches || a.caches[a.n_caches - 1] != c)
                    a.caches[a.n_caches++] = c;
            }
        } else {
            a.caches[a.n_caches++] = MAX(ec_sim_default_cache(&model, &hw),
                                            MIN(ec_sim_max_union(sim), t->n_experts));
            if (a.global)
                a.caches[0] *= t->n_layers;
        }
    }
    if (!a.n_horizons) {
        if (a.sweep) {
            int32_t hs[] = {1, 2, 4};
            for (int i = 0; i < 3; i++)
                if (hs[i] <= t->n_layers)
                    a.horizons[a.n_horizons++] = hs[i];
        } else
            a.horizons[a.n_horizons++] = 1;
    }
    for (int i = 0; i < a.n_horizons; i++)
        if (a.horizons[i] > t->n_layers) {
            rc = cli_usage_error("simulate", "--horizon %d exceeds the %d layers", a.horizons[i],
                                 t->n_layers);
            goto out;
        }
    sim_plan plan = {.sim = sim, .tm = &tm, .want = want, .caches = a.caches,
                     .n_caches = a.n_caches, .horizons = a.horizons, .n_horizons = a.n_horizons,
                     .global = a.global, .sized = a.sized, .prefetch_k = a.prefetch_k,
                     .progress = a.sweep, .evicts = a.evicts, .n_evicts = a.n_evicts};
    if (a.n_recalls) {
        if ((rc = sim_whatif_rows(&plan, t, a.batch, a.recalls, a.n_recalls, a.seed, loaded,
                                  a.fit ? a.fit : "temporal", &rep)))
            goto out;
    } else if ((rc = sim_run_rows(&plan, &rep)))
        goto out;
    rep.model = &model;
    rep.hw = &hw;
    rep.timing = &tm;
    rep.predictor_note = note;
    rep.n_tokens = ec_sim_n_tokens(sim);
    rep.n_steps = ec_sim_n_steps(sim);
    rep.n_skipped = ec_sim_n_skipped(sim);
    rep.n_seqs = t->n_seqs;
    rep.batch = a.batch;
    int to_stdout = 0; /* an output on stdout replaces the table */
    for (int i = 0; i < 3; i++)
        to_stdout |= outputs[i] && strcmp(outputs[i], "-") == 0;
    if (!to_stdout)
        sim_print_table(stdout, &rep);
    if (a.json && (rc = cli_write_file(a.json, sim_write_json, &rep)))
        goto out;
    if (a.csv && (rc = cli_write_file(a.csv, sim_write_csv, &rep)))
        goto out;
    if (a.plot && sim_plot(&rep, a.plot) == -2) {
        rc = CLI_DATA;
        goto out;
    }
    rc = CLI_OK;
out:
    sim_report_clear_rows(&rep);
    ec_predictor_destroy(loaded);
    ec_sim_destroy(sim);
    ec_trace_destroy(t);
    return rc;
}
