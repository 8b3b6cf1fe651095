"""The anchor: how many milliseconds the reference takes on this device when the host is quiet.

A paired measurement is a ratio to the reference; its milliseconds are the ratio times the
anchor. The anchor is learned from every session ever run on the fingerprint and settings: each
session appends the reference's median of that session to a log in the cache, and the anchor is
the :data:`ANCHOR_QUANTILE` quantile of the log (linear interpolation; with under 10 sessions
that is close to the minimum). Load only ever slows a session down, so a low quantile picks the
quiet sessions; as sessions accumulate it converges to the quiet machine's reference latency
and stops moving (a new session can lower it only if it is quieter than 9 in 10 seen before).

The log lives in the immutable cache as numbered rows (``<anchor key>/<n>``, first writer of a
slot wins): an append takes the next free slot, so many servers and workers sharing one
PostgreSQL cache append without a lock and all read the same anchor. Cached measurements keep
their ratio and are converted with the current anchor when served, so two candidates measured in
different minutes of the host are on one scale.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

from cost_engine.latency.keys import CACHE_VERSION, KIND_REFERENCE, entry_key
from cost_engine.latency.memory_cache import get_many
from cost_engine.latency.protocol import percentile

ANCHOR_QUANTILE = 0.25
#: seconds a process trusts its copy of an anchor's log before reading new slots
REFRESH_S = 5.0
_CHUNK = 32


def anchor_key(reference: dict[str, Any], settings: dict[str, Any], fingerprint: dict[str, Any]) -> str:
    return entry_key(KIND_REFERENCE, reference, {"settings": settings, "fingerprint": fingerprint})


def _slot(anchor: str, n: int) -> str:
    return hashlib.sha256(f"{anchor}/{n}".encode("ascii")).hexdigest()


def estimate(values: list[float]) -> float:
    """The anchor of a log of reference session medians (ms)."""
    if not values:
        raise ValueError("an anchor needs at least one reference session")
    return percentile(sorted(values), ANCHOR_QUANTILE)


class AnchorBook:
    """This process's copy of the anchor logs (append-only, so reads are incremental)."""

    def __init__(self) -> None:
        self._logs: dict[tuple[int, str], list[float]] = {}
        self._read_at: dict[tuple[int, str], float] = {}
        self._lock = threading.Lock()

    def _refresh(self, cache: Any, anchor: str) -> list[float]:
        ident = (id(cache), anchor)
        log = self._logs.setdefault(ident, [])
        while True:
            keys = [_slot(anchor, n) for n in range(len(log), len(log) + _CHUNK)]
            rows = get_many(cache, keys)
            for k in keys:
                if k not in rows:
                    self._read_at[ident] = time.monotonic()
                    return log
                log.append(float(rows[k]["median_ms"]))

    def values(self, cache: Any, anchor: str, *, fresh: bool = False) -> list[float]:
        ident = (id(cache), anchor)
        with self._lock:
            if fresh or ident not in self._logs or time.monotonic() - self._read_at.get(ident, 0.0) > REFRESH_S:
                self._refresh(cache, anchor)
            return list(self._logs[ident])

    def append(self, cache: Any, anchor: str, medians_ms: list[float], detail: dict[str, Any]) -> list[float]:
        """Append session medians to the log; returns the whole log after them."""
        with self._lock:
            log = self._refresh(cache, anchor)
            for m in medians_ms:
                row = {"median_ms": float(m), "measured_at": time.time(), **detail}
                while not cache.put(_slot(anchor, len(log)), KIND_REFERENCE, row, CACHE_VERSION):
                    before = len(log)
                    self._refresh(cache, anchor)  # another writer took the slot: read it, try the next
                    if len(log) == before:  # nor can the slot be read: a cache that drops writes
                        break
                log.append(float(m))
            self._read_at[(id(cache), anchor)] = time.monotonic()
            return list(log)



BOOK = AnchorBook()
