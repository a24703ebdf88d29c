/* Backend handles: creation by name, argument checks, routing to the iface. */
#include "backend_impl.h"

#include <stdarg.h>
#include <string.h>

ec_status ec_backend_fail(ec_backend *b, ec_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->errmsg, sizeof b->errmsg, fmt, ap);
    va_end(ap);
    return s;
}

static ec_status create_one(const char *name, const ec_backend_opts *o, ec_backend **out,
                            ec_error *err)
{
    ec_backend *b = ec_calloc(1, sizeof *b);
    if (!b)
        return ec_error_set(err, EC_ERR_NOMEM, "backend %s: out of memory", name);
    ec_status s;
    if (strcmp(name, "cpu") == 0) {
        s = ec_backend_cpu_init(b, o);
    } else {
#ifdef EC_HAVE_CUDA
        s = ec_backend_cuda_init(b, o);
#else
        ec_free(b);
        return ec_error_set(err, EC_ERR_UNSUPPORTED,
                            "backend cuda: this build has no CUDA support. HINT: configure "
                            "with nvcc on PATH (or -DEC_CUDA=ON), or use --backend cpu");
#endif
    }
    if (s) {
        ec_error_set(err, s, "backend %s: %s", name, b->errmsg[0] ? b->errmsg : ec_status_str(s));
        ec_free(b);
        return s;
    }
    *out = b;
    return EC_OK;
}

ec_status ec_backend_create(const char *name, const ec_backend_opts *opts, ec_backend **out,
                            ec_error *err)
{
    if (!out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_backend_create: NULL out");
    *out = NULL;
    ec_backend_opts o = {0};
    if (opts)
        o = *opts;
    if (!name)
        name = "auto";
    if (strcmp(name, "auto") == 0) {
        ec_error why = {0};
        ec_status s = create_one("cuda", &o, out, &why);
        if (s == EC_OK)
            return EC_OK;
        if ((s = create_one("cpu", &o, out, err)))
            return s;
        snprintf((*out)->fallback, sizeof (*out)->fallback, "%s", why.message);
        return EC_OK;
    }
    if (strcmp(name, "cpu") != 0 && strcmp(name, "cuda") != 0)
        return ec_error_set(err, EC_ERR_NOT_FOUND,
                            "unknown backend '%s'. HINT: use cpu, cuda or auto", name);
    return create_one(name, &o, out, err);
}

void ec_backend_cleanup_fail(ec_backend *b, ec_status s, const char *fmt, ...)
{
    if (b->cleanup)
        return;
    b->cleanup = s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->cleanup_msg, sizeof b->cleanup_msg, fmt, ap);
    va_end(ap);
}

ec_status ec_backend_cleanup_status(const ec_backend *b, const char **msg)
{
    if (msg)
        *msg = b ? b->cleanup_msg : "";
    return b ? b->cleanup : EC_OK;
}

ec_status ec_backend_close(ec_backend *b, ec_error *err)
{
    if (!b)
        return EC_OK;
    b->iface->free(b);
    ec_status s = b->cleanup;
    if (s)
        ec_error_set(err, s, "backend %s: %s", b->iface->name, b->cleanup_msg);
    ec_free(b);
    return s;
}

void ec_backend_destroy(ec_backend *b) { (void)ec_backend_close(b, NULL); }

void ec_cuda_probe_explain(int kind, const char *err_name, const char *err_str,
                           int driver_version, int runtime_version, char *buf, size_t cap)
{
    int rt_major = runtime_version / 1000, rt_minor = runtime_version % 1000 / 10;
    if (kind == EC_CUDA_PROBE_OLD_DRIVER && driver_version <= 0)
        snprintf(buf, cap,
                 "no CUDA driver is installed (cudaGetDeviceCount: %s: %s). HINT: install the "
                 "NVIDIA driver, or use the cpu backend",
                 err_name, err_str);
    else if (kind == EC_CUDA_PROBE_OLD_DRIVER)
        snprintf(buf, cap,
                 "the CUDA driver is too old: it supports CUDA %d.%d, this build's runtime is "
                 "CUDA %d.%d (cudaGetDeviceCount: %s). HINT: update the NVIDIA driver, or use "
                 "the cpu backend",
                 driver_version / 1000, driver_version % 1000 / 10, rt_major, rt_minor, err_name);
    else if (kind == EC_CUDA_PROBE_NO_DEVICE)
        snprintf(buf, cap,
                 "no CUDA device found (cudaGetDeviceCount: %s). HINT: check nvidia-smi and "
                 "CUDA_VISIBLE_DEVICES, or use the cpu backend",
                 err_name);
    else
        snprintf(buf, cap,
                 "no usable CUDA device (cudaGetDeviceCount: %s: %s). HINT: check nvidia-smi, "
                 "or use the cpu backend",
                 err_name, err_str);
}

const char *ec_backend_name(const ec_backend *b) { return b->iface->name; }
const char *ec_backend_device_name(const ec_backend *b) { return b->device_name; }
const char *ec_backend_errmsg(const ec_backend *b) { return b->errmsg; }
const char *ec_backend_fallback_reason(const ec_backend *b) { return b->fallback; }

