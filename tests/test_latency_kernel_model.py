"""The learned kernel predictor on a simulated device whose unit latencies follow a known
function (cost_engine/latency/testing.py: per op overhead + max(FLOPs/peak, bytes/bandwidth)):
fitted through the real measurement paths, it must recover held-out networks (issue #11)."""

from __future__ import annotations

import json
import pickle
import random

import pytest

from cost_engine.latency import LatencySettings, MemoryCache, filter_by_latency, predict_many
from cost_engine.latency.kernel_model import KernelModel
from cost_engine.latency.kernel_predict import (
    MissingKernelModel,
    fit_kernel_predictor,
    model_key,
    predict_with_kernels,
)
from cost_engine.latency.testing import FakeWorker
from cost_engine.spec import ConvSpec, LinearSpec, MBConvSpec, NetworkSpec, PoolSpec

pytest.importorskip("lightgbm")

STAGES = ((24, 2, "relu", 0.0), (40, 2, "relu", 0.25), (80, 2, "hardswish", 0.0), (112, 1, "hardswish", 0.25))


def ofa_like(rng: random.Random) -> NetworkSpec:
    stages = []
    for width, stride, act, se in STAGES:
        stages.append(tuple(MBConvSpec(out_channels=width, expand_ratio=float(rng.choice((3, 4, 6))),
                                       kernel_size=rng.choice((3, 5, 7)), stride=stride if i == 0 else 1,
                                       se_ratio=se, act=act) for i in range(rng.choice((2, 3, 4)))))
    return NetworkSpec(stem=(ConvSpec(out_channels=16, stride=2, act="hardswish"),), stages=tuple(stages),
                       head=(ConvSpec(out_channels=480, kernel_size=1, act="hardswish"),
                             PoolSpec(mode="global_avg", flatten=True), LinearSpec(out_features=100)),
                       resolution=rng.choice((128, 144, 160)))


SETTINGS = LatencySettings(threads=1)


@pytest.fixture(scope="module")
def fitted():
    rng = random.Random(3)
    train = [ofa_like(rng) for _ in range(24)]
    held_out = [ofa_like(rng) for _ in range(20)]
    cache = MemoryCache()
    with FakeWorker(jitter=0.002) as fake:
        steps = []
        model = fit_kernel_predictor(train, SETTINGS, cache=cache, max_units=250, networks=10, unit_sessions=1,
                                     network_sessions=1, progress=lambda *a: steps.append(a))
        sessions_after_fit = fake.sessions
        truth = [fake.latency_ms(c.to_dict(), [1, 3, c.resolution, c.resolution]) for c in held_out]
        yield {"model": model, "cache": cache, "fake": fake, "held_out": held_out, "truth": truth,
               "sessions_after_fit": sessions_after_fit, "steps": steps}


def test_the_fit_recovers_held_out_networks(fitted):
    preds = predict_many(fitted["held_out"], SETTINGS, method="kernel", cache=fitted["cache"])
    errors = [p.median_ms / t - 1 for p, t in zip(preds, fitted["truth"], strict=True)]
    # the simulated unit latencies are a smooth known function: the model must find it (5% stated)
    assert max(abs(e) for e in errors) < 0.05, errors
    inside = sum(p.ci_low_ms <= t <= p.ci_high_ms for p, t in zip(preds, fitted["truth"], strict=True))
    assert inside >= 0.8 * len(preds), (inside, errors)
    p = preds[0]
    assert p.source == "predicted" and p.method == "kernel" and p.runs == 0
    assert p.ci_low_ms < p.p10_ms < p.median_ms < p.p90_ms < p.ci_high_ms
    assert p.details["interval_90"] == [p.ci_low_ms, p.ci_high_ms]


def test_the_fit_reports_its_budget_and_progress(fitted):
    stats = fitted["model"].stats
    assert stats["unit_measurements"] == 250 and stats["network_measurements"] == 10
    assert stats["distinct_units_in_space"] > 250  # a budget smaller than the space: sampled
    assert stats["profiling_s"] > 0 and not stats["stopped_by_budget"]
    # the networks first (their cost is known before the units begin), then the units
    assert fitted["steps"][0] == ("networks", 0, 10) and ("networks", 10, 10) in fitted["steps"]
    assert ("units", 0, 250) in fitted["steps"] and fitted["steps"][-1] == ("units", 250, 250)


def test_the_fit_resamples_near_its_worst_units(fitted):
    """nn-Meter's adaptive sampling: after a first fit on 60% of the budget, each round predicts
    a validation chunk before timing it, then times the untimed units nearest the worst ones."""
    rounds = fitted["model"].stats["adaptive_rounds"]
    assert rounds, "no adaptive round ran"
    assert sum(r["validation_units"] + r["resampled"] for r in rounds) == 250 - 150
    assert all(r["resampled"] > 0 for r in rounds[:-1])
    assert all(r["median_abs_log_error"] is not None and r["median_abs_log_error"] >= 0 for r in rounds)
    assert all(set(r["worst_types"]) <= set(fitted["model"].stats["unit_counts"]) for r in rounds)


