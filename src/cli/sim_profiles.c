/* expertcast simulate and demo: finding and loading the model and hardware
 * profiles by name or path. */
#include "sim_report.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Candidate directories for named profiles, in order. */
static int profile_dirs(char dirs[][PATH_MAX], int max)
{
    int n = 0;
    const char *env = getenv("EXPERTCAST_PROFILES");
    if (env && *env && n < max)
        snprintf(dirs[n++], PATH_MAX, "%s", env);
    if (n < max)
        snprintf(dirs[n++], PATH_MAX, "data/profiles");
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            const char *rel[] = {"../data/profiles", "../../data/profiles",
                                 "../share/expertcast/profiles"};
            for (size_t i = 0; i < 3 && n < max; i++) {
                int w = snprintf(dirs[n], PATH_MAX, "%s/%s", exe, rel[i]);
                if (w > 0 && w < PATH_MAX)
                    n++;
            }
        }
    }
    return n;
}

/* Resolves NAME to a file; for models, NAME-DTYPE may name a dtype of NAME.json. */
static int resolve_profile(const char *name, int model, char *path, char *dtype)
{
    dtype[0] = '\0';
    if (strchr(name, '/') || is_file(name)) {
        snprintf(path, PATH_MAX, "%s", name);
        return is_file(path);
    }
    char dirs[5][PATH_MAX];
    int nd = profile_dirs(dirs, 5);
    for (int i = 0; i < nd; i++) {
        int w = snprintf(path, PATH_MAX, "%s/%s.json", dirs[i], name);
        if (w > 0 && w < PATH_MAX && is_file(path))
            return 1;
    }
    const char *dash = strrchr(name, '-');
    if (model && dash && dash != name && strlen(dash + 1) < EC_PROFILE_NAME_MAX) {
        char base[EC_PROFILE_NAME_MAX * 2];
        snprintf(base, sizeof base, "%.*s", (int)(dash - name), name);
        for (int i = 0; i < nd; i++) {
            int w = snprintf(path, PATH_MAX, "%s/%s.json", dirs[i], base);
            if (w > 0 && w < PATH_MAX && is_file(path)) {
                strcpy(dtype, dash + 1);
                return 1;
            }
        }
    }
    return 0;
}

int sim_profile_path(const char *name, int model, char *path)
{
    char dtype[PATH_MAX];
    return resolve_profile(name, model, path, dtype);
}

int sim_load_profiles(const char *cmd, const char *model, const char *hardware,
                      ec_model_profile *m, ec_hw_profile *h, char *mpath)
{
    char hpath[PATH_MAX], dtype[PATH_MAX], unused[PATH_MAX];
    if (!resolve_profile(model, 1, mpath, dtype))
        return cli_usage_error(cmd, "--model: no profile '%s' (a file, or a name in "
                                    "data/profiles)", model);
    if (!resolve_profile(hardware, 0, hpath, unused))
        return cli_usage_error(cmd, "--hardware: no profile '%s' (a file, or a name in "
                                    "data/profiles)", hardware);
    ec_error err = {0};
    ec_status s;
    if ((s = ec_model_profile_load(mpath, dtype, m, &err)) ||
        (s = ec_hw_profile_load(hpath, h, &err)))
        return cli_fail(s, &err);
    return CLI_OK;
}
