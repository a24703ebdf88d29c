/*
 * The loader's recording: every observe as one raw JSONL record (the
 * seed's format, without gating_probs). Lines go through stdio into a
 * temporary file beside the target; ec_recorder_commit renames it into
 * place, so the target never holds a partial line or a partial trace.
 */
#ifndef EC_RECORDER_H
#define EC_RECORDER_H

#include "../core/internal.h"

typedef struct ec_recorder ec_recorder;

ec_status ec_recorder_open(const char *path, ec_recorder **out, ec_error *err);
/* Appends {"dataset", "problem_id", "layer", "experts", "token_idx"}. */
ec_status ec_recorder_write(ec_recorder *r, const char *dataset, int64_t problem_id,
                            int64_t token, int32_t layer, const int16_t *experts, int32_t k);
/* Flushes, syncs and renames into place; frees r. */
ec_status ec_recorder_commit(ec_recorder *r, ec_error *err);
/* Removes the temporary file; frees r. */
void ec_recorder_abort(ec_recorder *r);

#endif
