"""The expert loader over torch tensors (expertcast/backend.h, store.h, loader.h).

    backend = Backend("auto")                  # cuda when a device exists, else cpu
    store = Store.from_tensors(backend, weights)   # weights[layer][expert]: tensors
    loader = Loader(store, k=2, cache_per_layer=4, policy="lru")
    loader.observe(layer, [3, 5])              # the router's top-k at this layer
    w = loader.acquire(layer, 3)               # a torch view of the device slot
    ... kernels on the current stream read w ...
    loader.release(layer, 3)

On the cuda backend, acquire makes torch's current CUDA stream wait (device
side) for the copy into the slot and returns a CUDA tensor over the slot;
release records the slot's released event on that stream. On the cpu backend
"device" slots are host memory: acquire waits on the host until the copy
completed and returns a CPU tensor over the slot. A view is valid until its
release (the slot may then be overwritten) and never after the loader closes.

Policy hybrid runs some misses on the host instead of copying them:
acquire_where(layer, e) says where each expert runs - ("device", view of
its slot) or ("host", view of its weights in the store), for the caller to
compute on the host - and acquire refuses a host expert (EC_ERR_STATE).
"""

import ctypes

from . import _lib
from ._core import Error, check, raise_status
from ._lib import lib


def _torch():
    import torch  # imported when a tensor API is used; the rest needs no torch
    return torch


class Backend:
    """"cpu", "cuda" or "auto" (cuda when it can be created, else cpu)."""

    def __init__(self, name="auto", device=0):
        self._ptr = ctypes.c_void_p()
        self._users = []
        err = _lib.ec_error()
        opts = _lib.new(_lib.ec_backend_opts, device)
        check(lib.ec_backend_create(name.encode(), ctypes.byref(opts), ctypes.byref(self._ptr),
                                    ctypes.byref(err)), err)

    @property
    def handle(self):
        if not self._ptr:
            raise ValueError("backend is closed")
        return self._ptr

    @property
    def name(self):
        return lib.ec_backend_name(self.handle).decode()

    @property
    def device_name(self):
        return lib.ec_backend_device_name(self.handle).decode()

    @property
    def is_cuda(self):
        return self.name == "cuda"

    def close(self):
        if getattr(self, "_ptr", None):
            for u in reversed(self._users):
                u.close()
            lib.ec_backend_destroy(self._ptr)
            self._ptr = None

    def __del__(self):
        self.close()

    def __repr__(self):
        return f"<Backend {self.name}: {self.device_name}>"


def _byte_view(ptr, nbytes, cuda):
    """A uint8 torch tensor over nbytes at ptr (host, or device memory)."""
    torch = _torch()
    if cuda:
        class _Dev:
            __cuda_array_interface__ = {"shape": (nbytes,), "typestr": "|u1",
                                        "data": (ptr, False), "version": 2}
        return torch.as_tensor(_Dev(), device="cuda")
    buf = (ctypes.c_uint8 * nbytes).from_address(ptr)
    return torch.frombuffer(buf, dtype=torch.uint8)


class Store:
    """The host-side expert store: n_layers x n_experts experts of expert_bytes
    each in backend host buffers (pinned on cuda). Every expert holds a tensor
    of one dtype and shape (`dtype`, `shape`)."""

    def __init__(self, backend, n_layers, n_experts, shape, dtype):
        torch = _torch()
        self.backend = backend
        self.n_layers, self.n_experts = n_layers, n_experts
        self.shape, self.dtype = tuple(shape), dtype
        numel = 1
        for d in self.shape:
            numel *= d
        self.expert_bytes = numel * torch.empty((), dtype=dtype).element_size()
        self._ptr = ctypes.c_void_p()
        err = _lib.ec_error()
        check(lib.ec_store_create(backend.handle, n_layers, n_experts, self.expert_bytes,
                                  ctypes.byref(self._ptr), ctypes.byref(err)), err)
        backend._users.append(self)

    @classmethod
    def from_tensors(cls, backend, weights):
        """weights[layer][expert]: tensors of one shape and dtype (any device);
        their bytes are copied into the store."""
        first = weights[0][0]
        s = cls(backend, len(weights), len(weights[0]), first.shape, first.dtype)
        for layer, row in enumerate(weights):
            if len(row) != s.n_experts:
                raise ValueError(f"layer {layer} has {len(row)} experts, layer 0 has "
                                 f"{s.n_experts}")
            for e, w in enumerate(row):
                s.set(layer, e, w, rehash=False)
        s.rehash()
        return s

    @property
    def handle(self):
        if not self._ptr:
            raise ValueError("store is closed")
        return self._ptr

    def host_view(self, layer, expert):
        """The store's host copy of (layer, expert) as a tensor (a view: writes
        change the store; call rehash() after)."""
        p = lib.ec_store_expert(self.handle, layer, expert)
        if not p:
            raise IndexError(f"expert ({layer}, {expert}) outside the store's "
                             f"{self.n_layers} x {self.n_experts}")
        return _byte_view(p, self.expert_bytes, False).view(self.dtype).view(self.shape)

    def set(self, layer, expert, tensor, rehash=True):
        if tuple(tensor.shape) != self.shape or tensor.dtype != self.dtype:
            raise ValueError(f"expert ({layer}, {expert}): {tuple(tensor.shape)} "
                             f"{tensor.dtype}, the store holds {self.shape} {self.dtype}")
        self.host_view(layer, expert).copy_(tensor.detach())
        if rehash:
            self.rehash()

    def rehash(self):
        check(lib.ec_store_rehash(self.handle, 1), None, lib.ec_store_errmsg(self.handle))

    def checksum(self, layer, expert):
        return lib.ec_store_checksum(self.handle, layer, expert)

    def close(self):
        if getattr(self, "_ptr", None):
            lib.ec_store_destroy(self._ptr)
            self._ptr = None
            if self in self.backend._users:
                self.backend._users.remove(self)


