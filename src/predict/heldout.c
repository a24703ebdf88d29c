/* A predictor fitted on every sequence but the held-out ones. */
#include "predictor.h"

ec_status ec_predictor_create_heldout(const char *name, const ec_predictor_opts *opts,
                                      const ec_trace *t, const uint8_t *held_out,
                                      ec_predictor **out, int *in_sample, ec_error *err)
{
    if (!out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_predictor_create_heldout: NULL out");
    *out = NULL;
    if (in_sample)
        *in_sample = 0;
    if (!t)
        return ec_error_set(err, EC_ERR_INVALID, "ec_predictor_create_heldout: NULL trace");
    ec_predictor *p = NULL;
    ec_status s = ec_predictor_create(name, opts, &p, err);
    if (s)
        return s;
    uint8_t *mask = NULL;
    size_t others = t->n_seqs;
    if (held_out) {
        if (!(mask = ec_calloc(t->n_seqs ? t->n_seqs : 1, 1))) {
            ec_predictor_destroy(p);
            return ec_error_set(err, EC_ERR_NOMEM, "predictor %s: out of memory", name);
        }
        others = 0;
        for (size_t i = 0; i < t->n_seqs; i++)
            others += mask[i] = !held_out[i];
    }
    if (in_sample)
        *in_sample = others == 0;
    s = ec_predictor_fit(p, t, others ? mask : NULL);
    ec_free(mask);
    if (s) {
        ec_error_set(err, s, "predictor %s: %s", name, ec_predictor_errmsg(p));
        ec_predictor_destroy(p);
        return s;
    }
    *out = p;
    return EC_OK;
}
