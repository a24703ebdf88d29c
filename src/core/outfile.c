/* Output files: a temporary beside the target, renamed over it when complete;
 * character devices and FIFOs written directly; inputs never overwritten. */
#define _GNU_SOURCE /* realpath, fstatat, faccessat's AT_EACCESS */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef NAME_MAX
#define NAME_MAX 255
#endif

/* ".ectmp." + up to 10 pid digits + "." + 6 letters */
#define TMP_TAG ".ectmp."
#define TMP_SUFFIX_MAX (sizeof TMP_TAG - 1 + 10 + 1 + 6)
/* A temporary whose writer is gone is removed once untouched this long. */
#define STALE_SECONDS 60

struct ec_outfile {
    FILE *f;
    char *path;   /* as given: for messages */
    char *target; /* the file written: path with symbolic links followed */
    char *tmp;    /* the temporary; NULL when writing the target directly */
    int in_place; /* the target has other hard links: commit copies into it */
    int slot;     /* signal clean-up registry slot, or -1 */
    int std;      /* "-": standard output, flushed but not closed */
};

/* ---- live temporaries, for clean-up from a signal handler ------------------- */

enum { SLOT_FREE, SLOT_BUSY, SLOT_LIVE };
#define N_SLOTS 32
static struct {
    _Atomic int state;
    char path[PATH_MAX];
} live[N_SLOTS];

static int slot_take(const char *tmp)
{
    if (strlen(tmp) >= PATH_MAX)
        return -1;
    for (int i = 0; i < N_SLOTS; i++) {
        int expect = SLOT_FREE;
        if (atomic_compare_exchange_strong(&live[i].state, &expect, SLOT_BUSY)) {
            strcpy(live[i].path, tmp);
            atomic_store(&live[i].state, SLOT_LIVE);
            return i;
        }
    }
    return -1; /* more than N_SLOTS at once: the sweep removes it after a kill */
}

static void slot_release(int i)
{
    if (i >= 0)
        atomic_store(&live[i].state, SLOT_FREE);
}

void ec_outfile_cleanup_signal(void)
{
    for (int i = 0; i < N_SLOTS; i++)
        if (atomic_load(&live[i].state) == SLOT_LIVE)
            unlink(live[i].path); /* async-signal-safe */
}

/* ---- naming and the sweep of stale temporaries ------------------------------ */

/* Length of the directory part of path, its final '/' included (0: none). */
static size_t dir_len(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? (size_t)(s - path) + 1 : 0;
}

/* How many bytes of the file name start a temporary's name: the whole name
 * when the suffix still fits within NAME_MAX, else a prefix of it. */
static size_t stem_len(const char *base)
{
    size_t n = strlen(base);
    return EC_MIN(n, NAME_MAX - TMP_SUFFIX_MAX);
}

/* Whether name is STEM.ectmp.PID.XXXXXX (STEM not empty); *pid receives PID. */
static bool is_temp_name(const char *name, long *pid)
{
    const char *tag = NULL;
    for (const char *p = strstr(name, TMP_TAG); p; p = strstr(p + 1, TMP_TAG))
        tag = p;
    if (!tag || tag == name)
        return false;
    const char *p = tag + sizeof TMP_TAG - 1;
    char *end;
    if (*p < '0' || *p > '9')
        return false;
    errno = 0;
    *pid = strtol(p, &end, 10);
    if (errno || *pid <= 0 || *end != '.')
        return false;
    for (int i = 1; i <= 6; i++)
        if (!((end[i] >= 'a' && end[i] <= 'z') || (end[i] >= 'A' && end[i] <= 'Z') ||
              (end[i] >= '0' && end[i] <= '9')))
            return false;
    return end[7] == '\0';
}

/*
 * Removes the temporaries left in the target's directory by writers that
 * were killed: names of this pattern whose process no longer exists,
 * regular files owned by this user and not modified for STALE_SECONDS (a
 * writer in another process namespace, whose pid means nothing here, keeps
 * writing). Once per directory per process: writing many files into one
 * directory (extract) does not read it again for each.
 */
