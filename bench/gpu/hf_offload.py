#!/usr/bin/env python3
"""GPU check and tokens/s of a Hugging Face MoE model with its experts offloaded
through expertcast's cuda backend (not yet run: no GPU machine has been
available; every figure it writes names the device it ran on).

For the model (default data/tiny-mixtral, or --model PATH of any Mixtral /
Qwen3-MoE / OLMoE checkpoint), greedy decoding of --tokens tokens per prompt:
  1. "resident-torch": the unmodified model with every expert on the device;
  2. "copy-on-use":   experts in pinned host memory, each used expert copied to
                      the device when the router picks it (no cache, no
                      prediction: offloading the plain way);
  3. expertcast, every policy (cuda backend, cache --cache experts per layer).
Checks that 2 and 3 give the tokens of 1 and logits within --tol, then writes
tokens/s (wall time of generate, after one warm-up generation) and the
loader's counters to bench/results/hf_offload_<device>.json.

    python bench/gpu/hf_offload.py --model data/tiny-mixtral --tokens 64 --cache 4
"""

import argparse
import json
import os
import platform
import re
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM

import expertcast as ec
import expertcast.hf as hf

POLICIES = ("on-demand", "lru", "lfu", "predict", "gated", "oracle", "resident")


class CopyOnUse(torch.nn.Module):
    """Experts in pinned host memory, copied to the device on every use."""

    def __init__(self, experts, device):
        super().__init__()
        self.gate_up = experts.gate_up_proj.detach().cpu().pin_memory()
        self.down = experts.down_proj.detach().cpu().pin_memory()
        self.act_fn, self.device = experts.act_fn, device
        self.num_experts = self.gate_up.shape[0]

    def forward(self, hidden_states, top_k_index, top_k_weights):
        final = torch.zeros_like(hidden_states)
        mask = torch.nn.functional.one_hot(top_k_index, num_classes=self.num_experts + 1)
        mask = mask.permute(2, 1, 0)
        for e in torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero()[:, 0].tolist():
            if e == self.num_experts:
                continue
            pos, tok = torch.where(mask[e])
            gu = self.gate_up[e].to(self.device, non_blocking=True)
            dn = self.down[e].to(self.device, non_blocking=True)
            gate, up = torch.nn.functional.linear(hidden_states[tok], gu).chunk(2, dim=-1)
            cur = torch.nn.functional.linear(self.act_fn(gate) * up, dn)
            final.index_add_(0, tok, (cur * top_k_weights[tok, pos, None]).to(final.dtype))
        return final


def timed_generate(model, prompts, tokens):
    seqs, logits = [], []
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for ids in prompts:
        out = model.generate(ids, max_new_tokens=tokens, do_sample=False, pad_token_id=0,
                             output_logits=True, return_dict_in_generate=True)
        seqs.append(out.sequences)
        logits.append(torch.stack(out.logits))
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    return seqs, logits, len(prompts) * tokens / wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="data/tiny-mixtral")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--cache", type=int, default=4)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this benchmark needs a GPU")
    dev = torch.device("cuda")
    dtype = getattr(torch, a.dtype)
    name = torch.cuda.get_device_name(0)

    def load():
        return AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype).to(dev).eval()

    g = torch.Generator().manual_seed(0)
    vocab = load().config.vocab_size
    prompts = [torch.randint(1, min(vocab, 256), (1, 32), generator=g).to(dev)
               for _ in range(a.prompts)]
    res = {"device": name, "model": a.model, "dtype": a.dtype, "tokens_per_prompt": a.tokens,
           "prompts": a.prompts, "cache_per_layer": a.cache, "torch": torch.__version__,
           "transformers": transformers.__version__, "expertcast": ec.version(),
           "python": platform.python_version(), "command": " ".join(sys.argv), "runs": []}

    ref_model = load()
    with hf.record_routing(ref_model) as rec:
        ref_seqs, ref_logits, _ = timed_generate(ref_model, prompts, a.tokens)
    future = rec.trace()
    timed_generate(ref_model, prompts[:1], 8)  # warm-up
    _, _, tps = timed_generate(ref_model, prompts, a.tokens)
    res["runs"].append({"mode": "resident-torch", "tokens_per_s": tps})
    del ref_model

    def check(mode, seqs, logits):
        same = all(torch.equal(x, y) for x, y in zip(seqs, ref_seqs))
        diff = max((x - y).abs().max().item() for x, y in zip(logits, ref_logits))
        return {"same_tokens": same, "max_logit_diff": diff, "within_tol": diff <= a.tol}

    m = load()
    for b in hf.moe_blocks(m):
        b.experts = CopyOnUse(b.experts, dev)
    torch.cuda.empty_cache()
    timed_generate(m, prompts[:1], 8)
    seqs, logits, tps = timed_generate(m, prompts, a.tokens)
    res["runs"].append({"mode": "copy-on-use", "tokens_per_s": tps, **check("c", seqs, logits)})
    del m

    temporal = ec.Predictor("temporal").fit(future)
    for policy in POLICIES:
        m = load()
        kw = {}
        if policy in ("predict", "gated"):
            kw["predictor"] = temporal  # fitted on these very prompts: an optimistic predictor
        if policy == "oracle":
            kw["future"] = future
        off = hf.offload_experts(m, cache_per_layer=a.cache, policy=policy, backend="cuda", **kw)
        torch.cuda.empty_cache()
        seqs, logits, tps = timed_generate(m, prompts, a.tokens)
        s = off.stats()
        off.close()
        res["runs"].append({"mode": f"expertcast-{policy}", "tokens_per_s": tps,
                            **check(policy, seqs, logits), "loader": s})
        print(json.dumps(res["runs"][-1], default=str)[:300], flush=True)
        del m
    out = a.out or os.path.join("bench", "results",
                                "hf_offload_" + re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
                                + ".json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(res, f, indent=1, default=str)
        f.write("\n")
    print(f"wrote {out}")
    bad = [r["mode"] for r in res["runs"] if r.get("same_tokens") is False]
    sys.exit(f"tokens differ from the unmodified model: {bad}" if bad else 0)


if __name__ == "__main__":
    main()