class Loader:
    """The speculative expert loader over a Store (ec_loader).

    policy: "on-demand", "lru", "lfu", "predict", "gated", "oracle",
    "resident" or "hybrid". predict, gated and hybrid need a fitted
    `predictor`; oracle needs `future`, a Trace of the routing the loader is
    about to see (its complete rows in order); resident needs cache_per_layer
    = n_experts. transfer_ms and compute_ms are gated's cost model (one
    expert's copy, one layer's compute). host_ms (one expert run on the host)
    and host_act_ms (a step's activations to the host and back) let hybrid
    run misses on the host when that finishes sooner than the copy (0: the
    host runs nothing and hybrid decides as gated); copy_engines: transfers
    sharing the link (0: 1).
    """

    def __init__(self, store, k, cache_per_layer=4, cache_global=0, policy="lru", horizon=1,
                 prefetch_k=0, predictor=None, future=None, issue_window=0, history_depth=0,
                 transfer_ms=0.0, compute_ms=0.0, host_ms=0.0, host_act_ms=0.0, copy_engines=0,
                 timing=True):
        self.store = store
        self.backend = store.backend
        self._ptr = ctypes.c_void_p()
        self._streams = {}
        self._own_stream = None
        self._future = None
        kind = ctypes.c_int()
        if lib.ec_policy_kind_parse(policy.encode(), ctypes.byref(kind)):
            raise_status(_lib.EC_ERR_NOT_FOUND, f"unknown policy '{policy}' "
                         f"({', '.join(_lib.POLICY_NAMES)})")
        cfg = _lib.new(_lib.ec_loader_config)
        lib.ec_loader_config_default(ctypes.byref(cfg))
        cfg.k, cfg.cache_per_layer, cfg.cache_global = k, cache_per_layer, cache_global
        cfg.policy.kind, cfg.policy.horizon, cfg.policy.prefetch_k = kind.value, horizon, prefetch_k
        cfg.policy.transfer_ms, cfg.policy.compute_ms = transfer_ms, compute_ms
        cfg.policy.host_ms, cfg.policy.host_act_ms = host_ms, host_act_ms
        cfg.policy.copy_engines = copy_engines
        if issue_window:
            cfg.issue_window = issue_window
        if history_depth:
            cfg.history_depth = history_depth
        cfg.no_timing = 0 if timing else 1
        if future is not None:
            rows = [r for r in range(future.n_rows) if future.complete(r)]
            arr = (ctypes.c_size_t * max(len(rows), 1))(*rows)
            fut = ctypes.c_void_p()
            check(lib.ec_trace_future_create(future._ptr, arr, len(rows), ctypes.byref(fut)),
                  None, "cannot index the future trace")
            self._future = (fut, future)  # the trace must outlive the index
            cfg.future = lib.ec_trace_future_get(fut)
        self.k, self.policy = k, policy
        self.predictor = predictor
        err = _lib.ec_error()
        st = lib.ec_loader_create(self.backend.handle, store.handle,
                                  predictor.handle if predictor is not None else None,
                                  ctypes.byref(cfg), ctypes.byref(self._ptr), ctypes.byref(err))
        if st:
            self._drop_future()
            check(st, err)
        self.backend._users.append(self)
        self._ids = (ctypes.c_int16 * k)()

    # -- streams
    def _stream(self, stream=None):
        """The ec_stream for torch's current CUDA stream (cuda), or the
        loader's own host-side reader stream (cpu)."""
        if not self.backend.is_cuda:
            if self._own_stream is None:
                s = ctypes.c_void_p()
                check(lib.ec_stream_create(self.backend.handle, ctypes.byref(s)), None,
                      lib.ec_backend_errmsg(self.backend.handle))
                self._own_stream = s
            return self._own_stream
        torch = _torch()
        native = (stream or torch.cuda.current_stream()).cuda_stream
        s = self._streams.get(native)
        if s is None:
            s = ctypes.c_void_p()
            check(lib.ec_stream_wrap(self.backend.handle, ctypes.c_void_p(native),
                                     ctypes.byref(s)), None,
                  lib.ec_backend_errmsg(self.backend.handle))
            self._streams[native] = s
        return s

    @property
    def handle(self):
        if not self._ptr:
            raise ValueError("loader is closed")
        return self._ptr

    def _check(self, status):
        if status:
            raise_status(status, lib.ec_loader_errmsg(self.handle))

    # -- the three calls of every MoE layer
    def begin_sequence(self, dataset=None, problem_id=0):
        self._check(lib.ec_loader_begin_sequence(
            self.handle, dataset.encode() if dataset else None, problem_id))

    def observe(self, layer, experts):
        """The router of `layer` chose `experts` (k distinct ids, highest gate first)."""
        if len(experts) != self.k:
            raise ValueError(f"observe: {len(experts)} experts, the loader's k is {self.k}")
        for i, e in enumerate(experts):
            self._ids[i] = int(e)
        self._check(lib.ec_loader_observe(self.handle, layer, self._ids))

    def acquire(self, layer, expert, stream=None):
        """A tensor view of (layer, expert)'s weights in its device slot, ordered
        after the copy that filled it (see the module doc)."""
        s = self._stream(stream)
        ptr = ctypes.c_void_p()
        self._check(lib.ec_loader_acquire(self.handle, layer, expert, s, ctypes.byref(ptr)))
        if not self.backend.is_cuda:
            # cpu: torch computes on this host thread right away, so wait here
            # for what the reader stream was made to wait for
            self._check(lib.ec_stream_sync(s))
        st = self.store
        return _byte_view(ptr.value, st.expert_bytes, self.backend.is_cuda) \
            .view(st.dtype).view(st.shape)

    def acquire_where(self, layer, expert, stream=None):
        """Where (layer, expert) runs and its weights: ("device", a view of its
        slot, as acquire gives it) or ("host", a view of its weights in the
        store, to compute on the host: policy hybrid). Release either with
        release() once the work reading it is submitted."""
        s = self._stream(stream)
        ref = _lib.new(_lib.ec_expert_ref)
        self._check(lib.ec_loader_acquire_where(self.handle, layer, expert, s, ctypes.byref(ref)))
        st = self.store
        if ref.where == _lib.EC_WHERE_HOST:
            return "host", _byte_view(ref.host, st.expert_bytes, False).view(st.dtype) \
                .view(st.shape)
        if not self.backend.is_cuda:
            self._check(lib.ec_stream_sync(s))  # as in acquire
        return "device", _byte_view(ref.dev, st.expert_bytes, self.backend.is_cuda) \
            .view(st.dtype).view(st.shape)

    def release(self, layer, expert, stream=None):
        self._check(lib.ec_loader_release(self.handle, layer, expert, self._stream(stream)))

    def poll(self):
        self._check(lib.ec_loader_poll(self.handle))

    def sync(self):
        self._check(lib.ec_loader_sync(self.handle))

    def stats(self):
        """Counters and timings so far (call sync() first for complete timings)."""
        s = _lib.new(_lib.ec_loader_stats)
        lib.ec_loader_stats_get(self.handle, ctypes.byref(s))
        out = {n: getattr(s.cache, n) for n, _ in _lib.ec_cache_stats._fields_}
        for n, _ in _lib.ec_loader_stats._fields_[1:]:
            out[n] = getattr(s, n)
        uses = s.cache.acquires
        out["hit_rate"] = (s.cache.hits + s.cache.inflight_hits) / uses if uses else None
        return out

    def finish(self):
        self._check(lib.ec_loader_finish(self.handle))

    def _drop_future(self):
        if self._future:
            lib.ec_trace_future_destroy(self._future[0])
            self._future = None

    def close(self):
        if getattr(self, "_ptr", None):
            lib.ec_loader_destroy(self._ptr)
            self._ptr = None
            for s in self._streams.values():
                lib.ec_stream_destroy(s)
            self._streams = {}
            if self._own_stream is not None:
                lib.ec_stream_destroy(self._own_stream)
                self._own_stream = None
            self._drop_future()
            if self in self.backend._users:
                self.backend._users.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<Loader {self.policy} on {self.backend.name}, k={self.k}>"


__all__ = ["Backend", "Store", "Loader", "Error"]
