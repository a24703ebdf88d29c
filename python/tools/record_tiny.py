#!/usr/bin/env python3
"""Records the routing trace bundled beside the small MoE (data/tiny-mixtral):
greedy generation of --tokens bytes from each of --prompts prompts cut from the
held-out end of the training corpus (the last 5 %, never trained on), with the
pre-gate guesses (layer N + 1's router applied to layer N's MoE input).

    python python/tools/record_tiny.py --model data/tiny-mixtral \\
        --out data/tiny-mixtral/routing.jsonl
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_moe import DEFAULT_CORPUS, load_corpus  # noqa: E402


def prompts(corpus, n, length):
    """n prompts of `length` bytes from the held-out 5 %, each starting at a line."""
    data, _ = load_corpus(corpus)
    held = data[int(len(data) * 0.95):]
    out, step = [], len(held) // n
    for i in range(n):
        start = held.find(b"\n", i * step) + 1
        out.append(held[start:start + length])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="data/tiny-mixtral")
    ap.add_argument("--out", default="data/tiny-mixtral/routing.jsonl")
    ap.add_argument("--corpus", default=DEFAULT_CORPUS)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--prompt-bytes", type=int, default=48)
    ap.add_argument("--tokens", type=int, default=64)
    a = ap.parse_args()

    import torch
    from transformers import MixtralForCausalLM

    import expertcast.hf as hf

    torch.set_num_threads(1)
    model = MixtralForCausalLM.from_pretrained(a.model).eval()
    texts = []
    with hf.record_routing(model, a.out, dataset="pydoc-topics-heldout", pregate=True) as rec:
        for p in prompts(a.corpus, a.prompts, a.prompt_bytes):
            ids = torch.tensor([list(p)])
            out = model.generate(ids, max_new_tokens=a.tokens, do_sample=False, pad_token_id=0)
            texts.append({"prompt": p.decode("utf-8", "replace"),
                          "generated": bytes(out[0, ids.shape[1]:].tolist())
                          .decode("utf-8", "replace")})
    print(json.dumps({"records": len(rec.records), "samples": texts[:2]}, indent=1))


if __name__ == "__main__":
    main()