static void sweep_stale(const char *target)
{
    static _Atomic uint64_t last_dev, last_ino;
    size_t dl = dir_len(target);
    char *dir = ec_malloc(dl + 2);
    if (!dir)
        return;
    if (dl)
        memcpy(dir, target, dl), dir[dl] = '\0';
    else
        strcpy(dir, ".");
    DIR *d = opendir(dir);
    ec_free(dir);
    struct stat ds;
    if (!d)
        return;
    if (fstat(dirfd(d), &ds) != 0 ||
        (atomic_load(&last_dev) == (uint64_t)ds.st_dev &&
         atomic_load(&last_ino) == (uint64_t)ds.st_ino)) {
        closedir(d);
        return;
    }
    atomic_store(&last_dev, (uint64_t)ds.st_dev);
    atomic_store(&last_ino, (uint64_t)ds.st_ino);
    time_t now = time(NULL);
    struct dirent *e;
    long pid;
    while ((e = readdir(d))) {
        struct stat sb;
        if (!is_temp_name(e->d_name, &pid) || pid == (long)getpid() || pid > INT_MAX)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode) ||
            sb.st_uid != geteuid() || now - sb.st_mtime < STALE_SECONDS)
            continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

/*
 * Creates "DIR/STEM.ectmp.PID.XXXXXX" exclusively (6 random letters and
 * digits). A new file gets mode 0666 so that the umask applies as for any
 * new file; a rewritten one starts at 0600 and gets the old file's mode at
 * open. Returns the descriptor or -1 (errno set).
 */
static int create_temp(const char *target, char *tmp, size_t cap, mode_t mode)
{
    static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static _Atomic uint64_t counter;
    size_t dl = dir_len(target), stem_n = stem_len(target + dl);
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
        snprintf(tmp, cap, "%.*s" TMP_TAG "%ld.%s", (int)(dl + stem_n), target, (long)getpid(),
                 name);
        int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    errno = EEXIST;
    return -1;
}

/* ---- open / commit / abort ----------------------------------------------- */

static void outfile_free(ec_outfile *o)
{
    if (!o)
        return;
    ec_free(o->path);
    ec_free(o->target);
    ec_free(o->tmp);
    ec_free(o);
}

/* The file a path writes to: the path itself, or a symbolic link's target. */
static ec_status resolve_target(const char *path, char **target, ec_error *err)
{
    struct stat sb;
    if (lstat(path, &sb) != 0 || !S_ISLNK(sb.st_mode)) {
        *target = ec_strdup(path);
        return *target ? EC_OK : ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
    }
    char *real = realpath(path, NULL);
    if (!real)
        return ec_error_set(err, EC_ERR_IO,
                            "%s: symbolic link to a file that cannot be reached (%s): "
                            "refusing to write through it",
                            path, strerror(errno));
    *target = ec_strdup(real);
    free(real);
    return *target ? EC_OK : ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
}

