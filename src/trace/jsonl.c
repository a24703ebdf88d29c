/* Raw routing JSONL: line reading and per-field validation. */
#include "jsonl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_MAX_LINE ((size_t)1 << 20)

typedef struct reader {
    const char *path;
    size_t line;
    ec_error *err;
} reader;

static ec_status fail(const reader *r, const char *field, const char *fmt, ...) EC_PRINTF(3, 4);

static ec_status fail(const reader *r, const char *field, const char *fmt, ...)
{
    char what[EC_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (field)
        return ec_error_set(r->err, EC_ERR_PARSE, "%s:%zu: field '%s': %s", r->path, r->line,
                            field, what);
    return ec_error_set(r->err, EC_ERR_PARSE, "%s:%zu: %s", r->path, r->line, what);
}

/* An integral JSON number in [lo, hi]: not a string, not 7.5, not -0,
 * not 1e309. */
static ec_status int_value(const reader *r, const cJSON *v, const char *field, int64_t lo,
                           int64_t hi, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return fail(r, field, "expected an integer, got %s",
                    cJSON_IsString(v) ? "a string" : cJSON_IsArray(v) ? "an array"
                    : cJSON_IsObject(v) ? "an object" : cJSON_IsBool(v) ? "a boolean"
                    : cJSON_IsNull(v) ? "null" : "another type");
    double d = v->valuedouble;
    if (!isfinite(d))
        return fail(r, field, "number out of range");
    if (d != floor(d))
        return fail(r, field, "expected an integer, got %g", d);
    if (d == 0 && signbit(d))
        return fail(r, field, "expected an integer, got -0");
    if (d < (double)lo || d > (double)hi)
        return fail(r, field,
                    fabs(d) < 1e19 ? "%.0f is out of range [%lld, %lld]"
                                   : "%g is out of range [%lld, %lld]",
                    d, (long long)lo,
                    (long long)hi);
    *out = (int64_t)d;
    return EC_OK;
}

static ec_status get_int(const reader *r, const cJSON *obj, const char *name, const char *alias,
                         int required, int64_t lo, int64_t hi, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    const char *used = name;
    if (!v && alias) {
        v = cJSON_GetObjectItemCaseSensitive(obj, alias);
        used = alias;
    }
    if (!v) {
        if (!required)
            return EC_OK;
        return fail(r, name, "missing");
    }
    return int_value(r, v, used, lo, hi, out);
}

/*
 * The optional "guesses" field: [{"ahead": A, "experts": [...], "probs":
 * [...]}, ...], absent or null for none. Fields are named with their index
 * in messages ("guesses[1].probs").
 */
static ec_status parse_guesses(const reader *r, const cJSON *gs, const ec_trace_opts *o,
                               ec_record *rec)
{
    rec->n_guesses = 0;
    if (!gs || cJSON_IsNull(gs))
        return EC_OK;
    if (!cJSON_IsArray(gs))
        return fail(r, "guesses", "expected an array of objects");
    if (cJSON_GetArraySize(gs) > EC_MAX_GUESSES)
        return fail(r, "guesses", "%d guesses exceed the limit of %d per record",
                    cJSON_GetArraySize(gs), EC_MAX_GUESSES);
    int64_t ahead_hi = o && o->n_layers > 0 ? o->n_layers : EC_MAX_LAYERS;
    int64_t ehi = (o && o->n_experts > 0 ? o->n_experts : EC_MAX_EXPERTS) - 1;
    char field[48];
    ec_status s;
    const cJSON *g;
    cJSON_ArrayForEach(g, gs)
    {
        int gi = rec->n_guesses;
        snprintf(field, sizeof field, "guesses[%d]", gi);
        if (!cJSON_IsObject(g))
            return fail(r, field, "expected an object");
        static const char *const known[] = {"ahead", "experts", "probs"};
        int seen[EC_COUNTOF(known)] = {0};
        const cJSON *it;
        cJSON_ArrayForEach(it, g)
        {
            for (size_t f = 0; f < EC_COUNTOF(known); f++)
                if (it->string && strcmp(it->string, known[f]) == 0 && seen[f]++) {
                    snprintf(field, sizeof field, "guesses[%d].%s", gi, known[f]);
                    return fail(r, field, "appears twice in the guess");
                }
        }
        int64_t v;
        snprintf(field, sizeof field, "guesses[%d].ahead", gi);
        const cJSON *av = cJSON_GetObjectItemCaseSensitive(g, "ahead");
        if (!av)
            return fail(r, field, "missing");
        if ((s = int_value(r, av, field, 1, ahead_hi, &v)))
            return s;
        for (int j = 0; j < gi; j++)
            if (rec->guesses[j].ahead == v)
                return fail(r, field, "ahead %lld appears twice in the record", (long long)v);
        rec->guesses[gi].ahead = (int32_t)v;
        snprintf(field, sizeof field, "guesses[%d].experts", gi);
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(g, "experts");
        if (!ex)
            return fail(r, field, "missing");
        if (!cJSON_IsArray(ex))
            return fail(r, field, "expected an array");
        int n = cJSON_GetArraySize(ex);
        if (n == 0)
            return fail(r, field, "empty array");
        if (n > EC_MAX_K)
            return fail(r, field, "%d experts exceed the limit of %d per guess", n, EC_MAX_K);
        int i = 0;
        cJSON_ArrayForEach(it, ex)
        {
            if ((s = int_value(r, it, field, 0, ehi, &v)))
                return s;
            for (int j = 0; j < i; j++)
                if (rec->guesses[gi].experts[j] == v)
                    return fail(r, field, "expert %lld appears twice", (long long)v);
            rec->guesses[gi].experts[i++] = (int32_t)v;
        }
        rec->guesses[gi].n = n;
        snprintf(field, sizeof field, "guesses[%d].probs", gi);
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(g, "probs");
        if (!pr)
            return fail(r, field, "missing");
        if (!cJSON_IsArray(pr))
            return fail(r, field, "expected an array");
        if (cJSON_GetArraySize(pr) != n)
            return fail(r, field, "%d values for %d experts", cJSON_GetArraySize(pr), n);
        double sum = 0;
        i = 0;
        cJSON_ArrayForEach(it, pr)
        {
            if (!cJSON_IsNumber(it))
                return fail(r, field, "expected a number");
            double q = it->valuedouble;
            if (!(q >= 0 && q <= 1))
                return fail(r, field, "probability %g is not in [0, 1]", q);
            sum += q;
            rec->guesses[gi].probs[i++] = q;
        }
        if (sum > 1.0 + EC_HINT_SUM_SLACK)
            return fail(r, field, "probabilities sum to %g, more than 1", sum);
        rec->n_guesses++;
    }
    return EC_OK;
}

typedef struct stream_state {
    int32_t k;          /* 0 until the first record */
    int has_gates;
} stream_state;

static ec_status parse_record(const reader *r, const cJSON *obj, const ec_trace_opts *o,
                              stream_state *st, ec_record *rec)
{
    ec_status s;
    if (!cJSON_IsObject(obj))
        return fail(r, NULL, "expected a JSON object");
    /* A repeated field is ambiguous (Python keeps the last, cJSON finds the
     * first): refuse it rather than guess. Unknown fields may repeat. */
    static const char *const known[] = {"dataset", "problem_id", "layer", "token_idx",
                                        "token_pos", "experts", "gating_probs", "guesses"};
    int seen[EC_COUNTOF(known)] = {0};
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        for (size_t f = 0; f < EC_COUNTOF(known); f++)
            if (it->string && strcmp(it->string, known[f]) == 0 && seen[f]++)
                return fail(r, known[f], "appears twice in the record");
    }

    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(obj, "dataset");
    rec->dataset = "";
    if (ds) {
        if (!cJSON_IsString(ds))
            return fail(r, "dataset", "expected a string");
        rec->dataset = ds->valuestring;
    }
    rec->problem_id = 0;
    if ((s = get_int(r, obj, "problem_id", NULL, 0, INT64_MIN / 2, INT64_MAX / 2,
                     &rec->problem_id)))
        return s;
    int64_t layer_hi = (o && o->n_layers > 0 ? o->n_layers : EC_MAX_LAYERS) - 1;
    int64_t v;
    if ((s = get_int(r, obj, "layer", NULL, 1, 0, layer_hi, &v)))
        return s;
    rec->layer = (int32_t)v;
    if ((s = get_int(r, obj, "token_idx", "token_pos", 1, 0, INT64_MAX / 2, &rec->token)))
        return s;

    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(obj, "experts");
    if (!ex)
        return fail(r, "experts", "missing");
    if (!cJSON_IsArray(ex))
        return fail(r, "experts", "expected an array");
    int n = cJSON_GetArraySize(ex);
    if (n == 0)
        return fail(r, "experts", "empty array");
    if (n > EC_MAX_K)
        return fail(r, "experts", "%d experts exceed the top-k limit of %d", n, EC_MAX_K);
    if (st->k && n != st->k)
        return fail(r, "experts", "top-k is %d here but %d on the first record", n, st->k);
    int64_t ehi = (o && o->n_experts > 0 ? o->n_experts : EC_MAX_EXPERTS) - 1;
    int i = 0;
    cJSON_ArrayForEach(it, ex)
    {
        if ((s = int_value(r, it, "experts", 0, ehi, &v)))
            return s;
        for (int j = 0; j < i; j++)
            if (rec->experts[j] == v)
                return fail(r, "experts", "expert %lld appears twice", (long long)v);
        rec->experts[i++] = (int32_t)v;
    }
    rec->k = n;

    const cJSON *gp = cJSON_GetObjectItemCaseSensitive(obj, "gating_probs");
    int has = gp != NULL && !cJSON_IsNull(gp);
    if (st->k && has != st->has_gates)
        return fail(r, "gating_probs", "%s here but %s on the first record",
                    has ? "present" : "absent", st->has_gates ? "present" : "absent");
    rec->has_gates = has;
    if (has) {
        if (!cJSON_IsArray(gp))
            return fail(r, "gating_probs", "expected an array");
        if (cJSON_GetArraySize(gp) != n)
            return fail(r, "gating_probs", "%d values for %d experts", cJSON_GetArraySize(gp), n);
        i = 0;
        cJSON_ArrayForEach(it, gp)
        {
            if (!cJSON_IsNumber(it))
                return fail(r, "gating_probs", "expected a number");
            double g = it->valuedouble;
            /* Gates are stored as float: beyond FLT_MAX the conversion is undefined. */
            if (!(g >= 0 && g <= FLT_MAX))
                return fail(r, "gating_probs", "gate %g is not a finite non-negative number", g);
            rec->gates[i++] = g;
        }
    }
    if ((s = parse_guesses(r, cJSON_GetObjectItemCaseSensitive(obj, "guesses"), o, rec)))
        return s;
    if (!st->k) {
        st->k = n;
        st->has_gates = has;
    }
    return EC_OK;
}

