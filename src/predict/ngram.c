/*
 * ngram: counts of the target layer's experts given the top-k SETS of this
 * token's last `context` layers, with additive smoothing and backoff.
 *
 * For a history at layer N and horizon h (target layer T, this token or the
 * next), the order-j context is the sets at layers N, N-1, ..., N-j+1 of
 * the current token. Counting how often each expert was in the target's
 * set after that context gives, with c_j(e) such counts over n_j events and
 * k experts per set,
 *
 *   P_0(e) = prior(T)(e)
 *   P_j(e) = (c_j(e) / k + a * P_{j-1}(e)) / (n_j + a)        (a = smoothing)
 *
 * and the prediction is P_j for the longest context seen in training
 * (backoff: an unseen order-j context stops the recursion at j - 1). Each
 * horizon 1..max_horizon has its own counts (the key holds h and T).
 *
 * Contexts are keyed by a 64-bit hash: an order-independent hash of each
 * set chained over the orders. The hash is fixed (it is part of the model
 * file format). Tables are sized at fit time; prediction reads only.
 */
#include "codec.h"
#include "replay.h"

#include <stdlib.h>
#include <string.h>

#define NGRAM_MAX_CONTEXT 16

typedef struct ngram {
    int32_t H;          /* horizons fitted: 1..H */
    size_t n_entries;   /* distinct (h, T, order, context) keys */
    uint64_t *keys;     /* [n_entries] */
    float *events;      /* [n_entries] n_j: training events with this context */
    uint32_t *off;      /* [n_entries + 1] start of each entry's pairs */
    int16_t *ex;        /* [n_pairs] experts seen in the target set ... */
    float *cnt;         /* [n_pairs] ... and in how many of the events */
    size_t n_pairs;
    uint32_t *slots;    /* [cap] open addressing: entry + 1, 0 = empty */
    size_t cap;         /* power of two */
} ngram;

/* ---- keys ----------------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t key_start(int32_t horizon, int32_t target)
{
    return mix64(((uint64_t)(uint32_t)horizon << 40) ^ ((uint64_t)(uint32_t)target << 8) ^
                 0x6e6772616d5f6b31ull);
}

/* Extends the order-(j-1) key by the set at order j (order-independent in
 * the set's ids). Never 0. */
static inline uint64_t key_extend(uint64_t key, const int16_t *set, int32_t k, int32_t j)
{
    uint64_t s = 0;
    for (int32_t i = 0; i < k; i++)
        s += mix64(((uint64_t)(uint32_t)j << 32) ^ (uint64_t)(uint16_t)set[i] ^
                   0x9e3779b97f4a7c15ull);
    return mix64(key ^ s) | 1u;
}

static int64_t lookup(const ngram *g, uint64_t key)
{
    if (!g->cap)
        return -1;
    for (size_t i = (size_t)key & (g->cap - 1);; i = (i + 1) & (g->cap - 1)) {
        uint32_t v = g->slots[i];
        if (v == 0)
            return -1;
        if (g->keys[v - 1] == key)
            return (int64_t)v - 1;
    }
}

/* Builds the slot table for the entries (0 when a key repeats: corrupt). */
static ec_status build_slots(ngram *g)
{
    size_t cap = 16;
    while (cap < 2 * g->n_entries)
        cap *= 2;
    g->slots = ec_calloc(cap, sizeof *g->slots);
    if (!g->slots)
        return EC_ERR_NOMEM;
    g->cap = cap;
    for (size_t e = 0; e < g->n_entries; e++) {
        size_t i = (size_t)g->keys[e] & (cap - 1);
        while (g->slots[i]) {
            if (g->keys[g->slots[i] - 1] == g->keys[e])
                return EC_ERR_PARSE;
            i = (i + 1) & (cap - 1);
        }
        g->slots[i] = (uint32_t)e + 1;
    }
    return EC_OK;
}

/* ---- predictor ---------------------------------------------------------------- */

static void ngram_clear(ngram *g)
{
    ec_free(g->keys);
    ec_free(g->events);
    ec_free(g->off);
    ec_free(g->ex);
    ec_free(g->cnt);
    ec_free(g->slots);
    memset(g, 0, sizeof *g);
}

