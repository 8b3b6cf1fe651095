"""In-bound hostile values through gRPC (issue 10): every numeric field of every block kind and
of the request context at its bounds, just past them, and at products of bounds (the largest
block at the largest resolution and batch). No answer may be INTERNAL or UNKNOWN, and the server
answers a normal query after each one."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import stub_of

from cost_engine.spec import ConvSpec
from cost_engine.spec.base import MAX_BATCH, MAX_CHANNELS, MAX_RESOLUTION, SPEC_KINDS
from cost_oracle.contract import convert
from cost_oracle.contract.types import BlockCandidate
from costoracle.v1 import oracle_pb2 as pb
from costoracle.v1 import oracle_pb2_grpc

BAD = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
#: block kinds a standalone candidate can be (networks and token specs are covered by their own tests)
KINDS = sorted(k for k, cls in SPEC_KINDS.items()
               if k not in ("network", "tokens", "patch_embed", "token_pool") and dataclasses.is_dataclass(cls))
NORMAL = pb.GetCostRequest(candidate=convert.candidate_to_proto(BlockCandidate(ConvSpec(out_channels=8), 3)),
                           context=pb.Context(resolution=16))


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[oracle_pb2_grpc.CostOracleStub]:
    with stub_of(tmp_path_factory.mktemp("fuzz") / "c.sqlite") as s:
        yield s


def edges(lo: Any, hi: Any, is_float: bool) -> list[Any]:
    """A field's bounds, one step past each, and (floats) the values no bound should let in."""
    out: list[Any] = []
    for b in (lo, hi):
        if b is None:
            continue
        out += [b, b - 1, b + 1] if not is_float else [b, b * (1 - 1e-9) if b else -1e-9, b * (1 + 1e-9) + 1e-12]
    out += [0, -1] + ([math.nan, math.inf, -math.inf, 1e308] if is_float else [2**31, 2**63 - 1])
    return out


@st.composite
def hostile_block(draw: st.DrawFn) -> tuple[Any, int]:
    kind = draw(st.sampled_from(KINDS))
    cls = SPEC_KINDS[kind]
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if meta.get("lo") is None and meta.get("hi") is None:
            continue
        is_float = isinstance(f.default, float)
        if f.default is dataclasses.MISSING or draw(st.booleans()):
            lo, hi = meta.get("lo"), meta.get("hi")
            inside = [b for b in (lo, hi) if b is not None]
            # mostly at the bounds themselves (valid, so the costing runs), sometimes past them
            pool = inside if draw(st.integers(0, 3)) else edges(lo, hi, is_float)
            values[f.name] = draw(st.sampled_from(pool))
    if "out_channels" in {f.name for f in dataclasses.fields(cls)} and "out_channels" not in values:
        values["out_channels"] = draw(st.sampled_from([1, 8, MAX_CHANNELS]))
    in_channels = draw(st.sampled_from([1, 3, 64, MAX_CHANNELS, 1, 3, 64, MAX_CHANNELS + 1, 0]))
    return cls(**values), in_channels


contexts = st.builds(pb.Context, batch_size=st.sampled_from([1, 1, 7, MAX_BATCH, MAX_BATCH, 0, MAX_BATCH + 1, 2**62]),
                     resolution=st.sampled_from([1, 2, 16, 64, MAX_RESOLUTION, 0, MAX_RESOLUTION + 1, 2**40]),
                     dtype=st.sampled_from([0, 1, 2, 3, 4, 99]))  # 99: an enum value this server does not know


def proto_of(block: Any, in_channels: int) -> pb.Candidate | None:
    try:
        return convert.candidate_to_proto(BlockCandidate(block, in_channels))
    except (ValueError, TypeError, OverflowError):  # protobuf itself refuses the value (int64 range)
        return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(block=hostile_block(), ctx=contexts)
def test_bound_values_never_answer_internal(stub, block: tuple[Any, int], ctx: pb.Context) -> None:
    cand = proto_of(*block)
    if cand is None:
        return
    for call in (lambda: stub.GetCost(pb.GetCostRequest(candidate=cand, context=ctx, detail=pb.DETAIL_FULL),
                                      timeout=60),
                 lambda: stub.Filter(pb.FilterRequest(candidates=[cand, cand], context=ctx,
                                                      budget=pb.Budget(max_macs=10**9)), timeout=60)):
        try:
            call()
        except grpc.RpcError as exc:
            assert exc.code() not in BAD, f"{exc.code()}: {exc.details()}"
            assert exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED, "a bounded request took over 60 s"
    assert stub.GetCost(NORMAL, timeout=30).report.macs > 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.sampled_from([1, MAX_CHANNELS]), kernel=st.sampled_from([1, 31]),
       batch=st.sampled_from([1, MAX_BATCH]), res=st.sampled_from([1, MAX_RESOLUTION]),
       groups=st.sampled_from([1, MAX_CHANNELS]))
def test_products_of_bounds_never_answer_internal(stub, width: int, kernel: int, batch: int, res: int,
                                                  groups: int) -> None:
    cand = convert.candidate_to_proto(BlockCandidate(ConvSpec(out_channels=width, kernel_size=kernel,
                                                              groups=groups), width))
    try:
        r = stub.GetCost(pb.GetCostRequest(candidate=cand, context=pb.Context(batch_size=batch, resolution=res)),
                         timeout=60)
        assert r.report.macs >= 0
    except grpc.RpcError as exc:
        assert exc.code() not in BAD, f"{exc.code()}: {exc.details()}"
        assert exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED), exc.details()
    assert stub.GetCost(NORMAL, timeout=30).report.macs > 0
