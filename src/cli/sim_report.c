/* expertcast simulate: the table, JSON, CSV and plot. */
#include "sim_report.h"
#include "core/jsonstr.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *cache_str(const ec_sim_result *r, char *buf, size_t n)
{
    if (r->kind == EC_POLICY_RESIDENT)
        snprintf(buf, n, "all");
    else if (r->cache_per_layer > 0)
        snprintf(buf, n, "%d/layer", r->cache_per_layer);
    else
        snprintf(buf, n, "%d %s", r->cache_global, r->cache_sized ? "sized" : "global");
    return buf;
}

#define EVICT_NOTE                                                                                \
    "gated's and hybrid's victims knew which experts each layer uses within the next N tokens "  \
    "of the trace (all: Belady's victims) and every demand was admitted; which prefetches to "    \
    "start was decided as without it: a what-if measuring what better eviction could gain, "     \
    "not a policy"

static int any_evict_whatif(const sim_report *rep)
{
    for (size_t i = 0; i < rep->n_rows; i++)
        if (rep->rows[i].what_if_evict)
            return 1;
    return 0;
}

void sim_print_table(FILE *f, const sim_report *rep)
{
    const ec_sim_timing *tm = rep->timing;
    fprintf(f, "model %s (%s): %d layers, %d experts, top-%d, %.1f MB per expert\n",
            rep->model->name, rep->model->dtype, rep->model->n_layers, rep->model->n_experts,
            rep->model->k, rep->model->expert_bytes / 1e6);
    fprintf(f, "hardware %s: %.1f GB/s host-to-device, %d copy engine(s)\n", rep->hw->name,
            rep->hw->h2d_gbs, rep->hw->copy_engines);
    if (rep->hw->has_host)
        fprintf(f, "host: %d cores, %.1f GB/s streaming read, activations %.1f + %.1f us: "
                   "%.3f ms per expert on the host (hybrid)\n",
                rep->hw->host_cores, rep->hw->host_read_gbs, rep->hw->host_act_d2h_us,
                rep->hw->host_act_h2d_us, ec_sim_host_ms(tm, 1) + tm->host_d2h_ms + tm->host_h2d_ms);
    else
        fprintf(f, "host: no host facts in the profile: host execution unavailable (hybrid "
                   "decides as gated)\n");
    fprintf(f, "timing: transfer %.3f ms/expert, compute %.3f ms/layer + %.3f ms/expert, "
               "router %.3f ms, predictor %.3f ms\n",
            tm->transfer_ms, tm->compute_fixed_ms, tm->compute_per_expert_ms, tm->router_ms,
            tm->predictor_ms);
    fprintf(f, "replay: %zu sequences, batch %d, %lld decode steps x %d layers; %lld incomplete "
               "rows skipped\n",
            rep->n_seqs, rep->batch, (long long)rep->n_tokens, rep->model->n_layers,
            (long long)rep->n_skipped);
    fprintf(f, "predictor: %s\n", rep->predictor_note);
    if (rep->n_what_if)
        fprintf(f, "WHAT-IF: every row replays guesses drawn from the trace's own future with "
                   "the recall R it names, for 1..%d layers ahead (seed %llu); a hint replaces "
                   "the predictor for its target. Not a predictor.\n",
                rep->what_if_ahead, (unsigned long long)rep->what_if_seed);
    if (any_evict_whatif(rep))
        fprintf(f, "WHAT-IF rows 'what-if evict N': " EVICT_NOTE ".\n");
    fputc('\n', f);
    fprintf(f, "%-10s %-11s %2s %9s %9s %6s %12s %6s %13s %6s %7s %7s %7s\n", "policy", "cache",
            "H", "TPOT ms", "stall ms", "hit %", "xfer/tok", "pf/tok", "GB/tok", "prec", "vs lru",
            "gap", "gap");
    fprintf(f, "%-10s %-11s %2s %9s %9s %6s %12s %6s %13s %6s %7s %7s %7s\n", "", "", "", "",
            "/token", "", "(wasted)", "", "(wasted)", "", "", "oracle", "bound");
    double bound = NAN;
    int any_hybrid = 0;
    for (size_t i = 0; i < rep->n_rows; i++) {
        const sim_row *w = &rep->rows[i];
        const ec_sim_result *r = &w->r;
        char c[32], h[8], xf[32], gb[32], prec[16], vs[16], gap[16], gapb[16];
        snprintf(h, sizeof h, ec_policy_kind_predicts(r->kind) ? "%d" : "-", r->horizon);
        snprintf(xf, sizeof xf, "%.2f (%.2f)", r->transfers_per_token,
                 r->wasted_transfers_per_token);
        snprintf(gb, sizeof gb, "%.3f (%.3f)", r->bytes_per_token / 1e9,
                 r->wasted_bytes_per_token / 1e9);
        if (isnan(r->prefetch_precision))
            snprintf(prec, sizeof prec, "-");
        else
            snprintf(prec, sizeof prec, "%.2f", r->prefetch_precision);
        snprintf(vs, sizeof vs, isnan(w->c.vs_lru) ? "-" : "%.3f", w->c.vs_lru);
        snprintf(gap, sizeof gap, isnan(w->c.gap_closed) ? "-" : "%.3f", w->c.gap_closed);
        snprintf(gapb, sizeof gapb, isnan(w->c.gap_closed_bound) ? "-" : "%.3f",
                 w->c.gap_closed_bound);
        double pf = r->n_tokens ? (double)r->stats.prefetches / (double)r->n_tokens : 0.0;
        if (r->kind == EC_POLICY_LRU)
            bound = r->lower_bound_ms_per_token;
        char host[48] = "", wi[64] = "";
        if (r->kind == EC_POLICY_HYBRID) {
            snprintf(host, sizeof host, "  host %.2f/tok", r->host_runs_per_token);
            any_hybrid = 1;
        }
        char e[16];
        if (w->what_if || w->what_if_evict)
            snprintf(wi, sizeof wi, "  what-if");
        if (w->what_if)
            snprintf(wi + strlen(wi), sizeof wi - strlen(wi), " R=%.2f", w->what_if_recall);
        if (w->what_if_evict)
            snprintf(wi + strlen(wi), sizeof wi - strlen(wi), " evict %s",
                     sim_evict_str(w->what_if_evict, e));
        fprintf(f, "%-10s %-11s %2s %9.3f %9.3f %6.1f %12s %6.2f %13s %6s %7s %7s %7s%s%s%s\n",
                ec_policy_kind_name(r->kind), cache_str(r, c, sizeof c), h, r->tpot_ms,
                r->stall_ms_per_token, 100 * r->hit_rate, xf, pf, gb, prec, vs, gap, gapb,
                w->c.beats_oracle ? "  < oracle" : "", host, wi);
    }
    for (size_t i = 0; rep->n_what_if && i < rep->n_rows; i++) {
        const ec_sim_result *r = &rep->rows[i].r;
        if (r->kind != EC_POLICY_LRU || rep->rows[i].what_if_recall != rep->what_if_recalls[0])
            continue;
        char c[32];
        double be = sim_break_even(rep, r->cache_per_layer, r->cache_global), without;
        double pays = sim_guesses_pay_from(rep, r->cache_per_layer, r->cache_global, &without);
        if (isnan(be))
            fprintf(f, "\nbreak-even recall at cache %s: none (no tested recall makes predict, "
                       "gated or hybrid faster than lru)",
                    cache_str(r, c, sizeof c));
        else
            fprintf(f, "\nbreak-even recall at cache %s: %.2f (the lowest tested recall at which "
                       "predict, gated or hybrid is faster than lru)",
                    cache_str(r, c, sizeof c), be);
        if (isnan(without))
            ; /* no predicting policy ran */
        else if (isnan(pays))
            fprintf(f, "\nguesses pay from: none tested (without guesses the best of predict, "
                       "gated and hybrid takes %.3f ms)",
                    without);
        else
            fprintf(f, "\nguesses pay from: R = %.2f (the lowest tested recall at which predict, "
                       "gated or hybrid is faster than the best of them without guesses, %.3f ms)",
                    pays, without);
    }
    if (rep->n_what_if)
        fputc('\n', f);
    fprintf(f, "\nTPOT and stall per decode step of the batch; n = %lld steps. hit %% = experts "
               "resident or already loading when the router asked;\npf/tok = prefetches started "
               "per token. gap closed = (lru - policy) / (lru - reference) on TPOT at the same "
               "cache size,\nagainst the oracle (Belady + greedy perfect prefetch: a reference, "
               "not a bound) and against the analytic lower bound\nmax(compute, Belady loads x "
               "transfer)",
            (long long)rep->n_tokens);
    if (!isnan(bound))
        fprintf(f, " = %.3f ms/token at lru's cache size", bound);
    fprintf(f, ".\n");
    if (any_hybrid)
        fprintf(f, "hybrid runs misses on the host instead of copying them (host N/tok: expert "
                   "uses run there per token); the oracle\nand the analytic bound describe "
                   "policies that only copy.\n");
}

