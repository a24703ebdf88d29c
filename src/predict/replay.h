/*
 * Training replay: walks the training sequences of a trace through an
 * ec_history exactly as a decoder would see them, so that predictors build
 * their features at fit time with the same code they use to predict.
 */
#ifndef EC_REPLAY_H
#define EC_REPLAY_H

#include "predictor.h"

/* Where the replay stands after one observation. */
typedef struct ec_replay_pos {
    const ec_trace *t;
    const ec_history *h;  /* holds the sequence up to (row, layer) */
    size_t seq;           /* index in t->seqs */
    size_t row;           /* current row (token) */
    size_t row_end;       /* one past the sequence's last row */
    int32_t layer;        /* layer just observed */
} ec_replay_pos;

/* Called after every observation; a non-zero status stops the replay. */
typedef ec_status (*ec_replay_fn)(void *ctx, const ec_replay_pos *pos);

/*
 * Replays every sequence whose seq_mask entry is non-zero (NULL: all),
 * using seqs[s].row0 and n_rows (so a truncated view of a trace works).
 * Missing layers are skipped; a row whose first present layer lies after
 * the previous row's last one still starts a new token. The history is
 * created with `depth` earlier tokens and freed before returning.
 */
ec_status ec_replay_train(const ec_trace *t, const uint8_t *seq_mask, int32_t depth,
                          ec_replay_fn fn, void *ctx);

/*
 * The actual experts at the target of `horizon` from pos, or NULL when the
 * target lies past the sequence or is missing. *target and *next receive
 * the target layer and whether it is in the next token.
 */
const int16_t *ec_replay_target(const ec_replay_pos *pos, int32_t horizon, int32_t *target,
                                int *next);

#endif
