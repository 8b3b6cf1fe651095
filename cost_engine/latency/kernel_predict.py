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

import hashlib
import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from cost_engine.latency.anchor import BOOK
from cost_engine.latency.anchor import estimate as anchor_estimate
from cost_engine.latency.fingerprint import check_device, fingerprint
from cost_engine.latency.kernel_model import KernelModel, fit_kernel_model
from cost_engine.latency.kernel_table import KERNEL_SESSIONS, measure_units
from cost_engine.latency.kernels import Kernel, log_features, network_kernels
from cost_engine.latency.keys import CACHE_VERSION, KIND_KERNEL_MODEL, entry_key
from cost_engine.latency.measure import measure_many, prepare
from cost_engine.latency.result import LatencyResult, predicted
from cost_engine.latency.settings import LatencySettings
from cost_engine.spec.base import Spec

Progress = Callable[[str, int, int], None]
#: units timed per worker call: the grain of progress reports and of the time budget
CHUNK = 50
#: a fit's defaults: units timed, and networks measured whole (the 90% interval is a rank of their
#: leave-one-out errors, ceil((n+1) * 0.9): with 18 or fewer it is their largest)
FIT_MAX_UNITS = 400
FIT_NETWORKS = 30


class MissingKernelModel(LookupError):
    """No kernel model has been fitted for these settings on this device."""


def model_key(resolved: LatencySettings, fp: dict[str, Any]) -> str:
    """Per device fingerprint and settings, batch size included: a fit times units and networks
    at one batch size, and neither its trees nor its overhead term know another (resolution
    varies across a space, so it is a feature, not part of the key)."""
    return entry_key(KIND_KERNEL_MODEL, {"method": "kernel"},
                     {"settings": resolved.for_block() | {"batch_size": resolved.batch_size}, "fingerprint": fp})


def _generation(key: str, n: int) -> str:
    """The cache key of the ``n``-th fit under ``key`` (rows are immutable: a refit is a new row)."""
    return key if n == 0 else hashlib.sha256(f"{key}/fit/{n}".encode("ascii")).hexdigest()


def _latest(cache: Any, key: str, start: int = 0) -> tuple[int, dict[str, Any] | None]:
    """(generation, payload) of the newest fit stored under ``key`` (-1, None when none is)."""
    n, data = start - 1, None
    while True:
        got = cache.get(_generation(key, n + 1))
        if got is None:
            return n, data
        n, data = n + 1, got


#: seconds a process trusts what it last read of a key's generations (a fit in this process
#: takes effect at once; one by another process sharing the cache, within this)
MODEL_REFRESH_S = 5.0
_LOADED: dict[tuple[int, str], tuple[int, KernelModel | None, float]] = {}
_LOCK = threading.Lock()


def load_model(cache: Any, key: str) -> KernelModel | None:
    """The newest stored model, rebuilt from its text once per process and generation. What was
    read (a model, or that there is none) is trusted for :data:`MODEL_REFRESH_S`, so a batch of
    predictions costs no lookup per candidate; then one lookup of the next generation."""
    if cache is None:
        return None
    ident = (id(cache), key)
    now = time.monotonic()
    with _LOCK:
        hit = _LOADED.get(ident)
    if hit is not None and now - hit[2] < MODEL_REFRESH_S:
        return hit[1]
    n, data = _latest(cache, key, 0 if hit is None else hit[0] + 1)
    if data is None:
        model = hit[1] if hit is not None else None
        n = hit[0] if hit is not None else -1
    else:
        model = KernelModel.from_dict(data)
    with _LOCK:
        _LOADED[ident] = (n, model, now)
    return model


def store_model(cache: Any, key: str, model: KernelModel) -> int:
    """Store ``model`` as the newest generation under ``key``; returns its generation."""
    n, _ = _latest(cache, key)
    payload = model.to_dict()
    while not cache.put(_generation(key, n + 1), KIND_KERNEL_MODEL, payload, CACHE_VERSION):
        n += 1  # another fit took that generation: the next one
        if n > 10_000:
            raise RuntimeError("the cache does not keep kernel models (put refused 10,000 generations)")
    with _LOCK:
        _LOADED.pop((id(cache), key), None)  # this process serves the new fit at once
    return n + 1


def has_model(cache: Any, settings: LatencySettings) -> bool:
    """Whether a kernel model is stored for these settings on this device (what makes it the default)."""
    if cache is None:
        return False
    resolved = settings.resolved()
    return load_model(cache, model_key(resolved, fingerprint(resolved.device, resolved.threads))) is not None


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


