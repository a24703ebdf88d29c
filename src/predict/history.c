/* Routing history: a ring of the last `depth` tokens plus the current one. */
#include "../core/internal.h"
#include "history.h"

#include <string.h>


ec_status ec_history_create(int32_t n_layers, int32_t n_experts, int32_t k, int32_t depth,
                            ec_history **out)
{
    if (!out)
        return EC_ERR_INVALID;
    *out = NULL;
    if (n_layers < 1 || n_layers > EC_MAX_LAYERS || n_experts < 1 || n_experts > EC_MAX_EXPERTS ||
        k < 1 || k > EC_MAX_K || depth < 0 || depth > 4096)
        return EC_ERR_INVALID;
    ec_history *h = ec_calloc(1, sizeof *h);
    if (!h)
        return EC_ERR_NOMEM;
    h->L = n_layers;
    h->E = n_experts;
    h->k = k;
    h->depth = depth;
    h->ring = depth + 1;
    h->ex = ec_malloc((size_t)h->ring * (size_t)n_layers * (size_t)k * sizeof *h->ex);
    h->mask = ec_malloc((size_t)h->ring * (size_t)n_layers * sizeof *h->mask);
    h->hint = ec_malloc((size_t)n_layers * (size_t)n_experts * sizeof *h->hint);
    h->hint_tok = ec_malloc((size_t)n_layers * sizeof *h->hint_tok);
    if (!h->ex || !h->mask || !h->hint || !h->hint_tok) {
        ec_free(h->ex);
        ec_free(h->mask);
        ec_free(h->hint);
        ec_free(h->hint_tok);
        ec_free(h);
        return EC_ERR_NOMEM;
    }
    ec_history_reset(h);
    *out = h;
    return EC_OK;
}

void ec_history_destroy(ec_history *h)
{
    if (!h)
        return;
    ec_free(h->ex);
    ec_free(h->mask);
    ec_free(h->hint);
    ec_free(h->hint_tok);
    ec_free(h);
}

void ec_history_reset(ec_history *h)
{
    memset(h->ex, 0xff, (size_t)h->ring * (size_t)h->L * (size_t)h->k * sizeof *h->ex);
    memset(h->mask, 0, (size_t)h->ring * (size_t)h->L * sizeof *h->mask);
    h->cur = 0;
    h->layer = -1;
    h->tokens = 0;
    h->pending = 0;
    for (int32_t l = 0; l < h->L; l++)
        h->hint_tok[l] = -1;
}

void ec_history_next_token(ec_history *h) { h->pending = 1; }

static int16_t *slot(const ec_history *h, int32_t ring_index, int32_t layer)
{
    return h->ex + ((size_t)ring_index * (size_t)h->L + (size_t)layer) * (size_t)h->k;
}

void ec_history_observe(ec_history *h, int32_t layer, const int16_t *experts)
{
    if (layer < 0 || layer >= h->L)
        return;
    if (h->tokens == 0 || layer <= h->layer || h->pending) {
        h->pending = 0;
        if (h->tokens > 0)
            h->cur = (h->cur + 1) % h->ring;
        memset(slot(h, h->cur, 0), 0xff, (size_t)h->L * (size_t)h->k * sizeof *h->ex);
        memset(h->mask + (size_t)h->cur * (size_t)h->L, 0, (size_t)h->L * sizeof *h->mask);
        h->tokens++;
    }
    memcpy(slot(h, h->cur, layer), experts, (size_t)h->k * sizeof *experts);
    uint64_t m = 0;
    for (int32_t i = 0; h->E <= 64 && i < h->k; i++)
        m |= (uint64_t)1 << (experts[i] & 63);
    h->mask[(size_t)h->cur * (size_t)h->L + (size_t)layer] = m;
    h->layer = layer;
}

