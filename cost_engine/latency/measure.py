"""``measure``: time candidates on a device with the published protocol, through the cache.

A measurement is several *sessions*, each one fresh worker process that times the canary, every
requested item paired with its reference network (``reference.py``, ``protocol.time_paired``),
and the canary again (see ``worker.py`` for why fresh processes). Several candidates are timed
in the same sessions (``measure_many``), so the start-up of a process (importing torch, ~3 s
here) is paid once per session, not once per candidate. The sessions' ratios become
milliseconds through the reference's anchor (``anchor.py``), to which every session adds its
reference median; a stored result is re-expressed in the current anchor when served, and a
noisy one is re-measured, pooled with its earlier sessions, up to :data:`MAX_REMEASURE` times.
"""

from __future__ import annotations

import dataclasses
import hashlib
import statistics
import time
from dataclasses import dataclass
from typing import Any

from cost_engine.expand.network import input_shape_of
from cost_engine.families import resolve
from cost_engine.latency.anchor import BOOK, anchor_key
from cost_engine.latency.anchor import estimate as anchor_estimate
from cost_engine.latency.canary import canary_context
from cost_engine.latency.fingerprint import check_device, fingerprint
from cost_engine.latency.keys import CACHE_VERSION, KIND_BLOCK, KIND_CANARY, KIND_MEASURED, entry_key
from cost_engine.latency.memory_cache import get_many
from cost_engine.latency.paired import combine_paired, session_record
from cost_engine.latency.protocol import Protocol
from cost_engine.latency.reference import Nominal, Reference, reference_for, reference_for_seconds
from cost_engine.latency.result import LatencyResult
from cost_engine.latency.settings import LatencySettings
from cost_engine.latency.worker import MeasurementError, run_session
from cost_engine.ops import Shape
from cost_engine.spec.base import Spec, SpecError, validate

DEFAULT_SESSIONS = 3
DEFAULT_TIME_CAP_S = 2.0


@dataclass(frozen=True)
class Item:
    """One thing to time: a network or a block, on an input shape, stored under ``key``."""

    spec: Spec
    input_shape: Shape
    key: str
    kind: str = KIND_MEASURED
    label: str = ""
    #: a kernel unit to time instead of ``spec`` (``kernel_build.unit_payload``: data, never code)
    #: and its nominal time and dense share (to choose its reference rung); ``spec`` is then unused
    unit: dict[str, Any] | None = None
    nominal: Nominal | None = None


def prepare(candidate: Spec | str, settings: LatencySettings) -> tuple[Spec, LatencySettings, Shape]:
    """Resolve the candidate and settings; raises ``SpecError`` naming bad fields."""
    resolved = settings.resolved()
    spec = resolve(candidate)
    errors = validate(spec)
    if errors:
        raise SpecError(errors)
    shape = input_shape_of(spec, resolved.batch_size, resolved.resolution, resolved.in_channels)
    return spec, resolved, shape


def latency_key(candidate: Spec | str, settings: LatencySettings, fp: dict[str, Any] | None = None) -> str:
    """The cache key of a measured latency: spec, resolved settings, input shape, fingerprint,
    protocol version (sha256 of canonical JSON, the cache's convention)."""
    spec, resolved, shape = prepare(candidate, settings)
    if fp is None:
        fp = fingerprint(resolved.device, resolved.threads)
    return _network_key(spec, resolved, shape, fp)


def _network_key(spec: Spec, resolved: LatencySettings, shape: Shape, fp: dict[str, Any]) -> str:
    # the input shape carries batch size, resolution and channels (a network's default resolution
    # and the same number given explicitly are one measurement)
    return entry_key(KIND_MEASURED, spec.to_dict(), {"settings": resolved.for_block(), "input_shape": list(shape),
                                                     "fingerprint": fp})


def block_key(spec: Spec, input_shape: Shape, resolved: LatencySettings, fp: dict[str, Any]) -> str:
    """Key of a block timed in isolation (the lookup table's entries)."""
    return entry_key(KIND_BLOCK, spec.to_dict(), {"settings": resolved.for_block(),
                                                  "input_shape": list(input_shape), "fingerprint": fp})


def _job_settings(resolved: LatencySettings) -> dict[str, Any]:
    return dataclasses.asdict(resolved)


def measure(candidate: Spec | str, settings: LatencySettings | None = None, *, cache: Any = None,
            sessions: int = DEFAULT_SESSIONS, time_cap_s: float | None = None, refresh: bool = False,
            protocol: Protocol | None = None, allocator_fix: bool = True) -> LatencyResult:
    """The measured latency of one candidate: served from ``cache`` when stored, else timed in
    ``sessions`` fresh worker processes (blocking for seconds: never on a request thread)."""
    return measure_many([candidate], settings, cache=cache, sessions=sessions, time_cap_s=time_cap_s,
                        refresh=refresh, protocol=protocol, allocator_fix=allocator_fix)[0]


