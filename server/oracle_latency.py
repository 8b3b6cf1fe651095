"""The oracle's latency glue: from a costed candidate to a measurement or a prediction.

Kept apart from the analytic path because latency is optional on a server (``cost_engine.latency``
is imported only when a request asks for it) and because its failures come from a
different place: the measurement queue, the device and the deadline, each mapped here to the
status a caller can act on (FAILED_PRECONDITION for a missing device, RESOURCE_EXHAUSTED for a
full queue, DEADLINE_EXCEEDED, ...). The oracle holds one :class:`Latency`, built from what it
needs and nothing else: the cache, the limits, the request gate and the measurement queue it owns.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from cost_engine.context import LATENCY_DTYPES
from cost_engine.spec.base import SpecError
from cost_oracle.contract.errors import (
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    OracleError,
    ResourceExhausted,
    invalid,
    join_path,
)
from cost_oracle.contract.types import Context, Limits
from cost_oracle.contract.types import is_int as _is_int
from cost_oracle.server.cache import CostCache
from cost_oracle.server.candidates import Prepared
from cost_oracle.server.gate import RequestGate
from cost_oracle.server.latency_groups import done_future

__all__ = ["Latency", "latency_dict", "latency_error"]

#: the oracle's one logger name, whichever module logs
log = logging.getLogger("cost_oracle.oracle")


class Latency:
    """The oracle's latency: measurements and predictions through one measurement queue per
    oracle (created on first use unless one is given), calibration and the kernel model's fit.
    Thread-safe."""

    def __init__(self, cache: CostCache, limits: Limits, gate: RequestGate, queue: Any = None, *,
                 fleet_url: str | None = None, fleet_patience_s: float | None = None):
        self.cache = cache
        self.limits = limits
        self.gate = gate
        #: the shared PostgreSQL of a measurement fleet (``--measure-on fleet``), or None: local
        self.fleet_url = fleet_url
        #: how long the fleet's job table statements wait out a database that is down (None: the
        #: job table's own default)
        self.fleet_patience_s = fleet_patience_s
        self._queue = queue
        self._owns_queue = queue is None
        self._queue_lock = threading.Lock()

    def stats(self) -> dict[str, Any]:
        """The measurement queue's counters (zeros before anything was measured)."""
        if self._queue is None:
            return {"pending": 0, "in_flight": 0, "done": 0, "coalesced": 0, "dropped": 0, "cache_hits": 0,
                    "failed": 0, "max_pending": self.limits.max_pending_measurements, "devices": {},
                    "measure_on": "fleet" if self.fleet_url is not None else "local"}
        try:
            return dict(self._queue.stats())
        except Exception:
            log.exception("measurement queue stats failed")
            return {}

    def close(self) -> None:
        if self._queue is not None and self._owns_queue:
            try:
                self._queue.close()
            except Exception:
                log.exception("closing the measurement queue failed")

    @contextlib.contextmanager
    def waiting_on(self, futures: Sequence[Any]) -> Iterator[None]:
        """Around blocking on ``futures``: the request's work slot is lent back while any is
        pending (``server/gate.py``); nothing when all are done (a cache hit never waits). When no
        waiting slot is free the futures are cancelled before RESOURCE_EXHAUSTED is raised, so
        nothing is measured for a request that was refused."""
        pending = [f for f in futures if f is not None and not isinstance(f, OracleError)]
        with contextlib.ExitStack() as stack:
            if not all(f.done() for f in pending):
                try:
                    stack.enter_context(self.gate.waiting())
                except OracleError:
                    for f in pending:
                        f.cancel()
                    raise
            yield

    def latency_queue(self) -> Any:
        with self._queue_lock:
            if self._queue is None:
                try:  # latency (torch) loads with the first request that asks for it
                    if self.fleet_url is not None:
                        from cost_oracle.server.fleet import Fleet
                        from cost_oracle.server.fleet_queue import FleetQueue

                        self._queue = FleetQueue(self.cache, Fleet(self.fleet_url) if self.fleet_patience_s is None
                                                 else Fleet(self.fleet_url, retry_s=self.fleet_patience_s))
                    else:
                        from cost_oracle.server.latency_queue import MeasurementQueue

                        self._queue = MeasurementQueue(self.cache, max_pending=self.limits.max_pending_measurements)
                except ImportError as exc:
                    raise FailedPrecondition(f"latency is not available on this server ({exc})") from None
            return self._queue

    def check_device(self, device: str, path: str = "context") -> None:
        """FAILED_PRECONDITION for a latency device nobody here serves (before any work is done):
        this host's devices, or with a fleet the devices its live workers serve."""
        try:
            from cost_engine.latency import UnknownDevice
            from cost_engine.latency.fingerprint import check_device
        except ImportError as exc:
            raise FailedPrecondition(f"latency is not available on this server ({exc})") from None
        try:
            if self.fleet_url is not None:
                self.latency_queue().check_device(device)
            else:
                check_device(device)
        except UnknownDevice as exc:
            raise FailedPrecondition(str(exc), [(f"{path}.device", str(exc))]) from None
        except (SpecError, ValueError) as exc:
            raise invalid([(f"{path}.device", str(exc))]) from None

    def devices(self) -> list[dict[str, Any]]:
        """The devices latency can be had for: this host's, or the fleet's live ones (with how
        many workers serve each fingerprint)."""
        if self.fleet_url is not None:
            try:
                live = self.latency_queue().live()
            except Exception:
                log.exception("listing the fleet's devices failed")
                return []
            return [{"name": d.device, "fingerprint": {**{k: str(v) for k, v in d.fingerprint.items()},
                                                       "fleet_fingerprint_id": d.fingerprint_id,
                                                       "fleet_workers": str(d.workers)}} for d in live]
        try:
            from cost_engine.latency import available_devices, fingerprint
        except ImportError:
            return [{"name": "cpu", "fingerprint": {}}]
        out = []
        for d in available_devices():
            try:
                fp = fingerprint(d)
            except Exception as exc:  # a device that cannot be fingerprinted is still listed
                fp = {"error": str(exc)}
            out.append({"name": d, "fingerprint": {k: str(v) for k, v in fp.items()}})
        return out

    def latency_settings(self, item: Prepared, ctx: Context, path: str = "context") -> Any:
        try:
            from cost_engine.latency import LatencySettings
        except ImportError as exc:
            raise FailedPrecondition(f"latency is not available on this server ({exc})") from None
        s = LatencySettings(device=ctx.device or "cpu", batch_size=ctx.batch_size, resolution=ctx.resolution,
                            dtype=ctx.dtype, threads=ctx.threads, memory_format=ctx.memory_format,
                            compile=ctx.compile, cudnn_benchmark=ctx.cudnn_benchmark, in_channels=item.in_channels,
                            l2="cold" if ctx.cold_l2 else "warm", cuda_graphs=ctx.cuda_graphs)
        try:
            s.validate()
        except SpecError as exc:
            raise invalid([(join_path(path, e.path), e.reason) for e in exc.errors]) from None
        return s

    def _submit_latency(self, item: Prepared, ctx: Context, mode: str, *, deadline: float | None = None,
                        is_active: Callable[[], bool] | None = None) -> Any:
        """A future of the latency of one candidate (raises OracleError at submission)."""
        settings = self.latency_settings(item, ctx)
        q = self.latency_queue()
        with _submission_errors():
            if mode == "measure":
                return q.submit(item.candidate, settings, deadline=deadline, is_active=is_active)
            if mode == "auto":
                cached = self._cached_measurement(item, settings)
                if cached is not None:
                    return done_future(cached)
            return q.submit_prediction(item.candidate, settings, method=ctx.latency_method, deadline=deadline,
                                       is_active=is_active, measure=not ctx.never_measure)

    def _cached_measurement(self, item: Prepared, settings: Any) -> Any:
        """The stored measurement for ``auto`` mode, noisy or not (a noisy one says so); with a
        fleet, the one its workers stored for the device's fingerprint."""
        from cost_engine.latency import latency_key
        from cost_engine.latency.measure import cached_results

        if self.fleet_url is not None:
            return self.latency_queue().cached(item.candidate, settings)
        try:
            key = latency_key(item.candidate, settings)
            return cached_results(self.cache, [key], final_only=False).get(key)
        except Exception:
            return None

    def latency_of(self, items: Sequence[Prepared | OracleError], ctx: Context, mode: str | None = None, *,
                   deadline: float | None = None, is_active: Callable[[], bool] | None = None,
                   paths: Sequence[str] | None = None) -> list[dict[str, Any] | OracleError | None]:
        """Latency dicts (proto ``Latency`` keys) per item; all submitted first, then awaited."""
        mode = mode or ctx.latency
        paths = paths or [f"candidates[{i}]" for i in range(len(items))]
        if mode == "measure":
            futures = self._submit_measurements(items, ctx, deadline, is_active)
        else:
            futures = self._submit_each(items, ctx, mode, deadline, is_active)
        out: list[dict[str, Any] | OracleError | None] = []
        with self.waiting_on(futures):
            for i, f in enumerate(futures):
                if f is None or isinstance(f, OracleError):
                    out.append(f)
                    continue
                try:
                    timeout = None if deadline is None else max(0.0, deadline - time.time())
                    out.append(latency_dict(f.result(timeout=timeout)))
                except OracleError as exc:
                    out.append(exc)
                except Exception as exc:
                    out.append(latency_error(exc, paths[i]))
        return out

    def _submit_each(self, items: Sequence[Prepared | OracleError], ctx: Context, mode: str,
                     deadline: float | None, is_active: Callable[[], bool] | None) -> list[Any]:
        """Futures (or per-item errors, or None) of predictions and cached-or-predicted answers,
        one submission per item."""
        futures: list[Any] = []
        for item in items:
            if not isinstance(item, Prepared):
                futures.append(None)
                continue
            try:
                futures.append(self._submit_latency(item, ctx, mode, deadline=deadline, is_active=is_active))
            except (FailedPrecondition, ResourceExhausted):
                # request-level conditions: the whole call fails with them
                for f in futures:
                    if f is not None and not isinstance(f, OracleError):
                        f.cancel()
                raise
            except OracleError as exc:
                futures.append(exc)
        return futures

    def _submit_measurements(self, items: Sequence[Prepared | OracleError], ctx: Context, deadline: float | None,
                             is_active: Callable[[], bool] | None) -> list[Any]:
        """Futures (or per-item errors, or None) of a request's measurements, admitted to the
        queue all or nothing: a request that does not fit fails whole with RESOURCE_EXHAUSTED and
        leaves nothing queued behind it."""
        out: list[Any] = [None] * len(items)
        todo: list[int] = []
        requests = []
        for i, item in enumerate(items):
            if not isinstance(item, Prepared):
                continue
            try:
                requests.append((item.candidate, self.latency_settings(item, ctx)))
                todo.append(i)
            except OracleError as exc:
                out[i] = exc
        if not requests:
            return out
        with _submission_errors():
            futures = self.latency_queue().submit_group(requests, deadline=deadline, is_active=is_active)
        for i, f in zip(todo, futures, strict=True):
            out[i] = f
        return out

    def attach_latency(self, items: Sequence[Prepared | OracleError], reports: list[Any], ctx: Context,
                       paths: Sequence[str] | None = None, *, deadline: float | None = None,
                       is_active: Callable[[], bool] | None = None) -> None:
        todo = [it if not isinstance(r, OracleError) else r for it, r in zip(items, reports, strict=True)]
        lats = self.latency_of(todo, ctx, deadline=deadline, is_active=is_active, paths=paths)
        for i, lat in enumerate(lats):
            if isinstance(reports[i], OracleError):
                continue
            if isinstance(lat, OracleError):
                reports[i] = lat
            elif lat is not None:
                reports[i]["latency"] = lat
                reports[i]["sources"] = {**reports[i]["sources"], "latency": lat["source"]}

    def calibrate(self, device: str = "cpu", dtype: str = "float32", threads: int | None = None,
                  refresh: bool = False, timeout: float | None = None) -> dict[str, Any]:
        """Device ceilings for roofline prediction (measured once per fingerprint, then cached)."""
        errors = []
        if dtype not in LATENCY_DTYPES:
            errors.append(("dtype", f"must be one of {', '.join(LATENCY_DTYPES)}; got {dtype!r}"))
        if threads is not None and (not _is_int(threads) or not 1 <= threads <= 1024):
            errors.append(("threads", f"must be an integer in [1, 1024], got {threads!r}"))
        if errors:
            raise InvalidArgument("invalid calibration request", errors)
        try:
            from cost_engine.latency import UnknownDevice
        except ImportError as exc:
            raise FailedPrecondition(f"latency is not available on this server ({exc})") from None
        q = self.latency_queue()
        try:
            future = q.submit_calibration(device or "cpu", dtype, threads, refresh=refresh)
            with self.waiting_on([future]):
                result = future.result(timeout=timeout)
        except UnknownDevice as exc:
            raise FailedPrecondition(str(exc), [("device", str(exc))]) from None
        except SpecError as exc:
            raise invalid([(e.path, e.reason) for e in exc.errors]) from None
        except OracleError:
            raise
        except Exception as exc:
            raise latency_error(exc, "") from None
        d = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        d["fingerprint"] = {k: str(v) for k, v in (d.get("fingerprint") or {}).items()}
        return d


    def fit_latency_model(self, items: Sequence[Prepared], ctx: Context, *, max_units: int = 400,
                          networks: int = 30, budget_s: float | None = None, adaptive: float = 0.4, seed: int = 0,
                          deadline: float | None = None, is_active: Callable[[], bool] | None = None,
                          poll_s: float = 0.25) -> Iterator[dict[str, Any]]:
        """Progress of a kernel-model fit over ``items`` (the search space), as dicts ``{phase,
        done, total, elapsed_s}`` whenever it moves; the last one also has ``model`` (a
        ``KernelModel`` message's fields)."""
        errors = _fit_errors(items, max_units, networks, budget_s, adaptive)
        if errors:
            raise InvalidArgument("invalid fit request", errors)
        settings = self.latency_settings(items[0], ctx)
        q = self.latency_queue()
        t0 = time.monotonic()
        with _submission_errors():
            future, progress = q.submit_fit([it.candidate for it in items], settings, deadline=deadline,
                                            is_active=is_active, max_units=max_units, networks=networks,
                                            budget_s=budget_s, adaptive=adaptive, seed=seed)
        seen = 0
        yield {"phase": "queued", "done": 0, "total": 0, "elapsed_s": 0.0}
        with self.waiting_on([future]):
            while True:
                try:
                    model = future.result(timeout=poll_s)
                    break
                except TimeoutError:
                    pass
                except OracleError:
                    raise
                except Exception as exc:
                    raise latency_error(exc, "context") from None
                if deadline is not None and time.time() > deadline:
                    raise DeadlineExceeded("the fit was not done before the deadline (it goes on while others wait "
                                           "for it; what it timed stays cached)")
                for phase, done, total in progress.since(seen):
                    seen += 1
                    yield {"phase": phase, "done": done, "total": total, "elapsed_s": time.monotonic() - t0}
        for phase, done, total in progress.since(seen):
            yield {"phase": phase, "done": done, "total": total, "elapsed_s": time.monotonic() - t0}
        yield {"phase": "done", "done": 1, "total": 1, "elapsed_s": time.monotonic() - t0,
               "model": _model_summary(model, settings)}


