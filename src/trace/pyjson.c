/*
 * Python-compatible JSON re-serialisation: what json.dumps(json.loads(s))
 * prints, so that extracted journeys are byte-identical to the seed's.
 * Works on the text directly, because the distinction Python keeps between
 * 0 (int) and 0.0 (float) is lost once a number is a double.
 */
#include "jsonl.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void ec_fmt_pyfloat(double v, char buf[40])
{
    if (isnan(v)) {
        strcpy(buf, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(buf, v < 0 ? "-Infinity" : "Infinity");
        return;
    }
    /* Shortest %.*e that round-trips, as repr does. */
    char e[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    /* e is "[-]d.ddde[+-]XX": split into sign, digits and exponent. */
    const char *p = e;
    int neg = *p == '-';
    if (neg)
        p++;
    char digits[20];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (isdigit((unsigned char)*p))
            digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    int exp10 = atoi(p + 1); /* value = d.ddd * 10^exp10 */
    char *o = buf;
    if (neg)
        *o++ = '-';
    if (exp10 < -4 || exp10 >= 16) {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        sprintf(o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
        return;
    }
    if (exp10 < 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -exp10 - 1; i++)
            *o++ = '0';
        memcpy(o, digits, (size_t)nd);
        o += nd;
    } else {
        for (int i = 0; i <= exp10; i++)
            *o++ = i < nd ? digits[i] : '0';
        *o++ = '.';
        if (nd > exp10 + 1) {
            memcpy(o, digits + exp10 + 1, (size_t)(nd - exp10 - 1));
            o += nd - exp10 - 1;
        } else {
            *o++ = '0';
        }
    }
    *o = '\0';
}

typedef struct out_buf {
    char *p;
    size_t len, cap;
    int oom;
} out_buf;

static void put(out_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (ec_grow((void **)&b->p, &b->cap, b->len + n + 1, 1)) {
        b->oom = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(out_buf *b, const char *s) { put(b, s, strlen(s)); }

typedef struct scan {
    const char *s, *end;
} scan;

static void ws(scan *c)
{
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r'))
        c->s++;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static int read_hex4(scan *c, unsigned *u)
{
    if (c->end - c->s < 4)
        return -1;
    *u = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)c->s[i]);
        if (h < 0)
            return -1;
        *u = *u * 16 + (unsigned)h;
    }
    c->s += 4;
    return 0;
}

static void put_u16(out_buf *b, unsigned u)
{
    char t[16];
    snprintf(t, sizeof t, "\\u%04x", u & 0xffffu);
    puts_(b, t);
}

/* Emits a code point as json.dumps(ensure_ascii=True) does. */
static void put_cp(out_buf *b, unsigned cp)
{
    switch (cp) {
    case '"': puts_(b, "\\\""); return;
    case '\\': puts_(b, "\\\\"); return;
    case '\n': puts_(b, "\\n"); return;
    case '\r': puts_(b, "\\r"); return;
    case '\t': puts_(b, "\\t"); return;
    case '\b': puts_(b, "\\b"); return;
    case '\f': puts_(b, "\\f"); return;
    }
    if (cp < 0x20 || (cp >= 0x7f && cp < 0x10000)) {
        put_u16(b, cp); /* DEL too: Python escapes everything outside ' '..'~' */
    } else if (cp >= 0x10000) {
        cp -= 0x10000;
        put_u16(b, 0xd800 + (cp >> 10));
        put_u16(b, 0xdc00 + (cp & 0x3ff));
    } else {
        char ch = (char)cp;
        put(b, &ch, 1);
    }
}

static int string(scan *c, out_buf *b)
{
    c->s++; /* opening quote */
    puts_(b, "\"");
    while (c->s < c->end) {
        unsigned char ch = (unsigned char)*c->s;
        if (ch == '"') {
            c->s++;
            puts_(b, "\"");
            return 0;
        }
        if (ch < 0x20)
            return -1; /* raw control characters are invalid in strict JSON */
        if (ch == '\\') {
            c->s++;
            if (c->s >= c->end)
                return -1;
            char e = *c->s++;
            unsigned u;
            switch (e) {
            case '"': put_cp(b, '"'); break;
            case '\\': put_cp(b, '\\'); break;
            case '/': put_cp(b, '/'); break;
            case 'b': put_cp(b, '\b'); break;
            case 'f': put_cp(b, '\f'); break;
            case 'n': put_cp(b, '\n'); break;
            case 'r': put_cp(b, '\r'); break;
            case 't': put_cp(b, '\t'); break;
            case 'u':
                if (read_hex4(c, &u))
                    return -1;
                /* Python keeps lone surrogates; re-escape them as they were. */
                if (u >= 0xd800 && u < 0xdc00 && c->end - c->s >= 6 && c->s[0] == '\\' &&
                    c->s[1] == 'u') {
                    scan save = *c;
                    unsigned lo;
                    c->s += 2;
                    if (!read_hex4(c, &lo) && lo >= 0xdc00 && lo < 0xe000) {
                        put_cp(b, 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00));
                        break;
                    }
                    *c = save;
                }
                put_cp(b, u);
                break;
            default:
                return -1;
            }
            continue;
        }
        /* UTF-8 sequence */
        unsigned cp;
        int n;
        if (ch < 0x80) { cp = ch; n = 0; }
        else if ((ch & 0xe0) == 0xc0) { cp = ch & 0x1f; n = 1; }
        else if ((ch & 0xf0) == 0xe0) { cp = ch & 0x0f; n = 2; }
        else if ((ch & 0xf8) == 0xf0) { cp = ch & 0x07; n = 3; }
        else return -1;
        c->s++;
        for (int i = 0; i < n; i++) {
            if (c->s >= c->end || ((unsigned char)*c->s & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | ((unsigned char)*c->s++ & 0x3f);
        }
        /* Strict UTF-8, as Python decodes a text file: no overlong forms,
         * no encoded surrogates, nothing past U+10FFFF. (Surrogates may
         * still come from \u escapes, which keeps printed keys canonical.) */
        static const unsigned min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
            return -1;
        put_cp(b, cp);
    }
    return -1;
}

static int number(scan *c, out_buf *b)
{
    const char *start = c->s;
    int is_float = 0;
    if (c->s < c->end && *c->s == '-')
        c->s++;
    if (c->s >= c->end || !isdigit((unsigned char)*c->s))
        return -1;
    if (*c->s == '0')
        c->s++;
    else
        while (c->s < c->end && isdigit((unsigned char)*c->s))
            c->s++;
    if (c->s < c->end && *c->s == '.') {
        is_float = 1;
        c->s++;
        if (c->s >= c->end || !isdigit((unsigned char)*c->s))
            return -1;
        while (c->s < c->end && isdigit((unsigned char)*c->s))
            c->s++;
    }
    if (c->s < c->end && (*c->s == 'e' || *c->s == 'E')) {
        is_float = 1;
        c->s++;
        if (c->s < c->end && (*c->s == '+' || *c->s == '-'))
            c->s++;
        if (c->s >= c->end || !isdigit((unsigned char)*c->s))
            return -1;
        while (c->s < c->end && isdigit((unsigned char)*c->s))
            c->s++;
    }
    size_t n = (size_t)(c->s - start);
    if (is_float) {
        /* strtod needs a terminated copy; long literals go on the heap. */
        char small[128], f[40];
        char *tmp = n < sizeof small ? small : ec_malloc(n + 1);
        if (!tmp) {
            b->oom = 1;
            return -1;
        }
        memcpy(tmp, start, n);
        tmp[n] = '\0';
        ec_fmt_pyfloat(strtod(tmp, NULL), f);
        if (tmp != small)
            ec_free(tmp);
        puts_(b, f);
    } else if (n == 2 && start[0] == '-' && start[1] == '0') {
        puts_(b, "0"); /* Python: int("-0") == 0 */
    } else {
        put(b, start, n);
    }
    return 0;
}

static int value(scan *c, out_buf *b, int depth);

static int lit(scan *c, out_buf *b, const char *word, const char *out)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->s) < n || memcmp(c->s, word, n) != 0)
        return -1;
    c->s += n;
    puts_(b, out);
    return 0;
}

