/*
 * expertcast/trace.h - routing traces: sequences x tokens x layers x top-k.
 *
 * A trace holds what a router chose: for every sequence (one prompt, keyed
 * by dataset and problem_id), every decoded token (a "row"), every MoE layer,
 * the top-k expert ids, highest gate first, and optionally their gate
 * weights. The number of layers, experts and k are properties of the trace.
 *
 * The raw format is the seed's JSONL, one record per (sequence, token, layer):
 *   {"dataset": "humaneval", "problem_id": 0, "layer": 0,
 *    "experts": [6, 5], "gating_probs": [0.69, 0.30], "token_idx": 0}
 * "token_pos" is accepted for "token_idx"; "dataset" and "problem_id" are
 * optional (default "" and 0); "gating_probs" is on every line or on none.
 * Any record may also carry the runtime's own guesses for later layers:
 *   "guesses": [{"ahead": 1, "experts": [3, 6], "probs": [0.61, 0.22]}]
 * (ahead in [1, n_layers]: the layer that many steps after the record's,
 * in the next token past the last layer; experts distinct; probs in [0, 1]
 * summing to at most 1 + EC_HINT_SUM_SLACK; each ahead at most once).
 * Unknown fields are ignored; a UTF-8 BOM and CRLF line ends are accepted.
 * A repeated (dataset, problem_id, token, layer) keeps the first record and
 * is counted in n_duplicates. A token missing some layer is kept, flagged
 * incomplete (complete[row] == 0) and its missing layers hold -1.
 */
#ifndef EXPERTCAST_TRACE_H
#define EXPERTCAST_TRACE_H

#include "expertcast/core.h"
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EC_MAX_K 64          /* largest top-k a trace may have */
#define EC_MAX_EXPERTS 32767 /* expert ids are stored as int16_t */
#define EC_MAX_LAYERS 4096

#define EC_MAX_GUESSES 16    /* guesses (values of ahead) one record may carry */
#define EC_HINT_SUM_SLACK 1e-3 /* how far above 1 one guess's probabilities may sum */

/* One guess carried by a record: for the layer `ahead` steps after the
 * record's, n experts and their probabilities. Read-only. */
typedef struct ec_guess {
    int32_t ahead;
    int32_t n;               /* 1 .. EC_MAX_K */
    const int16_t *experts;  /* [n] */
    const float *probs;      /* [n] */
} ec_guess;

/* One sequence (prompt). All fields read-only. */
typedef struct ec_seq {
    const char *dataset; /* "" when the input had none */
    int64_t problem_id;
    size_t row0;         /* first row of this sequence in the trace arrays */
    size_t n_rows;       /* its tokens, in ascending token_idx order */
} ec_seq;

/*
 * A loaded trace. Every field is read-only for the caller; the trace owns
 * every array. Row r, layer l: experts + (r * n_layers + l) * k.
 */
typedef struct ec_trace {
    int32_t n_layers;
    int32_t n_experts;
    int32_t k;
    int has_gates;          /* 1 when gates is non-NULL */
    size_t n_seqs;
    ec_seq *seqs;           /* [n_seqs], in order of first appearance */
    size_t n_rows;          /* tokens over all sequences */
    int64_t *token_idx;     /* [n_rows] the record's token_idx */
    uint8_t *complete;      /* [n_rows] 1 when every layer is present */
    int16_t *experts;       /* [n_rows][n_layers][k]; -1 for a missing layer */
    float *gates;           /* [n_rows][n_layers][k] or NULL */
    /* what the loader saw */
    size_t n_records;       /* records kept */
    size_t n_duplicates;    /* records dropped as repeated keys */
    size_t n_incomplete;    /* rows with a missing layer */
    /* the runtime's guesses, when any record carried some */
    size_t n_guesses;       /* guesses over all records (0: guess_off is NULL) */
    size_t *guess_off;      /* [n_rows * n_layers + 1]: the guesses of (row, layer) are
                               guesses[guess_off[i] .. guess_off[i + 1]), i = row * L + layer */
    ec_guess *guesses;      /* [n_guesses] */
    int16_t *guess_experts; /* storage the guesses point into */
    float *guess_probs;
} ec_trace;

