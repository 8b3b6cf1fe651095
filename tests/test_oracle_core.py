"""The transport-free oracle core: cache keys, hits, per-item errors with proto paths, budgets,
Pareto fronts and sweeps, each checked against ``cost_engine`` directly (no gRPC here; the
server tests repeat the important ones over the wire)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from cost_engine import analyze, resolve
from cost_engine.families.efficientnet import efficientnet, efficientnet_compound
from cost_engine.families.fasternet import fasternet
from cost_engine.families.mobilenet import mobilenet_v2
from cost_engine.report import COST_MODEL_VERSION
from cost_engine.spec import ConvSpec, MBConvSpec, NetworkSpec, to_dict
from cost_engine.spec.base import MAX_BLOCKS
from cost_oracle.contract import convert
from cost_oracle.contract.budget import Budget, pareto_front
from cost_oracle.contract.errors import InvalidArgument, OracleError, ResourceExhausted, from_status, translate_path
from cost_oracle.contract.spaces import EfficientNetCompoundSpace, FasterNetSpace, MultiplierSpace
from cost_oracle.contract.types import BlockCandidate, Context, Limits
from cost_oracle.server.cache import cache_key, canonical_json
from cost_oracle.server.oracle import Oracle
from costoracle.v1 import oracle_pb2, spec_pb2


@pytest.fixture
def oracle(tmp_path: Path) -> Oracle:
    o = Oracle(f"sqlite:///{tmp_path / 'cache.sqlite'}")
    yield o
    o.close()


def rows(o: Oracle) -> int:
    return int(o.cache.stats()["rows"])


def figures(d: dict) -> dict:
    """The engine's own keys of a report dict (what must equal ``analyze(...).to_dict()``)."""
    drop = {"cache_hit", "cache_key", "sources", "detail", "latency", "candidate"}
    return {k: v for k, v in d.items() if k not in drop}


def engine(candidate, **ctx) -> dict:
    d = analyze(candidate, **ctx).to_dict()
    d.pop("candidate")
    return d


# -- costs and the cache ----------------------------------------------------------------------
def test_cost_equals_engine_and_second_query_is_a_hit(oracle: Oracle) -> None:
    first = oracle.cost("efficientnet_b0")
    assert first["cache_hit"] is False
    assert figures(first) == engine("efficientnet_b0")
    second = oracle.cost("efficientnet_b0")
    assert second["cache_hit"] is True
    assert figures(second) == figures(first)
    assert second["cache_key"] == first["cache_key"]
    assert all(v == "analytic" for v in first["sources"].values()) and "macs" in first["sources"]


def test_cache_key_is_canonical_json_of_spec_context_version(oracle: Oracle) -> None:
    spec = resolve("mobilenet_v2")
    got = oracle.cost("mobilenet_v2", Context(batch_size=2, dtype="float16"))
    want = cache_key(to_dict(spec), {"batch_size": 2, "resolution": 224, "dtype": "float16"}, COST_MODEL_VERSION)
    assert got["cache_key"] == want
    # the same network by spec instead of name is the same entry (and keeps its own label)
    by_spec = oracle.cost(spec, Context(batch_size=2, dtype="float16"))
    assert by_spec["cache_hit"] is True and by_spec["cache_key"] == want and by_spec["candidate"] == "network"
    # an explicit resolution equal to the network's own is the same entry too
    assert oracle.cost(spec, Context(batch_size=2, dtype="float16", resolution=224))["cache_hit"] is True


def test_context_changes_the_figures_and_the_key(oracle: Oracle) -> None:
    a = oracle.cost("resnet18")
    b = oracle.cost("resnet18", Context(batch_size=4))
    c = oracle.cost("resnet18", Context(resolution=160))
    d = oracle.cost("resnet18", Context(dtype="bfloat16"))
    assert len({a["cache_key"], b["cache_key"], c["cache_key"], d["cache_key"]}) == 4
    assert figures(b) == engine("resnet18", batch_size=4)
    assert figures(c) == engine("resnet18", resolution=160)
    assert figures(d) == engine("resnet18", dtype="bfloat16")


def test_hit_survives_a_new_oracle_on_the_same_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    with Oracle(url) as o:
        first = o.cost("fasternet_t0")
    with Oracle(url) as o:
        again = o.cost("fasternet_t0")
    assert again["cache_hit"] is True and figures(again) == figures(first)


