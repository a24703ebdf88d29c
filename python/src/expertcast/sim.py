"""Simulating loading policies on recorded traces (expertcast/sim.h).

simulate() runs what `expertcast simulate --json` runs and returns the same
object as a dict: per cache size, lru and the oracle always run (the
library's ec_sim_run_baselines), and every row carries vs_lru, gap_closed
(against the oracle) and gap_closed_bound (against the analytic lower
bound), computed by the library's ec_sim_compare. Profiles are found by the
library's ec_profile_find.
"""

import ctypes
import math
import os
import warnings

from . import _lib
from ._core import NotFoundError, check, fsencode
from ._lib import lib
from .predict import Predictor, predictor_opts

_PATH_MAX = 4096
_SIM_MAX_FOLDS = 8  # EC_SIM_MAX_FOLDS (sim.h)


def _bundled_dir():
    """The profiles installed with this package (python/setup.py copies them)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_native", "profiles")


def find_profile(name, model):
    """(path, dtype) of a profile given as a path or a name, found by the
    library (ec_profile_find: $EXPERTCAST_PROFILES, then profiles/ of the data
    directories); a model name NAME-DTYPE picks dtype DTYPE of NAME.json. A
    name the library does not know is then looked up among the profiles
    installed with this package, the same way."""
    path = ctypes.create_string_buffer(_PATH_MAX)
    dtype = ctypes.create_string_buffer(_lib.EC_PROFILE_NAME_MAX)
    err = _lib.ec_error()
    st = lib.ec_profile_find(fsencode(name), 1 if model else 0, path, _PATH_MAX, dtype,
                             ctypes.byref(err))
    if st == _lib.EC_ERR_NOT_FOUND and os.sep not in name and os.path.isdir(_bundled_dir()):
        d = _bundled_dir()
        if os.path.isfile(os.path.join(d, name + ".json")):
            return os.path.join(d, name + ".json"), ""
        if model and "-" in name[1:]:
            base, dt = name.rsplit("-", 1)
            if os.path.isfile(os.path.join(d, base + ".json")):
                return os.path.join(d, base + ".json"), dt
    check(st, err)
    return os.fsdecode(path.value), dtype.value.decode()


def load_profiles(model, hardware):
    """The model and hardware profiles (ec_model_profile, ec_hw_profile) named."""
    mpath, dtype = find_profile(model, True)
    hpath, _ = find_profile(hardware, False)
    m, h, err = _lib.new(_lib.ec_model_profile), _lib.new(_lib.ec_hw_profile), _lib.ec_error()
    check(lib.ec_model_profile_load(fsencode(mpath), dtype.encode(), ctypes.byref(m),
                                    ctypes.byref(err)), err)
    check(lib.ec_hw_profile_load(fsencode(hpath), ctypes.byref(h), ctypes.byref(err)), err)
    return m, h, mpath


WHATIF_EVICT_NOTE = ("gated's and hybrid's victims knew which experts each layer uses within "
                     "the next N tokens of the trace (all: Belady's victims) and every demand "
                     "was admitted; which prefetches to start was decided as without it: a "
                     "what-if measuring what better eviction could gain, not a policy")


def _num(x):
    return None if x is None or not math.isfinite(x) else x


def _row(r, c):
    """One result row as the CLI's JSON writes it: result r, comparison c."""
    s = r.stats
    n = r.n_layers
    return {"policy": lib.ec_policy_kind_name(r.kind).decode(),
            "cache_experts": r.cache_per_layer, "cache_global": r.cache_global,
            "cache_sized": bool(r.cache_sized),
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
            "host_runs_per_token": _num(r.host_runs_per_token),
            "host_busy_ms_per_token": _num(r.host_busy_ms_per_token),
            "vs_lru": _num(c.vs_lru), "gap_closed": _num(c.gap_closed),
            "gap_closed_bound": _num(c.gap_closed_bound),
            "lower_bound_ms_per_token": _num(r.lower_bound_ms_per_token),
            "beats_oracle": bool(c.beats_oracle),
            "counts": {"uses": s.acquires, "hits": s.hits, "inflight_hits": s.inflight_hits,
                       "misses": s.misses, "loads": s.loads, "prefetches": s.prefetches,
                       "prefetch_hits": s.prefetch_hits, "wasted": s.wasted,
                       "cancelled": s.cancelled, "evictions": s.evictions,
                       "host_runs": s.host_runs, "copy_behinds": s.copy_behinds},
            "stall_per_layer_ms": [_num(r.stall_per_layer[i]) for i in range(n)]
            if r.stall_per_layer else [],
            "bound_per_layer_ms": [_num(r.bound_per_layer[i]) for i in range(n)]
            if r.bound_per_layer else []}


