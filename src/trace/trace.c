/* Building an ec_trace from raw JSONL records, and writing it back. */
#include "jsonl.h"
#include "../core/jsonstr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A record as collected before rows are known. */
typedef struct pending {
    size_t seq;
    int64_t token;
    int32_t layer;
    size_t ordinal; /* arrival order, keeps "first wins" stable under sort */
    size_t g0;      /* its guesses: bg[g0 .. g0 + gn) */
    int32_t gn;
} pending;

/* A guess as read, before the trace's shape is known. */
typedef struct bguess {
    int32_t ahead, n;
    size_t pool;      /* its experts and probs: bgx/bgp[pool .. pool + n) */
    size_t line;
    const char *path;
} bguess;

typedef struct builder {
    ec_trace_opts opts;
    int32_t k;
    int has_gates;
    pending *recs;
    size_t n_recs, cap_recs;
    int16_t *ex;            /* [n_recs][k] */
    size_t cap_ex;
    float *gt;              /* [n_recs][k] when has_gates */
    size_t cap_gt;
    ec_seq *seqs;
    size_t n_seqs, cap_seqs;
    size_t last_seq;
    size_t *table;          /* hash of (dataset, problem_id): index + 1, 0 empty */
    size_t cap_table;       /* a power of two, at least twice n_seqs */
    int32_t max_layer, max_expert;
    const char *path;       /* file being read, for messages */
    bguess *bg;             /* every record's guesses */
    size_t n_bg, cap_bg;
    int16_t *bgx;           /* their experts */
    float *bgp;             /* their probabilities */
    size_t n_pool, cap_bgx, cap_bgp;
} builder;

/* The hash of a sequence's key (dataset, problem_id): FNV-1a over the
 * name, mixed with the id. */
static uint64_t seq_hash(const char *dataset, int64_t pid)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)dataset; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    h ^= (uint64_t)pid * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
}

/* Doubles the open-addressing table of sequence indices (slot = index + 1,
 * 0 empty) and re-inserts every sequence. */
static ec_status seq_table_grow(builder *b)
{
    size_t cap = b->cap_table ? b->cap_table * 2 : 64;
    size_t *t = ec_calloc(cap, sizeof *t);
    if (!t)
        return EC_ERR_NOMEM;
    for (size_t i = 0; i < b->n_seqs; i++) {
        size_t at = (size_t)seq_hash(b->seqs[i].dataset, b->seqs[i].problem_id) & (cap - 1);
        while (t[at])
            at = (at + 1) & (cap - 1);
        t[at] = i + 1;
    }
    ec_free(b->table);
    b->table = t;
    b->cap_table = cap;
    return EC_OK;
}

/* The index of the sequence (dataset, pid), added when new: one hash
 * look-up, so loading stays linear in the number of sequences. */
static ec_status find_seq(builder *b, const char *dataset, int64_t pid, size_t *out)
{
    if (b->n_seqs && b->seqs[b->last_seq].problem_id == pid &&
        strcmp(b->seqs[b->last_seq].dataset, dataset) == 0) {
        *out = b->last_seq;
        return EC_OK;
    }
    if ((b->n_seqs + 1) * 2 > b->cap_table && seq_table_grow(b))
        return EC_ERR_NOMEM;
    size_t mask = b->cap_table - 1;
    size_t at = (size_t)seq_hash(dataset, pid) & mask;
    for (; b->table[at]; at = (at + 1) & mask) {
        const ec_seq *q = &b->seqs[b->table[at] - 1];
        if (q->problem_id == pid && strcmp(q->dataset, dataset) == 0) {
            *out = b->last_seq = b->table[at] - 1;
            return EC_OK;
        }
    }
    if (ec_grow((void **)&b->seqs, &b->cap_seqs, b->n_seqs + 1, sizeof *b->seqs))
        return EC_ERR_NOMEM;
    char *name = ec_strdup(dataset);
    if (!name)
        return EC_ERR_NOMEM;
    b->seqs[b->n_seqs] = (ec_seq){name, pid, 0, 0};
    b->table[at] = b->n_seqs + 1;
    *out = b->last_seq = b->n_seqs++;
    return EC_OK;
}

