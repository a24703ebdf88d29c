"""Simulating loading policies on recorded traces (expertcast/sim.h).

simulate() runs what `expertcast simulate --json` runs and returns the same
object as a dict: per cache size, lru and the oracle always run, and every
row carries vs_lru, gap_closed (against the oracle) and gap_closed_bound
(against the analytic lower bound).
"""

import ctypes
import math
import os

from . import _lib
from ._core import NotFoundError, check, fsencode
from ._lib import lib
from .predict import Predictor, predictor_opts

_PREDICTS = ("predict", "gated")


def profile_dirs():
    """Directories searched for named profiles, in order: $EXPERTCAST_PROFILES,
    the profiles bundled in this package, the source tree's data/profiles."""
    here = os.path.dirname(os.path.abspath(__file__))
    dirs = []
    env = os.environ.get("EXPERTCAST_PROFILES")
    if env:
        dirs.append(env)
    dirs.append(os.path.join(here, "_native", "profiles"))
    dirs.append(os.path.normpath(os.path.join(here, "..", "..", "..", "data", "profiles")))
    return dirs


def find_profile(name, model):
    """(path, dtype) of a profile given as a path or a name; a model name
    NAME-DTYPE picks dtype DTYPE of NAME.json."""
    if os.sep in name or os.path.isfile(name):
        if not os.path.isfile(name):
            raise NotFoundError(_lib.EC_ERR_NOT_FOUND, f"{name}: no such profile file")
        return name, ""
    dirs = profile_dirs()
    for d in dirs:
        p = os.path.join(d, name + ".json")
        if os.path.isfile(p):
            return p, ""
    if model and "-" in name[1:]:
        base, dtype = name.rsplit("-", 1)
        for d in dirs:
            p = os.path.join(d, base + ".json")
            if os.path.isfile(p):
                return p, dtype
    raise NotFoundError(_lib.EC_ERR_NOT_FOUND,
                        f"no {'model' if model else 'hardware'} profile '{name}' "
                        f"(searched {', '.join(dirs)})")


def load_profiles(model, hardware):
    mpath, dtype = find_profile(model, True)
    hpath, _ = find_profile(hardware, False)
    m, h, err = _lib.new(_lib.ec_model_profile), _lib.new(_lib.ec_hw_profile), _lib.ec_error()
    check(lib.ec_model_profile_load(fsencode(mpath), dtype.encode(), ctypes.byref(m),
                                    ctypes.byref(err)), err)
    check(lib.ec_hw_profile_load(fsencode(hpath), ctypes.byref(h), ctypes.byref(err)), err)
    return m, h


def _num(x):
    return None if x is None or not math.isfinite(x) else x


def _row(r):
    s = r.stats
    n = r.n_layers
    return {"policy": lib.ec_policy_kind_name(r.kind).decode(),
            "cache_experts": r.cache_per_layer, "cache_global": r.cache_global,
            "horizon": r.horizon, "tpot_ms": _num(r.tpot_ms),
            "stall_ms_per_token": _num(r.stall_ms_per_token),
            "compute_ms_per_token": _num(r.compute_ms_per_token),
            "hit_rate": _num(r.hit_rate), "resident_rate": _num(r.resident_rate),
            "transfers_per_token": _num(r.transfers_per_token),
            "wasted_transfers_per_token": _num(r.wasted_transfers_per_token),
            "bytes_per_token": _num(r.bytes_per_token),
            "useful_bytes_per_token": _num(r.bytes_per_token - r.wasted_bytes_per_token),
            "wasted_bytes_per_token": _num(r.wasted_bytes_per_token),
            "prefetch_precision": _num(r.prefetch_precision),
            "lower_bound_ms_per_token": _num(r.lower_bound_ms_per_token),
            "counts": {"uses": s.acquires, "hits": s.hits, "inflight_hits": s.inflight_hits,
                       "misses": s.misses, "loads": s.loads, "prefetches": s.prefetches,
                       "prefetch_hits": s.prefetch_hits, "wasted": s.wasted,
                       "cancelled": s.cancelled, "evictions": s.evictions},
            "stall_per_layer_ms": [_num(r.stall_per_layer[i]) for i in range(n)]
            if r.stall_per_layer else [],
            "bound_per_layer_ms": [_num(r.bound_per_layer[i]) for i in range(n)]
            if r.bound_per_layer else []}


