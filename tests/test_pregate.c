/*
 * Pre-gating: the host GEMV + softmax against a naive reference, top-k, and
 * the stream path on every backend (cuda skipped with a message without a
 * device) against the host reference, read from pinned host memory after
 * an event without any copy.
 */
#include "testutil.h"

#include "../src/core/rng.h"

#include <math.h>
#include <string.h>

enum { E = 24, D = 200 };

/* Random w (E x D) and x (D) in [-1, 1), as float and as fp16. */
static void fill(float *w, float *x, uint16_t *wh, uint16_t *xh, uint64_t seed)
{
    ec_rng r;
    ec_rng_seed(&r, seed);
    for (int i = 0; i < E * D; i++) {
        w[i] = (float)(2 * ec_rng_uniform(&r) - 1);
        wh[i] = ec_half_from_float(w[i]);
    }
    for (int j = 0; j < D; j++) {
        x[j] = (float)(2 * ec_rng_uniform(&r) - 1);
        xh[j] = ec_half_from_float(x[j]);
    }
}

/* softmax(w · x) written out the obvious way, in long double. */
static void reference(const float *w, const float *x, double *p)
{
    long double logit[E], mx = -INFINITY, sum = 0;
    for (int e = 0; e < E; e++) {
        logit[e] = 0;
        for (int j = 0; j < D; j++)
            logit[e] += (long double)w[e * D + j] * x[j];
        if (logit[e] > mx)
            mx = logit[e];
    }
    for (int e = 0; e < E; e++)
        sum += expl(logit[e] - mx);
    for (int e = 0; e < E; e++)
        p[e] = (double)(expl(logit[e] - mx) / sum);
}

Test(pregate, host_fp32_and_fp16_match_the_reference)
{
    static float w[E * D], x[D], wf[E * D], xf[D];
    static uint16_t wh[E * D], xh[D];
    fill(w, x, wh, xh, 3);
    double ref[E];
    float p[E];
    reference(w, x, ref);
    cr_assert_eq(ec_pregate_host(w, x, EC_GATE_F32, E, D, p), EC_OK);
    double sum = 0;
    for (int e = 0; e < E; e++) {
        cr_assert(fabs(p[e] - ref[e]) <= 1e-6 * fmax(ref[e], 1e-3), "fp32 expert %d: %g vs %g", e,
                  p[e], ref[e]);
        sum += p[e];
    }
    cr_assert_float_eq(sum, 1.0, 1e-5);
    /* fp16: the reference over the values the halves hold */
    for (int i = 0; i < E * D; i++)
        wf[i] = ec_half_to_float(wh[i]);
    for (int j = 0; j < D; j++)
        xf[j] = ec_half_to_float(xh[j]);
    reference(wf, xf, ref);
    cr_assert_eq(ec_pregate_host(wh, xh, EC_GATE_F16, E, D, p), EC_OK);
    for (int e = 0; e < E; e++)
        cr_assert(fabs(p[e] - ref[e]) <= 1e-6 * fmax(ref[e], 1e-3), "fp16 expert %d: %g vs %g", e,
                  p[e], ref[e]);
}

Test(pregate, topk_ranks_by_probability_lower_id_first_on_ties)
{
    float probs[6] = {0.1f, 0.3f, 0.05f, 0.3f, 0.2f, 0.05f}, p[3];
    int16_t ex[3];
    cr_assert_eq(ec_pregate_topk(probs, 6, 3, ex, p), 3);
    cr_assert_eq(ex[0], 1);
    cr_assert_eq(ex[1], 3);
    cr_assert_eq(ex[2], 4);
    cr_assert_float_eq(p[2], 0.2f, 1e-7);
    int16_t all[6];
    cr_assert_eq(ec_pregate_topk(probs, 6, 9, all, NULL), 6, "clamped to n_experts");
}

Test(pregate, bad_arguments_are_refused)
{
    float w[4] = {1, 2, 3, 4}, x[2] = {1, 1}, p[2];
    cr_assert_eq(ec_pregate_host(NULL, x, EC_GATE_F32, 2, 2, p), EC_ERR_INVALID);
    cr_assert_eq(ec_pregate_host(w, x, (ec_gate_dtype)7, 2, 2, p), EC_ERR_INVALID);
    cr_assert_eq(ec_pregate_host(w, x, EC_GATE_F32, 0, 2, p), EC_ERR_INVALID);
    cr_assert_eq(ec_pregate_host(w, x, EC_GATE_F32, 2, 0, p), EC_ERR_INVALID);
    float inf[4] = {INFINITY, 0, 0, 0};
    cr_assert_eq(ec_pregate_host(inf, x, EC_GATE_F32, 2, 2, p), EC_ERR_RANGE);
    cr_assert(isnan(p[0]) && isnan(p[1]), "no half-written probabilities");
    cr_assert_eq(ec_pregate_host(w, x, EC_GATE_F32, 2, 2, p), EC_OK);
}