def test_detail_levels_trim_only_breakdowns(oracle: Oracle) -> None:
    full = oracle.cost("mobilenet_v2")
    totals = oracle.cost("mobilenet_v2", detail="totals")
    scalars = oracle.cost("mobilenet_v2", detail="scalars")
    assert "by_module" in full and "by_module" not in totals and "by_op_type" in totals
    assert not {"by_module", "by_op_type", "views", "unknown_ops"} & set(scalars)
    for k in ("macs", "flops", "params", "memory_access_bytes", "peak_activation_bytes"):
        assert full[k] == totals[k] == scalars[k]
    with pytest.raises(InvalidArgument) as e:
        oracle.cost("mobilenet_v2", detail="everything")
    assert e.value.violations[0][0] == "detail"


def test_block_candidate(oracle: Oracle) -> None:
    block = MBConvSpec(out_channels=24, kernel_size=5, stride=2)
    got = oracle.cost(BlockCandidate(block, 16), Context(resolution=56, batch_size=8))
    assert figures(got) == engine(block, batch_size=8, resolution=56, in_channels=16)
    with pytest.raises(InvalidArgument) as e:
        oracle.cost(block, Context(resolution=56))
    assert e.value.violations[0][0] == "candidate.in_channels"
    with pytest.raises(InvalidArgument) as e:
        oracle.cost(BlockCandidate(block, 16))
    assert e.value.violations[0][0] == "context.resolution"


def test_batch_order_per_item_errors_and_no_rows_for_bad_items(oracle: Oracle) -> None:
    bad_spec = NetworkSpec(stages=((MBConvSpec(out_channels=-3, kernel_size=4),),))
    empty = NetworkSpec()
    before = rows(oracle)
    out = oracle.cost_batch(["mobilenet_v2", bad_spec, "no_such_model", empty, "resnet18", "mobilenet_v2"],
                            detail="scalars")
    assert [isinstance(x, OracleError) for x in out] == [False, True, True, True, False, False]
    assert out[3].violations == (("candidates[3].network.stages", "a network needs at least one block"),)
    assert out[0]["macs"] == engine("mobilenet_v2")["macs"] and out[4]["macs"] == engine("resnet18")["macs"]
    assert out[5]["cache_key"] == out[0]["cache_key"]
    paths = {p for p, _ in out[1].violations}
    assert paths == {"candidates[1].network.stages[0].blocks[0].mbconv.out_channels",
                     "candidates[1].network.stages[0].blocks[0].mbconv.kernel_size"}
    assert out[2].violations[0][0] == "candidates[2].builtin" and out[2].code == "INVALID_ARGUMENT"
    assert rows(oracle) == before + 2  # mobilenet_v2 (twice, one key) and resnet18 only


def test_shape_errors_name_the_block_in_proto_terms(oracle: Oracle) -> None:
    # a 7x7 stride-2 pool after enough downsampling cannot run on a 1x1 map
    from cost_engine.spec import PoolSpec

    net = NetworkSpec(stem=(ConvSpec(out_channels=8, stride=8),), stages=((PoolSpec(mode="max", kernel_size=31,
                                                                                    padding=0),),),
                      resolution=16)
    before = rows(oracle)
    out = oracle.cost_batch([net])
    assert isinstance(out[0], InvalidArgument)
    assert out[0].violations[0][0].startswith("candidates[0].network.stages[0].blocks[0].pool")
    assert rows(oracle) == before


def test_context_and_batch_limits(tmp_path: Path) -> None:
    with Oracle(f"sqlite:///{tmp_path / 'c.sqlite'}", limits=Limits(max_batch_size=3)) as o:
        with pytest.raises(InvalidArgument) as e:
            o.cost_batch(["resnet18"], Context(batch_size=0, resolution=-1, dtype="int8"))
        assert {p for p, _ in e.value.violations} == {"context.batch_size", "context.resolution", "context.dtype"}
        with pytest.raises(ResourceExhausted) as r:
            o.cost_batch(["resnet18"] * 4)
        assert r.value.quota == "max_batch_size"
        assert rows(o) == 0


def test_memoized_spec_dict_equals_to_dict() -> None:
    from cost_engine.families import BUILTINS
    from cost_engine.keys import spec_dict

    resolve("resnet18")
    specs = [resolve(n) for n in sorted(BUILTINS)]
    specs += [fasternet(d, (1, 2, 3, 1), n_div=n, mlp_ratio=m) for d in (16, 24) for n in (2, 4) for m in (1.5, 2.0)]
    specs.append(MBConvSpec(out_channels=24, expand_ratio=4))
    for spec in specs:
        assert spec_dict(spec) == to_dict(spec)


