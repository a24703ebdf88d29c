/*
 * The cuda backend: plain C over the CUDA runtime API. Streams are
 * non-blocking cudaStream_t, events cudaEvent_t (cudaEventDisableTiming
 * unless EC_EVENT_TIMING), host buffers cudaHostAlloc'd (pinned), device
 * buffers cudaMalloc'd. Kernels live in the kernels/ folder (.cu files).
 *
 * Every runtime call goes through CUDA_TRY, which records the call, file
 * and line in the backend's message and returns EC_ERR_CUDA (EC_ERR_NOMEM
 * for an allocation that does not fit). Clean-up calls, which return
 * nothing, go through CUDA_CLEANUP: a failure is kept as the backend's
 * first clean-up failure (ec_backend_cleanup_status).
 */
#include "../backend_impl.h"
#include "../../../kernels/ec_kernels.h"

#include <cuda_runtime_api.h>
#include <string.h>

typedef struct cuda_ctx {
    int device;
} cuda_ctx;

static const char *short_path(const char *file)
{
    const char *p = strstr(file, "src/");
    return p ? p : file;
}

static ec_status cuda_fail(ec_backend *b, cudaError_t e, const char *call, const char *file,
                           int line)
{
    (void)cudaGetLastError(); /* clear a non-sticky error so later calls can proceed */
    int oom = e == cudaErrorMemoryAllocation;
    return ec_backend_fail(b, oom ? EC_ERR_NOMEM : EC_ERR_CUDA, "%s:%d: %s failed: %s (%s)%s",
                           short_path(file), line, call, cudaGetErrorName(e),
                           cudaGetErrorString(e),
                           oom ? ". HINT: lower the cache capacity or the expert size" : "");
}

#define CUDA_TRY(b, call)                                                                          \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return cuda_fail((b), e_, #call, __FILE__, __LINE__);                                  \
    } while (0)

#define CUDA_CLEANUP(b, call)                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            (void)cudaGetLastError();                                                              \
            ec_backend_cleanup_fail((b), EC_ERR_CUDA, "%s:%d: %s failed: %s (%s)",                 \
                                    short_path(__FILE__), __LINE__, #call, cudaGetErrorName(e_),   \
                                    cudaGetErrorString(e_));                                       \
        }                                                                                          \
    } while (0)

#define STREAM(s) ((cudaStream_t)(s)->native)
#define EVENT(e) ((cudaEvent_t)(e)->native)

/* ---- memory ---------------------------------------------------------------------- */

static ec_status cuda_host_alloc(ec_backend *b, size_t bytes, void **out)
{
    CUDA_TRY(b, cudaHostAlloc(out, bytes, cudaHostAllocDefault));
    return EC_OK;
}

static void cuda_host_free(ec_backend *b, void *p)
{
    CUDA_CLEANUP(b, cudaFreeHost(p));
}

static ec_status cuda_host_register(ec_backend *b, void *p, size_t bytes)
{
    CUDA_TRY(b, cudaHostRegister(p, bytes, cudaHostRegisterDefault));
    return EC_OK;
}

static void cuda_host_unregister(ec_backend *b, void *p)
{
    CUDA_CLEANUP(b, cudaHostUnregister(p));
}

static ec_status cuda_dev_alloc(ec_backend *b, size_t bytes, void **out)
{
    CUDA_TRY(b, cudaMalloc(out, bytes));
    return EC_OK;
}

static void cuda_dev_free(ec_backend *b, void *p)
{
    CUDA_CLEANUP(b, cudaFree(p));
}

/* ---- streams ---------------------------------------------------------------------- */

