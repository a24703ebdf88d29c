"""Hugging Face transformers MoE models through the expert loader.

    from transformers import AutoModelForCausalLM
    import expertcast.hf
    model = AutoModelForCausalLM.from_pretrained("data/tiny-mixtral")
    off = expertcast.hf.offload_experts(model, cache_per_layer=4, policy="lru")
    model.generate(ids, max_new_tokens=32, do_sample=False)
    off.stats()

Supported: the MoE blocks of transformers >= 5 whose experts are one module
with stacked `gate_up_proj` [E, 2F, H] and `down_proj` [E, H, F] weights and
whose router (`gate`) returns (logits, top-k weights, top-k ids):
MixtralForCausalLM, Qwen3MoeForCausalLM and OlmoeForCausalLM. Dense layers
between MoE layers (Qwen3-MoE's mlp_only_layers) are left alone; MoE layers
are numbered 0.. in model order, as in the traces.

What goes through the loader: every decode step of batch 1 (one token per
forward), the case expert offloading is for. For each MoE layer the router's
top-k is observed, each chosen expert is acquired (a view of its device slot;
on the cpu backend a host buffer the loader copied the expert into), computed
with the same operations as transformers' eager expert loop, and released;
an expert the loader runs on the host (policy hybrid) is computed from the
host store instead.
A forward of several tokens (the prompt's prefill, or a batch) is computed
from the pinned host store directly (copied to the model's device on use, on
cuda): that is announced here and in stats() as "plain_forwards", and each
prefill starts a new sequence for the loader.
"""

import contextlib
import ctypes
import json
import os
import tempfile

from . import _lib
from ._core import Error
from ._lib import lib
from .loader import Backend, Loader, Store


def _torch():
    import torch
    return torch


def moe_blocks(model):
    """The model's MoE blocks in layer order (those with a `gate` router and an
    `experts` module of stacked gate_up_proj / down_proj weights, or experts
    offloaded by offload_experts)."""
    blocks = [m for m in model.modules()
              if hasattr(m, "gate") and hasattr(m, "experts")
              and (isinstance(m.experts, _OffloadedExperts)
                   or (hasattr(m.experts, "gate_up_proj") and hasattr(m.experts, "down_proj")))]
    if not blocks:
        raise TypeError(f"{type(model).__name__}: no MoE block with a `gate` router and stacked "
                        "`experts.gate_up_proj` / `experts.down_proj` weights (supported: "
                        "transformers >= 5 Mixtral, Qwen3-MoE, OLMoE)")
    return blocks


def _router_top_k(block):
    return int(getattr(block.gate, "top_k", 0) or getattr(block, "top_k", 0))


def pregate_guess(next_block, hidden_states):
    """Pre-gating: the next MoE block's router applied to this block's input
    hidden states [T, H] -> (ids [T][k], probs [T][k]), the top-k of its
    softmax, highest first (probabilities not renormalised)."""
    torch = _torch()
    with torch.no_grad():
        hs = hidden_states.reshape(-1, hidden_states.shape[-1])
        logits = torch.nn.functional.linear(hs, next_block.gate.weight)
        probs = torch.softmax(logits.float(), dim=-1)
        val, idx = torch.topk(probs, _router_top_k(next_block), dim=-1)
    return idx.tolist(), val.tolist()


class _OffloadedExperts:
    """Replaces a block's experts module: the same forward signature
    (hidden_states [T, H], top_k_index [T, k], top_k_weights [T, k])."""


