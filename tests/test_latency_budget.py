"""Latency budgets: the filter gives the feasible set that measuring everything gives, while
measuring only the candidates too close to the limit to decide."""

from __future__ import annotations

import math
import statistics
from unittest import mock

import pytest

from cost_engine import analyze
from cost_engine.latency import LatencySettings, MemoryCache, filter_by_latency, measure_many
from cost_engine.latency.block_table import BLOCK_SESSIONS
from cost_engine.latency.testing import FakeWorker
from cost_engine.spec import ConvSpec, MBConvSpec, NetworkSpec, PoolSpec, SpecError

S = LatencySettings(threads=1)


def space() -> list[NetworkSpec]:
    nets = []
    for width in (8, 16, 24, 32, 48):
        for depth in (1, 2, 3):
            stage = tuple(MBConvSpec(out_channels=width, stride=2 if i == 0 else 1) for i in range(depth))
            nets.append(NetworkSpec(stem=(ConvSpec(out_channels=16, stride=2),), stages=(stage,),
                                    head=(PoolSpec(mode="global_avg", flatten=True),), resolution=48))
    return nets


def test_filter_matches_measuring_everything_and_measures_only_close_calls():
    nets = space()
    cache = MemoryCache()
    with FakeWorker(scale=1.3) as fake:  # the device is 30% slower than its blocks suggest
        truth = measure_many(nets, S, cache=MemoryCache(), sessions=1)
        limit = statistics.median(t.median_ms for t in truth)
        expected = [i for i, t in enumerate(truth) if t.median_ms <= limit]
        sessions_before = fake.sessions
        result = filter_by_latency(nets, limit, S, cache=cache, sessions=1)
    assert result.feasible == expected
    assert 0 < result.measurements < len(nets)
    assert result.measured + result.predicted == len(nets)
    # the blocks in their sessions, then every close call together in one session
    assert fake.sessions - sessions_before == BLOCK_SESSIONS + 1
    for d in result.decisions:
        assert d["reason"] in ("predicted", "measured")
        if d["reason"] == "measured":
            assert d["latency"]["source"] == "measured"


def test_measure_all_times_every_survivor_and_analytic_limits_come_first():
    nets = space()
    macs_limit = sorted(analyze(n).macs for n in nets)[10]
    seen: list[int] = []

    def predictor(cs, s):
        seen.extend(id(c) for c in cs)
        raise AssertionError("measure_all must not predict")

    with FakeWorker():
        result = filter_by_latency(nets, 1e9, S, cache=MemoryCache(), measure_all=True, sessions=1,
                                   analytic=lambda c: analyze(c).macs <= macs_limit, predictor=predictor)
    survivors = [i for i, n in enumerate(nets) if analyze(n).macs <= macs_limit]
    assert result.feasible == survivors
    assert result.measurements == len(survivors) and result.analytic_rejected == len(nets) - len(survivors)
    assert all(d["reason"] == "analytic" for d in result.decisions if d["index"] not in survivors)
    assert not seen


def test_measurements_served_from_the_cache_are_not_counted_as_new():
    nets = space()[:4]
    cache = MemoryCache()
    with FakeWorker():
        first = filter_by_latency(nets, 1e9, S, cache=cache, measure_all=True, sessions=1)
        second = filter_by_latency(nets, 1e9, S, cache=cache, measure_all=True, sessions=1)
    assert first.measurements == 4 and second.measurements == 0 and second.measured == 4


def test_a_bad_limit_names_the_field():
    with pytest.raises(SpecError) as err:
        filter_by_latency(space(), -1.0, S)
    assert err.value.errors[0].path == "latency_limit_ms"


@mock.patch("cost_engine.latency.result.NOISY_REL_CI", float("inf"))  # a noisy result would be re-measured
def test_filter_on_this_cpu_matches_measuring_everything():
    """Real timings: a small space whose latencies are well apart, so noise cannot flip a verdict."""
    nets = [NetworkSpec(stem=(ConvSpec(out_channels=w, stride=2),), stages=((ConvSpec(out_channels=w),),),
                        head=(PoolSpec(mode="global_avg", flatten=True),), resolution=64) for w in (4, 16, 64, 192)]
    cache = MemoryCache()
    truth = measure_many(nets, S, cache=cache, sessions=1, time_cap_s=0.1)
    ms = [t.median_ms for t in truth]
    print("measured ms:", [round(m, 3) for m in ms])
    limit = (ms[1] * ms[2]) ** 0.5  # between the 2nd and 3rd candidate
    expected = [i for i, m in enumerate(ms) if m <= limit]
    result = filter_by_latency(nets, limit, S, cache=cache, sessions=1, time_cap_s=0.1)
    print("decisions:", [(d["index"], d["reason"], d["feasible"]) for d in result.decisions])
    assert result.feasible == expected == [0, 1]
    assert result.measurements == 0  # whatever it had to measure was already in the cache


