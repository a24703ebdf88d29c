/*
 * What-if guesses: a trace's records given guesses drawn from its own
 * future with a chosen recall - to ask how good a runtime's guess must be
 * before prefetching pays, never to stand in for a predictor.
 */
#include "jsonl.h"
#include "../core/rng.h"

#include <string.h>

/* A deep copy of t without its guesses. */
static ec_status copy_routing(const ec_trace *t, ec_trace **out)
{
    ec_trace *c = ec_calloc(1, sizeof *c);
    if (!c)
        return EC_ERR_NOMEM;
    *c = *t;
    c->seqs = NULL;
    c->token_idx = NULL;
    c->complete = NULL;
    c->experts = NULL;
    c->gates = NULL;
    c->n_seqs = 0;
    c->n_guesses = 0;
    c->guess_off = NULL;
    c->guesses = NULL;
    c->guess_experts = NULL;
    c->guess_probs = NULL;
    size_t rows = EC_MAX(t->n_rows, 1), cells = rows * (size_t)t->n_layers * (size_t)t->k;
    c->seqs = ec_calloc(EC_MAX(t->n_seqs, 1), sizeof *c->seqs);
    c->token_idx = ec_malloc(rows * sizeof *c->token_idx);
    c->complete = ec_malloc(rows);
    c->experts = ec_malloc(cells * sizeof *c->experts);
    if (t->gates)
        c->gates = ec_malloc(cells * sizeof *c->gates);
    if (!c->seqs || !c->token_idx || !c->complete || !c->experts || (t->gates && !c->gates)) {
        ec_trace_destroy(c);
        return EC_ERR_NOMEM;
    }
    for (size_t i = 0; i < t->n_seqs; i++) {
        c->seqs[i] = t->seqs[i];
        c->seqs[i].dataset = ec_strdup(t->seqs[i].dataset);
        if (!c->seqs[i].dataset) {
            ec_trace_destroy(c);
            return EC_ERR_NOMEM;
        }
        c->n_seqs = i + 1;
    }
    memcpy(c->token_idx, t->token_idx, t->n_rows * sizeof *c->token_idx);
    memcpy(c->complete, t->complete, t->n_rows);
    cells = t->n_rows * (size_t)t->n_layers * (size_t)t->k;
    memcpy(c->experts, t->experts, cells * sizeof *c->experts);
    if (t->gates)
        memcpy(c->gates, t->gates, cells * sizeof *c->gates);
    *out = c;
    return EC_OK;
}

/* One guess of k experts for the used set `used`: each kept with
 * probability recall, each left out replaced by an unused expert. */
static int32_t draw(ec_rng *rng, const int16_t *used, int32_t k, int32_t E, double recall,
                    int16_t *guess)
{
    int32_t n = 0, missing = 0;
    for (int32_t i = 0; i < k; i++) {
        if (ec_rng_uniform(rng) < recall)
            guess[n++] = used[i];
        else
            missing++;
    }
    missing = EC_MIN(missing, E - k); /* no more wrong experts than exist */
    while (missing > 0) {
        int16_t e = (int16_t)ec_rng_below(rng, (uint32_t)E);
        int taken = 0;
        for (int32_t i = 0; i < k && !taken; i++)
            taken = used[i] == e;
        for (int32_t i = 0; i < n && !taken; i++)
            taken = guess[i] == e;
        if (!taken) {
            guess[n++] = e;
            missing--;
        }
    }
    for (int32_t i = n - 1; i > 0; i--) { /* the order says nothing */
        int32_t j = (int32_t)ec_rng_below(rng, (uint32_t)i + 1);
        int16_t x = guess[i];
        guess[i] = guess[j];
        guess[j] = x;
    }
    return n;
}

ec_status ec_trace_draw_guesses(const ec_trace *t, double recall, int32_t max_ahead,
                                uint64_t seed, ec_trace **out, ec_error *err)
{
    if (!out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_trace_draw_guesses: NULL out");
    *out = NULL;
    if (!t)
        return ec_error_set(err, EC_ERR_INVALID, "ec_trace_draw_guesses: NULL trace");
    if (!(recall >= 0 && recall <= 1))
        return ec_error_set(err, EC_ERR_INVALID, "what-if recall %g is not in [0, 1]", recall);
    if (max_ahead < 0 || max_ahead > t->n_layers || max_ahead > EC_MAX_GUESSES)
        return ec_error_set(err, EC_ERR_INVALID,
                            "what-if guesses: ahead %d is outside [0, min(%d layers, %d)]",
                            max_ahead, t->n_layers, EC_MAX_GUESSES);
    ec_trace *c;
    if (copy_routing(t, &c))
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory copying the trace");
    if (max_ahead == 0) {
        *out = c;
        return EC_OK;
    }
    const int32_t L = t->n_layers, k = t->k, E = t->n_experts;
    size_t cells = t->n_rows * (size_t)L, cap = cells * (size_t)max_ahead;
    c->guess_off = ec_malloc((cells + 1) * sizeof *c->guess_off);
    c->guesses = ec_malloc(EC_MAX(cap, 1) * sizeof *c->guesses);
    c->guess_experts = ec_malloc(EC_MAX(cap * (size_t)k, 1) * sizeof *c->guess_experts);
    c->guess_probs = ec_malloc(EC_MAX(cap * (size_t)k, 1) * sizeof *c->guess_probs);
    if (!c->guess_off || !c->guesses || !c->guess_experts || !c->guess_probs) {
        ec_trace_destroy(c);
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory drawing what-if guesses");
    }
    size_t n = 0, pool = 0;
    for (size_t q = 0; q < t->n_seqs; q++) {
        const ec_seq *sq = &t->seqs[q];
        for (size_t r = sq->row0; r < sq->row0 + sq->n_rows; r++)
            for (int32_t l = 0; l < L; l++) {
                c->guess_off[r * (size_t)L + (size_t)l] = n;
                if (ec_trace_experts(t, r, l)[0] < 0)
                    continue;
                for (int32_t a = 1; a <= max_ahead; a++) {
                    size_t tr = r + (size_t)((l + a) / L);
                    int32_t tl = (l + a) % L;
                    if (tr >= sq->row0 + sq->n_rows)
                        break;
                    const int16_t *used = ec_trace_experts(t, tr, tl);
                    if (used[0] < 0)
                        continue;
                    ec_rng rng;
                    ec_rng_seed(&rng, seed * 0x9e3779b97f4a7c15ull ^
                                          ((uint64_t)(r * (size_t)L + (size_t)l) << 8 |
                                           (uint64_t)a));
                    int16_t *g = c->guess_experts + pool;
                    int32_t m = draw(&rng, used, k, E, recall, g);
                    if (m == 0) /* every expert is used (k = n_experts), none kept */
                        continue;
                    for (int32_t i = 0; i < m; i++)
                        c->guess_probs[pool + (size_t)i] = 1.0f / (float)m;
                    c->guesses[n++] = (ec_guess){a, m, g, c->guess_probs + pool};
                    pool += (size_t)m;
                }
            }
    }
    c->guess_off[cells] = n;
    c->n_guesses = n;
    if (n == 0) { /* nothing to guess (one-token sequences): no guesses at all */
        ec_free(c->guess_off);
        c->guess_off = NULL;
    }
    *out = c;
    return EC_OK;
}
