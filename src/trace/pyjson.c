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
        if (cp == 0x7f) {
            char ch = 0x7f;
            put(b, &ch, 1);
            return;
        }
        put_u16(b, cp);
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
        char tmp[512], f[40];
        if (n >= sizeof tmp)
            return -1;
        memcpy(tmp, start, n);
        tmp[n] = '\0';
        ec_fmt_pyfloat(strtod(tmp, NULL), f);
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

static int value(scan *c, out_buf *b, int depth)
{
    if (depth > 512)
        return -1;
    ws(c);
    if (c->s >= c->end)
        return -1;
    switch (*c->s) {
    case '{': {
        c->s++;
        puts_(b, "{");
        ws(c);
        if (c->s < c->end && *c->s == '}') {
            c->s++;
            puts_(b, "}");
            return 0;
        }
        for (;;) {
            ws(c);
            if (c->s >= c->end || *c->s != '"' || string(c, b))
                return -1;
            ws(c);
            if (c->s >= c->end || *c->s != ':')
                return -1;
            c->s++;
            puts_(b, ": ");
            if (value(c, b, depth + 1))
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
                return 0;
            }
            return -1;
        }
    }
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
