/*
 * expertcast/predict.h - routing history and expert predictors.
 *
 * A predictor is fitted on a trace and then, given the routing history of
 * the sequence being decoded (this token's experts at the layers observed so
 * far and earlier tokens' experts at any layer), returns for a later layer a
 * probability for every expert. All predictors share one interface; each is
 * a small module under src/predict/.
 *
 * Position and horizon: the history's position is the last layer N observed
 * for the current token. A prediction with horizon h >= 1 is for layer
 * N + h of the current token when N + h < n_layers, else for layer
 * N + h - n_layers of the next token (h <= n_layers).
 */
#ifndef EXPERTCAST_PREDICT_H
#define EXPERTCAST_PREDICT_H

#include "expertcast/core.h"
#include "expertcast/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- routing history ---------------------------------------------------- */

/*
 * The last `depth` tokens of one sequence, plus the current one. Owned by
 * the caller (the loader, the simulator, the evaluator); predictors only
 * read it.
 */
typedef struct ec_history ec_history;

ec_status ec_history_create(int32_t n_layers, int32_t n_experts, int32_t k, int32_t depth,
                            ec_history **out);
void ec_history_destroy(ec_history *h);

/* Forgets everything: the next observation starts a new sequence. */
void ec_history_reset(ec_history *h);

/*
 * Records the router's choice at `layer` for the current token (k ids,
 * highest gate first). A layer <= the last observed one starts a new token
 * (the current token moves into the past). Layers skipped stay unknown.
 * Never allocates.
 */
void ec_history_observe(ec_history *h, int32_t layer, const int16_t *experts);

/*
 * Starts a new token explicitly: the next observation belongs to it even if
 * its layer lies after the last one observed (a token whose first layers
 * are missing, as in incomplete trace rows). Never allocates.
 */
void ec_history_next_token(ec_history *h);

/*
 * The k experts of the token `back` tokens ago (0 = current) at `layer`, or
 * NULL when unknown (not observed, or older than depth).
 */
const int16_t *ec_history_get(const ec_history *h, int32_t back, int32_t layer);

/*
 * The same set as a bit mask (bit e set for expert e) when the history has
 * at most 64 experts; 0 when unknown or when there are more experts. Lets a
 * predictor count the experts two tokens share with one popcount.
 */
uint64_t ec_history_mask(const ec_history *h, int32_t back, int32_t layer);

/* Last layer observed for the current token; -1 before any observation. */
int32_t ec_history_layer(const ec_history *h);
/* Tokens observed since the last reset (the current one included). */
int64_t ec_history_tokens(const ec_history *h);
int32_t ec_history_n_layers(const ec_history *h);
int32_t ec_history_n_experts(const ec_history *h);
int32_t ec_history_k(const ec_history *h);
int32_t ec_history_depth(const ec_history *h);

/* The target of horizon h from the history's position: layer and whether it
 * lies in the next token. Returns -1 for an invalid horizon. */
int32_t ec_history_target(const ec_history *h, int32_t horizon, int *next_token);

/* ---- the runtime's own guesses (hints) ---------------------------------- */

/*
 * Records the runtime's guess for the target of `horizon` from h's position
 * (as ec_history_target; before any observation, horizon 1 is layer 0 of
 * the first token): n distinct experts (1 <= n <= n_experts) with their
 * probabilities of being chosen (probs NULL: 1/n each; each in [0, 1], the
 * sum at most 1 + EC_HINT_SUM_SLACK), e.g. a softmax over the next layer's
 * router applied to the current hidden state. It is kept as a distribution
 * over every expert like a predictor's output: the listed probabilities,
 * and what they leave of 1 spread evenly over the experts not listed. A
 * later guess for the same target replaces it; it lasts until the history
 * moves past the target or is reset. EC_ERR_INVALID for a bad argument
 * (nothing recorded). Never allocates.
 */
ec_status ec_history_hint(ec_history *h, int32_t horizon, const int16_t *experts,
                          const float *probs, int32_t n);

/* Records the guesses trace t carries at (row, layer) - call it right
 * after observing that record - as ec_history_hint does, horizon = ahead.
 * Returns how many were recorded. */
int32_t ec_history_hint_trace(ec_history *h, const ec_trace *t, size_t row, int32_t layer);

/* The guess recorded for the target of `horizon` from h's position
 * (n_experts floats summing to about 1), or NULL when there is none. */
const float *ec_history_hint_get(const ec_history *h, int32_t horizon);

/* ---- predictors --------------------------------------------------------- */

typedef struct ec_predictor ec_predictor;

/* Options; zero means "the predictor's default". */
typedef struct ec_predictor_opts {
    int32_t context;      /* ngram: layers of context; logistic: layers back */
    int32_t tokens_back;  /* temporal/logistic: earlier tokens used */
    double smoothing;     /* additive smoothing / backoff weight */
    int32_t epochs;       /* logistic: passes over the data */
    double learning_rate; /* logistic */
    double l2;            /* logistic: L2 penalty */
    int32_t per_layer;    /* logistic: one model per layer (1) or shared (0) */
    uint64_t seed;        /* anything random (shuffling) */
    int32_t max_horizon;  /* largest horizon the model is fitted for (default 4) */
} ec_predictor_opts;

