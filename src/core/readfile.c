/* Whole-file reads for the small JSON documents the library loads
 * (predictor files, rules files, profiles). */
#include "internal.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

static ec_status too_big(const char *path, size_t limit, ec_error *err)
{
    char l[40];
    return ec_error_set(err, EC_ERR_RANGE,
                        "%s: larger than %s, the read limit for JSON files (1/8 of the memory "
                        "limit; set EXPERTCAST_MAX_MEMORY to change it)",
                        path, ec_fmt_bytes(limit, l, sizeof l));
}

ec_status ec_read_file(const char *path, char **out, size_t *len, ec_error *err)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ec_error_set(err, EC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    /* JSON documents: at most 1/8 of the memory limit, their parsed tree
     * takes several times the text (a FIFO or /dev/zero has no size to
     * check first, so the count is checked while reading too) */
    size_t limit = ec_memory_limit() / 8;
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && (uintmax_t)sb.st_size > limit) {
        fclose(f);
        return too_big(path, limit, err);
    }
    size_t cap = 0, n = 0;
    char *buf = NULL;
    for (;;) {
        if (n > limit) {
            ec_free(buf);
            fclose(f);
            return too_big(path, limit, err);
        }
        if (ec_grow((void **)&buf, &cap, n + 65536, 1)) {
            ec_free(buf);
            fclose(f);
            return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        ec_free(buf);
        return ec_error_set(err, EC_ERR_IO, "%s: read error (is it a directory?)", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return EC_OK;
}
