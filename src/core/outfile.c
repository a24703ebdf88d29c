/* Atomic output files: write to a temporary name, rename when complete. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct ec_outfile {
    FILE *f;
    char *path;
    char *tmp;
};

/*
 * Creates "PATH.tmp.XXXXXX" (6 random letters and digits) exclusively with
 * mode 0666, so that the umask applies as for any new file: mkstemp's 0600
 * would need the process-wide umask read (and briefly changed) to fix up,
 * which races with other threads. Returns the descriptor or -1 (errno set).
 */
static int create_temp(const char *path, char *tmp, size_t cap)
{
    static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static _Atomic uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    for (int attempt = 0; attempt < 100; attempt++) {
        /* splitmix64 of time, pid and a counter: distinct across threads
         * and processes; collisions are retried. */
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                     ((uint64_t)getpid() << 40) ^ (counter++ * 0x9e3779b97f4a7c15u);
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
        x ^= x >> 31;
        char name[7];
        for (int i = 0; i < 6; i++, x /= 62)
            name[i] = chars[x % 62];
        name[6] = '\0';
        snprintf(tmp, cap, "%s.tmp.%s", path, name);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    errno = EEXIST;
    return -1;
}

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
    int fd = create_temp(path, o->tmp, n + 16);
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
    if (fclose(o->f) != 0) {
        if (!bad)
            e = errno;
        bad = 1;
    }
    ec_status s = EC_OK;
    if (bad) {
        s = ec_error_set(err, EC_ERR_IO, "%s: write failed: %s", o->path, strerror(e));
        unlink(o->tmp);
    } else if (rename(o->tmp, o->path) != 0) {
        s = ec_error_set(err, EC_ERR_IO, "%s: cannot rename into place: %s", o->path,
                         strerror(errno));
        unlink(o->tmp);
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
