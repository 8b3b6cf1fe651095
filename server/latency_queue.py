"""The measurement queue: one worker thread per device, identical requests coalesced.

Why a queue and not a call on the request thread: a measurement takes seconds (fresh worker
processes, warm-up, sampling), and two timings on one device at once corrupt each other. So each
device has exactly one worker thread that runs one job at a time (the worker processes it starts
also take a cross-process lock on the device), gRPC handlers only ``submit`` and wait on a
future, and:

* a request for something already cached gets an already-completed future (no queueing);
* a request identical to one pending or being measured (same cache key) gets *the same future*:
  one measurement answers every client that asked (``coalesced`` counts them);
* a job whose clients have all gone (``is_active()`` false) or whose deadlines cannot be met any
  more is dropped before it starts, its future failing with :class:`MeasurementDropped`; a
  request whose deadline cannot be met even now is refused at once the same way;
* a full queue refuses with :class:`QueueFull` (RESOURCE_EXHAUSTED), a device this host lacks
  with :class:`~cost_engine.latency.UnknownDevice` (FAILED_PRECONDITION), bad settings with
  ``SpecError`` (INVALID_ARGUMENT).

A job that has started runs to the end even if its clients leave: the result goes to the cache,
so the next client asking for it is served instantly.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from cost_engine.latency import available_devices
from cost_engine.latency import calibrate as _calibrate
from cost_engine.latency import measure as _measure
from cost_engine.latency import measure_many as _measure_many
from cost_engine.latency.admission import available_bytes, session_bytes
from cost_engine.latency.calibrate import Calibration, calibration_key
from cost_engine.latency.fingerprint import check_device, fingerprint
from cost_engine.latency.kernel_predict import MissingKernelModel, fit_kernel_predictor, model_key
from cost_engine.latency.keys import PROTOCOL_VERSION
from cost_engine.latency.measure import DEFAULT_SESSIONS, DEFAULT_TIME_CAP_S, cached_results, latency_key
from cost_engine.latency.predict import REQUESTABLE, predict, resolve_method
from cost_engine.latency.result import LatencyResult
from cost_engine.latency.settings import LatencySettings
from cost_engine.spec.base import FieldError, SpecError
from cost_oracle.server.latency_groups import done_future, settings_id

__all__ = ["FitProgress", "MeasurementDropped", "MeasurementQueue", "NeedsMeasurement", "QueueFull",
           "TooLargeForDevice"]

log = logging.getLogger("cost_oracle.latency_queue")

#: seconds to start one worker process (import torch, build) on a loaded 2-core host, before
#: the queue has timed any job of its own
STARTUP_ESTIMATE_S = 8.0


class QueueFull(RuntimeError):
    """Too many distinct measurements pending (gRPC: RESOURCE_EXHAUSTED)."""

    code = "RESOURCE_EXHAUSTED"
    quota = "max_pending_measurements"


class TooLargeForDevice(RuntimeError):
    """A measurement the device's free memory cannot hold (gRPC: RESOURCE_EXHAUSTED); refused
    before it is queued (``cost_engine/latency/admission.py``)."""

    code = "RESOURCE_EXHAUSTED"
    quota = "device_memory"


class NeedsMeasurement(LookupError):
    """A prediction that would have to measure first, asked not to (gRPC: FAILED_PRECONDITION)."""


class MeasurementDropped(RuntimeError):
    """The job was dropped before it ran: ``reason`` "client_gone" (gRPC: CANCELLED) or
    "deadline" (DEADLINE_EXCEEDED)."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        self.code = "CANCELLED" if reason == "client_gone" else "DEADLINE_EXCEEDED"
        super().__init__(message)