def _make_offloaded(torch):
    nn = torch.nn

    class OffloadedExperts(nn.Module, _OffloadedExperts):
        def __init__(self, off, layer, act_fn, n_experts, hidden, inter):
            super().__init__()
            self.off, self.layer, self.act_fn = off, layer, act_fn
            self.num_experts, self.hidden_dim, self.intermediate_dim = n_experts, hidden, inter

        def _split(self, w):
            f, h = self.intermediate_dim, self.hidden_dim
            return w[:2 * f * h].view(2 * f, h), w[2 * f * h:].view(h, f)

        def _expert(self, final, hidden_states, token_idx, top_k_pos, top_k_weights, w):
            # the operations of transformers' eager expert loop, in its order
            gate_up, down = self._split(w)
            current_state = hidden_states[token_idx]
            gate, up = nn.functional.linear(current_state, gate_up).chunk(2, dim=-1)
            cur = self.act_fn(gate) * up
            cur = nn.functional.linear(cur, down)
            cur = cur * top_k_weights[token_idx, top_k_pos, None]
            final.index_add_(0, token_idx, cur.to(final.dtype))

        def forward(self, hidden_states, top_k_index, top_k_weights):
            off = self.off
            final = torch.zeros_like(hidden_states)
            if hidden_states.shape[0] == 1:
                return self._decode(final, hidden_states, top_k_index, top_k_weights)
            if self.layer == 0:
                off._begin()
            off.plain_forwards += self.layer == 0
            with torch.no_grad():
                mask = nn.functional.one_hot(top_k_index, num_classes=self.num_experts + 1)
                mask = mask.permute(2, 1, 0)
                hit = torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero()
            for e in hit[:, 0].tolist():
                if e == self.num_experts:
                    continue
                top_k_pos, token_idx = torch.where(mask[e])
                w = off.store.host_view(self.layer, e)
                if w.device != hidden_states.device:
                    w = w.to(hidden_states.device, non_blocking=True)
                self._expert(final, hidden_states, token_idx, top_k_pos, top_k_weights, w)
            return final

        def _decode(self, final, hidden_states, top_k_index, top_k_weights):
            off = self.off
            ids = top_k_index[0].tolist()  # the host reads the router's choice
            off.loader.observe(self.layer, ids)
            if off.pregate and self.layer + 1 < off.n_layers:
                off._hint(self.layer, hidden_states)
            token_idx = torch.zeros(1, dtype=torch.long, device=hidden_states.device)
            acquired = []
            try:
                for e in sorted(ids):
                    where, w = off.loader.acquire_where(self.layer, e)
                    acquired.append(e)
                    pos = torch.tensor([ids.index(e)], device=hidden_states.device)
                    if where == "host" and w.device != hidden_states.device:
                        # hybrid ran it on the host: compute it there from the
                        # store's weights, only its output comes back
                        out = torch.zeros_like(hidden_states, device=w.device)
                        self._expert(out, hidden_states.to(w.device), token_idx.to(w.device),
                                     pos.to(w.device), top_k_weights.to(w.device), w)
                        final += out.to(final.device)
                        off.host_runs += 1
                        continue
                    off.host_runs += where == "host"
                    self._expert(final, hidden_states, token_idx, pos, top_k_weights, w)
            finally:
                for e in acquired:  # after the kernels reading the slot were submitted
                    off.loader.release(self.layer, e)
            return final

    return OffloadedExperts


class Offload:
    """What offload_experts returns: the backend, store and loader serving one
    model's experts. close() frees them (the model is unusable afterwards)."""

    def __init__(self, model, blocks, backend, store, loader, pregate):
        self.model, self.blocks = model, blocks
        self.backend, self.store, self.loader = backend, store, loader
        self.n_layers = len(blocks)
        self.pregate = pregate
        self.plain_forwards = 0  # forwards of several tokens, computed from the host store
        self.hints = 0           # pre-gate guesses given to the loader
        self.host_runs = 0       # experts computed from the host store (policy hybrid)
        self.sequences = 0

    def _begin(self):
        self.loader.begin_sequence("hf", self.sequences)
        self.sequences += 1

    def _hint(self, layer, hidden_states):
        """Pre-gating: layer + 1's router applied to this layer's MoE input,
        given to the loader as its guess for the next layer."""
        ids, probs = pregate_guess(self.blocks[layer + 1], hidden_states)
        n = len(ids[0])
        ex = (ctypes.c_int16 * n)(*ids[0])
        pr = (ctypes.c_float * n)(*probs[0])
        self.loader._check(lib.ec_loader_hint(self.loader.handle, 1, ex, pr, n))
        self.hints += 1

    def begin_sequence(self, dataset="hf", problem_id=None):
        """Starts a new sequence explicitly (a prefill does it by itself)."""
        self.loader.begin_sequence(dataset, self.sequences if problem_id is None else problem_id)
        self.sequences += 1

    def stats(self):
        self.loader.sync()
        s = self.loader.stats()
        s.update(backend=self.backend.name, device=self.backend.device_name,
                 policy=self.loader.policy, plain_forwards=self.plain_forwards,
                 pregate_hints=self.hints, host_computed=self.host_runs,
                 expert_bytes=self.store.expert_bytes)
        return s

    def close(self):
        self.loader.close()
        self.store.close()
        self.backend.close()
        if getattr(self.model, "expertcast_offload", None) is self:
            self.model.expertcast_offload = None


