/*
 * ec_json_pyrepr against what Python 3's json.dumps(json.loads(line)) prints
 * for a line of a UTF-8 text file (expected outputs taken from CPython
 * 3.11), on the cases the fuzz target and a differential run brought up.
 */
#include "testutil.h"
#include "trace/jsonl.h"

#include <stdlib.h>
#include <string.h>

static char *repr(const char *text, size_t len, ec_status *s)
{
    char *out = NULL;
    *s = ec_json_pyrepr(text, len, &out, NULL);
    return out;
}

Test(pyrepr, matches_python_on_escapes_numbers_and_surrogates)
{
    static const struct { const char *in, *out; } c[] = {
        {"\"a\x7f" "b\"", "\"a\\u007fb\""}, /* DEL is escaped (ensure_ascii) */
        {"[-0, -0.0, 1e16, 1e-5, 0.1]", "[0, -0.0, 1e+16, 1e-05, 0.1]"},
        {"\"\\ud800\"", "\"\\ud800\""},               /* a lone surrogate escape stays */
        {"{\"a\": 1, \"b\": 2, \"a\": 3}", "{\"a\": 3, \"b\": 2}"}, /* dict: first place, last value */
        {"{\"\\ud83d\\ude00\": 1, \"\xf0\x9f\x98\x80\": 2}", "{\"\\ud83d\\ude00\": 2}"},
        {"[{\"k\": {\"x\": 1, \"x\": [2]}, \"k\": {\"y\": 0, \"y\": 1}}]", "[{\"k\": {\"y\": 1}}]"},
        {"\"\xf0\x9f\x98\x80\"", "\"\\ud83d\\ude00\""},   /* astral: a surrogate pair */
        {"{\"a\":[1,{\"b\":null}]}", "{\"a\": [1, {\"b\": null}]}"},
        {"[NaN, Infinity, -Infinity]", "[NaN, Infinity, -Infinity]"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        ec_status s;
        char *out = repr(c[i].in, strlen(c[i].in), &s);
        cr_assert_eq(s, EC_OK, "case %zu", i);
        cr_assert_str_eq(out, c[i].out, "case %zu", i);
        ec_free(out);
    }
}

Test(pyrepr, float_literals_of_any_length)
{
    /* "[1." + 600 x "5" + "]" -> [1.5555555555555556]; 1 + 600 zeros + ".0" -> Infinity */
    char *a = malloc(700), *b = malloc(700);
    strcpy(a, "[1.");
    memset(a + 3, '5', 600);
    strcpy(a + 603, "]");
    b[0] = '1';
    memset(b + 1, '0', 600);
    strcpy(b + 601, ".0");
    ec_status s;
    char *out = repr(a, strlen(a), &s);
    cr_assert_eq(s, EC_OK);
    cr_assert_str_eq(out, "[1.5555555555555556]");
    ec_free(out);
    out = repr(b, strlen(b), &s);
    cr_assert_eq(s, EC_OK);
    cr_assert_str_eq(out, "Infinity");
    ec_free(out);
    free(a);
    free(b);
}

Test(pyrepr, refuses_what_python_cannot_decode)
{
    static const char *const bad[] = {
        "\"\xc0\x80\"",         /* overlong NUL */
        "\"\xe0\x80\xaf\"",     /* overlong '/' */
        "\"\xf4\x90\x80\x80\"", /* past U+10FFFF */
        "\"\xed\xa0\x80\"",     /* an encoded surrogate (CESU-8) */
        "\"\xf8\x88\x80\x80\x80\"",
        "01", "[1,]", "{\"a\" 1}", "\"\\x\"", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ec_status s;
        char *out = repr(bad[i], strlen(bad[i]), &s);
        cr_assert_eq(s, EC_ERR_PARSE, "case %zu accepted", i);
        cr_assert_null(out);
    }
}
