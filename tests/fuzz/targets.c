/* Property checks shared by the libFuzzer drivers and the regression test. */
#include "targets.h"

#include "expertcast/predict.h"
#include "predict/predictor.h"
#include "trace/jsonl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const fuzz_target fuzz_targets[] = {
    {"fuzz_trace_line", fuzz_trace_line},
    {"fuzz_pyrepr", fuzz_pyrepr},
    {"fuzz_predictor_json", fuzz_predictor_json},
    {"fuzz_policy", fuzz_policy},
    {"fuzz_rules_json", fuzz_rules_json},
    {"fuzz_profile", fuzz_profile},
    {NULL, NULL},
};

/* A library error report: the status it returned, one line, naming the input. */
static const char *check_error(ec_status s, const ec_error *err, const char *name)
{
    if (err->status != s)
        return "error report's status differs from the returned status";
    if (!err->message[0])
        return "failure without a message";
    if (strchr(err->message, '\n'))
        return "error message spans several lines";
    if (strncmp(err->message, name, strlen(name)) != 0)
        return "error message does not start with the input's name";
    return NULL;
}

/* ---- traces ---------------------------------------------------------------- */

#define TRACE_NAME "fuzz.jsonl"

/* Every documented invariant of a loaded trace. */
static const char *check_trace(const ec_trace *t)
{
    if (t->k < 1 || t->k > EC_MAX_K || t->n_layers < 1 || t->n_layers > EC_MAX_LAYERS ||
        t->n_experts < 1 || t->n_experts > EC_MAX_EXPERTS)
        return "shape out of bounds";
    if (t->n_rows < 1 || t->n_seqs < 1 || t->n_seqs > t->n_rows)
        return "empty trace loaded";
    if ((t->gates != NULL) != (t->has_gates != 0))
        return "has_gates disagrees with gates";
    size_t row = 0;
    for (size_t s = 0; s < t->n_seqs; s++) {
        const ec_seq *q = &t->seqs[s];
        if (!q->dataset || q->row0 != row || q->n_rows < 1)
            return "sequences do not partition the rows";
        for (size_t r = q->row0 + 1; r < q->row0 + q->n_rows; r++)
            if (t->token_idx[r] <= t->token_idx[r - 1])
                return "token_idx not strictly ascending within a sequence";
        if (ec_trace_seq_of_row(t, q->row0) != s || ec_trace_seq_of_row(t, row + q->n_rows - 1) != s)
            return "ec_trace_seq_of_row disagrees with the sequence table";
        row += q->n_rows;
    }
    if (row != t->n_rows)
        return "sequence rows do not add up to n_rows";
    int32_t max_layer = -1, max_expert = -1;
    size_t incomplete = 0, present_total = 0;
    for (size_t r = 0; r < t->n_rows; r++) {
        int32_t present = 0;
        for (int32_t l = 0; l < t->n_layers; l++) {
            const int16_t *e = ec_trace_experts(t, r, l);
            const float *g = ec_trace_gates(t, r, l);
            if (e[0] < 0) {
                for (int32_t i = 0; i < t->k; i++)
                    if (e[i] != -1)
                        return "missing layer only partly filled with -1";
                continue;
            }
            present++;
            max_layer = l > max_layer ? l : max_layer;
            for (int32_t i = 0; i < t->k; i++) {
                if (e[i] < 0 || e[i] >= t->n_experts)
                    return "expert id out of [0, n_experts)";
                for (int32_t j = 0; j < i; j++)
                    if (e[j] == e[i])
                        return "expert repeated within a top-k";
                max_expert = e[i] > max_expert ? e[i] : max_expert;
                if (g && !(g[i] >= 0 && isfinite(g[i])))
                    return "gate not finite and non-negative";
            }
        }
        if (present == 0)
            return "row with no layer at all";
        if (t->complete[r] != (present == t->n_layers))
            return "complete flag disagrees with the layers present";
        incomplete += present != t->n_layers;
        present_total += (size_t)present;
    }
    if (incomplete != t->n_incomplete)
        return "n_incomplete miscounted";
    for (size_t i = 0; i < t->n_guesses; i++) {
        const ec_guess *g = &t->guesses[i];
        if (g->ahead < 1 || g->ahead > t->n_layers || g->n < 1 || g->n > t->n_experts)
            return "guess's ahead or size outside the trace's shape";
        for (int32_t j = 0; j < g->n; j++)
            if (g->experts[j] < 0 || g->experts[j] >= t->n_experts)
                return "guessed expert id out of [0, n_experts)";
    }
    if (present_total != t->n_records)
        return "n_records differs from the records stored";
    /* Shapes were inferred (no bounds given): the largest layer kept sets
     * n_layers; n_experts also counts ids seen only in dropped duplicates. */
    if (max_layer != t->n_layers - 1 || max_expert > t->n_experts - 1)
        return "inferred shape is not max id + 1";
    return NULL;
}

