"""Hugging Face MoE models through the loader (cpu backend).

The small Mixtral trained here (data/tiny-mixtral) generates 32 tokens
greedily, unmodified and then with its experts offloaded through the loader,
once per policy: the tokens must be identical and every step's logits within
LOGIT_TOL. The offloaded model computes the experts with transformers' eager
loop while the unmodified one uses its default (grouped_mm where available),
so logits may differ in the last bits; measured: 0 on data/tiny-mixtral, up
to 2e-7 on randomly initialised models.
"""

import ctypes
import json
import os

import pytest

import expertcast as ec
from conftest import TINY, need

torch = need("torch")
transformers = need("transformers")
hf = pytest.importorskip("expertcast.hf")

LOGIT_TOL = 1e-4          # max |logit difference| over every step and byte
NEW_TOKENS = 32
PROMPT = b"The \"assert\" statement\n**********************\n\nAssert statements are"
MODEL = os.environ.get("EXPERTCAST_TINY_MODEL", TINY)
ROUTING = os.path.join(MODEL, "routing.jsonl")


def load():
    return transformers.MixtralForCausalLM.from_pretrained(MODEL).eval()


def generate(model, ids):
    out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0,
                         output_logits=True, return_dict_in_generate=True)
    return out.sequences, torch.stack(out.logits)


@pytest.fixture(scope="module")
def reference():
    torch.set_num_threads(1)
    model = load()
    ids = torch.tensor([list(PROMPT)])
    with hf.record_routing(model, pregate=True) as rec:
        seq, logits = generate(model, ids)
    return {"ids": ids, "seq": seq, "logits": logits, "records": rec.records,
            "trace": rec.trace(), "params": sum(p.numel() for p in model.parameters())}


@pytest.fixture(scope="module")
def temporal():
    return ec.Predictor("temporal").fit(ec.Trace.load(ROUTING))


@pytest.mark.parametrize("policy", ec._lib.POLICY_NAMES)
def test_offloaded_generation_is_identical(policy, reference, temporal):
    model = load()
    kw = {}
    if policy in ("predict", "gated", "hybrid"):
        kw.update(predictor=temporal, transfer_ms=1.0, compute_ms=0.1)
    if policy == "hybrid":
        # a host expert costs a fraction of a copy: hybrid runs misses on the
        # host, and those experts are computed from the host store
        kw.update(host_ms=0.2, host_act_ms=0.05)
    if policy == "oracle":
        kw["future"] = reference["trace"]
    off = hf.offload_experts(model, cache_per_layer=4, policy=policy, backend="cpu", **kw)
    try:
        # the experts left the model: only the store holds them now
        assert sum(p.numel() for p in model.parameters()) < reference["params"] / 2
        with hf.record_routing(model, pregate=True) as rec:
            seq, logits = generate(model, reference["ids"])
        s = off.stats()
        with pytest.raises(ec.Error, match="already offloaded"):
            hf.offload_experts(model)
    finally:
        off.close()
    assert torch.equal(seq, reference["seq"]), f"{policy}: tokens differ"
    assert rec.records == reference["records"]  # the same routing and pre-gate guesses
    diff = (logits - reference["logits"]).abs().max().item()
    assert diff <= LOGIT_TOL, f"{policy}: logits differ by {diff}"
    steps = (NEW_TOKENS - 1) * 8  # decode forwards x MoE layers; the prefill is plain
    assert s["observes"] == steps and s["acquires"] == 2 * steps
    assert s["plain_forwards"] == 1 and s["backend"] == "cpu"
    if policy == "on-demand":
        assert s["hits"] == 0 and s["loads"] == 2 * steps
    if policy == "resident":
        assert s["misses"] == 0 and s["loads"] == 0
    if policy in ("predict", "gated", "oracle"):
        assert s["prefetches"] > 0 if policy != "gated" else s["prefetches"] >= 0
    if policy != "on-demand":
        assert s["hits"] + s["inflight_hits"] > 0
    if policy == "hybrid":
        assert s["host_runs"] > 0 and s["host_acquires"] == s["host_runs"]
        assert s["host_computed"] == s["host_acquires"]
    if policy in ("gated", "hybrid"):
        # every miss is either copied on demand or run on the host
        assert s["demand_copies"] + s["host_runs"] == s["misses"]
    if policy != "hybrid":
        assert s["host_runs"] == 0 and s["host_acquires"] == 0 and s["host_computed"] == 0


