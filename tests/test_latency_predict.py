"""Latency prediction: roofline from the engine's own counts, the block lookup table, residuals."""

from __future__ import annotations

import math

import pytest

from cost_engine import analyze
from cost_engine.latency import (
    Calibration,
    LatencySettings,
    MemoryCache,
    Residual,
    calibrate,
    fit_residual,
    predict,
    predict_many,
)
from cost_engine.latency.block_table import BLOCK_SESSIONS, MissingBlocks
from cost_engine.latency.calibrate import MissingCalibration
from cost_engine.latency.predict import PRIOR_REL_UNCERTAINTY
from cost_engine.latency.roofline import roofline
from cost_engine.latency.testing import FakeWorker
from cost_engine.spec import ConvSpec, LinearSpec, MBConvSpec, NetworkSpec, PoolSpec, SpecError

S = LatencySettings(threads=1)


def net(width: int, depth: int = 2, resolution: int = 32, expand: float = 4.0) -> NetworkSpec:
    stage = tuple(MBConvSpec(out_channels=width, expand_ratio=expand, stride=2 if i == 0 else 1)
                  for i in range(depth))
    return NetworkSpec(stem=(ConvSpec(out_channels=16, stride=2),), stages=(stage,),
                       head=(PoolSpec(mode="global_avg", flatten=True), LinearSpec(out_features=10)),
                       resolution=resolution)


def cal(peak: float, bandwidth: float, overhead: float = 0.0) -> Calibration:
    return Calibration("cpu", "float32", 1, peak, bandwidth, bandwidth, overhead)


def test_roofline_is_built_from_the_engine_counts():
    spec = net(24)
    report = analyze(spec)
    shape = report.input_shape
    # compute-bound everywhere (infinite bandwidth): FLOPs / peak, the report's FLOPs exactly
    compute = roofline(spec, shape, cal(1e9, 1e300), "float32")
    assert compute.total_s == pytest.approx(report.flops / 1e9, rel=1e-9)
    # memory-bound everywhere: the report's unfused memory access / bandwidth
    memory = roofline(spec, shape, cal(1e300, 1e9), "float32")
    assert memory.total_s == pytest.approx(report.memory_access_bytes / 1e9, rel=1e-9)
    half = roofline(spec, shape, cal(1e300, 1e9), "float16")
    assert half.total_s == pytest.approx(memory.total_s / 2, rel=1e-9)
    # overhead: one per op that is not a view
    over = roofline(spec, shape, cal(1e300, 1e300, 1e-6), "float32")
    assert over.total_s == pytest.approx(over.ops * 1e-6, rel=1e-3)
    # the bound is the larger ceiling per op, so the sum is at least each ceiling alone
    both = roofline(spec, shape, cal(1e9, 1e9), "float32")
    assert both.total_s >= max(compute.total_s, memory.total_s)
    assert both.total_s <= compute.total_s + memory.total_s


def test_predictions_say_predicted_with_an_uncertainty():
    with FakeWorker():
        cache = MemoryCache()
        for method in ("roofline", "block_table", "flops"):
            p = predict(net(16), S, method=method, cache=cache)
            assert p.source == "predicted" and p.method == method and p.runs == 0
            assert p.uncertainty_ms == pytest.approx(PRIOR_REL_UNCERTAINTY[method] * p.median_ms, rel=0.05)
            assert p.p10_ms < p.median_ms < p.p90_ms
    with pytest.raises(SpecError) as err:
        predict(net(16), S, method="oracle", cache=cache)
    assert err.value.errors[0].path == "method"


def test_block_table_measures_each_distinct_block_once():
    cache = MemoryCache()
    with FakeWorker() as fake:
        a = net(16, depth=3)
        pa = predict(a, S, cache=cache)
        # stem, a stride-2 MBConv, one repeated MBConv (measured once for its 2 uses), pool, linear:
        # 5 distinct blocks, timed together in BLOCK_SESSIONS worker sessions
        assert fake.items == 5 * BLOCK_SESSIONS and fake.sessions == BLOCK_SESSIONS
        assert pa.details["blocks"] == 6
        predict(a, S, cache=cache)
        assert fake.items == 5 * BLOCK_SESSIONS  # served from the table
        # a deeper net reuses every block: nothing new to time
        predict(net(16, depth=4), S, cache=cache)
        assert fake.items == 5 * BLOCK_SESSIONS
        # a wider one shares the stem only (pool and linear see 24 channels, a new input shape)
        predict(net(24, depth=3), S, cache=cache)
        assert fake.items == (5 + 4) * BLOCK_SESSIONS
        with pytest.raises(MissingBlocks):
            predict(net(32), S, cache=cache, measure_missing=False)
        # the simulated device is additive, so the table sum is the network's own latency
        assert pa.median_ms == pytest.approx(fake.latency_ms(a.to_dict(), [1, 3, 32, 32]), rel=0.02)


