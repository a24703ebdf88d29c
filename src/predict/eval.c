/*
 * Evaluation: fit on training sequences, replay each test sequence through
 * an ec_history token by token and layer by layer, score every horizon.
 */
#include "../core/internal.h"
#include "expertcast/eval.h"
#include "replay.h"

#include <math.h>
#include <string.h>
#include <time.h>

/* Per-token sums kept for the bootstrap: cases, top1 hits, then recall@k
 * for every k of the report. */
enum { COL_N = 0, COL_TOP1 = 1, COL_RECALL = 2 };

/* Totals of one (predictor, horizon) besides the per-token columns. */
typedef struct totals {
    size_t n_covered;
    double top1_in_set, exact_set, primary_in_top2;
    double precision[EC_EVAL_MAX_KS];
    double covered_top1, covered_recall[EC_EVAL_MAX_KS];
    double *layer_recall; /* [L] sums, then means */
    size_t *layer_n;
} totals;

/* One tested sequence: its rows, the first row whose predictions count,
 * its fold and its first unit (token) in the per-token tables. */
typedef struct test_seq {
    size_t seq;
    size_t test_row0;  /* rows before this one are context only */
    size_t fold;
    size_t unit0;
} test_seq;

typedef struct run {
    const ec_trace *train, *test;
    ec_eval_opts o;
    ec_predictor_opts popts;
    const char *const *names;
    const char **pnames;     /* [n_names] registry names (static strings) */
    size_t n_names, n_h, n_ks, n_cols;
    int32_t horizons[EC_EVAL_MAX_HORIZONS];
    int32_t ks[EC_EVAL_MAX_KS];
    int32_t rank_m;          /* guesses ranked per prediction */
    size_t n_folds;
    test_seq *tests;         /* [n_tests] */
    size_t n_tests, n_units;
    size_t *fold_of_train;   /* [train->n_seqs] problem split: fold of each sequence */
    double **cols;           /* [n_results] -> [n_units][n_cols] */
    totals *tot;             /* [n_results] */
    uint8_t *seq_mask;       /* [test->n_seqs] the one sequence being replayed */
    float *probs;            /* [E] */
    int32_t *idx;            /* [rank_m] */
    ec_trace view;           /* token split: the training view */
    ec_seq *view_seqs;
} run;

