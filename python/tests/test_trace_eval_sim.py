"""Traces, predictors, eval and simulate through the package, checked against
the CLI's own JSON on the same inputs."""

import json
import math
import os
import subprocess

import pytest

import expertcast as ec
from conftest import SAMPLE


@pytest.fixture(scope="module")
def sample():
    return ec.Trace.load(SAMPLE)


def test_load_sample(sample):
    s = sample.summary()
    assert (s["layers"], s["experts"], s["k"]) == (32, 8, 2)
    assert s["sequences"] == 2 and s["tokens"] == 48
    first = sample.experts(0, 0)
    assert len(first) == 2 and all(0 <= e < 8 for e in first)
    assert len(set(first)) == 2
    with open(SAMPLE) as f:
        rec = json.loads(f.readline())
    assert rec["layer"] == 0 and sample.experts(0, 0) == rec["experts"]


def test_bad_trace_names_file_line_field(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"layer": 0, "experts": [1, 2], "token_idx": 0}\n'
                 '{"layer": 1, "experts": [1, "x"], "token_idx": 0}\n')
    with pytest.raises(ec.ParseError) as e:
        ec.Trace.load(p)
    msg = str(e.value)
    assert "bad.jsonl:2" in msg and "experts" in msg
    assert e.value.status == 4


def test_bound_checked(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"layer": 0, "experts": [1, 9], "token_idx": 0}\n')
    with pytest.raises(ec.Error):
        ec.Trace.load(p, n_experts=8)


def test_predictor_fit_save_load(sample, tmp_path):
    p = ec.Predictor("temporal", tokens_back=16).fit(sample, sequences=[1])
    assert p.fitted and p.name == "temporal" and p.history_depth == 16
    path = tmp_path / "p.json"
    p.save(path)
    q = ec.Predictor.load(path)
    assert q.name == "temporal" and q.fitted
    with pytest.raises(ec.NotFoundError):
        ec.Predictor("no-such-predictor")
    with pytest.raises(TypeError):
        ec.Predictor("prior", bogus=1)


def _cli_json(cli, args, tmp_path):
    out = tmp_path / "out.json"
    subprocess.run([cli, *args, "--json", str(out)], check=True, capture_output=True)
    return json.loads(out.read_text())


WALL_CLOCK = {"fit_ms"}  # host timings: differ between any two runs


def _same(a, b, path="$"):
    """Equal JSON values, floats to 1e-12 relative (the CLI prints %.17g or repr)."""
    if path.rsplit(".", 1)[-1] in WALL_CLOCK:
        assert (a is None) == (b is None), path
    elif isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None, path
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15), (path, a, b)
    elif isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


def test_evaluate_matches_cli(sample, cli, tmp_path):
    got = ec.evaluate(sample, ["prior", "temporal"], horizons=[1, 2], resamples=200)
    want = _cli_json(cli, ["eval", SAMPLE, "--predictor", "prior,temporal", "--horizon", "1,2",
                           "--resamples", "200"], tmp_path)
    _same(got, want)
    assert [r["predictor"] for r in got["results"]] == ["prior", "prior", "temporal", "temporal"]


def test_evaluate_errors(sample):
    with pytest.raises(ec.NotFoundError, match="nope"):
        ec.evaluate(sample, ["nope"])
    with pytest.raises(ec.Error, match="horizon"):
        ec.evaluate(sample, ["prior"], horizons=[99])


