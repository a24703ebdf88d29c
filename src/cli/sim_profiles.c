/* expertcast simulate and demo: loading the model and hardware profiles
 * by name or path (found by the library: ec_profile_find). */
#include "sim_report.h"

#include <limits.h>

int sim_profile_path(const char *name, int model, char *path)
{
    char dtype[EC_PROFILE_NAME_MAX];
    return ec_profile_find(name, model, path, PATH_MAX, model ? dtype : NULL, NULL) == EC_OK;
}

int sim_load_profiles(const char *cmd, const char *model, const char *hardware,
                      ec_model_profile *m, ec_hw_profile *h, char *mpath)
{
    char hpath[PATH_MAX], dtype[EC_PROFILE_NAME_MAX];
    ec_error err = {0};
    ec_status s;
    if ((s = ec_profile_find(model, 1, mpath, PATH_MAX, dtype, &err)))
        return s == EC_ERR_NOT_FOUND ? cli_usage_error(cmd, "--model: %s", err.message)
                                     : cli_fail(s, &err);
    if ((s = ec_profile_find(hardware, 0, hpath, sizeof hpath, NULL, &err)))
        return s == EC_ERR_NOT_FOUND ? cli_usage_error(cmd, "--hardware: %s", err.message)
                                     : cli_fail(s, &err);
    if ((s = ec_model_profile_load(mpath, dtype, m, &err)) ||
        (s = ec_hw_profile_load(hpath, h, &err)))
        return cli_fail(s, &err);
    return CLI_OK;
}
