"""A dict with the cache's interface, for use without a database (tests, one-off predictions).

Same contract as ``cost_oracle.server.cache.CostCache``: rows are immutable (the first writer of a key wins)
and every read returns a fresh copy, so callers may mutate what they get.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping
from typing import Any


class MemoryCache:
    def __init__(self) -> None:
        self._rows: dict[str, tuple[str, dict[str, Any], str]] = {}
        self._lock = threading.Lock()
        self.puts = 0
        self.gets = 0

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            self.gets += 1
            row = self._rows.get(key)
            return copy.deepcopy(row[1]) if row else None

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: copy.deepcopy(self._rows[k][1]) for k in keys if k in self._rows}

    def put(self, key: str, kind: str, payload: Mapping[str, Any], version: str) -> bool:
        with self._lock:
            self.puts += 1
            if key in self._rows:
                return False
            self._rows[key] = (kind, copy.deepcopy(dict(payload)), version)
            return True

    def kinds(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {}
            for kind, _, _ in self._rows.values():
                out[kind] = out.get(kind, 0) + 1
            return out

    def __len__(self) -> int:
        return len(self._rows)


def get_many(cache: Any, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Rows by key from any cache with ``get`` (and ``get_many`` when it has one); none for None."""
    keys = list(keys)
    if cache is None or not keys:
        return {}
    if hasattr(cache, "get_many"):
        return cache.get_many(keys)
    out = {}
    for key in keys:
        hit = cache.get(key)
        if hit is not None:
            out[key] = hit
    return out
