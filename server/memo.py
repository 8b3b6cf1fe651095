"""The server's one bounded memo (the oracle's reports and candidates, the servicer's encoded
answers, the cache store's rows): thread-safe, bounded by entry count and by the bytes of its
values, because one entry can be a 2,048-block network or its per-module breakdown and a count
alone bounds nothing."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["LRU", "approx_bytes"]


class LRU:
    """Least-recently-used memo bounded by ``capacity`` entries (None: no count bound) and by
    ``max_bytes`` (None: no byte bound). A value's size is given to ``put``/``keep`` or estimated
    by ``size_of``; a value larger than the byte bound is not kept."""

    def __init__(self, capacity: int | None, max_bytes: int | None = None,
                 size_of: Callable[[Any], int] | None = None, *, recency_on_get: bool = True):
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.size_of = size_of
        #: False: a read is a plain dict lookup (no lock; recency refreshed by ``put`` only), for
        #: the servicer's per-candidate memo on the hot path of a cached batch
        self.recency_on_get = recency_on_get
        self.bytes = 0
        self._data: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        if not self.recency_on_get:
            v = self._data.get(key)  # atomic under the GIL
            return None if v is None else v[0]
        with self._lock:
            v = self._data.get(key)
            if v is None:
                return None
            self._data.move_to_end(key)
            return v[0]

    def _size(self, value: Any, size: int | None) -> int | None:
        """The size to account for ``value``, or None when it is not to be kept."""
        if self.capacity is not None and self.capacity <= 0:
            return None
        if size is None:
            size = self.size_of(value) if self.size_of is not None else 0
        if self.max_bytes is not None and size > self.max_bytes:
            return None
        return size

    def put(self, key: Any, value: Any, size: int | None = None) -> None:
        """Keep ``value`` under ``key``, replacing what was there."""
        size = self._size(value, size)
        if size is None:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._data[key] = (value, size)
            self.bytes += size
            self._shrink()

    def keep(self, key: Any, value: Any, size: int | None = None) -> Any:
        """First writer wins (for immutable rows, whose kept value may already carry work done on
        it): the value now under ``key`` (an earlier one, or ``value``), or None when not kept."""
        size = self._size(value, size)
        if size is None:
            return None
        with self._lock:
            old = self._data.get(key)
            if old is not None:
                self._data.move_to_end(key)
                return old[0]
            self._data[key] = (value, size)
            self.bytes += size
            self._shrink()
        return value

    def resize(self, key: Any, value: Any, size: int) -> None:
        """``value`` (still under ``key``, if it is) now holds ``size`` bytes: a row decoded in place."""
        with self._lock:
            old = self._data.get(key)
            if old is None or old[0] is not value:
                return
            self._data[key] = (value, size)
            self.bytes += size - old[1]
            self._shrink()

    def _shrink(self) -> None:
        while self._data and ((self.capacity is not None and len(self._data) > self.capacity)
                              or (self.max_bytes is not None and self.bytes > self.max_bytes)):
            _, (_, s) = self._data.popitem(last=False)
            self.bytes -= s

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.bytes = 0

    def after_fork(self) -> None:
        """A child process starts with a fresh lock (the parent's may have been held at the fork)."""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)


def approx_bytes(value: Any, _depth: int = 0) -> int:
    """A cheap estimate of what a plain value (report dicts, lists, strings, numbers) holds in
    memory: CPython sizes of the containers and leaves, without shared-object detection (an
    over-estimate for interned keys, which is the safe side for a bound)."""
    if isinstance(value, dict):
        return 64 + 40 * len(value) + sum(approx_bytes(k, _depth + 1) + approx_bytes(v, _depth + 1)
                                          for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return 56 + 8 * len(value) + sum(approx_bytes(v, _depth + 1) for v in value)
    if isinstance(value, str):
        return 49 + len(value)
    if isinstance(value, bytes):
        return 33 + len(value)
    return 32


