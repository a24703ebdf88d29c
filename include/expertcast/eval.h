/*
 * expertcast/eval.h - honest evaluation of expert predictors on traces.
 *
 * Two layers:
 *   - metric functions on one prediction (a ranked guess against the
 *     router's actual top-k) and bootstrap confidence intervals: small, pure,
 *     allocation-free except the bootstrap's scratch;
 *   - ec_eval_run: fits predictors on training sequences and replays every
 *     test sequence token by token, layer by layer, through an ec_history.
 *     After observing layer N it asks each predictor for horizon h (layer
 *     N + h, or layer N + h - L of the next token) and scores the ranked
 *     guess against what the router actually chose there. The guesses a
 *     record carries are recorded in the history right after it, so the
 *     "hint" predictor scores the runtime's guesses like any other.
 *
 * Splits (the test sequences never take part in fitting, unless asked):
 *   - EC_SPLIT_PROBLEM (default): leave one sequence out. Sequences are the
 *     trace's (dataset, problem_id) groups; each fold trains on every other
 *     sequence and tests on its own. opts.folds > 0 groups sequences round
 *     robin into that many folds instead.
 *   - EC_SPLIT_TOKEN: trains on the first token_fraction of every
 *     sequence's tokens and tests on the rest. Neighbouring tokens of one
 *     prompt are alike, so this leaks: use only to compare with published
 *     token-wise figures.
 *   - EC_SPLIT_TRAIN_TEST: trains on one trace and tests on another
 *     (cross-domain); shapes must agree.
 *
 * Metric definitions (DOMAIN.md), for a ranked guess g and the actual set A
 * (|A| = k of the trace, A[0] the primary, highest gate):
 *   top1           g[0] == A[0]
 *   top1_in_set    g[0] in A
 *   recall@m       |g[0..m) ∩ A| / |A|
 *   precision@m    |g[0..m) ∩ A| / m
 *   exact_set      {g[0..k)} == A
 *   primary_in_top2  A[0] in g[0..2)  (the "top-2" of published MLP figures)
 *   coverage       fraction of cases where the predictor did not abstain
 * Every rate is a micro-average over cases (n). A random guess of m of E
 * experts has expected recall m / E, precision k / E and top1 1 / E.
 */
#ifndef EXPERTCAST_EVAL_H
#define EXPERTCAST_EVAL_H

#include "expertcast/core.h"
#include "expertcast/predict.h"
#include "expertcast/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- metrics on one prediction -------------------------------------------- */

/* |guess[0..m) ∩ actual[0..n_actual)|. Ids in guess are distinct. */
int32_t ec_metric_hits(const int32_t *guess, int32_t m, const int16_t *actual, int32_t n_actual);
/* hits / n_actual (0 when n_actual is 0). */
double ec_metric_recall(const int32_t *guess, int32_t m, const int16_t *actual, int32_t n_actual);
/* hits / m (0 when m is 0). */
double ec_metric_precision(const int32_t *guess, int32_t m, const int16_t *actual,
                           int32_t n_actual);
/* 1 when guess[0] is the actual primary actual[0]. */
int ec_metric_top1(const int32_t *guess, const int16_t *actual);
/* 1 when guess[0] is anywhere in the actual set. */
int ec_metric_top1_in_set(const int32_t *guess, const int16_t *actual, int32_t n_actual);
/* 1 when the first n_actual guesses are exactly the actual set. */
int ec_metric_exact_set(const int32_t *guess, const int16_t *actual, int32_t n_actual);
/* 1 when the actual primary is among the first m guesses. */
int ec_metric_primary_in(const int32_t *guess, int32_t m, const int16_t *actual);
/* covered / n (0 when n is 0). */
double ec_metric_coverage(size_t covered, size_t n);

/* ---- confidence intervals -------------------------------------------------- */

/* A two-sided interval; both NaN when it could not be computed. */
typedef struct ec_ci {
    double lo, hi;
} ec_ci;

/*
 * Percentile bootstrap of a ratio of sums over n units (sequences): each of
 * `resamples` draws picks n units with replacement and computes
 * sum(num) / sum(den); draws with sum(den) == 0 are dropped. The interval
 * holds the central `level` (e.g. 0.95) of the draws. Deterministic for a
 * seed. EC_ERR_NOMEM when the scratch (resamples doubles) cannot be had;
 * EC_ERR_INVALID for n == 0 or resamples < 1.
 */
ec_status ec_bootstrap_ratio_ci(const double *num, const double *den, size_t n,
                                int32_t resamples, double level, uint64_t seed, ec_ci *out);

/*
 * Moving-block bootstrap of a ratio of sums over units (tokens) laid out as
 * groups (sequences): group g holds units [group_end[g-1], group_end[g])
 * (group_end[-1] = 0). Blocks of `block` consecutive units (shorter for a
 * shorter group) never cross a group; each draw concatenates uniformly
 * chosen blocks until it holds as many units as the data. Neighbouring
 * tokens are correlated, so this interval is narrower than the honest one
 * over sequences; it only says how noisy the figure is within these
 * sequences. Same conventions as ec_bootstrap_ratio_ci.
 */