static ec_status ngram_init(ec_predictor *p)
{
    if (p->opts.context <= 0)
        p->opts.context = 3;
    if (p->opts.context > NGRAM_MAX_CONTEXT)
        return ec_predictor_fail(p, EC_ERR_INVALID, "context %d is above %d", p->opts.context,
                                 NGRAM_MAX_CONTEXT);
    p->state = ec_calloc(1, sizeof(ngram));
    return p->state ? EC_OK : EC_ERR_NOMEM;
}

static void ngram_free(ec_predictor *p)
{
    if (p->state)
        ngram_clear(p->state);
    ec_free(p->state);
}

static int ngram_predict(const ec_predictor *p, const ec_history *h, int32_t target,
                         int next_token, int32_t horizon, float *probs)
{
    (void)next_token;
    const ngram *g = p->state;
    const int32_t E = p->n_experts, K = p->k, N = ec_history_layer(h);
    const float a = (float)p->opts.smoothing;
    ec_predictor_prior(p, target, probs);
    if (horizon > g->H)
        return 0;
    uint64_t key = key_start(horizon, target);
    int informed = 0;
    for (int32_t j = 1; j <= p->opts.context && N - j + 1 >= 0; j++) {
        const int16_t *set = ec_history_get(h, 0, N - j + 1);
        if (!set)
            break;
        key = key_extend(key, set, K, j);
        int64_t ent = lookup(g, key);
        if (ent < 0)
            break;
        float n = g->events[ent], keep = a / (n + a), add = 1.0f / ((float)K * (n + a));
        for (int32_t e = 0; e < E; e++)
            probs[e] *= keep;
        for (uint32_t i = g->off[ent]; i < g->off[ent + 1]; i++)
            probs[g->ex[i]] += g->cnt[i] * add;
        informed = 1;
    }
    return informed;
}

/* ---- fitting -------------------------------------------------------------------- */

typedef struct event {
    uint64_t key;
    size_t row;      /* the target's row and layer in the trace */
    int32_t layer;
} event;

typedef struct collect {
    const ec_predictor *p;
    int32_t H;
    event *ev;
    size_t n, cap;
} collect;

static ec_status collect_events(void *ctx, const ec_replay_pos *pos)
{
    collect *c = ctx;
    const ec_predictor *p = c->p;
    for (int32_t hz = 1; hz <= c->H; hz++) {
        int32_t T;
        int next;
        if (!ec_replay_target(pos, hz, &T, &next))
            continue;
        uint64_t key = key_start(hz, T);
        for (int32_t j = 1; j <= p->opts.context && pos->layer - j + 1 >= 0; j++) {
            const int16_t *set = ec_history_get(pos->h, 0, pos->layer - j + 1);
            if (!set)
                break;
            key = key_extend(key, set, p->k, j);
            if (ec_grow((void **)&c->ev, &c->cap, c->n + 1, sizeof *c->ev))
                return EC_ERR_NOMEM;
            c->ev[c->n++] = (event){key, pos->row + (size_t)next, T};
        }
    }
    return EC_OK;
}

static int cmp_event(const void *a, const void *b)
{
    const event *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    if (x->row != y->row)
        return x->row < y->row ? -1 : 1;
    return (x->layer > y->layer) - (x->layer < y->layer);
}

static int cmp_i16(const void *a, const void *b)
{
    return *(const int16_t *)a - *(const int16_t *)b;
}