def test_oracle_beats_lru(reference):
    """Same generation, same cache: perfect knowledge misses less than LRU."""
    misses = {}
    for policy in ("lru", "oracle"):
        model = load()
        off = hf.offload_experts(model, cache_per_layer=3, policy=policy, backend="cpu",
                                 future=reference["trace"] if policy == "oracle" else None)
        generate(model, reference["ids"])
        misses[policy] = off.stats()["misses"]
        off.close()
    assert misses["oracle"] < misses["lru"]


def test_recorded_trace_loads_and_replays(reference, tmp_path, cli):
    recs = reference["records"]
    assert len(recs) == (NEW_TOKENS - 1) * 8
    assert all(len(r["experts"]) == 2 and len(set(r["experts"])) == 2 for r in recs)
    # every layer but the last carries its pre-gate guess for the next one
    assert sum("guesses" in r for r in recs) == (NEW_TOKENS - 1) * 7
    t = reference["trace"]
    assert (t.n_layers, t.n_experts, t.k, t.n_rows, t.n_incomplete) == (8, 8, 2, 31, 0)
    got = ec.simulate(t, "tiny-mixtral", "rtx4090-pcie4", policies=["lru", "oracle", "resident"],
                      cache_experts=4)
    assert got["decode_steps"] == 31 and got["layer_steps"] == 31 * 8
    rows = {r["policy"]: r for r in got["results"]}
    assert rows["oracle"]["stall_ms_per_token"] <= rows["lru"]["stall_ms_per_token"]
    assert rows["resident"]["hit_rate"] == 1.0
    # the CLI replays the written file the same way
    path = tmp_path / "routing.jsonl"
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    out = tmp_path / "sim.json"
    import subprocess
    subprocess.run([cli, "simulate", str(path), "--model", "tiny-mixtral", "--hardware",
                    "rtx4090-pcie4", "--policy", "lru,oracle,resident", "--cache-experts", "4",
                    "--json", str(out)], check=True, capture_output=True,
                   env=dict(os.environ, EXPERTCAST_PROFILES=os.path.join(
                       os.path.dirname(TINY), "profiles")))
    cli_rows = {r["policy"]: r for r in json.loads(out.read_text())["results"]}
    for p in rows:
        assert cli_rows[p]["tpot_ms"] == pytest.approx(rows[p]["tpot_ms"], rel=1e-12)
        assert cli_rows[p]["counts"] == rows[p]["counts"]


def test_bundled_trace_comes_from_this_model():
    """Re-recording the bundled trace's first prompt reproduces its routing."""
    bundled = [json.loads(line) for line in open(ROUTING)]
    first = [r for r in bundled if r["problem_id"] == 0]
    n_tokens = 1 + max(r["token_idx"] for r in first)
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
    from record_tiny import prompts  # the same prompt cutting as the bundling script
    log = json.load(open(os.path.join(MODEL, "train_log.json")))
    if not os.path.isfile(log["corpus"]):
        pytest.skip(f"the training corpus {log['corpus']} is not installed")
    p = prompts(log["corpus"], 8, 48)[0]
    model = load()
    with hf.record_routing(model, dataset=first[0]["dataset"], pregate=True) as rec:
        model.generate(torch.tensor([list(p)]), max_new_tokens=n_tokens + 1, do_sample=False,
                       pad_token_id=0)
    assert [r["experts"] for r in rec.records] == [r["experts"] for r in first]


