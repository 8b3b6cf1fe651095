"""Latency budgets: the filter gives the feasible set that measuring everything gives, while
measuring only the candidates too close to the limit to decide."""

from __future__ import annotations

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
