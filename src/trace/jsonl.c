/* Raw routing JSONL: line reading and per-field validation. */
#include "jsonl.h"
#include "../core/json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_MAX_LINE ((size_t)1 << 20)

typedef struct reader {
    const char *path;
    size_t line;
    ec_error *err;
    const char *text; /* the line being read, len bytes */
    size_t len;
} reader;

static int raw_number(const reader *r, const char *field, char *out, size_t cap);

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
    /* Beyond 2^53 a double no longer holds every integer: 2^53 + 1 would
     * read as 2^53 and merge two ids. Plain digits are read exactly by the
     * fast path; this path only sees other forms (1e17, 1.0, 007) or values
     * out of range, and refuses rather than round. */
    if (fabs(d) >= 9007199254740992.0) {
        char raw[64]; /* the number as written, for the message */
        if (!raw_number(r, field, raw, sizeof raw))
            snprintf(raw, sizeof raw, "%.17g", d);
        if (d < (double)lo || d > (double)hi)
            return fail(r, field, "%s is out of range [%lld, %lld]", raw, (long long)lo,
                        (long long)hi);
        return fail(r, field,
                    "%s cannot be read exactly in this form (beyond 2^53: write it as plain "
                    "digits)", raw);
    }
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

/* ---- fast path ----------------------------------------------------------
 * A strict (RFC 8259) scanner for one record line, without allocation. It
 * accepts only lines the cJSON path above would accept with the same values
 * (integers aside: it reads them exactly from their digits, where cJSON
 * rounds to a double), and gives up (returns 0) on anything unusual or
 * wrong: numbers outside the plain syntax, control bytes, NUL escapes,
 * nesting deeper than FAST_DEPTH, any field error. The caller then runs the
 * cJSON path, which either accepts the line or names its error; so the
 * messages come from one place. */

#define FAST_DEPTH 64

typedef struct scan {
    const char *p, *end;
} scan;

static void ws(scan *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char h = p[i];
        v <<= 4;
        if (h >= '0' && h <= '9')
            v |= (unsigned)(h - '0');
        else if (h >= 'a' && h <= 'f')
            v |= (unsigned)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F')
            v |= (unsigned)(h - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

/* A string at c->p (on its '"'). Decodes into out (cap bytes, NUL added)
 * when out is not NULL; 0 when it is not a plain valid string, contains a
 * NUL (\u0000) or a lone surrogate, or does not fit. */
static int fast_string(scan *c, char *out, size_t cap, size_t *out_len)
{
    const char *p = c->p + 1, *end = c->end;
    size_t n = 0;
    for (;;) {
        /* the run of ordinary bytes */
        const char *q = p;
        while (q < end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
            q++;
        if (out) {
            if ((size_t)(q - p) >= cap - n)
                return 0;
            memcpy(out + n, p, (size_t)(q - p));
        }
        n += (size_t)(q - p);
        p = q;
        if (p >= end || (unsigned char)*p < 0x20)
            return 0;
        if (*p == '"')
            break;
        /* an escape */
        if (end - p < 2)
            return 0;
        char e = p[1];
        unsigned cp;
        char one = 0;
        switch (e) {
        case '"': one = '"'; break;
        case '\\': one = '\\'; break;
        case '/': one = '/'; break;
        case 'b': one = '\b'; break;
        case 'f': one = '\f'; break;
        case 'n': one = '\n'; break;
        case 'r': one = '\r'; break;
        case 't': one = '\t'; break;
        case 'u': break;
        default: return 0;
        }
        if (one) {
            if (out) {
                if (n + 1 >= cap)
                    return 0;
                out[n] = one;
            }
            n++;
            p += 2;
            continue;
        }
        if (end - p < 6 || !hex4(p + 2, &cp) || cp == 0)
            return 0;
        p += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return 0;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, &lo) ||
                lo < 0xDC00 || lo > 0xDFFF)
                return 0;
            p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        char u[4];
        size_t un;
        if (cp < 0x80) {
            u[0] = (char)cp;
            un = 1;
        } else if (cp < 0x800) {
            u[0] = (char)(0xC0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 0x3F));
            un = 2;
        } else if (cp < 0x10000) {
            u[0] = (char)(0xE0 | (cp >> 12));
            u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
            u[2] = (char)(0x80 | (cp & 0x3F));
            un = 3;
        } else {
            u[0] = (char)(0xF0 | (cp >> 18));
            u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
            u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
            u[3] = (char)(0x80 | (cp & 0x3F));
            un = 4;
        }
        if (out) {
            if (n + un >= cap)
                return 0;
            memcpy(out + n, u, un);
        }
        n += un;
    }
    if (out)
        out[n] = '\0';
    if (out_len)
        *out_len = n;
    c->p = p + 1;
    return 1;
}

