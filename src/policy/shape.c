/*
 * Per-layer pool sizes from the use profile of training sequences: LRU
 * stack distances per layer, then slots given out greedily by the hits
 * each adds.
 */
#include "internal.h"

#include <string.h>

ec_status ec_cache_size_layers(const ec_trace *t, const uint8_t *seq_mask, int32_t total,
                               int32_t min_per_layer, int32_t *sizes, ec_error *err)
{
    if (!t || !sizes)
        return ec_error_set(err, EC_ERR_INVALID, "ec_cache_size_layers: NULL argument");
    const int32_t L = t->n_layers, E = t->n_experts;
    if (min_per_layer < 1 || min_per_layer > E || total < (int64_t)min_per_layer * L ||
        total > (int64_t)L * E)
        return ec_error_set(err, EC_ERR_INVALID,
                            "sized pools: %d slots cannot give each of %d layers between %d and "
                            "%d",
                            total, L, min_per_layer, E);
    size_t LE = (size_t)L * (size_t)E;
    int64_t *hist = ec_calloc(LE, sizeof *hist); /* [L][E] uses at stack distance d */
    int16_t *stack = ec_malloc(LE * sizeof *stack); /* [L][E] most recent first */
    int32_t *depth = ec_malloc((size_t)L * sizeof *depth);
    if (!hist || !stack || !depth) {
        ec_free(hist);
        ec_free(stack);
        ec_free(depth);
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory sizing pools");
    }
    for (size_t q = 0; q < t->n_seqs; q++) {
        if (seq_mask && !seq_mask[q])
            continue;
        memset(depth, 0, (size_t)L * sizeof *depth);
        const ec_seq *sq = &t->seqs[q];
        for (size_t r = sq->row0; r < sq->row0 + sq->n_rows; r++) {
            if (!t->complete[r])
                continue;
            for (int32_t l = 0; l < L; l++) {
                const int16_t *ex = ec_trace_experts(t, r, l);
                int16_t *st = stack + (size_t)l * (size_t)E;
                for (int32_t j = 0; j < t->k; j++) {
                    int32_t d = 0;
                    while (d < depth[l] && st[d] != ex[j])
                        d++;
                    if (d < depth[l])
                        hist[(size_t)l * (size_t)E + (size_t)d]++; /* a hit from size d+1 up */
                    else
                        depth[l]++; /* first use: a miss at every size */
                    memmove(st + 1, st, (size_t)d * sizeof *st);
                    st[0] = ex[j];
                }
            }
        }
    }
    /* a pool of size c hits the uses at distance < c: slot c+1 adds hist[c] */
    int32_t left = total;
    for (int32_t l = 0; l < L; l++) {
        sizes[l] = min_per_layer;
        left -= min_per_layer;
    }
    while (left > 0) {
        int32_t best = -1;
        for (int32_t l = 0; l < L; l++)
            if (sizes[l] < E && (best < 0 || hist[(size_t)l * (size_t)E + (size_t)sizes[l]] >
                                                 hist[(size_t)best * (size_t)E + (size_t)sizes[best]]))
                best = l;
        sizes[best]++;
        left--;
    }
    ec_free(hist);
    ec_free(stack);
    ec_free(depth);
    return EC_OK;
}
