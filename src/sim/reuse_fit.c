/*
 * The reuse models gated evicts by: one per fold of batch groups (the
 * folds ec_sim_fit_heldout fits its predictors on), each fitted on the
 * sequences outside its fold with the predictor that fold uses (no
 * leakage), and borrowed by the fold's groups. At most EC_SIM_MAX_FOLDS
 * fits, so the cost grows linearly with the trace. Fitted when a run first
 * needs them, again when the fold's predictor changed.
 */
#include "internal.h"

void sim_reuse_free(ec_sim *s)
{
    for (int32_t f = 0; f < EC_SIM_MAX_FOLDS; f++) {
        ec_reuse_model_destroy(s->reuse_fold[f]);
        s->reuse_fold[f] = NULL;
        s->reuse_for[f] = NULL;
    }
    ec_free(s->reuse);
    s->reuse = NULL;
}

void sim_reuse_stale(ec_sim *s)
{
    for (int32_t f = 0; f < EC_SIM_MAX_FOLDS; f++)
        s->reuse_for[f] = NULL;
}

ec_status sim_reuse_models(ec_sim *s, ec_error *err)
{
    if (s->n_groups < 2)
        return EC_OK; /* nothing to fit on: the stream alone calibrates */
    if (!s->reuse && !(s->reuse = ec_calloc((size_t)s->n_groups, sizeof *s->reuse)))
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    uint8_t *mask = NULL;
    ec_status st = EC_OK;
    for (int32_t f = 0; f < sim_n_folds(s) && st == EC_OK; f++) {
        int32_t g0, g1;
        sim_fold_groups(s, f, &g0, &g1);
        const ec_predictor *pred = s->pred[g0];
        if (!(s->reuse_fold[f] && s->reuse_for[f] == pred)) {
            if (!mask && !(mask = ec_malloc(s->t->n_seqs))) {
                st = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
                break;
            }
            for (size_t q = 0; q < s->t->n_seqs; q++) {
                int32_t g = (int32_t)(q / (size_t)s->B);
                mask[q] = g < g0 || g >= g1;
            }
            if (!s->reuse_fold[f] &&
                (st = ec_reuse_model_create(s->L, s->E, s->t->k, &s->reuse_fold[f]))) {
                ec_error_set(err, st, "simulate: cannot create a reuse model");
                break;
            }
            if ((st = ec_reuse_model_fit(s->reuse_fold[f], s->t, mask, pred, err)))
                break;
            s->reuse_for[f] = pred;
        }
        for (int32_t g = g0; g < g1; g++)
            s->reuse[g] = s->reuse_fold[f];
    }
    if (st)
        sim_reuse_stale(s); /* fit again next time */
    ec_free(mask);
    return st;
}