static ec_status cuda_stream_init(ec_backend *b, ec_stream *s)
{
    cudaStream_t st;
    CUDA_TRY(b, cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    s->native = st;
    return EC_OK;
}

static ec_status cuda_stream_wrap(ec_backend *b, ec_stream *s, void *native)
{
    (void)b;
    s->native = native;
    return EC_OK;
}

static void cuda_stream_fini(ec_backend *b, ec_stream *s)
{
    CUDA_CLEANUP(b, cudaStreamSynchronize(STREAM(s)));
    if (!s->wrapped)
        CUDA_CLEANUP(b, cudaStreamDestroy(STREAM(s)));
}

static ec_status cuda_stream_sync(ec_backend *b, ec_stream *s)
{
    CUDA_TRY(b, cudaStreamSynchronize(STREAM(s)));
    return EC_OK;
}

static ec_status cuda_stream_wait(ec_backend *b, ec_stream *s, ec_event *e)
{
    CUDA_TRY(b, cudaStreamWaitEvent(STREAM(s), EVENT(e), 0));
    return EC_OK;
}

static ec_status cuda_copy_h2d(ec_backend *b, ec_stream *s, void *dst, const void *src, size_t n)
{
    CUDA_TRY(b, cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, STREAM(s)));
    return EC_OK;
}

static ec_status cuda_copy_d2h(ec_backend *b, ec_stream *s, void *dst, const void *src, size_t n)
{
    CUDA_TRY(b, cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, STREAM(s)));
    return EC_OK;
}

static ec_status cuda_checksum(ec_backend *b, ec_stream *s, const void *src, size_t n,
                               uint64_t *out)
{
    CUDA_TRY(b, ec_kernel_checksum(src, n, out, STREAM(s)));
    return EC_OK;
}

static ec_status cuda_spin(ec_backend *b, ec_stream *s, double us)
{
    CUDA_TRY(b, ec_kernel_spin((uint64_t)(us * 1e3), STREAM(s)));
    return EC_OK;
}

static ec_status cuda_host_fn(ec_backend *b, ec_stream *s, void (*fn)(void *), void *arg)
{
    CUDA_TRY(b, cudaLaunchHostFunc(STREAM(s), fn, arg));
    return EC_OK;
}

static ec_status cuda_ffn(ec_backend *b, ec_stream *s, ec_dtype dt, const void *w, const void *x,
                          float *out, int32_t d_model, int32_t d_ff, float *scratch)
{
    if (dt == EC_DTYPE_Q4)
        CUDA_TRY(b, ec_kernel_ffn_q4(w, x, out, d_model, d_ff, scratch, STREAM(s)));
    else
        CUDA_TRY(b, ec_kernel_ffn(w, x, out, d_model, d_ff, scratch, STREAM(s)));
    return EC_OK;
}

static ec_status cuda_pregate(ec_backend *b, ec_stream *s, const void *w, const void *x,
                              int dtype, int32_t n_experts, int32_t d, float *probs_host)
{
    /* pinned host memory is mapped: the kernel writes through its device alias */
    void *dev = NULL;
    CUDA_TRY(b, cudaHostGetDevicePointer(&dev, probs_host, 0));
    CUDA_TRY(b, ec_kernel_pregate(w, x, dtype, n_experts, d, (float *)dev, STREAM(s)));
    return EC_OK;
}

/* ---- events ------------------------------------------------------------------------ */

static ec_status cuda_event_init(ec_backend *b, ec_event *e)
{
    cudaEvent_t ev;
    unsigned flags = (e->flags & EC_EVENT_TIMING) ? cudaEventDefault : cudaEventDisableTiming;
    CUDA_TRY(b, cudaEventCreateWithFlags(&ev, flags));
    e->native = ev;
    return EC_OK;
}

static void cuda_event_fini(ec_backend *b, ec_event *e)
{
    CUDA_CLEANUP(b, cudaEventDestroy(EVENT(e)));
}

static ec_status cuda_event_record(ec_backend *b, ec_event *e, ec_stream *s)
{
    CUDA_TRY(b, cudaEventRecord(EVENT(e), STREAM(s)));
    return EC_OK;
}

static ec_status cuda_event_query(ec_backend *b, ec_event *e, int *done)
{
    cudaError_t r = cudaEventQuery(EVENT(e));
    if (r == cudaErrorNotReady) {
        *done = 0;
        return EC_OK;
    }
    CUDA_TRY(b, r);
    *done = 1;
    return EC_OK;
}