/*
 * Names: "prior", "seed-l1" ... "seed-l5", "hybrid", "ngram", "temporal",
 * "logistic", "mix", and "hint": the runtime's guesses recorded in the
 * history (ec_history_hint), falling back to the layer prior (an
 * abstention) where there is none; unlike the others it also predicts
 * unfitted (its fallback is then uniform) and is not in
 * ec_predictor_names(), which lists the predictors that learn from routing
 * alone. opts may be NULL. EC_ERR_NOT_FOUND for an unknown name.
 */
ec_status ec_predictor_create(const char *name, const ec_predictor_opts *opts,
                              ec_predictor **out, ec_error *err);
void ec_predictor_destroy(ec_predictor *p);

/* The NULL-terminated list of predictor names. */
const char *const *ec_predictor_names(void);
const char *ec_predictor_name(const ec_predictor *p);
/* Message of the last failed call on this predictor ("" if none). */
const char *ec_predictor_errmsg(const ec_predictor *p);

/*
 * Fits on the complete rows of the sequences whose seq_mask entry is
 * non-zero (seq_mask NULL = every sequence). Refitting replaces the model.
 * The trace's n_layers / n_experts / k become the predictor's shape.
 */
ec_status ec_predictor_fit(ec_predictor *p, const ec_trace *t, const uint8_t *seq_mask);

/*
 * Creates predictor `name` (opts may be NULL) fitted on the sequences of t
 * that are not held out (held_out[i] != 0 holds sequence i out; NULL: none),
 * so that replaying the held-out ones measures it without leakage. When
 * every sequence is held out there is nothing else to fit on: it is fitted
 * on all of them and *in_sample (may be NULL) is set to 1 - its figures are
 * then optimistic and must be reported as in-sample; else *in_sample is 0.
 * On failure *out is NULL and err names the predictor.
 */
ec_status ec_predictor_create_heldout(const char *name, const ec_predictor_opts *opts,
                                      const ec_trace *t, const uint8_t *held_out,
                                      ec_predictor **out, int *in_sample, ec_error *err);

/*
 * Earlier tokens the predictor reads (opts.tokens_back, 0 when it reads
 * none): create the ec_history passed to predict with at least this depth,
 * or the prediction sees less than the fit did.
 */
int32_t ec_predictor_history_depth(const ec_predictor *p);

/* Shape the predictor was fitted for (0 before fitting). */
int32_t ec_predictor_n_layers(const ec_predictor *p);
int32_t ec_predictor_n_experts(const ec_predictor *p);

/*
 * Hot path. Writes probs[n_experts] (non-negative, summing to 1) for the
 * target of `horizon` from h's position. Returns 1 when the predictor made
 * an informed prediction, 0 when it abstained (probs then hold its
 * fallback, a uniform or prior distribution) and -1 on a bad argument.
 * Never allocates and never fails for a fitted predictor whose shape
 * matches h. Thread-safe for concurrent calls on one predictor.
 */
int ec_predictor_predict(const ec_predictor *p, const ec_history *h, int32_t horizon,
                         float *probs);

/* Saves to / loads from a JSON file (written as an ec_outfile: atomically,
 * "-" for stdout). Load refuses a file whose "version" is not 1. A rules
 * file from "expertcast rules create" loads as the seed predictors' tables. */
ec_status ec_predictor_save(const ec_predictor *p, const char *path, ec_error *err);
ec_status ec_predictor_load(const char *path, ec_predictor **out, ec_error *err);

/*
 * Ranks probs[n] in decreasing order into idx[m] (m <= n), ties by lower
 * expert id. Never allocates.
 */
void ec_rank(const float *probs, int32_t n, int32_t *idx, int32_t m);

/* ---- the seed's rules as predictors ---------------------------------------------------------- */

/*
 * The predictors "seed-l1" ... "seed-l4" (horizon 1), "seed-l5" (skip rules,
 * horizons 2, 4, 8) and "hybrid" (level3 -> level2 -> level1 -> layer
 * prior at horizon 1, skip rule -> prior at 2, 4, 8; always answers) are
 * created and fitted with ec_predictor_create / ec_predictor_fit like any
 * other predictor.
 *
 * This loads a rules JSON (from "rules create" or the seed's
 * create_rules.py) as the seed predictor `name` (NULL: "hybrid"); the
 * shape is the rules' (ec_seed_rules_load, expertcast/seed.h). A rules file holds no layer
 * frequencies, so the prior (hybrid's last resort, and the rest of every
 * distribution) is uniform. ec_predictor_load calls this with "hybrid" for
 * a file that has "level1" and no "format". EC_ERR_INVALID for a name that
 * is not a seed predictor.
 */
ec_status ec_predictor_load_seed_rules(const char *path, const char *name, ec_predictor **out,
                                       ec_error *err);

#ifdef __cplusplus
}
#endif
#endif