/* Turns sorted events into entries: distinct keys with their expert counts. */
static ec_status aggregate(ngram *g, const ec_predictor *p, const ec_trace *t, const event *ev,
                           size_t n)
{
    const int32_t E = p->n_experts, K = p->k;
    size_t n_entries = 0;
    for (size_t i = 0; i < n; i++)
        n_entries += i == 0 || ev[i].key != ev[i - 1].key;
    float *dense = ec_calloc((size_t)E, sizeof *dense);
    int16_t *touched = ec_malloc((size_t)E * sizeof *touched);
    g->keys = ec_malloc(EC_MAX(n_entries, 1) * sizeof *g->keys);
    g->events = ec_malloc(EC_MAX(n_entries, 1) * sizeof *g->events);
    g->off = ec_malloc((n_entries + 1) * sizeof *g->off);
    size_t cap_ex = 0, cap_cnt = 0;
    ec_status s = dense && touched && g->keys && g->events && g->off ? EC_OK : EC_ERR_NOMEM;
    if (!s)
        g->off[0] = 0;
    for (size_t i = 0; i < n && !s;) {
        size_t j = i, nt = 0;
        for (; j < n && ev[j].key == ev[i].key; j++) {
            const int16_t *set = ec_trace_experts(t, ev[j].row, ev[j].layer);
            for (int32_t q = 0; q < K; q++) {
                if (dense[set[q]] == 0.0f)
                    touched[nt++] = set[q];
                dense[set[q]] += 1.0f;
            }
        }
        qsort(touched, nt, sizeof *touched, cmp_i16);
        if (g->n_pairs + nt > UINT32_MAX ||
            ec_grow((void **)&g->ex, &cap_ex, g->n_pairs + nt, sizeof *g->ex) ||
            ec_grow((void **)&g->cnt, &cap_cnt, g->n_pairs + nt, sizeof *g->cnt)) {
            s = EC_ERR_NOMEM;
            break;
        }
        for (size_t q = 0; q < nt; q++) {
            g->ex[g->n_pairs] = touched[q];
            g->cnt[g->n_pairs++] = dense[touched[q]];
            dense[touched[q]] = 0.0f;
        }
        g->keys[g->n_entries] = ev[i].key;
        g->events[g->n_entries] = (float)(j - i);
        g->off[++g->n_entries] = (uint32_t)g->n_pairs;
        i = j;
    }
    ec_free(dense);
    ec_free(touched);
    return s ? s : build_slots(g);
}

static ec_status ngram_fit(ec_predictor *p, const ec_trace *t, const uint8_t *seq_mask)
{
    ngram *g = p->state;
    ngram_clear(g);
    collect c = {.p = p, .H = EC_MIN(p->opts.max_horizon, p->n_layers)};
    ec_status s = ec_replay_train(t, seq_mask, 0, collect_events, &c);
    if (!s) {
        qsort(c.ev, c.n, sizeof *c.ev, cmp_event);
        s = aggregate(g, p, t, c.ev, c.n);
    }
    ec_free(c.ev);
    if (s) {
        ngram_clear(g);
        return s;
    }
    g->H = c.H;
    return EC_OK;
}

/* ---- model file ------------------------------------------------------------------ */

static ec_status ngram_save(const ec_predictor *p, cJSON *model)
{
    const ngram *g = p->state;
    size_t ne = g->n_entries;
    float *nnz = ec_malloc(EC_MAX(ne, 1) * sizeof *nnz);
    float *ex = ec_malloc(EC_MAX(g->n_pairs, 1) * sizeof *ex);
    ec_status s = nnz && ex ? EC_OK : EC_ERR_NOMEM;
    for (size_t i = 0; !s && i < ne; i++)
        nnz[i] = (float)(g->off[i + 1] - g->off[i]);
    for (size_t i = 0; !s && i < g->n_pairs; i++)
        ex[i] = g->ex[i];
    if (!s && !(cJSON_AddNumberToObject(model, "horizons", g->H) &&
                cJSON_AddNumberToObject(model, "entries", (double)ne) &&
                cJSON_AddNumberToObject(model, "pairs", (double)g->n_pairs) &&
                cJSON_AddItemToObjectCS(model, "keys", ec_json_b64_u64(g->keys, ne)) &&
                cJSON_AddItemToObjectCS(model, "events", ec_json_b64_f32(g->events, ne)) &&
                cJSON_AddItemToObjectCS(model, "nnz", ec_json_b64_f32(nnz, ne)) &&
                cJSON_AddItemToObjectCS(model, "experts", ec_json_b64_f32(ex, g->n_pairs)) &&
                cJSON_AddItemToObjectCS(model, "counts", ec_json_b64_f32(g->cnt, g->n_pairs))))
        s = EC_ERR_NOMEM;
    ec_free(nnz);
    ec_free(ex);
    return s;
}

