/*
 * Finding model and hardware profiles by path or by name: $EXPERTCAST_PROFILES,
 * then profiles/ in the data directories (ec_data_find). A name that is not
 * found gets a message listing the names that are.
 */
#include "../core/internal.h"
#include "expertcast/sim.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* NAME.json in $EXPERTCAST_PROFILES, then in profiles/ of the data dirs. */
static int find_named(const char *name, char *path, size_t cap)
{
    const char *env = getenv("EXPERTCAST_PROFILES");
    int w;
    if (env && *env) {
        w = snprintf(path, cap, "%s/%s.json", env, name);
        if (w > 0 && (size_t)w < cap && is_file(path))
            return 1;
    }
    char rel[EC_PROFILE_NAME_MAX * 2 + 32];
    w = snprintf(rel, sizeof rel, "profiles/%s.json", name);
    return w > 0 && (size_t)w < sizeof rel && ec_data_find(rel, path, cap, NULL) == EC_OK;
}

/* The first profiles folder that exists: $EXPERTCAST_PROFILES, else
 * profiles/ of the first data directory that has one. */
static int profiles_dir(char *dir, size_t cap)
{
    const char *env = getenv("EXPERTCAST_PROFILES");
    struct stat st;
    if (env && *env && stat(env, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(dir, cap, "%s", env);
        return 1;
    }
    for (int i = 0; i < EC_DATA_DIRS; i++) {
        char d[PATH_MAX];
        if (!ec_data_dir(i, d, sizeof d))
            continue;
        int w = snprintf(dir, cap, "%s/profiles", d);
        if (w > 0 && (size_t)w < cap && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            return 1;
    }
    return 0;
}

/* Appends the names of the model (is_model) or hardware profiles in dir to
 * buf[cap] ("a, b, c"), sorted. */
static void list_names(const char *dir, int is_model, char *buf, size_t cap)
{
    buf[0] = '\0';
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, alphasort);
    size_t used = 0;
    const char *want = is_model ? "\"expertcast-model-profile\"" : "\"expertcast-hardware-profile\"";
    for (int i = 0; i < n; i++) {
        const char *fn = ents[i]->d_name;
        size_t len = strlen(fn);
        char path[PATH_MAX], *text = NULL;
        size_t tl = 0;
        if (len > 5 && strcmp(fn + len - 5, ".json") == 0 &&
            snprintf(path, sizeof path, "%s/%s", dir, fn) < (int)sizeof path &&
            ec_read_file(path, &text, &tl, NULL) == EC_OK && strstr(text, want) && used < cap) {
            int w = snprintf(buf + used, cap - used, "%s%.*s", used ? ", " : "", (int)(len - 5), fn);
            used += w > 0 ? (size_t)w : 0;
        }
        ec_free(text);
        free(ents[i]);
    }
    free(ents);
}

ec_status ec_profile_find(const char *name, int is_model, char *path, size_t cap, char *dtype,
                          ec_error *err)
{
    if (dtype)
        dtype[0] = '\0';
    if (!name || !*name || !path || !cap)
        return ec_error_set(err, EC_ERR_INVALID, "ec_profile_find: NULL or empty argument");
    const char *what = is_model ? "model" : "hardware";
    if (strchr(name, '/') || is_file(name)) {
        int w = snprintf(path, cap, "%s", name);
        if (w > 0 && (size_t)w < cap && is_file(path))
            return EC_OK;
        return ec_error_set(err, EC_ERR_NOT_FOUND, "%s profile '%s': no such file", what, name);
    }
    if (strlen(name) < EC_PROFILE_NAME_MAX && find_named(name, path, cap))
        return EC_OK;
    const char *dash = strrchr(name, '-');
    if (is_model && dash && dash != name && dash[1] && strlen(dash + 1) < EC_PROFILE_NAME_MAX &&
        (size_t)(dash - name) < EC_PROFILE_NAME_MAX) {
        char base[EC_PROFILE_NAME_MAX];
        snprintf(base, sizeof base, "%.*s", (int)(dash - name), name);
        if (find_named(base, path, cap)) {
            if (dtype)
                strcpy(dtype, dash + 1);
            return EC_OK;
        }
    }
    path[0] = '\0';
    char dir[PATH_MAX], names[256];
    if (!profiles_dir(dir, sizeof dir))
        return ec_error_set(err, EC_ERR_NOT_FOUND,
                            "no %s profile '%s': no profiles folder found. HINT: give a file "
                            "path, or set EXPERTCAST_DATA to the folder holding profiles/",
                            what, name);
    list_names(dir, is_model, names, sizeof names);
    return ec_error_set(err, EC_ERR_NOT_FOUND,
                        "no %s profile '%s' (a file path, or a name in %s: %s%s)", what, name,
                        dir, names[0] ? names : "none",
                        is_model ? "; NAME-DTYPE picks a dtype, e.g. mixtral-8x7b-int4" : "");
}

ec_status ec_profiles_load(const char *model, const char *hardware, ec_model_profile *m,
                           ec_hw_profile *h, ec_error *err)
{
    char mpath[PATH_MAX], hpath[PATH_MAX], dtype[EC_PROFILE_NAME_MAX];
    ec_status s;
    if ((s = ec_profile_find(model, 1, mpath, sizeof mpath, dtype, err)) ||
        (s = ec_profile_find(hardware, 0, hpath, sizeof hpath, NULL, err)) ||
        (s = ec_model_profile_load(mpath, dtype, m, err)) ||
        (s = ec_hw_profile_load(hpath, h, err)))
        return s;
    return EC_OK;
}