def offload_experts(model, cache_per_layer=4, policy="lru", predictor=None, pregate=False,
                    backend="auto", cache_global=0, horizon=1, prefetch_k=0, future=None,
                    transfer_ms=0.0, compute_ms=0.0, host_ms=0.0, host_act_ms=0.0,
                    issue_window=0):
    """Moves every MoE block's experts into a pinned host store and serves them
    to the model through an expertcast loader (see the module doc).

    cache_per_layer: device slots per MoE layer (cache_global > 0: one pool).
    policy: on-demand, lru, lfu, predict, gated, oracle, resident or hybrid.
    predictor: a fitted expertcast.Predictor (predict, gated, hybrid). future:
    a Trace of the routing about to be decoded (oracle). transfer_ms,
    compute_ms: gated's and hybrid's cost model; host_ms, host_act_ms: the
    cost of running an expert on the host, with which hybrid computes some
    misses from the host store instead of copying them (on the model's
    device when it is the CPU; else on the CPU, output moved back).
    pregate=True: after each layer's observe, the next layer's router applied
    to this layer's MoE input (its top-k and their softmax probabilities)
    becomes the loader's hint for the next layer (ec_loader_hint); the
    predicting policies use it (the predictor "hint" predicts from hints
    alone).
    backend: "cpu", "cuda", or "auto" (cuda for a model on a GPU, else cpu).
    Returns an Offload; it is also kept as model.expertcast_offload.
    """
    torch = _torch()
    blocks = moe_blocks(model)
    if any(isinstance(b.experts, _OffloadedExperts) for b in blocks):
        raise Error(_lib.EC_ERR_STATE, "the model's experts are already offloaded")
    ex0 = blocks[0].experts
    E, two_f, H = ex0.gate_up_proj.shape
    F = two_f // 2
    k = _router_top_k(blocks[0])
    if not k:
        raise TypeError("cannot tell the router's top-k (block.gate.top_k)")
    if policy == "resident" and not cache_global:
        cache_per_layer = E
    device = ex0.gate_up_proj.device
    if backend == "auto":
        backend = "cuda" if device.type == "cuda" else "cpu"
    if (backend == "cuda") != (device.type == "cuda"):
        raise ValueError(f"backend '{backend}' serves experts to a model on {device}: move the "
                         "model to the GPU for the cuda backend, keep it on the CPU for cpu")
    be = Backend(backend)
    try:
        weights = []
        for b in blocks:
            ex = b.experts
            if tuple(ex.gate_up_proj.shape) != (E, two_f, H):
                raise TypeError("MoE blocks of different shapes are not supported")
            with torch.no_grad():
                weights.append([torch.cat([ex.gate_up_proj[e].reshape(-1),
                                           ex.down_proj[e].reshape(-1)]).cpu()
                                for e in range(E)])
        store = Store.from_tensors(be, weights)
        del weights
        loader = Loader(store, k=k, cache_per_layer=0 if cache_global else cache_per_layer,
                        cache_global=cache_global, policy=policy, horizon=horizon,
                        prefetch_k=prefetch_k, predictor=predictor, future=future,
                        issue_window=issue_window, transfer_ms=transfer_ms,
                        compute_ms=compute_ms, host_ms=host_ms, host_act_ms=host_act_ms)
    except BaseException:
        be.close()
        raise
    off = Offload(model, blocks, be, store, loader, pregate)
    cls = _make_offloaded(torch)
    for i, b in enumerate(blocks):
        b.experts = cls(off, i, b.experts.act_fn, E, H, F)  # frees the stacked weights
    model.expertcast_offload = off
    return off