/* A number in RFC 8259 syntax at c->p; *is_int when it has neither
 * fraction nor exponent, and then *iv holds its exact value (0 when it has
 * more than 18 digits: *big is set). */
static int fast_number(scan *c, int *is_int, int64_t *iv, int *big)
{
    const char *p = c->p, *end = c->end;
    int neg = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9')
        return 0;
    const char *d0 = p;
    if (*p == '0')
        p++;
    else
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    size_t nd = (size_t)(p - d0);
    int integer = 1;
    if (p < end && *p == '.') {
        integer = 0;
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return 0;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        integer = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return 0;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p - c->p > 63) /* cJSON reads at most 63 bytes of a number */
        return 0;
    *is_int = integer;
    *big = 0;
    *iv = 0;
    if (integer) {
        /* 19 digits always fit a uint64_t; int64_t takes [-2^63, 2^63) */
        uint64_t v = 0;
        for (const char *q = d0; q < d0 + nd && nd <= 19; q++)
            v = v * 10 + (uint64_t)(*q - '0');
        if (nd > 19 || v > (uint64_t)INT64_MAX + (uint64_t)neg)
            *big = 1;
        else
            *iv = neg ? (int64_t)(0 - v) : (int64_t)v;
    }
    c->p = p;
    return 1;
}

/* strtod over a copy of the number text [p, end) (at most 63 bytes, as
 * fast_number ensures), so that nothing past the text is read. */
static double copy_strtod(const char *p, const char *end)
{
    /* strtod follows the locale's decimal point (cJSON adapts the text to
     * it); outside a '.' locale give up, NaN sends the line to cJSON */
    if (localeconv()->decimal_point[0] != '.')
        return NAN;
    char num[64];
    size_t n = EC_MIN((size_t)(end - p), sizeof num - 1);
    memcpy(num, p, n);
    num[n] = '\0';
    return strtod(num, NULL);
}

/* The double of the number text [p, end), as strtod gives it. Exact with
 * one division when the digits fit 2^53 and the power of ten is at most
 * 10^22 (both exact, so the quotient is correctly rounded); else strtod. */
static double fast_double(const char *p, const char *end)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *q = p;
    int neg = *q == '-';
    q += neg;
    uint64_t m = 0;
    int digits = 0, frac = 0, dot = 0;
    for (; q < end; q++) {
        if (*q == '.') {
            dot = 1;
            continue;
        }
        if (*q < '0' || *q > '9')
            break;
        if (m == 0 && *q == '0') {
            frac += dot;
            continue; /* leading zeros do not count as digits */
        }
        if (++digits > 15)
            return copy_strtod(p, end);
        m = m * 10 + (uint64_t)(*q - '0');
        frac += dot;
    }
    if (q < end || frac > 22) /* an exponent, or too many decimals */
        return copy_strtod(p, end);
    double v = (double)m / pow10[frac];
    return neg ? -v : v;
}

