"""The measurement fleet (issue #14): servers with ``--measure-on fleet`` enqueue latency jobs in
the shared PostgreSQL, ``cost-oracle worker`` processes claim and measure them.

Workers here are real processes (they are SIGKILLed) on the simulated device of
``cost_engine/latency/testing.py``, so a job takes a known time: run as a script, this file is
that worker (``python tests/test_fleet.py worker URL LOG DELAY LEASE``), and it appends the key of
every measurement it finished to LOG, which is how "measured exactly once" is counted. Servers
are real gRPC servers in this process. The cluster is durable (synchronous commit on) so that a
``pg_ctl stop -m immediate`` in the middle of a run loses nothing committed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pg
import pytest
from sqlalchemy import create_engine, text

from cost_engine.spec import ConvSpec, LinearSpec, NetworkSpec, PoolSpec
from cost_oracle.contract.convert import candidate_to_proto
from cost_oracle.server.app import start
from cost_oracle.server.config import ServerConfig
from costoracle.v1 import oracle_pb2 as pb
from costoracle.v1 import oracle_pb2_grpc

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[1]
CTX = pb.Context(resolution=32, latency=pb.LATENCY_MODE_MEASURE, device="cpu", threads=1)


def _worker_main(url: str, log: str, delay_s: float, lease_s: float) -> None:
    from cost_engine.latency.testing import FakeWorker
    from cost_oracle.server.fleet_worker import FleetWorker

    def measured(key: str) -> None:
        with open(log, "a") as f:
            f.write(key + "\n")
            f.flush()
            os.fsync(f.fileno())

    with FakeWorker(delay_s=delay_s):
        w = FleetWorker(url, "cpu", threads=1, lease_s=lease_s, heartbeat_s=min(0.5, lease_s / 4), poll_s=0.02,
                        sessions=1, on_measured=measured)
        signal.signal(signal.SIGTERM, lambda *_: w.stop())
        print("ready", flush=True)
        w.run()


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def durable_pg() -> Iterator[str]:
    reason = pg.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with pg.postgres_cluster("fleet", durable=True) as url:
        yield url


_dbs = iter(range(10**6))


@pytest.fixture
def db(durable_pg: str) -> Iterator[str]:
    url = pg.create_database(durable_pg, f"fleet{next(_dbs)}")
    yield url
    pg.drop_database(url)


class Workers:
    """Worker processes of one test (stopped at its end)."""

    def __init__(self, url: str, tmp: Path):
        self.url = url
        self.tmp = tmp
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, delay_s: float = 0.2, lease_s: float = 5.0) -> subprocess.Popen[str]:
        log = self.tmp / f"worker{len(self.procs)}.log"
        log.touch()
        with open(self.tmp / f"worker{len(self.procs)}.err", "w") as err:
            p = subprocess.Popen([sys.executable, __file__, "worker", self.url, str(log), str(delay_s), str(lease_s)],
                                 stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        p.log = log  # type: ignore[attr-defined]
        self.procs.append(p)
        return p

    def measured(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for p in self.procs:
            out.update(k for k in p.log.read_text().split() if k)  # type: ignore[attr-defined]
        return out

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture
def workers(db: str, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(db, tmp_path)
    yield w
    w.stop()


@pytest.fixture
def servers(db: str) -> Iterator[list[Any]]:
    out: list[Any] = []
    yield out
    for s in out:
        s.stop(grace=1)


def serve(db: str, servers: list[Any]) -> oracle_pb2_grpc.CostOracleStub:
    srv = start(ServerConfig(db_url=db, port=0, measure_on="fleet", workers=8, latency_waiters=256,
                             analyze_processes=0, log_requests=False))
    servers.append(srv)
    return oracle_pb2_grpc.CostOracleStub(grpc.insecure_channel(f"127.0.0.1:{srv.port}"))


def candidate(i: int) -> Any:
    """Distinct small networks (conv widths differ)."""
    net = NetworkSpec(stem=(ConvSpec(8 + i, stride=2),), stages=((ConvSpec(16),),),
                      head=(PoolSpec("global_avg", flatten=True), LinearSpec(10)), resolution=32)
    return candidate_to_proto(net)


def jobs(url: str) -> dict[str, tuple[str, int]]:
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            return {k: (s, a) for k, s, a in conn.execute(text("SELECT key, state, attempts FROM latency_jobs"))}
    finally:
        eng.dispose()


def ask_all(stubs: list[Any], asks: list[int], timeout: float = 120) -> list[Any]:
    """GetCost with measured latency for candidate ``asks[j]``, spread over ``stubs``, in parallel."""
    out: list[Any] = [None] * len(asks)

    def one(j: int) -> None:
        stub = stubs[j % len(stubs)]
        try:
            req = pb.GetCostRequest(candidate=candidate(asks[j]), context=CTX, detail=pb.DETAIL_SCALARS)
            out[j] = stub.GetCost(req, timeout=timeout)
        except grpc.RpcError as exc:
            out[j] = exc

    threads = [threading.Thread(target=one, args=(j,)) for j in range(len(asks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


# -- tests ----------------------------------------------------------------------------------------
def test_two_servers_two_workers_measure_every_key_exactly_once(db: str, workers: Workers,
                                                               servers: list[Any]) -> None:
    workers.start(delay_s=0.05)
    workers.start(delay_s=0.05)
    stubs = [serve(db, servers), serve(db, servers)]
    asks = [j % 40 for j in range(200)]  # 40 distinct candidates, 5 requests each, over both servers
    answers = ask_all(stubs, asks)
    errors = [a for a in answers if isinstance(a, grpc.RpcError)]
    assert not errors, [(e.code(), e.details()) for e in errors[:3]]
    measured = workers.measured()
    assert len(measured) == 40 and set(measured.values()) == {1}, measured.most_common(3)
    # every request got the stored result: the same figure for the same candidate, whichever server
    by_candidate: dict[int, set[float]] = {}
    for i, a in zip(asks, answers, strict=True):
        assert a.report.latency.runs > 0 and a.report.sources["latency"] == pb.SOURCE_MEASURED
        by_candidate.setdefault(i, set()).add(a.report.latency.median_ms)
    assert all(len(v) == 1 for v in by_candidate.values())
    table = jobs(db)
    assert len(table) == 40 and {s for s, _ in table.values()} == {"done"}
    # both workers took part, and the stats say what the table holds
    assert all(p.log.read_text().strip() for p in workers.procs)  # type: ignore[attr-defined]
    stats = stubs[0].GetCacheStats(pb.GetCacheStatsRequest(), timeout=10)
    assert stats.queue.measure_on == "fleet"
    assert stats.queue.devices["cpu"].done == 40 and stats.queue.devices["cpu"].workers == 2
    info = stubs[1].GetServerInfo(pb.GetServerInfoRequest(), timeout=10)
    assert [d.name for d in info.devices] == ["cpu"] and info.devices[0].fingerprint["fleet_workers"] == "2"


def test_a_device_nobody_serves_is_failed_precondition_at_once(db: str, workers: Workers,
                                                              servers: list[Any]) -> None:
    workers.start()
    stub = serve(db, servers)
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        stub.GetCost(pb.GetCostRequest(candidate=candidate(1), context=pb.Context(
            resolution=32, latency=pb.LATENCY_MODE_MEASURE, device="cuda:0")), timeout=30)
    assert time.monotonic() - t0 < 5
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "cuda:0" in err.value.details() and "live devices: cpu" in err.value.details()
    assert jobs(db) == {}


def test_a_worker_killed_mid_job_loses_its_lease_and_the_other_worker_finishes_it(
        db: str, workers: Workers, servers: list[Any]) -> None:
    first = workers.start(delay_s=4.0, lease_s=1.5)
    stub = serve(db, servers)
    answer: list[Any] = []
    t = threading.Thread(target=lambda: answer.extend(ask_all([stub], [7], timeout=60)))
    t.start()
    end = time.monotonic() + 20
    while time.monotonic() < end and not any(s == "running" for s, _ in jobs(db).values()):
        time.sleep(0.05)
    assert [s for s, _ in jobs(db).values()] == ["running"]
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    second = workers.start(delay_s=0.05, lease_s=1.5)
    t.join(timeout=60)
    assert answer and not isinstance(answer[0], grpc.RpcError), answer
    assert answer[0].report.latency.runs > 0
    assert workers.measured() == Counter({next(iter(jobs(db))): 1})  # the second worker's measurement
    assert second.log.read_text().strip() and not first.log.read_text().strip()  # type: ignore[attr-defined]
    [(state, attempts)] = jobs(db).values()
    assert state == "done" and attempts == 2


def test_postgresql_restarted_mid_run_every_request_answered_no_key_twice(
        db: str, workers: Workers, servers: list[Any]) -> None:
    workers.start(delay_s=0.3)
    workers.start(delay_s=0.3)
    stubs = [serve(db, servers), serve(db, servers)]
    asks = [j % 20 for j in range(60)]
    answers: list[Any] = []
    t = threading.Thread(target=lambda: answers.extend(ask_all(stubs, asks, timeout=180)))
    t.start()
    # wait until every job is in the table and some are done, then crash the database
    end = time.monotonic() + 60
    while time.monotonic() < end:
        states = Counter(s for s, _ in jobs(db).values())
        if sum(states.values()) == 20 and states["done"] >= 2:
            break
        time.sleep(0.05)
    assert sum(states.values()) == 20 and states["done"] < 20, states
    pg.stop_server(db, mode="immediate")
    time.sleep(2.0)
    pg.start_server(db)
    t.join(timeout=180)
    errors = [a for a in answers if isinstance(a, grpc.RpcError)]
    assert len(answers) == 60 and not errors, [(e.code(), e.details()) for e in errors[:3]]
    measured = workers.measured()
    assert len(measured) == 20 and set(measured.values()) == {1}, measured.most_common(3)
    assert {s for s, _ in jobs(db).values()} == {"done"}


def test_a_request_that_gives_up_does_not_cancel_the_job_another_waits_for(db: str, workers: Workers,
                                                                          servers: list[Any]) -> None:
    workers.start(delay_s=2.0)
    impatient, patient = serve(db, servers), serve(db, servers)
    out: dict[str, Any] = {}

    def ask(name: str, stub: Any, timeout: float) -> None:
        out[name] = ask_all([stub], [5], timeout=timeout)[0]

    t1 = threading.Thread(target=ask, args=("impatient", impatient, 0.7))
    t2 = threading.Thread(target=ask, args=("patient", patient, 60))
    t1.start()
    time.sleep(0.2)
    t2.start()
    t1.join()
    t2.join()
    assert isinstance(out["impatient"], grpc.RpcError)
    assert out["impatient"].code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert not isinstance(out["patient"], grpc.RpcError) and out["patient"].report.latency.runs > 0
    assert set(workers.measured().values()) == {1} and len(workers.measured()) == 1
    # asked again after it is done: served from the shared cache, not measured again
    again = ask_all([impatient], [5], timeout=10)[0]
    assert again.report.latency.median_ms == out["patient"].report.latency.median_ms
    assert len(workers.measured()) == 1


def test_auto_mode_answers_from_the_fleets_measurements_and_says_what_it_cannot_predict(
        db: str, workers: Workers, servers: list[Any]) -> None:
    workers.start(delay_s=0.05)
    stub = serve(db, servers)
    measured = ask_all([stub], [9])[0]
    auto = pb.Context(resolution=32, latency=pb.LATENCY_MODE_AUTO, device="cpu", threads=1)
    again = stub.GetCost(pb.GetCostRequest(candidate=candidate(9), context=auto, detail=pb.DETAIL_SCALARS), timeout=30)
    assert again.report.latency.median_ms == measured.report.latency.median_ms
    assert again.report.sources["latency"] == pb.SOURCE_MEASURED
    with pytest.raises(grpc.RpcError) as err:  # nothing stored for this one, and no prediction on a fleet
        stub.GetCost(pb.GetCostRequest(candidate=candidate(10), context=auto), timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "--measure-on fleet" in err.value.details()
    assert len(workers.measured()) == 1


def test_a_job_that_keeps_failing_is_failed_with_its_error_for_every_waiter(db: str, servers: list[Any]) -> None:
    """No worker process: the job table is driven by hand, as a worker that fails three times."""
    from cost_oracle.server.fleet import Fleet

    fleet = Fleet(db)
    fp = {"device": "cpu", "cpu_model": "sim", "threads": 1}
    fleet.register("w1", "cpu", fp, 1, "host")
    stub = serve(db, servers)
    answers: list[Any] = []
    t = threading.Thread(target=lambda: answers.extend(ask_all([stub, stub], [3, 3], timeout=60)))
    t.start()
    end = time.monotonic() + 20
    while time.monotonic() < end and not jobs(db):
        time.sleep(0.05)
    from cost_oracle.server.fleet import fingerprint_id

    for _ in range(3):
        claim = fleet.claim("w1", fingerprint_id(fp))
        assert claim is not None
        fleet.fail("w1", claim.key, "RuntimeError: simulated device fault")
    t.join(timeout=60)
    assert len(answers) == 2
    for a in answers:
        assert isinstance(a, grpc.RpcError) and a.code() == grpc.StatusCode.INTERNAL
        assert "simulated device fault" in a.details()
    assert [s for s, _ in jobs(db).values()] == ["failed"]
    fleet.close()


def test_the_cli_worker_measures_for_real_on_this_cpu(db: str, servers: list[Any], tmp_path: Path) -> None:
    """``cost-oracle worker`` as an operator runs it (no simulated device): one real measurement."""
    stub = serve(db, servers)
    with open(tmp_path / "worker.err", "w") as err:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "cost-oracle"), "worker", "--db-url", db,
                                 "--device", "cpu", "--threads", "1", "--max-jobs", "1"], stderr=err, cwd=ROOT)
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and not stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10).devices:
            time.sleep(0.2)
        [answer] = ask_all([stub], [0], timeout=300)
        assert not isinstance(answer, grpc.RpcError), (answer.code(), answer.details())
        assert answer.report.latency.median_ms > 0 and answer.report.latency.method == "paired"
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "worker.err").read_text()
    assert "serving cpu" in log and "stopped after 1 done, 0 failed" in log, log


def test_servers_and_workers_starting_together_create_the_tables_once(db: str) -> None:
    from cost_oracle.server.fleet import Fleet

    errors: list[str] = []

    def open_one() -> None:
        try:
            Fleet(db).close()
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert jobs(db) == {}


def test_fleet_needs_postgresql_and_the_worker_cli_says_what_is_wrong(tmp_path: Path) -> None:
    cfg = ServerConfig(db_url=f"sqlite:///{tmp_path / 'c.sqlite'}", measure_on="fleet")
    assert any("measure_on" in e and "PostgreSQL" in e for e in cfg.errors())
    run = subprocess.run([sys.executable, "-m", "cost_oracle.client.cli", "worker", "--db-url",
                          f"sqlite:///{tmp_path / 'c.sqlite'}"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode != 0 and "--db-url" in run.stderr and "Traceback" not in run.stderr


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        _worker_main(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
