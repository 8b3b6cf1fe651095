"""The measurement fleet's job table in the shared PostgreSQL: device hosts pull latency jobs.

Latency must be timed on the device it is for, and one server can only time on its own. With
``--measure-on fleet`` a server enqueues a job per latency key in this table and waits for its
result; ``cost-oracle worker`` processes on the device hosts (``server/fleet_worker.py``)
register their device fingerprint with a heartbeat, claim jobs for it, time them with the same
``cost_engine.latency.measure`` the local queue runs, and write the result into the shared cache.
No broker beyond the PostgreSQL the shared cache already needs.

Why a plain table and not a job-queue library: per-key deduplication is the table's primary key
(``INSERT ... ON CONFLICT DO NOTHING``: at most one live job per key across every server and
worker, no check-then-insert race), a claim is one ``UPDATE ... WHERE key = (SELECT ... FOR
UPDATE SKIP LOCKED)`` that takes the oldest queued job of the worker's fingerprint (or one whose
lease ran out), and a lease is a column the worker's heartbeat extends. procrastinate and pgqueuer
give leases and queues but dedupe by their own "queueing lock"/job ids and bring their own
schema, migrations and async workers; these ~200 lines are the whole mechanism.

Times are the database's clock (``clock_timestamp()``), so hosts with skewed clocks agree on
leases and heartbeats. Every statement is its own short transaction and is retried when the
database restarts (``pool_pre_ping`` and a reconnecting retry), so servers and workers survive a
PostgreSQL restart; nothing is double-counted because a job's state only moves forward through
conditional updates on its own row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Column, Float, Index, Integer, MetaData, Table, Text, create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from cost_oracle.server.cache.store import is_connection_error

__all__ = ["DEFAULT_LEASE_S", "DEFAULT_STALE_S", "Claim", "Fleet", "FleetDevice", "fingerprint_id"]

log = logging.getLogger("cost_oracle.fleet")

#: seconds a claimed job stays a worker's without a heartbeat (then another worker takes it)
DEFAULT_LEASE_S = 30.0
#: seconds after its last heartbeat that a worker no longer counts as live
DEFAULT_STALE_S = 15.0
#: attempts (claims) before a job is marked failed
DEFAULT_MAX_ATTEMPTS = 3
#: a done job whose result is not final in the cache (noisy, or pruned) is measured again when
#: asked after this many seconds; a job done just now is a request racing its own result
_REQUEUE_DONE_AFTER_S = 10.0

metadata = MetaData()

jobs_table = Table(
    "latency_jobs", metadata,
    Column("key", Text, primary_key=True),           # the latency key: one live job per key
    Column("device", Text, nullable=False),          # "cpu", "cuda:0" (for stats and messages)
    Column("fingerprint_id", Text, nullable=False),  # which workers may take it
    Column("payload", Text, nullable=False),         # JSON: {"candidate": spec dict | name, "settings": {...}}
    Column("state", Text, nullable=False),           # queued | running | done | failed
    Column("attempts", Integer, nullable=False),
    Column("error", Text),
    Column("worker", Text),
    Column("lease_until", Float),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    Index("latency_jobs_claim", "fingerprint_id", "state", "created"),
)

workers_table = Table(
    "latency_workers", metadata,
    Column("worker_id", Text, primary_key=True),
    Column("device", Text, nullable=False),
    Column("fingerprint_id", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),  # JSON of the device fingerprint (threads: the default)
    Column("threads", Integer, nullable=False),
    Column("host", Text, nullable=False),
    Column("heartbeat", Float, nullable=False),
    Column("started", Float, nullable=False),
    Column("current_key", Text),
)

_NOW = "extract(epoch from clock_timestamp())"
T = TypeVar("T")


def fingerprint_id(fp: Mapping[str, Any]) -> str:
    """The hardware and software a job must run on: the fingerprint without its thread count
    (a request names its threads; the same host serves any)."""
    rest = {k: str(v) for k, v in fp.items() if k != "threads"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FleetDevice:
    """A device the fleet serves now: its label, fingerprint (threads = the workers' default) and
    how many live workers serve it."""

    device: str
    fingerprint_id: str
    fingerprint: dict[str, Any]
    threads: int
    workers: int


@dataclass(frozen=True)
class Claim:
    key: str
    device: str
    payload: dict[str, Any]
    attempts: int


class Fleet:
    """The job table and worker registry on one PostgreSQL database (``db_url``)."""

    def __init__(self, db_url: str, *, lease_s: float = DEFAULT_LEASE_S, stale_s: float = DEFAULT_STALE_S,
                 max_attempts: int = DEFAULT_MAX_ATTEMPTS, retry_s: float = 60.0,
                 engine: Engine | None = None):
        self.engine = engine or create_engine(db_url, pool_pre_ping=True, pool_size=4, max_overflow=4)
        if self.engine.dialect.name != "postgresql":
            raise ValueError("db_url: the measurement fleet needs a PostgreSQL database "
                             f"(got {self.engine.dialect.name}); SQLite keeps the in-process worker")
        self.lease_s = lease_s
        self.stale_s = stale_s
        self.max_attempts = max_attempts
        #: how long a statement keeps retrying while the database is unreachable
        self.retry_s = retry_s
        self._tx(_create_tables)

    # -- plumbing ---------------------------------------------------------------------------
    def _tx(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` in one transaction, retried across a database restart (connection errors only)."""
        end = time.monotonic() + self.retry_s
        delay = 0.05
        while True:
            try:
                with self.engine.begin() as conn:
                    return fn(conn)
            except (OperationalError, DBAPIError) as exc:
                if not is_connection_error(exc) or time.monotonic() > end:
                    raise
                log.warning("fleet database unreachable (%s); retrying", type(exc.orig).__name__)
                self.engine.dispose()
                time.sleep(delay)
                delay = min(1.0, delay * 2)

    def close(self) -> None:
        self.engine.dispose()

    # -- servers ----------------------------------------------------------------------------
    def devices(self) -> list[FleetDevice]:
        """Devices with a live worker, one entry per fingerprint (most workers first)."""
        rows = self._tx(lambda conn: conn.execute(text(
            "SELECT device, fingerprint_id, fingerprint, threads FROM latency_workers "
            f"WHERE heartbeat > {_NOW} - :stale ORDER BY worker_id"), {"stale": self.stale_s}).all())
        by: dict[tuple[str, str], list[Any]] = {}
        for device, fid, fp, threads in rows:
            by.setdefault((device, fid), []).append((json.loads(fp), int(threads)))
        out = [FleetDevice(device, fid, entries[0][0], min(t for _, t in entries), len(entries))
               for (device, fid), entries in by.items()]
        return sorted(out, key=lambda d: (d.device, -d.workers, d.fingerprint_id))

    def enqueue(self, jobs: Iterable[tuple[str, str, str, dict[str, Any]]]) -> None:
        """(key, device, fingerprint_id, payload) per job; a key that already has a job keeps it,
        except a failed one (asked again: it runs again) and a done one whose result is not final
        in the cache (the caller only enqueues what the cache could not answer)."""
        rows = [{"key": k, "device": d, "fid": f, "payload": json.dumps(p, sort_keys=True),
                 "requeue": _REQUEUE_DONE_AFTER_S} for k, d, f, p in jobs]
        if not rows:
            return
        sql = text(
            "INSERT INTO latency_jobs (key, device, fingerprint_id, payload, state, attempts, created, updated) "
            f"VALUES (:key, :device, :fid, :payload, 'queued', 0, {_NOW}, {_NOW}) "
            "ON CONFLICT (key) DO UPDATE SET state = 'queued', attempts = 0, error = NULL, worker = NULL, "
            f"lease_until = NULL, updated = {_NOW} "
            "WHERE latency_jobs.state = 'failed' "
            f"OR (latency_jobs.state = 'done' AND latency_jobs.updated < {_NOW} - :requeue)")
        self._tx(lambda conn: conn.execute(sql, rows))

    def states(self, keys: Iterable[str]) -> dict[str, tuple[str, str | None]]:
        """key -> (state, error) for the keys that have a job."""
        keys = list(keys)
        if not keys:
            return {}
        rows = self._tx(lambda conn: conn.execute(
            text("SELECT key, state, error FROM latency_jobs WHERE key = ANY(:keys)"), {"keys": keys}).all())
        return {k: (s, e) for k, s, e in rows}

    def requeue_done(self, key: str) -> None:
        """A done job whose stored result went missing (pruned): measure it again."""
        self._tx(lambda conn: conn.execute(text(
            f"UPDATE latency_jobs SET state = 'queued', attempts = 0, worker = NULL, updated = {_NOW} "
            "WHERE key = :key AND state = 'done'"), {"key": key}))

    def stats(self) -> dict[str, dict[str, int]]:
        """Per device: queued, running, done, failed jobs and live workers."""
        def read(conn: Connection) -> tuple[list[Any], list[Any]]:
            jobs = conn.execute(text("SELECT device, state, count(*) FROM latency_jobs GROUP BY device, state")).all()
            workers = conn.execute(text(f"SELECT device, count(*) FROM latency_workers "
                                        f"WHERE heartbeat > {_NOW} - :stale GROUP BY device"),
                                   {"stale": self.stale_s}).all()
            return jobs, workers

        jobs, workers = self._tx(read)
        out: dict[str, dict[str, int]] = {}

        def row(device: str) -> dict[str, int]:
            return out.setdefault(device, dict.fromkeys(("queued", "running", "done", "failed", "workers"), 0))

        for device, state, n in jobs:
            row(device)[state] = int(n)
        for device, n in workers:
            row(device)["workers"] = int(n)
        return out

    # -- workers ----------------------------------------------------------------------------
    def register(self, worker_id: str, device: str, fp: Mapping[str, Any], threads: int, host: str) -> None:
        """Register (or refresh) a worker; registrations silent for a day (killed workers) go."""
        self._tx(lambda conn: conn.execute(text(f"DELETE FROM latency_workers WHERE heartbeat < {_NOW} - 86400")))
        self._tx(lambda conn: conn.execute(text(
            "INSERT INTO latency_workers (worker_id, device, fingerprint_id, fingerprint, threads, host, heartbeat, "
            f"started) VALUES (:w, :device, :fid, :fp, :threads, :host, {_NOW}, {_NOW}) "
            "ON CONFLICT (worker_id) DO UPDATE SET heartbeat = EXCLUDED.heartbeat"),
            {"w": worker_id, "device": device, "fid": fingerprint_id(fp), "fp": json.dumps(dict(fp), default=str),
             "threads": threads, "host": host}))

    def heartbeat(self, worker_id: str) -> None:
        """The worker is alive, and so is the lease of the job it holds."""
        def beat(conn: Connection) -> None:
            conn.execute(text(f"UPDATE latency_workers SET heartbeat = {_NOW} WHERE worker_id = :w"),
                         {"w": worker_id})
            conn.execute(text(f"UPDATE latency_jobs SET lease_until = {_NOW} + :lease "
                              "WHERE worker = :w AND state = 'running'"), {"w": worker_id, "lease": self.lease_s})

        self._tx(beat)

    def unregister(self, worker_id: str) -> None:
        self._tx(lambda conn: conn.execute(text("DELETE FROM latency_workers WHERE worker_id = :w"),
                                           {"w": worker_id}))

    def claim(self, worker_id: str, fid: str) -> Claim | None:
        """The oldest job this fingerprint may run (queued, or running with its lease expired),
        now the worker's; None when there is none. Jobs whose lease expired ``max_attempts``
        times are marked failed first."""
        def take(conn: Connection) -> Any:
            conn.execute(text(
                f"UPDATE latency_jobs SET state = 'failed', updated = {_NOW}, error = 'the worker measuring it "
                "stopped (lost its lease) ' || attempts || ' times; last: ' || coalesce(worker, '?') "
                f"WHERE fingerprint_id = :fid AND state = 'running' AND lease_until < {_NOW} AND attempts >= :max"),
                {"fid": fid, "max": self.max_attempts})
            return conn.execute(text(
                "UPDATE latency_jobs SET state = 'running', worker = :w, attempts = attempts + 1, "
                f"lease_until = {_NOW} + :lease, updated = {_NOW} "
                "WHERE key = (SELECT key FROM latency_jobs WHERE fingerprint_id = :fid AND "
                f"(state = 'queued' OR (state = 'running' AND lease_until < {_NOW})) "
                "ORDER BY created LIMIT 1 FOR UPDATE SKIP LOCKED) "
                "RETURNING key, device, payload, attempts"),
                {"w": worker_id, "fid": fid, "lease": self.lease_s}).first()

        row = self._tx(take)
        if row is None:
            return None
        self._tx(lambda conn: conn.execute(text("UPDATE latency_workers SET current_key = :k WHERE worker_id = :w"),
                                           {"k": row[0], "w": worker_id}))
        return Claim(row[0], row[1], json.loads(row[2]), int(row[3]))

    def complete(self, worker_id: str, key: str) -> bool:
        """The job's result is in the cache: done (False when the job is no longer this worker's)."""
        return bool(self._tx(lambda conn: conn.execute(text(
            f"UPDATE latency_jobs SET state = 'done', error = NULL, lease_until = NULL, updated = {_NOW} "
            "WHERE key = :k AND worker = :w AND state = 'running'"), {"k": key, "w": worker_id}).rowcount))

    def fail(self, worker_id: str, key: str, error: str) -> None:
        """A failed attempt: queued again, or failed for good after ``max_attempts``."""
        self._tx(lambda conn: conn.execute(text(
            "UPDATE latency_jobs SET state = CASE WHEN attempts >= :max THEN 'failed' ELSE 'queued' END, "
            f"error = :e, worker = NULL, lease_until = NULL, updated = {_NOW} "
            "WHERE key = :k AND worker = :w AND state = 'running'"),
            {"k": key, "w": worker_id, "e": error[:2000], "max": self.max_attempts}))


def _create_tables(conn: Connection) -> None:
    """The tables, once: servers and workers starting together would race on CREATE TABLE IF NOT
    EXISTS (PostgreSQL's catalog raises a unique violation for the loser), so they take turns."""
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('cost_oracle.fleet.schema'))"))
    metadata.create_all(conn, checkfirst=True)
