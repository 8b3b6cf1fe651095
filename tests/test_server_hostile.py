"""The measurement queue through gRPC (issue 10, item 1): a batch larger than the queue is refused
whole and leaves nothing queued; a worker thread that raises is restarted by its supervisor and
the queue goes on measuring. An in-process server, so the simulated worker stands in for the
timing processes (the protocol itself is tested in test_latency_*.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import grpc
import pytest

from cost_engine.latency.testing import FakeWorker
from cost_engine.spec import ConvSpec
from costoracle.v1 import oracle_pb2 as pb
from costoracle.v1 import oracle_pb2_grpc
from server import convert
from server.app import start
from server.config import ServerConfig
from server.latency_queue import MeasurementQueue
from server.oracle import BlockCandidate

CTX = pb.Context(resolution=16, latency=pb.LATENCY_MODE_MEASURE, threads=1)


def cands(n: int, start_width: int = 8) -> list[pb.Candidate]:
    return [convert.candidate_to_proto(BlockCandidate(ConvSpec(out_channels=start_width + i), 8)) for i in range(n)]


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[oracle_pb2_grpc.CostOracleStub]:
    with FakeWorker(delay_s=0.02):
        srv = start(ServerConfig(db_url=f"sqlite:///{tmp_path / 'c.sqlite'}", port=0, max_pending_measurements=4))
        channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
        try:
            yield oracle_pb2_grpc.CostOracleStub(channel)
        finally:
            channel.close()
            srv.stop(0)


def test_a_batch_larger_than_the_queue_is_refused_whole_and_the_queue_goes_on(stub) -> None:
    with pytest.raises(grpc.RpcError) as err:  # no deadline, as the harness sent it
        stub.GetCostBatch(pb.GetCostBatchRequest(candidates=cands(6), context=CTX))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "nothing of this request was queued" in err.value.details()
    q = stub.GetCacheStats(pb.GetCacheStatsRequest(), timeout=10).queue
    assert q.pending == 0 and q.in_flight == 0  # no orphans left behind
    # a batch that fits is measured, without a deadline and (once the queue has learned how long
    # a job takes) with one
    for timeout in (None, 60):
        resp = stub.GetCostBatch(pb.GetCostBatchRequest(candidates=cands(4, 20 + (timeout or 0)), context=CTX),
                                 timeout=timeout)
        assert all(r.WhichOneof("result") == "report" and r.report.latency.runs > 0 for r in resp.results)
    assert stub.GetCacheStats(pb.GetCacheStatsRequest(), timeout=10).queue.worker_restarts == 0


def test_a_worker_thread_that_raises_is_restarted(stub) -> None:
    real = MeasurementQueue._learn
    calls = {"n": 0}

    def broken_once(self, *args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug in the queue's bookkeeping, raised on purpose")
        return real(self, *args)

    with mock.patch.object(MeasurementQueue, "_learn", broken_once):
        with pytest.raises(grpc.RpcError) as err:  # the job the worker was running fails, it does not hang
            stub.GetCost(pb.GetCostRequest(candidate=cands(1)[0], context=CTX), timeout=60)
        assert err.value.code() != grpc.StatusCode.DEADLINE_EXCEEDED
        after = stub.GetCost(pb.GetCostRequest(candidate=cands(1, 40)[0], context=CTX), timeout=60)
    assert after.report.latency.runs > 0
    q = stub.GetCacheStats(pb.GetCacheStatsRequest(), timeout=10).queue
    assert q.worker_restarts == 1 and q.pending == 0


# -- item 2: counts that do not fit int64 ---------------------------------------------------------
HUGE = convert.candidate_to_proto(BlockCandidate(ConvSpec(out_channels=16384, kernel_size=1), 16384))
HUGE_CTX = pb.Context(batch_size=4096, resolution=4096)


def test_counts_beyond_int64_are_invalid_argument_and_never_stored(stub) -> None:
    for _ in range(2):  # the same request again: still refused, nothing was stored broken
        with pytest.raises(grpc.RpcError) as err:
            stub.GetCost(pb.GetCostRequest(candidate=HUGE, context=HUGE_CTX), timeout=60)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "macs" in err.value.details() and "int64" in err.value.details()
    good = cands(1)[0]
    resp = stub.GetCostBatch(pb.GetCostBatchRequest(candidates=[good, HUGE, good], context=pb.Context(
        batch_size=4096, resolution=16)), timeout=60)
    assert [r.WhichOneof("result") for r in resp.results] == ["report"] * 3  # at 16 px the big conv fits
    resp = stub.GetCostBatch(pb.GetCostBatchRequest(candidates=[good, HUGE], context=HUGE_CTX), timeout=60)
    assert resp.results[0].WhichOneof("result") == "report" and resp.results[0].report.macs > 0
    assert resp.results[1].WhichOneof("result") == "error"
    assert resp.results[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "int64" in resp.results[1].error.message
    streamed = stub.StreamCostBatch(pb.StreamCostBatchRequest(candidates=[HUGE, good], context=HUGE_CTX),
                                    timeout=60)
    items = [r for m in streamed for r in m.results]
    assert [r.WhichOneof("result") for r in items] == ["error", "report"]
    filt = stub.Filter(pb.FilterRequest(candidates=[good, HUGE], context=HUGE_CTX,
                                        budget=pb.Budget(max_params=10**9)), timeout=60)
    assert list(filt.feasible) == [0]
    assert stub.GetCacheStats(pb.GetCacheStatsRequest(), timeout=10).entries_by_kind["cost"] >= 1


def test_tool_views_are_bounded_by_the_totals_the_int64_check_reads() -> None:
    """Why checking the totals is enough: every view count of every built-in is at most
    max(flops, params) of the same report."""
    from cost_engine import analyze
    from cost_engine.families import BUILTINS

    for name in sorted(BUILTINS):
        r = analyze(name)
        bound = max(r.flops, r.params)
        assert all(v <= bound for counts in r.to_dict()["views"].values() for v in counts.values()), name