/* ---- memory ---------------------------------------------------------------- */

ec_status ec_backend_host_alloc(ec_backend *b, size_t bytes, void **out)
{
    if (!out)
        return ec_backend_fail(b, EC_ERR_INVALID, "ec_backend_host_alloc: NULL out");
    *out = NULL;
    if (bytes == 0)
        return ec_backend_fail(b, EC_ERR_INVALID, "ec_backend_host_alloc: 0 bytes");
    return b->iface->host_alloc(b, bytes, out);
}

void ec_backend_host_free(ec_backend *b, void *p)
{
    if (b && p)
        b->iface->host_free(b, p);
}

ec_status ec_backend_host_register(ec_backend *b, void *p, size_t bytes)
{
    if (!p || bytes == 0)
        return ec_backend_fail(b, EC_ERR_INVALID, "ec_backend_host_register: empty buffer");
    return b->iface->host_register ? b->iface->host_register(b, p, bytes) : EC_OK;
}

void ec_backend_host_unregister(ec_backend *b, void *p)
{
    if (b && p && b->iface->host_unregister)
        b->iface->host_unregister(b, p);
}

ec_status ec_backend_dev_alloc(ec_backend *b, size_t bytes, void **out)
{
    if (!out)
        return ec_backend_fail(b, EC_ERR_INVALID, "ec_backend_dev_alloc: NULL out");
    *out = NULL;
    if (bytes == 0)
        return ec_backend_fail(b, EC_ERR_INVALID, "ec_backend_dev_alloc: 0 bytes");
    return b->iface->dev_alloc(b, bytes, out);
}

void ec_backend_dev_free(ec_backend *b, void *p)
{
    if (b && p)
        b->iface->dev_free(b, p);
}

/* ---- streams --------------------------------------------------------------- */

static ec_status stream_new(ec_backend *b, void *native, int wrap, ec_stream **out)
{
    if (!b || !out)
        return b ? ec_backend_fail(b, EC_ERR_INVALID, "ec_stream_create: NULL out")
                 : EC_ERR_INVALID;
    *out = NULL;
    if (wrap && !b->iface->stream_wrap)
        return ec_backend_fail(b, EC_ERR_UNSUPPORTED,
                               "ec_stream_wrap: backend %s has no native streams",
                               b->iface->name);
    ec_stream *s = ec_calloc(1, sizeof *s);
    if (!s)
        return ec_backend_fail(b, EC_ERR_NOMEM, "ec_stream_create: out of memory");
    s->backend = b;
    s->wrapped = wrap;
    ec_status st = wrap ? b->iface->stream_wrap(b, s, native) : b->iface->stream_init(b, s);
    if (st) {
        ec_free(s);
        return st;
    }
    *out = s;
    return EC_OK;
}

ec_status ec_stream_create(ec_backend *b, ec_stream **out) { return stream_new(b, NULL, 0, out); }

ec_status ec_stream_wrap(ec_backend *b, void *native, ec_stream **out)
{
    return stream_new(b, native, 1, out);
}

void ec_stream_destroy(ec_stream *s)
{
    if (!s)
        return;
    s->backend->iface->stream_fini(s->backend, s);
    ec_free(s);
}

ec_backend *ec_stream_backend(const ec_stream *s) { return s->backend; }

void *ec_stream_native(const ec_stream *s)
{
    return s->backend->iface->stream_wrap ? s->native : NULL; /* only native-stream backends wrap */
}

ec_status ec_stream_sync(ec_stream *s)
{
    if (!s)
        return EC_ERR_INVALID;
    return s->backend->iface->stream_sync(s->backend, s);
}

/* A stream and an event must belong to the same backend. */
static ec_status same_backend(ec_stream *s, ec_event *e, const char *what)
{
    if (!s || !e)
        return s ? ec_backend_fail(s->backend, EC_ERR_INVALID, "%s: NULL event", what)
                 : EC_ERR_INVALID;
    if (s->backend != e->backend)
        return ec_backend_fail(s->backend, EC_ERR_INVALID,
                               "%s: stream and event belong to different backends", what);
    return EC_OK;
}

ec_status ec_stream_wait(ec_stream *s, ec_event *e)
{
    ec_status st = same_backend(s, e, "ec_stream_wait");
    return st ? st : s->backend->iface->stream_wait(s->backend, s, e);
}

ec_status ec_stream_copy_h2d(ec_stream *s, void *dst, const void *src, size_t bytes)
{
    if (!s)
        return EC_ERR_INVALID;
    if (!dst || !src)
        return ec_backend_fail(s->backend, EC_ERR_INVALID, "ec_stream_copy_h2d: NULL buffer");
    if (bytes == 0)
        return EC_OK;
    return s->backend->iface->copy_h2d(s->backend, s, dst, src, bytes);
}

