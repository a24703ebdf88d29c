/*
 * The routing history's layout, for the predictors' hot paths: inline reads
 * without the bounds arithmetic of a call per expert set. Same semantics as
 * ec_history_get / ec_history_mask. Not installed.
 */
#ifndef EC_HISTORY_INTERNAL_H
#define EC_HISTORY_INTERNAL_H

#include "expertcast/predict.h"

struct ec_history {
    int32_t L, E, k, depth;
    int32_t ring;     /* depth + 1 token slots */
    int32_t cur;      /* slot of the current token */
    int32_t layer;    /* last layer observed for the current token */
    int64_t tokens;   /* tokens since reset */
    int pending;      /* 1: the next observation starts a new token */
    int16_t *ex;      /* [ring][L][k], -1 = unknown */
    uint64_t *mask;   /* [ring][L] bit set of the experts (E <= 64), 0 = unknown */
    float *hint;      /* [L][E] the runtime's guess for the next occurrence of each layer */
    int64_t *hint_tok;/* [L] token (count since reset, 0-based) the guess is for, -1 none */
};

/* Ring slot of the token `back` tokens ago, or -1 when it is not held. */
static inline int32_t ec_hist_slot(const ec_history *h, int32_t back)
{
    if (back < 0 || back > h->depth || back >= h->tokens)
        return -1;
    int32_t r = h->cur - back;
    return r < 0 ? r + h->ring : r;
}

/* The k experts of (slot, layer), or NULL when unknown; layer in range. */
static inline const int16_t *ec_hist_set(const ec_history *h, int32_t slot, int32_t layer)
{
    const int16_t *e = h->ex + ((size_t)slot * (size_t)h->L + (size_t)layer) * (size_t)h->k;
    return e[0] < 0 ? NULL : e;
}

/* The masks [L] of a slot (E <= 64; 0 = unknown). */
static inline const uint64_t *ec_hist_masks(const ec_history *h, int32_t slot)
{
    return h->mask + (size_t)slot * (size_t)h->L;
}

#endif