typedef struct ec_trace_opts {
    int32_t n_layers;  /* 0: infer as max layer + 1; else a bound checked per line */
    int32_t n_experts; /* 0: infer as max expert + 1 (routed or guessed); else a bound
                          checked per line */
    size_t max_line;   /* longest accepted line in bytes; 0: 1 MiB */
} ec_trace_opts;

/*
 * Loads one or more raw JSONL files into one trace (sequences keep their
 * order of first appearance across files). On error *out is NULL and err
 * says "FILE:LINE: field 'F': what". opts may be NULL.
 */
ec_status ec_trace_load(const char *const *paths, size_t n_paths, const ec_trace_opts *opts,
                        ec_trace **out, ec_error *err);
void ec_trace_destroy(ec_trace *t);

/* Pointer to the k experts of (row, layer); first entry -1 when missing. */
static inline const int16_t *ec_trace_experts(const ec_trace *t, size_t row, int32_t layer)
{
    return t->experts + ((size_t)row * (size_t)t->n_layers + (size_t)layer) * (size_t)t->k;
}

/* Gates of (row, layer), or NULL when the trace has none. */
static inline const float *ec_trace_gates(const ec_trace *t, size_t row, int32_t layer)
{
    return t->gates ? t->gates + ((size_t)row * (size_t)t->n_layers + (size_t)layer) * (size_t)t->k
                    : NULL;
}

/* The guesses of (row, layer): *n of them (0: none, NULL returned). */
static inline const ec_guess *ec_trace_guesses(const ec_trace *t, size_t row, int32_t layer,
                                               size_t *n)
{
    size_t i = (size_t)row * (size_t)t->n_layers + (size_t)layer;
    *n = t->guess_off ? t->guess_off[i + 1] - t->guess_off[i] : 0;
    return *n ? t->guesses + t->guess_off[i] : NULL;
}

/*
 * What-if guesses: a copy of t (*out, destroy with ec_trace_destroy) whose
 * every record carries, for ahead = 1 .. max_ahead, a guess of the
 * experts actually used at that target (when it lies inside the sequence
 * and is present) drawn with recall `recall`: each of the k used experts
 * is in the guess with probability recall, and each one left out is
 * replaced by an expert drawn uniformly from those not used, so every
 * guess names k experts, in random order, each with probability 1/k.
 * Guesses t already carried are replaced (max_ahead 0: a copy without
 * any guesses, the reference). Deterministic for a seed (a
 * record's draw depends on the seed and its position only).
 */
ec_status ec_trace_draw_guesses(const ec_trace *t, double recall, int32_t max_ahead,
                                uint64_t seed, ec_trace **out, ec_error *err);

/* Index of the sequence that holds row (binary search). */
size_t ec_trace_seq_of_row(const ec_trace *t, size_t row);

/*
 * Writes the trace as raw JSONL, one record per present (row, layer), rows
 * in order, layers ascending. Floats are printed as Python's repr does.
 */
ec_status ec_trace_write_jsonl(const ec_trace *t, FILE *f, ec_error *err);

/* ---- synthetic traces ---------------------------------------------------- */

typedef struct ec_synth_opts {
    int32_t n_layers, n_experts, k;
    int32_t n_seqs, n_tokens;  /* sequences, tokens per sequence */
    uint64_t seed;
    double layer_locality;  /* 0..1: pull towards the experts the previous layer implies */
    double token_locality;  /* 0..1: pull towards the previous token's experts at this layer */
    double skew;            /* >= 0: Zipf exponent of each layer's expert popularity */
    int gates;              /* write gating_probs */
    const char *dataset;    /* dataset name written on every record ("synth" if NULL) */
} ec_synth_opts;

/* Defaults: 32 layers, 8 experts, top-2, 4 x 64 tokens, seed 1, locality
 * 0.5 / 0.4, skew 0.8, gates on. */
void ec_synth_opts_default(ec_synth_opts *o);

/* Generates a trace in memory. Deterministic for given options. */
ec_status ec_synth_generate(const ec_synth_opts *o, ec_trace **out, ec_error *err);

#ifdef __cplusplus
}
#endif
#endif
