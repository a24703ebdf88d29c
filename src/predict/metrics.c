/* Metrics of one prediction: a ranked guess against the router's actual set. */
#include "expertcast/eval.h"

static int in_actual(int32_t e, const int16_t *actual, int32_t n_actual)
{
    for (int32_t i = 0; i < n_actual; i++)
        if (actual[i] == e)
            return 1;
    return 0;
}

int32_t ec_metric_hits(const int32_t *guess, int32_t m, const int16_t *actual, int32_t n_actual)
{
    int32_t hits = 0;
    for (int32_t i = 0; i < m; i++)
        hits += in_actual(guess[i], actual, n_actual);
    return hits;
}

double ec_metric_recall(const int32_t *guess, int32_t m, const int16_t *actual, int32_t n_actual)
{
    if (n_actual <= 0)
        return 0.0;
    return (double)ec_metric_hits(guess, m, actual, n_actual) / (double)n_actual;
}

double ec_metric_precision(const int32_t *guess, int32_t m, const int16_t *actual,
                           int32_t n_actual)
{
    if (m <= 0)
        return 0.0;
    return (double)ec_metric_hits(guess, m, actual, n_actual) / (double)m;
}

int ec_metric_top1(const int32_t *guess, const int16_t *actual) { return guess[0] == actual[0]; }

int ec_metric_top1_in_set(const int32_t *guess, const int16_t *actual, int32_t n_actual)
{
    return in_actual(guess[0], actual, n_actual);
}

int ec_metric_exact_set(const int32_t *guess, const int16_t *actual, int32_t n_actual)
{
    return n_actual > 0 && ec_metric_hits(guess, n_actual, actual, n_actual) == n_actual;
}

int ec_metric_primary_in(const int32_t *guess, int32_t m, const int16_t *actual)
{
    for (int32_t i = 0; i < m; i++)
        if (guess[i] == actual[0])
            return 1;
    return 0;
}

double ec_metric_coverage(size_t covered, size_t n)
{
    return n ? (double)covered / (double)n : 0.0;
}
