/* Where the shipped data files (profiles, the sample trace) are found,
 * whatever the current directory and wherever the build folder is. */
#include "internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef EC_SOURCE_DATA_DIR
#define EC_SOURCE_DATA_DIR ""
#endif
#ifndef EC_INSTALL_DATA_DIR
#define EC_INSTALL_DATA_DIR ""
#endif

/* <directory of the running executable>/../share/expertcast */
static int exe_share_dir(char *dir, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return 0;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    int w = snprintf(dir, cap, "%s/../share/expertcast", exe);
    return w > 0 && (size_t)w < cap;
}

int ec_data_dir(int i, char *dir, size_t cap)
{
    const char *s = NULL;
    switch (i) {
    case 0:
        s = getenv("EXPERTCAST_DATA");
        break;
    case 1:
        return exe_share_dir(dir, cap);
    case 2:
        s = EC_SOURCE_DATA_DIR;
        break;
    case 3:
        s = EC_INSTALL_DATA_DIR;
        break;
    default:
        return 0;
    }
    if (!s || !*s)
        return 0;
    int w = snprintf(dir, cap, "%s", s);
    return w > 0 && (size_t)w < cap;
}

ec_status ec_data_find(const char *rel, char *path, size_t cap, ec_error *err)
{
    if (!rel || !*rel || !path || !cap)
        return ec_error_set(err, EC_ERR_INVALID, "ec_data_find: NULL or empty argument");
    char tried[EC_ERROR_MAX / 2] = "";
    size_t used = 0;
    for (int i = 0; i < EC_DATA_DIRS; i++) {
        char dir[PATH_MAX];
        if (!ec_data_dir(i, dir, sizeof dir))
            continue;
        struct stat st;
        int w = snprintf(path, cap, "%s/%s", dir, rel);
        if (w > 0 && (size_t)w < cap && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            return EC_OK;
        if (used < sizeof tried) {
            int t = snprintf(tried + used, sizeof tried - used, "%s%s", used ? ", " : "", dir);
            used += t > 0 ? (size_t)t : 0;
        }
    }
    path[0] = '\0';
    return ec_error_set(err, EC_ERR_NOT_FOUND,
                        "data file '%s' not found (looked in: %s). HINT: set EXPERTCAST_DATA "
                        "to the folder holding profiles/ and sample_trace.jsonl",
                        rel, used ? tried : "no directory");
}
