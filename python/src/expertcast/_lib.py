"""ctypes declarations of libexpertcast's public API (include/expertcast/*.h).

Structures mirror the C headers field by field; tests/test_abi.py compiles a
small C program against the headers and checks every size and offset, so a
header change that is not mirrored here fails the tests instead of corrupting
memory.

The library is found, in order: $EXPERTCAST_LIBRARY (a path to
libexpertcast.so), then the copy bundled in this package (_native/).
"""

import ctypes
import ctypes.util
import os
from ctypes import (POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int, c_int16,
                    c_int32, c_int64, c_size_t, c_uint, c_uint8, c_uint64, c_void_p)

# ---- status codes (core.h) ----------------------------------------------------
EC_OK = 0
EC_ERR_INVALID = 1
EC_ERR_NOMEM = 2
EC_ERR_IO = 3
EC_ERR_PARSE = 4
EC_ERR_RANGE = 5
EC_ERR_STATE = 6
EC_ERR_UNSUPPORTED = 7
EC_ERR_NO_DEVICE = 8
EC_ERR_CUDA = 9
EC_ERR_NOT_FOUND = 10
EC_ERR_BUSY = 11
EC_ERR_NO_DATA = 12

EC_ERROR_MAX = 512
EC_MAX_K = 64
EC_EVAL_MAX_KS = 16
EC_PROFILE_NAME_MAX = 64

WHATIF_EVICT_ALL = 2**31 - 1  # EC_WHATIF_EVICT_ALL (policy.h): the whole trace
POLICY_NAMES = ("on-demand", "lru", "lfu", "predict", "gated", "oracle", "resident", "hybrid")
# kinds (policy.h order) that read a predictor and a horizon
PREDICTING = ("predict", "gated", "hybrid")
SPLITS = {"problem": 0, "token": 1, "train-test": 2}


class ec_error(Structure):
    _fields_ = [("status", c_int), ("message", c_char * EC_ERROR_MAX)]


# ---- trace.h ---------------------------------------------------------------------
EC_MAX_GUESSES = 16


class ec_guess(Structure):
    _fields_ = [("ahead", c_int32), ("n", c_int32), ("experts", POINTER(c_int16)),
                ("probs", POINTER(c_float))]


class ec_seq(Structure):
    _fields_ = [("dataset", c_char_p), ("problem_id", c_int64), ("row0", c_size_t),
                ("n_rows", c_size_t)]


class ec_trace(Structure):
    _fields_ = [("n_layers", c_int32), ("n_experts", c_int32), ("k", c_int32),
                ("has_gates", c_int), ("n_seqs", c_size_t), ("seqs", POINTER(ec_seq)),
                ("n_rows", c_size_t), ("token_idx", POINTER(c_int64)),
                ("complete", POINTER(c_uint8)), ("experts", POINTER(c_int16)),
                ("gates", POINTER(c_float)), ("n_records", c_size_t),
                ("n_duplicates", c_size_t), ("n_incomplete", c_size_t),
                ("n_guesses", c_size_t), ("guess_off", POINTER(c_size_t)),
                ("guesses", POINTER(ec_guess)), ("guess_experts", POINTER(c_int16)),
                ("guess_probs", POINTER(c_float))]


class ec_trace_opts(Structure):
    _fields_ = [("n_layers", c_int32), ("n_experts", c_int32), ("max_line", c_size_t)]


# ---- predict.h -------------------------------------------------------------------
class ec_predictor_opts(Structure):
    _fields_ = [("context", c_int32), ("tokens_back", c_int32), ("smoothing", c_double),
                ("epochs", c_int32), ("learning_rate", c_double), ("l2", c_double),
                ("per_layer", c_int32), ("seed", c_uint64), ("max_horizon", c_int32)]