def test_assembled_spec_json_and_key_equal_the_canonical_ones() -> None:
    """The server hashes a candidate from its blocks' memoized JSON texts; the bytes (and so the
    key) must be exactly those of canonical_json(to_dict(spec)), or one candidate gets two keys."""
    from cost_engine.families import BUILTINS
    from cost_engine.keys import spec_json
    from cost_oracle.server.cache import canonical_json
    from cost_oracle.server.candidates import Prepared

    rng = random.Random(7)
    specs = [resolve(n) for n in sorted(BUILTINS)]
    for _ in range(200):  # random MBConv networks with awkward floats, and FasterNets
        stages = tuple(tuple(MBConvSpec(out_channels=rng.choice((8, 24, 40)), kernel_size=rng.choice((3, 5, 7)),
                                        expand_ratio=rng.choice((1, 2.5, 4.0, 6, 1 / 3)),
                                        se_ratio=rng.choice((0.0, 0.25, 0.1)), act=rng.choice(("relu6", "silu")))
                             for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(1, 3)))
        specs.append(NetworkSpec(stem=(ConvSpec(out_channels=16, stride=2),), stages=stages,
                                 resolution=rng.choice((32, 160, 224))))
        specs.append(fasternet(rng.choice((16, 40)), (1, rng.randint(1, 3), 1, 1), n_div=rng.choice((2, 4)),
                               mlp_ratio=rng.choice((1.5, 2.0, 3.0))))
    specs.append(MBConvSpec(out_channels=24, expand_ratio=4))
    ctx = Context(batch_size=3, resolution=None, dtype="float16")
    for spec in specs:
        assert spec_json(spec) == canonical_json(to_dict(spec))
        p = Prepared(spec, spec.kind)
        assert p.key(ctx) == cache_key(to_dict(spec), p.cost_context(ctx), COST_MODEL_VERSION)


# -- errors and paths -------------------------------------------------------------------------
def test_translate_path() -> None:
    d = to_dict(efficientnet())
    assert translate_path("stages[1][1].kernel_size", d) == "stages[1].blocks[1].mbconv.kernel_size"
    assert translate_path("stem[0].stride", d) == "stem[0].conv.stride"
    assert translate_path("head[2].out_features", d) == "head[2].linear.out_features"
    assert translate_path("stages", d) == "stages"
    assert translate_path("resolution", d) == "resolution"


def test_status_round_trip() -> None:
    err = InvalidArgument("bad", [("candidates[3].network.stem[0].conv.stride", "must be <= 8, got 9")])
    back = from_status(err.to_status())
    assert type(back) is InvalidArgument and back.violations == err.violations
    quota = ResourceExhausted("too many", quota="max_batch_size")
    assert from_status(quota.to_status()).quota == "max_batch_size"


# -- proto conversion -------------------------------------------------------------------------
def test_every_builtin_round_trips_through_proto() -> None:
    from cost_engine.families import BUILTINS

    resolve("resnet18")  # loads the catalog
    for name in sorted(BUILTINS):
        spec = resolve(name)
        assert convert.candidate_from_proto(convert.candidate_to_proto(spec)) == spec, name


def test_report_round_trips_through_proto(oracle: Oracle) -> None:
    for detail in ("full", "totals", "scalars"):
        d = oracle.cost("vit_tiny_patch16_224", detail=detail)
        assert convert.report_to_dict(convert.report_to_proto(d)) == d


def test_proto_candidate_errors_collect_every_bad_field() -> None:
    bad = spec_pb2.Candidate(network=spec_pb2.NetworkSpec(
        stages=[spec_pb2.Stage(blocks=[spec_pb2.Block(mbconv=spec_pb2.MBConvSpec(out_channels=-1, kernel_size=4)),
                                       spec_pb2.Block()])],
        resolution=10**9))
    with pytest.raises(InvalidArgument) as e:
        convert.candidate_from_proto(bad, "candidates[3]")
    assert {p for p, _ in e.value.violations} == {
        "candidates[3].network.stages[0].blocks[0].mbconv.out_channels",
        "candidates[3].network.stages[0].blocks[0].mbconv.kernel_size",
        "candidates[3].network.stages[0].blocks[1]",
        "candidates[3].network.resolution",
    }
    with pytest.raises(InvalidArgument) as e:
        convert.candidate_from_proto(spec_pb2.Candidate(network=spec_pb2.NetworkSpec()), "candidate")
    assert e.value.violations == (("candidate.network.stages", "a network needs at least one block"),)