static const char *same_trace(const ec_trace *a, const ec_trace *b)
{
    if (a->n_layers != b->n_layers || a->n_experts != b->n_experts || a->k != b->k ||
        a->has_gates != b->has_gates || a->n_rows != b->n_rows || a->n_seqs != b->n_seqs ||
        a->n_records != b->n_records || b->n_duplicates != 0)
        return "round trip changed the shape";
    for (size_t s = 0; s < a->n_seqs; s++)
        if (a->seqs[s].problem_id != b->seqs[s].problem_id ||
            strcmp(a->seqs[s].dataset, b->seqs[s].dataset) != 0 ||
            a->seqs[s].n_rows != b->seqs[s].n_rows)
            return "round trip changed a sequence";
    size_t cells = a->n_rows * (size_t)a->n_layers * (size_t)a->k;
    if (memcmp(a->token_idx, b->token_idx, a->n_rows * sizeof *a->token_idx) != 0 ||
        memcmp(a->complete, b->complete, a->n_rows) != 0 ||
        memcmp(a->experts, b->experts, cells * sizeof *a->experts) != 0)
        return "round trip changed the routing";
    if (a->gates && memcmp(a->gates, b->gates, cells * sizeof *a->gates) != 0)
        return "round trip changed a gate";
    return NULL;
}

/* Whether some guess in u looks further ahead than the layers u's records
 * reach: what an unbounded load (layers inferred from the records) refuses
 * and declared layers may allow. */
static int guess_past_records(const ec_trace *u)
{
    int32_t reach = 0;
    for (size_t r = 0; r < u->n_rows; r++)
        for (int32_t l = 0; l < u->n_layers; l++)
            if (ec_trace_experts(u, r, l)[0] >= 0 && l + 1 > reach)
                reach = l + 1;
    for (size_t i = 0; i < u->n_guesses; i++)
        if (u->guesses[i].ahead > reach)
            return 1;
    return 0;
}

/* Declared bounds only add checks: with n_layers = n_experts = 8 the load
 * succeeds exactly when the unbounded one did within 8 x 8, and then holds
 * the same routing with the extra layers missing. One exception: a guess
 * may look ahead past the last layer the records reach, which only declared
 * layers allow. */
static const char *check_bounded(const uint8_t *data, size_t size, const ec_trace *t)
{
    enum { B = 8 };
    ec_trace_opts opts = {.n_layers = B, .n_experts = B, .max_line = 65536};
    ec_trace *u = NULL;
    ec_error err = {0};
    ec_status s = ec_trace_load_buffer(TRACE_NAME, data, size, &opts, &u, &err);
    int fits = t && t->n_layers <= B && t->n_experts <= B;
    const char *bad = NULL;
    if (!t && s == EC_OK && guess_past_records(u)) {
        ec_trace_destroy(u);
        return NULL;
    }
    if (!fits)
        bad = s == EC_ERR_PARSE ? check_error(s, &err, TRACE_NAME)
                                : "bounds did not refuse what exceeds them";
    else if (s != EC_OK)
        bad = "bounds refused a trace within them";
    else if (u->n_layers != B || u->n_experts != B || u->n_rows != t->n_rows ||
             u->k != t->k || u->n_records != t->n_records)
        bad = "bounded load changed the shape";
    for (size_t r = 0; !bad && u && r < u->n_rows; r++)
        for (int32_t l = 0; !bad && l < B; l++) {
            const int16_t *e = ec_trace_experts(u, r, l);
            if (l >= t->n_layers ? e[0] != -1
                                 : memcmp(e, ec_trace_experts(t, r, l),
                                          (size_t)t->k * sizeof *e) != 0)
                bad = "bounded load changed the routing";
        }
    ec_trace_destroy(u);
    return bad;
}