/*
 * Names the top-level field whose value holds byte `pos` of a line that did
 * not parse, so that `"gating_probs": [NaN]` or a line cut inside "experts"
 * is reported against that field. Writes the key (at most cap - 1 bytes,
 * non-printable bytes as '?') into key; returns 0 when pos is not inside a
 * top-level value. *depth_at receives the nesting depth at pos.
 */
static int field_at(const char *text, size_t len, size_t pos, char *key, size_t cap,
                    int *depth_at)
{
    int depth = 0, have = 0;
    size_t str0 = 0, str1 = 0; /* last string at depth 1: [str0, str1) */
    int str_is_last = 0;       /* nothing but blanks since that string */
    if (pos > len)
        pos = len;
    for (size_t i = 0; i < pos; i++) {
        char c = text[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < pos && text[j] != '"')
                j += text[j] == '\\' ? 2 : 1;
            if (j >= pos)
                break; /* the error is inside this string */
            if (depth == 1) {
                str0 = i + 1;
                str1 = j;
                str_is_last = 1;
            }
            i = j;
            continue;
        }
        if (c == ' ' || c == '\t')
            continue;
        if (c == ':' && depth == 1 && str_is_last) {
            size_t n = EC_MIN(str1 - str0, cap - 1);
            for (size_t k = 0; k < n; k++) {
                unsigned char ch = (unsigned char)text[str0 + k];
                key[k] = ch >= 0x20 && ch < 0x7f && ch != '\'' ? (char)ch : '?';
            }
            key[n] = '\0';
            have = 1;
        } else if (c == ',' && depth == 1) {
            have = 0;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
            if (depth < 1)
                have = 0;
        }
        str_is_last = 0;
    }
    *depth_at = depth;
    return have;
}