def _standardized(kernels: list[Kernel]) -> Any:
    """Log features scaled to unit variance per column: the distance for 'units near this one'."""
    import numpy as np

    x = np.asarray([log_features(k) for k in kernels], dtype=float)
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _neighbours(pool: list[Kernel], x: Any, taken: set[int], worst: list[int], want: int) -> list[int]:
    """Up to ``want`` untimed pool units of the same types as ``worst``, nearest to them first
    (nn-Meter's adaptive sampling, over the space's own units instead of generated ones)."""
    import numpy as np

    per = max(1, want // max(1, len(worst)))
    out: list[int] = []
    for w in worst:
        same = [i for i in range(len(pool)) if i not in taken and pool[i].type == pool[w].type and i not in out]
        if not same:
            continue
        d = np.linalg.norm(x[same] - x[w], axis=1)
        out.extend(same[j] for j in np.argsort(d)[:per])
        if len(out) >= want:
            break
    return out[:want]


def fit_kernel_predictor(candidates: list[Spec | str], settings: LatencySettings | None = None, *, cache: Any,
                         max_units: int = FIT_MAX_UNITS, networks: int = FIT_NETWORKS, budget_s: float | None = None,
                         adaptive: float = 0.4, unit_sessions: int = KERNEL_SESSIONS, network_sessions: int = 2,
                         time_cap_s: float | None = 0.5, seed: int = 0, progress: Progress | None = None,
                         ) -> KernelModel:
    """Profile and fit the kernel predictor for ``settings`` on this device; stored in ``cache``.

    ``max_units``: the unit measurement budget; ``budget_s``: a wall-clock budget for all the
    profiling (no new chunk of units starts when the last one would overrun it); ``networks``:
    how many of the candidates (the first ones) are measured whole, first, for the overhead
    term and the interval. ``adaptive``: the share of the unit budget spent after a first fit:
    each round times a validation chunk drawn like the first sample, then the untimed units
    nearest to the ones it predicted worst (nn-Meter's adaptive re-sampling)."""
    if cache is None:
        raise ValueError("fitting the kernel predictor needs a cache (it is stored there, as its measurements)")
    if not candidates:
        raise ValueError("fitting the kernel predictor needs candidates (the space whose units are sampled)")
    settings = settings or LatencySettings()
    resolved = settings.resolved()
    check_device(resolved.device)
    fp = fingerprint(resolved.device, resolved.threads)
    t0 = time.monotonic()
    per_candidate = [_kernels(c, settings)[0] for c in candidates]
    whole = list(candidates[:max(1, networks)])
    if progress:
        progress("networks", 0, len(whole))
    measured = measure_many(whole, settings, cache=cache, sessions=network_sessions, time_cap_s=time_cap_s)
    if progress:
        progress("networks", len(whole), len(whole))
    nets = [(per_candidate[i], m.median_ms) for i, m in enumerate(measured)]
    served_with: dict[str, list[float]] = {}  # anchor key -> [sum of ms x anchor ms, sum of ms]

    def note_anchor(r: LatencyResult) -> None:
        if r.anchor_key and r.anchor_ms:
            entry = served_with.setdefault(r.anchor_key, [0.0, 0.0])
            entry[0] += float(r.median_ms) * float(r.anchor_ms)
            entry[1] += float(r.median_ms)

    for m in measured:
        note_anchor(m)
    pool = sample_units(per_candidate, len({k.identity() for ks in per_candidate for k in ks}), seed)
    budget = min(max_units, len(pool))
    timed: dict[int, float] = {}  # pool index -> ms
    fresh = 0
    chunk_s = 0.0
    rounds: list[dict[str, Any]] = []

    def over_budget() -> bool:
        return budget_s is not None and bool(timed) and time.monotonic() - t0 + chunk_s > budget_s

    def run(indices: list[int]) -> list[int]:
        nonlocal fresh, chunk_s
        start = time.monotonic()
        results = measure_units([pool[i] for i in indices], settings, cache=cache, sessions=unit_sessions)
        chunk_s = time.monotonic() - start
        done = []
        for i, r in zip(indices, results, strict=True):
            if r is not None:
                timed[i] = r.median_ms
                fresh += not r.cached
                done.append(i)
                note_anchor(r)
        if progress:
            progress("units", len(timed), budget)
        return done

    def fit() -> KernelModel:
        return fit_kernel_model([(pool[i], ms) for i, ms in timed.items()], nets)

    if progress:
        progress("units", 0, budget)
    first = max(1, min(budget, math.ceil(budget * (1.0 - adaptive))))
    order = iter(range(len(pool)))  # the weighted sample's order
    while len(timed) < first and not over_budget():
        run([i for _, i in zip(range(min(CHUNK, first - len(timed))), order, strict=False)])
    x = _standardized(pool) if len(timed) < budget else None
    while len(timed) < budget and not over_budget():
        model = fit()
        step = min(CHUNK, budget - len(timed))
        check = [i for _, i in zip(range(max(1, step // 2)), (i for i in order if i not in timed), strict=False)]
        if not check:
            break
        check = run(check)
        preds = model.unit_predictions([pool[i] for i in check])
        errors = {i: abs(math.log(timed[i] / p)) if p > 0 and timed[i] > 0 else 10.0
                  for i, (p, _) in zip(check, preds, strict=True)}
        worst = sorted(errors, key=errors.get, reverse=True)[:max(1, len(check) // 4)]
        near = _neighbours(pool, x, set(timed), worst, min(step - len(check), budget - len(timed)))
        if near and not over_budget():
            run(near)
        ranked = sorted(errors.values())
        rounds.append({"validation_units": len(check), "resampled": len(near),
                       "median_abs_log_error": ranked[len(ranked) // 2] if ranked else None,
                       "max_abs_log_error": ranked[-1] if ranked else None,
                       "worst_types": sorted({pool[i].type for i in worst})})
    model = fit()
    model.stats |= {
        "fitted_at": time.time(), "profiling_s": time.monotonic() - t0,
        "unit_measurements": fresh, "network_measurements": sum(1 for m in measured if not m.cached),
        "distinct_units_in_space": len(pool), "candidates": len(candidates), "max_units": max_units,
        "budget_s": budget_s, "adaptive_rounds": rounds, "stopped_by_budget": len(timed) < budget,
        # per anchor: the anchor ms the fit's figures were served with (weighted by their ms), and
        # the ms that stood on it (``anchor_factor``)
        "anchors": {k: [a / w, w] for k, (a, w) in served_with.items() if w > 0},
    }
    model.stats["generation"] = store_model(cache, model_key(resolved, fp), model)
    return model


def anchor_factor(cache: Any, model: KernelModel) -> float:
    """How far the anchors the model's figures were served with have moved since it was fitted.

    Measurements are stored as ratios to a reference and served in ms through the reference's
    anchor *now* (``anchor.py``), which settles as sessions accumulate; the model learned the ms
    served at fit time. Scaling its predictions by the anchors' movement (weighted by how much of
    the fit's latency stood on each) keeps them on the scale measurements are served on."""
    anchors = model.stats.get("anchors") or {}
    if cache is None or not anchors:
        return 1.0
    num = den = 0.0
    for key, (at_fit, weight) in anchors.items():
        log = BOOK.values(cache, key)
        if log and at_fit > 0 and weight > 0:
            num += weight * anchor_estimate(log) / at_fit
            den += weight
    return num / den if den > 0 else 1.0


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
    factor = anchor_factor(cache, model)
    out = []
    for c in candidates:
        kernels, _ = _kernels(c, settings)
        p = model.predict_network(kernels)
        p = p | {k: p[k] * factor for k in ("median_ms", "low_ms", "high_ms")}
        med = p["median_ms"]
        sigma = p["log_sigma"]
        r = predicted(med, med * (math.exp(sigma) - 1.0), "kernel", settings=resolved.to_dict(), fingerprint=fp,
                      threads=resolved.threads, details={"interval_90": [p["low_ms"], p["high_ms"]],
                                                         "interval_level": 0.9, "log_sigma": sigma, "units": p["units"],
                                                         "launches": p["launches"], "unit_sum_ms": p["unit_sum_ms"],
                                                         "anchor_factor": factor, "type_shares": p["type_shares"],
                                                         "model": {k: model.stats.get(k) for k in (
                                                             "units", "networks", "fitted_at")}})
        r.ci_low_ms, r.ci_high_ms = p["low_ms"], p["high_ms"]
        r.p10_ms = med * math.exp(-1.2815515655446004 * sigma)
        r.p90_ms = med * math.exp(1.2815515655446004 * sigma)
        out.append(r)
    return out
