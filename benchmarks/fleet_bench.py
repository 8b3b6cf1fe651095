"""Fleet benchmark: measurement jobs per second with 1, 2 and 4 workers on one PostgreSQL, and the
queue's own overhead per job (claim + store + done).

Run: ``python benchmarks/fleet_bench.py [--job-ms 200] [--jobs 40] [--workers 1,2,4]``. Starts a
private PostgreSQL cluster (``tests/pg.py``), enqueues ``--jobs`` distinct measurement jobs per
round through the job table (as a ``--measure-on fleet`` server does), and times how long N
worker processes on the simulated device (``cost_engine/latency/testing.py``: each job sleeps
``--job-ms``, so a job takes a known time and the workers do not compete for the CPU the way real
timing would) take to drain them. The ratio to one worker is the result (target: >= 3.5x at 4
workers for 200 ms jobs). The overhead per job is measured with jobs of 0 ms and one worker:
wall time per job minus the simulated measurement's own CPU time, i.e. what the table costs.

Everything is measured in this one run; absolute numbers move with the machine's load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import pg  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from cost_engine.latency import LatencySettings  # noqa: E402
from cost_engine.spec import ConvSpec, LinearSpec, NetworkSpec, PoolSpec, to_dict  # noqa: E402

WORKER = r"""
import sys, signal
from cost_engine.latency.testing import FakeWorker
from cost_oracle.server.fleet_worker import FleetWorker
url, delay = sys.argv[1], float(sys.argv[2])
with FakeWorker(delay_s=delay):
    w = FleetWorker(url, "cpu", threads=1, poll_s=0.01, sessions=1)
    signal.signal(signal.SIGTERM, lambda *_: w.stop())
    print("ready " + w.fid + " " + __import__("json").dumps(w.fp), flush=True)
    w.run()
"""


def network(i: int) -> NetworkSpec:
    return NetworkSpec(stem=(ConvSpec(8 + i, stride=2),), stages=((ConvSpec(16),),),
                       head=(PoolSpec("global_avg", flatten=True), LinearSpec(10)), resolution=32)


def start_workers(url: str, n: int, delay_s: float) -> tuple[list[subprocess.Popen[str]], str, dict]:
    procs, fid, fp = [], "", {}
    for _ in range(n):
        p = subprocess.Popen([sys.executable, "-c", WORKER, url, str(delay_s)], stdout=subprocess.PIPE, text=True,
                             cwd=ROOT)
        line = p.stdout.readline().split(" ", 2)  # type: ignore[union-attr]
        assert line[0] == "ready", line
        fid, fp = line[1], json.loads(line[2])
        procs.append(p)
    return procs, fid, fp


def stop(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)


def drain_s(url: str, n_workers: int, n_jobs: int, delay_s: float, offset: int) -> float:
    """Seconds for ``n_workers`` to finish ``n_jobs`` new jobs (timed from the enqueue)."""
    from cost_engine.latency.measure import latency_key
    from cost_oracle.server.fleet import Fleet

    procs, fid, fp = start_workers(url, n_workers, delay_s)
    fleet = Fleet(url)
    try:
        settings = LatencySettings(device="cpu", threads=1)
        jobs = []
        for i in range(offset, offset + n_jobs):
            net = network(i)
            key = latency_key(net, settings, {**fp, "threads": 1})
            jobs.append((key, "cpu", fid, {"candidate": to_dict(net), "settings": dataclasses.asdict(settings)}))
        t0 = time.perf_counter()
        fleet.enqueue(jobs)
        keys = [j[0] for j in jobs]
        while True:
            states = fleet.states(keys)
            if sum(s == "done" for s, _ in states.values()) == n_jobs:
                break
            bad = [e for s, e in states.values() if s == "failed"]
            if bad:
                raise RuntimeError(f"a job failed: {bad[0]}")
            time.sleep(0.005)
        return time.perf_counter() - t0
    finally:
        fleet.close()
        stop(procs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--job-ms", type=float, default=200.0, help="simulated measurement time per job")
    ap.add_argument("--jobs", type=int, default=40, help="jobs per round")
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--overhead-jobs", type=int, default=100)
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    print(f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f} at the start")
    with pg.postgres_cluster("fleet_bench") as url:
        offset = 0
        base = pg.create_database(url, "warm")
        drain_s(base, 1, 2, 0.0, offset)  # imports and the schema, once
        offset += 2
        # the table's own cost: 0 ms jobs, one worker; minus what the simulated measurement itself takes
        sim = _simulated_cpu_s()
        t = drain_s(base, 1, args.overhead_jobs, 0.0, offset)
        offset += args.overhead_jobs
        per_job = t / args.overhead_jobs
        print(f"queue overhead: {per_job * 1e3:.1f} ms per job wall with 0 ms jobs (one worker), of which "
              f"{sim * 1e3:.1f} ms is the simulated measurement's own work: {max(0.0, per_job - sim) * 1e3:.1f} ms "
              "for claim + store + done + the waiter's poll")
        rates: dict[int, float] = {}
        for n in counts:
            db = pg.create_database(url, f"w{n}")
            t = drain_s(db, n, args.jobs, args.job_ms / 1e3, offset)
            offset += args.jobs
            rates[n] = args.jobs / t
            ideal = n * 1e3 / args.job_ms
            print(f"{n} worker(s): {rates[n]:.2f} jobs/s for {args.job_ms:.0f} ms jobs ({t:.2f} s for {args.jobs}; "
                  f"ideal {ideal:.2f}/s)")
        one = rates.get(1)
        if one:
            for n in counts:
                if n != 1:
                    target = " (target >= 3.5x)" if n == 4 else ""
                    print(f"speed-up with {n} workers: {rates[n] / one:.2f}x{target}")
        eng = create_engine(base)
        with eng.connect() as conn:
            left = conn.execute(text("SELECT count(*) FROM latency_jobs WHERE state <> 'done'")).scalar()
        eng.dispose()
        print(f"jobs not done at the end: {left}; load average {os.getloadavg()[0]:.2f} at the end")
    return 0


def _simulated_cpu_s() -> float:
    """The simulated device's own work for one job (timing loops on a virtual clock, the result
    written to an in-memory cache): what a 0 ms job costs without any queue."""
    from cost_engine.latency import MemoryCache, measure
    from cost_engine.latency.testing import FakeWorker

    settings = LatencySettings(device="cpu", threads=1)
    with FakeWorker(delay_s=0.0):
        cache = MemoryCache()
        measure(network(10_000), settings, cache=cache, sessions=1)
        t0 = time.perf_counter()
        for i in range(20):
            measure(network(10_001 + i), settings, cache=cache, sessions=1)
        return (time.perf_counter() - t0) / 20


if __name__ == "__main__":
    raise SystemExit(main())
