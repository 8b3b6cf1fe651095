"""The remote clients' transport policy against scripted fake servers: retries of UNAVAILABLE only
(with backoff, within the deadline), deadlines, a server that starts late, typed errors carrying
the field violations of the rich status, bearer tokens, and requests never sent for candidates
that cannot be put on the wire. A real server is exercised in test_cli_remote.py.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from grpc_status import rpc_status

import cost_engine
from cost_engine.spec import ConvSpec
from cost_oracle.client import (
    AsyncRemoteOracle,
    CostResult,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    ItemError,
    OracleError,
    RemoteOracle,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from cost_oracle.client.errors import Code, Internal
from cost_oracle.client.types import LatencyResult
from cost_oracle.contract import errors as server_errors
from cost_oracle.contract.convert import report_to_proto
from costoracle.v1 import oracle_pb2 as pb
from costoracle.v1 import oracle_pb2_grpc


def report_dict(name: str = "mobilenet_v2") -> dict[str, Any]:
    d = cost_engine.analyze(name, resolution=64).to_dict()
    d.update(cache_hit=False, cache_key="ab" * 32, sources={"macs": "analytic"}, detail="full")
    return d


REPORT = report_dict()


class Script(oracle_pb2_grpc.CostOracleServicer):
    """A fake oracle: each call pops the next planned outcome (an error to abort with, or None = answer)."""

    def __init__(self, plan: list[Any] | None = None, *, delay_s: float = 0.0):
        self.plan = list(plan or [])
        self.delay_s = delay_s
        self.calls: list[str] = []
        self.metadata: list[dict[str, str]] = []
        self.requests: list[Any] = []
        self._lock = threading.Lock()

    def _next(self, method: str, request: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.calls.append(method)
            self.metadata.append(dict(context.invocation_metadata()))
            self.requests.append(request)
            step = self.plan.pop(0) if self.plan else None
        if self.delay_s:
            time.sleep(self.delay_s)
        if step is not None:
            abort(context, step)
        return step

    def GetCost(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._next("GetCost", request, context)
        return pb.GetCostResponse(report=report_to_proto(REPORT))

    def GetCostBatch(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._next("GetCostBatch", request, context)
        results = []
        for c in request.candidates:
            if c.builtin == "nope":
                err = server_errors.InvalidArgument("x", [("candidates[0].builtin", "unknown built-in model")])
                results.append(pb.CostResult(error=err.to_status()))
            else:
                results.append(pb.CostResult(report=report_to_proto(report_dict(c.builtin or "mobilenet_v2"))))
        return pb.GetCostBatchResponse(results=results)

    def StreamCostBatch(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        with self._lock:
            self.calls.append("StreamCostBatch")
            step = self.plan.pop(0) if self.plan else None
        if step == "after-first":
            yield pb.StreamCostBatchResponse(offset=0, total=len(request.candidates),
                                             results=[pb.CostResult(report=report_to_proto(REPORT))])
            abort(context, grpc.StatusCode.UNAVAILABLE)
        if step is not None:
            abort(context, step)
        for i, _ in enumerate(request.candidates):
            yield pb.StreamCostBatchResponse(offset=i, total=len(request.candidates),
                                             results=[pb.CostResult(report=report_to_proto(REPORT))])


def abort(context: grpc.ServicerContext, step: Any) -> None:
    if isinstance(step, server_errors.OracleError):
        context.abort_with_status(rpc_status.to_status(step.to_status()))
    context.abort(step, f"scripted {step.name}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeServer:
    def __init__(self, servicer: Script, port: int = 0):
        self.servicer = servicer
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        oracle_pb2_grpc.add_CostOracleServicer_to_server(servicer, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.target = f"127.0.0.1:{self.port}"

    def __enter__(self) -> FakeServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(None)


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeServer]]:
    started: list[FakeServer] = []

    def start(plan: list[Any] | None = None, **kw: Any) -> FakeServer:
        s = FakeServer(Script(plan, **kw)).__enter__()
        started.append(s)
        return s

    yield start
    for s in started:
        s.__exit__()


UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


# -- retries --------------------------------------------------------------------------------
def test_unavailable_is_retried_with_backoff_until_it_succeeds(serve: Callable[..., FakeServer]) -> None:
    srv = serve([UNAVAILABLE, UNAVAILABLE])
    with RemoteOracle(srv.target, retries=3, backoff=0.05) as oracle:
        t0 = time.monotonic()
        r = oracle.cost("mobilenet_v2")
        waited = time.monotonic() - t0
    assert isinstance(r, CostResult) and r.macs == REPORT["macs"]
    assert srv.servicer.calls == ["GetCost"] * 3
    assert waited >= 0.05 / 2 + 0.1 / 2  # two backoff pauses (full jitter keeps at least half of each)


def test_retries_are_bounded(serve: Callable[..., FakeServer]) -> None:
    srv = serve([UNAVAILABLE] * 10)
    with RemoteOracle(srv.target, retries=2, backoff=0.01) as oracle, pytest.raises(Unavailable) as info:
        oracle.cost("mobilenet_v2")
    assert srv.servicer.calls == ["GetCost"] * 3
    assert info.value.code is Code.UNAVAILABLE and not isinstance(info.value, grpc.RpcError)


@pytest.mark.parametrize(("step", "cls"), [
    (server_errors.InvalidArgument("bad", [("candidate.network.stages[0].blocks[1].mbconv.kernel_size",
                                            "must be odd and >= 1, got 4")]), InvalidArgument),
    (server_errors.ResourceExhausted("too many", quota="max_batch_size"), ResourceExhausted),
    (server_errors.FailedPrecondition("no such device", [("context.device", "cuda:3 is not here")]),
     FailedPrecondition),
    (server_errors.Unauthenticated("token"), Unauthenticated),
    (grpc.StatusCode.INTERNAL, Internal),
])
def test_other_codes_are_not_retried_and_raise_typed_errors(serve: Callable[..., FakeServer], step: Any,
                                                            cls: type[OracleError]) -> None:
    srv = serve([step, step])
    with RemoteOracle(srv.target, retries=3, backoff=0.01) as oracle, pytest.raises(cls) as info:
        oracle.cost("mobilenet_v2")
    assert srv.servicer.calls == ["GetCost"]
    err = info.value
    assert isinstance(err, OracleError) and not isinstance(err, grpc.RpcError)
    if isinstance(step, server_errors.OracleError):
        assert [(v.field, v.reason) for v in err.violations] == list(step.violations)
        assert err.code.value == step.code


def test_deadline_is_per_call_and_not_retried(serve: Callable[..., FakeServer]) -> None:
    srv = serve(delay_s=1.5)
    with RemoteOracle(srv.target, timeout=0.3, retries=3, backoff=0.01) as oracle:
        t0 = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            oracle.cost("mobilenet_v2")
        assert time.monotonic() - t0 < 1.2
        assert oracle.cost("mobilenet_v2", timeout=5).macs == REPORT["macs"]  # a longer per-call deadline
    assert srv.servicer.calls == ["GetCost", "GetCost"]


def test_a_server_that_starts_late_is_reached_by_retrying() -> None:
    port = free_port()
    result: dict[str, Any] = {}

    def ask() -> None:
        try:
            with RemoteOracle(f"127.0.0.1:{port}", retries=12, backoff=0.1, max_backoff=0.5, timeout=30) as oracle:
                result["r"] = oracle.cost("mobilenet_v2")
        except Exception as exc:  # reported below
            result["e"] = exc

    t = threading.Thread(target=ask)
    t.start()
    time.sleep(1.0)  # the client has been refused a few times by now
    with FakeServer(Script(), port=port) as srv:
        t.join(30)
        assert not t.is_alive()
    assert "e" not in result, result.get("e")
    assert result["r"].macs == REPORT["macs"] and srv.servicer.calls == ["GetCost"]


def test_nothing_listening_gives_unavailable_quickly() -> None:
    with RemoteOracle(f"127.0.0.1:{free_port()}", retries=1, backoff=0.01, timeout=10) as oracle:
        t0 = time.monotonic()
        with pytest.raises(Unavailable):
            oracle.info()
        assert time.monotonic() - t0 < 8


def test_streams_are_retried_only_before_the_first_message(serve: Callable[..., FakeServer]) -> None:
    srv = serve([UNAVAILABLE])
    with RemoteOracle(srv.target, retries=2, backoff=0.01) as oracle:
        seen: list[tuple[int, int]] = []
        out = oracle.cost_many(["mobilenet_v2"] * 3, progress=lambda d, t: seen.append((d, t)))
    assert len(out) == 3 and all(isinstance(r, CostResult) for r in out)
    assert srv.servicer.calls == ["StreamCostBatch"] * 2 and seen[-1] == (3, 3)

    srv2 = serve(["after-first"])
    with RemoteOracle(srv2.target, retries=3, backoff=0.01) as oracle, pytest.raises(Unavailable):
        oracle.cost_many(["mobilenet_v2"] * 3, chunk_size=1)
    assert srv2.servicer.calls == ["StreamCostBatch"]  # a result was delivered: no silent replay


# -- requests -------------------------------------------------------------------------------
def test_bearer_token_is_sent(serve: Callable[..., FakeServer]) -> None:
    srv = serve()
    with RemoteOracle(srv.target, token="s3cret") as oracle:
        oracle.cost("mobilenet_v2")
    assert srv.servicer.metadata[0].get("authorization") == "Bearer s3cret"


def test_unsendable_candidates_fail_locally_with_the_servers_paths(serve: Callable[..., FakeServer]) -> None:
    srv = serve()
    with RemoteOracle(srv.target) as oracle:
        with pytest.raises(InvalidArgument) as info:
            oracle.cost(ConvSpec(8))
        assert info.value.violations[0].field == "candidate.in_channels"
        with pytest.raises(InvalidArgument) as info:
            oracle.cost({"kind": "conv", "out_channels": 8, "kernel_size": 99}, in_channels=3, resolution=8)
        assert info.value.violations[0].field == "candidate.block.conv.kernel_size"
        with pytest.raises(InvalidArgument) as info:
            oracle.cost("mobilenet_v2", dtype="int3")
        assert info.value.violations[0].field == "context.dtype"
        assert srv.servicer.calls == []
        out = oracle.cost_many(["mobilenet_v2", ConvSpec(8), "nope", "fasternet_t0"])
    assert srv.servicer.calls == ["GetCostBatch"]
    assert [c.builtin for c in srv.servicer.requests[0].candidates] == ["mobilenet_v2", "nope", "fasternet_t0"]
    assert [type(r) for r in out] == [CostResult, ItemError, ItemError, CostResult]
    assert out[1].violations[0].field == "candidates[1].in_channels"
    assert out[2].index == 2 and out[2].violations[0].field == "candidates[2].builtin"  # re-indexed to the input
    assert out[3].macs == cost_engine.analyze("fasternet_t0", resolution=64).macs


# -- asyncio ---------------------------------------------------------------------------------
def test_async_client_retries_and_types_errors(serve: Callable[..., FakeServer]) -> None:
    srv = serve([UNAVAILABLE, None, server_errors.InvalidArgument("bad", [("candidate.builtin", "unknown")])])

    async def main() -> tuple[Any, Any]:
        async with AsyncRemoteOracle(srv.target, retries=2, backoff=0.01, token="t") as oracle:
            ok = await oracle.cost("mobilenet_v2")
            try:
                await oracle.cost("nope")
            except InvalidArgument as exc:
                return ok, exc
        return ok, None

    ok, err = asyncio.run(main())
    assert ok.macs == REPORT["macs"]
    assert err is not None and err.violations[0].field == "candidate.builtin"
    assert srv.servicer.calls == ["GetCost"] * 3
    assert srv.servicer.metadata[0]["authorization"] == "Bearer t"


def test_async_deadline(serve: Callable[..., FakeServer]) -> None:
    srv = serve(delay_s=1.5)

    async def main() -> None:
        async with AsyncRemoteOracle(srv.target, timeout=0.3) as oracle:
            await oracle.cost("mobilenet_v2")

    with pytest.raises(DeadlineExceeded):
        asyncio.run(main())


# -- result types ----------------------------------------------------------------------------
def test_result_types_round_trip() -> None:
    d = {**REPORT, "latency": {"median_ms": 1.5, "p10_ms": 1.4, "p90_ms": 1.7, "cv": 0.05, "runs": 40,
                               "source": "measured", "method": "measured", "cached": False}}
    r = CostResult.from_dict(d)
    assert r.to_dict() == d
    assert r.latency == LatencyResult.from_dict(d["latency"]) and r.latency_ms == 1.5
    assert r.metric("memory_access") == float(REPORT["memory_access_bytes"]) and r.metric("latency") == 1.5
    e = ItemError.from_dict(ItemError(3, "INVALID_ARGUMENT", "m", ()).to_dict())
    assert e.index == 3 and e.code == "INVALID_ARGUMENT"