static ec_status write_error(ec_error *err)
{
    if (err) {
        err->status = EC_ERR_IO;
        snprintf(err->message, sizeof err->message, "write error");
    }
    return EC_ERR_IO;
}

static ec_status read_error(ec_error *err, const char *path, const char *what)
{
    if (err) {
        err->status = EC_ERR_IO;
        snprintf(err->message, sizeof err->message, "%s: %s", path, what);
    }
    return EC_ERR_IO;
}

static void jnum(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

/* , "name": v (null when not finite) */
static void jfield(FILE *f, const char *name, double v)
{
    fprintf(f, ", \"%s\": ", name);
    jnum(f, v);
}

/* , "name": [v0, v1, ...] with non-finite values as null */
static void jarray(FILE *f, const char *name, const double *v, int32_t n)
{
    fprintf(f, ", \"%s\": [", name);
    for (int32_t i = 0; i < n; i++) {
        if (i)
            fputs(", ", f);
        jnum(f, v[i]);
    }
    fputc(']', f);
}

ec_status sim_write_json(FILE *f, void *ctx, ec_error *err)
{
    const sim_report *rep = ctx;
    const ec_sim_timing *tm = rep->timing;
    fputs("{\"model\": ", f);
    ec_json_write_string(f, rep->model->name);
    fputs(", \"dtype\": ", f);
    ec_json_write_string(f, rep->model->dtype);
    fputs(", \"hardware\": ", f);
    ec_json_write_string(f, rep->hw->name);
    fputs(", \"predictor\": ", f);
    ec_json_write_string(f, rep->predictor_note);
    fprintf(f, ", \"batch\": %d, \"decode_steps\": %lld, \"layer_steps\": %lld, "
               "\"skipped_rows\": %lld",
            rep->batch, (long long)rep->n_tokens, (long long)rep->n_steps,
            (long long)rep->n_skipped);
    fputs(", \"timing\": {\"transfer_ms\": ", f);
    jnum(f, tm->transfer_ms);
    fprintf(f, ", \"engines\": %d", tm->engines);
    jfield(f, "compute_fixed_ms", tm->compute_fixed_ms);
    jfield(f, "compute_per_expert_ms", tm->compute_per_expert_ms);
    jfield(f, "router_ms", tm->router_ms);
    jfield(f, "predictor_ms", tm->predictor_ms);
    jfield(f, "expert_bytes", tm->expert_bytes);
    fprintf(f, ", \"host_lanes\": %d", tm->host_lanes);
    jfield(f, "host_ms", ec_sim_host_ms(tm, 1));
    fputs("}, \"host\": ", f);
    if (rep->hw->has_host) {
        fprintf(f, "{\"cores\": %d", rep->hw->host_cores);
        jfield(f, "read_gbs", rep->hw->host_read_gbs);
        jfield(f, "act_d2h_us", rep->hw->host_act_d2h_us);
        jfield(f, "act_h2d_us", rep->hw->host_act_h2d_us);
        fputs("}", f);
    } else
        fputs("null", f);
    fputs(", \"gap_closed_uses\": \"oracle\"", f);
    if (any_evict_whatif(rep))
        fputs(", \"what_if_evict\": {\"note\": \"" EVICT_NOTE "\"}", f);
    if (rep->n_what_if) {
        fputs(", \"what_if\": {\"note\": \"guesses drawn from the trace's own future with "
              "recall R (each used expert kept with probability R, the others replaced by "
              "experts not used): a what-if, not a predictor\", \"recalls\": [",
              f);
        for (int i = 0; i < rep->n_what_if; i++) {
            if (i)
                fputs(", ", f);
            jnum(f, rep->what_if_recalls[i]);
        }
        fprintf(f, "], \"ahead\": %d, \"seed\": %llu}, \"break_even_recall\": [",
                rep->what_if_ahead, (unsigned long long)rep->what_if_seed);
        int first = 1;
        for (size_t i = 0; i < rep->n_rows; i++) {
            const ec_sim_result *r = &rep->rows[i].r;
            if (r->kind != EC_POLICY_LRU || rep->rows[i].what_if_recall != rep->what_if_recalls[0])
                continue;
            fprintf(f, "%s{\"model\": ", first ? "" : ", ");
            ec_json_write_string(f, rep->model->name);
            fputs(", \"dtype\": ", f);
            ec_json_write_string(f, rep->model->dtype);
            fputs(", \"hardware\": ", f);
            ec_json_write_string(f, rep->hw->name);
            fprintf(f, ", \"cache_experts\": %d, \"cache_global\": %d, \"recall\": ",
                    r->cache_per_layer, r->cache_global);
            jnum(f, sim_break_even(rep, r->cache_per_layer, r->cache_global));
            double without, pays = sim_guesses_pay_from(rep, r->cache_per_layer,
                                                        r->cache_global, &without);
            jfield(f, "guesses_pay_from_recall", pays);
            jfield(f, "best_without_guesses_tpot_ms", without);
            fputs("}", f);
            first = 0;
        }
        fputs("]", f);
    }
    fputs(", \"results\": [", f);
    for (size_t i = 0; i < rep->n_rows; i++) {
        const sim_row *w = &rep->rows[i];
        const ec_sim_result *r = &w->r;
        const ec_cache_stats *s = &r->stats;
        fprintf(f, "%s\n  {\"policy\": \"%s\", \"cache_experts\": %d, \"cache_global\": %d, "
                   "\"cache_sized\": %s, \"horizon\": %d",
                i ? "," : "", ec_policy_kind_name(r->kind), r->cache_per_layer, r->cache_global,
                r->cache_sized ? "true" : "false", r->horizon);
        jfield(f, "tpot_ms", r->tpot_ms);
        jfield(f, "stall_ms_per_token", r->stall_ms_per_token);
        jfield(f, "compute_ms_per_token", r->compute_ms_per_token);
        jfield(f, "hit_rate", r->hit_rate);
        jfield(f, "resident_rate", r->resident_rate);
        jfield(f, "transfers_per_token", r->transfers_per_token);
        jfield(f, "wasted_transfers_per_token", r->wasted_transfers_per_token);
        jfield(f, "bytes_per_token", r->bytes_per_token);
        jfield(f, "useful_bytes_per_token", r->bytes_per_token - r->wasted_bytes_per_token);
        jfield(f, "wasted_bytes_per_token", r->wasted_bytes_per_token);
        jfield(f, "prefetch_precision", r->prefetch_precision);
        jfield(f, "host_runs_per_token", r->host_runs_per_token);
        jfield(f, "host_busy_ms_per_token", r->host_busy_ms_per_token);
        jfield(f, "vs_lru", w->c.vs_lru);
        jfield(f, "gap_closed", w->c.gap_closed);
        jfield(f, "gap_closed_bound", w->c.gap_closed_bound);
        jfield(f, "lower_bound_ms_per_token", r->lower_bound_ms_per_token);
        fprintf(f, ", \"beats_oracle\": %s", w->c.beats_oracle ? "true" : "false");
        if (w->what_if || w->what_if_evict)
            fputs(", \"label\": \"what-if\"", f);
        if (w->what_if)
            jfield(f, "what_if_recall", w->what_if_recall);
        if (w->what_if_evict) {
            char e[16];
            if (w->what_if_evict == EC_WHATIF_EVICT_ALL)
                fputs(", \"what_if_evict_tokens\": \"all\"", f);
            else
                fprintf(f, ", \"what_if_evict_tokens\": %s",
                        sim_evict_str(w->what_if_evict, e));
        }
        fprintf(f, ", \"counts\": {\"uses\": %lld, \"hits\": %lld, \"inflight_hits\": %lld, "
                   "\"misses\": %lld, \"loads\": %lld, \"prefetches\": %lld, "
                   "\"prefetch_hits\": %lld, \"wasted\": %lld, \"cancelled\": %lld, "
                   "\"evictions\": %lld, \"host_runs\": %lld, \"copy_behinds\": %lld}",
                (long long)s->acquires, (long long)s->hits, (long long)s->inflight_hits,
                (long long)s->misses, (long long)s->loads, (long long)s->prefetches,
                (long long)s->prefetch_hits, (long long)s->wasted, (long long)s->cancelled,
                (long long)s->evictions, (long long)s->host_runs,
                (long long)s->copy_behinds);
        jarray(f, "stall_per_layer_ms", r->stall_per_layer, r->n_layers);
        jarray(f, "bound_per_layer_ms", r->bound_per_layer, r->n_layers);
        fputs("}", f);
    }
    fputs("\n]}\n", f);
    if (ferror(f))
        return write_error(err);
    return EC_OK;
}

const char *sim_evict_str(int32_t tokens, char *buf)
{
    if (tokens == EC_WHATIF_EVICT_ALL)
        return "all";
    snprintf(buf, 16, "%d", (int)tokens);
    return buf;
}

ec_status sim_write_csv(FILE *f, void *ctx, ec_error *err)
{
    const sim_report *rep = ctx;
    fputs("model,dtype,hardware,policy,cache_experts,cache_global,horizon,tpot_ms,"
          "stall_ms_per_token,hit_rate,bytes_per_token,wasted_bytes_per_token,"
          "prefetch_precision,vs_lru,gap_closed,gap_closed_bound,lower_bound_ms_per_token,"
          "transfers_per_token,prefetches_per_token,what_if_recall,what_if_evict_tokens\n",
          f);
    for (size_t i = 0; i < rep->n_rows; i++) {
        const sim_row *w = &rep->rows[i];
        const ec_sim_result *r = &w->r;
        fprintf(f, "%s,%s,%s,%s,%d,%d,%d", rep->model->name, rep->model->dtype, rep->hw->name,
                ec_policy_kind_name(r->kind), r->cache_per_layer, r->cache_global,
                ec_policy_kind_predicts(r->kind) ? r->horizon : 0);
        double v[] = {r->tpot_ms, r->stall_ms_per_token, r->hit_rate, r->bytes_per_token,
                      r->wasted_bytes_per_token, r->prefetch_precision, w->c.vs_lru, w->c.gap_closed,
                      w->c.gap_closed_bound, r->lower_bound_ms_per_token, r->transfers_per_token,
                      r->n_tokens ? (double)r->stats.prefetches / (double)r->n_tokens : 0.0};
        for (size_t j = 0; j < sizeof v / sizeof v[0]; j++) {
            if (isfinite(v[j]))
                fprintf(f, ",%.10g", v[j]);
            else
                fputs(",", f);
        }
        if (w->what_if)
            fprintf(f, ",%.10g", w->what_if_recall);
        else
            fputc(',', f);
        char e[16];
        fprintf(f, ",%s\n", w->what_if_evict ? sim_evict_str(w->what_if_evict, e) : "");
    }
    if (ferror(f))
        return write_error(err);
    return EC_OK;
}

/* Copies the file named by ctx into f. */
static ec_status copy_file(FILE *f, void *ctx, ec_error *err)
{
    FILE *in = fopen(ctx, "rb");
    if (!in)
        return read_error(err, ctx, strerror(errno));
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, n, f);
    int bad = ferror(in);
    fclose(in);
    if (bad)
        return read_error(err, ctx, "read error");
    return ferror(f) ? write_error(err) : EC_OK;
}