static ec_status cuda_event_sync(ec_backend *b, ec_event *e)
{
    CUDA_TRY(b, cudaEventSynchronize(EVENT(e)));
    return EC_OK;
}

static ec_status cuda_event_elapsed(ec_backend *b, ec_event *start, ec_event *end, float *ms)
{
    cudaError_t r = cudaEventElapsedTime(ms, EVENT(start), EVENT(end));
    if (r == cudaErrorNotReady || r == cudaErrorInvalidResourceHandle) {
        (void)cudaGetLastError();
        return ec_backend_fail(b, EC_ERR_STATE,
                               "ec_event_elapsed: an event was never recorded or has not "
                               "completed (%s)",
                               cudaGetErrorName(r));
    }
    CUDA_TRY(b, r);
    return EC_OK;
}

/* ---- the backend ------------------------------------------------------------------- */

static void cuda_free(ec_backend *b)
{
    CUDA_CLEANUP(b, cudaDeviceSynchronize());
    ec_free(b->context);
}

static const ec_backend_iface cuda_iface = {
    .name = "cuda",
    .free = cuda_free,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .host_register = cuda_host_register,
    .host_unregister = cuda_host_unregister,
    .dev_alloc = cuda_dev_alloc,
    .dev_free = cuda_dev_free,
    .stream_init = cuda_stream_init,
    .stream_wrap = cuda_stream_wrap,
    .stream_fini = cuda_stream_fini,
    .stream_sync = cuda_stream_sync,
    .stream_wait = cuda_stream_wait,
    .copy_h2d = cuda_copy_h2d,
    .copy_d2h = cuda_copy_d2h,
    .checksum = cuda_checksum,
    .spin = cuda_spin,
    .host_fn = cuda_host_fn,
    .ffn = cuda_ffn,
    .pregate = cuda_pregate,
    .event_init = cuda_event_init,
    .event_fini = cuda_event_fini,
    .event_record = cuda_event_record,
    .event_query = cuda_event_query,
    .event_sync = cuda_event_sync,
    .event_elapsed = cuda_event_elapsed,
};

const ec_backend_iface *ec_backend_cuda_iface(void) { return &cuda_iface; }

ec_status ec_backend_cuda_init(ec_backend *b, const ec_backend_opts *o)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        (void)cudaGetLastError();
        int driver = 0, runtime = 0;
        (void)cudaDriverGetVersion(&driver);
        (void)cudaRuntimeGetVersion(&runtime);
        int kind = e == cudaErrorInsufficientDriver                ? EC_CUDA_PROBE_OLD_DRIVER
                   : e == cudaSuccess || e == cudaErrorNoDevice ? EC_CUDA_PROBE_NO_DEVICE
                                                                 : EC_CUDA_PROBE_OTHER;
        ec_cuda_probe_explain(kind, e == cudaSuccess ? "0 devices" : cudaGetErrorName(e),
                              cudaGetErrorString(e), driver, runtime, b->errmsg,
                              sizeof b->errmsg);
        return EC_ERR_NO_DEVICE;
    }
    if (o->device < 0 || o->device >= n)
        return ec_backend_fail(b, EC_ERR_NO_DEVICE, "CUDA device %d requested, %d present",
                               (int)o->device, n);
    CUDA_TRY(b, cudaSetDevice(o->device));
    struct cudaDeviceProp prop;
    CUDA_TRY(b, cudaGetDeviceProperties(&prop, o->device));
    /* Load every kernel now: a lazy first launch can wait on a stream held
     * by a blocked host function (see ec_kernels_preload). */
    CUDA_TRY(b, ec_kernels_preload());
    cuda_ctx *c = ec_calloc(1, sizeof *c);
    if (!c)
        return ec_backend_fail(b, EC_ERR_NOMEM, "out of memory");
    c->device = o->device;
    b->iface = &cuda_iface;
    b->context = c;
    snprintf(b->device_name, sizeof b->device_name, "%.127s", prop.name);
    return EC_OK;
}
