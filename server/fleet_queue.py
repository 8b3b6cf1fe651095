"""The measurement queue of a server run with ``--measure-on fleet``: enqueue, don't measure.

Same surface as the local ``MeasurementQueue`` for measurements (``submit``, ``submit_many``,
``submit_group`` return futures of ``LatencyResult``), so the oracle's latency glue does not know
which it has. A measurement is a job in the shared PostgreSQL job table (``server/fleet.py``),
keyed by the latency key computed against the fingerprint a live worker of the device
registered; identical requests on any server wait for the same job. One poller thread per server
watches the jobs its requests wait on and settles their futures from the shared cache. A
request that is cancelled only stops waiting: the job stays for the others (and its result is
cached for the next ask).

Not yet on the fleet: predictions, calibration and the kernel model's fit (they need
measurements of the device's own kernels); they answer FAILED_PRECONDITION saying so.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from concurrent.futures import Future, InvalidStateError
from typing import Any

from cost_engine.latency import LatencySettings, UnknownDevice
from cost_engine.latency.measure import cached_results, latency_key
from cost_engine.spec.base import Spec, to_dict
from cost_oracle.contract.errors import FailedPrecondition, Internal, Unavailable
from cost_oracle.server.fleet import Fleet, FleetDevice
from cost_oracle.server.latency_groups import done_future

__all__ = ["FleetQueue", "NoLiveWorker"]

log = logging.getLogger("cost_oracle.fleet.queue")

#: seconds the live-device list is reused (a worker starting or dying shows within this)
_LIVE_TTL_S = 1.0


class FleetQueue:
    """Measurements through the fleet's job table, results from the shared ``cache``."""

    def __init__(self, cache: Any, fleet: Fleet, *, poll_s: float = 0.05):
        self.cache = cache
        self.fleet = fleet
        self.poll_s = poll_s
        #: key -> the futures of every request waiting on its job (each its own: one request
        #: cancelling its future must not cancel another's)
        self._waiters: dict[str, list[Future]] = {}
        self._cv = threading.Condition()
        self._closed = False
        self._counts: collections.Counter[str] = collections.Counter()
        self._live: tuple[float, list[FleetDevice]] | None = None
        self._poller = threading.Thread(target=self._poll, name="fleet-poller", daemon=True)
        self._poller.start()

    # -- devices ----------------------------------------------------------------------------
    def live(self) -> list[FleetDevice]:
        """The fleet's live devices, read at most every ``_LIVE_TTL_S`` (a request asks twice: its
        device check, then its submission)."""
        now = time.monotonic()
        with self._cv:
            if self._live is not None and now - self._live[0] < _LIVE_TTL_S:
                return self._live[1]
        live = self.fleet.devices()
        with self._cv:
            self._live = (now, live)
        return live

    def devices(self) -> list[str]:
        return sorted({d.device for d in self.live()})

    def check_device(self, device: str, live: list[FleetDevice] | None = None) -> FleetDevice:
        """The fleet device a request for ``device`` goes to; :class:`UnknownDevice` naming the
        live ones when no live worker serves it."""
        device = "cuda:0" if device == "cuda" else device
        live = self.live() if live is None else live
        match = [d for d in live if d.device == device]
        if not match:
            raise NoLiveWorker(device, sorted({d.device for d in live}))
        return match[0]  # the fingerprint with the most live workers

    # -- measurements -----------------------------------------------------------------------
    def job_of(self, candidate: Any, settings: LatencySettings,
               live: list[FleetDevice] | None = None) -> tuple[str, str, str, dict[str, Any]]:
        """(key, device, fingerprint id, payload) of measuring ``candidate``: the key against the
        fingerprint the device's live workers registered (threads: the request's, else theirs)."""
        target = self.check_device(settings.device, live)
        s = dataclasses.replace(settings, device=target.device, threads=settings.threads or target.threads)
        s.validate()
        key = latency_key(candidate, s, {**target.fingerprint, "threads": s.threads})
        payload = {"candidate": candidate if isinstance(candidate, str) else to_dict(_spec(candidate)),
                   "settings": dataclasses.asdict(s)}
        return key, target.device, target.fingerprint_id, payload

    def cached(self, candidate: Any, settings: LatencySettings) -> Any:
        """The fleet's stored measurement of ``candidate`` (noisy or not), or None."""
        key = self.job_of(candidate, settings)[0]
        return cached_results(self.cache, [key], final_only=False).get(key)

    def submit(self, candidate: Any, settings: LatencySettings, **kw: Any) -> Future:
        return self.submit_group([(candidate, settings)], **kw)[0]

    def submit_many(self, candidates: list[Any], settings: LatencySettings, **kw: Any) -> list[Future]:
        return self.submit_group([(c, settings) for c in candidates], **kw)

    def submit_group(self, requests: list[tuple[Any, LatencySettings]], *, deadline: float | None = None,
                     is_active: Any = None) -> list[Future]:
        """Futures of each (candidate, settings)'s measured latency: the final cached ones at
        once, the rest through one job per key (shared with whoever asked before)."""
        live = self.live()
        keys: list[str] = []
        jobs: dict[str, tuple[str, str, str, dict[str, Any]]] = {}
        for candidate, settings in requests:
            job = self.job_of(candidate, settings, live)
            keys.append(job[0])
            jobs.setdefault(job[0], job)
        hits = cached_results(self.cache, list(jobs))
        out: dict[str, Future] = {}
        for key, result in hits.items():
            out[key] = done_future(result)
        self._counts["cache_hits"] += len(hits)
        new: list[tuple[str, str, str, dict[str, Any]]] = []
        with self._cv:
            for key, job in jobs.items():
                if key in out:
                    continue
                waiting = self._waiters.get(key)
                if waiting is None:
                    waiting = self._waiters[key] = []
                    new.append(job)
                else:
                    self._counts["coalesced"] += 1
                out[key] = Future()
                waiting.append(out[key])
        if new:
            try:
                self.fleet.enqueue(new)
            except Exception as exc:  # the database down past the patience: retryable, like the cache's
                error = Unavailable(f"the fleet's job table is unreachable ({type(exc).__name__}); retry later")
                with self._cv:
                    for key, *_ in new:
                        for f in self._waiters.pop(key, []):
                            _settle(f, None, error)
                raise error from None
            self._counts["enqueued"] += len(new)
        with self._cv:
            self._cv.notify_all()
        return [out[k] for k in keys]

    def submit_prediction(self, *args: Any, **kwargs: Any) -> Future:
        raise FailedPrecondition("predicted latency is not available with --measure-on fleet yet (the kernel "
                                 "model needs the device's own measurements): ask for latency_mode MEASURE",
                                 [("context.latency", "use measure with --measure-on fleet")])

    def submit_fit(self, *args: Any, **kwargs: Any) -> Any:
        raise FailedPrecondition("fitting the kernel model is not available with --measure-on fleet yet; run "
                                 "cost-oracle latency fit on the device host")

    def submit_calibration(self, *args: Any, **kwargs: Any) -> Future:
        raise FailedPrecondition("calibration is not available with --measure-on fleet yet; run cost-oracle "
                                 "calibrate on the device host")

    # -- state ------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        per = self.fleet.stats()
        devices = {d: {"pending": s["queued"], "in_flight": s["running"], "busy_s": 0.0, "done": s["done"],
                       "failed": s["failed"], "workers": s["workers"]} for d, s in per.items()}
        with self._cv:
            waiting = len(self._waiters)
        return {"pending": sum(s["queued"] for s in per.values()), "in_flight": sum(s["running"] for s in per.values()),
                "done": sum(s["done"] for s in per.values()), "failed": sum(s["failed"] for s in per.values()),
                "coalesced": self._counts["coalesced"], "dropped": 0, "cache_hits": self._counts["cache_hits"],
                "max_pending": 0, "devices": devices, "measure_on": "fleet", "waiting": waiting}

    def close(self, timeout: float | None = 5.0) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
            pending = [f for fs in self._waiters.values() for f in fs]
            self._waiters.clear()
        for f in pending:
            _settle(f, None, FailedPrecondition("the server is shutting down"))
        self._poller.join(timeout=timeout)
        self.fleet.close()

    def _poll(self) -> None:
        while True:
            with self._cv:
                while not self._waiters and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                keys = list(self._waiters)
            try:
                self._settle(keys)
            except Exception:  # the database restarting: keep waiting (the futures' deadlines bound it)
                log.warning("polling the fleet's jobs failed; retrying", exc_info=True)
            with self._cv:
                if not self._closed:
                    self._cv.wait(self.poll_s)

    def _settle(self, keys: list[str]) -> None:
        states = self.fleet.states(keys)
        done = [k for k, (state, _) in states.items() if state == "done"]
        results = cached_results(self.cache, done, final_only=False) if done else {}
        for key in done:
            if key not in results:  # done, but its row is gone (pruned): measure again
                self.fleet.requeue_done(key)
        settled: list[tuple[list[Future], Any, BaseException | None]] = []
        with self._cv:
            for key, (state, error) in states.items():
                if key not in self._waiters:
                    continue
                if key in results:
                    settled.append((self._waiters.pop(key), results[key], None))
                elif state == "failed":
                    settled.append((self._waiters.pop(key), None,
                                    Internal(f"the latency measurement failed on the fleet: {error}")))
        for futures, result, error in settled:
            for f in futures:
                _settle(f, result, error)


def _settle(f: Future, result: Any, error: BaseException | None) -> None:
    """Settle a request's future unless it was cancelled (the request gave up) or settled."""
    try:
        if error is not None:
            f.set_exception(error)
        else:
            f.set_result(result)
    except InvalidStateError:
        pass


class NoLiveWorker(UnknownDevice):
    """A device no live fleet worker serves (gRPC: FAILED_PRECONDITION), naming the live ones."""

    def __init__(self, device: str, live: list[str]):
        super().__init__(device, live)
        self.args = (f"no live fleet worker serves device {device!r}; live devices: {', '.join(live) or 'none'}",)

    def __str__(self) -> str:
        return str(self.args[0])


def _spec(candidate: Any) -> Spec:
    if not isinstance(candidate, Spec):
        raise TypeError(f"a fleet job needs a spec or a built-in name, got {type(candidate).__name__}")
    return candidate