# ---- eval.h ----------------------------------------------------------------------
class ec_eval_opts(Structure):
    _fields_ = [("predictors", POINTER(c_char_p)), ("n_predictors", c_size_t),
                ("horizons", POINTER(c_int32)), ("n_horizons", c_size_t),
                ("ks", POINTER(c_int32)), ("n_ks", c_size_t), ("split", c_int),
                ("folds", c_int32), ("token_fraction", c_double),
                ("predictor_opts", POINTER(ec_predictor_opts)), ("resamples", c_int32),
                ("block", c_int32), ("seed", c_uint64)]


# ---- policy.h / sim.h ------------------------------------------------------------
class ec_cache_stats(Structure):
    _fields_ = [(n, c_int64) for n in ("acquires", "hits", "inflight_hits", "misses",
                                       "prefetches", "prefetch_hits", "wasted", "cancelled",
                                       "evictions", "loads", "host_runs",
                                       "copy_behinds")]


class ec_policy_config(Structure):
    _fields_ = [("kind", c_int), ("horizon", c_int32), ("prefetch_k", c_int32),
                ("transfer_ms", c_double), ("compute_ms", c_double), ("host_ms", c_double),
                ("host_act_ms", c_double), ("copy_engines", c_int32)]


class ec_future(Structure):
    _fields_ = [("next_use", c_void_p), ("experts_at", c_void_p), ("ctx", c_void_p)]


class ec_model_profile(Structure):
    _fields_ = [("name", c_char * EC_PROFILE_NAME_MAX), ("dtype", c_char * EC_PROFILE_NAME_MAX),
                ("n_layers", c_int32), ("n_experts", c_int32), ("k", c_int32),
                ("expert_bytes", c_double), ("layer_fixed_bytes", c_double)]


class ec_hw_profile(Structure):
    _fields_ = [("name", c_char * EC_PROFILE_NAME_MAX), ("h2d_gbs", c_double),
                ("latency_us", c_double), ("copy_engines", c_int32), ("hbm_gbs", c_double),
                ("device_memory_gb", c_double), ("reserved_gb", c_double),
                ("layer_overhead_us", c_double), ("router_us", c_double),
                ("predictor_us", c_double), ("compute_fixed_ms", c_double),
                ("compute_per_expert_ms", c_double), ("has_host", c_int),
                ("host_cores", c_int32), ("host_read_gbs", c_double),
                ("host_act_d2h_us", c_double), ("host_act_h2d_us", c_double)]


class ec_sim_timing(Structure):
    _fields_ = [("transfer_ms", c_double), ("engines", c_int32),
                ("compute_fixed_ms", c_double), ("compute_per_expert_ms", c_double),
                ("router_ms", c_double), ("predictor_ms", c_double),
                ("expert_bytes", c_double), ("host_lanes", c_int32),
                ("host_stream_ms", c_double), ("host_d2h_ms", c_double),
                ("host_h2d_ms", c_double)]


class ec_sim_config(Structure):
    _fields_ = [("kind", c_int), ("cache_per_layer", c_int32), ("cache_global", c_int32),
                ("cache_sized", c_int32), ("horizon", c_int32), ("prefetch_k", c_int32),
                ("timing", ec_sim_timing)]


class ec_sim_result(Structure):
    _fields_ = [("kind", c_int), ("cache_per_layer", c_int32), ("cache_global", c_int32),
                ("horizon", c_int32), ("cache_sized", c_int32), ("n_tokens", c_int64),
                ("n_steps", c_int64),
                ("total_ms", c_double), ("tpot_ms", c_double),
                ("stall_ms_per_token", c_double), ("compute_ms_per_token", c_double),
                ("hit_rate", c_double), ("resident_rate", c_double),
                ("transfers_per_token", c_double), ("wasted_transfers_per_token", c_double),
                ("bytes_per_token", c_double), ("wasted_bytes_per_token", c_double),
                ("prefetch_precision", c_double), ("stats", ec_cache_stats),
                ("unused_at_end", c_int64), ("lower_bound_ms_per_token", c_double),
                ("n_layers", c_int32), ("stall_per_layer", POINTER(c_double)),
                ("bound_per_layer", POINTER(c_double)), ("host_runs_per_token", c_double),
                ("host_busy_ms_per_token", c_double)]


