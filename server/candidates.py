"""Request data and candidate preparation: what a request asks about, checked and keyed.

Apart from the oracle on purpose: the proto converters, the servicer, the client and the
analysis processes all build or rebuild these values, and none of them should need the cache store,
the engine's analysis or the latency layer to do it. A :class:`Prepared` candidate memoizes its
canonical spec and cache keys; the spec's canonical JSON is assembled from each block's memoized
text, because the candidates of a search space share most of their blocks and hashing a new one
should cost only its own few fields.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cost_engine.report import COST_MODEL_VERSION, DTYPE_BYTES
from cost_engine.spec.base import MAX_BATCH, MAX_RESOLUTION, Spec, to_dict
from cost_engine.spec.network import NetworkSpec
from server.cache import canonical_json
from server.cache.keys import cache_key_of_json
from server.errors import join_path, translate_path

__all__ = [
    "LATENCY_METHODS",
    "LATENCY_MODES",
    "MEMORY_FORMATS",
    "BlockCandidate",
    "Candidate",
    "Context",
    "Limits",
    "Prepared",
    "spec_dict",
    "spec_json",
]

LATENCY_MODES = ("none", "measure", "predict", "auto")
#: "default": the kernel model once fitted for the settings on the device, else the block table
LATENCY_METHODS = ("default", "block_table", "roofline", "flops", "kernel")
MEMORY_FORMATS = ("contiguous", "channels_last")
_DEVICE_RE = re.compile(r"^(cpu|cuda(:(0|[1-9][0-9]{0,2}))?)$")


# -- request data ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Context:
    """What the costs are computed for; ``device`` .. ``cudnn_benchmark`` only select latency."""

    batch_size: int = 1
    resolution: int | None = None
    dtype: str = "float32"
    device: str = ""
    latency: str = "none"
    threads: int | None = None
    memory_format: str = "contiguous"
    compile: bool = False
    latency_method: str = "default"
    cudnn_benchmark: bool = False
    cold_l2: bool = False
    cuda_graphs: bool = False
    never_measure: bool = False

    def validate(self, path: str = "context") -> list[tuple[str, str]]:
        errors: list[tuple[str, str]] = []
        if not _is_int(self.batch_size) or not 1 <= self.batch_size <= MAX_BATCH:
            errors.append((f"{path}.batch_size", f"must be an integer in [1, {MAX_BATCH}], got {self.batch_size!r}"))
        if self.resolution is not None and (not _is_int(self.resolution)
                                            or not 1 <= self.resolution <= MAX_RESOLUTION):
            errors.append((f"{path}.resolution",
                           f"must be an integer in [1, {MAX_RESOLUTION}], got {self.resolution!r}"))
        if self.dtype not in DTYPE_BYTES:
            errors.append((f"{path}.dtype", f"must be one of {', '.join(DTYPE_BYTES)}; got {self.dtype!r}"))
        if self.latency not in LATENCY_MODES:
            errors.append((f"{path}.latency", f"must be one of {', '.join(LATENCY_MODES)}; got {self.latency!r}"))
        if self.latency_method not in LATENCY_METHODS:
            errors.append((f"{path}.latency_method",
                           f"must be one of {', '.join(LATENCY_METHODS)}; got {self.latency_method!r}"))
        if self.memory_format not in MEMORY_FORMATS:
            errors.append((f"{path}.memory_format",
                           f"must be one of {', '.join(MEMORY_FORMATS)}; got {self.memory_format!r}"))
        if self.threads is not None and (not _is_int(self.threads) or not 1 <= self.threads <= 1024):
            errors.append((f"{path}.threads", f"must be an integer in [1, 1024], got {self.threads!r}"))
        if not isinstance(self.device, str) or not (self.device == "" or _DEVICE_RE.match(self.device)):
            errors.append((f"{path}.device", f"must be cpu, cuda or cuda:N, got {self.device!r}"))
        return errors

    @property
    def wants_latency(self) -> bool:
        return self.latency not in ("none", "")

    def analytic(self) -> Context:
        """This context without latency (what an analytic-only step computes)."""
        return dataclasses.replace(self, latency="none") if self.wants_latency else self


@dataclass(frozen=True)
class BlockCandidate:
    """A single block costed on its own: needs its input channels (and ``Context.resolution``)."""

    block: Spec
    in_channels: int


Candidate = Spec | str | BlockCandidate


@dataclass(frozen=True)
class Limits:
    """Request limits; over any of them is RESOURCE_EXHAUSTED (with the limit's name)."""

    max_batch_size: int = 10_000
    max_sweep_size: int = 20_000
    max_message_bytes: int = 64 << 20
    max_pending_measurements: int = 64
    default_chunk_size: int = 256


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


@functools.lru_cache(maxsize=65536)
def _block_dict(spec: Spec) -> dict[str, Any]:
    return to_dict(spec)


def _plain(value: Any) -> Any:
    if isinstance(value, Spec):
        return _block_dict(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def spec_dict(spec: Spec) -> dict[str, Any]:
    """``to_dict(spec)`` with each block's dict memoized: candidates of a search space share most of
    their blocks, and a network's dict is its fields with its blocks' dicts in place (a test checks
    the equality on every built-in and on random spaces). Read-only result."""
    if not isinstance(spec, NetworkSpec):
        return _block_dict(spec)
    out: dict[str, Any] = {"kind": spec.kind}
    for f in dataclasses.fields(spec):
        out[f.name] = _plain(getattr(spec, f.name))
    return out


class _LRU:
    """A small thread-safe LRU bounded by entry count and, with ``size_of``, by the estimated
    bytes of its values (``max_bytes``): one entry can be a 2,048-block network or its
    per-module breakdown, so a count alone bounds nothing (issue 10, item 9)."""

    def __init__(self, capacity: int, max_bytes: int | None = None,
                 size_of: Callable[[Any], int] | None = None):
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.size_of = size_of if max_bytes is not None else None
        self.bytes = 0
        self._data: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            v = self._data.get(key)
            if v is None:
                return None
            self._data.move_to_end(key)
            return v[0]

    def put(self, key: Any, value: Any) -> None:
        if self.capacity <= 0:
            return
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


@functools.lru_cache(maxsize=65536)
def _block_json(spec: Spec) -> str:
    return canonical_json(_block_dict(spec))


def spec_json(spec: Spec) -> str:
    """``canonical_json(to_dict(spec))``, assembled from each block's memoized text: hashing a new
    candidate of a search space then costs only its own few fields (a test checks the equality
    byte for byte on every built-in and on random spaces)."""
    if not isinstance(spec, NetworkSpec):
        return _block_json(spec)
    return network_json([_block_json(b) for b in spec.stem],
                        ["[" + ",".join([_block_json(b) for b in s]) + "]" for s in spec.stages],
                        [_block_json(b) for b in spec.head], spec.in_channels, spec.resolution)


def network_json(stem: Sequence[str], stages: Sequence[str], head: Sequence[str], in_channels: int,
                 resolution: int) -> str:
    """A network's canonical JSON from its blocks' canonical texts (what a server that reads blocks
    off the wire has at hand; ``stages``: each stage's JSON array of its blocks' texts): the fields
    in sorted order, as ``canonical_json`` writes them."""
    return (f'{{"head":[{",".join(head)}],"in_channels":{int(in_channels)},"kind":"network",'
            f'"resolution":{int(resolution)},"stages":[{",".join(stages)}],"stem":[{",".join(stem)}]}}')


# network_json writes these fields and no others: a new NetworkSpec field must be added there
if tuple(sorted(("kind", *(f.name for f in dataclasses.fields(NetworkSpec))))) != (
        "head", "in_channels", "kind", "resolution", "stages", "stem"):
    raise RuntimeError("server.candidates.network_json does not write every NetworkSpec field")


def _memo_key(candidate: Any) -> Any:
    if isinstance(candidate, str):
        return ("name", candidate)
    if isinstance(candidate, (Spec, BlockCandidate)):
        try:
            return (type(candidate), candidate)
        except TypeError:
            return None
    return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
