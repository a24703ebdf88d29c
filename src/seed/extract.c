/* extract: one problem's complete token journeys, one file per token, each
 * line the record as Python's json.dumps prints it. */
#include "../trace/jsonl.h"
#include "expertcast/seed.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A record of the wanted problem and range, kept until the file is read. */
typedef struct kept {
    int64_t token;
    int32_t layer;
    uint32_t dataset; /* index into datasets */
    size_t ordinal;   /* arrival order: the first of a repeated key wins */
    size_t text, len; /* json.dumps text in the pool */
} kept;

typedef struct extract_ctx {
    const ec_extract_opts *o;
    const char *path;
    int32_t max_layer;
    kept *recs;
    size_t n_recs, cap_recs;
    char *pool;
    size_t pool_len, cap_pool;
    char **datasets; /* distinct datasets holding the problem, first seen first */
    size_t n_datasets, cap_datasets;
    int64_t other_problems[8]; /* a few other problem ids, for the error message */
    size_t n_other;
} extract_ctx;

/* Offset of the first byte of s that does not begin a valid UTF-8
 * sequence (overlong forms, surrogates and code points past U+10FFFF
 * included), or len when all of s is valid. */
static size_t utf8_invalid_at(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned c = u[i];
        size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (n == 0 || i + n > len)
            return i;
        uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
        for (size_t j = 1; j < n; j++) {
            if ((u[i + j] & 0xc0) != 0x80)
                return i;
            cp = cp << 6 | (u[i + j] & 0x3f);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += n;
    }
    return len;
}

static ec_status on_record(void *vctx, const ec_record *rec, ec_error *err)
{
    extract_ctx *c = vctx;
    const ec_extract_opts *o = c->o;
    if (rec->layer > c->max_layer)
        c->max_layer = rec->layer;
    if (rec->problem_id != o->problem_id) {
        int seen = 0;
        for (size_t i = 0; i < c->n_other; i++)
            seen |= c->other_problems[i] == rec->problem_id;
        if (!seen && c->n_other < EC_COUNTOF(c->other_problems))
            c->other_problems[c->n_other++] = rec->problem_id;
        return EC_OK;
    }
    size_t ds;
    for (ds = 0; ds < c->n_datasets; ds++)
        if (strcmp(c->datasets[ds], rec->dataset) == 0)
            break;
    if (ds == c->n_datasets) {
        char *name = NULL;
        if (ec_grow((void **)&c->datasets, &c->cap_datasets, ds + 1, sizeof *c->datasets) ||
            !(name = ec_strdup(rec->dataset)))
            return ec_error_set(err, EC_ERR_NOMEM, "%s:%zu: out of memory", c->path, rec->line);
        c->datasets[c->n_datasets++] = name;
    }
    if (o->dataset && strcmp(o->dataset, rec->dataset) != 0)
        return EC_OK;
    if (rec->token < o->token_begin || rec->token >= o->token_end)
        return EC_OK;
    char *py = NULL;
    size_t py_len = 0;
    ec_status s = ec_json_pyrepr(rec->text, rec->text_len, &py, &py_len);
    if (s == EC_ERR_NOMEM)
        return ec_error_set(err, s, "%s:%zu: out of memory", c->path, rec->line);
    if (s) {
        size_t bad = utf8_invalid_at(rec->text, rec->text_len);
        if (bad < rec->text_len)
            return ec_error_set(err, s,
                                "%s:%zu: not valid UTF-8 (byte 0x%02x near byte %zu): the "
                                "journey files are written as Python's json.dumps would, "
                                "which needs text",
                                c->path, rec->line, (unsigned char)rec->text[bad], bad);
        return ec_error_set(err, s, "%s:%zu: cannot re-serialise the record as Python's "
                                    "json.dumps would",
                            c->path, rec->line);
    }
    if (ec_grow((void **)&c->recs, &c->cap_recs, c->n_recs + 1, sizeof *c->recs) ||
        ec_grow((void **)&c->pool, &c->cap_pool, c->pool_len + py_len + 1, 1)) {
        ec_free(py);
        return ec_error_set(err, EC_ERR_NOMEM, "%s:%zu: out of memory", c->path, rec->line);
    }
    memcpy(c->pool + c->pool_len, py, py_len);
    c->pool[c->pool_len + py_len] = '\n';
    c->recs[c->n_recs] =
        (kept){rec->token, rec->layer, (uint32_t)ds, c->n_recs, c->pool_len, py_len + 1};
    c->pool_len += py_len + 1;
    c->n_recs++;
    ec_free(py);
    return EC_OK;
}

static int cmp_kept(const void *a, const void *b)
{
    const kept *x = a, *y = b;
    if (x->token != y->token) return x->token < y->token ? -1 : 1;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return x->ordinal < y->ordinal ? -1 : x->ordinal > y->ordinal;
}

