/* Routing similarity of earlier tokens to the current one. */
#include "similar.h"
#include "history.h"

#include <string.h>

#define WORDS_MAX 64 /* bit set words: up to 4096 experts */

static inline int32_t popcount64(uint64_t x)
{
#if defined(__GNUC__)
    return __builtin_popcountll(x);
#else
    int32_t n = 0;
    for (; x; x &= x - 1)
        n++;
    return n;
#endif
}

/* E <= 64: one popcount per layer. */
static void by_masks(const ec_history *h, int32_t lo, int32_t nl, int32_t W, float *sims)
{
    const uint64_t *cur = ec_hist_masks(h, ec_hist_slot(h, 0)) + lo;
    for (int32_t b = 1; b <= W; b++) {
        int32_t slot = ec_hist_slot(h, b);
        int32_t shared = 0, total = 0;
        if (slot >= 0) {
            const uint64_t *row = ec_hist_masks(h, slot) + lo;
            for (int32_t i = 0; i < nl; i++)
                if (cur[i] && row[i]) {
                    shared += popcount64(cur[i] & row[i]);
                    total += h->k;
                }
        }
        sims[b - 1] = total ? (float)shared / (float)total : -1.0f;
    }
}

/* E <= 4096: the current token's sets as bit sets, k bit tests per layer. */
static void by_bits(const ec_history *h, int32_t lo, int32_t nl, int32_t W, float *sims)
{
    uint64_t bits[EC_SIMILAR_MAX_CONTEXT][WORDS_MAX];
    int known[EC_SIMILAR_MAX_CONTEXT];
    const int32_t words = (h->E + 63) / 64, cur = ec_hist_slot(h, 0);
    for (int32_t i = 0; i < nl; i++) {
        const int16_t *e = ec_hist_set(h, cur, lo + i);
        known[i] = e != NULL;
        memset(bits[i], 0, (size_t)words * sizeof bits[i][0]);
        for (int32_t j = 0; e && j < h->k; j++)
            bits[i][e[j] >> 6] |= (uint64_t)1 << (e[j] & 63);
    }
    for (int32_t b = 1; b <= W; b++) {
        int32_t slot = ec_hist_slot(h, b);
        int32_t shared = 0, total = 0;
        for (int32_t i = 0; slot >= 0 && i < nl; i++) {
            const int16_t *e = known[i] ? ec_hist_set(h, slot, lo + i) : NULL;
            if (!e)
                continue;
            for (int32_t j = 0; j < h->k; j++)
                shared += (int32_t)((bits[i][e[j] >> 6] >> (e[j] & 63)) & 1);
            total += h->k;
        }
        sims[b - 1] = total ? (float)shared / (float)total : -1.0f;
    }
}

/* Any E: pairwise comparison of the ids. */
static void by_pairs(const ec_history *h, int32_t lo, int32_t nl, int32_t W, float *sims)
{
    const int32_t cur = ec_hist_slot(h, 0);
    for (int32_t b = 1; b <= W; b++) {
        int32_t slot = ec_hist_slot(h, b);
        int32_t shared = 0, total = 0;
        for (int32_t i = 0; slot >= 0 && i < nl; i++) {
            const int16_t *a = ec_hist_set(h, cur, lo + i), *e = ec_hist_set(h, slot, lo + i);
            if (!a || !e)
                continue;
            for (int32_t x = 0; x < h->k; x++)
                for (int32_t y = 0; y < h->k; y++)
                    shared += a[x] == e[y];
            total += h->k;
        }
        sims[b - 1] = total ? (float)shared / (float)total : -1.0f;
    }
}

void ec_similarities(const ec_history *h, int32_t N, int32_t context, int32_t W, float *sims)
{
    int32_t lo = N - context + 1 < 0 ? 0 : N - context + 1;
    int32_t nl = N - lo + 1;
    if (ec_hist_slot(h, 0) < 0 || N < 0 || N >= h->L || nl > EC_SIMILAR_MAX_CONTEXT) {
        for (int32_t b = 0; b < W; b++)
            sims[b] = -1.0f;
        return;
    }
    if (h->E <= 64)
        by_masks(h, lo, nl, W, sims);
    else if (h->E <= 64 * WORDS_MAX)
        by_bits(h, lo, nl, W, sims);
    else
        by_pairs(h, lo, nl, W, sims);
}
