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

The pieces it is built from live beside it, one job each: ``candidates`` (candidate preparation
and the bounded memos), ``reports`` (what a caller is served), ``analysis_pool`` (what the analysis
processes run), ``oracle_latency`` and ``oracle_search`` (the
latency and the filter/sweep methods of :class:`Oracle`); what requests and answers are, as plain
types, is the contract's (``contract/``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import platform
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import google.protobuf
import sqlalchemy

from cost_engine.families import BUILTINS, resolve
from cost_engine.report import COST_MODEL_VERSION
from cost_engine.spec.base import ACTIVATION_ALIASES, ACTIVATIONS, MAX_CHANNELS, SPEC_KINDS, Spec, SpecError
from cost_engine.spec.network import NetworkSpec
from cost_oracle.contract.errors import (
    InvalidArgument,
    OracleError,
    ResourceExhausted,
    invalid,
    join_path,
    spec_violations,
)
from cost_oracle.contract.spaces import SWEEP_FAMILIES
from cost_oracle.contract.types import BlockCandidate, Candidate, Context, Limits
from cost_oracle.contract.types import is_int as _is_int
from cost_oracle.server import cancel
from cost_oracle.server.analysis_pool import pool_init, pool_job, rebuild_error
from cost_oracle.server.cache import CacheRow, CostCache
from cost_oracle.server.cancel import checkpoint
from cost_oracle.server.candidates import Prepared, prepared_bytes
from cost_oracle.server.candidates import memo_key as _memo_key
from cost_oracle.server.config import MEASURE_ON
from cost_oracle.server.gate import RequestGate
from cost_oracle.server.memo import LRU, approx_bytes
from cost_oracle.server.oracle_latency import Latency
from cost_oracle.server.oracle_search import Search
from cost_oracle.server.reports import DETAILS, analyze_item, serve_report

__all__ = ["SERVER_VERSION", "Oracle"]

log = logging.getLogger("cost_oracle.oracle")

SERVER_VERSION = "0.1.0"