def simulate(trace, model, hardware, policies="all", cache_experts=None, cache_global=None,
             horizon=1, prefetch_k=0, batch=1, predictor=None, fit="temporal", **opts):
    """Replays `trace` through the loading policies on modeled hardware.

    model / hardware: profile paths or names (e.g. "mixtral-8x7b-int4",
    "rtx4090-pcie4"). predict and gated use `predictor` (a fitted Predictor)
    when given, else `fit` fitted for each batch of sequences on the others
    only. cache_experts: slots per layer (default: what fits in device memory,
    at least the largest step); cache_global: one pool instead. Returns the
    dict `expertcast simulate --json` writes.
    """
    kinds = list(_lib.POLICY_NAMES) if policies == "all" else (
        [policies] if isinstance(policies, str) else list(policies))
    want = set()
    for name in kinds:
        k = ctypes.c_int()
        if lib.ec_policy_kind_parse(name.encode(), ctypes.byref(k)):
            raise NotFoundError(_lib.EC_ERR_NOT_FOUND,
                                f"unknown policy '{name}' ({', '.join(_lib.POLICY_NAMES)})")
        want.add(k.value)
    if cache_experts is not None and cache_global is not None:
        raise ValueError("give one of cache_experts and cache_global")
    m, h = load_profiles(model, hardware)
    if trace.n_layers != m.n_layers or trace.n_experts != m.n_experts:
        raise ValueError(f"the model profile says {m.n_layers} layers x {m.n_experts} experts, "
                         f"the trace has {trace.n_layers} x {trace.n_experts}")
    if horizon < 1 or horizon > trace.n_layers:
        raise ValueError(f"horizon {horizon} outside 1..{trace.n_layers}")
    sim = ctypes.c_void_p()
    err = _lib.ec_error()
    check(lib.ec_sim_create(trace._ptr, batch, ctypes.byref(sim), ctypes.byref(err)), err)
    try:
        note = "none needed (no predicting policy)"
        if want & {3, 4}:
            if predictor is not None:
                check(lib.ec_sim_set_predictor(sim, predictor.handle, ctypes.byref(err)), err)
                note = f"'{predictor.name}' given by the caller (fitted elsewhere)"
            else:
                po = predictor_opts(**opts)
                check(lib.ec_sim_fit_heldout(sim, fit.encode(), ctypes.byref(po),
                                             ctypes.byref(err)), err)
                n_seqs = len(trace.sequences)
                note = (f"'{fit}' fitted for each batch of {batch} sequence(s) on the other "
                        f"{max(n_seqs - batch, 0)} sequence(s) only (held out, no leakage)")
        tm = _lib.new(_lib.ec_sim_timing)
        lib.ec_sim_timing_derive(ctypes.byref(m), ctypes.byref(h), ctypes.byref(tm))
        glob = cache_global is not None
        if glob:
            cache = cache_global
        elif cache_experts is not None:
            cache = cache_experts
        else:
            cache = max(lib.ec_sim_default_cache(ctypes.byref(m), ctypes.byref(h)),
                        min(lib.ec_sim_max_union(sim), trace.n_experts))

        def run(kind, hz):
            cfg = _lib.new(_lib.ec_sim_config, kind=kind, cache_per_layer=0 if glob else cache,
                                     cache_global=cache if glob else 0, horizon=hz,
                                     prefetch_k=prefetch_k,
                                   timing=_lib.ec_sim_timing.from_buffer_copy(tm))
            res = _lib.new(_lib.ec_sim_result)
            check(lib.ec_sim_run(sim, ctypes.byref(cfg), ctypes.byref(res),
                                 ctypes.byref(err)), err)
            try:
                return _row(res)
            finally:
                lib.ec_sim_result_clear(ctypes.byref(res))

        lru = run(1, 1)
        orc = run(5, horizon)
        rows = []
        for kind in range(len(_lib.POLICY_NAMES)):
            if kind not in want:
                continue
            row = lru if kind == 1 else orc if kind == 5 else run(kind, horizon)
            rows.append(dict(row))
        L, O = lru["tpot_ms"], orc["tpot_ms"]
        for row in rows:
            t, b = row["tpot_ms"], row["lower_bound_ms_per_token"]
            row["vs_lru"] = _num(t / L) if L else None
            row["gap_closed"] = (L - t) / (L - O) if L > O else None
            row["gap_closed_bound"] = (L - t) / (L - b) if b is not None and L > b else None
            row["beats_oracle"] = row["policy"] != "resident" and t < O
        return {"model": m.name.decode(), "dtype": m.dtype.decode(),
                "hardware": h.name.decode(), "predictor": note, "batch": batch,
                "decode_steps": lib.ec_sim_n_tokens(sim), "layer_steps": lib.ec_sim_n_steps(sim),
                "skipped_rows": lib.ec_sim_n_skipped(sim),
                "timing": {"transfer_ms": tm.transfer_ms, "engines": tm.engines,
                           "compute_fixed_ms": tm.compute_fixed_ms,
                           "compute_per_expert_ms": tm.compute_per_expert_ms,
                           "router_ms": tm.router_ms, "predictor_ms": tm.predictor_ms,
                           "expert_bytes": tm.expert_bytes},
                "gap_closed_uses": "oracle", "results": rows}
    finally:
        lib.ec_sim_destroy(sim)