# -- budgets and Pareto fronts ---------------------------------------------------------------
def brute_front(points: list[list[float]]) -> list[int]:
    def dominates(q: list[float], p: list[float]) -> bool:
        return all(a <= b for a, b in zip(q, p, strict=True)) and any(a < b for a, b in zip(q, p, strict=True))

    return [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]


def test_pareto_front_equals_brute_force() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n, k = rng.randint(0, 40), rng.randint(1, 3)
        pts = [[float(rng.randint(0, 6)) for _ in range(k)] for _ in range(n)]
        assert pareto_front(pts) == brute_front(pts)


NAMES = ["efficientnet_b0", "efficientnet_b1", "mobilenet_v2", "fasternet_t0", "fasternet_t1", "resnet18",
         "resnet50", "shufflenet_v2_x1_0", "regnet_y_400mf", "vit_tiny_patch16_224"]


def test_filter_is_exactly_the_candidates_under_budget(oracle: Oracle) -> None:
    budget = Budget(max_macs=1_000_000_000, max_params=12_000_000, max_peak_activation_bytes=20_000_000)
    bad = NetworkSpec(stages=((MBConvSpec(out_channels=0),),))
    cands = [*NAMES, bad]
    out = oracle.filter(cands, budget, pareto=["macs", "params"])
    expect = []
    for i, n in enumerate(NAMES):
        r = analyze(n)
        ok = r.macs <= 1_000_000_000 and r.params <= 12_000_000 and r.peak_activation_bytes <= 20_000_000
        if ok:
            expect.append(i)
        item = out.results[i]
        assert item.feasible == ok
        by_name = {c.name: c for c in item.constraints}
        assert by_name["max_macs"].value == r.macs - 1_000_000_000
        assert by_name["max_params"].actual == r.params
        assert set(item.violated) == {c.name for c in item.constraints if c.value > 0}
    assert list(out.feasible) == expect
    assert out.results[-1].error is not None and not out.results[-1].feasible
    pts = [[float(analyze(NAMES[i]).macs), float(analyze(NAMES[i]).params)] for i in expect]
    assert list(out.pareto_front) == sorted(expect[j] for j in brute_front(pts))


def test_budget_validation(oracle: Oracle) -> None:
    with pytest.raises(InvalidArgument) as e:
        oracle.filter(["resnet18"], Budget(max_macs=-1, max_latency_ms=float("nan")), pareto=["bogus"])
    assert {p for p, _ in e.value.violations} == {"budget.max_macs", "budget.max_latency_ms", "pareto_fields[0]"}


# -- sweeps -----------------------------------------------------------------------------------
def test_compound_sweep_is_exactly_the_engine_grid(oracle: Oracle) -> None:
    space = EfficientNetCompoundSpace(alpha=(1.1, 1.2, 1.4), beta=(1.05, 1.1, 1.2), gamma=(1.1, 1.15),
                                      phi=(0.5, 1.0, 2.0), target=2.0, tolerance=0.15)
    limit = 1_200_000_000
    out = oracle.sweep(space, Budget(max_macs=limit), pareto=["macs", "params"])
    triples = [(a, b, g) for a, b, g in itertools.product(space.alpha, space.beta, space.gamma)
               if abs(a * b * b * g * g - 2.0) <= 0.15]
    assert triples and out.total == len(triples) * 3 == len(out.points)
    expect = []
    for (a, b, g), phi in itertools.product(triples, space.phi):
        idx = len(expect)
        expect.append(analyze(efficientnet_compound(phi, a, b, g)).macs)
        p = out.points[idx]
        # the coordinates, and beside them the multipliers and resolution they produce (issue 12 item 13)
        assert p.params == {"phi": phi, "alpha": a, "beta": b, "gamma": g, "width": b**phi, "depth": a**phi,
                            "resolution": float(round(224 * g**phi))}
        assert p.result.feasible == (expect[-1] <= limit)
    assert list(out.feasible) == [i for i, m in enumerate(expect) if m <= limit]