static int have_gnuplot(void)
{
    return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

int sim_plot(const sim_report *rep, const char *png)
{
    if (!have_gnuplot()) {
        cli_warn("gnuplot is not installed: plot %s skipped", png);
        return -1;
    }
    char dir[] = "/tmp/expertcast-plot-XXXXXX";
    if (!mkdtemp(dir)) {
        cli_warn("cannot create a temporary directory: plot skipped");
        return -1;
    }
    /* gnuplot draws into the private directory; the picture is then
     * copied to PNG as any output is (ec_outfile: '-', links, devices). */
    char data[256], script[256], tmp_png[256], cmd[600];
    snprintf(data, sizeof data, "%s/data.txt", dir);
    snprintf(script, sizeof script, "%s/plot.gp", dir);
    snprintf(tmp_png, sizeof tmp_png, "%s/plot.png", dir);
    /* one block per series (policy, horizon; what-if: and cache size), in
     * order of first appearance */
    int whatif = rep->n_what_if > 0;
    FILE *d = fopen(data, "w"), *s = fopen(script, "w");
    int ok = d && s;
    if (ok) {
        fprintf(s, "set terminal pngcairo size 1000,650 noenhanced\nset output '%s'\n", tmp_png);
        if (whatif) {
            fprintf(s, "set title 'what-if: %s %s on %s, TPOT vs recall of drawn guesses "
                       "(n = %lld steps, seed %llu)'\n",
                    rep->model->name, rep->model->dtype, rep->hw->name,
                    (long long)rep->n_tokens, (unsigned long long)rep->what_if_seed);
            fprintf(s, "set xlabel 'what-if recall of the guesses (1..%d layers ahead)'\n",
                    rep->what_if_ahead);
        } else {
            fprintf(s, "set title '%s %s on %s: TPOT vs cache size (n = %lld decode steps)'\n",
                    rep->model->name, rep->model->dtype, rep->hw->name,
                    (long long)rep->n_tokens);
            fprintf(s, "set xlabel 'cache (experts per layer, or global slots)'\n");
        }
        fprintf(s, "set ylabel 'TPOT (ms)'\nset key outside right\nset grid\nplot ");
        int series = 0;
        uint8_t *done = calloc(rep->n_rows, 1);
        for (size_t i = 0; done && i < rep->n_rows; i++) {
            if (done[i])
                continue;
            const ec_sim_result *a = &rep->rows[i].r;
            int hz = ec_policy_kind_predicts(a->kind) ? a->horizon : 0;
            int32_t cache = a->cache_per_layer > 0 ? a->cache_per_layer : a->cache_global;
            int32_t ev = rep->rows[i].what_if_evict;
            char label[96], cl[48] = "", e[16];
            if (whatif)
                snprintf(cl, sizeof cl, " cache %d", cache);
            if (ev)
                snprintf(cl + strlen(cl), sizeof cl - strlen(cl), " evict %s",
                         sim_evict_str(ev, e));
            if (hz)
                snprintf(label, sizeof label, "%s h=%d%s", ec_policy_kind_name(a->kind), hz, cl);
            else
                snprintf(label, sizeof label, "%s%s", ec_policy_kind_name(a->kind), cl);
            fprintf(d, "# %s\n", label);
            for (size_t j = i; j < rep->n_rows; j++) {
                const ec_sim_result *b = &rep->rows[j].r;
                int32_t bc = b->cache_per_layer > 0 ? b->cache_per_layer : b->cache_global;
                if (b->kind == a->kind && rep->rows[j].what_if_evict == ev &&
                    (ec_policy_kind_predicts(b->kind) ? b->horizon : 0) == hz &&
                    (!whatif || bc == cache)) {
                    done[j] = 1;
                    if (whatif)
                        fprintf(d, "%.4g %.10g\n", rep->rows[j].what_if_recall, b->tpot_ms);
                    else
                        fprintf(d, "%d %.10g\n", bc, b->tpot_ms);
                }
            }
            fprintf(d, "\n\n");
            fprintf(s, "%s'%s' index %d with linespoints title '%s'", series ? ", " : "", data,
                    series, label);
            series++;
        }
        free(done);
        fputc('\n', s);
    }
    if (d)
        fclose(d);
    if (s)
        fclose(s);
    int rc = -1;
    if (ok) {
        snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>/dev/null", script);
        if (system(cmd) == 0)
            rc = cli_write_file(png, copy_file, tmp_png) == CLI_OK ? 0 : -2;
        else
            cli_warn("gnuplot failed: plot %s not written", png);
        unlink(tmp_png);
    }
    unlink(data);
    unlink(script);
    rmdir(dir);
    return rc;
}