# ---- recording routing -----------------------------------------------------------------

class RoutingRecorder:
    """Collects the routing of batch-1 generations as raw expertcast records.
    Each prefill (a forward of several tokens at MoE layer 0) starts a new
    sequence (problem_id counting up from the one given); decode tokens get
    token_idx 0, 1, ... With include_prompt the prompt's tokens come first.
    With pregate, each record of layer N < L - 1 also carries the pre-gate
    guess for layer N + 1 in the traces' "guesses" field:
    [{"ahead": 1, "experts": top-k of layer N + 1's router applied to layer
    N's MoE input (highest first), "probs": their softmax probabilities}]."""

    def __init__(self, model, dataset="generate", problem_id=0, include_prompt=False,
                 pregate=False):
        self.blocks = moe_blocks(model)
        self.dataset, self.next_problem = dataset, problem_id
        self.include_prompt, self.pregate = include_prompt, pregate
        self.records = []
        self._pid, self._tok, self._pending = None, 0, {}
        self._handles = []
        self._shape = None

    def _pre(self, layer):
        def hook(block, args):
            hs = args[0]
            self._shape = tuple(hs.shape[:-1])
            if self.pregate and layer + 1 < len(self.blocks):
                self._guess(layer, hs)
        return hook

    def _guess(self, layer, hs):
        self._pending[layer] = pregate_guess(self.blocks[layer + 1], hs)

    def _post(self, layer):
        def hook(gate, args, out):
            _, scores, idx = out
            shape = self._shape or (1, idx.shape[0])
            if len(shape) == 2 and shape[0] != 1:
                raise Error(_lib.EC_ERR_UNSUPPORTED, "record_routing records batch-1 generation "
                            f"(this forward has batch {shape[0]})")
            n = idx.shape[0]
            if n > 1 and layer == 0:  # a prefill: a new sequence
                self._pid, self.next_problem = self.next_problem, self.next_problem + 1
                self._tok = 0
            if self._pid is None:
                self._pid, self.next_problem = self.next_problem, self.next_problem + 1
            if n > 1 and not self.include_prompt:
                self._pending.pop(layer, None)
                return
            ids, gates = idx.tolist(), scores.float().tolist()
            guess = self._pending.pop(layer, None)
            for t in range(n):
                rec = {"dataset": self.dataset, "problem_id": self._pid, "layer": layer,
                       "experts": ids[t], "gating_probs": [round(g, 6) for g in gates[t]],
                       "token_idx": self._tok + t}
                if guess is not None:
                    rec["guesses"] = [{"ahead": 1, "experts": guess[0][t],
                                       "probs": [round(p, 6) for p in guess[1][t]]}]
                self.records.append(rec)
            if layer == len(self.blocks) - 1:
                self._tok += n
        return hook

    def attach(self):
        for i, b in enumerate(self.blocks):
            self._handles.append(b.register_forward_pre_hook(self._pre(i)))
            self._handles.append(b.gate.register_forward_hook(self._post(i)))
        return self

    def detach(self):
        for h in self._handles:
            h.remove()
        self._handles = []

    def write(self, path):
        """Writes the records as JSONL, atomically (a temporary file renamed)."""
        d = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".routing-", suffix=".tmp", dir=d)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                for r in self.records:
                    f.write(json.dumps(r) + "\n")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would create it
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def trace(self):
        """The records as an expertcast.Trace."""
        from .trace import Trace
        return Trace.from_records(self.records)


@contextlib.contextmanager
def record_routing(model, path=None, dataset="generate", problem_id=0, include_prompt=False,
                   pregate=False):
    """Records the routing of the generations run inside the block:

        with expertcast.hf.record_routing(model, "routing.jsonl") as rec:
            model.generate(ids, max_new_tokens=32, do_sample=False)
        trace = rec.trace()

    Writes `path` (when given) as expertcast JSONL when the block ends without
    an error. Works on a plain or an offloaded model (the routers are hooked)."""
    rec = RoutingRecorder(model, dataset, problem_id, include_prompt, pregate).attach()
    try:
        yield rec
    finally:
        rec.detach()
    if path is not None:
        rec.write(path)
