/* expertcast simulate and demo: the simulator runs per cache size and
 * policy, measured against lru and the oracle at the same cache size. */
#include "sim_report.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct runner {
    ec_sim *sim;
    const ec_sim_timing *tm;
    int global, sized;
    int32_t prefetch_k;
    int done, total;
    int progress;
    int tty;      /* stderr is a terminal */
} runner;

/* Counts n finished runs on stderr: a terminal gets one line redrawn, a log
 * a line per tenth. */
static void count_runs(runner *rn, int n)
{
    if (!rn->progress)
        return;
    for (int i = 0; i < n; i++) {
        rn->done++;
        if (rn->tty)
            fprintf(stderr, "\rsimulate: %d/%d runs%s", rn->done, rn->total,
                    rn->done == rn->total ? "\n" : "");
        else if (rn->done * 10 / rn->total != (rn->done - 1) * 10 / rn->total)
            fprintf(stderr, "simulate: %d/%d runs\n", rn->done, rn->total);
    }
}

static int run_one(runner *rn, ec_policy_kind k, int32_t cache, int32_t horizon,
                   ec_sim_result *out)
{
    ec_sim_config cfg = {.kind = k,
                         .cache_per_layer = rn->global ? 0 : cache,
                         .cache_global = rn->global ? cache : 0,
                         .cache_sized = rn->sized,
                         .horizon = horizon,
                         .prefetch_k = rn->prefetch_k,
                         .timing = *rn->tm};
    ec_error err = {0};
    ec_status s = ec_sim_run(rn->sim, &cfg, out, &err);
    count_runs(rn, 1);
    if (s) {
        if (rn->progress && rn->tty)
            fputc('\n', stderr);
        return cli_fail(s, &err);
    }
    return CLI_OK;
}

int sim_fit_heldout(ec_sim *sim, const char *name, int32_t batch, size_t n_seqs, char *note,
                    size_t size)
{
    ec_error err = {0};
    int tty = isatty(STDERR_FILENO);
    int32_t fits = ec_sim_n_groups(sim);
    if (fits > EC_SIM_MAX_FOLDS)
        fits = EC_SIM_MAX_FOLDS;
    if (tty)
        fprintf(stderr, "simulate: fitting '%s' held out (%d fits)...", name, (int)fits);
    ec_status s = ec_sim_fit_heldout(sim, name, NULL, &err);
    if (tty)
        fputs(s ? "\n" : " done\n", stderr);
    if (s)
        return cli_fail(s, &err);
    int32_t groups = ec_sim_n_groups(sim);
    if (groups <= EC_SIM_MAX_FOLDS)
        snprintf(note, size,
                 "'%s' fitted for each batch of %d sequence(s) on the other %zu sequence(s) "
                 "only (held out, no leakage)",
                 name, batch, n_seqs > (size_t)batch ? n_seqs - (size_t)batch : 0);
    else
        snprintf(note, size,
                 "'%s' fitted for each of %d folds of the %d batches of %d sequence(s) on the "
                 "sequences outside the fold only (held out, no leakage)",
                 name, EC_SIM_MAX_FOLDS, groups, batch);
    return CLI_OK;
}

