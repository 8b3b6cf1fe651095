"""Candidate preparation: a validated candidate with its memoized canonical form and cache keys,
and the bounded memos the oracle keeps them in.

A :class:`Prepared` candidate memoizes its canonical spec and cache keys; the spec's canonical
JSON comes from ``cost_engine.keys.spec_json`` (assembled from each block's memoized text,
because the candidates of a search space share most of their blocks and hashing a new one
should cost only its own few fields). What a request asks about (the context, a standalone
block) is the contract's (``cost_oracle.contract.types``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from cost_engine.keys import cache_key_of_json, spec_dict, spec_json
from cost_engine.report import COST_MODEL_VERSION
from cost_engine.spec.base import Spec
from cost_engine.spec.network import NetworkSpec
from cost_oracle.contract.errors import join_path, translate_path
from cost_oracle.contract.types import BlockCandidate, Context

__all__ = ["LRU", "Prepared", "approx_bytes", "memo_key", "prepared_bytes"]



class Prepared:
    """A validated candidate: its resolved spec, canonical spec dict, and memoized cache keys."""

    __slots__ = ("_json", "_keys", "_spec_dict", "in_channels", "label", "name", "served", "spec", "wire")

    def __init__(self, spec: Spec, label: str, name: str | None = None, in_channels: int | None = None,
                 spec_dict: dict[str, Any] | None = None):
        self.spec = spec
        self.label = label
        self.name = name
        self.in_channels = in_channels
        self._spec_dict = spec_dict
        self._keys: dict[tuple[int, int, str], str] = {}
        #: ``spec_json(spec)``, when the caller already has it (a network read off the wire)
        self._json: str | None = None
        #: the candidate as a serialized ``costoracle.v1.Candidate``, when it came over the wire: what
        #: the analysis processes are sent (bytes cost nothing to ship; a pickled spec costs more
        #: than converting it again there)
        self.wire: bytes | None = None
        #: (context and detail, the encoded cache-hit result) a server last answered for this
        #: candidate: a batch of candidates all seen before is then answered by one lookup each
        self.served: tuple[Any, bytes] | None = None

    def know_json(self, text: str) -> Prepared:
        """Remember the spec's canonical JSON (``spec_json(self.spec)``, byte for byte) so that its
        keys need not assemble it again."""
        if self._json is None:
            self._json = text
        return self

    @property
    def spec_dict(self) -> dict[str, Any]:
        """The canonical plain form (equal to ``to_dict``), computed on first use. Read-only: the
        block dicts inside are shared with other candidates."""
        if self._spec_dict is None:
            self._spec_dict = spec_dict(self.spec)
        return self._spec_dict

    @property
    def is_block(self) -> bool:
        return not isinstance(self.spec, NetworkSpec)

    @property
    def candidate(self) -> Spec | str:
        """What the engine (and the latency layer) is given: the built-in name or the spec."""
        return self.name if self.name is not None else self.spec

    def resolution(self, ctx: Context) -> int | None:
        if ctx.resolution is not None:
            return ctx.resolution
        return self.spec.resolution if isinstance(self.spec, NetworkSpec) else None

    def cost_context(self, ctx: Context) -> dict[str, Any]:
        out: dict[str, Any] = {"batch_size": ctx.batch_size, "resolution": self.resolution(ctx), "dtype": ctx.dtype}
        if self.in_channels is not None:
            out["in_channels"] = self.in_channels
        return out

    def key(self, ctx: Context) -> str:
        r = self.resolution(ctx) or 0
        memo = (ctx.batch_size, r, ctx.dtype)
        k = self._keys.get(memo)
        if k is None:
            if self._json is None:
                self._json = spec_json(self.spec)
            k = cache_key_of_json(self._json, self.cost_context(ctx), COST_MODEL_VERSION)
            if len(self._keys) < 64:
                self._keys[memo] = k
        return k

    def proto_path(self, engine_path: str) -> str:
        """An engine field path (``stages[0][1].kernel_size``) in proto terms, relative to the candidate."""
        if self.name is not None:
            return "builtin"
        if self.is_block:
            return join_path(f"block.{self.spec.kind}", engine_path)
        return join_path("network", translate_path(engine_path, self.spec_dict))


class LRU:
    """The server's one bounded memo: thread-safe, bounded by entry count and by the bytes of its
    values (``max_bytes``; a value's size is given to ``put`` or estimated by ``size_of``): one
    entry can be a 2,048-block network or its per-module breakdown, so a count alone bounds
    nothing. (The cache store's row LRU is its own: its entries grow when first decoded.)"""

    def __init__(self, capacity: int, max_bytes: int | None = None,
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

    def put(self, key: Any, value: Any, size: int | None = None) -> None:
        """Keep ``value`` (``size``: its bytes when the caller knows them, else ``size_of``'s
        estimate); a value larger than the byte bound is not kept."""
        if self.capacity <= 0:
            return
        if size is None:
            size = self.size_of(value) if self.size_of is not None else 0
        if self.max_bytes is not None and size > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._data[key] = (value, size)
            self.bytes += size
            while len(self._data) > self.capacity or (self.max_bytes is not None and self.bytes > self.max_bytes):
                _, (_, s) = self._data.popitem(last=False)
                self.bytes -= s

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


def prepared_bytes(p: Prepared) -> int:
    """What a memoized :class:`Prepared` holds: its spec objects (~400 bytes per block, measured
    with tracemalloc on MBConv networks) and its canonical JSON when known."""
    spec = p.spec
    blocks = sum(len(stage) for stage in spec.stages) if isinstance(spec, NetworkSpec) else 1
    return 1024 + 400 * blocks + (len(p._json) if p._json else 0)


def memo_key(candidate: Any) -> Any:
    if isinstance(candidate, str):
        return ("name", candidate)
    if isinstance(candidate, (Spec, BlockCandidate)):
        try:
            return (type(candidate), candidate)
        except TypeError:
            return None
    return None


