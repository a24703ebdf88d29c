/*
 * gated's (and hybrid's) short-horizon calibration: how often an expert given probability
 * q by a source (the predictor, or the runtime's hint) h steps ahead was
 * then chosen by the router, measured on the running stream.
 *
 * Every step, gated prices the targets of the next horizons with one row
 * each (policy_qrow). The row is kept, and when its step comes it is scored
 * against the router's choice: for every expert, its q bin and whether it
 * was used, in the cell (source, h). It depends on the request stream only,
 * not on what was prefetched, so it learns whether or not the gate has
 * opened - the gate can therefore start closed: with no evidence the
 * calibrated value is k / n_experts, what a source that knows nothing
 * would earn, and a source is trusted only as far as the stream has shown
 * it right.
 *
 * O(n_experts x horizon) per step; never allocates after calib_alloc.
 */
#include "internal.h"

#include <string.h>

/* q bins, by their lower edges */
static const double Q_EDGES[CALIB_QB - 1] = {0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9};

static inline int q_bin(double q)
{
    int b = 0;
    while (b < CALIB_QB - 1 && q >= Q_EDGES[b])
        b++;
    return b;
}

ec_status calib_alloc(ec_policy *p)
{
    p->cal_h = policy_uses_reuse(p) ? EC_MIN(p->cfg.horizon, p->L - 1) : 0;
    size_t H = (size_t)EC_MAX(p->cal_h, 1), L = (size_t)p->L, E = (size_t)p->E;
    p->cal_row = ec_malloc(H * L * E * sizeof *p->cal_row);
    p->cal_at = ec_malloc(H * L * sizeof *p->cal_at);
    p->cal_src = ec_calloc(H * L, sizeof *p->cal_src);
    p->cal_n = ec_calloc(CALIB_SRC * H * CALIB_QB, sizeof *p->cal_n);
    p->cal_hit = ec_calloc(CALIB_SRC * H * CALIB_QB, sizeof *p->cal_hit);
    return p->cal_row && p->cal_at && p->cal_src && p->cal_n && p->cal_hit ? EC_OK
                                                                           : EC_ERR_NOMEM;
}

void calib_free(ec_policy *p)
{
    ec_free(p->cal_row);
    ec_free(p->cal_at);
    ec_free(p->cal_src);
    ec_free(p->cal_n);
    ec_free(p->cal_hit);
}

void calib_reset(ec_policy *p)
{
    size_t H = (size_t)EC_MAX(p->cal_h, 1);
    for (size_t i = 0; i < H * (size_t)p->L; i++)
        p->cal_at[i] = -1;
    memset(p->cal_n, 0, CALIB_SRC * H * CALIB_QB * sizeof *p->cal_n);
    memset(p->cal_hit, 0, CALIB_SRC * H * CALIB_QB * sizeof *p->cal_hit);
}

static inline size_t cell(const ec_policy *p, int src, int32_t h, int bin)
{
    return ((size_t)src * (size_t)p->cal_h + (size_t)(h - 1)) * CALIB_QB + (size_t)bin;
}

void calib_observe(ec_policy *p, const int16_t *experts, int32_t k)
{
    for (int32_t h = 1; h <= p->cal_h; h++) {
        size_t i = (size_t)(h - 1) * (size_t)p->L + (size_t)p->layer;
        if (p->cal_at[i] != p->step)
            continue;
        const float *row = p->cal_row + i * (size_t)p->E;
        int src = p->cal_src[i];
        for (int32_t e = 0; e < p->E; e++)
            p->cal_n[cell(p, src, h, q_bin(row[e]))]++;
        for (int32_t j = 0; j < k; j++)
            p->cal_hit[cell(p, src, h, q_bin(row[experts[j]]))]++;
        p->cal_at[i] = -1;
    }
}

void calib_keep(ec_policy *p, int32_t h, int32_t layer, const float *row)
{
    if (h < 1 || h > p->cal_h)
        return;
    size_t i = (size_t)(h - 1) * (size_t)p->L + (size_t)layer;
    memcpy(p->cal_row + i * (size_t)p->E, row, (size_t)p->E * sizeof *row);
    p->cal_at[i] = p->step + h;
    p->cal_src[i] = p->qsrc[layer];
}

double calib_q(const ec_policy *p, int32_t layer, double q)
{
    int32_t h = layer - p->layer;
    if (h <= 0)
        h += p->L;
    if (h > p->cal_h)
        return -1.0;
    size_t c = cell(p, p->qsrc[layer], h, q_bin(q));
    double blind = (double)p->k_obs / (double)p->E;
    return ((double)p->cal_hit[c] + REUSE_SHRINK * blind) /
           ((double)p->cal_n[c] + REUSE_SHRINK);
}
