"""Fitting the kernel predictor on a device from the oracle's own measurements, and predicting
with it (issue #11; the model is ``kernel_model.py``, the units ``kernels.py``).

``fit_kernel_predictor``: the units of the search space the user names (a list of candidates:
a sweep's points, a sample of a NAS space, the built-in families), sampled in proportion to how
often the space uses them, timed paired through the cache (``kernel_table.py``); a few of the
candidates measured whole (the overhead term and the interval); the model stored as data under
the settings and device fingerprint. ``predict_with_kernels``: the stored model's prediction,
with no measurement at all — a unit never timed is predicted from its features, which is the
point of a learned model over a lookup table. Without a fitted model it fails, naming the fix.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from cost_engine.latency.fingerprint import check_device, fingerprint
from cost_engine.latency.kernel_model import KernelModel, fit_kernel_model
from cost_engine.latency.kernel_table import KERNEL_SESSIONS, measure_units
from cost_engine.latency.kernels import Kernel, network_kernels
from cost_engine.latency.keys import CACHE_VERSION, KIND_KERNEL_MODEL, entry_key
from cost_engine.latency.measure import measure_many, prepare
from cost_engine.latency.result import LatencyResult, predicted
from cost_engine.latency.settings import LatencySettings
from cost_engine.spec.base import Spec

Progress = Callable[[str, int, int], None]


class MissingKernelModel(LookupError):
    """No kernel model has been fitted for these settings on this device."""


def model_key(resolved: LatencySettings, fp: dict[str, Any]) -> str:
    return entry_key(KIND_KERNEL_MODEL, {"method": "kernel"}, {"settings": resolved.for_block(), "fingerprint": fp})


_LOADED: dict[str, tuple[str, KernelModel]] = {}
_LOCK = threading.Lock()


def load_model(cache: Any, key: str) -> KernelModel | None:
    """The stored model (rebuilt from its text once per process and stored version)."""
    data = cache.get(key) if cache is not None else None
    if data is None:
        return None
    stamp = str(data.get("stats", {}).get("fitted_at"))
    with _LOCK:
        hit = _LOADED.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    model = KernelModel.from_dict(data)
    with _LOCK:
        _LOADED[key] = (stamp, model)
    return model


def _kernels(candidate: Spec | str, settings: LatencySettings) -> tuple[list[Kernel], LatencySettings]:
    spec, resolved, shape = prepare(candidate, settings)
    return network_kernels(spec, shape, dtype=resolved.dtype, device=resolved.device,
                           compiled=bool(resolved.compile)), resolved


def sample_units(candidates: list[list[Kernel]], budget: int, seed: int = 0) -> list[Kernel]:
    """Distinct units drawn without replacement, each with probability proportional to how many
    times the candidates use it (the space's kernel distribution), at most ``budget``."""
    counts: dict[tuple[Any, ...], int] = {}
    first: dict[tuple[Any, ...], Kernel] = {}
    for ks in candidates:
        for k in ks:
            ident = k.identity()
            counts[ident] = counts.get(ident, 0) + 1
            first.setdefault(ident, k)
    rng = random.Random(seed)
    # Efraimidis-Spirakis weighted sampling without replacement: key u^(1/w), largest first
    keyed = sorted(counts, key=lambda i: -(rng.random() ** (1.0 / counts[i])))
    return [first[i] for i in keyed[:budget]]


def fit_kernel_predictor(candidates: list[Spec | str], settings: LatencySettings | None = None, *, cache: Any,
                         max_units: int = 400, networks: int = 12, unit_sessions: int = KERNEL_SESSIONS,
                         network_sessions: int = 2, time_cap_s: float | None = 0.5, seed: int = 0,
                         progress: Progress | None = None) -> KernelModel:
    """Profile and fit the kernel predictor for ``settings`` on this device; stored in ``cache``.

    ``max_units``: the unit measurement budget; ``networks``: how many of the candidates (the
    first ones) are measured whole for the overhead term and the interval."""
    if cache is None:
        raise ValueError("fitting the kernel predictor needs a cache (it is stored there, as its measurements)")
    settings = settings or LatencySettings()
    resolved = settings.resolved()
    check_device(resolved.device)
    fp = fingerprint(resolved.device, resolved.threads)
    t0 = time.monotonic()
    per_candidate = [_kernels(c, settings)[0] for c in candidates]
    chosen = sample_units(per_candidate, max_units, seed)
    if progress:
        progress("units", 0, len(chosen))
    unit_results = []
    step = 50
    for start in range(0, len(chosen), step):  # chunks: progress, and a partial fit is never stored
        batch = chosen[start:start + step]
        unit_results.extend(measure_units(batch, settings, cache=cache, sessions=unit_sessions))
        if progress:
            progress("units", min(len(chosen), start + step), len(chosen))
    t_units = time.monotonic() - t0
    whole = list(candidates[:networks])
    if progress:
        progress("networks", 0, len(whole))
    measured = measure_many(whole, settings, cache=cache, sessions=network_sessions, time_cap_s=time_cap_s)
    if progress:
        progress("networks", len(whole), len(whole))
    model = fit_kernel_model([(k, r.median_ms) for k, r in zip(chosen, unit_results, strict=True) if r is not None],
                             [(per_candidate[i], m.median_ms) for i, m in enumerate(measured)])
    model.stats |= {
        "fitted_at": time.time(), "profiling_s": time.monotonic() - t0, "unit_profiling_s": t_units,
        "unit_measurements": sum(1 for r in unit_results if r is not None and not r.cached),
        "network_measurements": sum(1 for m in measured if not m.cached),
        "distinct_units_in_space": len({k.identity() for ks in per_candidate for k in ks}),
        "candidates": len(candidates), "max_units": max_units,
    }
    cache.put(model_key(resolved, fp), KIND_KERNEL_MODEL, model.to_dict(), CACHE_VERSION)
    return model


def predict_with_kernels(candidates: list[Spec | str], settings: LatencySettings | None = None, *,
                         cache: Any) -> list[LatencyResult]:
    """Predictions of the fitted model (input order); never measures."""
    settings = settings or LatencySettings()
    resolved = settings.resolved()
    check_device(resolved.device)
    fp = fingerprint(resolved.device, resolved.threads)
    model = load_model(cache, model_key(resolved, fp))
    if model is None:
        raise MissingKernelModel(
            f"no kernel latency model is fitted for {resolved.device} ({resolved.threads} threads, {resolved.dtype}, "
            f"batch {resolved.batch_size}) on this device: fit one with `cost-oracle latency fit` "
            f"(cost_engine.latency.kernel_predict.fit_kernel_predictor), or use another method")
    out = []
    for c in candidates:
        kernels, _ = _kernels(c, settings)
        p = model.predict_network(kernels)
        med = p["median_ms"]
        sigma = p["log_sigma"]
        r = predicted(med, med * (math.exp(sigma) - 1.0), "kernel", settings=resolved.to_dict(), fingerprint=fp,
                      threads=resolved.threads, details={"interval_90": [p["low_ms"], p["high_ms"]],
                                                         "log_sigma": sigma, "units": p["units"],
                                                         "launches": p["launches"], "unit_sum_ms": p["unit_sum_ms"],
                                                         "model": {k: model.stats.get(k) for k in (
                                                             "units", "networks", "fitted_at")}})
        r.ci_low_ms, r.ci_high_ms = p["low_ms"], p["high_ms"]
        r.p10_ms = med * math.exp(-1.2815515655446004 * sigma)
        r.p90_ms = med * math.exp(1.2815515655446004 * sigma)
        out.append(r)
    return out
