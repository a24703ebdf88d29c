/*
 * prior: the per-layer expert frequency of the training trace, whatever the
 * history. The baseline every other predictor must beat. Its whole model is
 * the common prior every predictor carries, so it needs no state.
 */
#include "predictor.h"

static int prior_predict(const ec_predictor *p, const ec_history *h, int32_t target,
                         int next_token, int32_t horizon, float *probs)
{
    (void)h;
    (void)next_token;
    (void)horizon;
    ec_predictor_prior(p, target, probs);
    return 1;
}

const ec_predictor_vt ec_prior_vt = {
    .name = "prior",
    .predict = prior_predict,
};
