/*
 * The cpu backend: the semantics of CUDA streams and events on the host.
 *
 * Every stream is an executor thread working through a FIFO ring of tasks
 * (copy, checksum, spin, host function, FFN, event record, event wait).
 * Events are generation counters: recording bumps `recorded` on the host
 * and queues a task that sets `completed` when the executor reaches it; a
 * wait task blocks its executor (never the caller) until `completed`
 * reaches the generation current when the wait was submitted. One mutex
 * guards every queue and event of the backend; `done` is broadcast when an
 * event completes or a stream drains.
 */
#include "backend_impl.h"
#include "../hostffn/internal.h"

#include "expertcast/pregate.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

typedef enum task_kind { T_COPY, T_RECORD, T_WAIT, T_CHECKSUM, T_SPIN, T_HOSTFN, T_FFN, T_PREGATE } task_kind;

typedef struct cpu_event {
    uint64_t recorded;  /* generation of the latest record (host side) */
    uint64_t completed; /* highest generation the executors reached */
    double t_ms;        /* monotonic time at which `completed` was reached */
    uint32_t waits;     /* queued waits that will still read it */
} cpu_event;

typedef struct task {
    task_kind kind;
    void *dst;
    const void *src;
    size_t n;
    cpu_event *ev;
    uint64_t gen;
    double us;
    void (*fn)(void *);
    void *arg;
    const void *x;
    float *scratch;
    int32_t d_model, d_ff;
    ec_dtype dtype;     /* T_FFN */
    int gate_dtype;     /* T_PREGATE (ec_gate_dtype): d_model = d, d_ff = experts */
} task;

typedef struct cpu_ctx {
    pthread_mutex_t mu;
    pthread_cond_t done; /* an event completed or a stream drained */
    int waiters;         /* threads blocked on `done` */
} cpu_ctx;

typedef struct cpu_exec {
    cpu_ctx *ctx;
    pthread_t thread;
    pthread_cond_t work; /* a task was queued, or stop */
    task *ring;
    size_t cap, head, len; /* the running task stays at head until done */
    int sleeping, stop;
} cpu_exec;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void wake_waiters(cpu_ctx *c)
{
    if (c->waiters)
        pthread_cond_broadcast(&c->done);
}

static void wait_done(cpu_ctx *c)
{
    c->waiters++;
    pthread_cond_wait(&c->done, &c->mu);
    c->waiters--;
}

static void spin_for(double us)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long ns = (long long)(us * 1e3);
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec += (long)(ns % 1000000000);
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* Runs a task that needs no lock. */
static void run_task(const task *t)
{
    switch (t->kind) {
    case T_COPY: memcpy(t->dst, t->src, t->n); break;
    case T_CHECKSUM: {
        uint64_t h = ec_checksum64(t->src, t->n);
        memcpy(t->dst, &h, sizeof h);
        break;
    }
    case T_SPIN: spin_for(t->us); break;
    case T_HOSTFN: t->fn(t->arg); break;
    case T_FFN:
        if (t->dtype == EC_DTYPE_F16)
            ec_ffn_reference(t->src, t->x, t->dst, t->d_model, t->d_ff, t->scratch);
        else
            ec_expert_reference_token(t->dtype, t->src, NULL, t->x, t->dst, t->d_model, t->d_ff,
                                      t->scratch);
        break;
    case T_PREGATE: /* arguments were checked when it was queued */
        (void)ec_pregate_host(t->src, t->x, (ec_gate_dtype)t->gate_dtype, t->d_ff, t->d_model,
                              t->dst);
        break;
    case T_RECORD:
    case T_WAIT: break;
    }
}