const char *ec_split_name(ec_split s)
{
    switch (s) {
    case EC_SPLIT_PROBLEM: return "problem";
    case EC_SPLIT_TOKEN: return "token";
    case EC_SPLIT_TRAIN_TEST: return "train-test";
    }
    return "?";
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- options --------------------------------------------------------------- */

static ec_status check_opts(run *R, const ec_eval_opts *opts, ec_error *err)
{
    static const int32_t default_h[] = {1}, default_k[] = {1, 2, 4};
    const ec_trace *t = R->test;
    R->o = opts ? *opts : (ec_eval_opts){0};
    ec_eval_opts *o = &R->o;
    if (!o->horizons) {
        o->horizons = default_h;
        o->n_horizons = 1;
    }
    if (!o->ks) { /* {1, 2, 4} within the experts */
        o->ks = default_k;
        for (o->n_ks = 0; o->n_ks < 3 && default_k[o->n_ks] <= t->n_experts; o->n_ks++) {
        }
    }
    if (o->n_horizons == 0 || o->n_horizons > EC_EVAL_MAX_HORIZONS)
        return ec_error_set(err, EC_ERR_INVALID, "between 1 and %d horizons",
                            EC_EVAL_MAX_HORIZONS);
    if (o->n_ks == 0 || o->n_ks > EC_EVAL_MAX_KS)
        return ec_error_set(err, EC_ERR_INVALID, "between 1 and %d values of k", EC_EVAL_MAX_KS);
    int32_t max_h = 1;
    for (size_t i = 0; i < o->n_horizons; i++) {
        if (o->horizons[i] < 1 || o->horizons[i] > t->n_layers)
            return ec_error_set(err, EC_ERR_INVALID, "horizon %d is outside [1, %d layers]",
                                o->horizons[i], t->n_layers);
        R->horizons[i] = o->horizons[i];
        max_h = EC_MAX(max_h, o->horizons[i]);
    }
    R->rank_m = EC_MIN(EC_MAX(2, t->k), t->n_experts);
    for (size_t i = 0; i < o->n_ks; i++) {
        if (o->ks[i] < 1 || o->ks[i] > t->n_experts)
            return ec_error_set(err, EC_ERR_INVALID, "k %d is outside [1, %d experts]", o->ks[i],
                                t->n_experts);
        R->ks[i] = o->ks[i];
        R->rank_m = EC_MAX(R->rank_m, o->ks[i]);
    }
    R->n_h = o->n_horizons;
    R->n_ks = o->n_ks;
    R->n_cols = COL_RECALL + R->n_ks;
    if (o->resamples <= 0)
        o->resamples = 1000;
    if (o->block <= 0)
        o->block = 16;
    if (o->seed == 0)
        o->seed = 1;
    if (o->token_fraction <= 0)
        o->token_fraction = 0.5;
    if (o->token_fraction >= 1)
        return ec_error_set(err, EC_ERR_INVALID, "token fraction %g must be in (0, 1)",
                            o->token_fraction);
    if (o->predictor_opts)
        R->popts = *o->predictor_opts;
    R->popts.max_horizon = EC_MAX(R->popts.max_horizon > 0 ? R->popts.max_horizon : 4, max_h);
    R->names = o->predictors ? o->predictors : ec_predictor_names();
    R->n_names = o->n_predictors;
    if (!o->predictors)
        for (R->n_names = 0; R->names[R->n_names]; R->n_names++) {
        }
    if (R->n_names == 0)
        return ec_error_set(err, EC_ERR_INVALID, "no predictor to evaluate");
    R->pnames = ec_calloc(R->n_names, sizeof *R->pnames);
    if (!R->pnames)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < R->n_names; i++) {
        ec_predictor *p;
        ec_status s = ec_predictor_create(R->names[i], &R->popts, &p, err);
        if (s)
            return s;
        R->pnames[i] = ec_predictor_name(p); /* static: outlives the caller's strings */
        ec_predictor_destroy(p);
    }
    return EC_OK;
}

/* ---- the split ------------------------------------------------------------- */