def _fit_errors(items: Sequence[Prepared], max_units: int, networks: int, budget_s: float | None,
                adaptive: float) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    if not items:
        errors.append(("candidates", "must name the search space to sample: at least one network"))
    for i, it in enumerate(items):
        if it.in_channels is not None:
            errors.append((f"candidates[{i}]", "must be a network or a built-in: the kernel model is fitted on "
                                               "networks, not on standalone blocks"))
    if not _is_int(max_units) or not 1 <= max_units <= 20_000:
        errors.append(("max_units", f"must be an integer in [1, 20000], got {max_units!r}"))
    if not _is_int(networks) or not 1 <= networks <= 1_000:
        errors.append(("networks", f"must be an integer in [1, 1000], got {networks!r}"))
    if budget_s is not None and not (isinstance(budget_s, (int, float)) and math.isfinite(budget_s) and budget_s > 0):
        errors.append(("budget_minutes", f"must be a positive number of minutes, got {budget_s!r} s"))
    if not (isinstance(adaptive, (int, float)) and 0.0 <= adaptive < 1.0):
        errors.append(("adaptive", f"must be in [0, 1), got {adaptive!r}"))
    return errors


def _model_summary(model: Any, settings: Any) -> dict[str, Any]:
    """A fitted model as the proto ``KernelModel`` fields (JSON-plain)."""
    from cost_engine.latency.fingerprint import fingerprint
    from cost_engine.latency.kernel_predict import model_key

    resolved = settings.resolved()
    fp = fingerprint(resolved.device, resolved.threads)
    st = model.stats
    return {
        "key": model_key(resolved, fp), "generation": int(st.get("generation", 0)),
        "units": int(st.get("units", 0)), "networks": int(st.get("networks", 0)),
        "unit_measurements": int(st.get("unit_measurements", 0)),
        "network_measurements": int(st.get("network_measurements", 0)),
        "profiling_s": float(st.get("profiling_s", 0.0)),
        "distinct_units_in_space": int(st.get("distinct_units_in_space", 0)),
        "interval_90_rel": math.exp(model.log_q90) - 1.0, "types": list(st.get("types", ())),
        "stopped_by_budget": bool(st.get("stopped_by_budget")), "fingerprint": {k: str(v) for k, v in fp.items()},
        "rounds": [{"validation_units": int(r["validation_units"]), "resampled": int(r["resampled"]),
                    "median_abs_log_error": float(r["median_abs_log_error"] or 0.0),
                    "max_abs_log_error": float(r["max_abs_log_error"] or 0.0),
                    "worst_types": list(r["worst_types"])} for r in st.get("adaptive_rounds", ())],
        "unit_counts": {str(k): int(v) for k, v in (st.get("unit_counts") or {}).items()},
    }