/* The stream path of a backend against the host reference. */
static void stream_matches_host(const char *name, double rel)
{
    ec_backend *b = NULL;
    ec_error err = {0};
    ec_status st = ec_backend_create(name, NULL, &b, &err);
    if (st == EC_ERR_NO_DEVICE || st == EC_ERR_UNSUPPORTED)
        cr_skip_test("backend %s unavailable here: %s", name, err.message);
    cr_assert_eq(st, EC_OK, "%s", err.message);
    static float w[E * D], x[D];
    static uint16_t wh[E * D], xh[D];
    fill(w, x, wh, xh, 11);
    ec_stream *s;
    ec_event *done;
    void *dw, *dx, *dwh, *dxh;
    float *probs;
    cr_assert_eq(ec_stream_create(b, &s), EC_OK);
    cr_assert_eq(ec_event_create(b, 0, &done), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, sizeof w, &dw), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, sizeof x, &dx), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, sizeof wh, &dwh), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, sizeof xh, &dxh), EC_OK);
    cr_assert_eq(ec_backend_host_alloc(b, 2 * E * sizeof *probs, (void **)&probs), EC_OK);
    cr_assert_eq(ec_stream_copy_h2d(s, dw, w, sizeof w), EC_OK);
    cr_assert_eq(ec_stream_copy_h2d(s, dx, x, sizeof x), EC_OK);
    cr_assert_eq(ec_stream_copy_h2d(s, dwh, wh, sizeof wh), EC_OK);
    cr_assert_eq(ec_stream_copy_h2d(s, dxh, xh, sizeof xh), EC_OK);
    for (int e = 0; e < 2 * E; e++)
        probs[e] = -1.0f;
    cr_assert_eq(ec_stream_pregate(s, dw, dx, EC_GATE_F32, E, D, probs), EC_OK, "%s",
                 ec_backend_errmsg(b));
    cr_assert_eq(ec_stream_pregate(s, dwh, dxh, EC_GATE_F16, E, D, probs + E), EC_OK, "%s",
                 ec_backend_errmsg(b));
    cr_assert_eq(ec_event_record(done, s), EC_OK);
    int fin = 0;
    for (int spins = 0; !fin && spins < 200000; spins++) { /* poll, never a blocking copy */
        cr_assert_eq(ec_event_query(done, &fin), EC_OK);
        if (!fin)
            tu_sleep_ms(0);
    }
    if (!fin)
        cr_assert_eq(ec_event_sync(done), EC_OK);
    float host[2 * E];
    cr_assert_eq(ec_pregate_host(w, x, EC_GATE_F32, E, D, host), EC_OK);
    cr_assert_eq(ec_pregate_host(wh, xh, EC_GATE_F16, E, D, host + E), EC_OK);
    for (int e = 0; e < 2 * E; e++)
        cr_assert(fabsf(probs[e] - host[e]) <= rel * fmaxf(host[e], 1e-3f),
                  "%s %s expert %d: %g vs host %g", name, e < E ? "fp32" : "fp16", e % E,
                  probs[e], host[e]);
    cr_assert_eq(ec_stream_pregate(s, dw, dx, EC_GATE_F32, 0, D, probs), EC_ERR_INVALID);
    ec_backend_host_free(b, probs);
    ec_backend_dev_free(b, dw);
    ec_backend_dev_free(b, dx);
    ec_backend_dev_free(b, dwh);
    ec_backend_dev_free(b, dxh);
    ec_event_destroy(done);
    ec_stream_destroy(s);
    ec_backend_destroy(b);
}

Test(pregate_cpu, stream_writes_what_the_host_reference_computes)
{
    stream_matches_host("cpu", 0.0);
}

Test(pregate_cuda, kernel_writes_pinned_host_memory_matching_the_host_reference)
{
    stream_matches_host("cuda", 1e-4);
}