ec_status ec_stream_copy_d2h(ec_stream *s, void *dst, const void *src, size_t bytes)
{
    if (!s)
        return EC_ERR_INVALID;
    if (!dst || !src)
        return ec_backend_fail(s->backend, EC_ERR_INVALID, "ec_stream_copy_d2h: NULL buffer");
    if (bytes == 0)
        return EC_OK;
    return s->backend->iface->copy_d2h(s->backend, s, dst, src, bytes);
}

ec_status ec_stream_checksum(ec_stream *s, const void *src, size_t bytes, uint64_t *dev_out)
{
    if (!s)
        return EC_ERR_INVALID;
    if (!src || !dev_out)
        return ec_backend_fail(s->backend, EC_ERR_INVALID, "ec_stream_checksum: NULL buffer");
    return s->backend->iface->checksum(s->backend, s, src, bytes, dev_out);
}

ec_status ec_stream_spin(ec_stream *s, double us)
{
    if (!s)
        return EC_ERR_INVALID;
    if (!(us >= 0) || us > 60e6)
        return ec_backend_fail(s->backend, EC_ERR_INVALID,
                               "ec_stream_spin: %g us is outside [0, 60 s]", us);
    return s->backend->iface->spin(s->backend, s, us);
}

ec_status ec_stream_host_fn(ec_stream *s, void (*fn)(void *arg), void *arg)
{
    if (!s)
        return EC_ERR_INVALID;
    if (!fn)
        return ec_backend_fail(s->backend, EC_ERR_INVALID, "ec_stream_host_fn: NULL function");
    return s->backend->iface->host_fn(s->backend, s, fn, arg);
}

ec_status ec_stream_expert_ffn(ec_stream *s, ec_dtype dt, const void *w, const void *x,
                               float *out, int32_t d_model, int32_t d_ff, float *scratch)
{
    if (!s)
        return EC_ERR_INVALID;
    if (!w || !x || !out || !scratch)
        return ec_backend_fail(s->backend, EC_ERR_INVALID, "ec_stream_ffn: NULL buffer");
    if (!ec_dtype_name(dt))
        return ec_backend_fail(s->backend, EC_ERR_INVALID, "ec_stream_ffn: unknown dtype %d",
                               (int)dt);
    if (!ec_expert_bytes(dt, d_model, d_ff))
        return ec_backend_fail(s->backend, EC_ERR_INVALID,
                               "ec_stream_ffn: shape d_model=%d d_ff=%d is invalid for %s",
                               (int)d_model, (int)d_ff, ec_dtype_name(dt));
    return s->backend->iface->ffn(s->backend, s, dt, w, x, out, d_model, d_ff, scratch);
}

ec_status ec_stream_ffn(ec_stream *s, const void *w, const void *x, float *out, int32_t d_model,
                        int32_t d_ff, float *scratch)
{
    return ec_stream_expert_ffn(s, EC_DTYPE_F16, w, x, out, d_model, d_ff, scratch);
}

/* ---- events ---------------------------------------------------------------- */

ec_status ec_event_create(ec_backend *b, unsigned flags, ec_event **out)
{
    if (!b || !out)
        return b ? ec_backend_fail(b, EC_ERR_INVALID, "ec_event_create: NULL out")
                 : EC_ERR_INVALID;
    *out = NULL;
    ec_event *e = ec_calloc(1, sizeof *e);
    if (!e)
        return ec_backend_fail(b, EC_ERR_NOMEM, "ec_event_create: out of memory");
    e->backend = b;
    e->flags = flags;
    ec_status st = b->iface->event_init(b, e);
    if (st) {
        ec_free(e);
        return st;
    }
    *out = e;
    return EC_OK;
}

void ec_event_destroy(ec_event *e)
{
    if (!e)
        return;
    e->backend->iface->event_fini(e->backend, e);
    ec_free(e);
}

ec_status ec_event_record(ec_event *e, ec_stream *s)
{
    ec_status st = same_backend(s, e, "ec_event_record");
    return st ? st : s->backend->iface->event_record(s->backend, e, s);
}

ec_status ec_event_query(ec_event *e, int *done)
{
    if (!e || !done)
        return EC_ERR_INVALID;
    return e->backend->iface->event_query(e->backend, e, done);
}

ec_status ec_event_sync(ec_event *e)
{
    if (!e)
        return EC_ERR_INVALID;
    return e->backend->iface->event_sync(e->backend, e);
}

ec_status ec_event_elapsed(ec_event *start, ec_event *end, float *ms)
{
    if (!start || !end || !ms)
        return EC_ERR_INVALID;
    if (start->backend != end->backend)
        return ec_backend_fail(start->backend, EC_ERR_INVALID,
                               "ec_event_elapsed: events of different backends");
    if (!(start->flags & EC_EVENT_TIMING) || !(end->flags & EC_EVENT_TIMING))
        return ec_backend_fail(start->backend, EC_ERR_STATE,
                               "ec_event_elapsed: both events need EC_EVENT_TIMING");
    return start->backend->iface->event_elapsed(start->backend, start, end, ms);
}
