/*
 * expertcast/core.h - status codes, error reports, allocator hook.
 *
 * Conventions shared by the whole library:
 *   - Every fallible function returns an ec_status; EC_OK is 0.
 *   - Constructors return the object through an out-pointer; on failure the
 *     out-pointer is set to NULL and, when the caller passed an ec_error, a
 *     message naming the file, line and field is written there.
 *   - Every *_destroy(NULL) is harmless.
 *   - The library never prints, exits or aborts.
 */
#ifndef EXPERTCAST_CORE_H
#define EXPERTCAST_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EC_VERSION_MAJOR 0
#define EC_VERSION_MINOR 1
#define EC_VERSION_PATCH 0
#define EC_VERSION_STRING "0.1.0"

typedef enum ec_status {
    EC_OK = 0,
    EC_ERR_INVALID = 1,     /* bad argument from the caller (usage error) */
    EC_ERR_NOMEM = 2,       /* an allocation failed */
    EC_ERR_IO = 3,          /* a file could not be opened, read or written */
    EC_ERR_PARSE = 4,       /* input data is malformed (file:line: field) */
    EC_ERR_RANGE = 5,       /* a value is outside what the model allows */
    EC_ERR_STATE = 6,       /* the call is not valid in the object's state */
    EC_ERR_UNSUPPORTED = 7, /* feature not built in (e.g. CUDA) */
    EC_ERR_NO_DEVICE = 8,   /* no usable GPU */
    EC_ERR_CUDA = 9,        /* a CUDA runtime call failed */
    EC_ERR_NOT_FOUND = 10,  /* a named thing (predictor, profile...) is unknown */
    EC_ERR_BUSY = 11,       /* every candidate slot is pinned by pending work */
    EC_ERR_NO_DATA = 12     /* the input holds nothing usable (no complete token) */
} ec_status;

/* A static, never-NULL English name for a status ("out of memory"...). */
const char *ec_status_str(ec_status s);

/* Library version string, e.g. "0.1.0". */
const char *ec_version(void);

/*
 * Error report filled by functions that have no handle to keep it in.
 * Pass NULL when you do not need the text. message is always
 * NUL-terminated and one line (control bytes from the input show as '?');
 * it reads like "trace.jsonl:12: field 'experts': expert id
 * 9 >= 8 experts".
 */
#define EC_ERROR_MAX 512
typedef struct ec_error {
    ec_status status;
    char message[EC_ERROR_MAX];
} ec_error;

/*
 * Allocator hook. Every allocation made by the library (cJSON's included)
 * goes through these functions. Set it before creating any object and do
 * not change it while objects exist. Passing NULL restores malloc/free.
 * realloc_fn may be NULL: the library then uses malloc + memcpy + free.
 */
typedef struct ec_allocator {
    void *(*malloc_fn)(size_t size, void *ctx);
    void *(*realloc_fn)(void *ptr, size_t size, void *ctx);
    void (*free_fn)(void *ptr, void *ctx);
    void *ctx;
} ec_allocator;

void ec_set_allocator(const ec_allocator *a);

/*
 * Memory limit. Before a large allocation whose size the input decides (a
 * pinned expert store of layers x experts x expert bytes, a trace's rows x
 * layers x k matrix, a predictor's layer x expert tables), the library
 * computes what it will need and refuses with EC_ERR_RANGE and a message
 * naming the need, its cause and the limit, rather than allocate. JSON
 * files (predictor, rules, profiles) are read only up to 1/8 of the limit
 * (their parsed tree takes several times the text). The default is
 * EC_MEMORY_LIMIT_DEFAULT, or the environment variable
 * EXPERTCAST_MAX_MEMORY when it holds a size ("8G", "512M", "4096K",
 * bytes), read at each check. ec_set_memory_limit overrides both; 0
 * removes the limit; (size_t)-1 restores the default. Process-wide, like
 * the allocator hook.
 */