def test_a_prediction_needs_no_measurement(fitted):
    fake = fitted["fake"]
    before = fake.sessions
    assert before == fitted["sessions_after_fit"]
    rng = random.Random(99)
    fresh = [ofa_like(rng) for _ in range(5)]  # networks (and units) never timed
    predict_with_kernels(fresh, SETTINGS, cache=fitted["cache"])
    assert fake.sessions == before


def test_the_stored_model_is_data_and_loads_without_pickle(fitted, monkeypatch):
    cache = fitted["cache"]
    from cost_engine.latency.fingerprint import fingerprint

    resolved = SETTINGS.resolved()
    stored = cache.get(model_key(resolved, fingerprint(resolved.device, resolved.threads)))
    text = json.dumps(stored)  # plain JSON: LightGBM's text format inside
    assert "tree" in text.lower()

    def refuse(*a, **k):
        raise AssertionError("unpickling is not allowed")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    model = KernelModel.from_dict(json.loads(text))
    from cost_engine.latency.kernel_predict import _kernels

    kernels, _ = _kernels(fitted["held_out"][0], SETTINGS)
    assert model.predict_network(kernels)["median_ms"] == pytest.approx(
        fitted["model"].predict_network(kernels)["median_ms"], rel=1e-12)
    with pytest.raises(ValueError, match="fitted by another version"):
        KernelModel.from_dict({**json.loads(text), "features": ["batch"]})


def test_no_fitted_model_fails_naming_the_fix():
    with pytest.raises(MissingKernelModel, match="latency fit"):
        predict_many([ofa_like(random.Random(0))], SETTINGS, method="kernel", cache=MemoryCache())


