/*
 * expertcast/backend.h - where expert weights live and how they move.
 *
 * A backend is a small table of operations ({iface, context}, as in ggml)
 * over three kinds of objects:
 *   - memory: host buffers (pinned when the backend is CUDA) and device
 *     buffers (the expert cache's slots);
 *   - streams: FIFO queues of asynchronous work. Work submitted to one
 *     stream runs in submission order; different streams run concurrently;
 *   - events: markers recorded into a stream. An event completes when all
 *     work submitted to that stream before the record has completed. A
 *     stream can wait on an event (device side: the host does not block).
 *     Re-recording an event replaces the marker; a wait or query refers to
 *     the most recent record at the time of the call. An event never
 *     recorded counts as completed.
 *
 * Two backends share these semantics exactly, so the same loader tests run
 * on both:
 *   "cpu"  - every stream is a host thread executing its queue in order;
 *            copies are memcpy, events are host-side generation counters
 *            under one mutex/condvar, "device" memory is host memory.
 *   "cuda" - streams are non-blocking cudaStream_t, events cudaEvent_t
 *            (timing disabled unless asked), host buffers cudaHostAlloc'd,
 *            device buffers cudaMalloc'd. Available when the library was
 *            built with CUDA (EC_HAVE_CUDA) and a device exists.
 *   "auto" - cuda when it can be created, else cpu; the reason cuda was not
 *            used is kept (ec_backend_fallback_reason) to be announced.
 *            An explicit "cuda" never falls back: it fails with the reason.
 *
 * Errors: every call returns an ec_status; the backend keeps the message
 * of its last failure (ec_backend_errmsg), which for CUDA names the failing
 * runtime call, the file and the line. Creating "cuda" gives
 * EC_ERR_UNSUPPORTED in a build without CUDA and EC_ERR_NO_DEVICE when no
 * device is usable; a device allocation that does not fit gives
 * EC_ERR_NOMEM.
 *
 * Threading: a backend and its objects are used from one host thread at a
 * time (the CPU backend's own executor threads are internal).
 */
#ifndef EXPERTCAST_BACKEND_H
#define EXPERTCAST_BACKEND_H

#include "expertcast/core.h"
#include "expertcast/hostffn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ec_backend ec_backend;
typedef struct ec_stream ec_stream;
typedef struct ec_event ec_event;

/* Options; zero fields mean defaults. */
typedef struct ec_backend_opts {
    int32_t device; /* cuda: device ordinal (default 0) */
} ec_backend_opts;

/*
 * Creates a backend by name: "cpu", "cuda" or "auto". opts may be NULL.
 * On failure *out is NULL and err (may be NULL) says why with a HINT.
 */
ec_status ec_backend_create(const char *name, const ec_backend_opts *opts, ec_backend **out,
                            ec_error *err);
/* Waits for every stream of the backend to drain, then frees it. Every
 * stream, event and buffer of the backend must be destroyed first. */
void ec_backend_destroy(ec_backend *b);
/* ec_backend_destroy that reports: the first failed clean-up call of the
 * backend's life (ec_backend_cleanup_status) or of the final drain (a
 * device synchronize for cuda), with its message in err. b is freed in
 * every case. */
ec_status ec_backend_close(ec_backend *b, ec_error *err);
/*
 * Clean-up calls (ec_backend_host_free, _host_unregister, _dev_free,
 * ec_stream_destroy, ec_event_destroy) return nothing; the first one that
 * failed on this backend is kept here: its status (EC_OK when none) and,
 * in *msg (may be NULL), its message naming the runtime call, e.g.
 * "src/backend/cuda/cuda_backend.c:80: cudaFree failed: ...".
 */
ec_status ec_backend_cleanup_status(const ec_backend *b, const char **msg);

/* "cpu" or "cuda". */
const char *ec_backend_name(const ec_backend *b);
/* What runs the work, e.g. "NVIDIA H100 80GB HBM3" or "host CPU". */
const char *ec_backend_device_name(const ec_backend *b);
/* Message of the last failed call on this backend or its objects ("" if none). */
const char *ec_backend_errmsg(const ec_backend *b);
/* For a backend created as "auto" that is cpu: why cuda was not used (the
 * message cuda's creation gave, e.g. "backend cuda: no CUDA device: ..."),
 * for the caller to announce the fallback. "" otherwise. */
const char *ec_backend_fallback_reason(const ec_backend *b);

/* ---- memory --------------------------------------------------------------- */

/* Host buffer of `bytes` (pinned for cuda, 64-byte aligned for cpu). */
ec_status ec_backend_host_alloc(ec_backend *b, size_t bytes, void **out);
void ec_backend_host_free(ec_backend *b, void *p);
/* Pins caller memory for fast asynchronous copies (cudaHostRegister); a
 * no-op on cpu. Unregister before freeing it. */
ec_status ec_backend_host_register(ec_backend *b, void *p, size_t bytes);
void ec_backend_host_unregister(ec_backend *b, void *p);
/* Device buffer of `bytes` (256-byte aligned). EC_ERR_NOMEM when it does
 * not fit. On cpu it is host memory. */
ec_status ec_backend_dev_alloc(ec_backend *b, size_t bytes, void **out);
void ec_backend_dev_free(ec_backend *b, void *p);

/* ---- streams --------------------------------------------------------------- */