class FitProgress:
    """What a kernel-model fit has reported (phase, done of total), read by every request waiting
    on it; kept as a log so that a reader polling now and then misses no phase."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[tuple[str, int, int]] = []

    def update(self, phase: str, done: int, total: int) -> None:
        with self._lock:
            self._events.append((phase, done, total))

    def since(self, start: int) -> list[tuple[str, int, int]]:
        """The reports from the ``start``-th on (a reader keeps its own count)."""
        with self._lock:
            return self._events[start:]


@dataclass
class _Waiter:
    deadline: float | None
    is_active: Callable[[], bool] | None

    def alive(self) -> bool:
        if self.is_active is None:
            return True
        try:
            return bool(self.is_active())
        except Exception:  # a broken callback counts as a client that is gone
            return False

    def can_wait(self, finish_at: float) -> bool:
        return self.deadline is None or finish_at <= self.deadline


@dataclass
class _Job:
    """One run on a device's worker: one or more keys (a batch shares worker sessions), a future
    per key, and every client waiting on any of them. ``run(keys)`` returns ``{key: result}``."""

    keys: list[str]
    device: str
    kind: str
    run: Callable[[list[str]], dict[str, Any]]
    est_s: float
    futures: dict[str, Future] = field(default_factory=dict)
    waiters: list[_Waiter] = field(default_factory=list)
    started_at: float | None = None


class MeasurementQueue:
    """Serialized, coalescing, cache-first latency work per device (see the module docstring).

    ``measure_fn(candidate, settings, *, cache, sessions, time_cap_s)`` defaults to
    :func:`cost_engine.latency.measure` and ``measure_many_fn`` to ``measure_many``; tests inject
    counting wrappers. ``max_pending`` counts measurements (keys), not jobs.
    """

    def __init__(self, cache: Any = None, *, max_pending: int = 64, sessions: int = DEFAULT_SESSIONS,
                 time_cap_s: float | None = None, measure_fn: Callable[..., LatencyResult] | None = None,
                 measure_many_fn: Callable[..., list[LatencyResult]] | None = None, prune_interval_s: float = 0.5):
        if max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        self.cache = cache
        self.max_pending = max_pending
        self.sessions = sessions
        self.time_cap_s = DEFAULT_TIME_CAP_S if time_cap_s is None else time_cap_s
        self._measure_fn = measure_fn or _measure
        self._measure_many_fn = measure_many_fn or _measure_many
        self._prune_interval_s = prune_interval_s
        self._cv = threading.Condition()
        self._jobs: dict[str, _Job] = {}
        self._pending: dict[str, collections.deque[_Job]] = {}
        self._in_flight: dict[str, _Job | None] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._current: dict[str, _Job] = {}  # the job each device's worker holds, for its supervisor
        self._busy_s: dict[str, float] = collections.defaultdict(float)
        self._duration_ema: dict[tuple[str, str], float] = {}
        self._counts: collections.Counter[str] = collections.Counter()
        self._fit_progress: dict[str, FitProgress] = {}
        self._closed = False

    # -- public ---------------------------------------------------------------------------------
    def devices(self) -> list[str]:

        return available_devices()

    def submit(self, candidate: Any, settings: LatencySettings, *, deadline: float | None = None,
               is_active: Callable[[], bool] | None = None) -> Future:
        """A future of the measured :class:`LatencyResult` of ``candidate`` under ``settings``."""
        resolved = settings.resolved()
        check_device(resolved.device)
        key = latency_key(candidate, settings)
        hit = self._cache_hits([key]).get(key)
        if hit is not None:
            return self._done(hit)

        def run(keys: list[str]) -> dict[str, Any]:
            return {key: self._measure_fn(candidate, settings, cache=self.cache, sessions=self.sessions,
                                          time_cap_s=self.time_cap_s)}

        job = _Job([key], resolved.device, "measure", run, self._estimate("measure", resolved.device))
        return self._enqueue(job, _Waiter(deadline, is_active))[key]

    def submit_many(self, candidates: list[Any], settings: LatencySettings, *, deadline: float | None = None,
                    is_active: Callable[[], bool] | None = None) -> list[Future]:
        """Futures of the measured latency of each candidate (input order). The uncached ones not
        already queued are measured *together*, in the same worker sessions — a batch of close
        calls of a budget filter costs ``sessions`` process start-ups, not one per candidate."""
        return self.submit_group([(c, settings) for c in candidates], deadline=deadline, is_active=is_active)

    def submit_group(self, requests: list[tuple[Any, LatencySettings]], *, deadline: float | None = None,
                     is_active: Callable[[], bool] | None = None) -> list[Future]:
        """Futures of the measured latency of each (candidate, settings), admitted all or nothing:
        when the new measurements do not all fit, :class:`QueueFull` is raised and none is queued
        (a request of 70 on a queue of 64 must not leave 64 orphans behind). Candidates with the
        same settings share worker sessions."""
        keys: list[str] = []
        groups: dict[Any, dict[str, Any]] = {}
        for candidate, settings in requests:
            resolved = settings.resolved()
            check_device(resolved.device)
            key = latency_key(candidate, settings)
            keys.append(key)
            group = groups.setdefault(settings_id(resolved), {"settings": settings, "device": resolved.device,
                                                               "by_key": {}})
            group["by_key"].setdefault(key, candidate)
        hits = self._cache_hits(list(dict.fromkeys(keys)))
        futures: dict[str, Future] = {k: self._done(v) for k, v in hits.items()}
        jobs = []
        for group in groups.values():
            by_key = {k: c for k, c in group["by_key"].items() if k not in hits}
            futures.update(self._refuse_oversized(by_key, group["settings"], group["device"]))
            by_key = {k: c for k, c in by_key.items() if k not in futures}
            if by_key:
                run = self._batch_runner(by_key, group["settings"])
                jobs.append(_Job(list(by_key), group["device"], "measure", run,
                                 self._estimate("measure", group["device"], len(by_key))))
        if jobs:
            futures.update(self._enqueue_all(jobs, _Waiter(deadline, is_active)))
        return [futures[k] for k in keys]

    @staticmethod
    def _refuse_oversized(by_key: dict[str, Any], settings: LatencySettings, device: str) -> dict[str, Future]:
        """Failed futures for the measurements the device's free memory cannot hold now."""
        free = available_bytes(device)
        if free is None:
            return {}
        out: dict[str, Future] = {}
        for key, candidate in by_key.items():
            need = session_bytes(candidate, settings)
            if need > free:
                fut: Future = Future()
                fut.set_exception(TooLargeForDevice(
                    f"measuring this candidate needs about {need / 2**30:.1f} GiB on {device} (analytic peak "
                    f"activation and weights, with the worker's overhead), and {free / 2**30:.1f} GiB is free "
                    "there now; lower batch_size or resolution, or ask for latency_mode PREDICT"))
                out[key] = fut
        return out

    def _batch_runner(self, by_key: dict[str, Any], settings: LatencySettings) -> Callable[[list[str]], dict[str, Any]]:
        def run(todo: list[str]) -> dict[str, Any]:
            results = self._measure_many_fn([by_key[k] for k in todo], settings, cache=self.cache,
                                            sessions=self.sessions, time_cap_s=self.time_cap_s)
            return dict(zip(todo, results, strict=True))

        return run

    def submit_prediction(self, candidate: Any, settings: LatencySettings, method: str = "default", *,
                          deadline: float | None = None, is_active: Callable[[], bool] | None = None,
                          measure: bool = True) -> Future:
        """A future of the predicted latency. Answered at once when everything it needs (the
        calibration, the blocks of the table, the kernel model) is cached; otherwise the missing
        measurements run on the device's worker like any measurement, and the result counts them
        (``details.measured_for_prediction``) — or, with ``measure=False``, :class:`NeedsMeasurement`
        is raised. A kernel model is never fitted implicitly: without one, ``MissingKernelModel``."""
        resolved = settings.resolved()
        check_device(resolved.device)
        if method not in REQUESTABLE:

            raise SpecError([FieldError("method", f"must be one of {', '.join(REQUESTABLE)}, got {method!r}")])
        method = resolve_method(method, settings, self.cache)

        try:
            return self._done(predict(candidate, settings, method=method, cache=self.cache, measure_missing=False))
        except MissingKernelModel:
            raise  # nothing to queue: the model must be fitted first (FAILED_PRECONDITION)
        except LookupError as exc:  # something must be timed first: queue it
            if not measure:
                raise NeedsMeasurement(
                    f"predicting with {method} on {resolved.device} needs measurements first ({exc}); allow "
                    "measuring (never_measure false), use a method that has what it needs, or fit the kernel "
                    "model (FitLatencyModel / `cost-oracle latency fit`)") from None
        key = f"predict:{method}:{latency_key(candidate, settings)}"

        def run(keys: list[str]) -> dict[str, Any]:
            result = predict(candidate, settings, method=method, cache=self.cache)
            d = result.details or {}
            result.details = {**d, "measured_for_prediction": int(d.get("table_measurements_this_call", 1))}
            return {key: result}

        job = _Job([key], resolved.device, "predict", run, self._estimate("predict", resolved.device))
        return self._enqueue(job, _Waiter(deadline, is_active))[key]

    def submit_fit(self, candidates: list[Any], settings: LatencySettings, *, deadline: float | None = None,
                   is_active: Callable[[], bool] | None = None, **fit_kwargs: Any) -> tuple[Future, FitProgress]:
        """A future of the fitted kernel model (``kernel_predict.fit_kernel_predictor``) and the
        fit's progress, which every request waiting on it reads. One job on the device's worker:
        nothing else is timed on the device while it profiles. Requests for the same settings
        share one fit; the fit stops at its next chunk when every one of them has gone (what it
        timed stays cached, so a new fit resumes from there)."""

        resolved = settings.resolved()
        check_device(resolved.device)
        key = "fit:" + model_key(resolved, fingerprint(resolved.device, resolved.threads))
        state = FitProgress()
        holder: dict[str, _Job] = {}

        def report(phase: str, done: int, total: int) -> None:
            state.update(phase, done, total)
            job = holder.get("job")
            if job is not None and job.waiters and not any(w.alive() for w in job.waiters):
                raise MeasurementDropped("client_gone", "the fit stopped: every client that asked has gone")

        def run(keys: list[str]) -> dict[str, Any]:
            try:
                return {key: fit_kernel_predictor(candidates, settings, cache=self.cache, progress=report,
                                                  **fit_kwargs)}
            finally:
                with self._cv:
                    self._fit_progress.pop(key, None)

        budget_s = fit_kwargs.get("budget_s")
        est = float(budget_s) if budget_s else self._estimate("measure", resolved.device,
                                                              int(fit_kwargs.get("max_units", 400)) // 10)
        job = _Job([key], resolved.device, "fit", run, est)
        holder["job"] = job
        with self._cv:  # a fit already queued or running keeps its own progress: coalesced into it
            self._fit_progress.setdefault(key, state)
        future = self._enqueue(job, _Waiter(deadline, is_active))[key]
        with self._cv:
            return future, self._fit_progress.get(key, state)

    def submit_calibration(self, device: str = "cpu", dtype: str = "float32", threads: int | None = None, *,
                           refresh: bool = False) -> Future:
        """A future of the device's :class:`~cost_engine.latency.Calibration` (cached after the first)."""
        resolved = LatencySettings(device=device, dtype=dtype, threads=threads).resolved()
        check_device(resolved.device)
        fp = fingerprint(resolved.device, resolved.threads)
        key = calibration_key(resolved.device, resolved.dtype, int(resolved.threads or 1), fp)
        if self.cache is not None and not refresh:
            hit = self.cache.get(key)
            if hit is not None:

                return self._done(Calibration.from_dict(hit, cached=True))

        job_key = f"calibrate:{key}"

        def run(keys: list[str]) -> dict[str, Any]:
            return {job_key: _calibrate(resolved.device, resolved.dtype, resolved.threads, cache=self.cache,
                                        refresh=refresh)}

        job = _Job([job_key], resolved.device, "calibrate", run, self._estimate("calibrate", resolved.device))
        return self._enqueue(job, _Waiter(None, None))[job_key]

    def stats(self) -> dict[str, Any]:
        with self._cv:
            devices = {}
            for device in sorted(set(self._pending) | set(self._in_flight)):
                job = self._in_flight.get(device)
                devices[device] = {"pending": sum(len(j.keys) for j in self._pending.get(device, ())),
                                   "in_flight": len(job.keys) if job is not None else 0,
                                   "busy_s": round(self._busy_s[device], 3)}
            return {
                "pending": self._pending_count(),
                "in_flight": sum(len(j.keys) for j in self._in_flight.values() if j is not None),
                "done": self._counts["done"],
                "failed": self._counts["failed"],
                "coalesced": self._counts["coalesced"],
                "dropped": self._counts["dropped"],
                "cache_hits": self._counts["cache_hits"],
                "worker_restarts": self._counts["worker_restarts"],
                "max_pending": self.max_pending,
                "protocol_version": PROTOCOL_VERSION,
                "devices": devices,
            }

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the workers; pending jobs fail with ``MeasurementDropped`` (the one running finishes)."""
        with self._cv:
            self._closed = True
            for queue in self._pending.values():
                while queue:
                    job = queue.popleft()
                    for key in job.keys:
                        self._jobs.pop(key, None)
                        _settle(job.futures[key],
                                error=MeasurementDropped("client_gone", "the server is shutting down"))
            self._cv.notify_all()
        for thread in list(self._threads.values()):
            thread.join(timeout)

    def __enter__(self) -> MeasurementQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------
    def _done(self, value: Any) -> Future:
        with self._cv:
            self._counts["cache_hits"] += 1
        return done_future(value)

    def _cache_hits(self, keys: list[str]) -> dict[str, LatencyResult]:
        """Final stored measurements (a noisy one is not final: it is queued and re-measured)."""
        return cached_results(self.cache, keys)

    def _estimate(self, kind: str, device: str, n: int = 1) -> float:
        """Seconds a job of ``n`` items will take: learned per device and kind (start-up and
        per-item time apart), or a generous guess before the first job."""
        sessions = self.sessions if kind == "measure" else 1
        startup = self._duration_ema.get((kind + ":startup", device), STARTUP_ESTIMATE_S * sessions)
        per_item = self._duration_ema.get((kind + ":item", device), (2 * self.time_cap_s + 1.0) * sessions)
        return startup + n * per_item

    def _learn(self, kind: str, device: str, n: int, elapsed: float) -> None:
        startup_key, item_key = (kind + ":startup", device), (kind + ":item", device)
        startup = self._duration_ema.get(startup_key, min(elapsed / 2, STARTUP_ESTIMATE_S))
        per_item = max(0.0, (elapsed - startup) / n)
        prev = self._duration_ema.get(item_key)
        self._duration_ema[item_key] = per_item if prev is None else 0.7 * prev + 0.3 * per_item
        self._duration_ema.setdefault(startup_key, startup)

    def _wait_ahead_s(self, device: str, now: float) -> float:
        ahead = sum(j.est_s for j in self._pending.get(device, ()))
        running = self._in_flight.get(device)
        if running is not None and running.started_at is not None:
            ahead += max(0.0, running.est_s - (now - running.started_at))
        return ahead

    def _enqueue(self, job: _Job, waiter: _Waiter) -> dict[str, Future]:
        return self._enqueue_all([job], waiter)

    def _enqueue_all(self, jobs: list[_Job], waiter: _Waiter) -> dict[str, Future]:
        """Queue ``jobs`` for one request, all or none; keys already queued or running are
        coalesced into their job instead. Returns a future per key of the jobs."""
        with self._cv:
            if self._closed:
                raise QueueFull("the measurement queue is closed")
            out: dict[str, Future] = {}
            for job in jobs:
                for key in list(job.keys):
                    existing = self._jobs.get(key)
                    if existing is not None:
                        existing.waiters.append(waiter)
                        self._counts["coalesced"] += 1
                        out[key] = existing.futures[key]
                        job.keys.remove(key)
            jobs = [j for j in jobs if j.keys]
            if not jobs:
                return out
            now = time.time()
            new_keys = sum(len(j.keys) for j in jobs)
            ahead = {d: self._wait_ahead_s(d, now) for d in {j.device for j in jobs}}
            total = {d: ahead[d] + sum(j.est_s for j in jobs if j.device == d) for d in ahead}
            if not all(waiter.can_wait(now + t) for t in total.values()):
                self._counts["dropped"] += new_keys
                for job in jobs:
                    for key in job.keys:
                        fut: Future = Future()
                        fut.set_exception(MeasurementDropped(
                            "deadline", f"the deadline cannot be met: ~{total[job.device]:.0f} s of measurement "
                                        "work is ahead of this request"))
                        out[key] = fut
                return out
            if self._pending_count() + new_keys > self.max_pending:
                self._prune_locked()
            for device in ahead:  # a worker that died is restarted before anything waits on it
                if self._pending.get(device):
                    self._start_worker(device)
            if self._pending_count() + new_keys > self.max_pending:
                raise QueueFull(f"the measurement queue is full ({self._pending_count()} of {self.max_pending} "
                                f"measurements pending, {new_keys} more asked; nothing of this request was queued)")
            for job in jobs:
                job.waiters.append(waiter)
                for key in job.keys:
                    job.futures[key] = Future()
                    self._jobs[key] = job
                    out[key] = job.futures[key]
                self._pending.setdefault(job.device, collections.deque()).append(job)
                self._in_flight.setdefault(job.device, None)
                self._start_worker(job.device)
            self._cv.notify_all()
            return out

    def _pending_count(self) -> int:
        return sum(len(j.keys) for q in self._pending.values() for j in q)

    def _start_worker(self, device: str) -> None:
        thread = self._threads.get(device)
        if thread is None or not thread.is_alive():
            thread = threading.Thread(target=self._supervise, args=(device,), name=f"latency-{device}", daemon=True)
            self._threads[device] = thread
            thread.start()

    def _supervise(self, device: str) -> None:
        """Run the device's worker loop, restarting it whenever it raises: a bug in one job's
        bookkeeping must never leave the queue with pending jobs and nothing to run them. The
        job it was running fails (its clients get an error, not a hang)."""
        while True:
            try:
                self._worker(device)
                return
            except Exception as exc:
                log.exception("latency worker for %s raised; restarting it", device)
                with self._cv:
                    self._counts["worker_restarts"] += 1
                    job = self._current.pop(device, None)
                    self._in_flight[device] = None
                    if job is not None:
                        self._counts["failed"] += len(job.keys)
                        for key in job.keys:
                            if self._jobs.get(key) is job:
                                self._jobs.pop(key)
                            _settle(job.futures.get(key), error=RuntimeError(
                                f"the measurement worker failed ({type(exc).__name__}: {exc}); retry"))
                    if self._closed:
                        return

    def _prune_locked(self) -> None:
        now = time.time()
        for device, queue in self._pending.items():
            keep: collections.deque[_Job] = collections.deque()
            ahead = 0.0
            running = self._in_flight.get(device)
            if running is not None and running.started_at is not None:
                ahead = max(0.0, running.est_s - (now - running.started_at))
            for job in queue:
                if job.futures and all(f.done() for f in job.futures.values()):
                    for key in job.keys:  # every future was cancelled by its request: nobody waits
                        self._jobs.pop(key, None)
                    self._counts["dropped"] += len(job.keys)
                    continue
                alive = [w for w in job.waiters if w.alive()]
                if alive and any(w.can_wait(now + ahead + job.est_s) for w in alive):
                    job.waiters = alive
                    keep.append(job)
                    ahead += job.est_s
                else:
                    self._fail_dropped(job, "client_gone" if not alive else "deadline")
            self._pending[device] = keep

    def _fail_dropped(self, job: _Job, reason: str) -> None:
        self._counts["dropped"] += len(job.keys)
        text = "every client that asked has gone" if reason == "client_gone" else "the deadline can no longer be met"
        for key in job.keys:
            self._jobs.pop(key, None)
            _settle(job.futures[key],
                    error=MeasurementDropped(reason, f"measurement dropped before it started: {text}"))

    def _worker(self, device: str) -> None:
        while True:
            with self._cv:
                while not self._closed and not self._pending.get(device):
                    self._cv.wait(self._prune_interval_s)
                    self._prune_locked()
                if self._closed:
                    return
                self._prune_locked()
                if not self._pending.get(device):
                    continue
                job = self._pending[device].popleft()
                job.started_at = time.time()
                self._in_flight[device] = job
                self._current[device] = job  # until every future of it is settled
            t0 = time.perf_counter()
            results: dict[str, Any] = {}
            error: Exception | None = None
            try:
                results = job.run(list(job.keys))
            except Exception as exc:  # delivered to every waiting client
                error = exc
            elapsed = time.perf_counter() - t0
            with self._cv:
                self._in_flight[device] = None
                for key in job.keys:
                    self._jobs.pop(key, None)
                self._busy_s[device] += elapsed
                self._learn(job.kind, device, len(job.keys), elapsed)
                self._counts["done" if error is None else "failed"] += len(job.keys)
            for key in job.keys:
                if error is None and key in results:
                    _settle(job.futures[key], result=results[key])
                else:
                    _settle(job.futures[key], error=error or RuntimeError(f"no result for {key}"))
            with self._cv:
                self._current.pop(device, None)


def _settle(fut: Future | None, *, result: Any = None, error: BaseException | None = None) -> None:
    """Complete a future unless its request already cancelled it (setting a cancelled future
    raises ``InvalidStateError``, which once killed the worker thread)."""
    if fut is None or fut.done():
        return
    try:
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)
    except InvalidStateError:  # cancelled between the check and the set
        pass

