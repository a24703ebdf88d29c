/* Percentile bootstrap intervals of a ratio of sums: over sequences, and
 * over blocks of consecutive tokens inside sequences. */
#include "../core/internal.h"
#include "../core/rng.h"
#include "expertcast/eval.h"

#include <math.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts draws[n] and writes the central `level` share into out. */
static void percentiles(double *draws, size_t n, double level, ec_ci *out)
{
    out->lo = out->hi = NAN;
    if (n == 0)
        return;
    qsort(draws, n, sizeof *draws, cmp_double);
    double tail = (1.0 - level) / 2.0;
    size_t lo = (size_t)floor(tail * (double)n);
    size_t hi = (size_t)ceil((1.0 - tail) * (double)n);
    if (hi > 0)
        hi--;
    if (lo >= n)
        lo = n - 1;
    if (hi >= n)
        hi = n - 1;
    out->lo = draws[lo];
    out->hi = draws[hi];
}

static int bad_args(size_t n, int32_t resamples, double level, ec_ci *out)
{
    if (out)
        out->lo = out->hi = NAN;
    return !out || n == 0 || resamples < 1 || !(level > 0.0 && level < 1.0);
}

ec_status ec_bootstrap_ratio_ci(const double *num, const double *den, size_t n,
                                int32_t resamples, double level, uint64_t seed, ec_ci *out)
{
    if (bad_args(n, resamples, level, out) || !num || !den || n > UINT32_MAX)
        return EC_ERR_INVALID;
    double *draws = ec_malloc((size_t)resamples * sizeof *draws);
    if (!draws)
        return EC_ERR_NOMEM;
    ec_rng rng;
    ec_rng_seed(&rng, seed);
    size_t kept = 0;
    for (int32_t b = 0; b < resamples; b++) {
        double sn = 0, sd = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t u = ec_rng_below(&rng, (uint32_t)n);
            sn += num[u];
            sd += den[u];
        }
        if (sd > 0)
            draws[kept++] = sn / sd;
    }
    percentiles(draws, kept, level, out);
    ec_free(draws);
    return EC_OK;
}

ec_status ec_block_bootstrap_ratio_ci(const double *num, const double *den,
                                      const size_t *group_end, size_t n_groups, int32_t block,
                                      int32_t resamples, double level, uint64_t seed, ec_ci *out)
{
    if (bad_args(n_groups, resamples, level, out) || !num || !den || !group_end || block < 1)
        return EC_ERR_INVALID;
    size_t units = group_end[n_groups - 1];
    /* Candidate blocks: every window of min(block, group length) units
     * that stays inside its group. starts[i], lens[i]. */
    size_t n_blocks = 0;
    for (size_t g = 0, b0 = 0; g < n_groups; b0 = group_end[g++]) {
        if (group_end[g] < b0)
            return EC_ERR_INVALID;
        size_t len = group_end[g] - b0;
        if (len)
            n_blocks += len - EC_MIN(len, (size_t)block) + 1;
    }
    if (units == 0 || n_blocks > UINT32_MAX)
        return units == 0 ? EC_OK : EC_ERR_INVALID;
    size_t *starts = ec_malloc(n_blocks * sizeof *starts);
    size_t *lens = ec_malloc(n_blocks * sizeof *lens);
    double *draws = ec_malloc((size_t)resamples * sizeof *draws);
    if (!starts || !lens || !draws) {
        ec_free(starts);
        ec_free(lens);
        ec_free(draws);
        return EC_ERR_NOMEM;
    }
    size_t nb = 0;
    for (size_t g = 0, b0 = 0; g < n_groups; b0 = group_end[g++]) {
        size_t len = group_end[g] - b0, w = EC_MIN(len, (size_t)block);
        for (size_t s = b0; len && s + w <= group_end[g]; s++) {
            starts[nb] = s;
            lens[nb++] = w;
        }
    }
    ec_rng rng;
    ec_rng_seed(&rng, seed);
    size_t kept = 0;
    for (int32_t b = 0; b < resamples; b++) {
        double sn = 0, sd = 0;
        for (size_t got = 0; got < units;) {
            uint32_t pick = ec_rng_below(&rng, (uint32_t)n_blocks);
            for (size_t u = starts[pick]; u < starts[pick] + lens[pick]; u++) {
                sn += num[u];
                sd += den[u];
            }
            got += lens[pick];
        }
        if (sd > 0)
            draws[kept++] = sn / sd;
    }
    percentiles(draws, kept, level, out);
    ec_free(starts);
    ec_free(lens);
    ec_free(draws);
    return EC_OK;
}
