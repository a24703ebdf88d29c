/* How alike earlier tokens of a history routed to the current one: shared
 * by temporal and logistic. */
#ifndef EC_SIMILAR_H
#define EC_SIMILAR_H

#include "expertcast/predict.h"

#define EC_SIMILAR_MAX_CONTEXT 16

/*
 * For b = 1..W, sims[b - 1] = the share of experts that the token b tokens
 * ago had in common with the current token at layers
 * max(0, N - context + 1) .. N, in [0, 1]; -1 when the token is not held or
 * no layer of that range is known for both. context <= EC_SIMILAR_MAX_CONTEXT.
 * Uses the history's bit masks for at most 64 experts, a bit set of the
 * current token's experts for up to 4096, pairwise comparison beyond.
 * Never allocates.
 */
void ec_similarities(const ec_history *h, int32_t N, int32_t context, int32_t W, float *sims);

#endif