static ec_status plan_split(run *R, ec_error *err)
{
    const ec_trace *tr = R->train, *te = R->test;
    ec_split split = R->o.split;
    if (split == EC_SPLIT_TRAIN_TEST) {
        if (tr->n_layers != te->n_layers || tr->n_experts != te->n_experts || tr->k != te->k)
            return ec_error_set(err, EC_ERR_RANGE,
                                "train trace is %d layers x %d experts top-%d but test trace is "
                                "%d x %d top-%d",
                                tr->n_layers, tr->n_experts, tr->k, te->n_layers, te->n_experts,
                                te->k);
        R->n_folds = 1;
    } else if (split == EC_SPLIT_PROBLEM) {
        if (tr->n_seqs < 2)
            return ec_error_set(err, EC_ERR_INVALID,
                                "leave-one-sequence-out needs at least 2 sequences (dataset, "
                                "problem_id); the trace has %zu. HINT: --split token or "
                                "--train/--test",
                                tr->n_seqs);
        R->n_folds = R->o.folds > 0 ? (size_t)R->o.folds : tr->n_seqs;
        if (R->n_folds < 2 || R->n_folds > tr->n_seqs)
            return ec_error_set(err, EC_ERR_INVALID, "folds %zu must be in [2, %zu sequences]",
                                R->n_folds, tr->n_seqs);
        R->fold_of_train = ec_malloc(tr->n_seqs * sizeof *R->fold_of_train);
        if (!R->fold_of_train)
            return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
        for (size_t s = 0; s < tr->n_seqs; s++)
            R->fold_of_train[s] = s % R->n_folds;
    } else if (split == EC_SPLIT_TOKEN) {
        R->n_folds = 1;
        R->view = *tr;
        R->view_seqs = ec_malloc(EC_MAX(tr->n_seqs, 1) * sizeof *R->view_seqs);
        if (!R->view_seqs)
            return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
        for (size_t s = 0; s < tr->n_seqs; s++) {
            R->view_seqs[s] = tr->seqs[s];
            R->view_seqs[s].n_rows =
                (size_t)floor((double)tr->seqs[s].n_rows * R->o.token_fraction);
        }
        R->view.seqs = R->view_seqs;
    } else
        return ec_error_set(err, EC_ERR_INVALID, "unknown split %d", (int)split);

    R->n_tests = te->n_seqs;
    R->tests = ec_calloc(EC_MAX(te->n_seqs, 1), sizeof *R->tests);
    if (!R->tests)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    size_t unit = 0;
    for (size_t s = 0; s < te->n_seqs; s++) {
        test_seq *ts = &R->tests[s];
        const ec_seq *sq = &te->seqs[s];
        ts->seq = s;
        ts->fold = R->fold_of_train ? R->fold_of_train[s] : 0;
        ts->test_row0 = sq->row0;
        if (split == EC_SPLIT_TOKEN)
            ts->test_row0 += R->view_seqs[s].n_rows;
        ts->unit0 = unit;
        unit += sq->row0 + sq->n_rows - ts->test_row0;
    }
    R->n_units = unit;
    /* Nothing to learn from or to score is a data error, not a table of nan. */
    size_t complete = 0;
    for (size_t s = 0; s < te->n_seqs; s++)
        for (size_t i = R->tests[s].test_row0; i < te->seqs[s].row0 + te->seqs[s].n_rows; i++)
            complete += te->complete[i] != 0;
    if (tr->n_rows == tr->n_incomplete)
        return ec_error_set(err, EC_ERR_NO_DATA,
                            "eval: the training data has no complete token (%zu tokens, each "
                            "missing a layer): nothing to fit",
                            tr->n_rows);
    if (complete == 0)
        return ec_error_set(err, EC_ERR_NO_DATA,
                            "eval: the test tokens (%zu) have no complete one: nothing to score",
                            unit);
    return EC_OK;
}

/* ---- scoring --------------------------------------------------------------- */

static void score(run *R, size_t res, size_t unit, int informed, const int16_t *actual,
                  int32_t target)
{
    const int32_t K = R->test->k;
    const int32_t *g = R->idx;
    double *c = R->cols[res] + unit * R->n_cols;
    totals *T = &R->tot[res];
    int top1 = ec_metric_top1(g, actual);
    c[COL_N] += 1;
    c[COL_TOP1] += top1;
    T->top1_in_set += ec_metric_top1_in_set(g, actual, K);
    T->exact_set += ec_metric_exact_set(g, actual, K);
    T->primary_in_top2 += ec_metric_primary_in(g, 2, actual);
    if (informed) {
        T->n_covered++;
        T->covered_top1 += top1;
    }
    for (size_t i = 0; i < R->n_ks; i++) {
        double rec = ec_metric_recall(g, R->ks[i], actual, K);
        c[COL_RECALL + i] += rec;
        T->precision[i] += ec_metric_precision(g, R->ks[i], actual, K);
        if (informed)
            T->covered_recall[i] += rec;
    }
    T->layer_recall[target] += ec_metric_recall(g, K, actual, K);
    T->layer_n[target]++;
}

/* What the replay callback needs: the run, the predictor, the test sequence. */
typedef struct replay_ctx {
    run *R;
    const ec_predictor *p;
    size_t pred;
    const test_seq *ts;
    ec_error *err;
} replay_ctx;