/* One object member as printed: key [k0, k1) (quoted), value [v0, v1). */
typedef struct member {
    size_t k0, k1, v0, v1;
} member;

typedef struct members {
    member *m; /* inl until it overflows, then the heap */
    size_t n, cap;
    member inl[8];
} members;

static int add_member(out_buf *b, members *ms, member mb)
{
    if (ms->n == ms->cap) {
        member *h = ec_malloc(ms->cap * 2 * sizeof *h);
        if (!h) {
            b->oom = 1;
            return -1;
        }
        memcpy(h, ms->m, ms->n * sizeof *h);
        if (ms->m != ms->inl)
            ec_free(ms->m);
        ms->m = h;
        ms->cap *= 2;
    }
    ms->m[ms->n++] = mb;
    return 0;
}

static int same_key(const out_buf *b, const member *x, const member *y)
{
    return x->k1 - x->k0 == y->k1 - y->k0 && memcmp(b->p + x->k0, b->p + y->k0, x->k1 - x->k0) == 0;
}

static size_t key_hash(const out_buf *b, const member *x)
{
    size_t h = 14695981039346656037u; /* FNV-1a */
    for (size_t i = x->k0; i < x->k1; i++)
        h = (h ^ (unsigned char)b->p[i]) * 1099511628211u;
    return h;
}