#define EC_MEMORY_LIMIT_DEFAULT ((size_t)4 << 30)
void ec_set_memory_limit(size_t bytes);
/* The limit in force (SIZE_MAX when there is none). */
size_t ec_memory_limit(void);
/* Parses a size as EXPERTCAST_MAX_MEMORY takes it: digits and an optional
 * K, M or G (2^10, 2^20, 2^30). EC_ERR_INVALID when it is not one. */
ec_status ec_parse_size(const char *text, size_t *out);

/*
 * Output files. ec_outfile_open prepares PATH for writing and hands back a
 * FILE* to write; ec_outfile_commit completes it; ec_outfile_abort drops
 * what was written. Either call frees the handle.
 *   - A regular file (new or existing) is written to a temporary
 *     "NAME.ectmp.PID.XXXXXX" beside it (NAME shortened when needed, so that
 *     any valid file name works); commit flushes, syncs and renames it over
 *     PATH, abort removes it, so an interrupted writer leaves PATH as it was.
 *     A rewritten file keeps its permission bits, and its owner and group
 *     where the process may set them. An existing file this process may not
 *     write is refused (as opening it would be), although the directory
 *     would allow replacing it.
 *   - A symbolic link is followed: its target is written (and replaced as
 *     above); the link stays. A link to a missing file is refused.
 *   - A file with several hard links is rewritten in place at commit, from
 *     the complete temporary, so that every link sees the new contents; an
 *     error during that copy can leave it incomplete (the message says so).
 *   - A character device or FIFO (/dev/null, /dev/stdout, a named pipe) is
 *     opened and written directly, never replaced; commit reports any write
 *     error (/dev/full fails), abort cannot take back what was written.
 *   - "-" is standard output: flushed (errors reported) but not closed.
 *   - A directory, block device or socket is refused.
 * The first open in a directory (per process) removes the temporaries of
 * this naming left there by killed writers: those whose process is gone,
 * owned by this user, untouched for a minute.
 */
typedef struct ec_outfile ec_outfile;
ec_status ec_outfile_open(const char *path, ec_outfile **out, FILE **fp, ec_error *err);
ec_status ec_outfile_commit(ec_outfile *o, ec_error *err);
void ec_outfile_abort(ec_outfile *o);

/*
 * Removes every temporary of an ec_outfile this process has open (at most
 * 32 at once are tracked). Async-signal-safe: for a SIGINT/SIGTERM handler,
 * which then lets the signal end the process.
 */
void ec_outfile_cleanup_signal(void);

/*
 * Refuses (EC_ERR_INVALID, naming both paths) an output that is the same
 * file as one of the inputs, compared by device and inode, so that "./x",
 * an absolute path, a hard link or a symbolic link to an input all count;
 * and two outputs that are the same file (existing or to be created in the
 * same directory under the same name). NULL and "-" (standard output)
 * entries are skipped, and so are character devices and FIFOs, which no
 * write destroys. Call it before reading any input.
 */
ec_status ec_outputs_check(const char *const *outputs, size_t n_out, const char *const *inputs,
                           size_t n_in, ec_error *err);

/*
 * Data files shipped with expertcast (profiles/, sample_trace.jsonl): finds
 * `rel` (e.g. "profiles/h100-pcie5.json") in these directories, in order:
 *   1. $EXPERTCAST_DATA, when set and not empty;
 *   2. the installation the running executable belongs to:
 *      <directory of the executable>/../share/expertcast;
 *   3. the source tree's data/ this library was built from (compiled in, so
 *      that a build folder anywhere works without installing);
 *   4. the configured install prefix's share/expertcast (compiled in).
 * The current directory is not searched. Writes the first existing regular
 * file's path into path[cap]. EC_ERR_NOT_FOUND (message listing the
 * directories tried) when none has it.
 */
ec_status ec_data_find(const char *rel, char *path, size_t cap, ec_error *err);
/* The i-th directory of that search order (0 <= i < EC_DATA_DIRS) into
 * dir[cap]; 0 when there is none (variable unset, nothing compiled in), else
 * 1. The directory need not exist. */
#define EC_DATA_DIRS 4
int ec_data_dir(int i, char *dir, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
