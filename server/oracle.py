"""The oracle core: candidates in, cost reports out, through the persistent cache.

Transport-free on purpose: the gRPC servicer and the client's in-process oracle both call this
class, so "remote" and "in-process" cannot drift apart — same validation, same cache keys, same
error codes and the same proto-style field paths (``candidates[3].network.stages[0].blocks[1].
mbconv.kernel_size``) in both.

Data path for every candidate: validate and resolve it (a built-in name becomes its spec) →
key = ``cache_key(to_dict(spec), cost context, COST_MODEL_VERSION)`` → in-process LRU of parsed
reports → the cache (``get_many`` for a batch) → ``cost_engine.analyze`` for what is missing →
``put_many`` of ``to_dict(breakdowns=False)`` (every figure and the per-op-type counts; the
per-module breakdown and the other tools' views are re-derived from memoized blocks when a
request's detail asks for them) → answer. A candidate that fails validation or
expansion is answered with its own error and never written. The cost context holds only what
the analytic figures depend on (batch size, effective resolution, dtype, and a single block's
input channels); latency settings select a measurement, which the latency layer caches under
its own key with the device fingerprint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cost_engine.analyze import analyze
from cost_engine.families import BUILTINS, resolve
from cost_engine.report import COST_MODEL_VERSION, DTYPE_BYTES, CostReport
from cost_engine.spec.base import (
    MAX_BATCH,
    MAX_CHANNELS,
    MAX_RESOLUTION,
    SPEC_KINDS,
    Spec,
    SpecError,
    to_dict,
    validate,
)
from cost_engine.spec.network import NetworkSpec
from server.budget import (
    LATENCY_LIMIT,
    PARETO_FIELDS,
    Budget,
    Constraint,
    analytic_constraints,
    latency_constraint,
    pareto_front,
)
from server.cache import CacheRow, CostCache, canonical_json
from server.cache.keys import cache_key_of_json
from server.cache.store import encode_rows
from server.errors import (
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    ResourceExhausted,
    ServiceError,
    join_path,
    translate_path,
)
from server.sweeps import (
    SWEEP_FAMILIES,
    EfficientNetCompoundSpace,
    FasterNetSpace,
    MultiplierSpace,
    Space,
    expand_space,
)

__all__ = [
    "SERVER_VERSION",
    "BlockCandidate",
    "Budget",
    "Constraint",
    "Context",
    "EfficientNetCompoundSpace",
    "FasterNetSpace",
    "FilterItem",
    "FilterOutcome",
    "Limits",
    "MultiplierSpace",
    "Oracle",
    "Prepared",
    "SweepOutcome",
    "SweepPoint",
]

log = logging.getLogger("cost_oracle.oracle")

SERVER_VERSION = "0.1.0"
LATENCY_MODES = ("none", "measure", "predict", "auto")
LATENCY_METHODS = ("block_table", "roofline", "flops")
MEMORY_FORMATS = ("contiguous", "channels_last")
DETAILS = ("full", "totals", "scalars")
_DEVICE_RE = re.compile(r"^(cpu|cuda(:(0|[1-9][0-9]{0,2}))?)$")
#: report keys each detail level leaves out (the cache holds every figure and ``by_op_type``; ``views``
#: and ``by_module`` are re-derived from memoized blocks for the details that show them)
_DROPPED = {"full": (), "totals": ("by_module",), "scalars": ("by_module", "by_op_type", "views", "unknown_ops")}
#: every scalar figure of a report, all computed from the op list
FIGURES = ("params", "buffers", "macs", "flops", "memory_access_elements", "memory_access_bytes",
           "memory_access_bytes_fused", "peak_activation_bytes", "activations", "arithmetic_intensity", "op_count")
_ANALYTIC_SOURCES = dict.fromkeys(FIGURES, "analytic")


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
    latency_method: str = "block_table"
    cudnn_benchmark: bool = False

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


@dataclass
class FilterItem:
    index: int
    feasible: bool
    constraints: list[Constraint] = field(default_factory=list)
    violated: list[str] = field(default_factory=list)
    error: ServiceError | None = None
    report: dict[str, Any] | None = None
    pareto: bool = False
    decided_by: str = "analytic"
    #: internal: the figures a Pareto front may use (not sent)
    _values: dict[str, float] = field(default_factory=dict, repr=False)


@dataclass
class FilterOutcome:
    results: list[FilterItem]
    feasible: list[int]
    pareto_front: list[int]
    measurements: int


@dataclass
class SweepPoint:
    index: int
    params: dict[str, float]
    label: str
    spec: NetworkSpec | None
    result: FilterItem


@dataclass
class SweepOutcome:
    total: int
    points: list[SweepPoint]
    feasible: list[int]
    pareto_front: list[int]
    measurements: int


@dataclass
class SweepChunk:
    """Part of a streamed sweep: ``points`` are final except their ``pareto`` flag."""

    total: int
    points: list[SweepPoint]


class Prepared:
    """A validated candidate: its resolved spec, canonical spec dict, and memoized cache keys."""

    __slots__ = ("_keys", "_spec_dict", "in_channels", "label", "name", "spec", "wire")

    def __init__(self, spec: Spec, label: str, name: str | None = None, in_channels: int | None = None,
                 spec_dict: dict[str, Any] | None = None):
        self.spec = spec
        self.label = label
        self.name = name
        self.in_channels = in_channels
        self._spec_dict = spec_dict
        self._keys: dict[tuple[int, int, str], str] = {}
        #: the candidate as a serialized ``costoracle.v1.Candidate``, when it came over the wire: what
        #: the analysis processes are sent (bytes cost nothing to ship; a pickled spec costs more
        #: than converting it again there)
        self.wire: bytes | None = None

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
            k = cache_key_of_json(spec_json(self.spec), self.cost_context(ctx), COST_MODEL_VERSION)
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
    """A small thread-safe LRU by entry count."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            v = self._data.get(key)
            if v is not None:
                self._data.move_to_end(key)
            return v

    def put(self, key: Any, value: Any) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


@functools.lru_cache(maxsize=65536)
def _block_json(spec: Spec) -> str:
    return canonical_json(_block_dict(spec))


