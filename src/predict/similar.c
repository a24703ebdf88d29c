/* Routing similarity of an earlier token to the current one. */
#include "similar.h"

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

float ec_similarity(const ec_history *h, int32_t back, int32_t N, int32_t context)
{
    const int32_t K = ec_history_k(h);
    const int masks = ec_history_n_experts(h) <= 64;
    int32_t shared = 0, total = 0;
    for (int32_t l = N - context + 1 < 0 ? 0 : N - context + 1; l <= N; l++) {
        if (masks) {
            uint64_t a = ec_history_mask(h, 0, l), b = ec_history_mask(h, back, l);
            if (!a || !b)
                continue;
            shared += popcount64(a & b);
        } else {
            const int16_t *a = ec_history_get(h, 0, l), *b = ec_history_get(h, back, l);
            if (!a || !b)
                continue;
            for (int32_t i = 0; i < K; i++)
                for (int32_t j = 0; j < K; j++)
                    shared += a[i] == b[j];
        }
        total += K;
    }
    return total ? (float)shared / (float)total : -1.0f;
}
