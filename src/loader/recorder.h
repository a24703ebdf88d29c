/*
 * The loader's recording: every observe as one raw JSONL record (the
 * seed's format, without gating_probs), with the runtime's hints given
 * after it as its "guesses". Lines are kept in memory (about 90 bytes per
 * token and layer, more with guesses) and written at ec_recorder_commit as
 * one output file (ec_outfile: a temporary renamed into place), so that no
 * temporary exists during the run and the target never holds a partial
 * trace. Open checks that the target can be created.
 */
#ifndef EC_RECORDER_H
#define EC_RECORDER_H

#include "../core/internal.h"

typedef struct ec_recorder ec_recorder;

ec_status ec_recorder_open(const char *path, ec_recorder **out, ec_error *err);
/* Appends {"dataset", "problem_id", "layer", "experts", "token_idx"};
 * EC_ERR_NOMEM when memory runs out (then commit fails too). */
ec_status ec_recorder_write(ec_recorder *r, const char *dataset, int64_t problem_id,
                            int64_t token, int32_t layer, const int16_t *experts, int32_t k);
/* The runtime's guess `ahead` layers after the last record written: kept
 * (replacing an earlier one for the same ahead) and written in that
 * record's "guesses" field when its line closes (next write or commit).
 * probs NULL: 1/n each. EC_ERR_INVALID with no record yet, or past
 * EC_MAX_GUESSES guesses for one record. */
ec_status ec_recorder_guess(ec_recorder *r, int32_t ahead, const int16_t *experts,
                            const float *probs, int32_t n);
/* Writes the recording to its path (ec_outfile); frees r. */
ec_status ec_recorder_commit(ec_recorder *r, ec_error *err);
/* Drops the recording; frees r. */
void ec_recorder_abort(ec_recorder *r);

#endif