static void *exec_main(void *arg)
{
    cpu_exec *x = arg;
    cpu_ctx *c = x->ctx;
#if defined(__linux__) && defined(PR_SET_TIMERSLACK)
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); /* spins sleep to the microsecond */
#endif
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (x->len == 0 && !x->stop) {
            x->sleeping = 1;
            pthread_cond_wait(&x->work, &c->mu);
            x->sleeping = 0;
        }
        if (x->len == 0)
            break; /* stopped and drained */
        task t = x->ring[x->head];
        if (t.kind == T_WAIT) {
            while (t.ev->completed < t.gen)
                wait_done(c);
            t.ev->waits--; /* its last read: the event may go now */
            wake_waiters(c);
        } else if (t.kind == T_RECORD) {
            if (t.ev->completed < t.gen) {
                t.ev->completed = t.gen;
                t.ev->t_ms = now_ms();
            }
            wake_waiters(c);
        } else {
            pthread_mutex_unlock(&c->mu);
            run_task(&t);
            pthread_mutex_lock(&c->mu);
        }
        /* The producer may have grown the ring meanwhile: head still names
         * this task (growth keeps the order starting at head). */
        x->head = (x->head + 1) % x->cap;
        x->len--;
        if (x->len == 0)
            wake_waiters(c);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Queues t on x; called with the mutex held. */
static ec_status push_locked(ec_backend *b, cpu_exec *x, const task *t)
{
    if (x->len == x->cap) {
        size_t ncap = x->cap ? x->cap * 2 : 64;
        task *r = ec_malloc(ncap * sizeof *r);
        if (!r)
            return ec_backend_fail(b, EC_ERR_NOMEM, "cpu stream: out of memory for its queue");
        for (size_t i = 0; i < x->len; i++)
            r[i] = x->ring[(x->head + i) % x->cap];
        ec_free(x->ring);
        x->ring = r;
        x->cap = ncap;
        x->head = 0;
    }
    x->ring[(x->head + x->len) % x->cap] = *t;
    x->len++;
    if (x->sleeping)
        pthread_cond_signal(&x->work);
    return EC_OK;
}

static ec_status push(ec_backend *b, ec_stream *s, const task *t)
{
    cpu_ctx *c = b->context;
    pthread_mutex_lock(&c->mu);
    ec_status st = push_locked(b, s->native, t);
    pthread_mutex_unlock(&c->mu);
    return st;
}

/* ---- memory: aligned blocks from the library allocator ------------------------ */

static void *aligned_block(size_t bytes, size_t align)
{
    if (bytes > SIZE_MAX - align - sizeof(void *))
        return NULL;
    unsigned char *raw = ec_malloc(bytes + align + sizeof(void *));
    if (!raw)
        return NULL;
    uintptr_t p = ((uintptr_t)(raw + sizeof(void *)) + align - 1) & ~(uintptr_t)(align - 1);
    memcpy((void *)(p - sizeof(void *)), &raw, sizeof raw);
    return (void *)p;
}

static void aligned_free(void *p)
{
    if (!p)
        return;
    void *raw;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof raw);
    ec_free(raw);
}

static ec_status cpu_host_alloc(ec_backend *b, size_t bytes, void **out)
{
    if (!(*out = aligned_block(bytes, 64)))
        return ec_backend_fail(b, EC_ERR_NOMEM, "host buffer of %zu bytes: out of memory", bytes);
    return EC_OK;
}

static ec_status cpu_dev_alloc(ec_backend *b, size_t bytes, void **out)
{
    if (!(*out = aligned_block(bytes, 256)))
        return ec_backend_fail(b, EC_ERR_NOMEM, "device buffer of %zu bytes: out of memory",
                               bytes);
    return EC_OK;
}

static void cpu_free_block(ec_backend *b, void *p)
{
    (void)b;
    aligned_free(p);
}

/* ---- streams ---------------------------------------------------------------------- */

static ec_status cpu_stream_init(ec_backend *b, ec_stream *s)
{
    cpu_exec *x = ec_calloc(1, sizeof *x);
    if (!x)
        return ec_backend_fail(b, EC_ERR_NOMEM, "cpu stream: out of memory");
    x->ctx = b->context;
    if (pthread_cond_init(&x->work, NULL) != 0) {
        ec_free(x);
        return ec_backend_fail(b, EC_ERR_NOMEM, "cpu stream: cannot create a condition");
    }
    int e = pthread_create(&x->thread, NULL, exec_main, x);
    if (e != 0) {
        pthread_cond_destroy(&x->work);
        ec_free(x);
        return ec_backend_fail(b, EC_ERR_NOMEM, "cpu stream: cannot start its thread: %s",
                               strerror(e));
    }
    s->native = x;
    return EC_OK;
}