/* Reads every line of f (named path in messages); f stays open. */
static ec_status read_stream(FILE *f, const char *path, const ec_trace_opts *opts,
                             ec_record_fn fn, void *ctx, ec_error *err)
{
    reader r = {path, 0, err};
    size_t max_line = opts && opts->max_line ? opts->max_line : DEFAULT_MAX_LINE;
    size_t cap = max_line + 2; /* line, '\n', NUL */
    char *buf = ec_malloc(cap);
    if (!buf)
        return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory for a %zu-byte line buffer",
                            path, cap);
    stream_state st = {0, 0};
    ec_status s = EC_OK;
    size_t records = 0;
    ec_record rec;
    for (;;) {
        /* Read one line; NUL bytes inside it are data, so track length. */
        size_t len = 0;
        int c = EOF;
        while (len < cap - 1 && (c = getc(f)) != EOF) {
            buf[len++] = (char)c;
            if (c == '\n')
                break;
        }
        if (len == 0 && c == EOF)
            break;
        r.line++;
        if (len == cap - 1 && buf[len - 1] != '\n') {
            int peek = getc(f);
            if (peek != EOF) {
                s = fail(&r, NULL, "line longer than %zu bytes", max_line);
                break;
            }
        }
        if (len && buf[len - 1] == '\n')
            len--;
        if (len && buf[len - 1] == '\r')
            len--;
        buf[len] = '\0';
        char *text = buf;
        if (r.line == 1 && len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
            text += 3;
            len -= 3;
        }
        size_t sp = 0;
        while (sp < len && (text[sp] == ' ' || text[sp] == '\t'))
            sp++;
        if (sp == len)
            continue; /* blank line */
        if (memchr(text, '\0', len)) {
            s = fail(&r, NULL, "NUL byte in line (binary data?)");
            break;
        }
        const char *end = NULL;
        size_t failures = ec_alloc_failures();
        cJSON *obj = cJSON_ParseWithLengthOpts(text, len, &end, 0);
        if (!obj && ec_alloc_failures() != failures) {
            s = ec_error_set(err, EC_ERR_NOMEM, "%s:%zu: out of memory", path, r.line);
            break;
        }
        if (!obj) {
            size_t at = end ? (size_t)(end - text) : 0;
            char key[64];
            int depth;
            const char *field = field_at(text, len, at, key, sizeof key, &depth) ? key : NULL;
            const char *word = NULL; /* Python's json writes these for non-finite floats */
            static const char *const nonfinite[] = {"NaN", "Infinity", "-Infinity"};
            for (size_t w = 0; w < EC_COUNTOF(nonfinite); w++)
                if (len - at >= strlen(nonfinite[w]) &&
                    memcmp(text + at, nonfinite[w], strlen(nonfinite[w])) == 0)
                    word = nonfinite[w];
            if (depth >= CJSON_NESTING_LIMIT)
                s = fail(&r, field, "JSON nested deeper than %d levels (near byte %zu)",
                         CJSON_NESTING_LIMIT, at);
            else if (word)
                s = fail(&r, field, "%s is not a finite number (near byte %zu)", word, at);
            else
                s = fail(&r, field, "not valid JSON (near byte %zu)", at);
            break;
        }
        while (end && end < text + len && (*end == ' ' || *end == '\t'))
            end++;
        if (end && end < text + len) {
            cJSON_Delete(obj);
            if (*end == '\r')
                s = fail(&r, NULL,
                         "carriage return inside the line (near byte %td): CR-only line ends "
                         "are not supported; convert them to LF (e.g. tr '\\r' '\\n')",
                         end - text);
            else
                s = fail(&r, NULL, "trailing data after the JSON value (near byte %td)",
                         end - text);
            break;
        }
        memset(&rec, 0, offsetof(ec_record, experts));
        s = parse_record(&r, obj, opts, &st, &rec);
        if (s == EC_OK && ec_alloc_failures() != failures)
            s = ec_error_set(err, EC_ERR_NOMEM, "%s:%zu: out of memory", path, r.line);
        if (s == EC_OK) {
            rec.text = text;
            rec.text_len = len;
            rec.line = r.line;
            s = fn(ctx, &rec, err);
        }
        cJSON_Delete(obj);
        if (s)
            break;
        records++;
    }
    if (s == EC_OK && ferror(f))
        s = ec_error_set(err, EC_ERR_IO, "%s:%zu: read error: %s", path, r.line + 1,
                         strerror(errno));
    if (s == EC_OK && records == 0)
        s = ec_error_set(err, EC_ERR_PARSE, "%s: empty file, no routing record", path);
    ec_free(buf);
    return s;
}

ec_status ec_jsonl_read(const char *path, const ec_trace_opts *opts, ec_record_fn fn, void *ctx,
                        ec_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return ec_error_set(err, EC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return ec_error_set(err, EC_ERR_IO, "%s: is a directory, expected a file", path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return ec_error_set(err, EC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    ec_status s = read_stream(f, path, opts, fn, ctx, err);
    fclose(f);
    return s;
}

ec_status ec_jsonl_read_buffer(const char *name, const void *data, size_t len,
                               const ec_trace_opts *opts, ec_record_fn fn, void *ctx,
                               ec_error *err)
{
    if (len == 0)
        return ec_error_set(err, EC_ERR_PARSE, "%s: empty file, no routing record", name);
    FILE *f = fmemopen((void *)data, len, "rb");
    if (!f)
        return ec_error_set(err, errno == ENOMEM ? EC_ERR_NOMEM : EC_ERR_IO,
                            "%s: cannot open in-memory stream: %s", name, strerror(errno));
    ec_status s = read_stream(f, name, opts, fn, ctx, err);
    fclose(f);
    return s;
}