def test_pregate_recall_beside_temporal():
    """eval on the bundled trace: temporal (library, leave one prompt out)
    beside the pre-gate guesses recorded with it, on the same cases (targets
    at layers 1..7 of the same token)."""
    t = ec.Trace.load(ROUTING)
    rep = ec.evaluate(t, ["temporal"], horizons=[1], ks=[2], resamples=100)
    res = rep["results"][0]
    lay = res["per_layer"]
    n_same = sum(lay["n"][1:])
    temporal = sum(r * n for r, n in zip(lay["recall"][1:], lay["n"][1:])) / n_same
    pg = ec.guess_recall(ROUTING)
    assert pg["n"] == n_same  # the same cases: every token, target layers 1..7
    assert 0.25 < pg["recall"] <= 1.0 and 0.0 <= temporal <= 1.0
    print(f"\nrecall@2, horizon 1, targets at layers 1-7, n = {n_same}: "
          f"pre-gate {pg['recall']:.3f}, temporal {temporal:.3f}")


@pytest.mark.parametrize("policy", ["predict", "gated", "hybrid"])
def test_pregate_hints_reach_the_loader(policy, reference):
    """pregate=True: after each layer's observe the next layer's pre-gate
    guess goes to ec_loader_hint; with the predictor "hint" (unfitted: hints
    alone, uniform elsewhere) the prefetches follow those guesses."""
    model = load()
    kw = dict(transfer_ms=1.0, compute_ms=0.1) if policy != "predict" else {}
    off = hf.offload_experts(model, policy=policy, pregate=True, backend="cpu",
                             predictor=ec.Predictor("hint"), **kw)
    seq, logits = generate(model, reference["ids"])
    s = off.stats()
    off.close()
    assert torch.equal(seq, reference["seq"])
    assert (logits - reference["logits"]).abs().max().item() <= LOGIT_TOL
    # one hint per decode step and layer but the last, each accepted by the library
    assert s["pregate_hints"] == (NEW_TOKENS - 1) * 7 == s["hints"]
    if policy == "predict":
        # predict prefetches the hinted experts, and the guesses are good
        # enough (recall@2 above 0.25, test_pregate_recall_beside_temporal)
        # that some prefetches are used
        assert s["prefetches"] > 0 and s["prefetch_hits"] > 0


def test_pregate_hint_is_checked(reference):
    """A hint the library refuses (an expert out of range) is an error with
    its message, not a silent no-op."""
    model = load()
    off = hf.offload_experts(model, policy="predict", backend="cpu",
                             predictor=ec.Predictor("hint"))
    try:
        off.loader.observe(0, [0, 1])
        ids = (ctypes.c_int16 * 2)(1, 99)
        with pytest.raises(ec.Error) as e:
            off.loader._check(ec._lib.lib.ec_loader_hint(off.loader.handle, 1, ids, None, 2))
        assert e.value.status == 1 and str(e.value)
        assert off.loader.stats()["hints"] == 0
    finally:
        off.close()


@pytest.mark.parametrize("arch", ["qwen3_moe", "olmoe"])
def test_other_architectures(arch):
    """Qwen3-MoE (with a dense layer between MoE layers) and OLMoE, tiny and
    randomly initialised (seeded): identical greedy tokens through the loader."""
    torch.manual_seed(0)
    common = dict(vocab_size=256, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, num_experts=8, num_experts_per_tok=2,
                  pad_token_id=0, bos_token_id=None, eos_token_id=None)
    if arch == "qwen3_moe":
        cfg = transformers.Qwen3MoeConfig(intermediate_size=64, moe_intermediate_size=48,
                                          mlp_only_layers=[1], **common)
        cls = transformers.Qwen3MoeForCausalLM
    else:
        cfg = transformers.OlmoeConfig(intermediate_size=48, **common)
        cls = transformers.OlmoeForCausalLM
    ref = cls(cfg).eval()
    model = cls(cfg).eval()
    model.load_state_dict(ref.state_dict())
    ids = torch.tensor([list(b"expert offloading")])
    want, wl = generate(ref, ids)
    off = hf.offload_experts(model, cache_per_layer=3, policy="lru", backend="cpu")
    got, gl = generate(model, ids)
    s = off.stats()
    off.close()
    assert torch.equal(got, want)
    assert (gl - wl).abs().max().item() <= LOGIT_TOL
    n_moe = 3 if arch == "qwen3_moe" else 4
    assert s["observes"] == (NEW_TOKENS - 1) * n_moe
