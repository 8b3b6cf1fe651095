"""The measurement queue through gRPC (issue 10, item 1): a batch larger than the queue is refused
whole and leaves nothing queued; a worker thread that raises is restarted by its supervisor and
the queue goes on measuring. An in-process server, so the simulated worker stands in for the
timing processes (the protocol itself is tested in test_latency_*.py)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import grpc
import pytest

from cost_engine.latency.testing import FakeWorker
from cost_engine.spec import ConvSpec, MBConvSpec
from cost_oracle.contract import convert
from cost_oracle.contract.types import BlockCandidate
from cost_oracle.server.app import start
from cost_oracle.server.config import ServerConfig
from cost_oracle.server.latency_queue import MeasurementQueue
from costoracle.v1 import oracle_pb2 as pb
from costoracle.v1 import oracle_pb2_grpc
from costoracle.v1 import spec_pb2 as spb

CTX = pb.Context(resolution=16, latency=pb.LATENCY_MODE_MEASURE, threads=1)


def cands(n: int, start_width: int = 8) -> list[pb.Candidate]:
    return [convert.candidate_to_proto(BlockCandidate(ConvSpec(out_channels=start_width + i), 8)) for i in range(n)]


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[oracle_pb2_grpc.CostOracleStub]:
    with FakeWorker(delay_s=0.02):
        srv = start(ServerConfig(db_url=f"sqlite:///{tmp_path / 'c.sqlite'}", port=0, max_pending_measurements=4))
        channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
        try:
            stub = oracle_pb2_grpc.CostOracleStub(channel)
            stub._test_channel = channel  # for raw-bytes calls
            stub._test_server = srv  # for what the server is doing now
            yield stub
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


# -- item 3: float fields of a sweep ----------------------------------------------------------------
@pytest.mark.parametrize("bad", [1e307, float("inf"), float("nan"), -1.0])
@pytest.mark.parametrize("space", [
    lambda v: pb.SweepRequest(efficientnet_compound=pb.EfficientNetCompoundSpace(alpha=[1.2, v], beta=[1.1],
                                                                                 gamma=[1.15], phi=[1])),
    lambda v: pb.SweepRequest(efficientnet_compound=pb.EfficientNetCompoundSpace(alpha=[1.2], beta=[1.1],
                                                                                 gamma=[1.15], phi=[v])),
    lambda v: pb.SweepRequest(efficientnet_compound=pb.EfficientNetCompoundSpace(alpha=[1.2], beta=[1.1],
                                                                                 gamma=[1.15], phi=[1], target=v)),
    lambda v: pb.SweepRequest(multipliers=pb.MultiplierSpace(family="efficientnet", resolution_multiplier=[v])),
    lambda v: pb.SweepRequest(multipliers=pb.MultiplierSpace(family="mobilenet_v2", width=[v])),
    lambda v: pb.SweepRequest(fasternet=pb.FasterNetSpace(mlp_ratio=[v])),
], ids=["alpha", "phi", "target", "resolution_multiplier", "width", "mlp_ratio"])
def test_out_of_bound_floats_of_a_sweep_are_field_violations(stub, space, bad) -> None:
    from test_server import rich

    with pytest.raises(grpc.RpcError) as err:
        list(stub.Sweep(space(bad), timeout=60))
    code, violations, _ = rich(err.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and violations
    assert all(len(desc) < 200 for _, desc in violations)
    assert stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10).cost_model_version  # still serving


def test_the_largest_allowed_floats_of_a_sweep_are_answered_not_internal(stub) -> None:
    req = pb.SweepRequest(efficientnet_compound=pb.EfficientNetCompoundSpace(alpha=[8.0], beta=[8.0], gamma=[8.0],
                                                                             phi=[32], tolerance=1e6))
    try:
        msgs = list(stub.Sweep(req, timeout=60))
    except grpc.RpcError as exc:  # refused by a named bound is fine; a crash is not
        assert exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED), exc.details()
    else:
        assert msgs


# -- item 4: error details fit gRPC's metadata limit ----------------------------------------------
def test_a_huge_bad_value_comes_back_as_a_short_field_violation(stub) -> None:
    from test_server import rich

    with pytest.raises(grpc.RpcError) as err:
        stub.GetCost(pb.GetCostRequest(candidate=spb.Candidate(builtin="x" * 8000)), timeout=30)
    code, violations, _ = rich(err.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert [p for p, _ in violations] == ["candidate.builtin"] and len(violations[0][1]) <= 1000
    assert "(8000 chars)" in violations[0][1] and "efficientnet_b0" in violations[0][1]  # quoted short, list kept
    assert len(err.value.details()) <= 1500


def test_many_violations_are_clipped_to_a_budget_and_counted() -> None:
    from cost_oracle.contract.errors import InvalidArgument

    status = InvalidArgument("bad", [(f"candidates[{i}].x", "y" * 5000) for i in range(500)]).to_status()
    assert status.ByteSize() < 5000 and len(status.message) <= 1500
    from google.rpc import error_details_pb2

    bad = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad)
    assert bad.field_violations[-1].description.endswith("more field violation(s) left out")
    assert all(len(v.description) <= 1000 for v in bad.field_violations)


# -- item 12: start-up failures are one line naming the cause -------------------------------------
@pytest.mark.parametrize("case", ["directory", "not_a_database", "bad_tls"])
def test_start_up_failures_are_one_line_naming_the_cause(tmp_path: Path, case: str) -> None:
    import subprocess
    import sys

    args = ["--port", "0", "--db-url", f"sqlite:///{tmp_path / 'ok.sqlite'}"]
    if case == "directory":
        (tmp_path / "d").mkdir()
        args[3], want = f"sqlite:///{tmp_path / 'd'}", "cannot open the cache database"
    elif case == "not_a_database":
        (tmp_path / "junk.sqlite").write_bytes(b"not sqlite" * 100)
        args[3], want = f"sqlite:///{tmp_path / 'junk.sqlite'}", "file is not a database"
    else:
        (tmp_path / "k.pem").write_text("junk")
        (tmp_path / "c.pem").write_text("junk")
        args += ["--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem")]
        want = "cannot use the TLS certificate"
    proc = subprocess.run([sys.executable, "-m", "cost_oracle.server.app", *args], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(lines) == 1 and want in lines[0], proc.stderr


# -- item 10: analysis processes exit with their server -----------------------------------------------
def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.update(int(x) for x in text)
    return out


@pytest.mark.slow
def test_analysis_processes_exit_when_their_server_is_killed(tmp_path: Path) -> None:
    import os
    import signal
    import time

    from test_server_harness import ServerProcess

    srv = ServerProcess(f"sqlite:///{tmp_path / 'c.sqlite'}", "--analyze-processes", "2", log_dir=tmp_path).start()
    assert srv.proc is not None
    deadline = time.time() + 120
    kids: set[int] = set()
    while time.time() < deadline:  # the pool is started in the background at start-up
        kids = {k for k in _children(srv.proc.pid) if Path(f"/proc/{k}/cmdline").read_bytes().count(b"spawn")}
        if len(kids) >= 2:
            break
        time.sleep(0.2)
    assert len(kids) >= 2, "the analysis processes did not start"
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait()
    end = time.time() + 15
    while time.time() < end and any(Path(f"/proc/{k}").exists() and
                                    "zombie" not in Path(f"/proc/{k}/status").read_text().lower() for k in kids):
        time.sleep(0.2)
    alive = [k for k in kids if Path(f"/proc/{k}").exists()
             and "zombie" not in Path(f"/proc/{k}/status").read_text().lower()]
    assert alive == [], [Path(f"/proc/{k}/cmdline").read_bytes()[:200] for k in alive]


# -- item 11: unknown group fields are skipped, as protobuf skips them --------------------------------
def _group(number: int, inner: bytes) -> bytes:
    return bytes([number << 3 | 3]) + inner + bytes([number << 3 | 4])


@pytest.mark.parametrize("extra", [
    _group(14, b"\x08\x05"),                               # a group holding a varint
    _group(13, _group(12, b"\x12\x02ab") + b"\x0d" + b"\x00" * 4),  # nested, with bytes and fixed32
], ids=["flat", "nested"])
def test_unknown_group_fields_are_skipped_like_protobuf(stub, extra: bytes) -> None:
    req = pb.GetCostBatchRequest(candidates=cands(2), context=pb.Context(resolution=16))
    raw = req.SerializeToString() + extra
    parsed = pb.GetCostBatchRequest.FromString(raw)  # what protobuf itself makes of it: the same request
    parsed.DiscardUnknownFields()
    assert parsed == req
    call = _channel_of(stub).unary_unary("/costoracle.v1.CostOracle/GetCostBatch", request_serializer=lambda b: b,
                                        response_deserializer=pb.GetCostBatchResponse.FromString)
    resp = call(raw, timeout=30)
    assert [r.WhichOneof("result") for r in resp.results] == ["report", "report"]


def test_broken_groups_are_invalid_argument(stub) -> None:
    call = _channel_of(stub).unary_unary("/costoracle.v1.CostOracle/GetCostBatch", request_serializer=lambda b: b,
                                        response_deserializer=lambda b: b)
    for blob in (bytes([14 << 3 | 3]) + b"\x08\x05",                   # never ends
                 bytes([14 << 3 | 3, 13 << 3 | 4]),                    # ends with another number
                 bytes([14 << 3 | 3]) * 200 + bytes([14 << 3 | 4]) * 200):  # nested too deep
        with pytest.raises(grpc.RpcError) as err:
            call(blob, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _channel_of(stub: oracle_pb2_grpc.CostOracleStub) -> grpc.Channel:
    return stub._test_channel


@contextlib.contextmanager
def _warm_server(db_url: str, **config: Any) -> Iterator[oracle_pb2_grpc.CostOracleStub]:
    """A server on ``db_url`` that has answered one request (its connections are open)."""
    srv = start(ServerConfig(db_url=db_url, port=0, **config))
    channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
    stub = oracle_pb2_grpc.CostOracleStub(channel)
    try:
        assert stub.GetCost(pb.GetCostRequest(candidate=cands(1)[0], context=pb.Context(resolution=16)),
                            timeout=60).report.macs > 0
        yield stub
    finally:
        channel.close()
        srv.stop(0)


# -- item 6: the cache database down is UNAVAILABLE, and the server reconnects ------------------------
@pytest.mark.slow
def test_database_down_is_unavailable_and_the_server_reconnects(pg_db_url: str) -> None:
    import pg

    with _warm_server(pg_db_url, db_patience_s=1.0) as stub:
        pg.stop_server(pg_db_url)
        try:
            t0 = time.monotonic()
            with pytest.raises(grpc.RpcError) as err:  # a cold request needs the database
                stub.GetCost(pb.GetCostRequest(candidate=cands(1, 60)[0], context=pb.Context(resolution=16)),
                             timeout=60)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
            assert time.monotonic() - t0 >= 1.0  # it waited out its patience first
        finally:
            pg.start_server(pg_db_url)
        again = stub.GetCost(pb.GetCostRequest(candidate=cands(1, 60)[0], context=pb.Context(resolution=16)),
                             timeout=60)
        assert again.report.macs > 0 and not again.report.cache_hit


@pytest.mark.slow
def test_a_request_sent_while_the_database_restarts_is_answered_once_it_is_back(pg_db_url: str) -> None:
    import pg

    with _warm_server(pg_db_url) as stub:  # the default patience (10 s)
        pg.stop_server(pg_db_url)
        answer: list[Any] = []

        def ask() -> None:
            try:
                answer.append(stub.GetCost(pb.GetCostRequest(candidate=cands(1, 61)[0],
                                                             context=pb.Context(resolution=16)), timeout=60))
            except grpc.RpcError as exc:
                answer.append(exc)

        t = threading.Thread(target=ask)
        t.start()
        time.sleep(1.5)
        assert not answer  # still waiting for the database
        pg.start_server(pg_db_url)
        t.join(timeout=60)
        assert answer and not isinstance(answer[0], grpc.RpcError), answer
        assert answer[0].report.macs > 0 and not answer[0].report.cache_hit


# -- item 5 (part): the Pareto front over distinct points, O(n log n) for two objectives -------------
def _front_brute(points: list[tuple[int, ...]]) -> list[int]:
    def dominates(q: tuple[int, ...], p: tuple[int, ...]) -> bool:
        return all(a <= b for a, b in zip(q, p, strict=True)) and any(a < b for a, b in zip(q, p, strict=True))

    return [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]


@pytest.mark.parametrize("dims", [2, 3])
def test_pareto_front_equals_the_definition_with_duplicates(dims: int) -> None:
    import random

    from cost_oracle.contract.budget import pareto_front

    rng = random.Random(dims)
    for _ in range(300):
        n = rng.randint(0, 40)
        pts = [tuple(rng.randint(0, 6) for _ in range(dims)) for _ in range(n)]
        pts += [rng.choice(pts) for _ in range(rng.randint(0, 10))] if pts else []  # duplicates
        assert pareto_front(pts) == _front_brute(pts)


def test_filter_of_thousands_of_identical_candidates_with_pareto_fields(stub) -> None:
    same = cands(1)[0]
    resp = stub.Filter(pb.FilterRequest(candidates=[same] * 4000, context=pb.Context(resolution=16),
                                        budget=pb.Budget(max_params=10**9),
                                        pareto_fields=[pb.COST_FIELD_MACS, pb.COST_FIELD_PARAMS]), timeout=120)
    assert len(resp.feasible) == 4000 and list(resp.pareto_front) == list(range(4000))  # ties all kept


# -- item 13: an oversize unary answer is refused while it is being built --------------------------------
def test_oversize_unary_answer_is_refused_early(tmp_path: Path) -> None:
    from test_server import rich

    srv = start(ServerConfig(db_url=f"sqlite:///{tmp_path / 'c.sqlite'}", port=0, max_message_bytes=200_000))
    channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
    stub = oracle_pb2_grpc.CostOracleStub(channel)
    try:
        batch = cands(600)  # ~2 KB each at full detail: ~1.2 MB in all
        with pytest.raises(grpc.RpcError) as err:
            stub.GetCostBatch(pb.GetCostBatchRequest(candidates=batch, context=pb.Context(resolution=16),
                                                     detail=pb.DETAIL_FULL), timeout=120)
        code, _, quotas = rich(err.value)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and quotas == ["max_message_bytes"]
        assert "StreamCostBatch" in err.value.details() and "refused after" in err.value.details()
        stored = stub.GetCacheStats(pb.GetCacheStatsRequest(), timeout=10).entries_by_kind["cost"]
        assert stored < 600  # it stopped building: the rest was never analyzed
        # the same candidates stream fine
        streamed = stub.StreamCostBatch(pb.StreamCostBatchRequest(candidates=batch, context=pb.Context(resolution=16),
                                                                  detail=pb.DETAIL_FULL, chunk_size=50), timeout=120)
        assert sum(len(m.results) for m in streamed) == 600
    finally:
        channel.close()
        srv.stop(0)


# -- item 9 (part): the candidate memo is bounded by bytes ----------------------------------------------
def test_candidate_memo_is_bounded_by_bytes(tmp_path: Path) -> None:
    from cost_engine.spec import MBConvSpec, NetworkSpec
    from cost_oracle.server.oracle import Oracle
    from cost_oracle.server.servicer import CostOracleServicer

    def net(i: int) -> bytes:
        blocks = tuple(MBConvSpec(out_channels=16 + (i + j) % 64) for j in range(256))
        spec = NetworkSpec(stem=(ConvSpec(out_channels=16, stride=2),), stages=(blocks,), head=())
        return convert.candidate_to_proto(spec).SerializeToString()

    with Oracle(f"sqlite:///{tmp_path / 'c.sqlite'}") as oracle:
        servicer = CostOracleServicer(oracle, candidate_memo_bytes=200_000)
        for i in range(40):  # ~9 KB on the wire each, ~50 KB in the memo's estimate
            servicer._prepare(net(i), "candidate")
        stats = servicer._candidates
        assert 0 < stats.bytes <= 200_000 and len(stats) <= 5


# -- item 5 (part): sweeps bounded before they are expanded ------------------------------------------
def test_a_cubic_compound_grid_is_refused_before_it_is_walked(stub) -> None:
    from test_server import rich

    axis = [1.0 + i / 1000 for i in range(400)]  # 400^3 = 64M combinations
    req = pb.SweepRequest(efficientnet_compound=pb.EfficientNetCompoundSpace(alpha=axis, beta=axis, gamma=axis,
                                                                             phi=[1]))
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Sweep(req, timeout=60))
    code, _, quotas = rich(err.value)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and quotas == ["max_sweep_size"]


def test_a_fasternet_stage_of_ten_million_blocks_is_a_field_violation(stub) -> None:
    from test_server import rich

    req = pb.SweepRequest(fasternet=pb.FasterNetSpace(depths=[pb.Depths(depths=[1, 2, 10**7, 2])]))
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Sweep(req, timeout=60))
    code, violations, _ = rich(err.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [p for p, _ in violations] == ["fasternet.depths[0].depths[2]"]


# -- item 7: waiting on measurements does not hold the request threads -----------------------------
def test_measuring_clients_do_not_starve_analytic_ones(tmp_path: Path) -> None:
    """2 work slots, 3 waiting slots, 5 measuring clients whose sessions take seconds: 3 wait
    (on threads of their own), 2 are refused at once naming the limit, and meanwhile
    GetServerInfo and a cached GetCost answer as on an idle server."""
    import threading
    import time

    with FakeWorker(delay_s=1.5):
        srv = start(ServerConfig(db_url=f"sqlite:///{tmp_path / 'c.sqlite'}", port=0, workers=2,
                                 latency_waiters=3))
        channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
        try:
            stub = oracle_pb2_grpc.CostOracleStub(channel)
            cached = cands(1, 99)[0]
            stub.GetCost(pb.GetCostRequest(candidate=cached, context=pb.Context(resolution=16)), timeout=30)
            outcomes: list[Any] = []

            def measure(c: pb.Candidate) -> None:
                try:
                    r = stub.GetCost(pb.GetCostRequest(candidate=c, context=CTX))  # no deadline
                    outcomes.append(r.report.latency.runs)
                except grpc.RpcError as exc:
                    outcomes.append(exc)

            threads = [threading.Thread(target=measure, args=(c,)) for c in cands(5, 50)]
            for t in threads:
                t.start()
            gate = srv.oracle.gate
            end = time.monotonic() + 60
            while (gate.waiting_now < 3 or gate.refused < 2) and time.monotonic() < end:
                time.sleep(0.01)
            assert gate.waiting_now == 3 and gate.refused == 2
            # both work slots are free while 3 requests wait: analytic calls are answered now
            for _ in range(5):
                assert stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=5).server_version
                hit = stub.GetCost(pb.GetCostRequest(candidate=cached, context=pb.Context(resolution=16)),
                                   timeout=5)
                assert hit.report.macs > 0
            assert gate.waiting_now >= 1  # they were still waiting during the probes
            for t in threads:
                t.join(120)
        finally:
            channel.close()
            srv.stop(0)
    refused = [o for o in outcomes if isinstance(o, grpc.RpcError)]
    assert len(refused) == 2 and sorted(o for o in outcomes if not isinstance(o, grpc.RpcError))[0] > 0
    for exc in refused:
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--latency-waiters 3" in exc.details()


# -- item 8: memory admission before a measurement is queued --------------------------------------
def test_a_measurement_the_device_cannot_hold_is_refused_before_it_is_queued(stub, monkeypatch) -> None:
    from cost_engine.latency.admission import AVAILABLE_ENV, session_bytes
    from cost_engine.latency.settings import LatencySettings

    big = cands(1, 64)[0]
    big_ctx = pb.Context(resolution=4096, batch_size=64, latency=pb.LATENCY_MODE_MEASURE, threads=1)  # ~1.3 TB
    with pytest.raises(grpc.RpcError) as err:
        stub.GetCost(pb.GetCostRequest(candidate=big, context=big_ctx), timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "GiB is free" in err.value.details() and "needs about" in err.value.details()
    q = stub.GetCacheStats(pb.GetCacheStatsRequest(), timeout=10).queue
    assert q.pending == 0 and q.in_flight == 0
    # in a batch, only the candidate that does not fit fails; the analytic answer of it stands. The
    # free memory is pinned (the override), so the small one fits on any machine however busy
    big_ctx.resolution, big_ctx.batch_size = 256, 8
    small_spec, big_spec = ConvSpec(out_channels=4, kernel_size=1), ConvSpec(out_channels=64)
    small_need = session_bytes(small_spec, LatencySettings(threads=1, resolution=256, batch_size=8, in_channels=1))
    big_need = session_bytes(big_spec, LatencySettings(threads=1, resolution=256, batch_size=8, in_channels=8))
    free = (small_need + big_need) // 2
    assert small_need < free < big_need
    monkeypatch.setenv(AVAILABLE_ENV, str(free))
    small = convert.candidate_to_proto(BlockCandidate(small_spec, 1))
    resp = stub.GetCostBatch(pb.GetCostBatchRequest(candidates=[small, big], context=big_ctx), timeout=120)
    assert resp.results[0].WhichOneof("result") == "report", resp.results[0].error
    assert resp.results[0].report.latency.runs > 0
    assert resp.results[1].WhichOneof("result") == "error"
    assert resp.results[1].error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert "GiB is free" in resp.results[1].error.message


def test_the_free_memory_override_bounds_admission(stub, monkeypatch) -> None:
    from cost_engine.latency.admission import AVAILABLE_ENV, session_bytes
    from cost_engine.latency.settings import LatencySettings

    need = session_bytes(ConvSpec(out_channels=8), LatencySettings(threads=1, resolution=16, in_channels=8))
    monkeypatch.setenv(AVAILABLE_ENV, str(need - 1))
    with pytest.raises(grpc.RpcError) as err:
        stub.GetCost(pb.GetCostRequest(candidate=cands(1)[0], context=CTX), timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    monkeypatch.setenv(AVAILABLE_ENV, str(need))
    assert stub.GetCost(pb.GetCostRequest(candidate=cands(1)[0], context=CTX), timeout=60).report.latency.runs > 0


# -- item 5 (rest): work stops when the call's deadline passes or its client cancels ---------------
def _long_sweep() -> pb.SweepRequest:
    """18,000 EfficientNet points at 100 distinct resolutions: every block cold, minutes of work."""
    return pb.SweepRequest(multipliers=pb.MultiplierSpace(
        family="efficientnet", width=[0.5 + 0.05 * i for i in range(30)], depth=[1.0, 1.2, 1.4, 1.6, 1.8, 2.0],
        resolution=[64 + 2 * i for i in range(100)]), chunk_size=64)


def _stopped(stub, reason: str) -> int:
    return stub.GetCacheStats(pb.GetCacheStatsRequest(), timeout=10).counters[f"work_stopped_{reason}"]


def _await_stop(stub, reason: str, before: int, within_s: float) -> float:
    """Wait until the server has stopped the call's work: no request is working any more (the
    work was stopped, or it had finished), and, when it was stopped, the ``reason`` counter moved."""
    import time

    gate = stub._test_server.oracle.gate
    t0 = time.monotonic()
    while gate.working_now:
        assert time.monotonic() - t0 < within_s, f"the server still works {within_s} s after the call ended"
        time.sleep(0.02)
    return time.monotonic() - t0


def test_a_sweep_past_its_deadline_stops_working(stub) -> None:
    before = _stopped(stub, "deadline")
    with pytest.raises(grpc.RpcError) as err:
        for _ in stub.Sweep(_long_sweep(), timeout=1.0):
            pass
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    _await_stop(stub, "deadline", before, within_s=5.0)  # the whole sweep takes minutes
    assert _stopped(stub, "deadline") > before  # and it was stopped, not finished
    # and a cold unary batch past its deadline, too
    before = _stopped(stub, "deadline")
    many = [convert.candidate_to_proto(BlockCandidate(  # 9,000 cold blocks: about 3.5 s of analysis here
        MBConvSpec(out_channels=8 + i % 60, kernel_size=3 + 2 * (i % 3), expand_ratio=float(3 + i % 6 // 2)),
        8 + i // 180)) for i in range(9000)]
    with pytest.raises(grpc.RpcError) as err:
        stub.GetCostBatch(pb.GetCostBatchRequest(candidates=many, context=pb.Context(resolution=64)), timeout=1.0)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    _await_stop(stub, "deadline", before, within_s=5.0)
    assert stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10).server_version  # and it answers as before


def test_a_cancelled_sweep_stops_working(stub) -> None:
    before = _stopped(stub, "cancelled")
    call = stub.Sweep(_long_sweep(), timeout=600)
    next(call)  # the first chunk arrived: the server is in the middle of the sweep
    call.cancel()
    _await_stop(stub, "cancelled", before, within_s=5.0)
    assert _stopped(stub, "cancelled") > before


# -- item 9 (rest): every memo is bounded by bytes ---------------------------------------------------
def test_the_oracle_memos_are_bounded_by_bytes_through_grpc(tmp_path: Path) -> None:
    from cost_engine.spec import NetworkSpec
    from cost_oracle.server.app import Server
    from cost_oracle.server.oracle import Oracle

    def net(i: int) -> pb.Candidate:
        blocks = tuple(MBConvSpec(out_channels=16 + (i + j) % 64) for j in range(512))
        return convert.candidate_to_proto(NetworkSpec(stem=(ConvSpec(out_channels=16, stride=2),),
                                                      stages=(blocks,), head=()))

    oracle = Oracle(f"sqlite:///{tmp_path / 'c.sqlite'}", prepared_memo_bytes=1 << 20, report_memo_bytes=1 << 20)
    srv = Server(ServerConfig(port=0), oracle=oracle).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}", options=[("grpc.max_receive_message_length", 1 << 28)])
    try:
        stub = oracle_pb2_grpc.CostOracleStub(channel)
        for i in range(12):  # ~200 KB each in the prepared memo's estimate, full breakdowns each
            r = stub.GetCost(pb.GetCostRequest(candidate=net(i), context=pb.Context(resolution=32),
                                               detail=pb.DETAIL_FULL), timeout=120)
            assert r.report.macs > 0
        # the in-process path memoizes prepared specs (the server memoizes by request bytes)
        for i in range(12, 24):
            oracle.cost(convert.candidate_from_proto(net(i)), detail="scalars")
        c = stub.GetCacheStats(pb.GetCacheStatsRequest(), timeout=10).counters
    finally:
        channel.close()
        srv.stop(0)
    assert 0 < c["prepared_memory_bytes"] <= 1 << 20 and c["prepared_memory_entries"] < 12
    assert 0 < c["report_memory_bytes"] <= 1 << 20
    assert c["breakdown_memory_bytes"] <= 1 << 20  # one full breakdown of 512 blocks is over it: not kept


def test_a_block_memo_entry_stays_within_the_bytes_the_budget_assumes() -> None:
    """The engine's per-block memos are bounded by count; the count comes from a byte budget and
    a per-entry size (cost_engine/memo.py), measured again here on blocks none has seen."""
    import gc
    import tracemalloc

    from cost_engine.analyze import analyze, block_summary
    from cost_engine.memo import BLOCK_ENTRY_BYTES, block_memo_entries
    from cost_engine.spec import NetworkSpec

    assert block_summary.cache_info().maxsize == block_memo_entries()
    nets = [NetworkSpec(stem=(ConvSpec(out_channels=16, stride=2),), stages=(tuple(
        MBConvSpec(out_channels=8 * (1 + (i + j) % 20), kernel_size=(3, 5, 7)[j % 3],
                   expand_ratio=(3.0, 4.0, 6.0)[i % 3]) for j in range(12)),), head=()) for i in range(30)]
    gc.collect()
    before_entries = block_summary.cache_info().currsize
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i, n in enumerate(nets):
            analyze(n, resolution=200 + 2 * i)  # a resolution no other test uses: every block is new
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    entries = block_summary.cache_info().currsize - before_entries
    assert entries > 100
    assert grown / entries <= BLOCK_ENTRY_BYTES, f"{grown / entries:.0f} bytes per block entry"


@pytest.mark.parametrize(("args", "env", "fragment"), [
    (("--db-patience", "-1"), {}, "db_patience_s: must be in [0, 3600], got -1.0"),
    ((), {"COST_ORACLE_DB_PATIENCE_S": "abc"}, "COST_ORACLE_DB_PATIENCE_S: cannot parse 'abc' for db_patience_s"),
])
def test_a_bad_database_patience_is_refused_naming_it(tmp_path: Path, args: tuple[str, ...], env: dict[str, str],
                                                     fragment: str) -> None:
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "cost_oracle.server.app", "--port", "0", "--db-url",
                           f"sqlite:///{tmp_path / 'c.sqlite'}", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and fragment in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