/* A new stream (cuda: cudaStreamNonBlocking). */
ec_status ec_stream_create(ec_backend *b, ec_stream **out);
/*
 * Wraps an existing native stream (cuda: a cudaStream_t, e.g. the
 * runtime's compute stream; NULL is the legacy default stream). The native
 * stream stays the caller's: ec_stream_destroy only frees the wrapper.
 * cpu: EC_ERR_UNSUPPORTED.
 */
ec_status ec_stream_wrap(ec_backend *b, void *native, ec_stream **out);
/* Waits for the stream's work, then frees it. */
void ec_stream_destroy(ec_stream *s);
ec_backend *ec_stream_backend(const ec_stream *s);
/* The native handle (cuda: cudaStream_t), or NULL on cpu. */
void *ec_stream_native(const ec_stream *s);
/* Blocks the host until all work submitted to s has completed. */
ec_status ec_stream_sync(ec_stream *s);

/* The stream waits (device side) for e's most recent record. */
ec_status ec_stream_wait(ec_stream *s, ec_event *e);

/* Copies `bytes` host -> device / device -> host, asynchronously on s. The
 * host side must stay valid until the copy completed. */
ec_status ec_stream_copy_h2d(ec_stream *s, void *dst, const void *src, size_t bytes);
ec_status ec_stream_copy_d2h(ec_stream *s, void *dst, const void *src, size_t bytes);

/* Hashes `bytes` of device memory at src with ec_checksum64 and writes the
 * 64-bit result to the device memory *dev_out, asynchronously on s. */
ec_status ec_stream_checksum(ec_stream *s, const void *src, size_t bytes, uint64_t *dev_out);

/* Occupies the stream for `us` microseconds (a stand-in for compute: cuda
 * runs a one-thread kernel that polls the global timer). */
ec_status ec_stream_spin(ec_stream *s, double us);

/* Runs fn(arg) on a host thread once the stream reaches this point
 * (cudaLaunchHostFunc). fn must not call the backend. */
ec_status ec_stream_host_fn(ec_stream *s, void (*fn)(void *arg), void *arg);

/*
 * Expert FFN for batch-1 decode, asynchronously on s:
 *   out = w2 · (silu(w1 · x) ⊙ (w3 · x))
 * w: device buffer of fp16 weights laid out [w1 (d_ff, d_model) | w3 (d_ff,
 * d_model) | w2 (d_model, d_ff)], row-major; x: fp16 [d_model]; out: float
 * [d_model]; scratch: float [d_ff] device memory. Accumulates in float.
 * Bytes read: ec_ffn_bytes(d_model, d_ff).
 */
ec_status ec_stream_ffn(ec_stream *s, const void *w, const void *x, float *out, int32_t d_model,
                        int32_t d_ff, float *scratch);
/*
 * The same for weights in format dt (expertcast/hostffn.h): fp16 as
 * ec_stream_ffn, or q4 blocks dequantized on the fly (cuda: one warp per
 * row, each lane one 32-weight group at a time; d_model and d_ff multiples
 * of 32, x 16-byte aligned). x stays fp16, out float, scratch float
 * [d_ff]. Bytes read: ec_expert_bytes(dt, d_model, d_ff). The cpu backend
 * runs the scalar reference (ec_hostffn_reference's arithmetic).
 */
ec_status ec_stream_expert_ffn(ec_stream *s, ec_dtype dt, const void *w, const void *x,
                               float *out, int32_t d_model, int32_t d_ff, float *scratch);

/* ---- events ---------------------------------------------------------------- */

enum { EC_EVENT_TIMING = 1 }; /* flags for ec_event_create */

/* A new event; EC_EVENT_TIMING makes it usable with ec_event_elapsed
 * (cuda creates the others with cudaEventDisableTiming). */
ec_status ec_event_create(ec_backend *b, unsigned flags, ec_event **out);
void ec_event_destroy(ec_event *e);
/* Records e into s (replacing its previous record). */
ec_status ec_event_record(ec_event *e, ec_stream *s);
/* *done = 1 when e's most recent record has completed, else 0. */
ec_status ec_event_query(ec_event *e, int *done);
/* Blocks the host until e's most recent record has completed. */
ec_status ec_event_sync(ec_event *e);
/* Milliseconds between two completed timing events. EC_ERR_STATE when one
 * is not a timing event, never recorded, or not completed. */
ec_status ec_event_elapsed(ec_event *start, ec_event *end, float *ms);

/* ---- host-side helpers shared with the device code ------------------------- */

/*
 * The 64-bit checksum every backend computes (device kernels included):
 * the sum (mod 2^64) over the little-endian 8-byte words w_i of the buffer
 * (the last one zero-padded) of fmix64(w_i ^ (i * 0x9e3779b97f4a7c15)),
 * finalised as fmix64(sum ^ bytes). Word order matters (the index is
 * mixed in), words are independent (so a device sums them in parallel).
 */
uint64_t ec_checksum64(const void *p, size_t bytes);

/* Weights of one expert FFN in bytes: 3 * d_model * d_ff fp16 values. */
size_t ec_ffn_bytes(int32_t d_model, int32_t d_ff);
/* The CPU reference of ec_stream_ffn (double accumulation) on host memory;
 * scratch: float [d_ff]. Also what the cpu backend runs. */
void ec_ffn_reference(const uint16_t *w, const uint16_t *x, float *out, int32_t d_model,
                      int32_t d_ff, float *scratch);
/* IEEE 754 binary16 <-> float conversions (round to nearest even). */
uint16_t ec_half_from_float(float f);
float ec_half_to_float(uint16_t h);

#ifdef __cplusplus
}
#endif
#endif
