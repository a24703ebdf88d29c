/* Recording of observed routing as raw JSONL, committed atomically. */
#include "recorder.h"
#include "../core/jsonstr.h"
#include "../trace/jsonl.h"

/* A guess waiting for its record's line to close. */
typedef struct rec_guess {
    int32_t ahead, n;
    int16_t experts[EC_MAX_K];
    float probs[EC_MAX_K];
} rec_guess;

struct ec_recorder {
    ec_outfile *out;
    FILE *f;
    int failed;
    int open;                          /* the last record's line awaits its guesses */
    int32_t n_guesses;
    rec_guess guesses[EC_MAX_GUESSES];
};

/* Ends the open line: its guesses, then the closing brace. */
static void close_line(ec_recorder *r)
{
    if (!r->open)
        return;
    FILE *f = r->f;
    char num[40];
    if (r->n_guesses) {
        fputs(", \"guesses\": [", f);
        for (int32_t g = 0; g < r->n_guesses; g++) {
            const rec_guess *q = &r->guesses[g];
            fprintf(f, "%s{\"ahead\": %d, \"experts\": [", g ? ", " : "", q->ahead);
            for (int32_t i = 0; i < q->n; i++)
                fprintf(f, "%s%d", i ? ", " : "", q->experts[i]);
            fputs("], \"probs\": [", f);
            for (int32_t i = 0; i < q->n; i++) {
                ec_fmt_pyfloat((double)q->probs[i], num);
                fprintf(f, "%s%s", i ? ", " : "", num);
            }
            fputs("]}", f);
        }
        fputc(']', f);
    }
    fputs("}\n", f);
    r->open = 0;
    r->n_guesses = 0;
    if (ferror(f))
        r->failed = 1;
}

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
    close_line(r);
    fputs("{\"dataset\": ", f);
    ec_json_write_string(f, dataset);
    fprintf(f, ", \"problem_id\": %lld, \"layer\": %d, \"experts\": [", (long long)problem_id,
            (int)layer);
    for (int32_t i = 0; i < k; i++)
        fprintf(f, "%s%d", i ? ", " : "", experts[i]);
    fprintf(f, "], \"token_idx\": %lld", (long long)token);
    r->open = 1;
    if (ferror(f)) {
        r->failed = 1;
        return EC_ERR_IO;
    }
    return EC_OK;
}

ec_status ec_recorder_guess(ec_recorder *r, int32_t ahead, const int16_t *experts,
                            const float *probs, int32_t n)
{
    if (!r->open || n < 1 || n > EC_MAX_K)
        return EC_ERR_INVALID;
    int32_t g = 0;
    while (g < r->n_guesses && r->guesses[g].ahead != ahead)
        g++;
    if (g == EC_MAX_GUESSES)
        return EC_ERR_INVALID;
    rec_guess *q = &r->guesses[g];
    q->ahead = ahead;
    q->n = n;
    for (int32_t i = 0; i < n; i++) {
        q->experts[i] = experts[i];
        q->probs[i] = probs ? probs[i] : 1.0f / (float)n;
    }
    if (g == r->n_guesses)
        r->n_guesses++;
    return EC_OK;
}

ec_status ec_recorder_commit(ec_recorder *r, ec_error *err)
{
    close_line(r);
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
