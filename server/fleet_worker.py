"""``cost-oracle worker``: a device host's measurement loop for the fleet (``server/fleet.py``).

Registers this host's device fingerprint, then claims one job at a time for that fingerprint,
times it with ``cost_engine.latency.measure`` (the very function the local queue runs, so the
protocol and the cache row are the same), which stores the result in the shared cache, and marks
the job done. One worker never times two things at once; run several for throughput (one per
GPU; on a CPU host, as many as its cores allow without them slowing each other). A heartbeat
thread keeps the registration and the current job's lease alive; a worker that dies loses its
lease after ``lease_s`` and its job runs again elsewhere.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

from cost_engine.latency import LatencySettings, measure
from cost_engine.latency.fingerprint import fingerprint
from cost_engine.latency.measure import latency_key
from cost_engine.latency.settings import usable_cores
from cost_engine.spec.base import SpecError, from_dict
from cost_oracle.server.cache import CostCache
from cost_oracle.server.fleet import DEFAULT_LEASE_S, Fleet, fingerprint_id

__all__ = ["FleetWorker", "candidate_of"]

#: how long a worker waits for the shared database to come back before giving a job up
_PATIENCE_S = 120.0

log = logging.getLogger("cost_oracle.fleet.worker")


def candidate_of(payload: dict[str, Any]) -> Any:
    """A job's candidate: a built-in name or a spec, from plain JSON (never unpickled)."""
    c = payload["candidate"]
    return c if isinstance(c, str) else from_dict(c)


class FleetWorker:
    """One measurement worker for ``device`` (``threads``: the default a request without its own
    gets, and the thread count of the fingerprint it registers)."""

    def __init__(self, db_url: str, device: str = "cpu", *, threads: int | None = None,
                 lease_s: float = DEFAULT_LEASE_S, heartbeat_s: float | None = None, poll_s: float = 0.2,
                 sessions: int | None = None, time_cap_s: float | None = None, worker_id: str | None = None,
                 on_measured: Callable[[str], None] | None = None):
        self.device = "cuda:0" if device == "cuda" else device
        self.threads = int(threads or usable_cores())
        self.fp = fingerprint(self.device, self.threads)
        self.fid = fingerprint_id(self.fp)
        self.fleet = Fleet(db_url, lease_s=lease_s)
        # a finished measurement waits out a database restart to be stored, never timed twice
        self.cache = CostCache(db_url, patience_s=_PATIENCE_S)
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else max(0.5, lease_s / 4)
        self.poll_s = poll_s
        self.sessions = sessions
        self.time_cap_s = time_cap_s
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.on_measured = on_measured
        self.done = 0
        self.failed = 0
        self._stop = threading.Event()

    def run(self, max_jobs: int | None = None) -> None:
        """Claim and measure until :meth:`stop` (or ``max_jobs`` jobs)."""
        self.fleet.register(self.worker_id, self.device, self.fp, self.threads, socket.gethostname())
        beat = threading.Thread(target=self._beat, name="fleet-heartbeat", daemon=True)
        beat.start()
        log.info("worker %s serving %s (fingerprint %s, %d threads)", self.worker_id, self.device, self.fid,
                 self.threads)
        try:
            while not self._stop.is_set() and (max_jobs is None or self.done + self.failed < max_jobs):
                try:
                    claim = self.fleet.claim(self.worker_id, self.fid)
                except Exception:
                    log.exception("claiming a job failed; retrying")
                    self._stop.wait(1.0)
                    continue
                if claim is None:
                    self._stop.wait(self.poll_s)
                    continue
                self._measure(claim.key, claim.payload)
        finally:
            self._stop.set()
            beat.join(timeout=5)
            try:
                self.fleet.unregister(self.worker_id)
            except Exception:
                log.warning("could not unregister worker %s", self.worker_id)
            self.cache.close()
            self.fleet.close()

    def stop(self) -> None:
        self._stop.set()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.fleet.heartbeat(self.worker_id)
            except Exception:
                log.warning("heartbeat failed; retrying")

    def _measure(self, key: str, payload: dict[str, Any]) -> None:
        try:
            candidate = candidate_of(payload)
            settings = LatencySettings(**payload["settings"])
            mine = latency_key(candidate, settings, {**self.fp, "threads": settings.resolved().threads})
            if mine != key:
                raise RuntimeError("this worker's fingerprint no longer matches the job's (software or hardware "
                                   "changed since it registered): restart the worker")
            kw: dict[str, Any] = {"cache": self.cache}
            if self.sessions is not None:
                kw["sessions"] = self.sessions
            if self.time_cap_s is not None:
                kw["time_cap_s"] = self.time_cap_s
            measure(candidate, settings, **kw)
            if self.on_measured is not None:
                self.on_measured(key)
        except Exception as exc:  # a failed attempt (bad job, measurement error), never the worker's end
            self.failed += 1
            expected = isinstance(exc, (SpecError, TypeError, ValueError, RuntimeError, OSError))
            log.log(logging.WARNING if expected else logging.ERROR, "job %s failed: %s", key[:12], exc,
                    exc_info=not expected)
            self.fleet.fail(self.worker_id, key, f"{type(exc).__name__}: {exc}")
            return
        self.done += 1
        if not self.fleet.complete(self.worker_id, key):
            log.info("job %s was taken over (lease lost); its result is stored anyway", key[:12])
