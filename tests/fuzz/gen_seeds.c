/*
 * Writes a saved model of every registered predictor (fitted on a small
 * synthetic trace) into DIR, so that the predictor fuzz target starts from a
 * valid file of each, including predictors added after the committed seeds.
 * tests/fuzz/run.sh runs it into the working corpus before fuzzing.
 *
 * usage: fuzz_gen_seeds DIR
 */
#include "expertcast.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_gen_seeds DIR\n");
        return 2;
    }
    ec_synth_opts o;
    ec_synth_opts_default(&o);
    o.n_layers = 10; /* the seed's skip-8 rules need 9 layers */
    o.n_experts = 4;
    o.k = 2;
    o.n_seqs = 1;
    o.n_tokens = 3;
    ec_trace *t;
    ec_error err = {0};
    if (ec_synth_generate(&o, &t, &err)) {
        fprintf(stderr, "fuzz_gen_seeds: %s\n", err.message);
        return 1;
    }
    int status = 0;
    for (const char *const *name = ec_predictor_names(); *name; name++) {
        ec_predictor *p = NULL;
        char path[1024];
        snprintf(path, sizeof path, "%s/gen-%s.json", argv[1], *name);
        if (ec_predictor_create(*name, NULL, &p, &err) || ec_predictor_fit(p, t, NULL) ||
            ec_predictor_save(p, path, &err)) {
            fprintf(stderr, "fuzz_gen_seeds: %s: %s\n", *name,
                    err.message[0] ? err.message : ec_predictor_errmsg(p));
            status = 1;
        }
        ec_predictor_destroy(p);
    }
    ec_trace_destroy(t);
    return status;
}