def latency_dict(result: Any) -> dict[str, Any]:
    """A latency result as the proto ``Latency`` fields (JSON-plain)."""
    from cost_engine.latency.result import NOISY_REL_CI

    d = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    canary = d.get("canary") or {}
    settings = d.get("settings") or {}
    details = d.get("details") or {}
    out = {
        "median_ms": float(d.get("median_ms") or 0.0),
        "p10_ms": float(d.get("p10_ms") or 0.0),
        "p90_ms": float(d.get("p90_ms") or 0.0),
        "cv": float(d.get("cv") or 0.0),
        "runs": int(d.get("runs") or 0),
        "source": str(d.get("source") or ""),
        "method": str(d.get("method") or ""),
        "uncertainty_ms": float(d.get("uncertainty_ms") or 0.0),
        "fingerprint": {k: str(v) for k, v in (d.get("fingerprint") or {}).items()},
        "protocol_version": str(d.get("protocol_version") or ""),
        "sessions": int(d.get("sessions") or 0),
        "spread_across_sessions": float(d.get("spread_across_sessions") or 0.0),
        "session_medians_ms": [float(x) for x in d.get("session_medians_ms") or ()],
        "device": str(settings.get("device") or d.get("device") or ""),
        "threads": int(d.get("threads") or settings.get("threads") or 0),
        "cached": bool(d.get("cached")),
        "key": str(d.get("key") or ""),
        "canary_drift": float(canary.get("drift") or 0.0) if isinstance(canary, dict) else 0.0,
        "page_faults_per_call": float(d.get("page_faults_per_call") or 0.0),
        "noisy": bool(d.get("noisy")),
        "ci_low_ms": float(d.get("ci_low_ms") or 0.0),
        "ci_high_ms": float(d.get("ci_high_ms") or 0.0),
        "noisy_rel_ci": float(NOISY_REL_CI),
        "ratio": float(d.get("ratio") or 0.0),
        "reference": str((d.get("reference") or {}).get("name") or ""),
        "anchor_ms": float(d.get("anchor_ms") or 0.0),
        "anchor_sessions": int(d.get("anchor_sessions") or 0),
        "raw_median_ms": float(d.get("raw_median_ms") or 0.0),
        "raw_p10_ms": float(d.get("raw_p10_ms") or 0.0),
        "raw_p90_ms": float(d.get("raw_p90_ms") or 0.0),
        "raw_session_medians_ms": [float(x) for x in d.get("raw_session_medians_ms") or ()],
        "raw_spread_across_sessions": float(d.get("raw_spread_across_sessions") or 0.0),
        "remeasured": int(d.get("remeasured") or 0),
        "interval_level": float(details.get("interval_level") or 0.0),
        "measured_for_prediction": int(details.get("measured_for_prediction") or 0),
    }
    for k, v in out.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = 0.0
    return out


