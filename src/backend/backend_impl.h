/*
 * Internal backend interface: a backend is {iface, context}. The public
 * wrappers in backend.c check arguments, route to the iface and keep the
 * handle's last error; an implementation fills the table and its context.
 */
#ifndef EC_BACKEND_IMPL_H
#define EC_BACKEND_IMPL_H

#include "../core/internal.h"
#include "expertcast/backend.h"

/* Every operation may fail with a status; implementations record the
 * message through ec_backend_fail. Optional slots may be NULL. */
typedef struct ec_backend_iface {
    const char *name;
    void (*free)(ec_backend *b); /* drains and frees the context */

    ec_status (*host_alloc)(ec_backend *b, size_t bytes, void **out);
    void (*host_free)(ec_backend *b, void *p);
    ec_status (*host_register)(ec_backend *b, void *p, size_t bytes); /* optional */
    void (*host_unregister)(ec_backend *b, void *p);                 /* optional */
    ec_status (*dev_alloc)(ec_backend *b, size_t bytes, void **out);
    void (*dev_free)(ec_backend *b, void *p);

    /* Fill s->native; the wrapper struct is allocated by backend.c. */
    ec_status (*stream_init)(ec_backend *b, ec_stream *s);
    ec_status (*stream_wrap)(ec_backend *b, ec_stream *s, void *native); /* optional */
    void (*stream_fini)(ec_backend *b, ec_stream *s); /* drains, frees native unless wrapped */
    ec_status (*stream_sync)(ec_backend *b, ec_stream *s);
    ec_status (*stream_wait)(ec_backend *b, ec_stream *s, ec_event *e);

    ec_status (*copy_h2d)(ec_backend *b, ec_stream *s, void *dst, const void *src, size_t n);
    ec_status (*copy_d2h)(ec_backend *b, ec_stream *s, void *dst, const void *src, size_t n);
    ec_status (*checksum)(ec_backend *b, ec_stream *s, const void *src, size_t n, uint64_t *out);
    ec_status (*spin)(ec_backend *b, ec_stream *s, double us);
    ec_status (*host_fn)(ec_backend *b, ec_stream *s, void (*fn)(void *), void *arg);
    ec_status (*ffn)(ec_backend *b, ec_stream *s, ec_dtype dt, const void *w, const void *x,
                     float *out, int32_t d_model, int32_t d_ff, float *scratch);

    ec_status (*event_init)(ec_backend *b, ec_event *e);
    void (*event_fini)(ec_backend *b, ec_event *e);
    ec_status (*event_record)(ec_backend *b, ec_event *e, ec_stream *s);
    ec_status (*event_query)(ec_backend *b, ec_event *e, int *done);
    ec_status (*event_sync)(ec_backend *b, ec_event *e);
    ec_status (*event_elapsed)(ec_backend *b, ec_event *start, ec_event *end, float *ms);
    /* softmax(w · x) into pinned host probs (ec_stream_pregate); optional */
    ec_status (*pregate)(ec_backend *b, ec_stream *s, const void *w, const void *x, int dtype,
                         int32_t n_experts, int32_t d, float *probs_host);
} ec_backend_iface;

struct ec_backend {
    const ec_backend_iface *iface;
    void *context;
    char device_name[128];
    char errmsg[EC_ERROR_MAX];
    char fallback[EC_ERROR_MAX]; /* "auto" on cpu: why cuda was not used */
    ec_status cleanup;           /* first failed clean-up call (free, destroy, sync) */
    char cleanup_msg[EC_ERROR_MAX];
};

struct ec_stream {
    ec_backend *backend;
    void *native;  /* cpu: executor; cuda: cudaStream_t */
    int wrapped;   /* 1 when native belongs to the caller */
};

struct ec_event {
    ec_backend *backend;
    void *native;  /* cpu: host event; cuda: cudaEvent_t */
    unsigned flags;
};

/* Records "fmt..." as b's last error and returns s. */
ec_status ec_backend_fail(ec_backend *b, ec_status s, const char *fmt, ...) EC_PRINTF(3, 4);

/* Constructors of the implementations (b is allocated and zeroed by the
 * caller; they set iface, context and device_name). */
ec_status ec_backend_cpu_init(ec_backend *b, const ec_backend_opts *o);
#ifdef EC_HAVE_CUDA
ec_status ec_backend_cuda_init(ec_backend *b, const ec_backend_opts *o);
/* The cuda operations table, so that tests can drive its clean-up calls on
 * a machine without a device (where every CUDA call fails). */
const ec_backend_iface *ec_backend_cuda_iface(void);
#endif

/* The checksum's mixing function (murmur3's fmix64); shared with kernels. */
static inline uint64_t ec_fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb93fe53ec34full;
    k ^= k >> 33;
    return k;
}

/* Records the failure of a clean-up call (one that returns nothing: a free,
 * a destroy, the final synchronize) when it is the backend's first; later
 * ones are dropped. Read with ec_backend_cleanup_status. */
void ec_backend_cleanup_fail(ec_backend *b, ec_status s, const char *fmt, ...) EC_PRINTF(3, 4);

/* Why cudaGetDeviceCount found no usable device, in words, into buf[cap]:
 * kind EC_CUDA_PROBE_NO_DEVICE (cudaErrorNoDevice or 0 devices),
 * EC_CUDA_PROBE_OLD_DRIVER (cudaErrorInsufficientDriver: no driver when
 * driver_version is 0, else one older than the runtime) or
 * EC_CUDA_PROBE_OTHER; versions as CUDA gives them (1000 * major + 10 *
 * minor). Plain C, so that every message is tested without a GPU. */
enum { EC_CUDA_PROBE_NO_DEVICE, EC_CUDA_PROBE_OLD_DRIVER, EC_CUDA_PROBE_OTHER };
void ec_cuda_probe_explain(int kind, const char *err_name, const char *err_str,
                           int driver_version, int runtime_version, char *buf, size_t cap);

#endif