class ec_sim_baselines(Structure):
    _fields_ = [("lru", ec_sim_result), ("oracle", ec_sim_result)]


class ec_sim_comparison(Structure):
    _fields_ = [("vs_lru", c_double), ("saved_vs_lru_ms", c_double), ("vs_oracle_ms", c_double),
                ("vs_bound_ms", c_double), ("gap_closed", c_double),
                ("gap_closed_bound", c_double), ("beats_oracle", c_int)]


# ---- backend.h ---------------------------------------------------------------------
class ec_backend_opts(Structure):
    _fields_ = [("device", c_int32)]


# ---- loader.h ----------------------------------------------------------------------
class ec_loader_config(Structure):
    _fields_ = [("k", c_int32), ("cache_per_layer", c_int32), ("cache_global", c_int32),
                ("policy", ec_policy_config), ("issue_window", c_int32),
                ("history_depth", c_int32), ("no_timing", c_int), ("record_path", c_char_p),
                ("future", POINTER(ec_future)), ("reuse_model", c_void_p)]


EC_WHERE_DEVICE = 0
EC_WHERE_HOST = 1


class ec_expert_ref(Structure):
    _fields_ = [("where", c_int), ("dev", c_void_p), ("host", c_void_p), ("bytes", c_size_t)]


class ec_loader_stats(Structure):
    _fields_ = [("cache", ec_cache_stats), ("observes", c_int64), ("copies", c_int64),
                ("demand_copies", c_int64), ("prefetch_copies", c_int64), ("bytes", c_uint64),
                ("demand_bytes", c_uint64), ("prefetch_bytes", c_uint64),
                ("prefill_bytes", c_uint64), ("copies_timed", c_int64), ("copy_ms", c_double),
                ("bytes_timed", c_uint64), ("waits", c_int64), ("waits_timed", c_int64),
                ("stall_ms", c_double), ("hints", c_int64), ("host_acquires", c_int64)]


# Slack after every structure the package allocates and hands to the library:
# a library built from newer headers that appended fields then writes (or
# reads zeros, the documented defaults) there instead of past the object.
# tests/test_abi.py still fails on any difference, so the mirrors get updated.
PAD = 512


def new(cls, *args, **kw):
    """An instance of structure `cls` followed by PAD zero bytes."""
    padded = _PADDED.get(cls)
    if padded is None:
        padded = type(cls.__name__, (cls,), {"_fields_": [("_pad", c_char * PAD)]})
        _PADDED[cls] = padded
    return padded(*args, **kw)


_PADDED = {}

# Structures whose layout tests/test_abi.py checks against the C headers.
MIRRORED = (ec_error, ec_guess, ec_seq, ec_trace, ec_trace_opts, ec_predictor_opts, ec_eval_opts,
            ec_cache_stats, ec_policy_config, ec_future, ec_model_profile, ec_hw_profile,
            ec_sim_timing, ec_sim_config, ec_sim_result, ec_sim_baselines, ec_sim_comparison,
            ec_backend_opts, ec_loader_config, ec_expert_ref, ec_loader_stats)

P = c_void_p  # opaque handles
ERR = POINTER(ec_error)

