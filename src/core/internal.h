/* Internal helpers shared by every module. Not installed. */
#ifndef EC_INTERNAL_H
#define EC_INTERNAL_H

#include "expertcast/core.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#if defined(__GNUC__)
#define EC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define EC_PRINTF(a, b)
#endif

void *ec_malloc(size_t n);
void *ec_calloc(size_t count, size_t size);
void *ec_realloc(void *p, size_t n);
void ec_free(void *p);
char *ec_strdup(const char *s);
/* How many allocations have failed so far (lets callers of libraries that
 * fold out-of-memory into other errors, like cJSON, tell them apart). */
size_t ec_alloc_failures(void);

/* Writes status and a formatted message into err (err may be NULL).
 * Returns status, so callers can `return ec_error_set(err, ...)`. */
ec_status ec_error_set(ec_error *err, ec_status status, const char *fmt, ...) EC_PRINTF(3, 4);
ec_status ec_error_vset(ec_error *err, ec_status status, const char *fmt, va_list ap);
/* Clears err to EC_OK with an empty message. */
void ec_error_clear(ec_error *err);

/* Grows *buf (elements of size elem) so that it holds at least need
 * elements; *cap is updated. Returns EC_OK or EC_ERR_NOMEM (buf untouched). */
ec_status ec_grow(void **buf, size_t *cap, size_t need, size_t elem);

/* Reads the whole file at path into *out (NUL-terminated, owned by the
 * caller: ec_free) and its length in bytes, without the NUL, into *len.
 * Errors name the path: "cannot open", "read error (is it a directory?)",
 * "out of memory". On failure *out is NULL and *len 0. */
ec_status ec_read_file(const char *path, char **out, size_t *len, ec_error *err);

/* EC_OK when `need` bytes are within the memory limit, else EC_ERR_RANGE
 * with "WHAT needs N GiB, above the memory limit of M GiB (set
 * EXPERTCAST_MAX_MEMORY to change it)"; what says what and why ("the pinned
 * expert store (4092 layers x 8 experts x 1 MiB)"). need SIZE_MAX stands
 * for an overflow. */
ec_status ec_memory_check(size_t need, const char *what, ec_error *err);
/* True when the limit was set (ec_set_memory_limit or the environment),
 * not the default. */
bool ec_memory_limit_explicit(void);
/* s copied into buf for a one-line message: at most cap - 1 bytes, anything
 * but printable ASCII shown as '?'; buf may be s. Returns buf. */
const char *ec_one_line(const char *s, char *buf, size_t cap);
/* n as "1.5 GiB", "12.0 MiB" or "512 bytes" into buf; returns buf. */
const char *ec_fmt_bytes(size_t n, char *buf, size_t cap);
/* a * b, or SIZE_MAX when it overflows (for ec_memory_check) */
size_t ec_mul_size(size_t a, size_t b);

#define EC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define EC_MAX(a, b) ((a) > (b) ? (a) : (b))
#define EC_COUNTOF(a) (sizeof(a) / sizeof((a)[0]))

#endif
