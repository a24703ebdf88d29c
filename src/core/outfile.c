/* Atomic output files: write to a temporary name, rename when complete. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ec_outfile {
    FILE *f;
    char *path;
    char *tmp;
};

ec_status ec_outfile_open(const char *path, ec_outfile **out, FILE **fp, ec_error *err)
{
    if (!path || !out || !fp)
        return ec_error_set(err, EC_ERR_INVALID, "ec_outfile_open: NULL argument");
    *out = NULL;
    *fp = NULL;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return ec_error_set(err, EC_ERR_IO, "%s: is a directory, expected a file path", path);
    ec_outfile *o = ec_calloc(1, sizeof *o);
    size_t n = strlen(path);
    if (o) {
        o->path = ec_strdup(path);
        o->tmp = ec_malloc(n + 16);
    }
    if (!o || !o->path || !o->tmp) {
        if (o) {
            ec_free(o->path);
            ec_free(o->tmp);
        }
        ec_free(o);
        return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(o->tmp, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(o->tmp);
    if (fd < 0 || !(o->f = fdopen(fd, "wb"))) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
            unlink(o->tmp);
        }
        ec_free(o->path);
        ec_free(o->tmp);
        ec_free(o);
        return ec_error_set(err, EC_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
    *out = o;
    *fp = o->f;
    return EC_OK;
}

static void outfile_free(ec_outfile *o)
{
    ec_free(o->path);
    ec_free(o->tmp);
    ec_free(o);
}

ec_status ec_outfile_commit(ec_outfile *o, ec_error *err)
{
    if (!o)
        return ec_error_set(err, EC_ERR_INVALID, "ec_outfile_commit: NULL handle");
    int bad = ferror(o->f) || fflush(o->f) != 0 || fsync(fileno(o->f)) != 0;
    int e = errno;
    bad |= fclose(o->f) != 0;
    ec_status s = EC_OK;
    if (bad) {
        s = ec_error_set(err, EC_ERR_IO, "%s: write failed: %s", o->path, strerror(e));
        unlink(o->tmp);
    } else if (rename(o->tmp, o->path) != 0) {
        s = ec_error_set(err, EC_ERR_IO, "%s: cannot rename into place: %s", o->path,
                         strerror(errno));
        unlink(o->tmp);
    } else {
        /* mkstemp creates 0600; give the file the usual permissions. */
        mode_t um = umask(0);
        umask(um);
        chmod(o->path, 0666 & ~um);
    }
    outfile_free(o);
    return s;
}

void ec_outfile_abort(ec_outfile *o)
{
    if (!o)
        return;
    fclose(o->f);
    unlink(o->tmp);
    outfile_free(o);
}