ec_status ec_block_bootstrap_ratio_ci(const double *num, const double *den,
                                      const size_t *group_end, size_t n_groups, int32_t block,
                                      int32_t resamples, double level, uint64_t seed,
                                      ec_ci *out);

/* ---- evaluation ------------------------------------------------------------ */

typedef enum ec_split {
    EC_SPLIT_PROBLEM = 0,    /* leave one sequence (dataset, problem_id) out */
    EC_SPLIT_TOKEN = 1,      /* first part of every sequence trains (leaks) */
    EC_SPLIT_TRAIN_TEST = 2  /* train on one trace, test on another */
} ec_split;

/* Its name as printed and written to JSON: "problem", "token", "train-test". */
const char *ec_split_name(ec_split s);

#define EC_EVAL_MAX_KS 16      /* distinct k values one evaluation reports */
#define EC_EVAL_MAX_HORIZONS 64

/* Options; zero / NULL fields take the defaults given. */
typedef struct ec_eval_opts {
    const char *const *predictors; /* names; NULL = every registered predictor */
    size_t n_predictors;
    const int32_t *horizons;       /* NULL = {1}; each in [1, n_layers] */
    size_t n_horizons;
    const int32_t *ks;             /* NULL = those of {1, 2, 4} <= n_experts; each in
                                      [1, n_experts]
                                      (the CLI adds the trace's k) */
    size_t n_ks;
    ec_split split;
    int32_t folds;                 /* problem split: 0 = one fold per sequence */
    double token_fraction;         /* token split: training share (default 0.5) */
    const ec_predictor_opts *predictor_opts; /* NULL = defaults; max_horizon is
                                                raised to the largest horizon */
    int32_t resamples;             /* bootstrap draws (default 1000) */
    int32_t block;                 /* tokens per block, block bootstrap (default 16) */
    uint64_t seed;                 /* bootstrap seed (default 1) */
} ec_eval_opts;

/* Figures for one predictor at one horizon. Read-only; owned by the report.
 * Arrays indexed like report->ks. NaN where a figure has no case. */
typedef struct ec_eval_result {
    const char *predictor;   /* registry name */
    int32_t horizon;
    size_t n;                /* cases scored */
    size_t n_covered;        /* cases where the predictor did not abstain */
    size_t n_seqs;           /* test sequences that gave at least one case */
    double coverage, top1, top1_in_set, exact_set, primary_in_top2;
    double recall_at_k[EC_EVAL_MAX_KS];
    double precision_at_k[EC_EVAL_MAX_KS];
    /* over the covered cases only (the seed's "accuracy" is covered_top1) */
    double covered_top1;
    double covered_recall_at_k[EC_EVAL_MAX_KS];
    /* bootstrap 95 % intervals: over sequences (the honest one) ... */
    ec_ci ci_top1;
    ec_ci ci_recall_at_k[EC_EVAL_MAX_KS];
    /* ... and over blocks of tokens (secondary, narrower: tokens correlate) */
    ec_ci block_ci_top1;
    ec_ci block_ci_recall_at_k[EC_EVAL_MAX_KS];
    double *layer_recall;    /* [n_layers] recall@k (k of the trace) by target layer */
    size_t *layer_n;         /* [n_layers] cases by target layer */
    double fit_ms;           /* wall time fitting, all folds together (ms) */
} ec_eval_result;

typedef struct ec_eval_report {
    ec_split split;
    size_t folds;
    int32_t n_layers, n_experts, k;   /* shape of the traces */
    size_t n_ks;
    int32_t ks[EC_EVAL_MAX_KS];
    int32_t resamples, block;
    double token_fraction;            /* token split only */
    size_t n_test_seqs, n_test_tokens; /* tested sequences and tokens (rows) */
    size_t n_results;
    ec_eval_result *results;          /* predictor-major, then horizon */
} ec_eval_report;

/*
 * Runs the evaluation. `train` is the trace (both roles for the problem and
 * token splits); `test` is used only by EC_SPLIT_TRAIN_TEST (NULL
 * otherwise). On success *out owns the report (free it with
 * ec_eval_report_destroy); on failure *out is NULL and err names the cause
 * (an unknown predictor: EC_ERR_NOT_FOUND; a bad horizon or k, too few
 * sequences to split: EC_ERR_INVALID; train and test traces of different
 * shapes: EC_ERR_RANGE; a predictor that fails to fit: its status).
 */
ec_status ec_eval_run(const ec_trace *train, const ec_trace *test, const ec_eval_opts *opts,
                      ec_eval_report **out, ec_error *err);
void ec_eval_report_destroy(ec_eval_report *r);

/*
 * Writes the report as one JSON object:
 *   {"split": ..., "folds": N, "shape": {...}, "random": {...},
 *    "results": [{"predictor": ..., "horizon": h, "n": ..., "coverage": ...,
 *                 "top1": ..., "recall_at_k": {"1": ...}, "precision_at_k": {...},
 *                 "primary_in_top2": ..., "ci95": {...}, ...}]}
 * NaN figures are written as null.
 */
ec_status ec_eval_write_json(const ec_eval_report *r, FILE *f, ec_error *err);

#ifdef __cplusplus
}
#endif
#endif