static void cpu_stream_fini(ec_backend *b, ec_stream *s)
{
    cpu_ctx *c = b->context;
    cpu_exec *x = s->native;
    pthread_mutex_lock(&c->mu);
    x->stop = 1;
    pthread_cond_signal(&x->work);
    pthread_mutex_unlock(&c->mu);
    pthread_join(x->thread, NULL);
    pthread_cond_destroy(&x->work);
    ec_free(x->ring);
    ec_free(x);
}

static ec_status cpu_stream_sync(ec_backend *b, ec_stream *s)
{
    cpu_ctx *c = b->context;
    cpu_exec *x = s->native;
    pthread_mutex_lock(&c->mu);
    while (x->len > 0)
        wait_done(c);
    pthread_mutex_unlock(&c->mu);
    return EC_OK;
}

static ec_status cpu_stream_wait(ec_backend *b, ec_stream *s, ec_event *e)
{
    cpu_ctx *c = b->context;
    cpu_event *ev = e->native;
    ec_status st = EC_OK;
    pthread_mutex_lock(&c->mu);
    if (ev->completed < ev->recorded) { /* a completed marker needs no task */
        st = push_locked(b, s->native, &(task){.kind = T_WAIT, .ev = ev, .gen = ev->recorded});
        ev->waits += st == EC_OK;
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

static ec_status cpu_copy(ec_backend *b, ec_stream *s, void *dst, const void *src, size_t n)
{
    return push(b, s, &(task){.kind = T_COPY, .dst = dst, .src = src, .n = n});
}

static ec_status cpu_checksum(ec_backend *b, ec_stream *s, const void *src, size_t n,
                              uint64_t *out)
{
    return push(b, s, &(task){.kind = T_CHECKSUM, .dst = out, .src = src, .n = n});
}

static ec_status cpu_spin(ec_backend *b, ec_stream *s, double us)
{
    return push(b, s, &(task){.kind = T_SPIN, .us = us});
}

static ec_status cpu_host_fn(ec_backend *b, ec_stream *s, void (*fn)(void *), void *arg)
{
    return push(b, s, &(task){.kind = T_HOSTFN, .fn = fn, .arg = arg});
}

static ec_status cpu_ffn(ec_backend *b, ec_stream *s, ec_dtype dt, const void *w, const void *x,
                         float *out, int32_t d_model, int32_t d_ff, float *scratch)
{
    return push(b, s, &(task){.kind = T_FFN, .src = w, .x = x, .dst = out, .scratch = scratch,
                              .d_model = d_model, .d_ff = d_ff, .dtype = dt});
}

static ec_status cpu_pregate(ec_backend *b, ec_stream *s, const void *w, const void *x,
                             int dtype, int32_t n_experts, int32_t d, float *probs_host)
{
    return push(b, s, &(task){.kind = T_PREGATE, .src = w, .x = x, .dst = probs_host,
                              .gate_dtype = dtype, .d_model = d, .d_ff = n_experts});
}

/* ---- events ------------------------------------------------------------------------ */

static ec_status cpu_event_init(ec_backend *b, ec_event *e)
{
    if (!(e->native = ec_calloc(1, sizeof(cpu_event))))
        return ec_backend_fail(b, EC_ERR_NOMEM, "cpu event: out of memory");
    return EC_OK;
}

static void cpu_event_fini(ec_backend *b, ec_event *e)
{
    cpu_ctx *c = b->context;
    cpu_event *ev = e->native;
    /* A queued record or wait still points at it: let it pass first (a
     * wait reads the event after its record completed, so both count). */
    pthread_mutex_lock(&c->mu);
    while (ev->completed < ev->recorded || ev->waits > 0)
        wait_done(c);
    pthread_mutex_unlock(&c->mu);
    ec_free(ev);
}

static ec_status cpu_event_record(ec_backend *b, ec_event *e, ec_stream *s)
{
    cpu_ctx *c = b->context;
    cpu_event *ev = e->native;
    pthread_mutex_lock(&c->mu);
    task t = {.kind = T_RECORD, .ev = ev, .gen = ev->recorded + 1};
    ec_status st = push_locked(b, s->native, &t);
    if (st == EC_OK)
        ev->recorded = t.gen;
    pthread_mutex_unlock(&c->mu);
    return st;
}

static ec_status cpu_event_query(ec_backend *b, ec_event *e, int *done)
{
    cpu_ctx *c = b->context;
    cpu_event *ev = e->native;
    pthread_mutex_lock(&c->mu);
    *done = ev->completed >= ev->recorded;
    pthread_mutex_unlock(&c->mu);
    return EC_OK;
}

static ec_status cpu_event_sync(ec_backend *b, ec_event *e)
{
    cpu_ctx *c = b->context;
    cpu_event *ev = e->native;
    pthread_mutex_lock(&c->mu);
    uint64_t target = ev->recorded;
    while (ev->completed < target)
        wait_done(c);
    pthread_mutex_unlock(&c->mu);
    return EC_OK;
}

static ec_status cpu_event_elapsed(ec_backend *b, ec_event *start, ec_event *end, float *ms)
{
    cpu_ctx *c = b->context;
    cpu_event *a = start->native, *z = end->native;
    pthread_mutex_lock(&c->mu);
    int ok = a->recorded && z->recorded && a->completed >= a->recorded &&
             z->completed >= z->recorded;
    double d = z->t_ms - a->t_ms;
    pthread_mutex_unlock(&c->mu);
    if (!ok)
        return ec_backend_fail(b, EC_ERR_STATE,
                               "ec_event_elapsed: an event was never recorded or has not "
                               "completed");
    *ms = (float)d;
    return EC_OK;
}

/* ---- the backend ------------------------------------------------------------------- */

static void cpu_free(ec_backend *b)
{
    cpu_ctx *c = b->context;
    pthread_cond_destroy(&c->done);
    pthread_mutex_destroy(&c->mu);
    ec_free(c);
}

static const ec_backend_iface cpu_iface = {
    .name = "cpu",
    .free = cpu_free,
    .host_alloc = cpu_host_alloc,
    .host_free = cpu_free_block,
    .dev_alloc = cpu_dev_alloc,
    .dev_free = cpu_free_block,
    .stream_init = cpu_stream_init,
    .stream_fini = cpu_stream_fini,
    .stream_sync = cpu_stream_sync,
    .stream_wait = cpu_stream_wait,
    .copy_h2d = cpu_copy,
    .copy_d2h = cpu_copy,
    .checksum = cpu_checksum,
    .spin = cpu_spin,
    .host_fn = cpu_host_fn,
    .ffn = cpu_ffn,
    .event_init = cpu_event_init,
    .event_fini = cpu_event_fini,
    .event_record = cpu_event_record,
    .event_query = cpu_event_query,
    .event_sync = cpu_event_sync,
    .event_elapsed = cpu_event_elapsed,
    .pregate = cpu_pregate,
};

ec_status ec_backend_cpu_init(ec_backend *b, const ec_backend_opts *o)
{
    (void)o;
    cpu_ctx *c = ec_calloc(1, sizeof *c);
    if (!c)
        return ec_backend_fail(b, EC_ERR_NOMEM, "out of memory");
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        ec_free(c);
        return ec_backend_fail(b, EC_ERR_NOMEM, "cannot create a mutex");
    }
    if (pthread_cond_init(&c->done, NULL) != 0) {
        pthread_mutex_destroy(&c->mu);
        ec_free(c);
        return ec_backend_fail(b, EC_ERR_NOMEM, "cannot create a condition");
    }
    b->iface = &cpu_iface;
    b->context = c;
    snprintf(b->device_name, sizeof b->device_name, "host CPU (memcpy executor threads)");
    return EC_OK;
}