/*
 * Python's dict keeps one entry per key, where the key first appeared, with
 * the value it had last: {"a": 1, "b": 2, "a": 3} prints {"a": 3, "b": 2}.
 * Keys are compared as printed, which is canonical (escapes and surrogate
 * pairs are normalised). Rewrites the object at b[obj0..] when a key repeats.
 */
static void dedup_object(out_buf *b, size_t obj0, const members *ms)
{
    size_t n = ms->n;
    if (n < 2 || b->oom)
        return;
    size_t small_last[16];
    size_t *last = n <= 16 ? small_last : ec_malloc(n * sizeof *last);
    size_t *table = NULL, size = 0;
    if (n > 16) { /* hash the keys; few keys compare pairwise */
        for (size = 64; size < 2 * n; size *= 2) {
        }
        table = ec_calloc(size, sizeof *table); /* member index + 1, 0 = empty */
    }
    if (!last || (n > 16 && !table)) {
        b->oom = 1;
        if (last != small_last)
            ec_free(last);
        ec_free(table);
        return;
    }
    int repeated = 0;
    for (size_t i = 0; i < n; i++) {
        size_t first = i;
        if (table) {
            size_t h = key_hash(b, &ms->m[i]) & (size - 1);
            while (table[h] && !same_key(b, &ms->m[table[h] - 1], &ms->m[i]))
                h = (h + 1) & (size - 1);
            if (table[h])
                first = table[h] - 1;
            else
                table[h] = i + 1;
        } else {
            for (size_t j = 0; j < i && first == i; j++)
                if (last[j] != SIZE_MAX && same_key(b, &ms->m[j], &ms->m[i]))
                    first = j;
        }
        last[i] = first == i ? i : SIZE_MAX;
        if (first != i) {
            last[first] = i;
            repeated = 1;
        }
    }
    if (repeated) {
        out_buf t = {NULL, 0, 0, 0};
        puts_(&t, "{");
        int sep = 0;
        for (size_t i = 0; i < n; i++) {
            if (last[i] == SIZE_MAX)
                continue;
            const member *k = &ms->m[i], *v = &ms->m[last[i]];
            if (sep++)
                puts_(&t, ", ");
            put(&t, b->p + k->k0, k->k1 - k->k0);
            puts_(&t, ": ");
            put(&t, b->p + v->v0, v->v1 - v->v0);
        }
        puts_(&t, "}");
        if (t.oom) {
            b->oom = 1;
        } else {
            b->len = obj0;
            put(b, t.p, t.len);
        }
        ec_free(t.p);
    }
    if (last != small_last)
        ec_free(last);
    ec_free(table);
}