/* After each observation of a test row: predict every horizon and score it. */
static ec_status score_position(void *ctx, const ec_replay_pos *pos)
{
    replay_ctx *c = ctx;
    run *R = c->R;
    if (pos->row < c->ts->test_row0)
        return EC_OK; /* context only (token split) */
    for (size_t hi = 0; hi < R->n_h; hi++) {
        int32_t target;
        int next;
        const int16_t *actual = ec_replay_target(pos, R->horizons[hi], &target, &next);
        if (!actual)
            continue;
        int ret = ec_predictor_predict(c->p, pos->h, R->horizons[hi], R->probs);
        if (ret < 0)
            return ec_error_set(c->err, EC_ERR_STATE,
                                "predictor '%s' refused horizon %d at layer %d", R->pnames[c->pred],
                                R->horizons[hi], pos->layer);
        ec_rank(R->probs, pos->t->n_experts, R->idx, R->rank_m);
        score(R, c->pred * R->n_h + hi, c->ts->unit0 + (pos->row - c->ts->test_row0), ret > 0,
              actual, target);
    }
    return EC_OK;
}

/* Replays test sequence ts with a fitted predictor, through a history as
 * deep as the predictor reads. */
static ec_status replay(run *R, const ec_predictor *p, size_t pred, const test_seq *ts,
                        ec_error *err)
{
    replay_ctx c = {R, p, pred, ts, err};
    R->seq_mask[ts->seq] = 1;
    ec_status s = ec_replay_train(R->test, R->seq_mask, EC_MAX(ec_predictor_history_depth(p), 1),
                                  score_position, &c);
    R->seq_mask[ts->seq] = 0;
    if (s && s != EC_ERR_STATE)
        ec_error_set(err, s, "replaying with '%s': %s", R->pnames[pred], ec_status_str(s));
    return s;
}

static ec_status eval_predictor(run *R, size_t pred, ec_eval_result *out_res, ec_error *err)
{
    double fit_ms = 0;
    for (size_t f = 0; f < R->n_folds; f++) {
        ec_predictor *p;
        ec_status s = ec_predictor_create(R->pnames[pred], &R->popts, &p, err);
        if (s)
            return s;
        uint8_t *mask = NULL;
        const ec_trace *fit_on = R->o.split == EC_SPLIT_TOKEN ? &R->view : R->train;
        if (R->o.split == EC_SPLIT_PROBLEM) {
            mask = ec_malloc(R->train->n_seqs);
            if (!mask) {
                ec_predictor_destroy(p);
                return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
            }
            for (size_t i = 0; i < R->train->n_seqs; i++)
                mask[i] = R->fold_of_train[i] != f;
        }
        double t0 = now_ms();
        s = ec_predictor_fit(p, fit_on, mask);
        fit_ms += now_ms() - t0;
        ec_free(mask);
        if (s) {
            ec_error_set(err, s, "fitting '%s' (fold %zu of %zu): %s", R->pnames[pred], f + 1,
                         R->n_folds, ec_predictor_errmsg(p));
            ec_predictor_destroy(p);
            return s;
        }
        for (size_t i = 0; i < R->n_tests && !s; i++)
            if (R->tests[i].fold == f)
                s = replay(R, p, pred, &R->tests[i], err);
        ec_predictor_destroy(p);
        if (s)
            return s;
    }
    for (size_t hi = 0; hi < R->n_h; hi++)
        out_res[hi].fit_ms = fit_ms;
    return EC_OK;
}

/* ---- figures --------------------------------------------------------------- */

static double ratio(double a, double b) { return b > 0 ? a / b : NAN; }