/* Skips one value of any type (depth counts enclosing containers). */
static int fast_skip(scan *c, int depth)
{
    if (c->p >= c->end)
        return 0;
    char ch = *c->p;
    if (ch == '"')
        return fast_string(c, NULL, 0, NULL);
    if (ch == '{' || ch == '[') {
        if (depth >= FAST_DEPTH)
            return 0;
        char close = ch == '{' ? '}' : ']';
        c->p++;
        ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return 1;
        }
        for (;;) {
            if (ch == '{') {
                if (c->p >= c->end || *c->p != '"' || !fast_string(c, NULL, 0, NULL))
                    return 0;
                ws(c);
                if (c->p >= c->end || *c->p != ':')
                    return 0;
                c->p++;
                ws(c);
            }
            if (!fast_skip(c, depth + 1))
                return 0;
            ws(c);
            if (c->p >= c->end)
                return 0;
            if (*c->p == close) {
                c->p++;
                return 1;
            }
            if (*c->p != ',')
                return 0;
            c->p++;
            ws(c);
        }
    }
    static const char *const words[] = {"true", "false", "null"};
    for (size_t w = 0; w < EC_COUNTOF(words); w++) {
        size_t n = strlen(words[w]);
        if ((size_t)(c->end - c->p) >= n && memcmp(c->p, words[w], n) == 0) {
            c->p += n;
            return 1;
        }
    }
    int is_int, big;
    int64_t iv;
    return fast_number(c, &is_int, &iv, &big);
}

/* An integer in [lo, hi] (not -0, no fraction or exponent). */
static int fast_int(scan *c, int64_t lo, int64_t hi, int64_t *out)
{
    int is_int, big;
    int64_t v;
    const char *p0 = c->p;
    if (!fast_number(c, &is_int, &v, &big) || !is_int || big || v < lo || v > hi)
        return 0;
    if (v == 0 && *p0 == '-')
        return 0;
    *out = v;
    return 1;
}

/* The text of the number that top-level field `field` holds in r's line,
 * copied into out; 0 when not found (or the line is not plain enough for
 * the fast scanner). For messages only. */
static int raw_number(const reader *r, const char *field, char *out, size_t cap)
{
    if (!r->text)
        return 0;
    scan c = {r->text, r->text + r->len};
    char key[16];
    size_t klen, flen = strlen(field);
    ws(&c);
    if (c.p >= c.end || *c.p != '{')
        return 0;
    c.p++;
    for (;;) {
        ws(&c);
        if (c.p >= c.end || *c.p != '"')
            return 0;
        scan k0 = c;
        int match = fast_string(&c, key, sizeof key, &klen) && klen == flen &&
                    memcmp(key, field, flen) == 0;
        if (!match) {
            c = k0;
            if (!fast_string(&c, NULL, 0, NULL))
                return 0;
        }
        ws(&c);
        if (c.p >= c.end || *c.p != ':')
            return 0;
        c.p++;
        ws(&c);
        const char *v0 = c.p;
        if (match) {
            int is_int, big;
            int64_t iv;
            if (!fast_number(&c, &is_int, &iv, &big) || (size_t)(c.p - v0) >= cap)
                return 0;
            memcpy(out, v0, (size_t)(c.p - v0));
            out[c.p - v0] = '\0';
            return 1;
        }
        if (!fast_skip(&c, 1))
            return 0;
        ws(&c);
        if (c.p >= c.end || *c.p != ',')
            return 0;
        c.p++;
    }
}

