/* An explicit backend is a promise; clean-up calls are checked; slot memory
 * is never freed after a wait that failed. All of it runs without a GPU: the
 * CUDA probe's messages are plain C, the cuda clean-up calls fail on a
 * machine without a driver or on bad pointers, and a failing event sync is
 * injected through the backend's operations table. */
#include "testutil.h"
#include "backend/backend_impl.h"

#include <stdlib.h>
#include <string.h>

/* ---- why there is no usable CUDA device -------------------------------------- */

Test(cuda_probe, says_which_no_device_no_driver_or_a_driver_too_old)
{
    char m[512];
    ec_cuda_probe_explain(EC_CUDA_PROBE_OLD_DRIVER, "cudaErrorInsufficientDriver", "insufficient",
                          12020, 13000, m, sizeof m);
    cr_expect(strstr(m, "driver is too old") && strstr(m, "CUDA 12.2") && strstr(m, "CUDA 13.0") &&
                  strstr(m, "cudaErrorInsufficientDriver"),
              "%s", m);
    ec_cuda_probe_explain(EC_CUDA_PROBE_OLD_DRIVER, "cudaErrorInsufficientDriver", "insufficient",
                          0, 13000, m, sizeof m);
    cr_expect(strstr(m, "no CUDA driver is installed") && !strstr(m, "too old"), "%s", m);
    ec_cuda_probe_explain(EC_CUDA_PROBE_NO_DEVICE, "cudaErrorNoDevice", "no device", 13000,
                          13000, m, sizeof m);
    cr_expect(strstr(m, "no CUDA device found") && strstr(m, "cudaErrorNoDevice") &&
                  !strstr(m, "driver"),
              "%s", m);
    ec_cuda_probe_explain(EC_CUDA_PROBE_OTHER, "cudaErrorInitializationError", "init", 13000,
                          13000, m, sizeof m);
    cr_expect(strstr(m, "no usable CUDA device") && strstr(m, "cudaErrorInitializationError"),
              "%s", m);
}

Test(cuda_probe, this_machine_gets_the_reason_its_driver_gives)
{
    ec_backend *b = NULL;
    ec_error err = {0};
    ec_status s = ec_backend_create("cuda", NULL, &b, &err);
    if (s == EC_OK) {
        ec_backend_destroy(b);
        cr_skip_test("a CUDA device is usable here");
    }
    cr_assert_null(b);
#ifdef EC_HAVE_CUDA
    cr_expect_eq(s, EC_ERR_NO_DEVICE, "%s", err.message);
    cr_expect(strstr(err.message, "no CUDA device found") ||
                  strstr(err.message, "no CUDA driver is installed") ||
                  strstr(err.message, "driver is too old") ||
                  strstr(err.message, "no usable CUDA device"),
              "%s", err.message);
    cr_expect(strstr(err.message, "cudaError") || strstr(err.message, "0 devices"), "%s",
              err.message);
#else
    cr_expect_eq(s, EC_ERR_UNSUPPORTED, "%s", err.message);
#endif
}

/* ---- the CLI: cuda never falls back, auto says why ------------------------------ */

Test(strict_backend, cuda_without_a_device_exits_2_with_the_reason_and_auto_says_why)
{
    ec_backend *b = NULL;
    if (ec_backend_create("cuda", NULL, &b, NULL) == EC_OK) {
        ec_backend_destroy(b);
        cr_skip_test("a CUDA device is usable here: --backend cuda runs");
    }
    const char *d = tu_tmpdir();
    cr_assert_eq(tu_cli(NULL, NULL, "synth --layers 4 --experts 8 --sequences 2 --tokens 10 -o %s/t.jsonl", d), 0);
    char *out = NULL, *err = NULL;
    int rc = tu_cli(&out, &err, "replay %s/t.jsonl --backend cuda --policy lru --tokens 6 --json %s/r.json", d, d);
    cr_expect_eq(rc, 2, "%s", err);
    cr_expect(err && strstr(err, "--backend cuda") && strstr(err, "CUDA"), "%s", err);
    cr_expect(!out || !strstr(out, "replay on cpu"), "no fallback: %s", out);
    char p[1100];
    snprintf(p, sizeof p, "%s/r.json", d);
    cr_expect_null(tu_read(p, NULL), "nothing written");
    free(out);
    free(err);
    rc = tu_cli(&out, &err, "replay %s/t.jsonl --backend auto --policy lru --tokens 6", d);
    cr_expect_eq(rc, 0, "%s", err);
    cr_expect(err && strstr(err, "cpu backend instead") && strstr(err, "cuda"), "%s", err);
    cr_expect(out && strstr(out, "replay on cpu"), "%s", out);
    free(out);
    free(err);
    rc = tu_cli(NULL, &err, "demo --backend cuda --tokens 8 -o %s/demo", d);
    cr_expect_eq(rc, 2, "%s", err);
    free(err);
}

/* ---- clean-up calls keep their first failure ------------------------------------- */

