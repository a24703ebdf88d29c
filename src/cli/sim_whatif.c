/* expertcast simulate --what-if-recall: replays guesses of a chosen recall
 * drawn from the trace's own future, and where they start to pay. */
#include "sim_report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int sim_whatif_rows(const sim_plan *base, const ec_trace *t, int32_t batch,
                    const double *recalls, int n_recalls, uint64_t seed,
                    const ec_predictor *loaded, const char *fit, sim_report *rep)
{
    int32_t ahead = 1;
    for (int i = 0; i < base->n_horizons; i++)
        ahead = base->horizons[i] > ahead ? base->horizons[i] : ahead;
    ahead = ahead < EC_MAX_GUESSES ? ahead : EC_MAX_GUESSES;
    rep->n_what_if = n_recalls;
    rep->what_if_recalls = recalls;
    rep->what_if_ahead = ahead;
    rep->what_if_seed = seed;
    for (int i = -1; i < n_recalls; i++) { /* -1: the trace itself, without guesses */
        ec_error err = {0};
        ec_trace *g = NULL;
        ec_sim *sim = NULL;
        sim_report part = {0};
        char note[512];
        int rc = CLI_OK;
        ec_status s = ec_trace_draw_guesses(t, i < 0 ? 0 : recalls[i], i < 0 ? 0 : ahead, seed,
                                            &g, &err);
        if (!s)
            s = ec_sim_create(g, batch, &sim, &err);
        if (!s && loaded)
            s = ec_sim_set_predictor(sim, loaded, &err);
        if (s)
            rc = cli_fail(s, &err);
        else if (!loaded)
            rc = sim_fit_heldout(sim, fit, batch, t->n_seqs, note, sizeof note);
        if (rc == CLI_OK) {
            sim_plan p = *base;
            p.sim = sim;
            rc = sim_run_rows(&p, &part);
        }
        sim_row *grown = NULL;
        if (rc == CLI_OK && i < 0) {
            rep->base_rows = part.rows;
            rep->n_base_rows = part.n_rows;
            part.rows = NULL;
            part.n_rows = 0;
        } else if (rc == CLI_OK) {
            grown = realloc(rep->rows, (rep->n_rows + part.n_rows) * sizeof *grown);
            if (!grown)
                rc = (cli_error("out of memory"), CLI_DATA);
        }
        if (rc == CLI_OK && i >= 0) {
            rep->rows = grown;
            for (size_t j = 0; j < part.n_rows; j++) {
                part.rows[j].what_if = 1;
                part.rows[j].what_if_recall = recalls[i];
                rep->rows[rep->n_rows++] = part.rows[j];
            }
            free(part.rows); /* the results moved into rep */
        } else
            sim_report_clear_rows(&part);
        ec_sim_destroy(sim);
        ec_trace_destroy(g);
        if (rc)
            return rc;
    }
    return CLI_OK;
}

static int same_cache(const ec_sim_result *r, int32_t per_layer, int32_t global)
{
    return r->cache_per_layer == per_layer && r->cache_global == global;
}

double sim_break_even(const sim_report *rep, int32_t cache_per_layer, int32_t cache_global)
{
    double best = NAN;
    for (int i = 0; i < rep->n_what_if; i++) {
        double R = rep->what_if_recalls[i], lru = NAN, fastest = INFINITY;
        for (size_t j = 0; j < rep->n_rows; j++) {
            const sim_row *w = &rep->rows[j];
            if (!w->what_if || w->what_if_recall != R || w->what_if_evict ||
                !same_cache(&w->r, cache_per_layer, cache_global))
                continue;
            if (w->r.kind == EC_POLICY_LRU)
                lru = w->r.tpot_ms;
            else if (ec_policy_kind_predicts(w->r.kind) && w->r.tpot_ms < fastest)
                fastest = w->r.tpot_ms;
        }
        if (fastest < lru && (isnan(best) || R < best))
            best = R;
    }
    return best;
}

/* The fastest guess-using policy among rows at this cache size (and, for
 * what-if rows, this recall), what-if eviction rows aside; INFINITY when
 * none. */
static double fastest(const sim_row *rows, size_t n, int32_t pl, int32_t gl, int what_if, double R)
{
    double best = INFINITY;
    for (size_t j = 0; j < n; j++) {
        const sim_row *w = &rows[j];
        if ((what_if && (!w->what_if || w->what_if_recall != R)) || w->what_if_evict ||
            !same_cache(&w->r, pl, gl) || !ec_policy_kind_predicts(w->r.kind))
            continue;
        best = w->r.tpot_ms < best ? w->r.tpot_ms : best;
    }
    return best;
}

double sim_guesses_pay_from(const sim_report *rep, int32_t cache_per_layer,
                            int32_t cache_global, double *without_ms)
{
    double base = fastest(rep->base_rows, rep->n_base_rows, cache_per_layer, cache_global, 0, 0);
    *without_ms = isinf(base) ? NAN : base;
    double from = NAN;
    for (int i = 0; i < rep->n_what_if; i++) {
        double R = rep->what_if_recalls[i];
        if (fastest(rep->rows, rep->n_rows, cache_per_layer, cache_global, 1, R) < base &&
            (isnan(from) || R < from))
            from = R;
    }
    return from;
}