/* Parses a record line; 1 when rec is filled (dataset decoded into ds). */
static int fast_record(const char *text, size_t len, const ec_trace_opts *o,
                       const stream_state *st, ec_record *rec, char *ds, size_t ds_cap)
{
    enum { F_DATASET, F_PID, F_LAYER, F_TOKEN_IDX, F_TOKEN_POS, F_EXPERTS, F_GATES, F_N };
    static const char *const names[F_N] = {"dataset", "problem_id", "layer", "token_idx",
                                           "token_pos", "experts", "gating_probs"};
    int seen[F_N] = {0};
    scan c = {text, text + len};
    int64_t layer_hi = (o && o->n_layers > 0 ? o->n_layers : EC_MAX_LAYERS) - 1;
    int64_t ehi = (o && o->n_experts > 0 ? o->n_experts : EC_MAX_EXPERTS) - 1;
    int64_t token = 0, layer = 0, pid = 0;
    int n_ex = 0, n_gates = 0, gates_null = 0;
    double gates[EC_MAX_K];
    char key[16];
    ws(&c);
    if (c.p >= c.end || *c.p != '{')
        return 0;
    c.p++;
    ws(&c);
    ds[0] = '\0';
    rec->n_guesses = 0;
    if (c.p < c.end && *c.p == '}') {
        c.p++;
    } else {
        for (;;) {
            size_t klen;
            if (c.p >= c.end || *c.p != '"')
                return 0;
            /* keys longer than any known name are skipped undecoded */
            scan k0 = c;
            int f = F_N;
            if (fast_string(&c, key, sizeof key, &klen)) {
                for (int i = 0; i < F_N; i++)
                    if (strlen(names[i]) == klen && memcmp(names[i], key, klen) == 0)
                        f = i;
                /* guesses are read (and validated) by the cJSON path only */
                if (klen == 7 && memcmp(key, "guesses", 7) == 0)
                    return 0;
            } else {
                c = k0;
                if (!fast_string(&c, NULL, 0, NULL))
                    return 0;
            }
            ws(&c);
            if (c.p >= c.end || *c.p != ':')
                return 0;
            c.p++;
            ws(&c);
            if (f < F_N && seen[f]++)
                return 0;
            switch (f) {
            case F_DATASET:
                if (c.p >= c.end || *c.p != '"' || !fast_string(&c, ds, ds_cap, NULL))
                    return 0;
                break;
            case F_PID:
                if (!fast_int(&c, INT64_MIN / 2, INT64_MAX / 2, &pid))
                    return 0;
                break;
            case F_LAYER:
                if (!fast_int(&c, 0, layer_hi, &layer))
                    return 0;
                break;
            case F_TOKEN_IDX:
            case F_TOKEN_POS: {
                int64_t v;
                if (!fast_int(&c, 0, INT64_MAX / 2, &v))
                    return 0;
                if (f == F_TOKEN_IDX || !seen[F_TOKEN_IDX])
                    token = v; /* token_idx wins over its alias */
                break;
            }
            case F_EXPERTS:
            case F_GATES:
                if (f == F_GATES && (size_t)(c.end - c.p) >= 4 && memcmp(c.p, "null", 4) == 0) {
                    c.p += 4;
                    gates_null = 1;
                    break;
                }
                if (c.p >= c.end || *c.p != '[')
                    return 0;
                c.p++;
                ws(&c);
                if (c.p < c.end && *c.p == ']') {
                    c.p++;
                    break;
                }
                for (;;) {
                    if (f == F_EXPERTS) {
                        int64_t e;
                        if (n_ex == EC_MAX_K || !fast_int(&c, 0, ehi, &e))
                            return 0;
                        for (int j = 0; j < n_ex; j++)
                            if (rec->experts[j] == e)
                                return 0;
                        rec->experts[n_ex++] = (int32_t)e;
                    } else {
                        const char *p0 = c.p;
                        int is_int, big;
                        int64_t iv;
                        if (n_gates == EC_MAX_K || !fast_number(&c, &is_int, &iv, &big))
                            return 0;
                        double g = fast_double(p0, c.p);
                        if (!(g >= 0 && g <= FLT_MAX))
                            return 0;
                        gates[n_gates++] = g;
                    }
                    ws(&c);
                    if (c.p < c.end && *c.p == ']') {
                        c.p++;
                        break;
                    }
                    if (c.p >= c.end || *c.p != ',')
                        return 0;
                    c.p++;
                    ws(&c);
                }
                break;
            default:
                if (!fast_skip(&c, 1))
                    return 0;
            }
            ws(&c);
            if (c.p < c.end && *c.p == '}') {
                c.p++;
                break;
            }
            if (c.p >= c.end || *c.p != ',')
                return 0;
            c.p++;
            ws(&c);
        }
    }
    while (c.p < c.end && (*c.p == ' ' || *c.p == '\t'))
        c.p++;
    if (c.p != c.end)
        return 0;
    if (!seen[F_LAYER] || (!seen[F_TOKEN_IDX] && !seen[F_TOKEN_POS]) || !seen[F_EXPERTS] ||
        n_ex == 0 || (st->k && n_ex != st->k))
        return 0;
    int has = seen[F_GATES] && !gates_null;
    if (st->k && has != st->has_gates)
        return 0;
    if (has && n_gates != n_ex)
        return 0;
    rec->dataset = ds;
    rec->problem_id = pid;
    rec->token = token;
    rec->layer = (int32_t)layer;
    rec->k = n_ex;
    rec->has_gates = has;
    for (int i = 0; i < n_gates && has; i++)
        rec->gates[i] = gates[i];
    return 1;
}

