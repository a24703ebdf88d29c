/* Reading the library's small JSON documents with cJSON. */
#include "json.h"

#include <math.h>

#define EC_STR2(x) #x
#define EC_STR(x) EC_STR2(x)

const char *ec_json_why(const char *text, size_t at)
{
    size_t depth = 0;
    int in_string = 0;
    for (size_t i = 0; i < at; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"')
            in_string = 1;
        else if (c == '[' || c == '{')
            depth++;
        else if ((c == ']' || c == '}') && depth)
            depth--;
    }
    return depth >= CJSON_NESTING_LIMIT
               ? "JSON nested deeper than " EC_STR(CJSON_NESTING_LIMIT) " levels"
               : "not valid JSON";
}

ec_status ec_json_load(const char *path, cJSON **out, ec_error *err)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    ec_status s = ec_read_file(path, &text, &len, err);
    if (s)
        return s;
    size_t failures = ec_alloc_failures();
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    size_t at = end ? (size_t)(end - text) : 0;
    const char *why = root ? NULL : ec_json_why(text, at);
    /* one document: only blanks may follow it */
    while (root && at < len && (text[at] == ' ' || text[at] == '\t' || text[at] == '\r' ||
                                text[at] == '\n'))
        at++;
    int trailing = root && at < len;
    ec_free(text);
    if (trailing) {
        cJSON_Delete(root);
        return ec_error_set(err, EC_ERR_PARSE,
                            "%s: trailing data after the JSON document (near byte %zu)", path, at);
    }
    if (!root)
        return ec_alloc_failures() != failures
                   ? ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", path)
                   : ec_error_set(err, EC_ERR_PARSE, "%s: %s (near byte %zu)", path, why, at);
    *out = root;
    return EC_OK;
}

ec_status ec_json_get_number(const cJSON *obj, const char *field, double lo, double hi,
                             bool integer, double *out, const char *path, const char *prefix,
                             ec_error *err)
{
    const char *p = path ? path : "", *sep = path ? ": " : "";
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!v)
        return ec_error_set(err, EC_ERR_PARSE, "%s%sfield '%s%s': missing", p, sep, prefix,
                            field);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return ec_error_set(err, EC_ERR_PARSE, "%s%sfield '%s%s': expected a number", p, sep,
                            prefix, field);
    double x = v->valuedouble;
    if (x < lo || x > hi)
        return ec_error_set(err, EC_ERR_PARSE, "%s%sfield '%s%s': %g is out of range [%g, %g]",
                            p, sep, prefix, field, x, lo, hi);
    if (integer && x != floor(x))
        return ec_error_set(err, EC_ERR_PARSE, "%s%sfield '%s%s': %g is not an integer", p, sep,
                            prefix, field, x);
    *out = x;
    return EC_OK;
}
