/*
 * hint: the runtime's own guesses (ec_history_hint), e.g. the next layer's
 * router applied to the current hidden state. It learns nothing from
 * routing: where the history holds a guess for the target it returns it
 * (informed), elsewhere the layer prior of its fit (an abstention), or a
 * uniform distribution when it was never fitted.
 */
#include "predictor.h"

#include <string.h>

static int hint_predict(const ec_predictor *p, const ec_history *h, int32_t target,
                        int next_token, int32_t horizon, float *probs)
{
    (void)next_token;
    const float *g = ec_history_hint_get(h, horizon);
    if (g) {
        memcpy(probs, g, (size_t)ec_history_n_experts(h) * sizeof *probs);
        return 1;
    }
    ec_predictor_prior(p, target, probs);
    return 0;
}

const ec_predictor_vt ec_hint_vt = {
    .name = "hint",
    .predict = hint_predict,
};

int ec_predictor_predict_unfitted(const ec_predictor *p, const ec_history *h, int32_t horizon,
                                  float *probs)
{
    if (p->vt != &ec_hint_vt)
        return -1;
    int32_t E = ec_history_n_experts(h);
    const float *g = ec_history_hint_get(h, horizon);
    if (g) {
        memcpy(probs, g, (size_t)E * sizeof *probs);
        return 1;
    }
    int next;
    if (ec_history_target(h, horizon, &next) < 0)
        return -1;
    for (int32_t e = 0; e < E; e++)
        probs[e] = 1.0f / (float)E;
    return 0;
}