/* Lines from a FILE through one block buffer (getc per byte was a third
 * of the reading time). */
#define BLOCK ((size_t)1 << 18)

typedef struct lines {
    FILE *f;
    char *blk;
    size_t pos, end;
    int eof;
} lines;

/* 1 when a byte is available at L->pos (refilling the block). */
static int lines_more(lines *L)
{
    if (L->pos < L->end)
        return 1;
    if (L->eof)
        return 0;
    L->pos = 0;
    L->end = fread(L->blk, 1, BLOCK, L->f);
    if (L->end == 0)
        L->eof = 1;
    return L->end > 0;
}

/* Copies the next line, its '\n' included, into buf: at most cap - 1 bytes
 * (NUL bytes inside are data). Returns its length, 0 at the end. */
static size_t lines_next(lines *L, char *buf, size_t cap)
{
    size_t len = 0;
    while (len < cap - 1 && lines_more(L)) {
        const char *start = L->blk + L->pos;
        size_t avail = L->end - L->pos;
        const char *nl = memchr(start, '\n', avail);
        size_t take = nl ? (size_t)(nl - start) + 1 : avail;
        if (take > cap - 1 - len)
            take = cap - 1 - len;
        memcpy(buf + len, start, take);
        len += take;
        L->pos += take;
        if (buf[len - 1] == '\n')
            break;
    }
    return len;
}

/* The cJSON path: parses the line into a tree and validates it field by
 * field, with the messages. Used when the fast path gives up. */
static ec_status slow_record(reader *r, const char *text, size_t len,
                             const ec_trace_opts *opts, stream_state *st, ec_record *rec,
                             cJSON **tree)
{
    ec_status s;
    const char *end = NULL;
    size_t failures = ec_alloc_failures();
    cJSON *obj = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    *tree = obj;
    r->text = text;
    r->len = len;
    if (!obj && ec_alloc_failures() != failures)
        return ec_error_set(r->err, EC_ERR_NOMEM, "%s:%zu: out of memory", r->path, r->line);
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
            return fail(r, field, "JSON nested deeper than %d levels (near byte %zu)",
                        CJSON_NESTING_LIMIT, at);
        if (word)
            return fail(r, field, "%s is not a finite number (near byte %zu)", word, at);
        return fail(r, field, "not valid JSON (near byte %zu)", at);
    }
    while (end && end < text + len && (*end == ' ' || *end == '\t'))
        end++;
    if (end && end < text + len) {
        if (*end == '\r')
            return fail(r, NULL,
                        "carriage return inside the line (near byte %td): CR-only line ends "
                        "are not supported; convert them to LF (e.g. tr '\\r' '\\n')",
                        end - text);
        return fail(r, NULL, "trailing data after the JSON value (near byte %td)", end - text);
    }
    long nul = ec_json_nul_escape(text, len);
    if (nul >= 0) {
        char key[64];
        int depth;
        const char *field = field_at(text, len, (size_t)nul, key, sizeof key, &depth) ? key
                                                                                     : NULL;
        return fail(r, field,
                    "\\u0000 (NUL) in a string or key is not accepted (near byte %ld)", nul);
    }
    s = parse_record(r, obj, opts, st, rec);
    if (s == EC_OK && ec_alloc_failures() != failures)
        s = ec_error_set(r->err, EC_ERR_NOMEM, "%s:%zu: out of memory", r->path, r->line);
    return s;
}

