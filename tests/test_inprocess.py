"""``InProcessOracle``: the client API with no server, on a temporary SQLite cache.

Figures must equal ``cost_engine.analyze``; a repeated query must be a cache hit with identical
figures, also from a second oracle on the same file (the cache a server would share); every
failure must be a typed ``OracleError`` naming the field, never an engine exception.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import cost_engine
from cost_engine.families.fasternet import fasternet
from cost_engine.spec import ConvSpec, LinearSpec, MBConvSpec, NetworkSpec, PoolSpec, to_dict
from cost_oracle.client import (
    BlockCandidate,
    Budget,
    CostResult,
    FasterNetSpace,
    FilterOutcome,
    InProcessOracle,
    InvalidArgument,
    ItemError,
    Oracle,
    OracleError,
)

FIGURES = ("params", "buffers", "macs", "flops", "memory_access_bytes", "memory_access_bytes_fused",
           "peak_activation_bytes", "activations", "op_count")


def small_network(width: int = 16) -> NetworkSpec:
    return NetworkSpec(stem=(ConvSpec(width, kernel_size=3, stride=2, act="silu"),),
                       stages=((MBConvSpec(16, expand_ratio=1), MBConvSpec(24, kernel_size=5, stride=2)),),
                       head=(PoolSpec("global_avg", flatten=True), LinearSpec(10)), resolution=64)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cache.sqlite'}"


@pytest.fixture
def oracle(db_url: str):
    with InProcessOracle(db_url) as o:
        yield o


def test_is_an_oracle(oracle: InProcessOracle) -> None:
    assert isinstance(oracle, Oracle)


def test_cost_equals_the_engine_and_repeats_are_hits(oracle: InProcessOracle, db_url: str) -> None:
    first = oracle.cost("mobilenet_v2", resolution=96, batch_size=2)
    assert isinstance(first, CostResult)
    want = cost_engine.analyze("mobilenet_v2", resolution=96, batch_size=2).to_dict()
    got = first.to_dict()
    assert {k: got[k] for k in want} == want
    assert first.cache_hit is False and len(first.cache_key) == 64
    second = oracle.cost("mobilenet_v2", resolution=96, batch_size=2)
    assert second.cache_hit is True
    assert dataclasses.replace(second, cache_hit=False) == first
    # another oracle (another process would do the same) on the same cache file
    with InProcessOracle(db_url) as other:
        third = other.cost("mobilenet_v2", resolution=96, batch_size=2)
    assert third.cache_hit is True and third.macs == first.macs and third.cache_key == first.cache_key
    # a different context is a different entry
    assert oracle.cost("mobilenet_v2", resolution=96, batch_size=3).cache_hit is False


def test_candidate_forms_give_the_same_answer(oracle: InProcessOracle) -> None:
    net = small_network()
    by_spec = oracle.cost(net)
    by_dict = oracle.cost(to_dict(net))
    assert by_dict.cache_key == by_spec.cache_key and by_dict.cache_hit
    block = MBConvSpec(32, expand_ratio=4, stride=2)
    want = cost_engine.analyze(block, resolution=32, in_channels=16)
    for cand, kw in ((BlockCandidate(block, 16), {}), (block, {"in_channels": 16}),
                     ({**to_dict(block), "in_channels": 16}, {}), ({"spec": to_dict(block), "in_channels": 16}, {})):
        r = oracle.cost(cand, resolution=32, **kw)
        assert (r.macs, r.params, r.peak_activation_bytes) == (want.macs, want.params, want.peak_activation_bytes)
    assert oracle.cost({"name": "mobilenet_v2"}, resolution=64).macs == cost_engine.analyze("mobilenet_v2",
                                                                                          resolution=64).macs


def test_detail_levels(oracle: InProcessOracle) -> None:
    full = oracle.cost("fasternet_t0", resolution=64)
    assert full.by_module and full.by_op_type and full.views
    scalars = oracle.cost("fasternet_t0", resolution=64, detail="scalars")
    assert scalars.cache_hit and scalars.macs == full.macs
    assert not scalars.by_module and not scalars.by_op_type


@pytest.mark.parametrize(("candidate", "kw", "path"), [
    ("no_such_model", {}, "candidate.builtin"),
    (dataclasses.replace(small_network(), stages=((MBConvSpec(16, kernel_size=4),),)), {},
     "candidate.network.stages[0].blocks[0].mbconv.kernel_size"),
    ({**to_dict(small_network()), "colour": 1}, {}, "candidate.network.colour"),
    ({"kind": "mbconv", "out_channels": 0}, {"in_channels": 3, "resolution": 8}, "candidate.block.mbconv.out_channels"),
    (ConvSpec(8), {}, "candidate.in_channels"),
    (ConvSpec(8), {"in_channels": 3}, "context.resolution"),
    ("mobilenet_v2", {"batch_size": 0}, "context.batch_size"),
    ("mobilenet_v2", {"dtype": "int4"}, "context.dtype"),
    (42, {}, "candidate"),
])
def test_bad_input_is_invalid_argument_naming_the_field(oracle: InProcessOracle, candidate: object, kw: dict,
                                                        path: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        oracle.cost(candidate, **kw)
    assert info.value.code.value == "INVALID_ARGUMENT"
    assert path in [v.field for v in info.value.violations], info.value.violations
    assert isinstance(info.value, OracleError) and not isinstance(info.value, ValueError)


def test_cost_many_in_order_with_per_item_errors(oracle: InProcessOracle) -> None:
    bad_net = to_dict(small_network())
    bad_net["stages"][0][1]["kernel_size"] = 6
    cands = ["mobilenet_v2", "nope", small_network(), bad_net, small_network(24), ConvSpec(8)]
    seen: list[tuple[int, int]] = []
    out = oracle.cost_many(cands, resolution=64, chunk_size=2, progress=lambda d, t: seen.append((d, t)))
    assert len(out) == 6
    assert [isinstance(r, ItemError) for r in out] == [False, True, False, True, False, True]
    assert out[0].macs == cost_engine.analyze("mobilenet_v2", resolution=64).macs
    assert out[2].macs == cost_engine.analyze(small_network(), resolution=64).macs
    assert out[4].macs == cost_engine.analyze(small_network(24), resolution=64).macs
    assert [e.index for e in out if isinstance(e, ItemError)] == [1, 3, 5]
    assert out[1].violations[0].field == "candidates[1].builtin"
    assert out[3].violations[0].field == "candidates[3].network.stages[0].blocks[1].mbconv.kernel_size"
    assert out[5].violations[0].field == "candidates[5].in_channels"
    assert seen and seen[-1] == (6, 6)


def test_filter_matches_the_engine(oracle: InProcessOracle) -> None:
    names = ["mobilenet_v2", "fasternet_t0", "shufflenet_v2_x1_0", "resnet18", "regnet_x_400mf", "nope"]
    reports = {n: cost_engine.analyze(n, resolution=64) for n in names[:-1]}
    limit = sorted(r.macs for r in reports.values())[2]
    out = oracle.filter(names, Budget(max_macs=limit, max_peak_activation_bytes=10**9), pareto=["macs", "params"],
                        resolution=64, include_reports=True)
    assert isinstance(out, FilterOutcome)
    assert list(out.feasible) == [i for i, n in enumerate(names[:-1]) if reports[n].macs <= limit]
    assert len(out.results) == 6 and out.results[5].error is not None and not out.results[5].feasible
    assert out.results[5].error.violations[0].field == "candidates[5].builtin"
    for r in out.results[:5]:
        assert r.report is not None and r.report.macs == reports[names[r.index]].macs
        assert {c.name for c in r.constraints} == {"max_macs", "max_peak_activation_bytes"}
        assert r.violated == tuple(c.name for c in r.constraints if c.value > 0)
    assert out.pareto_front and set(out.pareto_front) <= set(out.feasible)
    with pytest.raises(InvalidArgument) as info:
        oracle.filter(names, Budget(max_macs=-1))
    assert info.value.violations[0].field == "budget.max_macs"
    with pytest.raises(InvalidArgument):
        oracle.filter(names, Budget(), pareto=["colour"])


def test_sweep_matches_the_family(oracle: InProcessOracle) -> None:
    space = FasterNetSpace(n_div=(2, 8), mlp_ratio=(1.0,), act=("gelu",), resolution=(64,))
    seen: list[tuple[int, int]] = []
    out = oracle.sweep(space, Budget(max_params=3_500_000), include_reports=True, include_specs=True,
                       progress=lambda d, t: seen.append((d, t)))
    assert out.total == 2 and [p.index for p in out.points] == [0, 1]
    for p in out.points:
        want = cost_engine.analyze(fasternet(40, (1, 2, 8, 2), n_div=int(p.params["n_div"]), mlp_ratio=1.0,
                                             act="gelu", resolution=64))
        assert p.result.report.macs == want.macs
        assert p.result.feasible == (want.params <= 3_500_000)
        assert p.spec is not None and p.spec["kind"] == "network"
    assert seen[-1] == (2, 2)
    with pytest.raises(InvalidArgument) as info:
        oracle.sweep(FasterNetSpace(n_div=(0,)))
    assert info.value.violations[0].field.startswith("fasternet.n_div")


def test_info_and_cache_stats(oracle: InProcessOracle) -> None:
    oracle.cost("mobilenet_v2", resolution=64)
    oracle.cost("mobilenet_v2", resolution=64)
    info = oracle.info()
    assert info.cost_model_version == cost_engine.COST_MODEL_VERSION
    assert "efficientnet_b0" in info.to_dict()["builtins"]
    stats = oracle.cache_stats()
    assert stats["hits"] >= 1 and stats["misses"] >= 1 and stats["entries"] >= 1


def test_latency_is_measured_once_then_served_from_the_cache(oracle: InProcessOracle) -> None:
    """A simulated worker stands in for the timing processes (the protocol has its own tests)."""
    from cost_engine.latency.testing import FakeWorker

    block = ConvSpec(16, stride=2)
    with FakeWorker() as fake:
        first = oracle.cost(block, in_channels=8, resolution=32, latency=True, device="cpu")
        sessions = fake.sessions
        second = oracle.cost(block, in_channels=8, resolution=32, latency="measure", device="cpu")
    assert first.latency is not None and first.latency.source == "measured" and first.latency.runs > 0
    assert first.latency.p10_ms <= first.latency.median_ms <= first.latency.p90_ms
    assert sessions >= 1 and fake.sessions == sessions  # the second answer timed nothing
    assert second.latency is not None and second.latency.median_ms == first.latency.median_ms
    assert second.latency.extra.get("cached") is True
    assert first.to_dict()["latency"]["source"] == "measured"
    with pytest.raises(OracleError) as info:
        oracle.cost(block, in_channels=8, resolution=32, latency=True, device="cuda:7")
    assert info.value.code.value in ("FAILED_PRECONDITION", "INVALID_ARGUMENT")


def test_a_latency_filter_with_many_close_calls_decides_some_from_a_probe(oracle: InProcessOracle) -> None:
    """Through the client: FLOPs predictions (a wide interval) leave most candidates close to the
    limit; the filter measures a probe of them and decides others from it ("calibrated"), and
    every verdict is the one measuring everything gives, but for a candidate within the probe's
    error of the limit (a simulated worker times them). Its 200 FLOPs predictions each need the
    device's calibration first: submitted all at once they overran the queue's bound of 64."""
    from cost_engine.latency.probe import PROBE
    from cost_engine.latency.testing import FakeWorker

    # one in_channels: the server groups a filter's candidates by their settings, in_channels included
    cands = [BlockCandidate(ConvSpec(c, kernel_size=3), 32) for c in range(8, 408, 2)]
    ctx = {"resolution": 32, "device": "cpu", "threads": 1, "latency_method": "flops"}
    with FakeWorker():
        ms = [next(c.actual for c in r.constraints if c.name == "max_latency_ms")
              for part in (cands[i:i + 40] for i in range(0, len(cands), 40))  # the queue takes 64 at once
              for r in oracle.filter(part, Budget(max_latency_ms=1e9, measure_all=True), **ctx).results]
        limit = sorted(ms)[len(ms) // 2] * 1.002
        out = oracle.filter(cands, Budget(max_latency_ms=limit), **ctx)
    reasons = [r.decided_by for r in out.results]
    assert reasons.count("measured") >= PROBE and "calibrated" in reasons, reasons
    assert set(reasons) <= {"predicted", "calibrated", "measured"}
    # the probe's correction errs by well under 1% here: a verdict may differ from measuring
    # everything only for a candidate that close to the limit (this space has one or two)
    wrong = [i for i in range(len(cands)) if (i in out.feasible) != (ms[i] <= limit)]
    assert all(abs(ms[i] / limit - 1) < 0.01 for i in wrong), [(i, ms[i] / limit, reasons[i]) for i in wrong]
    assert reasons.count("calibrated") > 20
    for r in out.results:  # the figure a calibrated verdict reports is the corrected one: they agree
        c = next(c for c in r.constraints if c.name == "max_latency_ms")
        assert (c.value <= 0) == r.feasible
