/*
 * Held-out evaluation of the reuse model (policy.h): contiguous folds of
 * sequences (leave one out up to EC_REUSE_EVAL_MAX_FOLDS sequences), Brier score and AUC of "used within n tokens" per variant and
 * horizon, bootstrap intervals over the test sequences.
 */
#include "internal.h"
#include "../core/rng.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NV = EC_REUSE_N_VARIANTS, NB = 200, RESAMPLES = 1000 };

static const char *const VARIANTS[NV] = {"recency", "recency+uses", "full", "full, fit only",
                                         "full, stream only"};

/* Sums of one (sequence, variant, horizon). */
typedef struct acc {
    double n, pos, brier;
    double hp[NB], hn[NB]; /* cases per score bin, used / not used */
} acc;

typedef struct ctx {
    reuse_counts fit, stream, zero; /* fit: the model's, capped */
    double blind;
    float tab[NV][RU_NH][RU_CELLS];
    acc *a; /* [NV][RU_NH] of the sequence being replayed */
} ctx;

static void on_token(void *vc, int64_t tok)
{
    ctx *c = vc;
    (void)tok;
    reuse_table_levels(&c->fit, &c->stream, c->blind, c->tab[0], c->tab[1]);
    reuse_table(&c->fit, &c->stream, c->blind, c->tab[2]);
    reuse_table(&c->fit, &c->zero, c->blind, c->tab[3]);
    reuse_table(&c->zero, &c->stream, c->blind, c->tab[4]);
}

static void on_case(void *vc, int h, int32_t cell, int used)
{
    ctx *c = vc;
    for (int v = 0; v < NV; v++) {
        acc *a = &c->a[v * RU_NH + h];
        double p = c->tab[v][h][cell], d = p - (used ? 1.0 : 0.0);
        int b = (int)(p * NB);
        b = b < 0 ? 0 : b >= NB ? NB - 1 : b;
        a->n += 1;
        a->pos += used;
        a->brier += d * d;
        if (used)
            a->hp[b] += 1;
        else
            a->hn[b] += 1;
    }
}

/* AUC from score histograms (ties within a bin count half); NaN without
 * both classes. */