const int16_t *ec_history_get(const ec_history *h, int32_t back, int32_t layer)
{
    int32_t r = ec_hist_slot(h, back);
    return r < 0 || layer < 0 || layer >= h->L ? NULL : ec_hist_set(h, r, layer);
}

uint64_t ec_history_mask(const ec_history *h, int32_t back, int32_t layer)
{
    int32_t r = ec_hist_slot(h, back);
    return r < 0 || layer < 0 || layer >= h->L ? 0 : ec_hist_masks(h, r)[layer];
}

int32_t ec_history_layer(const ec_history *h) { return h->layer; }
int64_t ec_history_tokens(const ec_history *h) { return h->tokens; }
int32_t ec_history_n_layers(const ec_history *h) { return h->L; }
int32_t ec_history_n_experts(const ec_history *h) { return h->E; }
int32_t ec_history_k(const ec_history *h) { return h->k; }
int32_t ec_history_depth(const ec_history *h) { return h->depth; }

int32_t ec_history_target(const ec_history *h, int32_t horizon, int *next_token)
{
    if (horizon < 1 || horizon > h->L)
        return -1;
    int32_t t = h->layer + horizon;
    *next_token = t >= h->L;
    return *next_token ? t - h->L : t;
}

/* The token (0-based count since reset) holding the target of `horizon`,
 * and its layer; -1 for an invalid horizon. Before any observation the
 * position is "before layer 0 of token 0"; after ec_history_next_token,
 * the target counts from the end of the last token observed. */
static int32_t hint_target(const ec_history *h, int32_t horizon, int64_t *tok)
{
    if (horizon < 1 || horizon > h->L)
        return -1;
    if (h->tokens == 0) {
        *tok = 0;
        return horizon - 1;
    }
    int next;
    int32_t t = ec_history_target(h, horizon, &next);
    *tok = h->tokens - 1 + next;
    return t;
}

ec_status ec_history_hint(ec_history *h, int32_t horizon, const int16_t *experts,
                          const float *probs, int32_t n)
{
    int64_t tok;
    int32_t t = h ? hint_target(h, horizon, &tok) : -1;
    if (t < 0 || n < 1 || n > h->E || !experts)
        return EC_ERR_INVALID;
    double sum = 0;
    for (int32_t i = 0; i < n; i++) {
        if (experts[i] < 0 || experts[i] >= h->E)
            return EC_ERR_INVALID;
        for (int32_t j = 0; j < i; j++)
            if (experts[j] == experts[i])
                return EC_ERR_INVALID;
        double q = probs ? (double)probs[i] : 1.0 / n;
        if (!(q >= 0 && q <= 1))
            return EC_ERR_INVALID;
        sum += q;
    }
    if (sum > 1.0 + EC_HINT_SUM_SLACK)
        return EC_ERR_INVALID;
    float *row = h->hint + (size_t)t * (size_t)h->E;
    double rest = n < h->E && sum < 1.0 ? (1.0 - sum) / (double)(h->E - n) : 0.0;
    for (int32_t e = 0; e < h->E; e++)
        row[e] = (float)rest;
    for (int32_t i = 0; i < n; i++)
        row[experts[i]] = probs ? probs[i] : (float)(1.0 / n);
    h->hint_tok[t] = tok;
    return EC_OK;
}

const float *ec_history_hint_get(const ec_history *h, int32_t horizon)
{
    int64_t tok;
    int32_t t = hint_target(h, horizon, &tok);
    if (t < 0 || h->hint_tok[t] != tok)
        return NULL;
    return h->hint + (size_t)t * (size_t)h->E;
}

int32_t ec_history_hint_trace(ec_history *h, const ec_trace *t, size_t row, int32_t layer)
{
    size_t n;
    const ec_guess *g = ec_trace_guesses(t, row, layer, &n);
    int32_t done = 0;
    for (size_t i = 0; i < n; i++)
        done += ec_history_hint(h, g[i].ahead, g[i].experts, g[i].probs, g[i].n) == EC_OK;
    return done;
}
