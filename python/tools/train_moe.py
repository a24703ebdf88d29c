#!/usr/bin/env python3
"""Trains the small Mixtral-architecture MoE bundled in data/tiny-mixtral.

Byte-level language model (vocabulary = the 256 byte values) on the English
prose of Python's language reference as shipped in Debian's libpython3.11-stdlib
(/usr/lib/python3.11/pydoc_data/topics.py, the text behind `help("topics")`;
Python Software Foundation License 2.0). CPU only, seeded, a fixed number of
steps; saved with save_pretrained (config.json + model.safetensors).

    nice python python/tools/train_moe.py --out data/tiny-mixtral

The held-out text is the last 5 % of the corpus; train_log.json records the
losses, the wall time, the corpus checksum and the package versions.
"""

import argparse
import ast
import hashlib
import json
import math
import os
import platform
import sys
import time

DEFAULT_CORPUS = "/usr/lib/python3.11/pydoc_data/topics.py"


def load_corpus(path):
    """The topics dict of pydoc_data/topics.py (read as a literal, not executed),
    its texts joined in key order, as bytes."""
    with open(path, "rb") as f:
        raw = f.read()
    tree = ast.parse(raw)
    topics = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "topics"
                                                for t in node.targets):
            topics = ast.literal_eval(node.value)
    if not isinstance(topics, dict):
        sys.exit(f"{path}: no 'topics' dictionary literal")
    text = "\n\n".join(topics[k] for k in sorted(topics))
    return text.encode("utf-8"), hashlib.sha256(raw).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=DEFAULT_CORPUS)
    ap.add_argument("--out", default="data/tiny-mixtral")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--inter", type=int, default=128)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-minutes", type=float, default=10.0,
                    help="stop early (and say so in the log) past this wall time")
    a = ap.parse_args()

    import torch
    import transformers
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    data, corpus_sha = load_corpus(a.corpus)
    split = int(len(data) * 0.95)
    train = torch.tensor(list(data[:split]), dtype=torch.long)
    val = torch.tensor(list(data[split:]), dtype=torch.long)

    cfg = MixtralConfig(
        vocab_size=256, hidden_size=a.hidden, intermediate_size=a.inter, num_hidden_layers=8,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        num_local_experts=8, num_experts_per_tok=2, router_aux_loss_coef=0.02,
        output_router_logits=True, rope_theta=10000.0, sliding_window=None,
        tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=0)
    model = MixtralForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01,
                            betas=(0.9, 0.95))
    warm = max(1, a.steps // 20)

    def lr_at(step):
        if step < warm:
            return a.lr * (step + 1) / warm
        return a.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, a.steps - warm)))

    gen = torch.Generator().manual_seed(a.seed)

    def batch(src, n):
        idx = torch.randint(0, len(src) - a.seq - 1, (n,), generator=gen)
        x = torch.stack([src[i:i + a.seq] for i in idx.tolist()])
        return x

    @torch.no_grad()
    def val_loss():
        model.eval()
        losses = []
        for i in range(0, len(val) - a.seq - 1, a.seq * 4):
            x = val[i:i + a.seq].unsqueeze(0)
            losses.append(model(input_ids=x, labels=x).loss.item())
        model.train()
        return sum(losses) / len(losses)

    log = {"corpus": a.corpus, "corpus_sha256": corpus_sha, "corpus_bytes": len(data),
           "train_bytes": split, "heldout_bytes": len(data) - split, "seed": a.seed,
           "steps_asked": a.steps, "batch": a.batch, "seq": a.seq, "lr": a.lr,
           "threads": a.threads, "params": n_params, "torch": torch.__version__,
           "transformers": transformers.__version__, "python": platform.python_version(),
           "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]), "history": []}
    t0 = time.time()
    model.train()
    step = 0
    for step in range(a.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x = batch(train, a.batch)
        out = model(input_ids=x, labels=x)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == a.steps - 1:
            el = time.time() - t0
            rec = {"step": step, "loss": round(out.loss.item(), 4),
                   "aux_loss": round(float(out.aux_loss), 4), "wall_s": round(el, 1),
                   "tokens_per_s": round((step + 1) * a.batch * a.seq / el, 1)}
            log["history"].append(rec)
            print(json.dumps(rec), flush=True)
        if time.time() - t0 > a.max_minutes * 60:
            log["stopped_early"] = f"wall time passed {a.max_minutes} min at step {step}"
            print(log["stopped_early"], flush=True)
            break
    log["steps_done"] = step + 1
    log["train_wall_s"] = round(time.time() - t0, 1)
    log["heldout_loss_nats_per_byte"] = round(val_loss(), 4)
    log["heldout_bits_per_byte"] = round(log["heldout_loss_nats_per_byte"] / math.log(2), 4)
    print(json.dumps({k: log[k] for k in ("steps_done", "train_wall_s", "heldout_bits_per_byte")}))

    os.makedirs(a.out, exist_ok=True)
    model.config.output_router_logits = False
    model.save_pretrained(a.out, safe_serialization=True)
    with open(os.path.join(a.out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
