"""The Loader over torch tensors on the cpu backend: views of the slots hold the
experts' bytes, the policy's counters move, and errors carry the library's
message."""

import pytest

import expertcast as ec
from conftest import need

torch = need("torch")


@pytest.fixture()
def setup():
    g = torch.Generator().manual_seed(0)
    weights = [[torch.randn(5, 7, generator=g) for _ in range(4)] for _ in range(3)]
    be = ec.Backend("cpu")
    store = ec.Store.from_tensors(be, weights)
    yield be, store, weights
    be.close()


def test_backend_names():
    be = ec.Backend("cpu")
    assert be.name == "cpu" and be.device_name
    be.close()
    with pytest.raises(ec.NotFoundError):
        ec.Backend("tpu")


def test_store_holds_the_tensors(setup):
    be, store, weights = setup
    assert store.expert_bytes == 5 * 7 * 4
    for layer in range(3):
        for e in range(4):
            assert torch.equal(store.host_view(layer, e), weights[layer][e])
    with pytest.raises(IndexError):
        store.host_view(3, 0)
    with pytest.raises(ValueError):
        store.set(0, 0, torch.zeros(5, 6))


def test_acquire_returns_the_expert(setup):
    be, store, weights = setup
    with ec.Loader(store, k=2, cache_per_layer=2, policy="lru") as ld:
        for token in range(3):
            for layer in range(3):
                ids = [(token + layer) % 4, (token + layer + 1) % 4]
                ld.observe(layer, ids)
                for e in ids:
                    w = ld.acquire(layer, e)
                    assert w.device.type == "cpu" and w.shape == (5, 7)
                    # a view of the slot, not the store's buffer
                    assert w.data_ptr() != store.host_view(layer, e).data_ptr()
                    assert torch.equal(w, weights[layer][e])
                for e in ids:
                    ld.release(layer, e)
        s = ld.stats()
    assert s["observes"] == 9 and s["acquires"] == 18
    assert s["hits"] + s["inflight_hits"] + s["misses"] == 18
    # with 2 slots per layer and a window sliding by one expert per token,
    # every token after the first finds one of its two experts cached
    assert s["hits"] + s["inflight_hits"] == 6
    assert s["bytes"] == s["loads"] * store.expert_bytes


def test_errors_carry_the_message(setup):
    be, store, _ = setup
    with pytest.raises(ec.NotFoundError, match="warp"):
        ec.Loader(store, k=2, policy="warp")
    with pytest.raises(ec.Error, match="predict"):
        ec.Loader(store, k=2, policy="predict")  # needs a predictor
    with ec.Loader(store, k=2, cache_per_layer=2) as ld:
        with pytest.raises(ValueError):
            ld.observe(0, [1])
        ld.observe(0, [0, 1])
        with pytest.raises(ec.Error) as e:
            ld.acquire(0, 3)  # not observed at this layer
        assert e.value.status and str(e.value)


def test_cuda_backend_absent_is_an_error():
    try:
        be = ec.Backend("cuda")
    except ec.Error as e:
        assert e.status in (7, 8)  # unsupported build / no device
        assert str(e)
    else:
        assert be.name == "cuda"
        be.close()


def test_hybrid_runs_misses_on_the_host(setup):
    be, store, weights = setup
    recs = [{"layer": layer, "experts": [(t + layer) % 4, (t + layer + 1) % 4], "token_idx": t}
            for t in range(6) for layer in range(3)]
    pred = ec.Predictor("prior").fit(ec.Trace.from_records(recs))
    with ec.Loader(store, k=2, cache_per_layer=2, policy="hybrid", predictor=pred,
                   transfer_ms=1.0, compute_ms=0.1, host_ms=0.1, host_act_ms=0.01) as ld:
        where = {}
        for layer in range(3):
            ids = [layer, layer + 1]
            ld.observe(layer, ids)
            for e in ids:
                w, view = ld.acquire_where(layer, e)
                where[layer, e] = w
                assert torch.equal(view, weights[layer][e])
                if w == "host":  # the store's own buffer, no slot
                    assert view.data_ptr() == store.host_view(layer, e).data_ptr()
                    with pytest.raises(ec.Error) as err:
                        ld.acquire(layer, e)  # a runtime unaware of hosts is refused
                    assert err.value.status == 6
            for e in ids:
                ld.release(layer, e)
        s = ld.stats()
    # a cold cache and a host expert cheaper than a copy: misses run on the host
    assert "host" in where.values()
    assert s["host_acquires"] == s["host_runs"] == list(where.values()).count("host")
    assert s["demand_copies"] + s["host_runs"] == s["misses"] == 6