def test_fasternet_and_multiplier_sweeps(oracle: Oracle) -> None:
    fs = FasterNetSpace(n_div=(2, 4), mlp_ratio=(1.5, 2.0), depths=((1, 2, 8, 2), (1, 1, 4, 1)), embed_dim=(32,))
    out = oracle.sweep(fs, Budget(max_flops=1_000_000_000), include_specs=True)
    assert out.total == 8
    for p in out.points:
        depths = tuple(int(p.params[f"depths[{i}]"]) for i in range(4))
        spec = fasternet(32, depths, n_div=int(p.params["n_div"]), mlp_ratio=p.params["mlp_ratio"], act="gelu")
        assert p.spec == spec.to_dict()
        assert p.result.feasible == (analyze(spec).flops <= 1_000_000_000)
    ms = MultiplierSpace(family="mobilenet_v2", width=(0.5, 1.0), resolution_multiplier=(0.75, 1.0))
    out = oracle.sweep(ms, Budget(max_params=3_000_000))
    assert out.total == 4
    got = {(p.params["width"], p.params["resolution"]): p.result.feasible for p in out.points}
    for w, r in itertools.product((0.5, 1.0), (168, 224)):
        assert got[(w, float(r))] == (analyze(mobilenet_v2(w, r)).params <= 3_000_000)
    ems = MultiplierSpace(family="efficientnet", width=(1.0,), depth=(1.0, 1.2), resolution=(192,))
    out = oracle.sweep(ems, Budget())
    assert [p.result.feasible for p in out.points] == [True, True]
    assert list(out.points[1].result.constraints) == []


def test_sweep_limits_and_validation(tmp_path: Path) -> None:
    with Oracle(f"sqlite:///{tmp_path / 'c.sqlite'}", limits=Limits(max_sweep_size=10)) as o:
        with pytest.raises(ResourceExhausted) as r:
            o.sweep(FasterNetSpace(n_div=(1, 2, 4), embed_dim=(16, 32, 48, 64)))
        assert r.value.quota == "max_sweep_size"
        with pytest.raises(InvalidArgument) as e:
            o.sweep(EfficientNetCompoundSpace(alpha=(), phi=(-1.0,)))
        assert {p for p, _ in e.value.violations} == {"efficientnet_compound.alpha", "efficientnet_compound.phi[0]"}
        with pytest.raises(InvalidArgument) as e:
            o.sweep(MultiplierSpace(family="resnet", width=(0.0,)))
        assert {p for p, _ in e.value.violations} == {"multipliers.family", "multipliers.width[0]"}
        # a point the family rejects is that point's error, not the sweep's
        out = o.sweep(FasterNetSpace(n_div=(4, 64), embed_dim=(32,)))
        assert out.points[0].result.error is None and out.points[1].result.error is not None
        assert out.points[1].result.error.violations[0][0].startswith("fasternet.n_div")
        assert rows(o) == 1


