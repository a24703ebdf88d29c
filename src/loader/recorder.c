/* Recording of observed routing as raw JSONL: kept in memory during the
 * run, written as one output file (ec_outfile) at commit. */
#include "recorder.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ec_recorder {
    char *path;
    char *buf;
    size_t len, cap;
    int failed;
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

ec_status ec_recorder_write(ec_recorder *r, const char *dataset, int64_t problem_id,
                            int64_t token, int32_t layer, const int16_t *experts, int32_t k)
{
    char num[96];
    append(r, "{\"dataset\": ", 12);
    append_string(r, dataset);
    int n = snprintf(num, sizeof num, ", \"problem_id\": %lld, \"layer\": %d, \"experts\": [",
                     (long long)problem_id, (int)layer);
    append(r, num, (size_t)n);
    for (int32_t i = 0; i < k; i++) {
        n = snprintf(num, sizeof num, "%s%d", i ? ", " : "", experts[i]);
        append(r, num, (size_t)n);
    }
    n = snprintf(num, sizeof num, "], \"token_idx\": %lld}\n", (long long)token);
    append(r, num, (size_t)n);
    return r->failed ? EC_ERR_NOMEM : EC_OK;
}

static void recorder_free(ec_recorder *r)
{
    ec_free(r->path);
    ec_free(r->buf);
    ec_free(r);
}

ec_status ec_recorder_commit(ec_recorder *r, ec_error *err)
{
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
