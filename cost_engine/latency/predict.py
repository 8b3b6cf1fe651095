"""Predicted latency: roofline, block lookup table, or FLOPs alone — each optionally corrected
by a residual learned on a few measured networks, and each with a stated uncertainty.

Methods (the raw estimate, before any correction):

* ``roofline`` — :mod:`roofline`: per op overhead + max(FLOPs/peak, bytes/bandwidth), summed.
* ``block_table`` — :mod:`block_table`: the sum of each block's latency measured in isolation.
* ``flops`` — FLOPs / peak FLOP/s: the baseline a NAS paper uses when it has no latency model.
* ``kernel`` — the learned kernel-level model (``kernel_predict.py``): no residual, its own
  interval; it must be fitted for the device first.
* ``default`` — ``kernel`` where a kernel model is fitted for the settings on this device, else
  ``block_table`` (:func:`resolve_method`); what a request that names no method gets.

Residual: ``log(measured) = a + b * log(raw)``, a least-squares fit over measured networks
(:func:`fit_residual`). A power law, not a ratio, because the raw errors are not a constant
factor: the table sum misses more of a small network (inter-block overheads), the roofline far
more of a small network (it runs nowhere near the ceilings). Its residual standard deviation is
the stated relative uncertainty of a corrected prediction. Without a fit, the uncertainty is the
method's prior in :data:`PRIOR_REL_UNCERTAINTY`, deliberately wide.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from cost_engine.analyze import analyze
from cost_engine.latency.block_table import BLOCK_PROTOCOL, BLOCK_SESSIONS, table_estimates
from cost_engine.latency.calibrate import Calibration, calibrate
from cost_engine.latency.fingerprint import check_device, fingerprint
from cost_engine.latency.keys import CACHE_VERSION, KIND_RESIDUAL, entry_key
from cost_engine.latency.measure import measure_many, prepare
from cost_engine.latency.memory_cache import MemoryCache
from cost_engine.latency.protocol import Protocol
from cost_engine.latency.result import LatencyResult, predicted
from cost_engine.latency.roofline import roofline
from cost_engine.latency.settings import LatencySettings
from cost_engine.spec.base import FieldError, Spec, SpecError

METHODS = ("roofline", "block_table", "flops", "kernel")
#: the methods with a raw estimate that a residual corrects
RAW_METHODS = ("roofline", "block_table", "flops")
#: what a caller may ask for: a method, or "default" (see :func:`resolve_method`)
REQUESTABLE = ("default", *METHODS)
#: relative 1-sigma uncertainty of an uncorrected estimate: priors from the benchmark on a
#: 2-core CPU (benchmarks/latency_prediction.py), rounded up; a fitted residual replaces them
PRIOR_REL_UNCERTAINTY = {"roofline": 0.6, "block_table": 0.3, "flops": 1.0}

#: predictions made without a cache still reuse calibrations and block timings in this process
PROCESS_CACHE = MemoryCache()


@dataclass
class Residual:
    method: str
    intercept: float
    slope: float
    rel_sigma: float
    n: int

    def apply(self, raw_ms: float) -> float:
        return math.exp(self.intercept) * raw_ms ** self.slope if raw_ms > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Residual:
        return cls(**{k: data[k] for k in ("method", "intercept", "slope", "rel_sigma", "n")})

    @classmethod
    def fit(cls, method: str, raw_ms: list[float], measured_ms: list[float]) -> Residual:
        """Least squares of log(measured) on log(raw); with under 3 points only a ratio is fitted."""
        xs = [math.log(r) for r in raw_ms]
        ys = [math.log(m) for m in measured_ms]
        n = len(xs)
        if n == 0:
            raise ValueError("a residual fit needs at least one measured network")
        mx, my = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        fit_slope = n >= 3 and sxx > 1e-12
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if fit_slope else 1.0
        intercept = my - slope * mx
        dof = max(1, n - (2 if n >= 3 else 1))
        sigma = math.sqrt(sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True)) / dof)
        return cls(method, intercept, slope, sigma, n)


def _check_method(method: str) -> None:
    if method not in REQUESTABLE:
        raise SpecError([FieldError("method", f"must be one of {', '.join(REQUESTABLE)}, got {method!r}")])


def resolve_method(method: str, settings: LatencySettings, cache: Any) -> str:
    """The method ``default`` stands for: the kernel model once fitted for these settings on
    this device, else the block table."""
    _check_method(method)
    if method != "default":
        return method
    from cost_engine.latency.kernel_predict import has_model

    return "kernel" if has_model(PROCESS_CACHE if cache is None else cache, settings) else "block_table"


def residual_key(method: str, resolved: LatencySettings, fp: dict[str, Any]) -> str:
    return entry_key(KIND_RESIDUAL, {"method": method}, {"settings": resolved.for_block(), "fingerprint": fp})


def raw_estimates(candidates: list[Spec | str], settings: LatencySettings, method: str, *, cache: Any,
                  calibration: Calibration | None = None, measure_missing: bool = True,
                  block_sessions: int = BLOCK_SESSIONS, block_protocol: Protocol = BLOCK_PROTOCOL,
                  ) -> tuple[list[tuple[float, float, dict[str, Any]]], LatencySettings, dict[str, Any]]:
    """(raw estimate ms, its own measurement uncertainty ms, details) per candidate."""
    if method not in RAW_METHODS:
        raise SpecError([FieldError("method", f"a raw estimate is one of {', '.join(RAW_METHODS)}, got {method!r}")])
    resolved = settings.resolved()
    check_device(resolved.device)
    fp = fingerprint(resolved.device, resolved.threads)
    prepared = [prepare(c, settings) for c in candidates]
    out: list[tuple[float, float, dict[str, Any]]] = []
    if method == "block_table":
        estimates, new = table_estimates([(s, shape) for s, _, shape in prepared], resolved, fp, cache=cache,
                                         measure_missing=measure_missing, sessions=block_sessions,
                                         protocol=block_protocol)
        for e in estimates:
            out.append((e.total_ms, e.uncertainty_ms, {"blocks": e.blocks, "new_block_measurements": e.new_blocks,
                                                       "table_measurements_this_call": new}))
        return out, resolved, fp
    cal = calibration or calibrate(resolved.device, resolved.dtype, resolved.threads, cache=cache,
                                  measure=measure_missing)
    for spec, _, shape in prepared:
        if method == "roofline":
            terms = roofline(spec, shape, cal, resolved.dtype)
            out.append((terms.total_s * 1e3, 0.0, {"compute_bound_ms": terms.compute_bound_s * 1e3,
                                                   "memory_bound_ms": terms.memory_bound_s * 1e3,
                                                   "overhead_ms": terms.overhead_s * 1e3, "ops": terms.ops}))
        else:
            flops = analyze(spec, batch_size=shape[0], resolution=shape[-1] if len(shape) == 4 else None,
                            dtype=resolved.dtype, in_channels=shape[1] if len(shape) == 4 else None).flops
            out.append((flops / cal.peak_flops * 1e3, 0.0, {"flops": flops}))
    return out, resolved, fp


def predict_many(candidates: list[Spec | str], settings: LatencySettings | None = None, *,
                 method: str = "default", cache: Any = None, residual: Residual | str | None = "auto",
                 calibration: Calibration | None = None, measure_missing: bool = True,
                 block_sessions: int = BLOCK_SESSIONS, block_protocol: Protocol = BLOCK_PROTOCOL,
                 ) -> list[LatencyResult]:
    """Predicted latency of each candidate (input order). ``residual="auto"`` uses the residual
    stored in the cache for this method, settings and device, if one was fitted."""
    settings = settings or LatencySettings()
    cache = PROCESS_CACHE if cache is None else cache
    method = resolve_method(method, settings, cache)
    if method == "kernel":  # the learned kernel model (kernel_predict.py): fitted once, never measures
        from cost_engine.latency.kernel_predict import predict_with_kernels

        return predict_with_kernels(candidates, settings, cache=cache)
    raws, resolved, fp = raw_estimates(candidates, settings, method, cache=cache, calibration=calibration,
                                       measure_missing=measure_missing, block_sessions=block_sessions,
                                       block_protocol=block_protocol)
    if residual == "auto":
        stored = cache.get(residual_key(method, resolved, fp))
        residual = Residual.from_dict(stored) if stored else None
    results = []
    for raw, own_unc, details in raws:
        if isinstance(residual, Residual):
            est = residual.apply(raw)
            rel = residual.rel_sigma
            details = details | {"raw_ms": raw, "residual": residual.to_dict()}
        else:
            est = raw
            rel = PRIOR_REL_UNCERTAINTY[method]
            details = details | {"raw_ms": raw, "residual": None}
        unc = math.hypot(est * rel, own_unc)
        results.append(predicted(est, unc, method, settings=resolved.to_dict(), fingerprint=fp,
                                 threads=resolved.threads, details=details))
    return results


def predict(candidate: Spec | str, settings: LatencySettings | None = None, **kwargs: Any) -> LatencyResult:
    """Predicted latency of one candidate (see :func:`predict_many`)."""
    return predict_many([candidate], settings, **kwargs)[0]


def fit_residual(method: str, candidates: list[Spec | str], settings: LatencySettings | None = None, *,
                 cache: Any = None, measured: list[LatencyResult] | None = None, sessions: int = 3,
                 time_cap_s: float | None = None, store: bool = True, **predict_kwargs: Any) -> Residual:
    """Fit the residual of ``method`` on ``candidates`` (measured, through the cache, unless
    ``measured`` is given) and store it so later predictions use it (``residual="auto"``)."""
    settings = settings or LatencySettings()
    cache_ = PROCESS_CACHE if cache is None else cache
    if measured is None:
        measured = measure_many(candidates, settings, cache=cache, sessions=sessions, time_cap_s=time_cap_s)
    raws, resolved, fp = raw_estimates(candidates, settings, method, cache=cache_, **predict_kwargs)
    residual = Residual.fit(method, [r[0] for r in raws], [m.median_ms for m in measured])
    if store:
        cache_.put(residual_key(method, resolved, fp), KIND_RESIDUAL, residual.to_dict(), CACHE_VERSION)
    return residual