const char *fuzz_trace_line(const uint8_t *data, size_t size)
{
    /* A 64 KiB line limit keeps each run cheap; the limit itself is tested
     * in the bad-input matrix. */
    ec_trace_opts opts = {.max_line = 65536};
    /* the fast line scanner reads every line as the cJSON path does */
    for (size_t at = 0; at < size;) {
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        size_t end = nl ? (size_t)(nl - data) : size, n = end - at;
        if (n && data[at + n - 1] == '\r')
            n--;
        const char *why = ec_jsonl_paths_disagree((const char *)data + at, n, &opts);
        if (why)
            return why;
        at = end + 1;
    }
    ec_trace *t = NULL;
    ec_error err = {0};
    ec_status s = ec_trace_load_buffer(TRACE_NAME, data, size, &opts, &t, &err);
    if (s != EC_OK) {
        if (t)
            return "failed load left a trace behind";
        if (s != EC_ERR_PARSE)
            return "malformed input gave a status other than EC_ERR_PARSE";
        const char *bad = check_error(s, &err, TRACE_NAME);
        return bad ? bad : check_bounded(data, size, NULL);
    }
    const char *bad = check_trace(t);
    if (!bad)
        bad = check_bounded(data, size, t);
    if (!bad) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f)
            abort(); /* the harness, not the library, ran out of memory */
        s = ec_trace_write_jsonl(t, f, &err);
        fclose(f);
        /* The JSONL carries no shape: declare the one that was inferred
         * (n_experts may count ids seen only in dropped duplicates). */
        ec_trace_opts shape = {.n_layers = t->n_layers, .n_experts = t->n_experts};
        ec_trace *u = NULL;
        if (s != EC_OK)
            bad = "writing a loaded trace failed";
        else if (ec_trace_load_buffer(TRACE_NAME, text, len, &shape, &u, &err) != EC_OK)
            bad = "a written trace does not load back";
        else
            bad = same_trace(t, u);
        ec_trace_destroy(u);
        free(text);
    }
    ec_trace_destroy(t);
    return bad;
}

/* ---- Python-style JSON ------------------------------------------------------ */

/* A strict JSON grammar checker over Python's output alphabet: the only
 * blank is ' ', NaN / Infinity / -Infinity are numbers. */
typedef struct jcheck {
    const char *s, *end;
} jcheck;

static int jc_value(jcheck *c, int depth);

static void jc_ws(jcheck *c)
{
    while (c->s < c->end && *c->s == ' ')
        c->s++;
}

static int jc_word(jcheck *c, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(c->end - c->s) < n || memcmp(c->s, w, n) != 0)
        return -1;
    c->s += n;
    return 0;
}

static int jc_digits(jcheck *c)
{
    const char *p = c->s;
    while (c->s < c->end && *c->s >= '0' && *c->s <= '9')
        c->s++;
    return c->s > p ? 0 : -1;
}

static int jc_number(jcheck *c)
{
    if (c->s < c->end && *c->s == '-')
        c->s++;
    if (jc_word(c, "Infinity") == 0)
        return 0;
    if (c->s < c->end && *c->s == '0')
        c->s++;
    else if (jc_digits(c))
        return -1;
    if (c->s < c->end && *c->s == '.') {
        c->s++;
        if (jc_digits(c))
            return -1;
    }
    if (c->s < c->end && (*c->s == 'e' || *c->s == 'E')) {
        c->s++;
        if (c->s < c->end && (*c->s == '+' || *c->s == '-'))
            c->s++;
        if (jc_digits(c))
            return -1;
    }
    return 0;
}

