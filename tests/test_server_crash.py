"""SIGKILL of the server in the middle of a write-heavy sweep, then a restart on the same file:
the cache opens, and every row it holds — and every answer the new server gives — is complete
and equal to a fresh ``cost_engine.analyze``."""

from __future__ import annotations

import signal
import sqlite3
import threading
from pathlib import Path

import grpc
from test_server_harness import ServerProcess

from cost_engine import analyze
from cost_engine.families.fasternet import fasternet
from cost_engine.report import COST_MODEL_VERSION
from cost_engine.spec import to_dict
from cost_oracle.contract import convert
from cost_oracle.server.cache import CostCache, cache_key
from costoracle.v1 import oracle_pb2 as pb

N_DIV, MLP, DIMS, DEPTHS = (1, 2, 4, 8), (1.0, 1.5, 2.0, 3.0), (16, 24, 32, 40), ((1, 1, 2, 1), (1, 2, 4, 1))


def grid() -> list:
    return [fasternet(d, depths, n_div=n, mlp_ratio=m, act="gelu")
            for n in N_DIV for m in MLP for depths in DEPTHS for d in DIMS]


def test_sigkill_during_sweep_leaves_a_complete_cache(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    url = f"sqlite:///{db}"
    req = pb.SweepRequest(fasternet=pb.FasterNetSpace(n_div=N_DIV, mlp_ratio=MLP, depths=[pb.Depths(depths=d)
                                                                                          for d in DEPTHS],
                                                      embed_dim=DIMS),
                          chunk_size=4, detail=pb.DETAIL_SCALARS)
    srv = ServerProcess(url, log_dir=tmp_path).start()
    received: list[pb.SweepResponse] = []
    got_some = threading.Event()

    def consume() -> None:
        try:
            for msg in srv.stub().Sweep(req, timeout=600):
                received.append(msg)
                if len(received) >= 3:
                    got_some.set()
        except grpc.RpcError:
            pass  # the server is killed under it
        got_some.set()

    t = threading.Thread(target=consume)
    t.start()
    assert got_some.wait(300)
    srv.send(signal.SIGKILL)
    t.join(60)
    srv.stop()
    done = any(m.done for m in received)
    points = sum(len(m.points) for m in received)

    specs = grid()
    ctx = {"batch_size": 1, "resolution": 224, "dtype": "float32"}
    by_key = {cache_key(to_dict(s), ctx, COST_MODEL_VERSION): s for s in specs}
    assert len(by_key) == len(specs) == 128

    # the file opens and every stored row is one of ours, complete and correct
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        raw_rows = conn.execute("SELECT count(*) FROM cost_oracle_cache_v1").fetchone()[0]
    cache = CostCache(url)
    try:
        stored = list(cache.iter_rows(kind="cost"))
    finally:
        cache.close()
    assert stored, "the sweep wrote nothing before the kill"
    assert len(stored) == raw_rows, "some rows failed their checksum (torn or half-written)"
    for key, _kind, version, payload in stored:
        assert version == COST_MODEL_VERSION and key in by_key
        want = analyze(by_key[key]).to_dict(breakdowns=False)  # what a row holds
        want.pop("candidate")
        got = dict(payload)
        got.pop("candidate")
        assert got == want
    assert not done and points < 128, "the kill came too late to interrupt the sweep"

    # a restarted server serves every stored row as a hit, the rest computed, all correct
    with ServerProcess(url, log_dir=tmp_path) as srv2:
        resp = srv2.stub().GetCostBatch(pb.GetCostBatchRequest(
            candidates=[convert.candidate_to_proto(s) for s in specs], detail=pb.DETAIL_FULL), timeout=600)
    stored_keys = {row[0] for row in stored}
    for spec, r in zip(specs, resp.results, strict=True):
        assert r.HasField("report")
        d = convert.report_to_dict(r.report)
        assert d["cache_hit"] == (d["cache_key"] in stored_keys)
        want = analyze(spec).to_dict()
        assert {k: d[k] for k in want if k != "candidate"} == {k: v for k, v in want.items() if k != "candidate"}