@contextlib.contextmanager
def _submission_errors() -> Iterator[None]:
    """Failures of a submission to the queue as the status a caller can act on: the device is
    missing (FAILED_PRECONDITION), a setting is bad (INVALID_ARGUMENT), the queue is full
    (RESOURCE_EXHAUSTED). Anything else propagates as it is."""
    from cost_engine.latency import UnknownDevice

    try:
        yield
    except UnknownDevice as exc:
        raise FailedPrecondition(str(exc), [("context.device", str(exc))]) from None
    except SpecError as exc:
        raise invalid([(join_path("context", e.path), e.reason) for e in exc.errors]) from None
    except OracleError:
        raise
    except Exception as exc:
        if type(exc).__name__ == "QueueFull":
            raise ResourceExhausted(f"{exc}; retry later", quota="max_pending_measurements") from None
        if type(exc).__name__ in ("MissingKernelModel", "NeedsMeasurement"):
            raise latency_error(exc, "context") from None
        raise


def latency_error(exc: BaseException, path: str) -> OracleError:
    name = type(exc).__name__
    if name == "MeasurementDropped":
        if getattr(exc, "code", "") == "DEADLINE_EXCEEDED":
            return DeadlineExceeded(f"latency measurement dropped: {exc}")
        return Cancelled(f"latency measurement dropped: {exc}")
    if name == "QueueFull":
        return ResourceExhausted(f"the measurement queue is full ({exc}); retry later",
                                 quota="max_pending_measurements")
    if name == "TooLargeForDevice":
        return ResourceExhausted(str(exc), quota="device_memory")
    if name == "UnknownDevice":
        return FailedPrecondition(str(exc), [("context.device", str(exc))])
    if name in ("MissingKernelModel", "NeedsMeasurement"):
        return FailedPrecondition(str(exc), [(join_path(path, "latency_method"), str(exc))])
    if isinstance(exc, TimeoutError):
        return DeadlineExceeded("latency was not ready before the deadline")
    if isinstance(exc, SpecError):
        return invalid([(join_path(path, e.path), e.reason) for e in exc.errors])
    log.error("latency failed: %s: %s", name, exc)
    return Internal(f"latency measurement failed: {name}: {exc}")