def test_simulate_matches_cli(sample, cli, tmp_path):
    got = ec.simulate(sample, "mixtral-8x7b-int4", "rtx4090-pcie4", cache_experts=4)
    want = _cli_json(cli, ["simulate", SAMPLE, "--model", "mixtral-8x7b-int4", "--hardware",
                           "rtx4090-pcie4", "--cache-experts", "4"], tmp_path)
    _same(got, want)
    pol = [r["policy"] for r in got["results"]]
    assert pol == ["on-demand", "lru", "lfu", "predict", "gated", "oracle", "resident", "hybrid"]
    assert got["host"] is not None and got["timing"]["host_lanes"] > 0
    # the comparisons are the library's: lru against itself is 1, and gap_closed
    # is (lru - tpot) / (lru - oracle) wherever lru > oracle
    rows = {r["policy"]: r for r in got["results"]}
    lru, orc = rows["lru"]["tpot_ms"], rows["oracle"]["tpot_ms"]
    assert rows["lru"]["vs_lru"] == 1.0
    for r in got["results"]:
        if lru > orc:
            assert r["gap_closed"] == pytest.approx((lru - r["tpot_ms"]) / (lru - orc))


def test_simulate_global_sized_matches_cli(sample, cli, tmp_path):
    got = ec.simulate(sample, "mixtral-8x7b-int4", "rtx4090-pcie4", cache_global=128,
                      cache_sized=True, policies=["lru", "gated", "hybrid"])
    want = _cli_json(cli, ["simulate", SAMPLE, "--model", "mixtral-8x7b-int4", "--hardware",
                           "rtx4090-pcie4", "--cache-sized", "128", "--policy",
                           "lru,gated,hybrid"], tmp_path)
    _same(got, want)
    # the lru reference runs at the same sized shape as the policies
    assert [r["cache_sized"] for r in got["results"]] == [True, True, True]


def test_simulate_what_if_evict_matches_cli(sample, cli, tmp_path):
    got = ec.simulate(sample, "mixtral-8x7b-int4", "rtx4090-pcie4", cache_experts=3,
                      policies=["lru", "gated", "hybrid"], horizon=2, what_if_evict=[1, "all"])
    want = _cli_json(cli, ["simulate", SAMPLE, "--model", "mixtral-8x7b-int4", "--hardware",
                           "rtx4090-pcie4", "--cache-experts", "3", "--policy", "lru,gated,hybrid",
                           "--horizon", "2", "--what-if-evict", "1,all"], tmp_path)
    _same(got, want)
    labels = [(r["policy"], r.get("what_if_evict_tokens")) for r in got["results"]]
    assert labels == [("lru", None), ("gated", None), ("gated", 1), ("gated", "all"),
                      ("hybrid", None), ("hybrid", 1), ("hybrid", "all")]
    assert "what_if_evict" in got
    with pytest.raises(ValueError, match="what_if_evict"):
        ec.simulate(sample, "mixtral-8x7b-int4", "rtx4090-pcie4", what_if_evict=[0])


def test_profile_lookup_is_the_librarys(tmp_path, monkeypatch):
    path, dtype = ec.sim.find_profile("mixtral-8x7b-int4", True)
    assert os.path.basename(path) == "mixtral-8x7b.json" and dtype == "int4"
    path, dtype = ec.sim.find_profile("rtx4090-pcie4", False)
    assert os.path.basename(path) == "rtx4090-pcie4.json" and dtype == ""
    # $EXPERTCAST_PROFILES comes first, as for the CLI
    (tmp_path / "rtx4090-pcie4.json").write_text("{}")
    monkeypatch.setenv("EXPERTCAST_PROFILES", str(tmp_path))
    assert ec.sim.find_profile("rtx4090-pcie4", False)[0] == str(tmp_path / "rtx4090-pcie4.json")
    with pytest.raises(ec.NotFoundError, match="no-such"):
        ec.sim.find_profile("no-such-hardware", False)


def test_simulate_errors(sample):
    with pytest.raises(ec.NotFoundError):
        ec.simulate(sample, "no-such-model", "rtx4090-pcie4")
    with pytest.raises(ec.NotFoundError):
        ec.simulate(sample, "mixtral-8x7b-int4", "rtx4090-pcie4", policies=["warp"])
    with pytest.raises(ValueError, match="layers"):
        ec.simulate(sample, "qwen3-30b-a3b", "rtx4090-pcie4")
