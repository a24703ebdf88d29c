/* How alike two tokens of a history routed: shared by temporal and logistic. */
#ifndef EC_SIMILAR_H
#define EC_SIMILAR_H

#include "expertcast/predict.h"

/*
 * Share of experts that the token `back` tokens ago had in common with the
 * current token at layers max(0, N - context + 1) .. N, in [0, 1]; -1 when
 * no layer of that range is known for both. Uses the history's bit masks
 * when there are at most 64 experts, else compares the k ids pairwise.
 * Never allocates.
 */
float ec_similarity(const ec_history *h, int32_t back, int32_t N, int32_t context);

#endif