static void ctx_free(extract_ctx *c)
{
    ec_free(c->recs);
    ec_free(c->pool);
    for (size_t i = 0; i < c->n_datasets; i++)
        ec_free(c->datasets[i]);
    ec_free(c->datasets);
}

void ec_extract_report_destroy(ec_extract_report *r)
{
    if (!r)
        return;
    ec_free(r->dataset);
    ec_free(r->tokens);
    ec_free(r);
}

/* "'a', 'b'" into buf. */
static void list_datasets(const extract_ctx *c, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < c->n_datasets && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s'%s'", i ? ", " : "", c->datasets[i]);
}

/* Why the problem was not found, naming what the file holds. */
static ec_status not_found(const extract_ctx *c, const char *path, ec_error *err)
{
    char list[256];
    size_t n = 0;
    list[0] = '\0';
    for (size_t i = 0; i < c->n_other && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%lld", i ? ", " : "",
                              (long long)c->other_problems[i]);
    if (c->o->dataset && c->n_datasets) {
        char ds[256];
        list_datasets(c, ds, sizeof ds);
        return ec_error_set(err, EC_ERR_PARSE,
                            "%s: field 'dataset': problem %lld has no record in dataset '%s' "
                            "(it is in %s)",
                            path, (long long)c->o->problem_id, c->o->dataset, ds);
    }
    return ec_error_set(err, EC_ERR_PARSE,
                        "%s: field 'problem_id': no record of problem %lld (the file has %s%s)",
                        path, (long long)c->o->problem_id, c->n_other ? "problems " : "none",
                        list);
}

/* Writes one journey file atomically: lines [first, first + n) of recs. */
static ec_status write_journey(const extract_ctx *c, const char *file, const kept *recs,
                               size_t n, ec_error *err)
{
    ec_outfile *o;
    FILE *f;
    ec_status s = ec_outfile_open(file, &o, &f, err);
    if (s)
        return s;
    int32_t last = -1;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].layer == last)
            continue; /* a repeated layer: the first record was written */
        fwrite(c->pool + recs[i].text, 1, recs[i].len, f);
        last = recs[i].layer;
    }
    return ec_outfile_commit(o, err);
}

static ec_status check_dir(const char *dir, ec_error *err)
{
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return ec_error_set(err, EC_ERR_IO,
                            "%s: output directory does not exist (HINT: create it with mkdir -p)",
                            dir);
    if (!S_ISDIR(sb.st_mode))
        return ec_error_set(err, EC_ERR_IO, "%s: output path is not a directory", dir);
    return EC_OK;
}

/*
 * Refuses a run that could write over its input: a journey file name of
 * this problem and token range in dir that is the input file (device and
 * inode, so hard and symbolic links count). Looks at the directory's
 * entries, not at every name of the range, which may be huge.
 */
static ec_status check_not_input(const char *dir, const char *raw_path, const ec_extract_opts *o,
                                 ec_error *err)
{
    struct stat in, sb;
    if (stat(raw_path, &in) != 0 || !S_ISREG(in.st_mode))
        return EC_OK; /* reading it reports the problem */
    DIR *d = opendir(dir);
    if (!d)
        return EC_OK;
    char prefix[48];
    snprintf(prefix, sizeof prefix, "p%lld_token_", (long long)o->problem_id);
    size_t pn = strlen(prefix);
    ec_status s = EC_OK;
    struct dirent *e;
    while (!s && (e = readdir(d))) {
        if (strncmp(e->d_name, prefix, pn) != 0)
            continue;
        char *end;
        errno = 0;
        long long tok = strtoll(e->d_name + pn, &end, 10);
        if (errno || end == e->d_name + pn || strcmp(end, ".jsonl") != 0 ||
            tok < o->token_begin || tok >= o->token_end)
            continue;
        if (fstatat(dirfd(d), e->d_name, &sb, 0) == 0 && sb.st_dev == in.st_dev &&
            sb.st_ino == in.st_ino)
            s = ec_error_set(err, EC_ERR_INVALID,
                             "output %s/%s is the input %s (the same file): refusing to "
                             "overwrite an input",
                             dir, e->d_name, raw_path);
    }
    closedir(d);
    return s;
}