static ec_status on_record(void *ctx, const ec_record *r, ec_error *err)
{
    builder *b = ctx;
    if (!b->k) {
        b->k = r->k;
        b->has_gates = r->has_gates;
    } else if (r->k != b->k || r->has_gates != b->has_gates) {
        /* Only reachable across files: within one file the reader checks. */
        return ec_error_set(err, EC_ERR_PARSE, "%s:%zu: field '%s': differs from the first file",
                            b->path, r->line, r->k != b->k ? "experts" : "gating_probs");
    }
    size_t seq;
    if (find_seq(b, r->dataset, r->problem_id, &seq) ||
        ec_grow((void **)&b->recs, &b->cap_recs, b->n_recs + 1, sizeof *b->recs) ||
        ec_grow((void **)&b->ex, &b->cap_ex, (b->n_recs + 1) * (size_t)b->k, sizeof *b->ex) ||
        (b->has_gates &&
         ec_grow((void **)&b->gt, &b->cap_gt, (b->n_recs + 1) * (size_t)b->k, sizeof *b->gt)))
        return ec_error_set(err, EC_ERR_NOMEM, "%s:%zu: out of memory", b->path, r->line);
    b->recs[b->n_recs] = (pending){seq, r->token, r->layer, b->n_recs, b->n_bg, r->n_guesses};
    for (int32_t g = 0; g < r->n_guesses; g++) {
        int32_t n = r->guesses[g].n;
        if (ec_grow((void **)&b->bg, &b->cap_bg, b->n_bg + 1, sizeof *b->bg) ||
            ec_grow((void **)&b->bgx, &b->cap_bgx, b->n_pool + (size_t)n, sizeof *b->bgx) ||
            ec_grow((void **)&b->bgp, &b->cap_bgp, b->n_pool + (size_t)n, sizeof *b->bgp))
            return ec_error_set(err, EC_ERR_NOMEM, "%s:%zu: out of memory", b->path, r->line);
        b->bg[b->n_bg++] = (bguess){r->guesses[g].ahead, n, b->n_pool, r->line, b->path};
        for (int32_t i = 0; i < n; i++) {
            /* a guessed id counts toward the inferred shape as a routed one */
            if (r->guesses[g].experts[i] > b->max_expert)
                b->max_expert = r->guesses[g].experts[i];
            b->bgx[b->n_pool + (size_t)i] = (int16_t)r->guesses[g].experts[i];
            b->bgp[b->n_pool + (size_t)i] = (float)r->guesses[g].probs[i];
        }
        b->n_pool += (size_t)n;
    }
    for (int i = 0; i < b->k; i++) {
        b->ex[b->n_recs * (size_t)b->k + (size_t)i] = (int16_t)r->experts[i];
        if (r->experts[i] > b->max_expert)
            b->max_expert = r->experts[i];
        if (b->has_gates)
            b->gt[b->n_recs * (size_t)b->k + (size_t)i] = (float)r->gates[i];
    }
    if (r->layer > b->max_layer)
        b->max_layer = r->layer;
    b->n_recs++;
    return EC_OK;
}

static int cmp_pending(const void *a, const void *b)
{
    const pending *x = a, *y = b;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    if (x->token != y->token) return x->token < y->token ? -1 : 1;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return x->ordinal < y->ordinal ? -1 : x->ordinal > y->ordinal;
}

static void builder_free(builder *b)
{
    ec_free(b->recs);
    ec_free(b->ex);
    ec_free(b->gt);
    ec_free(b->bg);
    ec_free(b->bgx);
    ec_free(b->bgp);
    for (size_t i = 0; i < b->n_seqs; i++)
        ec_free((char *)b->seqs[i].dataset);
    ec_free(b->seqs);
    ec_free(b->table);
}

