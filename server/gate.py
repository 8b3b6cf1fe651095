"""Admission of request threads: analytic work and waiting on measurements are bounded apart.

A measurement takes seconds to minutes; an analytic answer from the cache takes a millisecond.
If a request that waits on the measurement queue keeps its request thread, ten measuring clients
on eight threads starve every other call (GetServerInfo timed out at 10 s, a cached GetCost took
3.3 s). So the server's thread pool is ``workers + waiters`` threads, and:

* every request holds one of ``workers`` *work* slots while it does work (parsing, counting,
  reading the cache, building its answer), so CPU-bound work is bounded as ``--workers`` says;
* a request about to block on measurements gives its work slot back and takes one of
  ``waiters`` *waiting* slots instead, taking a work slot again once its results are in. When
  no waiting slot is free it fails at once with RESOURCE_EXHAUSTED naming the limit, instead of
  queueing behind others for minutes.

A waiting request still occupies a pool thread, but the pool has one thread per waiting slot
beyond the work slots, so analytic requests always find a thread. (Threads that only block
on a future cost a stack reservation, not CPU.)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from cost_oracle.contract.errors import ResourceExhausted

__all__ = ["RequestGate"]


class RequestGate:
    """``workers`` / ``waiters``: the slot counts (``None``: unbounded, as in-process)."""

    def __init__(self, workers: int | None = None, waiters: int | None = None):
        self.workers = workers
        self.waiters = waiters
        self._work = threading.BoundedSemaphore(workers) if workers else None
        self._wait = threading.BoundedSemaphore(waiters) if waiters else None
        self._local = threading.local()
        self._lock = threading.Lock()
        self.waiting_now = 0
        self.refused = 0
        #: requests inside :meth:`work` now (holding a slot or waiting), for tests and metrics
        self.working_now = 0

    @contextlib.contextmanager
    def work(self) -> Iterator[None]:
        """Held for a whole request (re-entrant within a thread: a nested call is free)."""
        if self._work is None or getattr(self._local, "depth", 0):
            self._local.depth = getattr(self._local, "depth", 0) + 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        with self._lock:
            self.working_now += 1
        self._work.acquire()
        self._local.depth = 1
        self._local.held = True
        try:
            yield
        finally:
            with self._lock:
                self.working_now -= 1
            self._local.depth = 0
            if self._local.held:
                self._local.held = False
                self._work.release()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Around a blocking wait on measurements: the work slot is lent back meanwhile."""
        if self._wait is not None and not self._wait.acquire(blocking=False):
            with self._lock:
                self.refused += 1
            raise ResourceExhausted(
                f"{self.waiters} requests are already waiting on latency measurements "
                f"(server limit --latency-waiters {self.waiters}); retry later or ask for fewer at once",
                quota="latency_waiters")
        held = self._work is not None and getattr(self._local, "held", False)
        if held:
            self._local.held = False
            self._work.release()  # type: ignore[union-attr]
        with self._lock:
            self.waiting_now += 1
        try:
            yield
        finally:
            with self._lock:
                self.waiting_now -= 1
            if self._wait is not None:
                self._wait.release()
            if held:
                self._work.acquire()  # type: ignore[union-attr]
                self._local.held = True