static ec_status finish_result(run *R, size_t res, ec_eval_result *out, ec_error *err)
{
    const double *c = R->cols[res];
    totals *T = &R->tot[res];
    size_t nt = R->n_tests, nc = R->n_cols;
    double sums[COL_RECALL + EC_EVAL_MAX_KS] = {0};
    for (size_t u = 0; u < R->n_units; u++)
        for (size_t j = 0; j < nc; j++)
            sums[j] += c[u * nc + j];
    double n = sums[COL_N];
    out->n = (size_t)n;
    out->n_covered = T->n_covered;
    out->coverage = out->n ? ec_metric_coverage(T->n_covered, out->n) : NAN;
    out->top1 = ratio(sums[COL_TOP1], n);
    out->top1_in_set = ratio(T->top1_in_set, n);
    out->exact_set = ratio(T->exact_set, n);
    out->primary_in_top2 = ratio(T->primary_in_top2, n);
    out->covered_top1 = ratio(T->covered_top1, (double)T->n_covered);
    for (size_t i = 0; i < R->n_ks; i++) {
        out->recall_at_k[i] = ratio(sums[COL_RECALL + i], n);
        out->precision_at_k[i] = ratio(T->precision[i], n);
        out->covered_recall_at_k[i] = ratio(T->covered_recall[i], (double)T->n_covered);
    }
    for (int32_t l = 0; l < R->test->n_layers; l++)
        T->layer_recall[l] = ratio(T->layer_recall[l], (double)T->layer_n[l]);
    out->layer_recall = T->layer_recall;
    out->layer_n = T->layer_n;
    T->layer_recall = NULL; /* the result owns them now */
    T->layer_n = NULL;

    /* Per-sequence sums for the bootstrap over sequences (only sequences
     * with cases), and per-token columns grouped by sequence for blocks. */
    double *seq_num = ec_calloc(EC_MAX(nt, 1), sizeof *seq_num);
    double *seq_den = ec_calloc(EC_MAX(nt, 1), sizeof *seq_den);
    double *tok_num = ec_malloc(EC_MAX(R->n_units, 1) * sizeof *tok_num);
    double *tok_den = ec_malloc(EC_MAX(R->n_units, 1) * sizeof *tok_den);
    size_t *group_end = ec_malloc(EC_MAX(nt, 1) * sizeof *group_end);
    ec_status s = EC_OK;
    if (!seq_num || !seq_den || !tok_num || !tok_den || !group_end)
        s = EC_ERR_NOMEM;
    for (size_t i = 0; i < nt && !s; i++)
        group_end[i] = i + 1 < nt ? R->tests[i + 1].unit0 : R->n_units;
    for (size_t col = COL_TOP1; col < nc && !s; col++) {
        size_t ng = 0;
        for (size_t i = 0; i < nt; i++) {
            double num = 0, den = 0;
            for (size_t u = R->tests[i].unit0; u < group_end[i]; u++) {
                num += c[u * nc + col];
                den += c[u * nc + COL_N];
            }
            if (den > 0) {
                seq_num[ng] = num;
                seq_den[ng++] = den;
            }
        }
        if (col == COL_TOP1)
            out->n_seqs = ng;
        for (size_t u = 0; u < R->n_units; u++) {
            tok_num[u] = c[u * nc + col];
            tok_den[u] = c[u * nc + COL_N];
        }
        ec_ci *seq_ci = col == COL_TOP1 ? &out->ci_top1 : &out->ci_recall_at_k[col - COL_RECALL];
        ec_ci *blk_ci =
            col == COL_TOP1 ? &out->block_ci_top1 : &out->block_ci_recall_at_k[col - COL_RECALL];
        seq_ci->lo = seq_ci->hi = blk_ci->lo = blk_ci->hi = NAN;
        if (ng == 0)
            continue;
        s = ec_bootstrap_ratio_ci(seq_num, seq_den, ng, R->o.resamples, 0.95, R->o.seed, seq_ci);
        if (!s && nt > 0 && R->n_units > 0)
            s = ec_block_bootstrap_ratio_ci(tok_num, tok_den, group_end, nt, R->o.block,
                                            R->o.resamples, 0.95, R->o.seed, blk_ci);
    }
    ec_free(seq_num);
    ec_free(seq_den);
    ec_free(tok_num);
    ec_free(tok_den);
    ec_free(group_end);
    if (s)
        return ec_error_set(err, s, "bootstrap: %s", ec_status_str(s));
    return EC_OK;
}

/* ---- run ------------------------------------------------------------------- */

static void run_free(run *R)
{
    size_t n_res = R->n_names * R->n_h;
    if (R->cols)
        for (size_t i = 0; i < n_res; i++)
            ec_free(R->cols[i]);
    if (R->tot)
        for (size_t i = 0; i < n_res; i++) {
            ec_free(R->tot[i].layer_recall);
            ec_free(R->tot[i].layer_n);
        }
    ec_free(R->cols);
    ec_free(R->tot);
    ec_free(R->tests);
    ec_free(R->pnames);
    ec_free(R->fold_of_train);
    ec_free(R->view_seqs);
    ec_free(R->probs);
    ec_free(R->idx);
    ec_free(R->seq_mask);
}