def measure_many(candidates: list[Spec | str], settings: LatencySettings | None = None, *, cache: Any = None,
                 sessions: int = DEFAULT_SESSIONS, time_cap_s: float | None = None, refresh: bool = False,
                 protocol: Protocol | None = None, allocator_fix: bool = True) -> list[LatencyResult]:
    """Measure several candidates in the same sessions; results in input order."""
    settings = settings or LatencySettings()
    resolved = settings.resolved()
    check_device(resolved.device)
    fp = fingerprint(resolved.device, resolved.threads)
    items = []
    for c in candidates:
        spec, res, shape = prepare(c, settings)
        items.append(Item(spec, shape, _network_key(spec, res, shape, fp), KIND_MEASURED,
                          c if isinstance(c, str) else spec.kind))
    return measure_items(items, resolved, fp, cache=cache, sessions=sessions, time_cap_s=time_cap_s,
                         refresh=refresh, protocol=protocol, allocator_fix=allocator_fix)


#: re-measurements of a noisy result before its last one is served as it is (still marked noisy)
MAX_REMEASURE = 2


def _slot_key(key: str, n: int) -> str:
    """Where the n-th re-measurement of a noisy result is stored (rows are immutable)."""
    return key if n == 0 else hashlib.sha256(f"{key}/remeasure/{n}".encode("ascii")).hexdigest()


def _served(cache: Any, payload: dict[str, Any]) -> LatencyResult:
    """A stored result, its milliseconds re-derived from the reference's current anchor."""
    result = LatencyResult.from_dict(payload, cached=True)
    if result.ratio is not None and result.anchor_key and cache is not None:
        log = BOOK.values(cache, result.anchor_key)
        if log:
            result = result.with_anchor(anchor_estimate(log), len(log))
    return result


def stored_results(cache: Any, keys: list[str]) -> dict[str, tuple[LatencyResult, int]]:
    """The latest stored measurement of each key and its slot (0: first measurement, n: the
    n-th re-measurement of a noisy one); keys never measured are absent."""
    if cache is None or not keys:
        return {}
    slots = {k: [_slot_key(k, n) for n in range(MAX_REMEASURE + 1)] for k in dict.fromkeys(keys)}
    rows = get_many(cache, [s for ss in slots.values() for s in ss])
    out = {}
    for key, ss in slots.items():
        found = [n for n, s in enumerate(ss) if s in rows]
        if found:
            out[key] = (_served(cache, rows[ss[found[-1]]]), found[-1])
    return out


def is_final(result: LatencyResult, slot: int) -> bool:
    """Served as it is: not noisy, or noisy after every re-measurement allowed."""
    return not result.noisy or slot >= MAX_REMEASURE


def cached_results(cache: Any, keys: list[str], *, final_only: bool = True) -> dict[str, LatencyResult]:
    """Stored measurements by key (by default only the final ones: a noisy one is a miss)."""
    return {k: r for k, (r, slot) in stored_results(cache, keys).items() if not final_only or is_final(r, slot)}


