/* Training replay: the sequences of a trace, observation by observation. */
#include "replay.h"

ec_status ec_replay_train(const ec_trace *t, const uint8_t *seq_mask, int32_t depth,
                          ec_replay_fn fn, void *ctx)
{
    ec_history *h;
    ec_status s = ec_history_create(t->n_layers, t->n_experts, t->k, depth, &h);
    if (s)
        return s;
    ec_replay_pos pos = {.t = t, .h = h};
    for (size_t q = 0; q < t->n_seqs && !s; q++) {
        if (seq_mask && !seq_mask[q])
            continue;
        const ec_seq *sq = &t->seqs[q];
        ec_history_reset(h);
        pos.seq = q;
        pos.row_end = sq->row0 + sq->n_rows;
        for (size_t r = sq->row0; r < pos.row_end && !s; r++) {
            int first = 1;
            pos.row = r;
            for (int32_t l = 0; l < t->n_layers && !s; l++) {
                const int16_t *e = ec_trace_experts(t, r, l);
                if (e[0] < 0)
                    continue;
                if (first && r > sq->row0 && l > ec_history_layer(h))
                    ec_history_next_token(h);
                first = 0;
                ec_history_observe(h, l, e);
                ec_history_hint_trace(h, t, r, l);
                pos.layer = l;
                s = fn(ctx, &pos);
            }
        }
    }
    ec_history_destroy(h);
    return s;
}

const int16_t *ec_replay_target(const ec_replay_pos *pos, int32_t horizon, int32_t *target,
                                int *next)
{
    *target = ec_history_target(pos->h, horizon, next);
    if (*target < 0 || pos->row + (size_t)*next >= pos->row_end)
        return NULL;
    const int16_t *e = ec_trace_experts(pos->t, pos->row + (size_t)*next, *target);
    return e[0] < 0 ? NULL : e;
}