static int jc_string(jcheck *c)
{
    c->s++;
    while (c->s < c->end) {
        char ch = *c->s++;
        if (ch == '"')
            return 0;
        if (ch == '\\') {
            if (c->s >= c->end)
                return -1;
            char e = *c->s++;
            if (e == 'u') {
                for (int i = 0; i < 4; i++, c->s++)
                    if (c->s >= c->end || !strchr("0123456789abcdefABCDEF", *c->s) || !*c->s)
                        return -1;
            } else if (!strchr("\"\\/bfnrt", e) || !e) {
                return -1;
            }
        }
    }
    return -1;
}

static int jc_value(jcheck *c, int depth)
{
    if (depth > 600 || c->s >= c->end)
        return -1;
    char ch = *c->s;
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        c->s++;
        jc_ws(c);
        if (c->s < c->end && *c->s == close) {
            c->s++;
            return 0;
        }
        for (;;) {
            jc_ws(c);
            if (ch == '{') {
                if (c->s >= c->end || *c->s != '"' || jc_string(c))
                    return -1;
                jc_ws(c);
                if (jc_word(c, ":"))
                    return -1;
                jc_ws(c);
            }
            if (jc_value(c, depth + 1))
                return -1;
            jc_ws(c);
            if (c->s < c->end && *c->s == ',') {
                c->s++;
                continue;
            }
            if (c->s < c->end && *c->s == close) {
                c->s++;
                return 0;
            }
            return -1;
        }
    }
    if (ch == '"')
        return jc_string(c);
    if (ch == 't')
        return jc_word(c, "true");
    if (ch == 'f')
        return jc_word(c, "false");
    if (ch == 'n')
        return jc_word(c, "null");
    if (ch == 'N')
        return jc_word(c, "NaN");
    return jc_number(c);
}

const char *fuzz_pyrepr(const uint8_t *data, size_t size)
{
    char *out = (char *)data; /* must become NULL on failure */
    size_t len = 0;
    ec_status s = ec_json_pyrepr((const char *)data, size, &out, &len);
    if (s != EC_OK)
        return s != EC_ERR_PARSE ? "status other than EC_ERR_PARSE"
               : out != NULL     ? "output left set on failure"
                                 : NULL;
    const char *bad = NULL;
    if (!out || out[len] != '\0' || strlen(out) != len)
        bad = "output not a NUL-terminated string of out_len bytes";
    for (size_t i = 0; !bad && i < len; i++)
        if (out[i] < 0x20 || out[i] > 0x7e)
            bad = "output not printable ASCII (ensure_ascii)";
    if (!bad) {
        jcheck c = {out, out + len};
        if (jc_value(&c, 0) || c.s != c.end)
            bad = "output is not JSON";
    }
    if (!bad) {
        char *again = NULL;
        size_t len2 = 0;
        if (ec_json_pyrepr(out, len, &again, &len2) != EC_OK)
            bad = "output does not parse again";
        else if (len2 != len || memcmp(again, out, len) != 0)
            bad = "output does not re-serialise to itself";
        ec_free(again);
    }
    ec_free(out);
    return bad;
}

/* ---- predictor files ------------------------------------------------------ */

#define PREDICTOR_NAME "fuzz.json"

static int close_to_one(double sum) { return fabs(sum - 1.0) < 1e-3; }