static int object_members(scan *c, out_buf *b, int depth, members *ms)
{
    size_t obj0 = b->len;
    c->s++;
    puts_(b, "{");
    ws(c);
    if (c->s < c->end && *c->s == '}') {
        c->s++;
        puts_(b, "}");
        return 0;
    }
    for (;;) {
        member mb;
        ws(c);
        mb.k0 = b->len;
        if (c->s >= c->end || *c->s != '"' || string(c, b))
            return -1;
        mb.k1 = b->len;
        ws(c);
        if (c->s >= c->end || *c->s != ':')
            return -1;
        c->s++;
        puts_(b, ": ");
        mb.v0 = b->len;
        if (value(c, b, depth + 1))
            return -1;
        mb.v1 = b->len;
        if (add_member(b, ms, mb))
            return -1;
        ws(c);
        if (c->s < c->end && *c->s == ',') {
            c->s++;
            puts_(b, ", ");
            continue;
        }
        if (c->s < c->end && *c->s == '}') {
            c->s++;
            puts_(b, "}");
            dedup_object(b, obj0, ms);
            return 0;
        }
        return -1;
    }
}

static int object(scan *c, out_buf *b, int depth)
{
    members ms;
    ms.m = ms.inl;
    ms.n = 0;
    ms.cap = EC_COUNTOF(ms.inl);
    int r = object_members(c, b, depth, &ms);
    if (ms.m != ms.inl)
        ec_free(ms.m);
    return r;
}

static int value(scan *c, out_buf *b, int depth)
{
    if (depth > 512)
        return -1;
    ws(c);
    if (c->s >= c->end)
        return -1;
    switch (*c->s) {
    case '{':
        return object(c, b, depth);
    case '[': {
        c->s++;
        puts_(b, "[");
        ws(c);
        if (c->s < c->end && *c->s == ']') {
            c->s++;
            puts_(b, "]");
            return 0;
        }
        for (;;) {
            if (value(c, b, depth + 1))
                return -1;
            ws(c);
            if (c->s < c->end && *c->s == ',') {
                c->s++;
                puts_(b, ", ");
                continue;
            }
            if (c->s < c->end && *c->s == ']') {
                c->s++;
                puts_(b, "]");
                return 0;
            }
            return -1;
        }
    }
    case '"': return string(c, b);
    case 't': return lit(c, b, "true", "true");
    case 'f': return lit(c, b, "false", "false");
    case 'n': return lit(c, b, "null", "null");
    case 'N': return lit(c, b, "NaN", "NaN");
    case 'I': return lit(c, b, "Infinity", "Infinity");
    default:
        if (c->end - c->s >= 9 && memcmp(c->s, "-Infinity", 9) == 0)
            return lit(c, b, "-Infinity", "-Infinity");
        return number(c, b);
    }
}

ec_status ec_json_pyrepr(const char *text, size_t len, char **out, size_t *out_len)
{
    scan c = {text, text + len};
    out_buf b = {NULL, 0, 0, 0};
    *out = NULL;
    int bad = value(&c, &b, 0);
    ws(&c);
    if (!bad && c.s != c.end)
        bad = 1;
    if (b.oom) {
        ec_free(b.p);
        return EC_ERR_NOMEM;
    }
    if (bad) {
        ec_free(b.p);
        return EC_ERR_PARSE;
    }
    *out = b.p;
    if (out_len)
        *out_len = b.len;
    return EC_OK;
}