static ec_status run_alloc(run *R, ec_error *err)
{
    size_t n_res = R->n_names * R->n_h;
    const ec_trace *t = R->test;
    R->cols = ec_calloc(n_res, sizeof *R->cols);
    R->tot = ec_calloc(n_res, sizeof *R->tot);
    R->probs = ec_malloc((size_t)t->n_experts * sizeof *R->probs);
    R->idx = ec_malloc((size_t)R->rank_m * sizeof *R->idx);
    R->seq_mask = ec_calloc(EC_MAX(t->n_seqs, 1), 1);
    int ok = R->cols && R->tot && R->probs && R->idx && R->seq_mask;
    for (size_t i = 0; ok && i < n_res; i++) {
        R->cols[i] = ec_calloc(EC_MAX(R->n_units, 1) * R->n_cols, sizeof **R->cols);
        R->tot[i].layer_recall = ec_calloc((size_t)t->n_layers, sizeof *R->tot[i].layer_recall);
        R->tot[i].layer_n = ec_calloc((size_t)t->n_layers, sizeof *R->tot[i].layer_n);
        ok = R->cols[i] && R->tot[i].layer_recall && R->tot[i].layer_n;
    }
    return ok ? EC_OK : ec_error_set(err, EC_ERR_NOMEM, "out of memory");
}

void ec_eval_report_destroy(ec_eval_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->results && i < r->n_results; i++) {
        ec_free(r->results[i].layer_recall);
        ec_free(r->results[i].layer_n);
    }
    ec_free(r->results);
    ec_free(r);
}

ec_status ec_eval_run(const ec_trace *train, const ec_trace *test, const ec_eval_opts *opts,
                      ec_eval_report **out, ec_error *err)
{
    if (!out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_eval_run: NULL argument");
    *out = NULL;
    ec_split split = opts ? opts->split : EC_SPLIT_PROBLEM;
    if (!train || (split == EC_SPLIT_TRAIN_TEST) != (test != NULL))
        return ec_error_set(err, EC_ERR_INVALID,
                            "ec_eval_run: a test trace goes with the train-test split only");
    run R = {.train = train, .test = test ? test : train};
    ec_eval_report *rep = NULL;
    ec_status s = check_opts(&R, opts, err);
    if (!s)
        s = plan_split(&R, err);
    if (!s)
        s = run_alloc(&R, err);
    if (!s) {
        rep = ec_calloc(1, sizeof *rep);
        if (rep)
            rep->results = ec_calloc(R.n_names * R.n_h, sizeof *rep->results);
        if (!rep || !rep->results)
            s = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    }
    for (size_t p = 0; !s && p < R.n_names; p++)
        s = eval_predictor(&R, p, rep->results + p * R.n_h, err);
    for (size_t p = 0; !s && p < R.n_names; p++)
        for (size_t hi = 0; !s && hi < R.n_h; hi++) {
            ec_eval_result *res = &rep->results[p * R.n_h + hi];
            res->predictor = R.pnames[p];
            res->horizon = R.horizons[hi];
            rep->n_results++;
            s = finish_result(&R, p * R.n_h + hi, res, err);
        }
    if (!s) {
        rep->split = split;
        rep->folds = R.n_folds;
        rep->n_layers = R.test->n_layers;
        rep->n_experts = R.test->n_experts;
        rep->k = R.test->k;
        rep->n_ks = R.n_ks;
        memcpy(rep->ks, R.ks, sizeof R.ks);
        rep->resamples = R.o.resamples;
        rep->block = R.o.block;
        rep->token_fraction = split == EC_SPLIT_TOKEN ? R.o.token_fraction : 0;
        rep->n_test_seqs = R.n_tests;
        rep->n_test_tokens = R.n_units;
    }
    run_free(&R);
    if (s) {
        ec_eval_report_destroy(rep);
        return s;
    }
    *out = rep;
    return EC_OK;
}