def _two_make_ups(n: int = 400, seed: int = 1):
    """Candidates of two make-ups whose predictions are off by a shared factor each (MBConv
    networks 6% high, dense ones 6% low, +-0.2% apart), within a global interval of +-12%."""
    import math
    import random

    from cost_engine.latency.result import LatencyResult, predicted

    rng = random.Random(seed)
    truth: dict[str, float] = {}
    preds: dict[str, LatencyResult] = {}
    for i in range(n):
        name = f"c{i}"
        mobile = i % 2 == 0
        truth[name] = rng.uniform(5.0, 20.0)
        med = truth[name] * math.exp((0.06 if mobile else -0.06) + rng.gauss(0.0, 0.002))
        shares = {"dwconv": 0.4, "pwconv": 0.6} if mobile else {"conv": 0.8, "pwconv": 0.2}
        preds[name] = predicted(med, med * 0.06, "kernel", details={
            "log_sigma": 0.06, "type_shares": shares, "launches": 200 if mobile else 80})
    calls: list[list[str]] = []

    def predictor(cs, s):
        return [preds[c] for c in cs]

    def measurer(cs, s):
        calls.append(list(cs))
        return [LatencyResult(median_ms=truth[c], p10_ms=truth[c], p90_ms=truth[c], cv=0.0, runs=10,
                              source="measured", method="paired", uncertainty_ms=0.0) for c in cs]

    return list(truth), truth, predictor, measurer, calls


def test_a_probe_of_the_close_calls_decides_the_others_it_can():
    """Many close calls whose errors are shared by make-up: a probe of them (the closest to the
    limit) is measured first, corrects the others by the errors of their nearest probes, and
    decides those now clear of the limit ("calibrated"); the rest are measured in rounds. The
    verdicts are those of measuring everything, with a fraction of the measurements."""
    from cost_engine.latency.probe import PROBE, ROUND

    names, truth, predictor, measurer, calls = _two_make_ups(800)
    limit = statistics.median(truth.values())
    everything = [i for i, c in enumerate(names) if truth[c] <= limit]
    plain = filter_by_latency(names, limit, S, predictor=predictor, measurer=measurer, probe=0)
    close = plain.measured
    assert close > 2 * PROBE and len(calls) == 1  # probe=0: every close call, in one batch
    plain_close = calls[0]
    calls.clear()
    out = filter_by_latency(names, limit, S, predictor=predictor, measurer=measurer)
    assert out.feasible == everything == plain.feasible
    assert len(calls[0]) == PROBE and all(len(c) <= ROUND for c in calls[1:-1])
    # the probe is the close calls nearest the limit (in units of their interval): measured anyway
    first = set(calls[0])
    gap = {c: abs(math.log(predictor([c], S)[0].median_ms / limit)) for c in plain_close}
    assert max(gap[c] for c in first) <= min(gap[c] for c in plain_close if c not in first)
    reasons = [d["reason"] for d in out.decisions]
    calibrated = reasons.count("calibrated")
    assert calibrated > close // 2, (calibrated, close)
    assert out.measured == sum(map(len, calls)) == reasons.count("measured") < close // 2
    assert out.measured <= PROBE + 2 * ROUND
    assert out.measured + out.predicted == len(names)
    d = next(d for d in out.decisions if d["reason"] == "calibrated")
    cal = d["latency"]["details"]["calibrated"]
    assert cal["probes"] >= PROBE and cal["log_half_width"] < 0.03
    true_ms = truth[names[d["index"]]]
    assert abs(cal["predicted_ms"] / true_ms - 1) > 0.05  # the prediction was 6% off ...
    assert abs(d["latency"]["median_ms"] / true_ms - 1) < 0.01  # ... the shared error is corrected
    assert d["latency"]["ci_low_ms"] < d["latency"]["median_ms"] < d["latency"]["ci_high_ms"]
    assert (d["latency"]["median_ms"] <= limit) == d["feasible"]


def test_few_close_calls_are_all_measured_and_a_bad_probe_names_the_field():
    from cost_engine.latency.probe import PROBE

    names, truth, predictor, measurer, calls = _two_make_ups(n=60)
    limit = statistics.median(truth.values())
    out = filter_by_latency(names, limit, S, predictor=predictor, measurer=measurer)
    assert out.measured < 2 * PROBE and len(calls) <= 1  # too few for a probe to pay: one batch
    assert "calibrated" not in {d["reason"] for d in out.decisions}
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(SpecError) as err:
            filter_by_latency(names, limit, S, predictor=predictor, measurer=measurer, probe=bad)
        assert err.value.errors[0].path == "probe"


def test_the_probe_interval_is_the_conformal_quantile_of_its_judges_errors():
    """The 90% claim is the ceil((n + 1) * 0.9)-th smallest of n exchangeable errors: the 18th of
    19, the 9th (largest) of 9; fewer than 9 cannot support it, so the largest stands."""
    from cost_engine.latency.probe import conformal_quantile

    errors = [i / 100 for i in range(1, 20)]  # 0.01 .. 0.19
    assert conformal_quantile(errors) == 0.18
    assert conformal_quantile(errors[:9]) == 0.09
    assert conformal_quantile(errors[:4]) == 0.04
    assert conformal_quantile([]) == math.inf