void ec_trace_destroy(ec_trace *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_seqs; i++)
        ec_free((char *)t->seqs[i].dataset);
    ec_free(t->seqs);
    ec_free(t->token_idx);
    ec_free(t->complete);
    ec_free(t->experts);
    ec_free(t->gates);
    ec_free(t->guess_off);
    ec_free(t->guesses);
    ec_free(t->guess_experts);
    ec_free(t->guess_probs);
    ec_free(t);
}

/* The guesses of the records kept (cell_rec: the record of each (row,
 * layer), SIZE_MAX none) into t; every ahead must lie within the trace's
 * layers, now known. */
static ec_status build_guesses(const builder *b, ec_trace *t, const size_t *cell_rec,
                               ec_error *err)
{
    size_t n_cells = t->n_rows * (size_t)t->n_layers, n = 0, pool = 0;
    for (size_t i = 0; i < n_cells; i++)
        if (cell_rec[i] != SIZE_MAX) {
            const pending *p = &b->recs[cell_rec[i]];
            for (int32_t g = 0; g < p->gn; g++) {
                const bguess *q = &b->bg[p->g0 + (size_t)g];
                if (q->ahead > t->n_layers)
                    return ec_error_set(err, EC_ERR_PARSE,
                                        "%s:%zu: field 'guesses': ahead %d exceeds the trace's "
                                        "%d layers",
                                        q->path, q->line, q->ahead, t->n_layers);
                n++;
                pool += (size_t)q->n;
            }
        }
    if (n == 0)
        return EC_OK;
    t->guess_off = ec_malloc((n_cells + 1) * sizeof *t->guess_off);
    t->guesses = ec_malloc(n * sizeof *t->guesses);
    t->guess_experts = ec_malloc(pool * sizeof *t->guess_experts);
    t->guess_probs = ec_malloc(pool * sizeof *t->guess_probs);
    if (!t->guess_off || !t->guesses || !t->guess_experts || !t->guess_probs)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory building the trace's guesses");
    t->n_guesses = n;
    n = pool = 0;
    for (size_t i = 0; i < n_cells; i++) {
        t->guess_off[i] = n;
        if (cell_rec[i] == SIZE_MAX)
            continue;
        const pending *p = &b->recs[cell_rec[i]];
        for (int32_t g = 0; g < p->gn; g++) {
            const bguess *q = &b->bg[p->g0 + (size_t)g];
            memcpy(t->guess_experts + pool, b->bgx + q->pool, (size_t)q->n * sizeof *b->bgx);
            memcpy(t->guess_probs + pool, b->bgp + q->pool, (size_t)q->n * sizeof *b->bgp);
            t->guesses[n++] = (ec_guess){q->ahead, q->n, t->guess_experts + pool,
                                         t->guess_probs + pool};
            pool += (size_t)q->n;
        }
    }
    t->guess_off[n_cells] = n;
    return EC_OK;
}

