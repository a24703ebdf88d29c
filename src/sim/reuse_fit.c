/*
 * The reuse models gated evicts by, one per batch group, each fitted on
 * the sequences outside the group with the predictor that group uses (no
 * leakage). Fitted when a run first needs them, again when the group's
 * predictor changed.
 */
#include "internal.h"

void sim_reuse_free(ec_sim *s)
{
    if (s->reuse)
        for (int32_t g = 0; g < s->n_groups; g++)
            ec_reuse_model_destroy(s->reuse[g]);
    ec_free(s->reuse);
    ec_free(s->reuse_for);
    s->reuse = NULL;
    s->reuse_for = NULL;
}

ec_status sim_reuse_models(ec_sim *s, ec_error *err)
{
    if (s->n_groups < 2)
        return EC_OK; /* nothing to fit on: the stream alone calibrates */
    if (!s->reuse) {
        s->reuse = ec_calloc((size_t)s->n_groups, sizeof *s->reuse);
        s->reuse_for = ec_calloc((size_t)s->n_groups, sizeof *s->reuse_for);
        if (!s->reuse || !s->reuse_for) {
            sim_reuse_free(s);
            return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
        }
    }
    uint8_t *mask = NULL;
    ec_status st = EC_OK;
    for (int32_t g = 0; g < s->n_groups && st == EC_OK; g++) {
        if (s->reuse[g] && s->reuse_for[g] == s->pred[g])
            continue;
        if (!mask && !(mask = ec_malloc(s->t->n_seqs))) {
            st = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
            break;
        }
        for (size_t q = 0; q < s->t->n_seqs; q++)
            mask[q] = (int32_t)(q / (size_t)s->B) != g;
        if (!s->reuse[g] &&
            (st = ec_reuse_model_create(s->L, s->E, s->t->k, &s->reuse[g]))) {
            ec_error_set(err, st, "simulate: cannot create a reuse model");
            break;
        }
        if ((st = ec_reuse_model_fit(s->reuse[g], s->t, mask, s->pred[g], err)))
            break;
        s->reuse_for[g] = s->pred[g];
    }
    if (st && s->reuse)
        for (int32_t g = 0; g < s->n_groups; g++)
            s->reuse_for[g] = NULL; /* fit again next time */
    ec_free(mask);
    return st;
}
