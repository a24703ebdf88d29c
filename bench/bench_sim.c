/*
 * bench_sim: how fast the simulator replays a trace through a policy, in
 * layer-steps per second (one step = one layer of one decode step: the
 * policy's observe, the modeled copy engine, acquire and release).
 *
 *   bench_sim [--quick]
 *
 * Prints one JSON object. Traces are synthetic (expertcast synth's
 * generator), so the numbers do not depend on ../shared:
 *   mixtral-shaped: 32 layers, 8 experts, top-2, 64 sequences x 512 tokens,
 *     6 slots per layer (1,048,576 layer-steps);
 *   deepseek-sized: 58 layers, 256 experts, top-8, 4 x 128 tokens,
 *     64 slots per layer.
 * lru and oracle use no predictor; predict and gated are measured twice,
 * with the layer `prior` (the cheapest predictor: the policy's own cost)
 * and with `temporal` (the default of `simulate`: what a user runs), each
 * fitted held out as `simulate` fits them (ec_sim_fit_heldout).
 * Each figure is the best of 3 runs (wall clock, CLOCK_MONOTONIC) of
 * ec_sim_run, which creates the cache and policy, replays every step and
 * fills the result. The analytic bound (a Belady pass) is computed once per
 * cache shape and memoised, so it is outside the best run. The machine is
 * shared: rerun to see the spread.
 */
#include "expertcast.h"
#include "expertcast/sim.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct shape {
    const char *name;
    int32_t L, E, k, seqs, tokens, cache;
} shape;

static int bench_shape(const shape *sh, int first, int reps)
{
    ec_synth_opts o;
    ec_synth_opts_default(&o);
    o.n_layers = sh->L;
    o.n_experts = sh->E;
    o.k = sh->k;
    o.n_seqs = sh->seqs;
    o.n_tokens = sh->tokens;
    o.gates = 0;
    ec_trace *t;
    ec_sim *s;
    ec_error err = {0};
    if (ec_synth_generate(&o, &t, &err) || ec_sim_create(t, 1, &s, &err)) {
        fprintf(stderr, "bench_sim: %s\n", err.message);
        return 1;
    }
    /* Mixtral int4 on an RTX 4090-like link: the values only steer the
     * policies, the replay cost barely depends on them */
    ec_sim_timing tm = {.transfer_ms = 3.695, .engines = 1, .compute_fixed_ms = 0.103,
                        .compute_per_expert_ms = 0.087, .router_ms = 0.015,
                        .predictor_ms = 0.005, .expert_bytes = 88080384};
    printf("%s\n  \"%s\": {\"layers\": %d, \"experts\": %d, \"k\": %d, \"layer_steps\": %lld, "
           "\"cache_per_layer\": %d, \"horizon\": 2",
           first ? "" : ",", sh->name, sh->L, sh->E, sh->k, (long long)ec_sim_n_steps(s),
           sh->cache);
    static const struct {
        ec_policy_kind kind;
        const char *predictor; /* NULL: the policy uses none */
    } runs[] = {{EC_POLICY_LRU, NULL},          {EC_POLICY_ORACLE, NULL},
                {EC_POLICY_GATED, "prior"},     {EC_POLICY_PREDICT, "prior"},
                {EC_POLICY_GATED, "temporal"},  {EC_POLICY_PREDICT, "temporal"}};
    const char *fitted = NULL;
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        if (runs[i].predictor && (!fitted || strcmp(fitted, runs[i].predictor) != 0)) {
            if (ec_sim_fit_heldout(s, runs[i].predictor, NULL, &err)) {
                fprintf(stderr, "bench_sim: %s\n", err.message);
                return 1;
            }
            fitted = runs[i].predictor;
        }
        ec_sim_config cfg = {.kind = runs[i].kind, .cache_per_layer = sh->cache, .horizon = 2,
                             .timing = tm};
        double best = 1e300, tpot = 0;
        for (int r = 0; r < reps; r++) {
            ec_sim_result res;
            double t0 = now_s();
            if (ec_sim_run(s, &cfg, &res, &err)) {
                fprintf(stderr, "bench_sim: %s\n", err.message);
                return 1;
            }
            double dt = now_s() - t0;
            if (dt < best)
                best = dt;
            tpot = res.tpot_ms;
            ec_sim_result_clear(&res);
        }
        char name[64];
        snprintf(name, sizeof name, "%s%s%s", ec_policy_kind_name(runs[i].kind),
                 runs[i].predictor ? "_" : "", runs[i].predictor ? runs[i].predictor : "");
        printf(", \"%s_steps_per_s\": %.0f, \"%s_tpot_ms\": %.4f", name,
               (double)ec_sim_n_steps(s) / best, name, tpot);
    }
    printf("}");
    ec_sim_destroy(s);
    ec_trace_destroy(t);
    return 0;
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    shape shapes[] = {
        {"mixtral_shaped", 32, 8, 2, quick ? 8 : 64, quick ? 128 : 512, 6},
        {"deepseek_sized", 58, 256, 8, 4, quick ? 32 : 128, 64},
    };
    printf("{\"bench\": \"sim\", \"timer\": \"CLOCK_MONOTONIC, best of 3\", \"predictors\": "
           "\"POLICY_PREDICTOR: gated and predict with the layer prior and with temporal, each "
           "fitted held out (ec_sim_fit_heldout: the Mixtral shape's 64 sequences in 8 folds, the "
           "DeepSeek shape's 4 one each); lru and oracle use none\", "
           "\"shapes\": {");
    for (size_t i = 0; i < 2; i++)
        if (bench_shape(&shapes[i], i == 0, 3))
            return 1;
    printf("\n}}\n");
    return 0;
}