/* Turns sorted, de-duplicated records into rows. Takes ownership of b->seqs. */
static ec_status build(builder *b, ec_trace **out, ec_error *err)
{
    qsort(b->recs, b->n_recs, sizeof *b->recs, cmp_pending);
    int32_t L = b->opts.n_layers > 0 ? b->opts.n_layers : b->max_layer + 1;
    int32_t E = b->opts.n_experts > 0 ? b->opts.n_experts : b->max_expert + 1;
    size_t k = (size_t)b->k;

    ec_trace *t = ec_calloc(1, sizeof *t);
    if (!t)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory building the trace");
    t->n_layers = L;
    t->n_experts = E;
    t->k = b->k;
    t->has_gates = b->has_gates;

    /* Count rows and duplicates. */
    size_t rows = 0;
    for (size_t i = 0; i < b->n_recs; i++) {
        const pending *p = &b->recs[i];
        if (i && p->seq == p[-1].seq && p->token == p[-1].token) {
            if (p->layer == p[-1].layer)
                t->n_duplicates++;
            continue;
        }
        rows++;
    }
    /* the routing matrix is rows x layers x k: refuse before allocating
     * when a few records at a high layer would make it huge */
    char what[200];
    snprintf(what, sizeof what,
             "%s: the trace's routing matrix (%zu tokens x %d layers x top-%d, layers from the "
             "largest layer id)",
             b->path ? b->path : "trace", rows, (int)L, (int)k);
    size_t cell = sizeof *t->experts + (b->has_gates ? sizeof *t->gates : 0);
    ec_status m = ec_memory_check(ec_mul_size(ec_mul_size(rows, (size_t)L * k), cell), what, err);
    if (m) {
        ec_free(t);
        return m;
    }
    t->n_rows = rows;
    t->n_records = b->n_recs - t->n_duplicates;
    t->token_idx = ec_calloc(rows ? rows : 1, sizeof *t->token_idx);
    t->complete = ec_calloc(rows ? rows : 1, 1);
    t->experts = ec_malloc(EC_MAX(rows * (size_t)L * k, 1) * sizeof *t->experts);
    if (b->has_gates)
        t->gates = ec_calloc(EC_MAX(rows * (size_t)L * k, 1), sizeof *t->gates);
    if (!t->token_idx || !t->complete || !t->experts || (b->has_gates && !t->gates)) {
        ec_trace_destroy(t);
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory building the trace");
    }
    memset(t->experts, 0xff, rows * (size_t)L * k * sizeof *t->experts); /* -1 */

    t->seqs = b->seqs;
    t->n_seqs = b->n_seqs;
    b->seqs = NULL;
    b->n_seqs = 0;
    for (size_t s = 0; s < t->n_seqs; s++)
        t->seqs[s].n_rows = 0;

    /* the record kept at each (row, layer), for its guesses */
    size_t n_cells = rows * (size_t)L, *cell_rec = NULL;
    if (b->n_bg) {
        cell_rec = ec_malloc(EC_MAX(n_cells, 1) * sizeof *cell_rec);
        if (!cell_rec) {
            ec_trace_destroy(t);
            return ec_error_set(err, EC_ERR_NOMEM, "out of memory building the trace");
        }
        for (size_t i = 0; i < n_cells; i++)
            cell_rec[i] = SIZE_MAX;
    }
    size_t row = (size_t)-1;
    int32_t present = 0;
    for (size_t i = 0; i < b->n_recs; i++) {
        const pending *p = &b->recs[i];
        int new_row = i == 0 || p->seq != p[-1].seq || p->token != p[-1].token;
        if (new_row) {
            if (row != (size_t)-1)
                t->complete[row] = present == L;
            row++;
            present = 0;
            t->token_idx[row] = p->token;
            if (t->seqs[p->seq].n_rows == 0)
                t->seqs[p->seq].row0 = row;
            t->seqs[p->seq].n_rows++;
        } else if (p->layer == p[-1].layer) {
            continue; /* duplicate: the first (lowest ordinal) was kept */
        }
        present++;
        if (cell_rec)
            cell_rec[row * (size_t)L + (size_t)p->layer] = i;
        size_t dst = (row * (size_t)L + (size_t)p->layer) * k;
        memcpy(t->experts + dst, b->ex + p->ordinal * k, k * sizeof *t->experts);
        if (b->has_gates)
            memcpy(t->gates + dst, b->gt + p->ordinal * k, k * sizeof *t->gates);
    }
    if (row != (size_t)-1)
        t->complete[row] = present == L;
    for (size_t r = 0; r < rows; r++)
        t->n_incomplete += !t->complete[r];
    ec_status s = cell_rec ? build_guesses(b, t, cell_rec, err) : EC_OK;
    ec_free(cell_rec);
    if (s) {
        ec_trace_destroy(t);
        return s;
    }
    *out = t;
    return EC_OK;
}

static void builder_init(builder *b, const ec_trace_opts *opts)
{
    memset(b, 0, sizeof *b);
    if (opts)
        b->opts = *opts;
    b->max_layer = -1;
    b->max_expert = -1;
}