/* Reads every line of f (named path in messages); f stays open. */
static ec_status read_stream(FILE *f, const char *path, const ec_trace_opts *opts,
                             ec_record_fn fn, void *ctx, ec_error *err)
{
    reader r = {path, 0, err, NULL, 0};
    size_t max_line = opts && opts->max_line ? opts->max_line : DEFAULT_MAX_LINE;
    size_t cap = max_line + 2; /* line, '\n', NUL */
    char *buf = ec_malloc(cap);
    char *ds = ec_malloc(cap);  /* the decoded dataset name */
    char *blk = ec_malloc(BLOCK);
    if (!buf || !ds || !blk) {
        ec_free(buf);
        ec_free(ds);
        ec_free(blk);
        return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory for a %zu-byte line buffer",
                            path, cap);
    }
    lines L = {f, blk, 0, 0, 0};
    stream_state st = {0, 0};
    ec_status s = EC_OK;
    size_t records = 0;
    ec_record rec;
    for (;;) {
        size_t len = lines_next(&L, buf, cap);
        if (len == 0)
            break;
        r.line++;
        if (len == cap - 1 && buf[len - 1] != '\n' && lines_more(&L)) {
            s = fail(&r, NULL, "line longer than %zu bytes", max_line);
            break;
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
        memset(&rec, 0, offsetof(ec_record, experts));
        cJSON *tree = NULL;
        if (!fast_record(text, len, opts, &st, &rec, ds, cap))
            s = slow_record(&r, text, len, opts, &st, &rec, &tree);
        if (s == EC_OK) {
            if (!st.k) {
                st.k = rec.k;
                st.has_gates = rec.has_gates;
            }
            rec.text = text;
            rec.text_len = len;
            rec.line = r.line;
            s = fn(ctx, &rec, err);
        }
        cJSON_Delete(tree);
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
    ec_free(ds);
    ec_free(blk);
    return s;
}

const char *ec_jsonl_paths_disagree(const char *text, size_t len, const ec_trace_opts *opts)
{
    if (memchr(text, '\0', len))
        return NULL; /* refused before either path */
    char *ds = ec_malloc(len + 1);
    if (!ds)
        return NULL;
    ec_record a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    stream_state sa = {0, 0}, sb = {0, 0};
    const char *bad = NULL;
    if (fast_record(text, len, opts, &sa, &a, ds, len + 1)) {
        ec_error err = {0};
        reader r = {"line", 1, &err, NULL, 0};
        cJSON *tree = NULL;
        ec_status s = slow_record(&r, text, len, opts, &sb, &b, &tree);
        if (s != EC_OK) {
            /* the one difference by design: exact integers beyond 2^53 */
            if (s != EC_ERR_PARSE || !strstr(err.message, "2^53"))
                bad = "the fast path accepted a line the cJSON path refuses";
        } else if (strcmp(a.dataset, b.dataset) != 0 || a.problem_id != b.problem_id ||
                   a.token != b.token || a.layer != b.layer || a.k != b.k ||
                   a.has_gates != b.has_gates || a.n_guesses != b.n_guesses ||
                   memcmp(a.experts, b.experts, (size_t)a.k * sizeof *a.experts) != 0 ||
                   (a.has_gates && memcmp(a.gates, b.gates, (size_t)a.k * sizeof *a.gates)))
            bad = "the fast path and the cJSON path read a line differently";
        cJSON_Delete(tree);
    }
    ec_free(ds);
    return bad;
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