/* A per-process scratch directory on tmpfs when there is one (saves fsync). */
static const char *scratch_path(void)
{
    static char path[128];
    if (!path[0]) {
        char dir[64];
        snprintf(dir, sizeof dir, "%s/ec_fuzz_XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(dir))
            abort();
        snprintf(path, sizeof path, "%s/p.json", dir);
    }
    return path;
}

const char *fuzz_check_predictor(const ec_predictor *p)
{
    int32_t L = p->n_layers, E = p->n_experts;
    if (L < 1 || L > EC_MAX_LAYERS || E < 1 || E > EC_MAX_EXPERTS || p->k < 1 || p->k > E ||
        p->k > EC_MAX_K || !p->prior)
        return "loaded predictor has an impossible shape";
    if (ec_predictor_n_layers(p) != L || ec_predictor_n_experts(p) != E)
        return "shape accessors disagree";
    for (int32_t l = 0; l < L; l++) {
        double sum = 0;
        for (int32_t e = 0; e < E; e++) {
            float v = p->prior[(size_t)l * (size_t)E + (size_t)e];
            if (!(v >= 0 && isfinite(v)))
                return "prior entry not a probability";
            sum += v;
        }
        if (!close_to_one(sum))
            return "prior row does not sum to 1";
    }
    /* Predictions from a short history, at every horizon up to 4. */
    ec_history *h = NULL;
    if (ec_history_create(L, E, p->k, 1, &h) != EC_OK)
        return "history of the predictor's shape cannot be created";
    int16_t ex[EC_MAX_K];
    for (int32_t i = 0; i < p->k; i++)
        ex[i] = (int16_t)i;
    ec_history_observe(h, 0, ex);
    float *probs = malloc((size_t)E * sizeof *probs);
    const char *bad = probs ? NULL : "harness out of memory";
    for (int32_t hz = 1; !bad && hz <= (L < 4 ? L : 4); hz++) {
        int r = ec_predictor_predict(p, h, hz, probs);
        if (r != 0 && r != 1)
            bad = "prediction refused for a valid horizon";
        double sum = 0;
        for (int32_t e = 0; !bad && e < E; e++) {
            if (!(probs[e] >= 0 && isfinite(probs[e])))
                bad = "prediction not a probability";
            sum += probs[e];
        }
        if (!bad && !close_to_one(sum))
            bad = "prediction does not sum to 1";
    }
    if (!bad && ec_predictor_predict(p, h, L + 1, probs) != -1)
        bad = "horizon past n_layers accepted";
    free(probs);
    ec_history_destroy(h);
    return bad;
}

static int same_opts(const ec_predictor_opts *a, const ec_predictor_opts *b)
{
    return a->context == b->context && a->tokens_back == b->tokens_back &&
           a->smoothing == b->smoothing && a->epochs == b->epochs &&
           a->learning_rate == b->learning_rate && a->l2 == b->l2 &&
           a->per_layer == b->per_layer && a->seed == b->seed && a->max_horizon == b->max_horizon;
}

const char *fuzz_predictor_json(const uint8_t *data, size_t size)
{
    ec_predictor *p = NULL;
    ec_error err = {0};
    ec_status s = ec_predictor_load_text(PREDICTOR_NAME, (const char *)data, size, &p, &err);
    if (s != EC_OK) {
        if (p)
            return "failed load left a predictor behind";
        if (s != EC_ERR_PARSE)
            return "malformed file gave a status other than EC_ERR_PARSE";
        return check_error(s, &err, PREDICTOR_NAME);
    }
    const char *bad = fuzz_check_predictor(p);
    if (!bad) {
        const char *path = scratch_path();
        ec_predictor *q = NULL;
        if (ec_predictor_save(p, path, &err) != EC_OK)
            bad = "saving a loaded predictor failed";
        else if (ec_predictor_load(path, &q, &err) != EC_OK)
            bad = "a saved predictor does not load back";
        else if (strcmp(ec_predictor_name(p), ec_predictor_name(q)) != 0 ||
                 p->n_layers != q->n_layers || p->n_experts != q->n_experts || p->k != q->k ||
                 !same_opts(&p->opts, &q->opts))
            bad = "save and load changed the predictor";
        for (size_t i = 0; !bad && i < (size_t)p->n_layers * (size_t)p->n_experts; i++)
            if (fabsf(p->prior[i] - q->prior[i]) > 1e-6f * (1.0f + p->prior[i]))
                bad = "save and load changed the prior";
        ec_predictor_destroy(q);
        unlink(path);
    }
    ec_predictor_destroy(p);
    return bad;
}