Test(cleanup, a_failed_cuda_free_is_kept_and_close_reports_it)
{
#ifndef EC_HAVE_CUDA
    cr_skip_test("this build has no CUDA backend");
#else
    /* the cuda operations over no context: every call reaches the runtime,
     * which refuses a pointer it never handed out (or has no driver at all) */
    ec_backend *b = calloc(1, sizeof *b);
    cr_assert_not_null(b);
    b->iface = ec_backend_cuda_iface();
    const char *msg = NULL;
    cr_expect_eq(ec_backend_cleanup_status(b, &msg), EC_OK);
    cr_expect_str_eq(msg, "");
    ec_backend_dev_free(b, (void *)0x10);
    cr_expect_eq(ec_backend_cleanup_status(b, &msg), EC_ERR_CUDA);
    cr_expect(strstr(msg, "cudaFree(p) failed") && strstr(msg, "cuda_backend.c"), "%s", msg);
    char first[EC_ERROR_MAX];
    snprintf(first, sizeof first, "%s", msg);
    ec_backend_host_free(b, (void *)0x20);
    ec_backend_cleanup_status(b, &msg);
    cr_expect_str_eq(msg, first, "the first failure is kept");
    ec_error err = {0};
    cr_expect_eq(ec_backend_close(b, &err), EC_ERR_CUDA);
    cr_expect(strstr(err.message, "cudaFree"), "%s", err.message);
#endif
}

Test(cleanup, a_healthy_backend_closes_cleanly)
{
    ec_backend *b = NULL;
    cr_assert_eq(ec_backend_create("cpu", NULL, &b, NULL), EC_OK);
    void *p = NULL;
    cr_assert_eq(ec_backend_dev_alloc(b, 64, &p), EC_OK);
    ec_backend_dev_free(b, p);
    cr_expect_eq(ec_backend_cleanup_status(b, NULL), EC_OK);
    ec_error err = {0};
    cr_expect_eq(ec_backend_close(b, &err), EC_OK);
    cr_expect_str_eq(err.message, "");
}

/* ---- a failed wait keeps the slot memory ------------------------------------------ */

static const ec_backend_iface *real_iface;
static ec_backend_iface fake_iface;
static int sync_fails;
static void *freed[256];
static int n_freed;

static ec_status injected_sync(ec_backend *b, ec_event *e)
{
    if (sync_fails)
        return ec_backend_fail(b, EC_ERR_CUDA, "injected: cudaEventSynchronize failed");
    return real_iface->event_sync(b, e);
}

static void counting_dev_free(ec_backend *b, void *p)
{
    if (n_freed < 256)
        freed[n_freed++] = p;
    real_iface->dev_free(b, p);
}

static int was_freed(const void *p)
{
    for (int i = 0; i < n_freed; i++)
        if (freed[i] == p)
            return 1;
    return 0;
}

/* A loader over a cpu backend whose event sync fails from `fail` on; uses
 * layer 0's experts 0 and 1, then finishes and destroys it. Returns whether
 * its slot memory was freed. */
static int slots_freed_after(int fail)
{
    ec_backend *b = NULL;
    ec_error err = {0};
    cr_assert_eq(ec_backend_create("cpu", NULL, &b, &err), EC_OK);
    real_iface = b->iface;
    fake_iface = *real_iface;
    fake_iface.event_sync = injected_sync;
    fake_iface.dev_free = counting_dev_free;
    b->iface = &fake_iface;
    sync_fails = 0;
    n_freed = 0;
    ec_store *s = NULL;
    cr_assert_eq(ec_store_create(b, 2, 8, 4096, &s, &err), EC_OK, "%s", err.message);
    cr_assert_eq(ec_store_fill_synthetic(s, 1, 1), EC_OK);
    ec_stream *compute = NULL;
    cr_assert_eq(ec_stream_create(b, &compute), EC_OK);
    ec_loader_config c;
    ec_loader_config_default(&c);
    ec_loader *l = NULL;
    cr_assert_eq(ec_loader_create(b, s, NULL, &c, &l, &err), EC_OK, "%s", err.message);
    int16_t ex[2] = {0, 1};
    cr_assert_eq(ec_loader_observe(l, 0, ex), EC_OK, "%s", ec_loader_errmsg(l));
    for (int i = 0; i < 2; i++) {
        void *w = NULL;
        cr_assert_eq(ec_loader_acquire(l, 0, ex[i], compute, &w), EC_OK, "%s",
                     ec_loader_errmsg(l));
        cr_assert_eq(ec_stream_spin(compute, 200), EC_OK);
        cr_assert_eq(ec_loader_release(l, 0, ex[i], compute), EC_OK);
    }
    void *slots = ec_loader_slot_ptr(l, 0);
    cr_assert_not_null(slots);
    sync_fails = fail;
    ec_status fs = ec_loader_finish(l);
    if (fail) {
        cr_expect_neq(fs, EC_OK);
        cr_expect(strstr(ec_loader_errmsg(l), "injected") &&
                      strstr(ec_loader_errmsg(l), "not freed"),
                  "%s", ec_loader_errmsg(l));
    } else {
        cr_expect_eq(fs, EC_OK, "%s", ec_loader_errmsg(l));
    }
    ec_loader_destroy(l);
    int was = was_freed(slots);
    sync_fails = 0;
    cr_assert_eq(ec_stream_sync(compute), EC_OK);
    if (!was)
        real_iface->dev_free(b, slots); /* the test knows the readers are done */
    ec_stream_destroy(compute);
    ec_store_destroy(s);
    ec_backend_destroy(b);
    return was;
}

Test(loader_wait, slot_memory_is_freed_after_a_clean_finish)
{
    cr_expect(slots_freed_after(0));
}

Test(loader_wait, slot_memory_is_kept_when_a_wait_failed)
{
    cr_expect_not(slots_freed_after(1), "a kernel may still read the slots");
}