int sim_run_rows(const sim_plan *p, sim_report *rep)
{
    int rc;
    size_t per_cache = SIM_N_POLICIES + 2 * (size_t)p->n_horizons * (1 + (size_t)p->n_evicts);
    size_t max_rows = (size_t)p->n_caches * per_cache;
    rep->rows = calloc(max_rows, sizeof *rep->rows);
    if (!rep->rows) {
        cli_error("out of memory");
        return CLI_DATA;
    }
    runner rn = {.sim = p->sim, .tm = p->tm, .global = p->global, .sized = p->sized,
               .prefetch_k = p->prefetch_k};
    for (int k = 0; k < SIM_N_POLICIES; k++)
        rn.total += (k == EC_POLICY_LRU || k == EC_POLICY_ORACLE || p->want[k])
                        ? (ec_policy_kind_predicts((ec_policy_kind)k) ? p->n_horizons : 1) * p->n_caches
                        : 0;
    /* the what-if rows: gated and hybrid once more per window */
    rn.total += (p->want[EC_POLICY_GATED] + p->want[EC_POLICY_HYBRID]) * p->n_evicts *
                p->n_horizons * p->n_caches;
    rn.progress = p->progress && rn.total > 1;
    rn.tty = isatty(STDERR_FILENO);
    for (int ci = 0; ci < p->n_caches; ci++) {
        ec_sim_baselines base;
        ec_sim_config bc = {.cache_per_layer = p->global ? 0 : p->caches[ci],
                            .cache_global = p->global ? p->caches[ci] : 0,
                            .cache_sized = p->sized, /* the references at the same shape */
                            .horizon = p->horizons[0],
                            .prefetch_k = p->prefetch_k,
                            .timing = *p->tm};
        ec_error err = {0};
        ec_status s = ec_sim_run_baselines(p->sim, &bc, &base, &err);
        count_runs(&rn, 2);
        if (s) {
            if (rn.progress && rn.tty)
                fputc('\n', stderr);
            return cli_fail(s, &err);
        }
        size_t first = rep->n_rows;
        for (int k = 0; k < SIM_N_POLICIES; k++) {
            if (!p->want[k])
                continue;
            int nh = ec_policy_kind_predicts((ec_policy_kind)k) ? p->n_horizons : 1;
            for (int hi = 0; hi < nh; hi++) {
                sim_row *w = &rep->rows[rep->n_rows];
                if (k == EC_POLICY_LRU || k == EC_POLICY_ORACLE)
                    w->r.kind = (ec_policy_kind)k; /* the baseline's result, moved below */
                else if ((rc = run_one(&rn, (ec_policy_kind)k, p->caches[ci], p->horizons[hi],
                                       &w->r))) {
                    ec_sim_baselines_clear(&base);
                    return rc;
                }
                rep->n_rows++;
                if (k != EC_POLICY_GATED && k != EC_POLICY_HYBRID)
                    continue;
                for (int ei = 0; ei < p->n_evicts; ei++) { /* the what-if rows */
                    w = &rep->rows[rep->n_rows];
                    ec_sim_set_whatif_evict(p->sim, p->evicts[ei], NULL);
                    rc = run_one(&rn, (ec_policy_kind)k, p->caches[ci], p->horizons[hi], &w->r);
                    ec_sim_set_whatif_evict(p->sim, 0, NULL);
                    if (rc) {
                        ec_sim_baselines_clear(&base);
                        return rc;
                    }
                    w->what_if_evict = p->evicts[ei];
                    rep->n_rows++;
                }
            }
        }
        for (size_t i = first; i < rep->n_rows; i++) {
            sim_row *w = &rep->rows[i];
            ec_sim_result *own = w->r.kind == EC_POLICY_LRU      ? &base.lru
                                 : w->r.kind == EC_POLICY_ORACLE ? &base.oracle
                                                                 : NULL;
            ec_sim_compare(own ? own : &w->r, &base, &w->c);
        }
        for (size_t i = first; i < rep->n_rows; i++) {
            sim_row *w = &rep->rows[i];
            if (w->r.kind == EC_POLICY_LRU)
                w->r = base.lru, base.lru = (ec_sim_result){0};
            else if (w->r.kind == EC_POLICY_ORACLE)
                w->r = base.oracle, base.oracle = (ec_sim_result){0};
        }
        ec_sim_baselines_clear(&base);
    }
    return CLI_OK;
}

void sim_report_clear_rows(sim_report *rep)
{
    for (size_t i = 0; i < rep->n_rows; i++)
        ec_sim_result_clear(&rep->rows[i].r);
    free(rep->rows);
    rep->rows = NULL;
    rep->n_rows = 0;
    for (size_t i = 0; i < rep->n_base_rows; i++)
        ec_sim_result_clear(&rep->base_rows[i].r);
    free(rep->base_rows);
    rep->base_rows = NULL;
    rep->n_base_rows = 0;
}