def test_predicting_many_times_missing_blocks_in_shared_sessions():
    cache = MemoryCache()
    with FakeWorker() as fake:
        preds = predict_many([net(w, d) for w in (8, 16, 24) for d in (2, 3)], S, cache=cache)
        assert len(preds) == 6 and fake.sessions == BLOCK_SESSIONS
        depth2 = [p.median_ms for p in preds[0::2]]
        assert depth2 == sorted(depth2)  # wider is slower on the simulated device
        assert all(p.median_ms > q.median_ms for p, q in zip(preds[1::2], preds[0::2], strict=True))


def test_roofline_needs_a_calibration_and_caches_it():
    cache = MemoryCache()
    with pytest.raises(MissingCalibration):
        predict(net(8), S, method="roofline", cache=cache, measure_missing=False)
    with FakeWorker() as fake:
        predict(net(8), S, method="roofline", cache=cache)
        predict(net(16), S, method="roofline", cache=cache)
        assert fake.sessions == 1


def test_residual_fit_recovers_a_power_law():
    raw = [0.1, 0.3, 1.0, 3.0, 10.0]
    measured = [2.0 * r**0.8 for r in raw]
    r = Residual.fit("roofline", raw, measured)
    assert r.slope == pytest.approx(0.8) and math.exp(r.intercept) == pytest.approx(2.0)
    assert r.rel_sigma == pytest.approx(0.0, abs=1e-9)
    assert r.apply(5.0) == pytest.approx(2.0 * 5.0**0.8)
    two = Residual.fit("flops", [1.0, 2.0], [3.0, 6.0])
    assert two.slope == 1.0 and two.apply(4.0) == pytest.approx(12.0)


def test_fitted_residual_is_stored_and_used_with_its_uncertainty():
    cache = MemoryCache()
    fit_set = [net(w, d, r) for w, d, r in ((8, 2, 32), (16, 3, 48), (32, 2, 64), (48, 3, 32), (24, 4, 64))]
    held_out = [net(w, d, r) for w, d, r in ((12, 3, 40), (40, 2, 56))]
    with FakeWorker(scale=3.0) as fake:
        residual = fit_residual("flops", fit_set, S, cache=cache, sessions=1)
        assert residual.n == 5
        raw = predict_many(held_out, S, method="flops", cache=cache, residual=None)
        fixed = predict_many(held_out, S, method="flops", cache=cache)  # "auto": the stored fit
        truth = [fake.latency_ms(n.to_dict(), [1, 3, n.resolution, n.resolution]) for n in held_out]
    for r, f, t in zip(raw, fixed, truth, strict=True):
        assert f.details["residual"]["n"] == 5
        assert abs(f.median_ms - t) < abs(r.median_ms - t)
        assert f.uncertainty_ms == pytest.approx(residual.rel_sigma * f.median_ms)


def test_real_block_table_and_calibration_on_this_cpu():
    cache = MemoryCache()
    spec = NetworkSpec(stem=(ConvSpec(out_channels=8, stride=2),), stages=((ConvSpec(out_channels=8),) * 2,),
                       head=(PoolSpec(mode="global_avg", flatten=True),), resolution=32)
    p = predict(spec, S, cache=cache, block_sessions=1)
    assert p.source == "predicted" and p.median_ms > 0 and p.details["blocks"] == 4
    assert cache.kinds()["latency_block"] == 3
    c = calibrate("cpu", "float32", 1, cache=cache)
    assert c.peak_flops > 1e8 and c.bandwidth_bytes_per_s > 1e8 and 0 < c.overhead_s_per_op < 1e-2
    assert c.fingerprint["threads"] == 1
    assert calibrate("cpu", "float32", 1, cache=cache).cached


@pytest.mark.gpu
def test_cuda_calibration():
    c = calibrate("cuda:0", "float16", cache=MemoryCache())
    assert c.peak_flops > 1e12 and c.bandwidth_bytes_per_s > 1e11