ec_status ec_trace_load(const char *const *paths, size_t n_paths, const ec_trace_opts *opts,
                        ec_trace **out, ec_error *err)
{
    if (!out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_trace_load: out is NULL");
    *out = NULL;
    if (!paths || n_paths == 0)
        return ec_error_set(err, EC_ERR_INVALID, "ec_trace_load: no input file");
    builder b;
    builder_init(&b, opts);
    ec_status s = EC_OK;
    for (size_t i = 0; i < n_paths && s == EC_OK; i++) {
        b.path = paths[i];
        s = ec_jsonl_read(paths[i], opts, on_record, &b, err);
    }
    if (s == EC_OK)
        s = build(&b, out, err);
    builder_free(&b);
    return s;
}

ec_status ec_trace_load_buffer(const char *name, const void *data, size_t len,
                               const ec_trace_opts *opts, ec_trace **out, ec_error *err)
{
    if (!out || !name || (!data && len))
        return ec_error_set(err, EC_ERR_INVALID, "ec_trace_load_buffer: NULL argument");
    *out = NULL;
    builder b;
    builder_init(&b, opts);
    b.path = name;
    ec_status s = ec_jsonl_read_buffer(name, data, len, opts, on_record, &b, err);
    if (s == EC_OK)
        s = build(&b, out, err);
    builder_free(&b);
    return s;
}

size_t ec_trace_seq_of_row(const ec_trace *t, size_t row)
{
    size_t lo = 0, hi = t->n_seqs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->seqs[mid].row0 <= row)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* The double with the fewest decimal digits that rounds to the float v,
 * so that 0.3f prints as 0.3 rather than 0.30000001192092896. */
static double ec_shortest_float(float v)
{
    char buf[40];
    for (int prec = 1; prec < 10; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, (double)v);
        if (strtof(buf, NULL) == v)
            return strtod(buf, NULL);
    }
    return (double)v;
}

ec_status ec_trace_write_jsonl(const ec_trace *t, FILE *f, ec_error *err)
{
    char num[40];
    for (size_t s = 0; s < t->n_seqs; s++) {
        const ec_seq *sq = &t->seqs[s];
        for (size_t r = sq->row0; r < sq->row0 + sq->n_rows; r++) {
            for (int32_t l = 0; l < t->n_layers; l++) {
                const int16_t *e = ec_trace_experts(t, r, l);
                if (e[0] < 0)
                    continue;
                fputs("{\"dataset\": ", f);
                ec_json_write_string(f, sq->dataset);
                fprintf(f, ", \"problem_id\": %lld, \"layer\": %d, \"experts\": [",
                        (long long)sq->problem_id, l);
                for (int i = 0; i < t->k; i++)
                    fprintf(f, "%s%d", i ? ", " : "", e[i]);
                fputc(']', f);
                const float *g = ec_trace_gates(t, r, l);
                if (g) {
                    fputs(", \"gating_probs\": [", f);
                    for (int i = 0; i < t->k; i++) {
                        ec_fmt_pyfloat(ec_shortest_float(g[i]), num);
                        fprintf(f, "%s%s", i ? ", " : "", num);
                    }
                    fputc(']', f);
                }
                size_t ng;
                const ec_guess *gs = ec_trace_guesses(t, r, l, &ng);
                if (ng) {
                    fputs(", \"guesses\": [", f);
                    for (size_t j = 0; j < ng; j++) {
                        fprintf(f, "%s{\"ahead\": %d, \"experts\": [", j ? ", " : "",
                                gs[j].ahead);
                        for (int32_t i = 0; i < gs[j].n; i++)
                            fprintf(f, "%s%d", i ? ", " : "", gs[j].experts[i]);
                        fputs("], \"probs\": [", f);
                        for (int32_t i = 0; i < gs[j].n; i++) {
                            ec_fmt_pyfloat(ec_shortest_float(gs[j].probs[i]), num);
                            fprintf(f, "%s%s", i ? ", " : "", num);
                        }
                        fputs("]}", f);
                    }
                    fputc(']', f);
                }
                fprintf(f, ", \"token_idx\": %lld}\n", (long long)t->token_idx[r]);
            }
        }
    }
    if (ferror(f))
        return ec_error_set(err, EC_ERR_IO, "write error: %s", strerror(errno));
    return EC_OK;
}