static ec_status load_arrays(ec_predictor *p, ngram *g, const cJSON *model, ec_error *err)
{
    size_t ne = g->n_entries, np = g->n_pairs;
    /* the declared counts against the arrays present, before allocating */
    static const char *const arrays[] = {"keys", "events", "nnz", "experts", "counts"};
    const size_t bytes[] = {ne * 8, ne * 4, ne * 4, np * 4, np * 4};
    for (size_t i = 0; i < EC_COUNTOF(arrays); i++) {
        ec_status c = ec_json_b64_check(cJSON_GetObjectItemCaseSensitive(model, arrays[i]),
                                        bytes[i], arrays[i], err);
        if (c)
            return c;
    }
    float *nnz = ec_malloc(EC_MAX(ne, 1) * sizeof *nnz);
    float *ex = ec_malloc(EC_MAX(np, 1) * sizeof *ex);
    g->keys = ec_malloc(EC_MAX(ne, 1) * sizeof *g->keys);
    g->events = ec_malloc(EC_MAX(ne, 1) * sizeof *g->events);
    g->off = ec_malloc((ne + 1) * sizeof *g->off);
    g->ex = ec_malloc(EC_MAX(np, 1) * sizeof *g->ex);
    g->cnt = ec_malloc(EC_MAX(np, 1) * sizeof *g->cnt);
    ec_status s;
    if (!nnz || !ex || !g->keys || !g->events || !g->off || !g->ex || !g->cnt)
        s = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    else if (!(s = ec_json_read_b64_u64(cJSON_GetObjectItemCaseSensitive(model, "keys"), g->keys,
                                        ne, "keys", err)) &&
             !(s = ec_json_read_b64_f32(cJSON_GetObjectItemCaseSensitive(model, "events"),
                                        g->events, ne, "events", err)) &&
             !(s = ec_json_read_b64_f32(cJSON_GetObjectItemCaseSensitive(model, "nnz"), nnz, ne,
                                        "nnz", err)) &&
             !(s = ec_json_read_b64_f32(cJSON_GetObjectItemCaseSensitive(model, "experts"), ex,
                                        np, "experts", err)) &&
             !(s = ec_json_read_b64_f32(cJSON_GetObjectItemCaseSensitive(model, "counts"),
                                        g->cnt, np, "counts", err))) {
        size_t o = 0;
        g->off[0] = 0;
        for (size_t i = 0; i < ne && !s; i++) {
            if (!(nnz[i] >= 0 && nnz[i] <= (float)p->n_experts && nnz[i] == (float)(int)nnz[i]) ||
                !(g->events[i] >= 0) || g->keys[i] == 0) {
                /* stop before converting it: a float past the integer range is UB */
                s = ec_error_set(err, EC_ERR_PARSE, "field 'model.nnz': entry %zu is invalid", i);
                break;
            }
            o += (size_t)nnz[i];
            g->off[i + 1] = (uint32_t)EC_MIN(o, np);
        }
        if (!s && o != np)
            s = ec_error_set(err, EC_ERR_PARSE,
                             "field 'model.nnz': sums to %zu, but there are %zu pairs", o, np);
        for (size_t i = 0; i < np && !s; i++) {
            if (!(ex[i] >= 0 && ex[i] < (float)p->n_experts && ex[i] == (float)(int)ex[i]) ||
                !(g->cnt[i] >= 0)) {
                s = ec_error_set(err, EC_ERR_PARSE, "field 'model.experts': pair %zu is invalid",
                                 i);
                break; /* before the conversion to int16_t */
            }
            g->ex[i] = (int16_t)ex[i];
        }
        if (!s && (s = build_slots(g)))
            s = ec_error_set(err, s, s == EC_ERR_PARSE ? "field 'model.keys': a key repeats"
                                                       : "out of memory");
    }
    ec_free(nnz);
    ec_free(ex);
    return s;
}

static ec_status ngram_load(ec_predictor *p, const cJSON *model, ec_error *err)
{
    ngram *g = p->state;
    long long H, ne, np;
    ec_status s;
    ngram_clear(g);
    if ((s = ec_json_read_int(model, "horizons", 0, p->n_layers, &H, err)) ||
        (s = ec_json_read_int(model, "entries", 0, UINT32_MAX - 1, &ne, err)) ||
        (s = ec_json_read_int(model, "pairs", 0, UINT32_MAX, &np, err)))
        return s;
    g->H = (int32_t)H;
    g->n_entries = (size_t)ne;
    g->n_pairs = (size_t)np;
    if ((s = load_arrays(p, g, model, err)))
        ngram_clear(g);
    return s;
}

const ec_predictor_vt ec_ngram_vt = {
    .name = "ngram",
    .init = ngram_init,
    .free_state = ngram_free,
    .fit = ngram_fit,
    .predict = ngram_predict,
    .save = ngram_save,
    .load = ngram_load,
};