def measure_items(items: list[Item], resolved: LatencySettings, fp: dict[str, Any], *, cache: Any = None,
                  sessions: int = DEFAULT_SESSIONS, time_cap_s: float | None = None, refresh: bool = False,
                  protocol: Protocol | None = None, allocator_fix: bool = True) -> list[LatencyResult]:
    """Time ``items`` (final cached ones are served), storing each new result under its key.

    Every item is timed paired with its reference (``reference.py``) in ``sessions`` fresh
    processes; the sessions' reference medians join the anchor's log. A stored result that is
    noisy is re-measured: its old sessions are pooled with the new ones and the result is stored
    in the next re-measurement slot.
    """
    if sessions < 1:
        raise ValueError("sessions must be >= 1")
    if protocol is None:
        protocol = Protocol(time_cap_s=DEFAULT_TIME_CAP_S if time_cap_s is None else time_cap_s)
    elif time_cap_s is not None:
        protocol = dataclasses.replace(protocol, time_cap_s=time_cap_s)
    stored = {} if refresh else stored_results(cache, [it.key for it in items])
    results: dict[str, LatencyResult] = {k: r for k, (r, slot) in stored.items() if is_final(r, slot)}
    todo = list(dict.fromkeys(it.key for it in items if it.key not in results))
    by_key = {it.key: it for it in items}
    if todo:
        block_settings = resolved.for_block()
        refs = {k: _reference(by_key[k]) for k in todo}
        anchors = {k: anchor_key(refs[k].to_dict(), block_settings, fp) for k in todo}
        job = {
            "settings": _job_settings(resolved),
            "protocol": protocol.to_dict(),
            "canary": True,
            "items": [_what(by_key[k]) | {"id": k, "input_shape": list(by_key[k].input_shape),
                                          "reference": {"name": refs[k].name, "spec": refs[k].spec.to_dict(),
                                                        "input_shape": list(refs[k].input_shape)}} for k in todo],
        }
        # odd sessions time the items in reverse order, so a slow drift of the machine during a
        # session does not always land on the same candidates
        outputs = []
        for n in range(sessions):
            order = job["items"] if n % 2 == 0 else job["items"][::-1]
            outputs.append(run_session(job | {"items": order}, allocator_fix=allocator_fix))
        canary = _canary(outputs, resolved, fp, cache)
        records: dict[str, list[dict[str, Any]]] = {}
        for key in todo:
            timings = []
            for out in outputs:
                entry = next(t for t in out["items"] if t["id"] == key)
                if "error" in entry:
                    raise MeasurementError(f"{by_key[key].label or 'candidate'}: {entry['error']}")
                timings.append((entry, out["pid"]))
            threads = {t["threads"] for t, _ in timings}
            if threads != {resolved.threads}:
                raise MeasurementError(f"worker ran with {sorted(threads)} threads, {resolved.threads} requested")
            records[key] = [session_record(t, pid) for t, pid in timings]
        anchor_logs = _learn_anchors(cache, anchors, refs, records, sessions)
        for key in todo:
            prev, slot = stored.get(key, (None, -1))
            pooled = (prev.details.get("paired_sessions") or []) if prev is not None else []
            log = anchor_logs[anchors[key]]
            result = combine_paired(
                pooled + records[key], anchor_estimate(log), len(log), settings=resolved.to_dict(), fingerprint=fp,
                canary=canary, threads=resolved.threads, key=key, reference=refs[key].to_dict(),
                anchor_key=anchors[key], remeasured=slot + 1,
                details={"worker_pids": [o["pid"] for o in outputs], "worker_nice": [o.get("nice") for o in outputs],
                         "measured_at": time.time(),
                         "protocol": protocol.to_dict(), "allocator_env": outputs[0]["env"],
                         "input_shape": list(by_key[key].input_shape)})
            results[key] = result
            if cache is not None:
                cache.put(_slot_key(key, slot + 1), by_key[key].kind, result.to_dict() | {"cached": False},
                          CACHE_VERSION)
    return [results[it.key] for it in items]


def _reference(item: Item) -> Reference:
    if item.unit is not None:
        n = item.nominal or Nominal(0.0)
        return reference_for_seconds(n.seconds, int(item.input_shape[0]), n.dense_share)
    return reference_for(item.spec, item.input_shape)


def _what(item: Item) -> dict[str, Any]:
    """What the worker builds: the spec, or a kernel unit's ops."""
    return {"unit": item.unit} if item.unit is not None else {"spec": item.spec.to_dict()}


def _learn_anchors(cache: Any, anchors: dict[str, str], refs: dict[str, Reference],
                   records: dict[str, list[dict[str, Any]]], sessions: int) -> dict[str, list[float]]:
    """Append this measurement's reference session medians to each anchor's log (one value per
    session and reference: the median of its items' reference medians); the logs after it."""
    by_anchor: dict[str, list[str]] = {}
    for key, anchor in anchors.items():
        by_anchor.setdefault(anchor, []).append(key)
    logs = {}
    for anchor, keys in by_anchor.items():
        values = [statistics.median(records[k][n]["ref_median_ms"] for k in keys) for n in range(sessions)]
        logs[anchor] = values if cache is None else BOOK.append(cache, anchor, values,
                                                               {"reference": refs[keys[0]].to_dict()})
    return logs


def _canary(outputs: list[dict[str, Any]], resolved: LatencySettings, fp: dict[str, Any],
            cache: Any) -> dict[str, Any]:
    """Canary medians of these sessions against the first canary ever stored for this
    fingerprint and settings (the reference); drift = now / reference."""
    medians = []
    for out in outputs:
        for name in ("canary_before", "canary_after"):
            if name in out:
                medians.append(statistics.median(out[name]["samples_ms"]))
    now = statistics.median(medians)
    ctx = canary_context()
    key = entry_key(KIND_CANARY, ctx["spec"], {"input_shape": ctx["input_shape"], "settings": resolved.for_block(),
                                               "fingerprint": fp})
    reference = None
    if cache is not None:
        stored = cache.get(key)
        if stored is None:
            cache.put(key, KIND_CANARY, {"median_ms": now, "measured_at": time.time()}, CACHE_VERSION)
            stored = cache.get(key) or {"median_ms": now}
        reference = stored["median_ms"]
    else:
        reference = medians[0]
    return {"median_ms": now, "reference_ms": reference, "drift": now / reference if reference else None,
            "session_medians_ms": medians}
