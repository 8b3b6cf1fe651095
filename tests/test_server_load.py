"""16 client threads x 1,000 mixed queries against one server process: every answer correct.

Mixed: single queries, small batches and filters, over a pool of built-ins and generated specs in
four contexts, so the server sees cold computations racing each other at first and cache hits
after. Every figure is compared with ``cost_engine.analyze`` run in this process.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import grpc
from test_server_harness import ServerProcess

from cost_engine import analyze
from cost_engine.families.efficientnet import efficientnet
from cost_engine.families.fasternet import fasternet
from cost_oracle.contract import convert
from costoracle.v1 import oracle_pb2 as pb
from costoracle.v1 import oracle_pb2_grpc

THREADS = 16
QUERIES = 1000
FIGURES = ("params", "macs", "flops", "memory_access_bytes", "memory_access_bytes_fused", "peak_activation_bytes",
           "activations", "op_count")
NAMES = ["resnet18", "mobilenet_v2", "shufflenet_v2_x1_0", "fasternet_t0", "efficientnet_b0", "regnet_x_400mf",
         "vit_tiny_patch16_224", "shufflenet_v2_x0_5"]
CONTEXTS = [(1, "float32"), (4, "float32"), (1, "float16"), (8, "bfloat16")]
DTYPE_ENUM = {"float32": pb.DTYPE_FLOAT32, "float16": pb.DTYPE_FLOAT16, "bfloat16": pb.DTYPE_BFLOAT16}


def pool() -> list:
    specs = [efficientnet(w, 1.0, r) for w, r in ((0.5, 128), (0.75, 160), (1.0, 192))]
    specs += [fasternet(d, (1, 1, 3, 1), n_div=n) for d, n in ((24, 2), (32, 4), (40, 4))]
    return [*NAMES, *specs]


def test_16_threads_x_1000_mixed_queries(tmp_path: Path) -> None:
    cands = pool()
    protos = [convert.candidate_to_proto(c) for c in cands]
    expect = {}
    for i, c in enumerate(cands):
        for b, dt in CONTEXTS:
            r = analyze(c, batch_size=b, dtype=dt)
            expect[(i, b, dt)] = {f: getattr(r, f) if f != "op_count" else r.summary.totals.ops for f in FIGURES}
    errors: list[str] = []
    counts = {"single": 0, "batch": 0, "filter": 0, "answers": 0}
    lock = threading.Lock()

    def check(i: int, b: int, dt: str, report: pb.CostReport, where: str) -> None:
        want = expect[(i, b, dt)]
        got = {f: getattr(report, f) for f in FIGURES}
        if got != want:
            errors.append(f"{where}: candidate {i} ctx {(b, dt)}: {got} != {want}")

    with ServerProcess(f"sqlite:///{tmp_path / 'c.sqlite'}", "--workers", "16", "--no-request-log",
                       log_dir=tmp_path) as srv:
        def client(seed: int) -> None:
            rng = random.Random(seed)
            stub = oracle_pb2_grpc.CostOracleStub(srv.channel())
            local = {"single": 0, "batch": 0, "filter": 0, "answers": 0}
            try:
                for q in range(QUERIES):
                    b, dt = rng.choice(CONTEXTS)
                    ctx = pb.Context(batch_size=b, dtype=DTYPE_ENUM[dt])
                    kind = rng.random()
                    if kind < 0.7:
                        i = rng.randrange(len(protos))
                        r = stub.GetCost(pb.GetCostRequest(candidate=protos[i], context=ctx,
                                                           detail=pb.DETAIL_SCALARS), timeout=120)
                        check(i, b, dt, r.report, f"t{seed} q{q} GetCost")
                        local["single"] += 1
                        local["answers"] += 1
                    elif kind < 0.9:
                        idx = [rng.randrange(len(protos)) for _ in range(rng.randint(1, 6))]
                        resp = stub.GetCostBatch(pb.GetCostBatchRequest(
                            candidates=[protos[i] for i in idx], context=ctx, detail=pb.DETAIL_SCALARS), timeout=120)
                        for i, res in zip(idx, resp.results, strict=True):
                            if not res.HasField("report"):
                                errors.append(f"t{seed} q{q} batch item error {res.error.message}")
                                continue
                            check(i, b, dt, res.report, f"t{seed} q{q} GetCostBatch")
                        local["batch"] += 1
                        local["answers"] += len(idx)
                    else:
                        idx = [rng.randrange(len(protos)) for _ in range(rng.randint(1, 4))]
                        limit = rng.choice((300_000_000, 1_000_000_000))
                        resp = stub.Filter(pb.FilterRequest(candidates=[protos[i] for i in idx], context=ctx,
                                                            budget=pb.Budget(max_macs=limit)), timeout=120)
                        for i, res in zip(idx, resp.results, strict=True):
                            if res.feasible != (expect[(i, b, dt)]["macs"] <= limit):
                                errors.append(f"t{seed} q{q} Filter candidate {i} feasible={res.feasible}")
                        local["filter"] += 1
                        local["answers"] += len(idx)
            except grpc.RpcError as exc:
                errors.append(f"t{seed}: {exc.code()} {exc.details()}")
            with lock:
                for k, v in local.items():
                    counts[k] += v

        start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(s,)) for s in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        stats = srv.stub().GetCacheStats(pb.GetCacheStatsRequest(), timeout=60)
    assert not errors, errors[:10]
    assert counts["single"] + counts["batch"] + counts["filter"] == THREADS * QUERIES
    assert stats.entries == len(cands) * len(CONTEXTS)
    print(f"\n{THREADS * QUERIES} queries ({counts['answers']} answers) in {elapsed:.1f}s: "
          f"{THREADS * QUERIES / elapsed:.0f} queries/s, hit rate {stats.hit_rate:.4f}")