def simulate(trace, model, hardware, policies="all", cache_experts=None, cache_global=None,
             cache_sized=False, horizon=1, prefetch_k=0, batch=1, predictor=None,
             fit="temporal", what_if_evict=(), **opts):
    """Replays `trace` through the loading policies on modeled hardware.

    model / hardware: profile paths or names (e.g. "mixtral-8x7b-int4",
    "rtx4090-pcie4"). predict, gated and hybrid use `predictor` (a fitted
    Predictor) when given, else `fit` fitted for each batch of sequences on
    the others only. cache_experts: slots per layer (default: what fits in
    device memory, at least the largest step); cache_global: one pool
    instead, sized per layer from held-out use profiles with cache_sized.
    hybrid runs misses on the host only when the hardware profile has host
    facts (else it decides as gated; a warning says so). lru and the oracle
    run as references (ec_sim_run_baselines) and every row is compared with
    them (ec_sim_compare). what_if_evict: windows in tokens (or "all"), as
    `simulate --what-if-evict`: gated and hybrid run once more per window
    with victims that know which experts each layer uses within it (a
    what-if, labelled so in its rows). Returns the dict `expertcast
    simulate --json` writes.
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
    evicts = []
    for w in ([what_if_evict] if isinstance(what_if_evict, (int, str)) else what_if_evict):
        if w == "all":
            evicts.append(_lib.WHATIF_EVICT_ALL)
        elif isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 1 << 20:
            evicts.append(w)
        else:
            raise ValueError(f"what_if_evict: {w!r} is not a window of 1..{1 << 20} tokens "
                             "or 'all'")
    if cache_experts is not None and cache_global is not None:
        raise ValueError("give one of cache_experts and cache_global")
    if cache_sized and cache_global is None:
        raise ValueError("cache_sized sizes a global pool: give cache_global")
    m, h, mpath = load_profiles(model, hardware)
    if trace.n_layers != m.n_layers or trace.n_experts != m.n_experts:
        raise ValueError(f"{mpath}: field 'layers'/'experts': the model profile says "
                         f"{m.n_layers} layers x {m.n_experts} experts, the trace has "
                         f"{trace.n_layers} x {trace.n_experts}")
    if horizon < 1 or horizon > trace.n_layers:
        raise ValueError(f"horizon {horizon} outside 1..{trace.n_layers}")
    hybrid = _lib.POLICY_NAMES.index("hybrid")
    if hybrid in want and not h.has_host:
        warnings.warn(f"hardware profile '{h.name.decode()}' has no host facts (host_cores, "
                      "host_read_gbs, host_act_d2h_us, host_act_h2d_us): host execution "
                      "unavailable, hybrid decides as gated", stacklevel=2)
    sim = ctypes.c_void_p()
    err = _lib.ec_error()
    check(lib.ec_sim_create(trace._ptr, batch, ctypes.byref(sim), ctypes.byref(err)), err)
    base = _lib.new(_lib.ec_sim_baselines)
    try:
        note = "none needed (no predicting policy)"
        if any(lib.ec_policy_kind_predicts(k) for k in want):
            if predictor is not None:
                check(lib.ec_sim_set_predictor(sim, predictor.handle, ctypes.byref(err)), err)
                note = f"'{predictor.name}' given by the caller (fitted elsewhere)"
            else:
                po = predictor_opts(**opts)
                check(lib.ec_sim_fit_heldout(sim, fit.encode(), ctypes.byref(po),
                                             ctypes.byref(err)), err)
                n_seqs = len(trace.sequences)
                groups = lib.ec_sim_n_groups(sim)
                if groups <= _SIM_MAX_FOLDS:
                    note = (f"'{fit}' fitted for each batch of {batch} sequence(s) on the other "
                            f"{max(n_seqs - batch, 0)} sequence(s) only (held out, no leakage)")
                else:
                    note = (f"'{fit}' fitted for each of {_SIM_MAX_FOLDS} folds of the {groups} "
                            f"batches of {batch} sequence(s) on the sequences outside the fold "
                            "only (held out, no leakage)")
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

        def config(kind, hz, sized):
            return _lib.new(_lib.ec_sim_config, kind=kind, cache_per_layer=0 if glob else cache,
                            cache_global=cache if glob else 0,
                            cache_sized=1 if sized else 0, horizon=hz,
                            prefetch_k=prefetch_k,
                            timing=_lib.ec_sim_timing.from_buffer_copy(tm))

        # the references as the CLI runs them: at the same shape (sized when asked)
        check(lib.ec_sim_run_baselines(sim, ctypes.byref(config(0, horizon, cache_sized)),
                                       ctypes.byref(base),
                                       ctypes.byref(err)), err)
        rows = []
        cmp = _lib.new(_lib.ec_sim_comparison)
        for kind in range(len(_lib.POLICY_NAMES)):
            if kind not in want:
                continue
            own = base.lru if kind == 1 else base.oracle if kind == 5 else None
            if own is not None:
                lib.ec_sim_compare(ctypes.byref(own), ctypes.byref(base), ctypes.byref(cmp))
                rows.append(_row(own, cmp))
                continue
            res = _lib.new(_lib.ec_sim_result)
            check(lib.ec_sim_run(sim, ctypes.byref(config(kind, horizon, cache_sized)),
                                 ctypes.byref(res),
                                 ctypes.byref(err)), err)
            try:
                lib.ec_sim_compare(ctypes.byref(res), ctypes.byref(base), ctypes.byref(cmp))
                rows.append(_row(res, cmp))
            finally:
                lib.ec_sim_result_clear(ctypes.byref(res))
            for w in evicts if _lib.POLICY_NAMES[kind] in ("gated", "hybrid") else ():
                res = _lib.new(_lib.ec_sim_result)
                check(lib.ec_sim_set_whatif_evict(sim, w, ctypes.byref(err)), err)
                try:
                    check(lib.ec_sim_run(sim, ctypes.byref(config(kind, horizon, cache_sized)),
                                         ctypes.byref(res), ctypes.byref(err)), err)
                    lib.ec_sim_compare(ctypes.byref(res), ctypes.byref(base), ctypes.byref(cmp))
                    row = _row(res, cmp)
                    row["label"] = "what-if"
                    row["what_if_evict_tokens"] = "all" if w == _lib.WHATIF_EVICT_ALL else w
                    rows.append(row)
                finally:
                    lib.ec_sim_set_whatif_evict(sim, 0, None)
                    lib.ec_sim_result_clear(ctypes.byref(res))
        host = None
        if h.has_host:
            host = {"cores": h.host_cores, "read_gbs": _num(h.host_read_gbs),
                    "act_d2h_us": _num(h.host_act_d2h_us), "act_h2d_us": _num(h.host_act_h2d_us)}
        return {"model": m.name.decode(), "dtype": m.dtype.decode(),
                "hardware": h.name.decode(), "predictor": note, "batch": batch,
                "decode_steps": lib.ec_sim_n_tokens(sim), "layer_steps": lib.ec_sim_n_steps(sim),
                "skipped_rows": lib.ec_sim_n_skipped(sim),
                "timing": {"transfer_ms": _num(tm.transfer_ms), "engines": tm.engines,
                           "compute_fixed_ms": _num(tm.compute_fixed_ms),
                           "compute_per_expert_ms": _num(tm.compute_per_expert_ms),
                           "router_ms": _num(tm.router_ms), "predictor_ms": _num(tm.predictor_ms),
                           "expert_bytes": _num(tm.expert_bytes), "host_lanes": tm.host_lanes,
                           "host_ms": _num(lib.ec_sim_host_ms(ctypes.byref(tm), 1))},
                "host": host, "gap_closed_uses": "oracle", **(
                    {"what_if_evict": {"note": WHATIF_EVICT_NOTE}} if evicts else {}),
                "results": rows}
    finally:
        lib.ec_sim_baselines_clear(ctypes.byref(base))
        lib.ec_sim_destroy(sim)
