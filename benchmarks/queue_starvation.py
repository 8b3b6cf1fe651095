"""Cached analytic queries while measuring clients fill the latency queue (issue 10, item 7).

An in-process server on loopback whose measurement sessions are simulated (``FakeWorker``:
each session sleeps ``--session-s``, so the queue stays full without loading the CPU). First
the cached ``GetCost`` latency on the idle server, then the same calls while ``--clients``
measuring clients wait on the queue, and GetServerInfo among them. Prints p50/p99 of both
phases and their ratio, measured in this run. Target: cached GetCost p99 <= 10 ms with the
queue full. Run from the repository root:

    python benchmarks/queue_starvation.py [--clients 10] [--workers 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from cost_engine.latency.testing import FakeWorker
from cost_engine.spec import ConvSpec
from cost_oracle.contract import convert
from cost_oracle.contract.types import BlockCandidate
from cost_oracle.server.app import start
from cost_oracle.server.config import ServerConfig
from costoracle.v1 import oracle_pb2 as pb
from costoracle.v1 import oracle_pb2_grpc


def timed(stub: oracle_pb2_grpc.CostOracleStub, request: pb.GetCostRequest, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        stub.GetCost(request, timeout=30)
        out.append((time.perf_counter() - t0) * 1e3)
    return sorted(out)


def p(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=10, help="measuring clients waiting on the queue")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--calls", type=int, default=500, help="cached GetCost calls per phase")
    ap.add_argument("--session-s", type=float, default=2.0, help="seconds one simulated session takes")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, FakeWorker(delay_s=args.session_s):
        srv = start(ServerConfig(db_url=f"sqlite:///{tmp}/c.sqlite", port=0, workers=args.workers,
                                 log_requests=False))
        channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
        stub = oracle_pb2_grpc.CostOracleStub(channel)
        cached = pb.GetCostRequest(candidate=convert.candidate_to_proto(BlockCandidate(ConvSpec(out_channels=8), 3)),
                                   context=pb.Context(resolution=32))
        stub.GetCost(cached, timeout=30)
        idle = timed(stub, cached, args.calls)
        measure_ctx = pb.Context(resolution=16, latency=pb.LATENCY_MODE_MEASURE, threads=1)
        threads = []
        for i in range(args.clients):
            block = BlockCandidate(ConvSpec(out_channels=9 + i), 3)
            req = pb.GetCostRequest(candidate=convert.candidate_to_proto(block), context=measure_ctx)
            threads.append(threading.Thread(target=lambda r=req: _quietly(stub, r), daemon=True))
        for t in threads:
            t.start()
        gate = srv.oracle.gate
        end = time.monotonic() + 60
        while gate.waiting_now < args.clients and time.monotonic() < end:
            time.sleep(0.01)
        waiting = gate.waiting_now
        busy = timed(stub, cached, args.calls)
        info = []
        for _ in range(20):
            t0 = time.perf_counter()
            stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=30)
            info.append((time.perf_counter() - t0) * 1e3)
        still = gate.waiting_now
        channel.close()
        srv.stop(0)
    print(f"{args.workers} work slots; {waiting} measuring clients waiting at the start of the busy phase, "
          f"{still} at its end; {args.calls} cached GetCost calls per phase")
    print(f"cached GetCost idle: p50 {p(idle, 0.5):.2f} ms, p99 {p(idle, 0.99):.2f} ms")
    print(f"cached GetCost with the queue full: p50 {p(busy, 0.5):.2f} ms, p99 {p(busy, 0.99):.2f} ms "
          f"(x{p(busy, 0.99) / p(idle, 0.99):.2f} of idle p99; target p99 <= 10 ms)")
    print(f"GetServerInfo with the queue full: median {statistics.median(info):.2f} ms, max {max(info):.2f} ms")
    return 0


def _quietly(stub: oracle_pb2_grpc.CostOracleStub, request: pb.GetCostRequest) -> None:
    with contextlib.suppress(grpc.RpcError):
        stub.GetCost(request)


if __name__ == "__main__":
    sys.exit(main())