def test_the_budget_filter_decides_by_the_interval(fitted):
    """Only candidates whose interval straddles the limit are measured, and the decisions agree
    with the simulated truth."""
    rng = random.Random(5)
    pool = [ofa_like(rng) for _ in range(30)]
    fake = fitted["fake"]
    truth = [fake.latency_ms(c.to_dict(), [1, 3, c.resolution, c.resolution]) for c in pool]
    limit = sorted(truth)[len(truth) // 2]
    out = filter_by_latency(pool, limit, SETTINGS, cache=fitted["cache"], method="kernel", sessions=1,
                            time_cap_s=0.2)
    assert out.measured <= len(pool) // 3, out.measured
    for d in out.decisions:
        if d["reason"] == "predicted":
            assert d["feasible"] == (truth[d["index"]] <= limit)


def test_a_refit_is_served_instead_of_the_first_fit() -> None:
    """Cache rows are immutable: each fit is a new generation under the model's key, and
    predictions use the newest (this process finds it with one lookup)."""
    from cost_engine.latency.kernel_predict import load_model

    rng = random.Random(11)
    space = [ofa_like(rng) for _ in range(12)]
    cache = MemoryCache()
    with FakeWorker(jitter=0.002):
        small = fit_kernel_predictor(space, SETTINGS, cache=cache, max_units=40, networks=4, unit_sessions=1,
                                     network_sessions=1)
        first = predict_with_kernels(space[:3], SETTINGS, cache=cache)
        big = fit_kernel_predictor(space, SETTINGS, cache=cache, max_units=160, networks=6, unit_sessions=1,
                                   network_sessions=1)
    resolved = SETTINGS.resolved()
    from cost_engine.latency.fingerprint import fingerprint

    served = load_model(cache, model_key(resolved, fingerprint(resolved.device, resolved.threads)))
    assert (small.stats["generation"], big.stats["generation"]) == (0, 1)
    assert served is not None and served.stats["units"] == 160 and served.stats["networks"] == 6
    second = predict_with_kernels(space[:3], SETTINGS, cache=cache)
    assert [p.details["model"]["units"] for p in first] == [40] * 3
    assert [p.details["model"]["units"] for p in second] == [160] * 3


def test_the_overhead_term_learns_a_scale_per_unit_type() -> None:
    """Networks whose measured latency weighs their types' unit sums differently (a squeeze-excite
    timed alone is slower than inside a network): the per-type scales find the weights; with too
    few networks the fit keeps one common scale."""
    from cost_engine.latency.kernel_model import _overhead_fit, _overhead_predict, _typed_overhead_fit

    rng = random.Random(5)
    nets = [{"conv": rng.uniform(2, 20), "se": rng.uniform(0.5, 5), "dwconv": rng.uniform(1, 8)} for _ in range(16)]
    launches = [rng.randint(50, 300) for _ in nets]
    measured = [0.9 * d["conv"] + 0.4 * d["se"] + 1.2 * d["dwconv"] + 0.01 * n + 0.5
                for d, n in zip(nets, launches, strict=True)]
    fit = _typed_overhead_fit(nets, launches, measured)
    scales = fit[1]
    # shrunk towards the common scale (the ridge), but in the true order and far apart
    assert scales["se"] < 0.6 < scales["conv"] < 1.0 < scales["dwconv"]
    errors = [_overhead_predict(fit, d, n) / m - 1 for d, n, m in zip(nets, launches, measured, strict=True)]
    s1, o1, c1 = _overhead_fit([sum(d.values()) for d in nets], launches, measured)  # one common scale
    common = [_overhead_predict((s1, {}, o1, c1), d, n) / m - 1 for d, n, m in zip(nets, launches, measured,
                                                                                    strict=True)]
    assert max(map(abs, errors)) < 0.5 * max(map(abs, common))
    few = _typed_overhead_fit(nets[:6], launches[:6], measured[:6])
    assert few[1] == {}  # 6 networks cannot carry 5 terms twice over: one common scale


def test_predictions_follow_the_anchor_as_served_measurements_do() -> None:
    """Measurements are served as ratio x the reference's anchor *now*; when the anchor settles
    lower (quieter sessions join its log), a measured network is served faster, and the kernel
    model's predictions, fitted on the older milliseconds, move with it."""
    from cost_engine.latency.anchor import BOOK
    from cost_engine.latency.anchor import estimate as anchor_estimate
    from cost_engine.latency.measure import measure_many

    rng = random.Random(13)
    space = [ofa_like(rng) for _ in range(10)]
    cache = MemoryCache()
    with FakeWorker(jitter=0.002):
        model = fit_kernel_predictor(space, SETTINGS, cache=cache, max_units=60, networks=4, unit_sessions=1,
                                     network_sessions=1)
        before_pred = predict_with_kernels(space[:2], SETTINGS, cache=cache)
        before_meas = measure_many(space[:2], SETTINGS, cache=cache, sessions=1)
    anchors = model.stats["anchors"]
    assert anchors and all(at_fit > 0 and weight > 0 for at_fit, weight in anchors.values())
    assert before_pred[0].details["anchor_factor"] == pytest.approx(1.0, abs=0.02)
    for key in anchors:  # quieter sessions: the 25% quantile falls to about 0.8 of it
        now = anchor_estimate(BOOK.values(cache, key, fresh=True))
        BOOK.append(cache, key, [0.8 * now] * 200, {"test": True})
        BOOK.values(cache, key, fresh=True)
    after_meas = [r for r in measure_many(space[:2], SETTINGS, cache=cache, sessions=1)]
    after_pred = predict_with_kernels(space[:2], SETTINGS, cache=cache)
    for bp, bm, ap, am in zip(before_pred, before_meas, after_pred, after_meas, strict=True):
        assert am.cached and am.median_ms == pytest.approx(0.8 * bm.median_ms, rel=0.03)
        assert ap.median_ms / am.median_ms == pytest.approx(bp.median_ms / bm.median_ms, rel=0.03)
        assert ap.details["anchor_factor"] == pytest.approx(0.8, rel=0.03)


def test_the_interval_is_narrow_where_the_model_is_good_and_wide_where_it_is_not() -> None:
    """Two make-ups: MBConv networks the unit sum explains exactly, ResNets whose measured time is
    +-8% off it. With enough measured networks, a network's 90% interval is the largest error
    of the 9 measured networks nearest to it in make-up (neighbours.py), not one width for all;
    it is stored as data and survives the round trip, and a malformed table falls back to the
    one interval over all networks."""
    from cost_engine.families.sampled import ofa_candidate, resnet_candidate
    from cost_engine.latency.kernel_model import LOCAL_MIN, fit_kernel_model
    from cost_engine.latency.kernel_predict import _kernels

    def unit_ms(k) -> float:
        return 1e-8 * k.features["flops"] + 1e-9 * (k.features["bytes_read"] + k.features["bytes_written"]) + 0.01

    rng = random.Random(21)
    mb = [ofa_candidate(rng) for _ in range(12)]
    res = [resnet_candidate(rng) for _ in range(12)]
    units: dict = {}
    nets = []
    for i, c in enumerate(mb + res):
        ks = _kernels(c, SETTINGS)[0]
        units.update({k.identity(): (k, unit_ms(k)) for k in ks})
        off = 0.0 if i < len(mb) else (0.08 if i % 2 else -0.08)
        nets.append((ks, sum(unit_ms(k) for k in ks) * (1 + off)))
    assert len(nets) >= LOCAL_MIN
    model = fit_kernel_model(list(units.values()), nets, rounds=60)
    fresh_mb = [_kernels(ofa_candidate(rng), SETTINGS)[0] for _ in range(4)]
    fresh_res = [_kernels(resnet_candidate(rng), SETTINGS)[0] for _ in range(4)]
    q_mb = [model.predict_network(ks)["log_q90"] for ks in fresh_mb]
    q_res = [model.predict_network(ks)["log_q90"] for ks in fresh_res]
    assert max(q_mb) < 0.5 * min(q_res), (q_mb, q_res)
    assert min(q_res) > 0.08 > max(q_mb)  # the ResNets are 8% off: their interval covers that
    stored = KernelModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert [stored.predict_network(ks)["log_q90"] for ks in fresh_mb] == pytest.approx(q_mb, rel=1e-9)
    broken = KernelModel.from_dict({**model.to_dict(), "local": {"types": ["conv"], "x": [[1.0]], "r": "x"}})
    assert broken.local == {}
    whole = broken.predict_network(fresh_mb[0])
    assert whole["log_q90"] >= broken.log_q90 > max(q_mb)