ec_status ec_seed_extract(const char *raw_path, const ec_extract_opts *o,
                          ec_extract_report **out, ec_error *err)
{
    if (!out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_seed_extract: out is NULL");
    *out = NULL;
    if (!raw_path || !o)
        return ec_error_set(err, EC_ERR_INVALID, "ec_seed_extract: NULL argument");
    if (o->token_begin < 0 || o->token_end <= o->token_begin)
        return ec_error_set(err, EC_ERR_INVALID,
                            "extract: token range [%lld, %lld) is empty or negative",
                            (long long)o->token_begin, (long long)o->token_end);
    const char *dir = o->output_dir && o->output_dir[0] ? o->output_dir : ".";
    ec_status s = check_dir(dir, err);
    if (!s)
        s = check_not_input(dir, raw_path, o, err);
    if (s)
        return s;

    extract_ctx c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.path = raw_path;
    c.max_layer = -1;
    if ((s = ec_jsonl_read(raw_path, NULL, on_record, &c, err))) {
        ctx_free(&c);
        return s;
    }
    /* Which dataset: the one asked for, else the only one holding the problem. */
    size_t ds = 0;
    if (o->dataset) {
        for (ds = 0; ds < c.n_datasets && strcmp(c.datasets[ds], o->dataset) != 0; ds++)
            ;
        if (ds == c.n_datasets) {
            s = not_found(&c, raw_path, err);
            ctx_free(&c);
            return s;
        }
    } else if (c.n_datasets == 0) {
        s = not_found(&c, raw_path, err);
        ctx_free(&c);
        return s;
    } else if (c.n_datasets > 1) {
        char list[256];
        list_datasets(&c, list, sizeof list);
        s = ec_error_set(err, EC_ERR_PARSE,
                         "%s: field 'dataset': problem %lld is in %zu datasets (%s): name one "
                         "(HINT: --dataset NAME)",
                         raw_path, (long long)o->problem_id, c.n_datasets, list);
        ctx_free(&c);
        return s;
    }

    ec_extract_report *r = ec_calloc(1, sizeof *r);
    if (r)
        r->dataset = ec_strdup(c.datasets[ds]);
    if (!r || !r->dataset) {
        ec_extract_report_destroy(r);
        ctx_free(&c);
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    }
    r->n_layers = c.max_layer + 1;
    if (c.n_recs)
        qsort(c.recs, c.n_recs, sizeof *c.recs, cmp_kept);

    /* Group by token: count distinct layers and repeated keys. */
    size_t cap_tokens = 0;
    for (size_t i = 0; i < c.n_recs && s == EC_OK;) {
        size_t j = i;
        int32_t layers = 0;
        for (; j < c.n_recs && c.recs[j].token == c.recs[i].token; j++) {
            if (j > i && c.recs[j].layer == c.recs[j - 1].layer)
                r->n_duplicates++;
            else
                layers++;
        }
        if (ec_grow((void **)&r->tokens, &cap_tokens, r->n_tokens + 1, sizeof *r->tokens))
            s = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
        else
            r->tokens[r->n_tokens++] = (ec_extract_token){c.recs[i].token, layers};
        if (layers == r->n_layers)
            r->n_written++;
        else
            r->n_incomplete++;
        i = j;
    }
    r->n_absent = (o->token_end - o->token_begin) - (int64_t)r->n_tokens;
    if (s == EC_OK && r->n_written == 0)
        s = ec_error_set(err, EC_ERR_PARSE,
                         "%s: no token of [%lld, %lld) of problem %lld has all %d layers "
                         "(%zu incomplete, %lld absent): nothing written",
                         raw_path, (long long)o->token_begin, (long long)o->token_end,
                         (long long)o->problem_id, r->n_layers, r->n_incomplete,
                         (long long)r->n_absent);

    /* Everything is validated: write each complete journey atomically. */
    size_t written = 0, start = 0;
    for (size_t t = 0; t < r->n_tokens && s == EC_OK; t++) {
        size_t n = 0;
        while (start + n < c.n_recs && c.recs[start + n].token == r->tokens[t].token)
            n++;
        if (r->tokens[t].layers == r->n_layers) {
            size_t need = strlen(dir) + 64;
            char *file = ec_malloc(need);
            if (!file) {
                s = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
                break;
            }
            size_t dl = strlen(dir);
            snprintf(file, need, "%s%sp%lld_token_%lld.jsonl", dir,
                     dl && dir[dl - 1] == '/' ? "" : "/", (long long)o->problem_id,
                     (long long)r->tokens[t].token);
            s = write_journey(&c, file, c.recs + start, n, err);
            ec_free(file);
            if (s) {
                char msg[EC_ERROR_MAX];
                snprintf(msg, sizeof msg, "%s", err ? err->message : ec_status_str(s));
                ec_error_set(err, s, "%s (%zu of %zu journey files were written, each whole)",
                             msg, written, r->n_written);
                break;
            }
            written++;
        }
        start += n;
    }
    ctx_free(&c);
    if (s) {
        ec_extract_report_destroy(r);
        return s;
    }
    *out = r;
    return EC_OK;
}
