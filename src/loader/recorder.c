/* Recording of observed routing as raw JSONL: kept in memory during the
 * run, written as one output file (ec_outfile) at commit. */
#include "recorder.h"
#include "../trace/jsonl.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A guess waiting for its record's line to close. */
typedef struct rec_guess {
    int32_t ahead, n;
    int16_t experts[EC_MAX_K];
    float probs[EC_MAX_K];
} rec_guess;

struct ec_recorder {
    char *path;
    char *buf;
    size_t len, cap;
    int failed;
    int open;                          /* the last record's line awaits its guesses */
    int32_t n_guesses;
    rec_guess guesses[EC_MAX_GUESSES];
};

/* Where the recording will go must be writable: found now, not after the run. */
static ec_status check_target(const char *path, ec_error *err)
{
    struct stat sb;
    if (strcmp(path, "-") == 0)
        return EC_OK;
    if (stat(path, &sb) == 0)
        return S_ISDIR(sb.st_mode)
                   ? ec_error_set(err, EC_ERR_IO, "%s: is a directory, expected a file path",
                                  path)
                   : EC_OK;
    const char *slash = strrchr(path, '/');
    char *dir = ec_malloc(slash ? (size_t)(slash - path) + 2 : 2);
    if (!dir)
        return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
    if (slash) {
        memcpy(dir, path, (size_t)(slash - path) + 1);
        dir[slash - path + 1] = '\0';
    } else
        strcpy(dir, ".");
    ec_status s = EC_OK;
    if (access(dir, W_OK | X_OK) != 0)
        s = ec_error_set(err, EC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    ec_free(dir);
    return s;
}

ec_status ec_recorder_open(const char *path, ec_recorder **out, ec_error *err)
{
    *out = NULL;
    ec_status s = check_target(path, err);
    if (s)
        return s;
    ec_recorder *r = ec_calloc(1, sizeof *r);
    if (!r || !(r->path = ec_strdup(path))) {
        ec_free(r);
        return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
    }
    *out = r;
    return EC_OK;
}

static void append(ec_recorder *r, const char *s, size_t n)
{
    if (r->failed)
        return;
    if (ec_grow((void **)&r->buf, &r->cap, r->len + n, 1)) {
        r->failed = 1;
        return;
    }
    memcpy(r->buf + r->len, s, n);
    r->len += n;
}

/* s as a JSON string literal, as ec_json_write_string writes it. */
static void append_string(ec_recorder *r, const char *s)
{
    append(r, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            append(r, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            append(r, esc, 6);
        } else
            append(r, (const char *)s, 1);
    }
    append(r, "\"", 1);
}

/* Ends the open line: its guesses, then the closing brace. */
static void close_line(ec_recorder *r)
{
    if (!r->open)
        return;
    char num[48];
    if (r->n_guesses) {
        append(r, ", \"guesses\": [", 14);
        for (int32_t g = 0; g < r->n_guesses; g++) {
            const rec_guess *q = &r->guesses[g];
            int n = snprintf(num, sizeof num, "%s{\"ahead\": %d, \"experts\": [", g ? ", " : "",
                             q->ahead);
            append(r, num, (size_t)n);
            for (int32_t i = 0; i < q->n; i++) {
                n = snprintf(num, sizeof num, "%s%d", i ? ", " : "", q->experts[i]);
                append(r, num, (size_t)n);
            }
            append(r, "], \"probs\": [", 13);
            for (int32_t i = 0; i < q->n; i++) {
                if (i)
                    append(r, ", ", 2);
                ec_fmt_pyfloat((double)q->probs[i], num);
                append(r, num, strlen(num));
            }
            append(r, "]}", 2);
        }
        append(r, "]", 1);
    }
    append(r, "}\n", 2);
    r->open = 0;
    r->n_guesses = 0;
}

ec_status ec_recorder_write(ec_recorder *r, const char *dataset, int64_t problem_id,
                            int64_t token, int32_t layer, const int16_t *experts, int32_t k)
{
    char num[96];
    close_line(r);
    append(r, "{\"dataset\": ", 12);
    append_string(r, dataset);
    int n = snprintf(num, sizeof num, ", \"problem_id\": %lld, \"layer\": %d, \"experts\": [",
                     (long long)problem_id, (int)layer);
    append(r, num, (size_t)n);
    for (int32_t i = 0; i < k; i++) {
        n = snprintf(num, sizeof num, "%s%d", i ? ", " : "", experts[i]);
        append(r, num, (size_t)n);
    }
    n = snprintf(num, sizeof num, "], \"token_idx\": %lld", (long long)token);
    append(r, num, (size_t)n);
    r->open = 1;
    return r->failed ? EC_ERR_NOMEM : EC_OK;
}

static void recorder_free(ec_recorder *r)
{
    ec_free(r->path);
    ec_free(r->buf);
    ec_free(r);
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
        recorder_free(r);
        return ec_error_set(err, EC_ERR_NOMEM,
                            "recording: out of memory; nothing was written");
    }
    ec_outfile *o;
    FILE *f;
    ec_status s = ec_outfile_open(r->path, &o, &f, err);
    if (!s) {
        if (r->len)
            fwrite(r->buf, 1, r->len, f);
        s = ec_outfile_commit(o, err);
    }
    recorder_free(r);
    return s;
}

void ec_recorder_abort(ec_recorder *r)
{
    if (r)
        recorder_free(r);
}
