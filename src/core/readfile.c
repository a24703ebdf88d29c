/* Whole-file reads for the small JSON documents the library loads
 * (predictor files, rules files, profiles). */
#include "internal.h"

#include <errno.h>
#include <string.h>

ec_status ec_read_file(const char *path, char **out, size_t *len, ec_error *err)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ec_error_set(err, EC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 0, n = 0;
    char *buf = NULL;
    for (;;) {
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
