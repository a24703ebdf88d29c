/*
 * A JSON writer that lays text out as Python's json.dump(obj, f, indent=2)
 * does: one item per line, two spaces per level, ", " never used, empty
 * containers as {} and [], strings escaped with ensure_ascii, floats as
 * repr(float). Ints and floats are distinct calls, as they are in Python.
 */
#ifndef EC_SEED_PYWRITE_H
#define EC_SEED_PYWRITE_H

#include "../core/internal.h"

#include <stdint.h>

#define PYW_MAX_DEPTH 16

typedef struct pyw {
    FILE *f;
    int depth;
    size_t items[PYW_MAX_DEPTH]; /* items written in each open container */
    int after_key;               /* a key was written, its value comes next */
    int oom;                     /* an escape ran out of memory */
} pyw;

void pyw_init(pyw *w, FILE *f);
void pyw_begin_object(pyw *w);
void pyw_end_object(pyw *w);
void pyw_begin_array(pyw *w);
void pyw_end_array(pyw *w);
/* The key of the next value inside an object. */
void pyw_key(pyw *w, const char *key);
void pyw_int(pyw *w, int64_t v);
void pyw_float(pyw *w, double v);
void pyw_string(pyw *w, const char *s);
/* Ends the document; as json.dump, no newline follows the last brace.
 * EC_ERR_IO / EC_ERR_NOMEM on failure. */
ec_status pyw_finish(pyw *w, ec_error *err);

#endif