def test_wire_fast_path_agrees_with_the_full_conversion() -> None:
    """cost_oracle.contract.wire reads a candidate network off the wire when all its blocks were converted
    before; it must give exactly the full path's spec (and that spec's canonical JSON, byte for
    byte), and decline (None) anything unusual."""
    from cost_engine.families import BUILTINS

    def wire(raw: bytes) -> Any:
        got = convert.network_from_wire(raw)
        if got is None:
            return None
        spec, text = got
        assert text == canonical_json(to_dict(spec))
        return spec

    resolve("resnet18")
    specs = [resolve(n) for n in sorted(BUILTINS)]
    specs += [fasternet(d, (1, 2, 1, 1), n_div=n) for d in (16, 24) for n in (2, 4)]
    for spec in specs:
        raw = convert.candidate_to_proto(spec).SerializeToString()
        full = convert.candidate_from_proto(spec_pb2.Candidate.FromString(raw))  # fills the block memo
        assert full == spec
        assert wire(raw) == spec
    # blocks never seen are converted one by one on the way (the same spec as the full path's)
    unseen = NetworkSpec(stem=(ConvSpec(out_channels=999, stride=2),), stages=((ConvSpec(out_channels=997),),))
    assert wire(convert.candidate_to_proto(unseen).SerializeToString()) == unseen
    # networks whose own scalars are set, in any order, repeated (the last wins)
    net = fasternet(16, (1, 1, 1, 1))
    msg = convert.candidate_to_proto(net)
    msg.network.resolution = 96
    msg.network.in_channels = 1
    raw = msg.SerializeToString()
    want = convert.candidate_from_proto(spec_pb2.Candidate.FromString(raw))
    assert wire(raw) == want and want.resolution == 96 and want.in_channels == 1
    # a scalar repeated inside the network message: the last occurrence wins, as protobuf parses it
    net_bytes = msg.network.SerializeToString() + spec_pb2.NetworkSpec(resolution=128).SerializeToString()
    assert len(net_bytes) < 1 << 14
    again = b"\x12" + bytes([len(net_bytes) & 0x7F | 0x80, len(net_bytes) >> 7]) + net_bytes
    parsed = convert.candidate_from_proto(spec_pb2.Candidate.FromString(again))
    assert parsed.resolution == 128 and wire(again) == parsed
    # the network field twice (protobuf merges the two messages): declined
    assert wire(raw + raw) is None
    # declined: the full path decides (and names the field)
    declined = {
        "invalid block": spec_pb2.Candidate(network=spec_pb2.NetworkSpec(
            stem=[spec_pb2.Block(conv=spec_pb2.ConvSpec(out_channels=10**9))])),
        "empty block": spec_pb2.Candidate(network=spec_pb2.NetworkSpec(stem=[spec_pb2.Block()])),
        "builtin": spec_pb2.Candidate(builtin="resnet18"),
        "block candidate": spec_pb2.Candidate(block=spec_pb2.Block(conv=spec_pb2.ConvSpec(out_channels=8)),
                                              in_channels=3),
    }
    bad_res = convert.candidate_to_proto(net)
    bad_res.network.resolution = 0
    declined["explicit zero resolution"] = bad_res
    neg = convert.candidate_to_proto(net)
    neg.network.in_channels = -3
    declined["negative in_channels"] = neg
    for name, m in declined.items():
        assert wire(m.SerializeToString()) is None, name
    assert wire(raw + b"\xff") is None  # truncated garbage
    assert wire(raw + b"\x08\x01") is None  # an unknown top-level field
    assert wire(b"") is None
    assert wire(b"\x12\x05\x0a\x03\x0a\x05\x08") is None  # a stem block whose own field overruns it
    # a network length that disagrees with the bytes, and a block cut short inside a stage: declined
    assert wire(raw[:-3]) is None
    block = convert.candidate_to_proto(net).network.stem[0]
    stage = spec_pb2.Stage(blocks=[block]).SerializeToString()[:-1]  # the block's length now overruns
    network = b"\x12" + bytes([len(stage)]) + stage
    assert len(network) < 0x80
    assert wire(b"\x12" + bytes([len(network)]) + network) is None
    # the network's own rules still hold: no blocks at all, or more than the engine allows
    assert wire(spec_pb2.Candidate(network=spec_pb2.NetworkSpec()).SerializeToString()) is None
    huge = spec_pb2.Candidate(network=spec_pb2.NetworkSpec(stem=[block] * (MAX_BLOCKS + 1)))
    assert wire(huge.SerializeToString()) is None
    assert wire(spec_pb2.Candidate(network=spec_pb2.NetworkSpec(stem=[block] * 3)).SerializeToString()) is not None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), max_size=12), st.integers(min_value=1, max_value=64),
       st.sampled_from([0, 1, 3]), st.integers(min_value=1, max_value=30))
def test_split_field_finds_the_candidates_as_protobuf_does(blocks: list[int], batch: int, detail: int,
                                                           cut: int) -> None:
    """The servicer splits a batch request into its candidates' bytes without parsing them; the
    split must agree with protobuf for candidates of every size (one- to three-byte lengths)."""
    from cost_oracle.contract.wire import split_field
    from cost_oracle.server.servicer import _parser, _Undecodable

    block = spec_pb2.Block(conv=spec_pb2.ConvSpec(out_channels=8, kernel_size=3))
    cands = [spec_pb2.Candidate(network=spec_pb2.NetworkSpec(stem=[block] * (n * n * 3))) for n in blocks]
    req = oracle_pb2.GetCostBatchRequest(candidates=cands, context=oracle_pb2.Context(batch_size=batch),
                                         detail=detail)
    raw = req.SerializeToString()
    shell, found = split_field(raw, 1)
    assert found == [c.SerializeToString() for c in cands]
    rest = oracle_pb2.GetCostBatchRequest.FromString(shell)
    assert not rest.candidates and rest.context == req.context and rest.detail == req.detail
    if len(raw) > cut:  # cut short: the request deserializer refuses what protobuf refuses
        truncated = raw[:-cut]
        parsed = _parser(oracle_pb2.GetCostBatchRequest, 1)(truncated)
        try:
            whole = oracle_pb2.GetCostBatchRequest.FromString(truncated)
        except DecodeError:
            assert isinstance(parsed, _Undecodable)
        else:
            assert [c.SerializeToString() for c in whole.candidates] == parsed.candidates