ec_status ec_outfile_open(const char *path, ec_outfile **out, FILE **fp, ec_error *err)
{
    if (!path || !out || !fp)
        return ec_error_set(err, EC_ERR_INVALID, "ec_outfile_open: NULL argument");
    *out = NULL;
    *fp = NULL;
    if (!path[0])
        return ec_error_set(err, EC_ERR_INVALID, "an output path is empty");
    ec_outfile *o = ec_calloc(1, sizeof *o);
    if (!o || !(o->path = ec_strdup(path))) {
        outfile_free(o);
        return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
    }
    o->slot = -1;
    ec_status s = EC_OK;
    struct stat sb;
    int exists = stat(path, &sb) == 0;
    if (strcmp(path, "-") == 0) {
        o->std = 1;
        o->f = stdout;
    } else if (!exists && errno != ENOENT) {
        s = ec_error_set(err, EC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    } else if (exists && S_ISDIR(sb.st_mode)) {
        s = ec_error_set(err, EC_ERR_IO, "%s: is a directory, expected a file path", path);
    } else if (exists && (S_ISCHR(sb.st_mode) || S_ISFIFO(sb.st_mode))) {
        /* /dev/null, /dev/stdout, a named pipe: written directly (a FIFO
         * waits for its reader here, as a shell redirection does). */
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || !(o->f = fdopen(fd, "wb"))) {
            s = ec_error_set(err, EC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
            if (fd >= 0)
                close(fd);
        }
    } else if (!(s = resolve_target(path, &o->target, err)) && !exists) {
        /* a new file */
    } else if (s) {
        /* a symbolic link that cannot be followed */
    } else if (!S_ISREG(sb.st_mode)) {
        s = ec_error_set(err, EC_ERR_IO,
                         "%s: not a regular file, character device or FIFO: refusing to write",
                         path);
    } else if (faccessat(AT_FDCWD, o->target, W_OK, AT_EACCESS) != 0) {
        /* Renaming over it needs only the directory's permission: refuse
         * what opening the file itself would refuse. */
        s = ec_error_set(err, EC_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    if (!s && o->target) {
        sweep_stale(o->target);
        size_t cap = strlen(o->target) + TMP_SUFFIX_MAX + 1;
        o->in_place = exists && sb.st_nlink > 1;
        int fd = -1;
        if (!(o->tmp = ec_malloc(cap)))
            s = ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path);
        else if ((fd = create_temp(o->target, o->tmp, cap, exists ? 0600 : 0666)) < 0)
            s = ec_error_set(err, EC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        if (!s && exists && !o->in_place) {
            /* The old file's owner where permitted (else its group, else
             * ours), then its mode: chown clears set-id bits. */
            if (fchown(fd, sb.st_uid, sb.st_gid) != 0 && fchown(fd, (uid_t)-1, sb.st_gid) != 0) {
                /* kept as ours */
            }
            if (fchmod(fd, sb.st_mode & 07777) != 0) {
                s = ec_error_set(err, EC_ERR_IO, "%s: cannot set the mode: %s", path,
                                 strerror(errno));
            }
        }
        if (!s && !(o->f = fdopen(fd, "w+b")))
            s = ec_error_set(err, EC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        if (s && fd >= 0) {
            close(fd);
            unlink(o->tmp);
        }
        if (!s)
            o->slot = slot_take(o->tmp);
    }
    if (s) {
        outfile_free(o);
        return s;
    }
    *out = o;
    *fp = o->f;
    return EC_OK;
}

/* Copies the finished temporary into the target itself, so that its other
 * hard links see the new contents. Returns 0 or an errno value. */
static int copy_in_place(ec_outfile *o)
{
    int in = fileno(o->f);
    if (lseek(in, 0, SEEK_SET) != 0)
        return errno;
    int fd = open(o->target, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return errno;
    char buf[65536];
    ssize_t n;
    int e = 0;
    while (!e && (n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno != EINTR)
                e = errno;
            continue;
        }
        for (ssize_t done = 0; !e && done < n;) {
            ssize_t w = write(fd, buf + done, (size_t)(n - done));
            if (w < 0 && errno != EINTR)
                e = errno;
            else if (w > 0)
                done += w;
        }
    }
    if (!e && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    return e;
}

ec_status ec_outfile_commit(ec_outfile *o, ec_error *err)
{
    if (!o)
        return ec_error_set(err, EC_ERR_INVALID, "ec_outfile_commit: NULL handle");
    ec_status s = EC_OK;
    int bad = ferror(o->f) || fflush(o->f) != 0 || (o->tmp && fsync(fileno(o->f)) != 0);
    int e = errno ? errno : EIO;
    if (o->std) {
        s = bad ? ec_error_set(err, EC_ERR_IO, "standard output: write failed: %s", strerror(e))
                : EC_OK;
        outfile_free(o);
        return s;
    }
    if (!bad && o->in_place && (e = copy_in_place(o)) != 0) {
        s = ec_error_set(err, EC_ERR_IO,
                         "%s: rewriting it in place (it has other hard links) failed: %s; "
                         "it may be incomplete",
                         o->path, strerror(e));
        bad = -1;
    }
    if (fclose(o->f) != 0 && !bad) {
        e = errno;
        bad = 1;
    }
    if (bad > 0)
        s = ec_error_set(err, EC_ERR_IO, "%s: write failed: %s", o->path, strerror(e));
    if (o->tmp) {
        if (bad || o->in_place)
            unlink(o->tmp);
        else if (rename(o->tmp, o->target) != 0) {
            s = ec_error_set(err, EC_ERR_IO, "%s: cannot rename into place: %s", o->path,
                             strerror(errno));
            unlink(o->tmp);
        }
    }
    slot_release(o->slot);
    outfile_free(o);
    return s;
}

void ec_outfile_abort(ec_outfile *o)
{
    if (!o)
        return;
    if (o->std)
        fflush(o->f); /* what was written is out: it cannot be taken back */
    else
        fclose(o->f);
    if (o->tmp)
        unlink(o->tmp);
    slot_release(o->slot);
    outfile_free(o);
}

/* ---- outputs against inputs ------------------------------------------------ */

/* What a path names: an existing file (device, inode), or a file not yet
 * there (its directory's device and inode, and its last component). */
typedef struct file_id {
    int exists, special;
    dev_t dev;
    ino_t ino;
    const char *base;
} file_id;

static bool file_identify(const char *path, file_id *id)
{
    struct stat sb;
    memset(id, 0, sizeof *id);
    if (stat(path, &sb) == 0) {
        id->exists = 1;
        id->special = S_ISCHR(sb.st_mode) || S_ISFIFO(sb.st_mode);
        id->dev = sb.st_dev;
        id->ino = sb.st_ino;
        return true;
    }
    size_t dl = dir_len(path);
    char *dir = ec_malloc(dl + 2);
    if (!dir)
        return false;
    if (dl)
        memcpy(dir, path, dl), dir[dl] = '\0';
    else
        strcpy(dir, ".");
    bool ok = stat(dir, &sb) == 0;
    ec_free(dir);
    if (!ok)
        return false;
    id->dev = sb.st_dev;
    id->ino = sb.st_ino;
    id->base = path + dl;
    return id->base[0] != '\0';
}

static bool same_file(const file_id *a, const file_id *b)
{
    if (a->exists != b->exists || a->dev != b->dev || a->ino != b->ino)
        return false;
    return a->exists || strcmp(a->base, b->base) == 0;
}

ec_status ec_outputs_check(const char *const *outputs, size_t n_out, const char *const *inputs,
                           size_t n_in, ec_error *err)
{
    for (size_t i = 0; i < n_out; i++) {
        file_id o, x;
        if (!outputs[i] || strcmp(outputs[i], "-") == 0 || !file_identify(outputs[i], &o) ||
            o.special)
            continue; /* stdout, or a device or pipe, which no write destroys */
        for (size_t j = 0; o.exists && j < n_in; j++)
            if (inputs[j] && file_identify(inputs[j], &x) && same_file(&o, &x))
                return ec_error_set(err, EC_ERR_INVALID,
                                    "output %s is the input %s (the same file): refusing to "
                                    "overwrite an input",
                                    outputs[i], inputs[j]);
        for (size_t j = 0; j < i; j++)
            if (outputs[j] && strcmp(outputs[j], "-") != 0 && file_identify(outputs[j], &x) &&
                same_file(&o, &x))
                return ec_error_set(err, EC_ERR_INVALID,
                                    "outputs %s and %s are the same file: one would replace the "
                                    "other",
                                    outputs[j], outputs[i]);
    }
    return EC_OK;
}
