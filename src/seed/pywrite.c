/* JSON text in the layout of Python's json.dump(indent=2). */
#include "pywrite.h"

#include "../trace/jsonl.h"

#include <errno.h>
#include <string.h>

void pyw_init(pyw *w, FILE *f)
{
    memset(w, 0, sizeof *w);
    w->f = f;
}

/* Separator and indentation before a value or key. */
static void item(pyw *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->depth == 0)
        return;
    if (w->items[w->depth - 1]++ > 0)
        fputc(',', w->f);
    fputc('\n', w->f);
    for (int i = 0; i < w->depth; i++)
        fputs("  ", w->f);
}

static void open_(pyw *w, int ch)
{
    item(w);
    fputc(ch, w->f);
    if (w->depth < PYW_MAX_DEPTH)
        w->items[w->depth] = 0;
    w->depth++;
}

static void close_(pyw *w, int ch)
{
    w->depth--;
    if (w->depth < PYW_MAX_DEPTH && w->items[w->depth] > 0) {
        fputc('\n', w->f);
        for (int i = 0; i < w->depth; i++)
            fputs("  ", w->f);
    }
    fputc(ch, w->f);
}

void pyw_begin_object(pyw *w) { open_(w, '{'); }
void pyw_end_object(pyw *w) { close_(w, '}'); }
void pyw_begin_array(pyw *w) { open_(w, '['); }
void pyw_end_array(pyw *w) { close_(w, ']'); }

void pyw_key(pyw *w, const char *key)
{
    pyw_string(w, key);
    fputs(": ", w->f);
    w->after_key = 1;
}

void pyw_int(pyw *w, int64_t v)
{
    item(w);
    fprintf(w->f, "%lld", (long long)v);
}

void pyw_float(pyw *w, double v)
{
    char buf[40];
    item(w);
    ec_fmt_pyfloat(v, buf);
    fputs(buf, w->f);
}

void pyw_string(pyw *w, const char *s)
{
    item(w);
    /* Quote with the minimal JSON escapes, then let the Python
     * re-serialiser apply ensure_ascii (\uXXXX, surrogate pairs). */
    size_t n = strlen(s);
    char *lit = ec_malloc(n * 6 + 3);
    char *py = NULL;
    size_t py_len = 0;
    if (lit) {
        char *o = lit;
        *o++ = '"';
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
            if (*p == '"' || *p == '\\') {
                *o++ = '\\';
                *o++ = (char)*p;
            } else if (*p < 0x20) {
                o += sprintf(o, "\\u%04x", *p);
            } else {
                *o++ = (char)*p;
            }
        }
        *o++ = '"';
        *o = '\0';
        ec_status st = ec_json_pyrepr(lit, (size_t)(o - lit), &py, &py_len);
        if (st == EC_OK) {
            fwrite(py, 1, py_len, w->f);
        } else if (st == EC_ERR_NOMEM) {
            w->oom = 1;
        } else {
            /* Not valid UTF-8: keep the bytes Python would not print, as
             * '?', rather than fail the whole document. */
            for (char *q = lit; *q; q++)
                fputc((unsigned char)*q >= 0x80 ? '?' : *q, w->f);
        }
    } else {
        w->oom = 1;
    }
    ec_free(py);
    ec_free(lit);
}

ec_status pyw_finish(pyw *w, ec_error *err)
{
    if (w->oom)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory writing JSON");
    if (ferror(w->f))
        return ec_error_set(err, EC_ERR_IO, "write error: %s", strerror(errno));
    return EC_OK;
}