# -- the oracle -----------------------------------------------------------------------------
class Oracle:
    """Costs of candidates, cached. Thread-safe; one instance serves every request of a server.

    ``db_url``: a database URL or SQLite file path (None: ``$COST_ORACLE_DB_URL``, else the default
    file under the user's cache directory); ``cache``: an existing :class:`CostCache` instead.
    ``latency_queue``: a ``cost_oracle.server.latency_queue.MeasurementQueue`` (created on first use if None).
    ``measure_on``: ``local`` (this host's devices) or ``fleet`` (jobs in the shared PostgreSQL for
    ``cost-oracle worker`` hosts; ``server/fleet.py``). ``db_patience_s``: how long a call waits
    out a database that is down before it fails (None: not at all).
    """

    def __init__(self, db_url: str | None = None, *, cache: CostCache | None = None, limits: Limits | None = None,
                 latency_queue: Any = None, measure_on: str = "local", db_patience_s: float | None = None,
                 report_memory: int = 4096,
                 analyze_processes: int = 0,
                 pool_threshold: int = 16, prepared_memo_bytes: int = 256 << 20, report_memo_bytes: int = 128 << 20):
        self.cache = cache if cache is not None else CostCache(db_url, patience_s=db_patience_s)
        self._owns_cache = cache is None
        self.limits = limits or Limits()
        if measure_on not in MEASURE_ON:
            raise ValueError(f"measure_on: must be one of {', '.join(MEASURE_ON)}; got {measure_on!r}")
        if measure_on == "fleet" and self.cache.backend != "postgresql":
            raise ValueError("measure_on: fleet needs the shared PostgreSQL cache (the job table lives beside "
                             f"it); this cache is {self.cache.backend}")
        fleet_url = self.cache.url.render_as_string(hide_password=False) if measure_on == "fleet" else None
        #: measurements, predictions, calibration and the kernel model's fit
        self.latency = Latency(self.cache, self.limits, RequestGate(), latency_queue, fleet_url=fleet_url,
                               fleet_patience_s=db_patience_s)
        #: budgets: filters and sweeps, on this oracle's cost path
        self.search = Search(self, self.latency, self.limits)
        # the core's public API beside cost/cost_batch, answered by the parts (same signatures)
        self.filter = self.search.filter
        self.sweep = self.search.sweep
        self.calibrate = self.latency.calibrate
        self.fit_latency_model = self.latency.fit_latency_model
        #: Prometheus metrics when a server exports them (``server/metrics.py``)
        self.metrics: Any = None
        # memos bounded by entries and by estimated bytes (a value can be a 2,048-block network)
        self._reports = LRU(report_memory, report_memo_bytes, approx_bytes)  # key -> stored report dict
        self._breakdowns = LRU(256, report_memo_bytes, approx_bytes)  # (key, with by_module) -> re-derived views
        self._prepared = LRU(16384, prepared_memo_bytes, prepared_bytes)  # spec / name -> Prepared
        self._stats_lock = threading.Lock()
        self._stats = {"hits": 0, "misses": 0, "writes": 0, "errors": 0}
        self._closed = False
        #: processes that analyze large cold batches in parallel (0: all in this process)
        self.analyze_processes = max(0, int(analyze_processes))
        self.pool_threshold = max(1, int(pool_threshold))
        self._pool: Any = None
        self._pool_lock = threading.Lock()

    # -- candidates -----------------------------------------------------------------------
    @property
    def gate(self) -> RequestGate:
        """Request admission: a server bounds it (``server/gate.py``); in-process it is unbounded.
        Work slots are taken by the servicer, waiting slots by :class:`Latency`, so both share it."""
        return self.latency.gate

    @gate.setter
    def gate(self, gate: RequestGate) -> None:
        self.latency.gate = gate

    def prepare(self, candidate: Candidate, path: str = "candidate", *, validated: bool = False,
                spec_json: str | None = None) -> Prepared:
        """Validate and resolve one candidate; raises :class:`InvalidArgument` with proto paths under ``path``.

        ``spec_json``: a validated network's canonical JSON, when the caller has it (a server reads
        it off the wire with the spec, and memoizes by the bytes: hashing a new network for this
        memo would cost more than the ``Prepared``)."""
        if spec_json is not None and validated and isinstance(candidate, NetworkSpec):
            return self._prepare(candidate, path, validated).know_json(spec_json)
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
                raise invalid([(join_path(path, "builtin"), e.reason) for e in exc.errors]) from None
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
                errors.extend(spec_violations(block, join_path(path, f"block.{block.kind}")))
            if errors:
                raise InvalidArgument("invalid block candidate", errors)
            return Prepared(block, block.kind, in_channels=candidate.in_channels)
        if isinstance(candidate, NetworkSpec):
            problems = [] if validated else spec_violations(candidate, join_path(path, "network"))
            if problems:
                raise invalid(problems)
            return Prepared(candidate, candidate.kind)
        if isinstance(candidate, Spec):
            raise InvalidArgument("a single block needs its input channels",
                                  [(join_path(path, "in_channels"),
                                    f"a standalone {candidate.kind!r} block needs in_channels: pass "
                                    "BlockCandidate(block, in_channels)")])
        raise InvalidArgument("not a candidate", [(path, "must be a network spec, a built-in model name or a block "
                                                         f"candidate, got {type(candidate).__name__}")])

    def prepare_all(self, candidates: Sequence[Candidate], path: str) -> list[Prepared | OracleError]:
        out: list[Prepared | OracleError] = []
        for i, c in enumerate(candidates):
            checkpoint()
            try:
                out.append(self.prepare(c, f"{path}[{i}]"))
            except OracleError as exc:
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
        """FAILED_PRECONDITION for a latency device nobody serves (see :meth:`Latency.check_device`)."""
        self.latency.check_device(ctx.device or "cpu", path)

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
        """The report of one candidate; raises :class:`OracleError` (paths under ``candidate``)."""
        ctx = context or Context()
        self.check_context(ctx)
        self.check_detail(detail)
        result = self.cost_prepared([self.prepare(candidate, "candidate")], ctx, detail, paths=["candidate"])[0]
        if isinstance(result, OracleError):
            raise result
        return result

    def cost_batch(self, candidates: Sequence[Candidate], context: Context | None = None, *,
                   detail: str = "full") -> list[dict[str, Any] | OracleError]:
        """Reports in request order; a bad candidate is its own :class:`OracleError` item."""
        ctx = context or Context()
        self.check_context(ctx)
        self.check_detail(detail)
        candidates = list(candidates)
        self.check_batch_size(len(candidates))
        items = self.prepare_all(candidates, "candidates")
        return self.cost_prepared(items, ctx, detail)

    def cost_prepared(self, items: Sequence[Prepared | OracleError], ctx: Context, detail: str = "full",
                      paths: Sequence[str] | None = None, *, deadline: float | None = None,
                      is_active: Callable[[], bool] | None = None) -> list[dict[str, Any] | OracleError]:
        """The core batch path (the servicer calls it with candidates it converted itself)."""
        full = self.full_reports(items, ctx, paths)
        out: list[dict[str, Any] | OracleError] = []
        for item, got in zip(items, full, strict=True):
            if isinstance(got, OracleError):
                out.append(got)
                continue
            report, key, hit = got
            assert isinstance(item, Prepared)
            out.append(self.serve(report, item, ctx, key, hit, detail))
        if ctx.wants_latency:
            self.latency.attach_latency(items, out, ctx, paths, deadline=deadline, is_active=is_active)
        return out

    def full_reports(self, items: Sequence[Prepared | OracleError], ctx: Context,
                     paths: Sequence[str] | None = None) -> list[tuple[dict[str, Any], str, bool] | OracleError]:
        """(full report dict, cache key, cache hit) per item, or the item's error. Never mutate the dicts."""
        paths = paths or [f"candidates[{i}]" for i in range(len(items))]
        keys = [item.key(ctx) if isinstance(item, Prepared) else None for item in items]
        found, missing = self._lookup(keys)
        computed = self._compute_local(items, keys, missing, ctx)
        return self._assemble(items, keys, found, computed, paths)

    def begin_report_blobs(self, items: Sequence[Prepared | OracleError], ctx: Context, detail: str,
                           paths: Sequence[str], encode: Callable[[dict[str, Any]], bytes],
                           decode: Callable[[bytes], Any] | None = None,
                           ) -> Callable[[], list[tuple[bytes, str, bool] | OracleError]]:
        """(encoded report at ``detail`` with an empty label and cache_hit set, key, hit) per item,
        or its error — the servicer's path — in two steps: look up and hand the cold candidates to
        the analysis processes now, collect (store, then answer) when the returned function is
        called. A server converts the next part of a long batch while the processes analyze this
        one. ``encode`` (report -> bytes) and ``decode`` (a candidate's wire bytes -> spec) are the
        servicer's, module-level functions the analysis processes receive by reference: the core
        never speaks protobuf. Reports the analysis processes encoded come back as bytes already."""
        keys = [item.key(ctx) if isinstance(item, Prepared) else None for item in items]
        found, missing = self._lookup(keys)
        pool = self._get_pool() if len(missing) >= self.pool_threshold else None
        if pool is None:
            computed = self._compute_local(items, keys, missing, ctx)
            return lambda: self._blobs(items, keys, found, computed, {}, ctx, detail, paths, encode)
        try:
            futures = self._submit_pool(pool, items, keys, missing, ctx, detail, encode, decode)
        except Exception:
            futures = None
            self._drop_pool(pool)

        def finish() -> list[tuple[bytes, str, bool] | OracleError]:
            try:
                if futures is None:
                    raise RuntimeError("the analysis processes are gone")
                computed, blobs = self._collect_pool(futures)
            except OracleError:  # the call is over (deadline, cancel): the jobs not yet begun are dropped
                for f in futures or ():
                    f.cancel()
                raise
            except Exception:  # a broken pool (a worker killed): answer from this process, restart it later
                log.exception("the analysis processes failed; analyzing in the server process")
                self._drop_pool(pool)
                computed, blobs = self._compute_local(items, keys, missing, ctx), {}
            return self._blobs(items, keys, found, computed, blobs, ctx, detail, paths, encode)

        return finish

    def _drop_pool(self, pool: Any) -> None:
        with self._pool_lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def _blobs(self, items: Sequence[Prepared | OracleError], keys: Sequence[str | None],
               found: dict[str, dict[str, Any]], computed: dict[str, Any], blobs: dict[str, bytes], ctx: Context,
               detail: str, paths: Sequence[str], encode: Callable[[dict[str, Any]], bytes],
               ) -> list[tuple[bytes, str, bool] | OracleError]:
        out: list[tuple[bytes, str, bool] | OracleError] = []
        for item, got in zip(items, self._assemble(items, keys, found, computed, paths), strict=True):
            if isinstance(got, OracleError):
                out.append(got)
                continue
            report, key, hit = got
            checkpoint()  # encoding 10,000 answers is seconds too
            blob = blobs.get(key)
            if blob is None:
                assert isinstance(item, Prepared)
                blob = encode(self.serve(report, item, ctx, key, True, detail, label=""))
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

    def _compute_local(self, items: Sequence[Prepared | OracleError], keys: Sequence[str | None],
                       missing: Sequence[str], ctx: Context) -> dict[str, Any]:
        """Analyze the missing keys in this process and store them; key -> report dict or error."""
        todo = set(missing)
        computed: dict[str, Any] = {}
        rows: list[CacheRow] = []
        started = time.perf_counter()
        try:
            for item, k in zip(items, keys, strict=True):
                if k is None or k not in todo or k in computed:
                    continue
                assert isinstance(item, Prepared)
                checkpoint()
                try:
                    report = analyze_item(item, ctx).to_dict(breakdowns=False)
                except OracleError as exc:
                    computed[k] = exc  # paths relative to the candidate: each position prefixes its own
                    continue
                computed[k] = report
                rows.append(CacheRow(k, "cost", report, COST_MODEL_VERSION))
        finally:  # work stopped at a deadline still keeps what it finished
            self._store_computed(rows)
            if self.metrics is not None:
                self.metrics.analyzed(len(rows), time.perf_counter() - started)
        return computed

    def _store_computed(self, rows: list[CacheRow]) -> None:
        if rows:
            written = 0
            try:
                written = self.cache.put_many(rows)
            except Exception:  # the answer is still right; the next request recomputes it
                log.exception("cache write of %d rows failed", len(rows))
            for row in rows:
                self._reports.put(row.key, row.payload)
            self._count(writes=written)

    def _submit_pool(self, pool: Any, items: Sequence[Prepared | OracleError], keys: Sequence[str | None],
                     missing: Sequence[str], ctx: Context, detail: str, encode: Callable[[dict[str, Any]], bytes],
                     decode: Callable[[bytes], Any] | None) -> list[Any]:
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
        return [pool.submit(pool_job, detail, jobs[i:i + size], encode, decode) for i in range(0, len(jobs), size)]

    def _collect_pool(self, futures: Sequence[Any]) -> tuple[dict[str, Any], dict[str, bytes]]:
        """Wait for the jobs, then store every row they encoded in one go (one writer: SQLite would
        make parallel writers wait on its lock with sleeps) before anything is answered: key ->
        scalars-only report dict or error, and key -> serialized report."""
        computed: dict[str, Any] = {}
        blobs: dict[str, bytes] = {}
        rows: list[dict[str, Any]] = []
        for f in futures:
            checkpoint(force=True)
            results, encoded = f.result()
            rows.extend(encoded)
            for key, status, value, extra in results:
                if status == "ok":
                    blobs[key] = value
                    computed[key] = extra
                else:
                    computed[key] = rebuild_error(value)
        written = 0
        if rows:
            try:
                written = self.cache.put_encoded(rows)
            except Exception:  # the answers are still right; the next request recomputes them
                log.exception("cache write of %d rows failed", len(rows))
        self._count(writes=written)
        return computed, blobs

    def _assemble(self, items: Sequence[Prepared | OracleError], keys: Sequence[str | None],
                  found: dict[str, dict[str, Any]], computed: dict[str, Any],
                  paths: Sequence[str]) -> list[tuple[dict[str, Any], str, bool] | OracleError]:
        out: list[tuple[dict[str, Any], str, bool] | OracleError] = []
        n_hit = n_miss = n_err = 0
        for i, (item, k) in enumerate(zip(items, keys, strict=True)):
            if k is None:
                assert isinstance(item, OracleError)
                out.append(item)
                n_err += 1
                continue
            if k in found:
                out.append((found[k], k, True))
                n_hit += 1
                continue
            got = computed[k]
            if isinstance(got, OracleError):
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
                self._pool = ProcessPoolExecutor(self.analyze_processes,
                                                 mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=pool_init, initargs=(os.getpid(),))
            return self._pool

    def warm_pool(self) -> None:
        """Start the analysis processes now (a server calls this at start so no request waits for it)."""
        pool = self._get_pool()
        if pool is not None:
            for f in [pool.submit(pool_job, "scalars", []) for _ in range(self.analyze_processes)]:
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
                extra = analyze_item(item, ctx).breakdowns(by_module=detail == "full")
                self._breakdowns.put(memo_key, extra)
            report = {**report, **extra}
        return serve_report(report, item.label if label is None else label, key, hit, detail)

    # -- information ----------------------------------------------------------------------
    def devices(self) -> list[dict[str, Any]]:
        return self.latency.devices()

    def info(self) -> dict[str, Any]:

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
            resolve("__load_builtins__")
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
            "activations": list(ACTIVATIONS),
            "activation_aliases": dict(ACTIVATION_ALIASES),
            "auth_required": False,
            "cache_backend": self.cache.backend,
            "queue": self.queue_stats(),
        }

    def queue_stats(self) -> dict[str, Any]:
        return self.latency.stats()

    def cache_stats(self) -> dict[str, Any]:
        s = self.cache.stats()
        with self._stats_lock:
            mine = dict(self._stats)
        looked = mine["hits"] + mine["misses"]
        counters = {k: int(v) for k, v in s.items() if isinstance(v, int) and not isinstance(v, bool)}
        counters.update({f"oracle_{k}": v for k, v in mine.items()})
        counters["report_memory_entries"] = len(self._reports)
        counters["report_memory_bytes"] = self._reports.bytes
        counters["breakdown_memory_bytes"] = self._breakdowns.bytes
        counters["prepared_memory_entries"] = len(self._prepared)
        counters["prepared_memory_bytes"] = self._prepared.bytes
        counters.update({f"work_stopped_{k}": v for k, v in cancel.stopped.items()})
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

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
        self.latency.close()
        if self._owns_cache:
            try:
                self.cache.close()
            except Exception:
                log.exception("closing the cache failed")

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