# name: (restype, argtypes)
_SIGNATURES = {
    "ec_status_str": (c_char_p, [c_int]),
    "ec_version": (c_char_p, []),
    # trace
    "ec_trace_load": (c_int, [POINTER(c_char_p), c_size_t, POINTER(ec_trace_opts),
                              POINTER(POINTER(ec_trace)), ERR]),
    "ec_trace_destroy": (None, [POINTER(ec_trace)]),
    "ec_trace_write_jsonl": (c_int, [POINTER(ec_trace), P, ERR]),
    # predictors
    "ec_predictor_create": (c_int, [c_char_p, POINTER(ec_predictor_opts), POINTER(P), ERR]),
    "ec_predictor_destroy": (None, [P]),
    "ec_predictor_names": (POINTER(c_char_p), []),
    "ec_predictor_name": (c_char_p, [P]),
    "ec_predictor_errmsg": (c_char_p, [P]),
    "ec_predictor_fit": (c_int, [P, POINTER(ec_trace), POINTER(c_uint8)]),
    "ec_predictor_history_depth": (c_int32, [P]),
    "ec_predictor_n_layers": (c_int32, [P]),
    "ec_predictor_n_experts": (c_int32, [P]),
    "ec_predictor_save": (c_int, [P, c_char_p, ERR]),
    "ec_predictor_load": (c_int, [c_char_p, POINTER(P), ERR]),
    # eval
    "ec_eval_run": (c_int, [POINTER(ec_trace), POINTER(ec_trace), POINTER(ec_eval_opts),
                            POINTER(P), ERR]),
    "ec_eval_report_destroy": (None, [P]),
    "ec_eval_write_json": (c_int, [P, P, ERR]),
    # sim
    "ec_model_profile_load": (c_int, [c_char_p, c_char_p, POINTER(ec_model_profile), ERR]),
    "ec_hw_profile_load": (c_int, [c_char_p, POINTER(ec_hw_profile), ERR]),
    "ec_profile_find": (c_int, [c_char_p, c_int, c_char_p, c_size_t, c_char_p, ERR]),
    "ec_profiles_load": (c_int, [c_char_p, c_char_p, POINTER(ec_model_profile),
                                 POINTER(ec_hw_profile), ERR]),
    "ec_sim_host_ms": (c_double, [POINTER(ec_sim_timing), c_int32]),
    "ec_sim_timing_derive": (None, [POINTER(ec_model_profile), POINTER(ec_hw_profile),
                                    POINTER(ec_sim_timing)]),
    "ec_sim_default_cache": (c_int32, [POINTER(ec_model_profile), POINTER(ec_hw_profile)]),
    "ec_sim_create": (c_int, [POINTER(ec_trace), c_int32, POINTER(P), ERR]),
    "ec_sim_destroy": (None, [P]),
    "ec_sim_n_steps": (c_int64, [P]),
    "ec_sim_n_tokens": (c_int64, [P]),
    "ec_sim_n_skipped": (c_int64, [P]),
    "ec_sim_n_groups": (c_int32, [P]),
    "ec_sim_max_union": (c_int32, [P]),
    "ec_sim_fit_heldout": (c_int, [P, c_char_p, POINTER(ec_predictor_opts), ERR]),
    "ec_sim_set_predictor": (c_int, [P, P, ERR]),
    "ec_sim_set_whatif_evict": (c_int, [P, c_int32, ERR]),
    "ec_sim_run": (c_int, [P, POINTER(ec_sim_config), POINTER(ec_sim_result), ERR]),
    "ec_sim_result_clear": (None, [POINTER(ec_sim_result)]),
    "ec_sim_run_baselines": (c_int, [P, POINTER(ec_sim_config), POINTER(ec_sim_baselines),
                                     ERR]),
    "ec_sim_baselines_clear": (None, [POINTER(ec_sim_baselines)]),
    "ec_sim_compare": (None, [POINTER(ec_sim_result), POINTER(ec_sim_baselines),
                              POINTER(ec_sim_comparison)]),
    "ec_policy_kind_predicts": (c_int, [c_int]),
    "ec_policy_kind_parse": (c_int, [c_char_p, POINTER(c_int)]),
    "ec_policy_kind_name": (c_char_p, [c_int]),
    # backend
    "ec_backend_create": (c_int, [c_char_p, POINTER(ec_backend_opts), POINTER(P), ERR]),
    "ec_backend_destroy": (None, [P]),
    "ec_backend_name": (c_char_p, [P]),
    "ec_backend_device_name": (c_char_p, [P]),
    "ec_backend_errmsg": (c_char_p, [P]),
    "ec_stream_create": (c_int, [P, POINTER(P)]),
    "ec_stream_wrap": (c_int, [P, P, POINTER(P)]),
    "ec_stream_destroy": (None, [P]),
    "ec_stream_sync": (c_int, [P]),
    # store
    "ec_store_create": (c_int, [P, c_int32, c_int32, c_size_t, POINTER(P), ERR]),
    "ec_store_destroy": (None, [P]),
    "ec_store_rehash": (c_int, [P, c_int32]),
    "ec_store_expert": (c_void_p, [P, c_int32, c_int32]),
    "ec_store_checksum": (c_uint64, [P, c_int32, c_int32]),
    "ec_store_errmsg": (c_char_p, [P]),
    # loader
    "ec_loader_config_default": (None, [POINTER(ec_loader_config)]),
    "ec_loader_create": (c_int, [P, P, P, POINTER(ec_loader_config), POINTER(P), ERR]),
    "ec_loader_finish": (c_int, [P]),
    "ec_loader_destroy": (None, [P]),
    "ec_loader_begin_sequence": (c_int, [P, c_char_p, c_int64]),
    "ec_loader_observe": (c_int, [P, c_int32, POINTER(c_int16)]),
    # the runtime's own guesses (pre-gating) as loader hints
    "ec_loader_hint": (c_int, [P, c_int32, POINTER(c_int16), POINTER(c_float), c_int32]),
    "ec_loader_acquire": (c_int, [P, c_int32, c_int32, P, POINTER(c_void_p)]),
    "ec_loader_acquire_where": (c_int, [P, c_int32, c_int32, P, POINTER(ec_expert_ref)]),
    "ec_loader_release": (c_int, [P, c_int32, c_int32, P]),
    "ec_loader_poll": (c_int, [P]),
    "ec_loader_sync": (c_int, [P]),
    "ec_loader_stats_get": (None, [P, POINTER(ec_loader_stats)]),
    "ec_loader_errmsg": (c_char_p, [P]),
    "ec_checksum64": (c_uint64, [c_void_p, c_size_t]),
    # core.h: the memory limit
    "ec_set_memory_limit": (None, [c_size_t]),
    "ec_memory_limit": (c_size_t, []),
    # replay.h: perfect knowledge for the oracle
    "ec_trace_future_create": (c_int, [POINTER(ec_trace), POINTER(c_size_t), c_size_t,
                                       POINTER(P)]),
    "ec_trace_future_destroy": (None, [P]),
    "ec_trace_future_get": (POINTER(ec_future), [P]),
}

# Functions that may be absent from an older library; bound when present.
_OPTIONAL = {}


def _find_library():
    env = os.environ.get("EXPERTCAST_LIBRARY")
    if env:
        if not os.path.isfile(env):
            raise OSError(f"EXPERTCAST_LIBRARY={env}: no such file")
        return env
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_native")
    for name in ("libexpertcast.so", "libexpertcast.dylib"):
        p = os.path.join(here, name)
        if os.path.isfile(p):
            return p
    raise OSError("libexpertcast not found: install the package with `pip install ./python` "
                  "(it builds the library), or set EXPERTCAST_LIBRARY to a built "
                  "libexpertcast.so")


def _load():
    path = _find_library()
    lib = ctypes.CDLL(path)
    for name, (res, args) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    for name, (res, args) in _OPTIONAL.items():
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = res
            fn.argtypes = args
    lib.path = path
    return lib


lib = _load()

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fopen.restype = c_void_p
_libc.fopen.argtypes = [c_char_p, c_char_p]
_libc.fclose.restype = c_int
_libc.fclose.argtypes = [c_void_p]
libc = _libc


def has(name):
    """True when the loaded library exports `name`."""
    return getattr(lib, name, None) is not None