def _json_of(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ",".join([_block_json(v) if isinstance(v, Spec) else _json_of(v) for v in value]) + "]"
    if isinstance(value, Spec):
        return _block_json(value)
    return canonical_json(value)


@functools.lru_cache(maxsize=64)
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(sorted(("kind", *(f.name for f in dataclasses.fields(cls)))))


def spec_json(spec: Spec) -> str:
    """``canonical_json(to_dict(spec))``, assembled from each block's memoized text: hashing a new
    candidate of a search space then costs only its own few fields (a test checks the equality
    byte for byte on every built-in and on random spaces)."""
    if not isinstance(spec, NetworkSpec):
        return _block_json(spec)
    return "{" + ",".join([f'"{name}":' + (f'"{spec.kind}"' if name == "kind" else _json_of(getattr(spec, name)))
                           for name in _field_names(type(spec))]) + "}"


# -- the oracle -----------------------------------------------------------------------------
class Oracle:
    """Costs of candidates, cached. Thread-safe; one instance serves every request of a server.

    ``db_url``: a database URL or SQLite file path (None: ``$COST_ORACLE_DB_URL``, else the default
    file under the user's cache directory); ``cache``: an existing :class:`CostCache` instead.
    ``latency_queue``: a ``server.latency_queue.MeasurementQueue`` (created on first use if None).
    """

    def __init__(self, db_url: str | None = None, *, cache: CostCache | None = None, limits: Limits | None = None,
                 latency_queue: Any = None, report_memory: int = 4096, analyze_processes: int = 0,
                 pool_threshold: int = 16):
        self.cache = cache if cache is not None else CostCache(db_url)
        self._owns_cache = cache is None
        self.limits = limits or Limits()
        self._queue = latency_queue
        self._owns_queue = latency_queue is None
        self._queue_lock = threading.Lock()
        self._reports = _LRU(report_memory)  # key -> stored report dict (parsed once)
        self._breakdowns = _LRU(256)  # (key, with by_module) -> re-derived views (and by_module)
        self._prepared = _LRU(16384)  # spec / name -> Prepared
        self._stats_lock = threading.Lock()
        self._stats = {"hits": 0, "misses": 0, "writes": 0, "errors": 0}
        self._closed = False
        #: processes that analyze large cold batches in parallel (0: all in this process)
        self.analyze_processes = max(0, int(analyze_processes))
        self.pool_threshold = max(1, int(pool_threshold))
        self._pool: Any = None
        self._pool_lock = threading.Lock()

    # -- candidates -----------------------------------------------------------------------
    def prepare(self, candidate: Candidate, path: str = "candidate", *, validated: bool = False) -> Prepared:
        """Validate and resolve one candidate; raises :class:`InvalidArgument` with proto paths under ``path``."""
        memo_key = _memo_key(candidate)
        if memo_key is not None:
            hit = self._prepared.get(memo_key)
            if hit is not None:
                return hit
        p = self._prepare(candidate, path, validated)
        if memo_key is not None:
            self._prepared.put(memo_key, p)
        return p

    def _prepare(self, candidate: Candidate, path: str, validated: bool) -> Prepared:
        if isinstance(candidate, str):
            try:
                spec = resolve(candidate)
            except SpecError as exc:
                raise InvalidArgument(str(exc), [(join_path(path, "builtin"), e.reason) for e in exc.errors]) from None
            return Prepared(spec, candidate, name=candidate)
        if isinstance(candidate, BlockCandidate):
            block, errors = candidate.block, []
            if not isinstance(block, Spec) or isinstance(block, NetworkSpec):
                raise InvalidArgument("a block candidate needs a block spec",
                                      [(join_path(path, "block"), "must be a block spec (not a network)")])
            if not _is_int(candidate.in_channels) or not 1 <= candidate.in_channels <= MAX_CHANNELS:
                errors.append((join_path(path, "in_channels"),
                               f"must be an integer in [1, {MAX_CHANNELS}], got {candidate.in_channels!r}"))
            if not validated:
                errors.extend((join_path(path, join_path(f"block.{block.kind}", e.path)), e.reason)
                              for e in validate(block))
            if errors:
                raise InvalidArgument("invalid block candidate", errors)
            return Prepared(block, block.kind, in_channels=candidate.in_channels)
        if isinstance(candidate, NetworkSpec):
            p = Prepared(candidate, candidate.kind)
            if not validated:
                problems = validate(candidate)
                if problems:
                    raise InvalidArgument(str(SpecError(problems)),
                                          [(join_path(path, p.proto_path(e.path)), e.reason) for e in problems])
            return p
        if isinstance(candidate, Spec):
            raise InvalidArgument("a single block needs its input channels",
                                  [(join_path(path, "in_channels"),
                                    f"a standalone {candidate.kind!r} block needs in_channels: pass "
                                    "BlockCandidate(block, in_channels)")])
        raise InvalidArgument("not a candidate", [(path, "must be a network spec, a built-in model name or a block "
                                                         f"candidate, got {type(candidate).__name__}")])

    def _prepare_all(self, candidates: Sequence[Candidate], path: str) -> list[Prepared | ServiceError]:
        out: list[Prepared | ServiceError] = []
        for i, c in enumerate(candidates):
            try:
                out.append(self.prepare(c, f"{path}[{i}]"))
            except ServiceError as exc:
                out.append(exc)
        return out

    # -- validation of a whole request ----------------------------------------------------
    def check_context(self, ctx: Context, path: str = "context") -> None:
        if not isinstance(ctx, Context):
            raise InvalidArgument("bad context", [(path, f"must be a Context, got {type(ctx).__name__}")])
        errors = ctx.validate(path)
        if errors:
            raise InvalidArgument("invalid context", errors)
        if ctx.wants_latency:
            self.check_device(ctx, path)

    def check_device(self, ctx: Context, path: str = "context") -> None:
        """FAILED_PRECONDITION for a latency device this host lacks (before any work is done)."""
        try:
            from cost_engine.latency import UnknownDevice
            from cost_engine.latency.fingerprint import check_device
        except ImportError as exc:
            raise FailedPrecondition(f"latency is not available on this server ({exc})") from None
        try:
            check_device(ctx.device or "cpu")
        except UnknownDevice as exc:
            raise FailedPrecondition(str(exc), [(f"{path}.device", str(exc))]) from None
        except (SpecError, ValueError) as exc:
            raise InvalidArgument(str(exc), [(f"{path}.device", str(exc))]) from None

    def check_batch_size(self, n: int, path: str = "candidates") -> None:
        if n > self.limits.max_batch_size:
            raise ResourceExhausted(f"{path}: {n} candidates is over the server's limit of "
                                    f"{self.limits.max_batch_size} per request; split the batch",
                                    quota="max_batch_size")

    @staticmethod
    def check_detail(detail: str, path: str = "detail") -> None:
        if detail not in DETAILS:
            raise InvalidArgument("bad detail", [(path, f"must be one of {', '.join(DETAILS)}; got {detail!r}")])

    # -- costs ----------------------------------------------------------------------------
    def cost(self, candidate: Candidate, context: Context | None = None, *, detail: str = "full") -> dict[str, Any]:
        """The report of one candidate; raises :class:`ServiceError` (paths under ``candidate``)."""
        ctx = context or Context()
        self.check_context(ctx)
        self.check_detail(detail)
        result = self.cost_prepared([self.prepare(candidate, "candidate")], ctx, detail, paths=["candidate"])[0]
        if isinstance(result, ServiceError):
            raise result
        return result

    def cost_batch(self, candidates: Sequence[Candidate], context: Context | None = None, *,
                   detail: str = "full") -> list[dict[str, Any] | ServiceError]:
        """Reports in request order; a bad candidate is its own :class:`ServiceError` item."""
        ctx = context or Context()
        self.check_context(ctx)
        self.check_detail(detail)
        candidates = list(candidates)
        self.check_batch_size(len(candidates))
        items = self._prepare_all(candidates, "candidates")
        return self.cost_prepared(items, ctx, detail)

    def cost_prepared(self, items: Sequence[Prepared | ServiceError], ctx: Context, detail: str = "full",
                      paths: Sequence[str] | None = None, *, deadline: float | None = None,
                      is_active: Callable[[], bool] | None = None) -> list[dict[str, Any] | ServiceError]:
        """The core batch path (the servicer calls it with candidates it converted itself)."""
        full = self.full_reports(items, ctx, paths)
        out: list[dict[str, Any] | ServiceError] = []
        for item, got in zip(items, full, strict=True):
            if isinstance(got, ServiceError):
                out.append(got)
                continue
            report, key, hit = got
            assert isinstance(item, Prepared)
            out.append(self.serve(report, item, ctx, key, hit, detail))
        if ctx.wants_latency:
            self.attach_latency(items, out, ctx, paths, deadline=deadline, is_active=is_active)
        return out

    def full_reports(self, items: Sequence[Prepared | ServiceError], ctx: Context,
                     paths: Sequence[str] | None = None) -> list[tuple[dict[str, Any], str, bool] | ServiceError]:
        """(full report dict, cache key, cache hit) per item, or the item's error. Never mutate the dicts."""
        paths = paths or [f"candidates[{i}]" for i in range(len(items))]
        keys = [item.key(ctx) if isinstance(item, Prepared) else None for item in items]
        found, missing = self._lookup(keys)
        computed = self._compute_local(items, keys, missing, ctx)
        return self._assemble(items, keys, found, computed, paths)

    def report_blobs(self, items: Sequence[Prepared | ServiceError], ctx: Context, detail: str,
                     paths: Sequence[str]) -> list[tuple[bytes, str, bool] | ServiceError]:
        """(serialized ``CostReport`` at ``detail`` with an empty label and cache_hit set, key, hit) per
        item, or its error — the servicer's path. Cold candidates go to the analysis processes when
        there are enough of them; their rows are stored before anything is answered."""
        return self.begin_report_blobs(items, ctx, detail, paths)()

    def begin_report_blobs(self, items: Sequence[Prepared | ServiceError], ctx: Context, detail: str,
                           paths: Sequence[str]) -> Callable[[], list[tuple[bytes, str, bool] | ServiceError]]:
        """:meth:`report_blobs` in two steps: look up and hand the cold candidates to the analysis
        processes now, collect (store, then answer) when the returned function is called. A server
        converts the next part of a long batch while the processes analyze this one."""
        keys = [item.key(ctx) if isinstance(item, Prepared) else None for item in items]
        found, missing = self._lookup(keys)
        pool = self._get_pool() if len(missing) >= self.pool_threshold else None
        if pool is None:
            computed = self._compute_local(items, keys, missing, ctx)
            return lambda: self._blobs(items, keys, found, computed, {}, ctx, detail, paths)
        try:
            futures = self._submit_pool(pool, items, keys, missing, ctx, detail)
        except Exception:
            futures = None
            self._drop_pool(pool)

        def finish() -> list[tuple[bytes, str, bool] | ServiceError]:
            try:
                if futures is None:
                    raise RuntimeError("the analysis processes are gone")
                computed, blobs = self._collect_pool(futures)
            except Exception:  # a broken pool (a worker killed): answer from this process, restart it later
                log.exception("the analysis processes failed; analyzing in the server process")
                self._drop_pool(pool)
                computed, blobs = self._compute_local(items, keys, missing, ctx), {}
            return self._blobs(items, keys, found, computed, blobs, ctx, detail, paths)

        return finish

    def _drop_pool(self, pool: Any) -> None:
        with self._pool_lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def _blobs(self, items: Sequence[Prepared | ServiceError], keys: Sequence[str | None],
               found: dict[str, dict[str, Any]], computed: dict[str, Any], blobs: dict[str, bytes], ctx: Context,
               detail: str, paths: Sequence[str]) -> list[tuple[bytes, str, bool] | ServiceError]:
        from server.convert import report_to_proto  # convert imports this module

        out: list[tuple[bytes, str, bool] | ServiceError] = []
        for item, got in zip(items, self._assemble(items, keys, found, computed, paths), strict=True):
            if isinstance(got, ServiceError):
                out.append(got)
                continue
            report, key, hit = got
            blob = blobs.get(key)
            if blob is None:
                assert isinstance(item, Prepared)
                blob = report_to_proto(self.serve(report, item, ctx, key, True, detail, label="")).SerializeToString()
            out.append((blob, key, hit))
        return out

    def _lookup(self, keys: Sequence[str | None]) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """Stored reports by key (in-process LRU, then the cache), and the keys that are not stored."""
        found: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        for k in dict.fromkeys(k for k in keys if k is not None):
            r = self._reports.get(k)
            if r is not None:
                found[k] = r
            else:
                missing.append(k)
        if missing:
            stored = self.cache.get_many(missing)
            for k, r in stored.items():
                self._reports.put(k, r)
            found.update(stored)
            missing = [k for k in missing if k not in stored]
        return found, missing

    def _compute_local(self, items: Sequence[Prepared | ServiceError], keys: Sequence[str | None],
                       missing: Sequence[str], ctx: Context) -> dict[str, Any]:
        """Analyze the missing keys in this process and store them; key -> report dict or error."""
        todo = set(missing)
        computed: dict[str, Any] = {}
        rows: list[CacheRow] = []
        for item, k in zip(items, keys, strict=True):
            if k is None or k not in todo or k in computed:
                continue
            assert isinstance(item, Prepared)
            try:
                report = _analyze_item(item, ctx).to_dict(breakdowns=False)
            except ServiceError as exc:
                computed[k] = exc  # paths relative to the candidate: each position prefixes its own
                continue
            computed[k] = report
            rows.append(CacheRow(k, "cost", report, COST_MODEL_VERSION))
        if rows:
            written = 0
            try:
                written = self.cache.put_many(rows)
            except Exception:  # the answer is still right; the next request recomputes it
                log.exception("cache write of %d rows failed", len(rows))
            for row in rows:
                self._reports.put(row.key, row.payload)
            self._count(writes=written)
        return computed

    def _submit_pool(self, pool: Any, items: Sequence[Prepared | ServiceError], keys: Sequence[str | None],
                     missing: Sequence[str], ctx: Context, detail: str) -> list[Any]:
        """Hand the missing keys to the analysis processes (in a few jobs per process, so both finish
        together); each job answers with the serialized reports and its rows already encoded."""
        todo = set(missing)
        jobs: list[tuple[Any, ...]] = []
        seen: set[str] = set()
        for item, k in zip(items, keys, strict=True):
            if k is None or k not in todo or k in seen:
                continue
            assert isinstance(item, Prepared)
            seen.add(k)
            what = item.wire if item.wire is not None else (item.name if item.name is not None else item.spec)
            jobs.append((k, what, item.in_channels, ctx.batch_size, item.resolution(ctx), ctx.dtype))
        size = max(1, -(-len(jobs) // (4 * self.analyze_processes)))
        return [pool.submit(_pool_job, detail, jobs[i:i + size]) for i in range(0, len(jobs), size)]

    def _collect_pool(self, futures: Sequence[Any]) -> tuple[dict[str, Any], dict[str, bytes]]:
        """Wait for the jobs, then store every row they encoded in one go (one writer: SQLite would
        make parallel writers wait on its lock with sleeps) before anything is answered: key ->
        scalars-only report dict or error, and key -> serialized report."""
        computed: dict[str, Any] = {}
        blobs: dict[str, bytes] = {}
        rows: list[dict[str, Any]] = []
        for f in futures:
            results, encoded = f.result()
            rows.extend(encoded)
            for key, status, value, extra in results:
                if status == "ok":
                    blobs[key] = value
                    computed[key] = extra
                else:
                    computed[key] = _rebuild_error(value)
        written = 0
        if rows:
            try:
                written = self.cache.put_encoded(rows)
            except Exception:  # the answers are still right; the next request recomputes them
                log.exception("cache write of %d rows failed", len(rows))
        self._count(writes=written)
        return computed, blobs

    def _assemble(self, items: Sequence[Prepared | ServiceError], keys: Sequence[str | None],
                  found: dict[str, dict[str, Any]], computed: dict[str, Any],
                  paths: Sequence[str]) -> list[tuple[dict[str, Any], str, bool] | ServiceError]:
        out: list[tuple[dict[str, Any], str, bool] | ServiceError] = []
        n_hit = n_miss = n_err = 0
        for i, (item, k) in enumerate(zip(items, keys, strict=True)):
            if k is None:
                assert isinstance(item, ServiceError)
                out.append(item)
                n_err += 1
                continue
            if k in found:
                out.append((found[k], k, True))
                n_hit += 1
                continue
            got = computed[k]
            if isinstance(got, ServiceError):
                out.append(got.prefixed(paths[i]) if got.violations else got)
                n_err += 1
            else:
                out.append((got, k, False))
                n_miss += 1
        self._count(hits=n_hit, misses=n_miss, errors=n_err)
        return out

    def _count(self, **deltas: int) -> None:
        with self._stats_lock:
            for k, v in deltas.items():
                self._stats[k] += v

    def _get_pool(self) -> Any:
        """The analysis processes (spawned on first use), or None when disabled."""
        if self.analyze_processes <= 0:
            return None
        with self._pool_lock:
            if self._pool is None and not self._closed:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                self._pool = ProcessPoolExecutor(self.analyze_processes,
                                                 mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_pool_init)
            return self._pool

    def warm_pool(self) -> None:
        """Start the analysis processes now (a server calls this at start so no request waits for it)."""
        pool = self._get_pool()
        if pool is not None:
            for f in [pool.submit(_pool_job, "scalars", []) for _ in range(self.analyze_processes)]:
                f.result()

    def count_hits(self, n: int) -> None:
        """Hits a caller served from its own memo of reports that came from this oracle."""
        self._count(hits=n)

    def serve(self, report: dict[str, Any], item: Prepared, ctx: Context, key: str, hit: bool, detail: str, *,
              label: str | None = None) -> dict[str, Any]:
        """What a caller gets for a stored report at ``detail``: the breakdowns the stored row leaves
        out (``views``, ``by_module``) are re-derived from the engine's memoized blocks when the detail
        asks for them, and kept in a small memo for the next caller."""
        if detail != "scalars" and "views" not in report:
            memo_key = (key, detail == "full")
            extra = self._breakdowns.get(memo_key)
            if extra is None:
                extra = _analyze_item(item, ctx).breakdowns(by_module=detail == "full")
                self._breakdowns.put(memo_key, extra)
            report = {**report, **extra}
        return serve_report(report, item.label if label is None else label, key, hit, detail)

    # -- latency --------------------------------------------------------------------------
    def latency_queue(self) -> Any:
        with self._queue_lock:
            if self._queue is None:
                try:
                    from server.latency_queue import MeasurementQueue
                except ImportError as exc:
                    raise FailedPrecondition(f"latency is not available on this server ({exc})") from None
                self._queue = MeasurementQueue(self.cache, max_pending=self.limits.max_pending_measurements)
            return self._queue

    def latency_settings(self, item: Prepared, ctx: Context, path: str = "context") -> Any:
        try:
            from cost_engine.latency import LatencySettings
        except ImportError as exc:
            raise FailedPrecondition(f"latency is not available on this server ({exc})") from None
        s = LatencySettings(device=ctx.device or "cpu", batch_size=ctx.batch_size, resolution=ctx.resolution,
                            dtype=ctx.dtype, threads=ctx.threads, memory_format=ctx.memory_format,
                            compile=ctx.compile, cudnn_benchmark=ctx.cudnn_benchmark, in_channels=item.in_channels)
        try:
            s.validate()
        except SpecError as exc:
            raise InvalidArgument(str(exc), [(join_path(path, e.path), e.reason) for e in exc.errors]) from None
        return s

    def _submit_latency(self, item: Prepared, ctx: Context, mode: str, *, deadline: float | None = None,
                        is_active: Callable[[], bool] | None = None) -> Any:
        """A future of the latency of one candidate (raises ServiceError at submission)."""
        from cost_engine.latency import UnknownDevice

        settings = self.latency_settings(item, ctx)
        q = self.latency_queue()
        try:
            if mode == "measure":
                return q.submit(item.candidate, settings, deadline=deadline, is_active=is_active)
            if mode == "auto":
                cached = self._cached_measurement(item, settings)
                if cached is not None:
                    return _done(cached)
            return q.submit_prediction(item.candidate, settings, method=ctx.latency_method, deadline=deadline,
                                       is_active=is_active)
        except UnknownDevice as exc:
            raise FailedPrecondition(str(exc), [("context.device", str(exc))]) from None
        except SpecError as exc:
            raise InvalidArgument(str(exc), [(join_path("context", e.path), e.reason) for e in exc.errors]) from None
        except ServiceError:
            raise
        except Exception as exc:
            if type(exc).__name__ == "QueueFull":
                raise ResourceExhausted(f"the measurement queue is full ({exc}); retry later",
                                        quota="max_pending_measurements") from None
            raise

    def _cached_measurement(self, item: Prepared, settings: Any) -> Any:
        from cost_engine.latency import latency_key
        from cost_engine.latency.result import LatencyResult

        try:
            payload = self.cache.get(latency_key(item.candidate, settings))
        except Exception:
            return None
        if not payload:
            return None
        try:
            return LatencyResult.from_dict(payload, cached=True)
        except Exception:
            return None

    def latency_of(self, items: Sequence[Prepared | ServiceError], ctx: Context, mode: str | None = None, *,
                   deadline: float | None = None, is_active: Callable[[], bool] | None = None,
                   paths: Sequence[str] | None = None) -> list[dict[str, Any] | ServiceError | None]:
        """Latency dicts (proto ``Latency`` keys) per item; all submitted first, then awaited."""
        mode = mode or ctx.latency
        paths = paths or [f"candidates[{i}]" for i in range(len(items))]
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
                    if f is not None and not isinstance(f, ServiceError):
                        f.cancel()
                raise
            except ServiceError as exc:
                futures.append(exc)
        out: list[dict[str, Any] | ServiceError | None] = []
        for i, f in enumerate(futures):
            if f is None or isinstance(f, ServiceError):
                out.append(f)
                continue
            try:
                timeout = None if deadline is None else max(0.0, deadline - time.time())
                out.append(latency_dict(f.result(timeout=timeout)))
            except ServiceError as exc:
                out.append(exc)
            except Exception as exc:
                out.append(_latency_error(exc, paths[i]))
        return out

    def attach_latency(self, items: Sequence[Prepared | ServiceError], reports: list[Any], ctx: Context,
                       paths: Sequence[str] | None = None, *, deadline: float | None = None,
                       is_active: Callable[[], bool] | None = None) -> None:
        todo = [it if not isinstance(r, ServiceError) else r for it, r in zip(items, reports, strict=True)]
        lats = self.latency_of(todo, ctx, deadline=deadline, is_active=is_active, paths=paths)
        for i, lat in enumerate(lats):
            if isinstance(reports[i], ServiceError):
                continue
            if isinstance(lat, ServiceError):
                reports[i] = lat
            elif lat is not None:
                reports[i]["latency"] = lat
                reports[i]["sources"] = {**reports[i]["sources"], "latency": lat["source"]}

    # -- budgets --------------------------------------------------------------------------
    def check_budget(self, budget: Budget, ctx: Context, pareto: Sequence[str]) -> None:
        if not isinstance(budget, Budget):
            raise InvalidArgument("bad budget", [("budget", f"must be a Budget, got {type(budget).__name__}")])
        errors = budget.validate()
        for i, name in enumerate(pareto):
            if name not in PARETO_FIELDS:
                errors.append((f"pareto_fields[{i}]", f"must be one of {', '.join(PARETO_FIELDS)}; got {name!r}"))
            elif name == "latency_ms" and budget.max_latency_ms is None and not ctx.wants_latency:
                errors.append((f"pareto_fields[{i}]", "latency_ms needs budget.max_latency_ms or context.latency"))
        if errors:
            raise InvalidArgument("invalid budget", errors)
        if budget.max_latency_ms is not None:
            self.check_device(ctx)

    def filter(self, candidates: Sequence[Candidate], budget: Budget, context: Context | None = None, *,
               pareto: Sequence[str] = (), include_reports: bool = False, detail: str = "scalars",
               deadline: float | None = None, is_active: Callable[[], bool] | None = None) -> FilterOutcome:
        """Which candidates fit ``budget``: analytic limits for all, latency only for the survivors."""
        ctx = context or Context()
        self.check_context(ctx)
        self.check_detail(detail)
        self.check_budget(budget, ctx, pareto)
        candidates = list(candidates)
        self.check_batch_size(len(candidates))
        items = self._prepare_all(candidates, "candidates")
        return self.filter_prepared(items, budget, ctx, pareto=pareto, include_reports=include_reports,
                                    detail=detail, deadline=deadline, is_active=is_active)

    def filter_prepared(self, items: Sequence[Prepared | ServiceError], budget: Budget, ctx: Context, *,
                        pareto: Sequence[str] = (), include_reports: bool = False, detail: str = "scalars",
                        offset: int = 0, paths: Sequence[str] | None = None, front: bool = True,
                        deadline: float | None = None,
                        is_active: Callable[[], bool] | None = None) -> FilterOutcome:
        actx = ctx.analytic()
        full = self.full_reports(items, actx, paths)
        results: list[FilterItem] = []
        survivors: list[int] = []
        for i, got in enumerate(full):
            if isinstance(got, ServiceError):
                results.append(FilterItem(offset + i, False, error=got, decided_by="error"))
                continue
            report, key, hit = got
            cons = analytic_constraints(budget, report)
            item = FilterItem(offset + i, all(c.value <= 0 for c in cons), cons,
                              [c.name for c in cons if c.value > 0], decided_by="analytic")
            item._values = {f: float(report[f]) for f in PARETO_FIELDS if f in report}
            if include_reports:
                prepared = items[i]
                assert isinstance(prepared, Prepared)
                item.report = self.serve(report, prepared, actx, key, hit, detail)
            results.append(item)
            if item.feasible:
                survivors.append(i)
        measurements = 0
        need_latency = budget.max_latency_ms is not None or (ctx.wants_latency and (include_reports
                                                                                   or "latency_ms" in pareto))
        if survivors and need_latency:
            measurements = self._latency_filter(items, results, survivors, budget, ctx, deadline, is_active)
        feasible = [r.index for r in results if r.feasible]
        front_idx: list[int] = []
        if pareto and front:
            front_idx = self.front(results, pareto)
        return FilterOutcome(results, feasible, front_idx, measurements)

    @staticmethod
    def front(results: Sequence[FilterItem], pareto: Sequence[str]) -> list[int]:
        cands = [r for r in results if r.feasible and all(p in r._values for p in pareto)]
        pts = [[r._values[p] for p in pareto] for r in cands]
        idx = [cands[j].index for j in pareto_front(pts)]
        chosen = set(idx)
        for r in results:
            r.pareto = r.index in chosen
        return sorted(idx)

    def _latency_filter(self, items: Sequence[Prepared | ServiceError], results: list[FilterItem],
                        survivors: list[int], budget: Budget, ctx: Context, deadline: float | None,
                        is_active: Callable[[], bool] | None) -> int:
        """Latency for the analytic survivors; returns the number of measurements it needed."""
        prepared = [items[i] for i in survivors]
        assert all(isinstance(p, Prepared) for p in prepared)
        if budget.max_latency_ms is None:
            lats = self.latency_of(prepared, ctx, deadline=deadline, is_active=is_active)
            measured = 0
            for i, lat in zip(survivors, lats, strict=True):
                self._set_latency(results[i], lat, None)
                measured += bool(lat and not isinstance(lat, ServiceError) and lat.get("source") == "measured"
                                 and not lat.get("cached"))
            return measured
        from cost_engine.latency import UnknownDevice, filter_by_latency

        q = self.latency_queue()
        # one settings object per survivor (block candidates differ in in_channels)
        settings = [self.latency_settings(p, ctx) for p in prepared]  # type: ignore[arg-type]
        groups: dict[Any, list[int]] = {}
        for j, s in enumerate(settings):
            groups.setdefault(_settings_id(s), []).append(j)
        total_measurements = 0
        for members in groups.values():
            s = settings[members[0]]
            cands = [prepared[j].candidate for j in members]  # type: ignore[union-attr]

            def wait(futures: list[Any]) -> list[Any]:
                timeout = None if deadline is None else max(0.0, deadline - time.time())
                return [f.result(timeout=timeout) for f in futures]

            def measurer(cs: list[Any], st: Any) -> list[Any]:
                # every measurement goes through the device's queue (one at a time, coalesced); the
                # close calls are timed together, in shared worker sessions
                return wait(q.submit_many(cs, st, deadline=deadline, is_active=is_active))

            def predictor(cs: list[Any], st: Any) -> list[Any]:
                return wait([q.submit_prediction(c, st, method=ctx.latency_method, deadline=deadline,
                                                 is_active=is_active) for c in cs])

            try:
                res = filter_by_latency(cands, float(budget.max_latency_ms), s, cache=self.cache,
                                        measure_all=budget.measure_all, method=ctx.latency_method,
                                        measurer=measurer, predictor=predictor)
            except UnknownDevice as exc:
                raise FailedPrecondition(str(exc), [("context.device", str(exc))]) from None
            except SpecError as exc:
                raise InvalidArgument(str(exc), [(join_path("context", e.path), e.reason)
                                                 for e in exc.errors]) from None
            except ServiceError:
                raise
            except Exception as exc:  # queue full, dropped, measurement failure
                raise _latency_error(exc, "context") from None
            total_measurements += int(res.measurements)
            for d in res.decisions:
                j = members[int(d["index"])]
                lat = d.get("latency")
                self._set_latency(results[survivors[j]], latency_dict(lat) if lat is not None else None, budget,
                                  decided_by=str(d.get("reason", "predicted")), feasible=bool(d.get("feasible")))
        return total_measurements

    @staticmethod
    def _set_latency(item: FilterItem, lat: dict[str, Any] | ServiceError | None, budget: Budget | None, *,
                     decided_by: str | None = None, feasible: bool | None = None) -> None:
        if isinstance(lat, ServiceError):
            item.error, item.feasible, item.decided_by = lat, False, "error"
            return
        if lat is None:
            return
        item._values["latency_ms"] = float(lat["median_ms"])
        if item.report is not None:
            item.report["latency"] = lat
            item.report["sources"] = {**item.report["sources"], "latency": lat["source"]}
        if budget is not None and budget.max_latency_ms is not None:
            c = latency_constraint(budget, float(lat["median_ms"]))
            item.constraints.append(c)
            ok = feasible if feasible is not None else c.value <= 0
            if not ok and LATENCY_LIMIT not in item.violated:
                item.violated.append(LATENCY_LIMIT)
            item.feasible = item.feasible and ok
            item.decided_by = decided_by or lat.get("source", "predicted")

    # -- sweeps ---------------------------------------------------------------------------
    def check_space(self, space: Space) -> int:
        if not isinstance(space, (EfficientNetCompoundSpace, MultiplierSpace, FasterNetSpace)):
            raise InvalidArgument("bad sweep space", [("space", "must be an efficientnet_compound, multipliers or "
                                                                "fasternet space")])
        errors = space.validate()
        if errors:
            raise InvalidArgument("invalid sweep space", errors)
        n = space.size()
        if n > self.limits.max_sweep_size:
            raise ResourceExhausted(f"{space.name}: {n} points is over the server's limit of "
                                    f"{self.limits.max_sweep_size} per sweep; narrow the grid",
                                    quota="max_sweep_size")
        return n

    def sweep_iter(self, space: Space, budget: Budget | None = None, context: Context | None = None, *,
                   pareto: Sequence[str] = (), include_reports: bool = False, include_specs: bool = False,
                   detail: str = "scalars", chunk_size: int | None = None, deadline: float | None = None,
                   is_active: Callable[[], bool] | None = None) -> Iterator[SweepChunk | SweepOutcome]:
        """Chunks of costed points, then one :class:`SweepOutcome` (with empty ``points``) as the summary."""
        budget = budget or Budget()
        ctx = context or Context()
        self.check_context(ctx)
        self.check_detail(detail)
        self.check_budget(budget, ctx, pareto)
        total = self.check_space(space)
        chunk = max(1, int(chunk_size or self.limits.default_chunk_size))
        all_results: list[FilterItem] = []
        measurements = 0
        pending: list[Any] = []

        def run(batch: list[Any]) -> SweepChunk:
            nonlocal measurements
            items: list[Prepared | ServiceError] = []
            paths = []
            for pt in batch:
                paths.append(f"{space.name}[{pt.index}]")
                if pt.error is not None:
                    items.append(InvalidArgument(f"point {pt.label}: {pt.error}",
                                                 [(join_path(space.name, e.path) if e.path else space.name,
                                                   f"{pt.label}: {e.reason}") for e in pt.error.errors]))
                else:
                    items.append(self.prepare(pt.spec, paths[-1], validated=True))
            outcome = self.filter_prepared(items, budget, ctx, pareto=(), include_reports=include_reports,
                                           detail=detail, offset=batch[0].index, paths=paths, front=False,
                                           deadline=deadline, is_active=is_active)
            measurements += outcome.measurements
            all_results.extend(outcome.results)
            points = [SweepPoint(pt.index, pt.params, pt.label, pt.spec if include_specs else None, r)
                      for pt, r in zip(batch, outcome.results, strict=True)]
            return SweepChunk(total, points)

        for pt in expand_space(space):
            pending.append(pt)
            if len(pending) >= chunk:
                yield run(pending)
                pending = []
        if pending:
            yield run(pending)
        front_idx = self.front(all_results, pareto) if pareto else []
        yield SweepOutcome(total, [], [r.index for r in all_results if r.feasible], front_idx, measurements)

    def sweep(self, space: Space, budget: Budget | None = None, context: Context | None = None, *,
              pareto: Sequence[str] = (), include_reports: bool = False, include_specs: bool = False,
              detail: str = "scalars", progress: Callable[[int, int], None] | None = None) -> SweepOutcome:
        """The whole sweep at once (``progress(done, total)`` after every chunk)."""
        points: list[SweepPoint] = []
        summary: SweepOutcome | None = None
        for part in self.sweep_iter(space, budget, context, pareto=pareto, include_reports=include_reports,
                                    include_specs=include_specs, detail=detail):
            if isinstance(part, SweepChunk):
                points.extend(part.points)
                if progress is not None:
                    progress(len(points), part.total)
            else:
                summary = part
        assert summary is not None
        summary.points = points
        return summary

    # -- information ----------------------------------------------------------------------
    def devices(self) -> list[dict[str, Any]]:
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

    def info(self) -> dict[str, Any]:
        import platform

        import google.protobuf
        import sqlalchemy

        from cost_engine.families import resolve as _resolve

        versions = {"python": platform.python_version(), "protobuf": google.protobuf.__version__,
                    "sqlalchemy": sqlalchemy.__version__, "server": SERVER_VERSION}
        try:
            import grpc

            versions["grpcio"] = grpc.__version__
        except ImportError:
            pass
        try:
            import torch

            versions["torch"] = torch.__version__
        except ImportError:
            pass
        try:
            from cost_engine.latency import PROTOCOL_VERSION

            protocol = str(PROTOCOL_VERSION)
        except ImportError:
            protocol = ""
        with contextlib.suppress(SpecError):
            _resolve("__load_builtins__")
        return {
            "server_version": SERVER_VERSION,
            "cost_model_version": COST_MODEL_VERSION,
            "latency_protocol_version": protocol,
            "versions": versions,
            "devices": self.devices(),
            "limits": dataclasses.asdict(self.limits),
            "spec_kinds": sorted(SPEC_KINDS),
            "builtins": sorted(BUILTINS),
            "sweep_families": list(SWEEP_FAMILIES),
            "auth_required": False,
            "cache_backend": self.cache.backend,
            "queue": self.queue_stats(),
        }

    def queue_stats(self) -> dict[str, Any]:
        if self._queue is None:
            return {"pending": 0, "in_flight": 0, "done": 0, "coalesced": 0, "dropped": 0, "cache_hits": 0,
                    "failed": 0, "max_pending": self.limits.max_pending_measurements, "devices": {}}
        try:
            return dict(self._queue.stats())
        except Exception:
            log.exception("measurement queue stats failed")
            return {}

    def cache_stats(self) -> dict[str, Any]:
        s = self.cache.stats()
        with self._stats_lock:
            mine = dict(self._stats)
        looked = mine["hits"] + mine["misses"]
        counters = {k: int(v) for k, v in s.items() if isinstance(v, int) and not isinstance(v, bool)}
        counters.update({f"oracle_{k}": v for k, v in mine.items()})
        counters["report_memory_entries"] = len(self._reports)
        if s.get("size_bytes") is not None:
            counters["size_bytes"] = int(s["size_bytes"])
        return {
            "backend": s.get("backend", ""),
            "entries": int(s.get("rows", 0)),
            "entries_by_kind": {k: int(v) for k, v in s.get("rows_by_kind", {}).items()},
            "hits": mine["hits"],
            "misses": mine["misses"],
            "writes": mine["writes"],
            "hit_rate": mine["hits"] / looked if looked else 0.0,
            "counters": counters,
            "queue": self.queue_stats(),
        }

    def calibrate(self, device: str = "cpu", dtype: str = "float32", threads: int | None = None,
                  refresh: bool = False, timeout: float | None = None) -> dict[str, Any]:
        """Device ceilings for roofline prediction (measured once per fingerprint, then cached)."""
        errors = []
        if dtype not in ("float32", "float16", "bfloat16"):
            errors.append(("dtype", f"must be one of float32, float16, bfloat16; got {dtype!r}"))
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
            result = q.submit_calibration(device or "cpu", dtype, threads, refresh=refresh).result(timeout=timeout)
        except UnknownDevice as exc:
            raise FailedPrecondition(str(exc), [("device", str(exc))]) from None
        except SpecError as exc:
            raise InvalidArgument(str(exc), [(e.path, e.reason) for e in exc.errors]) from None
        except ServiceError:
            raise
        except Exception as exc:
            raise _latency_error(exc, "") from None
        d = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        d["fingerprint"] = {k: str(v) for k, v in (d.get("fingerprint") or {}).items()}
        return d

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
        if self._queue is not None and self._owns_queue:
            try:
                self._queue.close()
            except Exception:
                log.exception("closing the measurement queue failed")
        if self._owns_cache:
            try:
                self.cache.close()
            except Exception:
                log.exception("closing the cache failed")

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- helpers --------------------------------------------------------------------------------
def serve_report(report: dict[str, Any], label: str, key: str, hit: bool, detail: str) -> dict[str, Any]:
    """A fresh dict for a caller: the full report trimmed to ``detail``, plus how it was served."""
    dropped = _DROPPED[detail]
    out = {k: v for k, v in report.items() if k not in dropped}
    for k in ("by_module", "by_op_type", "views"):
        if k in out:
            out[k] = {m: dict(c) for m, c in out[k].items()}
    if "unknown_ops" in out:
        out["unknown_ops"] = dict(out["unknown_ops"])
    out["input_shape"] = list(out["input_shape"])
    out["output_shape"] = list(out["output_shape"])
    out["candidate"] = label
    out["cache_hit"] = hit
    out["cache_key"] = key
    out["sources"] = dict(_ANALYTIC_SOURCES)
    out["detail"] = detail
    return out


def latency_dict(result: Any) -> dict[str, Any]:
    """A latency result as the proto ``Latency`` fields (JSON-plain)."""
    d = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    canary = d.get("canary") or {}
    settings = d.get("settings") or {}
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
    }
    for k, v in out.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = 0.0
    return out


def _latency_error(exc: BaseException, path: str) -> ServiceError:
    name = type(exc).__name__
    if name == "MeasurementDropped":
        if getattr(exc, "code", "") == "DEADLINE_EXCEEDED":
            return DeadlineExceeded(f"latency measurement dropped: {exc}")
        return Cancelled(f"latency measurement dropped: {exc}")
    if name == "QueueFull":
        return ResourceExhausted(f"the measurement queue is full ({exc}); retry later",
                                 quota="max_pending_measurements")
    if name == "UnknownDevice":
        return FailedPrecondition(str(exc), [("context.device", str(exc))])
    if isinstance(exc, TimeoutError):
        return DeadlineExceeded("latency was not ready before the deadline")
    if isinstance(exc, SpecError):
        return InvalidArgument(str(exc), [(join_path(path, e.path), e.reason) for e in exc.errors])
    log.error("latency failed: %s: %s", name, exc)
    return Internal(f"latency measurement failed: {name}: {exc}")


def _done(value: Any) -> Any:
    from concurrent.futures import Future

    f: Future[Any] = Future()
    f.set_result(value)
    return f


def _settings_id(s: Any) -> Any:
    try:
        return tuple(sorted((k, repr(v)) for k, v in s.to_dict().items()))
    except Exception:
        return id(s)


def _reason(item: Prepared, engine_path: str, reason: str) -> str:
    if item.name is not None and engine_path:
        return f"{engine_path}: {reason}"
    return reason


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



# -- analysis processes ---------------------------------------------------------------------------
def _pool_init() -> None:
    """In a fresh analysis process: load the catalog (the first job should not pay for it)."""
    from cost_engine.families import catalog  # noqa: F401


def _pool_job(detail: str, jobs: Sequence[tuple[Any, ...]]) -> tuple[list[tuple[str, str, Any, Any]],
                                                                     list[dict[str, Any]]]:
    """Analyze and encode: (key, "ok", serialized report, scalars) or (key, "error", error state,
    None) per job, and the rows encoded for ``CostCache.put_encoded``. The server stores the rows
    before it answers anything, so a served report is always a stored one."""
    from server.convert import report_to_proto

    out: list[tuple[str, str, Any, Any]] = []
    rows: list[CacheRow] = []
    for key, what, in_channels, batch_size, resolution, dtype in jobs:
        ctx = Context(batch_size=batch_size, resolution=resolution, dtype=dtype)
        try:
            item = _worker_item(what, in_channels)
            engine_report = _analyze_item(item, ctx)
        except ServiceError as exc:
            out.append((key, "error", (type(exc).__name__, exc.message, exc.violations, exc.quota), None))
            continue
        report = engine_report.to_dict(breakdowns=False)
        rows.append(CacheRow(key, "cost", report, COST_MODEL_VERSION))
        if detail != "scalars":
            report = {**report, **engine_report.breakdowns(by_module=detail == "full")}
        blob = report_to_proto(serve_report(report, "", key, True, detail)).SerializeToString()
        out.append((key, "ok", blob, {k: report[k] for k in (*FIGURES, "input_shape", "output_shape", "dtype",
                                                              "batch_size", "cost_model_version", "candidate")}))
    return out, encode_rows(rows)


def _worker_item(what: bytes | str | Spec, in_channels: int | None) -> Prepared:
    """The job's candidate: wire bytes (converted here, with this process's block memo), a
    built-in name, or a spec. The server validated it already; a failure here is an engine error."""
    if isinstance(what, bytes):
        from costoracle.v1.spec_pb2 import Candidate
        from server.convert import candidate_from_proto, network_from_wire  # convert imports this module

        what = network_from_wire(what) or candidate_from_proto(Candidate.FromString(what))
        if isinstance(what, BlockCandidate):
            what = what.block
    if isinstance(what, str):
        return Prepared(resolve(what), what, what)
    return Prepared(what, what.kind, None, in_channels)


def _rebuild_error(state: tuple[Any, ...]) -> ServiceError:
    from server.errors import _rebuild

    return _rebuild(*state)


def _analyze_item(item: Prepared, ctx: Context) -> CostReport:
    """``analyze(...)`` with engine errors as :class:`ServiceError` in proto terms."""
    resolution = item.resolution(ctx)
    if item.is_block and resolution is None:
        raise InvalidArgument("a block candidate needs a resolution",
                              [("context.resolution", "a single block candidate needs context.resolution")])
    try:
        return analyze(item.spec, batch_size=ctx.batch_size, resolution=resolution, dtype=ctx.dtype,
                       in_channels=item.in_channels)
    except SpecError as exc:
        raise InvalidArgument(str(exc), [(item.proto_path(e.path), _reason(item, e.path, e.reason))
                                         for e in exc.errors]) from None
    except Exception as exc:  # an engine bug must not take the server down or leak a traceback
        log.exception("analyze failed for %s", item.label)
        raise Internal(f"the cost engine failed on this candidate: {type(exc).__name__}") from None
