/*
 * A policy's result against lru, the oracle and the analytic bound at the
 * same cache size: the figures every table of the simulator prints, in one
 * place so that the CLI, a runtime and the Python package agree.
 */
#include "expertcast/sim.h"

#include <math.h>
#include <string.h>

ec_status ec_sim_run_baselines(ec_sim *s, const ec_sim_config *cfg, ec_sim_baselines *out,
                               ec_error *err)
{
    memset(out, 0, sizeof *out);
    ec_sim_config c = *cfg;
    c.kind = EC_POLICY_LRU;
    c.horizon = 1;
    ec_status st = ec_sim_run(s, &c, &out->lru, err);
    if (st)
        return st;
    c.kind = EC_POLICY_ORACLE;
    c.horizon = cfg->horizon;
    if ((st = ec_sim_run(s, &c, &out->oracle, err)))
        ec_sim_baselines_clear(out);
    return st;
}

void ec_sim_baselines_clear(ec_sim_baselines *b)
{
    if (!b)
        return;
    ec_sim_result_clear(&b->lru);
    ec_sim_result_clear(&b->oracle);
    memset(b, 0, sizeof *b);
}

void ec_sim_compare(const ec_sim_result *r, const ec_sim_baselines *b, ec_sim_comparison *out)
{
    double t = r->tpot_ms, L = b->lru.tpot_ms, O = b->oracle.tpot_ms,
           B = r->lower_bound_ms_per_token;
    out->vs_lru = L > 0 ? t / L : NAN;
    out->saved_vs_lru_ms = L - t;
    out->vs_oracle_ms = t - O;
    out->vs_bound_ms = t - B;
    out->gap_closed = L > O ? (L - t) / (L - O) : NAN;
    out->gap_closed_bound = L > B ? (L - t) / (L - B) : NAN;
    out->beats_oracle = r->kind != EC_POLICY_RESIDENT && t < O;
}