static double auc_of(const double *hp, const double *hn)
{
    double P = 0, N = 0, below = 0, s = 0;
    for (int b = 0; b < NB; b++) {
        P += hp[b];
        N += hn[b];
    }
    if (!(P > 0) || !(N > 0))
        return NAN;
    for (int b = 0; b < NB; b++) {
        s += hp[b] * (below + 0.5 * hn[b]);
        below += hn[b];
    }
    return s / (P * N);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Point estimates and percentile bootstrap over sequences for one
 * (variant, horizon): accs[s] for s < n_seqs. */
static ec_status summarise(acc *const *accs, size_t n_seqs, size_t idx, ec_reuse_eval_result *r,
                           int h)
{
    acc tot = {0};
    for (size_t s = 0; s < n_seqs; s++) {
        const acc *a = &accs[s][idx];
        tot.n += a->n;
        tot.pos += a->pos;
        tot.brier += a->brier;
        for (int b = 0; b < NB; b++) {
            tot.hp[b] += a->hp[b];
            tot.hn[b] += a->hn[b];
        }
    }
    r->n[h] = (int64_t)tot.n;
    r->base_rate[h] = tot.n > 0 ? tot.pos / tot.n : NAN;
    r->brier[h] = tot.n > 0 ? tot.brier / tot.n : NAN;
    r->auc[h] = auc_of(tot.hp, tot.hn);
    double *bs = ec_malloc(RESAMPLES * sizeof *bs), *au = ec_malloc(RESAMPLES * sizeof *au);
    if (!bs || !au) {
        ec_free(bs);
        ec_free(au);
        return EC_ERR_NOMEM;
    }
    ec_rng rng;
    ec_rng_seed(&rng, 12345u + (uint64_t)idx);
    int m = 0, ma = 0;
    for (int i = 0; i < RESAMPLES; i++) {
        acc x = {0};
        for (size_t j = 0; j < n_seqs; j++) {
            const acc *a = &accs[ec_rng_below(&rng, (uint32_t)n_seqs)][idx];
            x.n += a->n;
            x.brier += a->brier;
            for (int b = 0; b < NB; b++) {
                x.hp[b] += a->hp[b];
                x.hn[b] += a->hn[b];
            }
        }
        double au_i = auc_of(x.hp, x.hn);
        if (x.n > 0)
            bs[m++] = x.brier / x.n;
        if (!isnan(au_i))
            au[ma++] = au_i;
    }
    qsort(bs, (size_t)m, sizeof *bs, cmp_double);
    qsort(au, (size_t)ma, sizeof *au, cmp_double);
    r->brier_lo[h] = m ? bs[(int)(0.025 * (m - 1))] : NAN;
    r->brier_hi[h] = m ? bs[(int)(0.975 * (m - 1))] : NAN;
    r->auc_lo[h] = ma ? au[(int)(0.025 * (ma - 1))] : NAN;
    r->auc_hi[h] = ma ? au[(int)(0.975 * (ma - 1))] : NAN;
    ec_free(bs);
    ec_free(au);
    return EC_OK;
}

ec_status ec_reuse_eval(const ec_trace *t, const char *predictor, const ec_predictor_opts *opts,
                        ec_reuse_eval_report *out, ec_error *err)
{
    if (!t || !out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_reuse_eval: NULL argument");
    memset(out, 0, sizeof *out);
    if (t->n_seqs < 2)
        return ec_error_set(err, EC_ERR_INVALID,
                            "reuse evaluation: held out by sequence needs at least 2 sequences "
                            "(the trace has %zu)",
                            t->n_seqs);
    size_t S = t->n_seqs;
    acc **accs = ec_calloc(S, sizeof *accs);
    uint8_t *train = ec_malloc(S), *test = ec_malloc(S);
    ctx *c = ec_calloc(1, sizeof *c);
    ec_reuse_model *m = NULL;
    ec_status st = !accs || !train || !test || !c ? EC_ERR_NOMEM : EC_OK;
    if (st == EC_OK)
        st = ec_reuse_model_create(t->n_layers, t->n_experts, t->k, &m);
    if (st)
        ec_error_set(err, st, "reuse evaluation: %s", ec_status_str(st));
    size_t F = S < EC_REUSE_EVAL_MAX_FOLDS ? S : EC_REUSE_EVAL_MAX_FOLDS;
    for (size_t f = 0; st == EC_OK && f < F; f++) {
        /* fold f holds the sequences [s0, s1) */
        size_t s0 = f * S / F, s1 = (f + 1) * S / F;
        for (size_t i = 0; i < S; i++)
            train[i] = i < s0 || i >= s1;
        ec_predictor *pred = NULL;
        if (predictor) {
            if ((st = ec_predictor_create(predictor, opts, &pred, err)))
                break;
            if ((st = ec_predictor_fit(pred, t, train))) {
                ec_error_set(err, st, "predictor '%s': %s", predictor, ec_predictor_errmsg(pred));
                ec_predictor_destroy(pred);
                break;
            }
        }
        st = ec_reuse_model_fit(m, t, train, pred, err);
        reuse_counts_cap(&m->fit, &c->fit);
        for (size_t s = s0; st == EC_OK && s < s1; s++) {
            /* each sequence alone, its stream calibration from scratch */
            if (!(accs[s] = ec_calloc(NV * RU_NH, sizeof **accs))) {
                st = ec_error_set(err, EC_ERR_NOMEM, "reuse evaluation: out of memory");
                break;
            }
            for (size_t i = 0; i < S; i++)
                test[i] = i == s;
            memset(&c->stream, 0, sizeof c->stream);
            c->blind = (double)t->k / (double)t->n_experts;
            c->a = accs[s];
            st = reuse_replay(t, test, pred, &c->stream, on_case, on_token, c, err);
        }
        ec_predictor_destroy(pred);
    }
    if (st == EC_OK) {
        out->predictor = predictor;
        out->n_seqs = (int32_t)S;
        out->n_folds = (int32_t)F;
        for (size_t r = 0; r < t->n_rows; r++)
            out->n_tokens += t->complete[r] != 0;
        for (int h = 0; h < RU_NH; h++)
            out->horizons[h] = ec_reuse_horizons[h];
        for (int v = 0; v < NV && st == EC_OK; v++) {
            out->v[v].variant = VARIANTS[v];
            for (int h = 0; h < RU_NH && st == EC_OK; h++)
                st = summarise(accs, S, (size_t)(v * RU_NH + h), &out->v[v], h);
        }
        if (st)
            ec_error_set(err, st, "reuse evaluation: out of memory");
    }
    if (accs)
        for (size_t s = 0; s < S; s++)
            ec_free(accs[s]);
    ec_free(accs);
    ec_free(train);
    ec_free(test);
    ec_free(c);
    ec_reuse_model_destroy(m);
    return st;
}

static cJSON *arr(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, isnan(v[i]) ? cJSON_CreateNull() : cJSON_CreateNumber(v[i]));
    return a;
}

ec_status ec_reuse_eval_write_json(const ec_reuse_eval_report *r, FILE *f, ec_error *err)
{
    cJSON *o = cJSON_CreateObject(), *vs = cJSON_CreateArray();
    double hz[EC_REUSE_N_HORIZONS];
    for (int h = 0; h < EC_REUSE_N_HORIZONS; h++)
        hz[h] = r->horizons[h];
    int ok = o && vs &&
             cJSON_AddStringToObject(o, "split",
                                     r->n_folds == r->n_seqs
                                         ? "leave one sequence out"
                                         : "contiguous folds of sequences, each replayed with "
                                           "models fitted outside its fold") &&
              cJSON_AddStringToObject(o, "predictor", r->predictor ? r->predictor : "none") &&
              cJSON_AddNumberToObject(o, "sequences", r->n_seqs) &&
              cJSON_AddNumberToObject(o, "folds", r->n_folds) &&
              cJSON_AddNumberToObject(o, "tokens", (double)r->n_tokens) &&
              cJSON_AddItemToObject(o, "horizons_tokens", arr(hz, EC_REUSE_N_HORIZONS)) &&
              cJSON_AddItemToObject(o, "variants", vs);
    for (int v = 0; ok && v < EC_REUSE_N_VARIANTS; v++) {
        const ec_reuse_eval_result *x = &r->v[v];
        double n[EC_REUSE_N_HORIZONS];
        for (int h = 0; h < EC_REUSE_N_HORIZONS; h++)
            n[h] = (double)x->n[h];
        cJSON *e = cJSON_CreateObject();
        ok = e && cJSON_AddItemToArray(vs, e) && cJSON_AddStringToObject(e, "variant", x->variant) &&
             cJSON_AddItemToObject(e, "n", arr(n, EC_REUSE_N_HORIZONS)) &&
             cJSON_AddItemToObject(e, "base_rate", arr(x->base_rate, EC_REUSE_N_HORIZONS)) &&
             cJSON_AddItemToObject(e, "brier", arr(x->brier, EC_REUSE_N_HORIZONS)) &&
             cJSON_AddItemToObject(e, "brier_ci_lo", arr(x->brier_lo, EC_REUSE_N_HORIZONS)) &&
             cJSON_AddItemToObject(e, "brier_ci_hi", arr(x->brier_hi, EC_REUSE_N_HORIZONS)) &&
             cJSON_AddItemToObject(e, "auc", arr(x->auc, EC_REUSE_N_HORIZONS)) &&
             cJSON_AddItemToObject(e, "auc_ci_lo", arr(x->auc_lo, EC_REUSE_N_HORIZONS)) &&
             cJSON_AddItemToObject(e, "auc_ci_hi", arr(x->auc_hi, EC_REUSE_N_HORIZONS));
    }
    char *s = ok ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!s)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory writing JSON");
    int w = fputs(s, f) >= 0 && fputc('\n', f) != EOF;
    cJSON_free(s);
    return w ? EC_OK : ec_error_set(err, EC_ERR_IO, "write failed");
}
