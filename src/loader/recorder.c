/* Recording of observed routing as raw JSONL, committed atomically. */
#include "recorder.h"
#include "../core/jsonstr.h"

struct ec_recorder {
    ec_outfile *out;
    FILE *f;
    int failed;
};

ec_status ec_recorder_open(const char *path, ec_recorder **out, ec_error *err)
{
    *out = NULL;
    ec_recorder *r = ec_calloc(1, sizeof *r);
    if (!r)
        return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
    ec_status s = ec_outfile_open(path, &r->out, &r->f, err);
    if (s) {
        ec_free(r);
        return s;
    }
    *out = r;
    return EC_OK;
}

ec_status ec_recorder_write(ec_recorder *r, const char *dataset, int64_t problem_id,
                            int64_t token, int32_t layer, const int16_t *experts, int32_t k)
{
    FILE *f = r->f;
    fputs("{\"dataset\": ", f);
    ec_json_write_string(f, dataset);
    fprintf(f, ", \"problem_id\": %lld, \"layer\": %d, \"experts\": [", (long long)problem_id,
            (int)layer);
    for (int32_t i = 0; i < k; i++)
        fprintf(f, "%s%d", i ? ", " : "", experts[i]);
    fprintf(f, "], \"token_idx\": %lld}\n", (long long)token);
    if (ferror(f)) {
        r->failed = 1;
        return EC_ERR_IO;
    }
    return EC_OK;
}

ec_status ec_recorder_commit(ec_recorder *r, ec_error *err)
{
    if (r->failed) {
        ec_outfile_abort(r->out);
        ec_free(r);
        return ec_error_set(err, EC_ERR_IO, "recording: a write failed; nothing was committed");
    }
    ec_status s = ec_outfile_commit(r->out, err);
    ec_free(r);
    return s;
}

void ec_recorder_abort(ec_recorder *r)
{
    if (!r)
        return;
    ec_outfile_abort(r->out);
    ec_free(r);
}
