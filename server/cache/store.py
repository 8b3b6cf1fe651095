"""``CostCache``: the persistent, shared, crash-safe store of computed costs and measurements.

Rows are immutable: a key is a hash of everything that determines its payload (see
:mod:`cost_engine.keys`), so a row, once written, is never updated. That one property gives
the rest of the design:

* **Writes** are ``INSERT ... ON CONFLICT (key) DO NOTHING``, one transaction per row or per
  batch. Two writers racing on a key both succeed, one row survives, and neither ever sees an
  error. Batches are inserted in key order, so two PostgreSQL writers with overlapping batches
  take row locks in the same order and cannot deadlock.
* **A row is either complete or absent**, including when a writer is SIGKILLed at any moment.
  This rests on transactional atomicity, not on care in this module: in SQLite's WAL mode a
  transaction becomes visible only when its commit frame is in the WAL, and frames carry a
  cumulative checksum chain, so frames of a transaction that was cut short are ignored on the
  next open; ``synchronous=NORMAL`` keeps committed frames in the OS page cache, so a killed
  *process* loses nothing it committed (only an OS crash or power loss can drop the last few
  commits — which then roll back whole, never half). In PostgreSQL a client's open transaction
  is aborted when its connection drops. On top of that every row carries a sha256 checksum over
  key, kind, version and payload, verified on every read from the database: it catches what
  transactions cannot (a database file copied without its ``-wal``, manual edits, bit rot, a
  buggy future writer). A row that fails it is served as a miss, counted, and deleted so the
  next write of that key can store a good one.
* **Reads are fast** because rows never change: an in-process LRU (bounded in bytes) in front
  of the database serves repeated keys without a query, and is never stale. Misses are not
  remembered, since another process may write the row a moment later. A read from the database
  uses a pooled connection and a statement compiled once (SQLAlchemy's compiled cache, sqlite3's
  statement cache, psycopg's automatic server-side prepare).
* **Concurrency**: one engine with a connection pool serves many threads; SQLite runs in WAL
  mode (readers never block the writer and vice versa) with a busy timeout so concurrent writers
  from several processes on one host wait for each other instead of failing. PostgreSQL is the
  choice for a cache shared by servers on several hosts (SQLite's WAL needs shared memory).
* **Versions**: the cost-model version is hashed into the key, so a new version never reads an
  old row; it is also stored, so rows of old versions can be counted and pruned.

Payloads are stored as compact JSON text. By default every read decodes afresh, so each caller
gets its own dict and may mutate it; ``copy=False`` hands out one shared, decoded-once dict per
row instead, for hot paths that only read it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import platformdirs
from sqlalchemy import bindparam, create_engine, delete, event, func, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import CreateIndex, CreateTable

from cost_oracle.server.cache.payload import dumps as dump_payload
from cost_oracle.server.cache.schema import CACHE_TABLE, SCHEMA_VERSION, cache_table
from cost_oracle.server.memo import LRU

__all__ = ["DB_URL_ENV", "CacheRow", "CostCache", "default_sqlite_path", "encode_rows", "resolve_url", "row_checksum"]

log = logging.getLogger("cost_oracle.server.cache")

#: Environment variable naming the cache database (an SQLAlchemy URL or a file path).
DB_URL_ENV = "COST_ORACLE_DB_URL"

_KEY_RE = re.compile(r"[0-9a-f]{64}")
_MAX_KIND = 32
_MAX_VERSION = 64
#: Rows per write transaction in put_many: bounds how long one batch holds SQLite's write lock.
_WRITE_CHUNK = 1000
#: Keys per SELECT ... IN (...): well under SQLite's bound-parameter limit.
_READ_CHUNK = 500
#: SQLSTATEs of PostgreSQL failures that succeed when retried (serialization failure, deadlock).
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})
#: Constant for pg_advisory_xact_lock while creating the schema ("COSTORAC" as an int).
_PG_SCHEMA_LOCK = 0x434F53544F524143 & 0x7FFFFFFFFFFFFFFF


class CacheRow(NamedTuple):
    """One row to write: ``kind`` is "cost", "latency", "calibration", ...; ``version`` the cost-model version."""

    key: str
    kind: str
    payload: Mapping[str, Any]
    version: str


def is_connection_error(exc: DBAPIError) -> bool:
    """A lost or refused connection (the database restarting), not a bad statement."""
    if getattr(exc, "connection_invalidated", False):
        return True
    text_ = str(exc.orig or exc).lower()
    return any(s in text_ for s in ("connection", "server closed", "terminating", "shutting down", "starting up",
                                    "could not connect", "the database system is", "ssl syscall", "eof"))


def default_sqlite_path() -> Path:
    """``<user cache dir>/cost-oracle/cache.sqlite`` (platformdirs), e.g. ``~/.cache/cost-oracle/``."""
    return Path(platformdirs.user_cache_dir("cost-oracle")) / "cache.sqlite"


def resolve_url(url: str | None = None) -> URL:
    """The database URL: ``url``, else ``$COST_ORACLE_DB_URL``, else the default SQLite file.

    A value without ``://`` is a file path for SQLite. ``postgresql://`` and ``postgres://``
    select the psycopg 3 driver. The parent directory of an SQLite file is created.
    """
    raw = url if url else os.environ.get(DB_URL_ENV) or None
    if raw is None:
        raw = str(default_sqlite_path())
    raw = raw.strip()
    if raw in (":memory:", "sqlite:", "sqlite://"):
        return make_url("sqlite://")
    if "://" not in raw:
        raw = "sqlite:///" + str(Path(raw).expanduser().resolve())
    elif raw.startswith("postgres://"):
        raw = "postgresql+psycopg://" + raw[len("postgres://"):]
    elif raw.startswith("postgresql://"):
        raw = "postgresql+psycopg://" + raw[len("postgresql://"):]
    try:
        parsed = make_url(raw)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError
        raise ValueError(f"db_url: not a database URL or file path: {raw!r} ({exc})") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"db_url: unsupported backend {backend!r}; use a SQLite file path or postgresql://...")
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return parsed


def row_checksum(key: str, kind: str, version: str, payload_json: str) -> str:
    """sha256 hex over the row's identity and its payload bytes: a row moved or torn fails it."""
    h = hashlib.sha256()
    h.update(f"{key}\n{kind}\n{version}\n".encode("ascii", "backslashreplace"))
    h.update(payload_json.encode("utf-8"))
    return h.hexdigest()


def _payload_json(payload: Mapping[str, Any]) -> str:
    if not isinstance(payload, Mapping):
        raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
    # compact, not sorted: a payload's text only has to round-trip (the key is what is canonical)
    return dump_payload(payload)


def encode_rows(rows: Iterable[CacheRow | tuple | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows checked and encoded as the insert's parameters (payload JSON text and its checksum);
    raises ``ValueError``/``TypeError`` for a bad key, kind, version or payload before anything
    is written. The first of two rows with one key is kept."""
    params: dict[str, dict[str, Any]] = {}
    now = time.time()
    for item in rows:
        row = _as_row(item)
        _check_row(row)
        if row.key in params:
            continue
        payload = _payload_json(row.payload)
        params[row.key] = {"key": row.key, "kind": row.kind, "cost_model_version": row.version,
                           "payload": payload, "checksum": row_checksum(row.key, row.kind, row.version, payload),
                           "created_at": now}
    return list(params.values())


def _check_row(row: CacheRow) -> None:
    if not isinstance(row.key, str) or not _KEY_RE.fullmatch(row.key):
        raise ValueError(f"key must be 64 lowercase hex characters (a sha256), got {row.key!r}")
    if not isinstance(row.kind, str) or not 0 < len(row.kind) <= _MAX_KIND:
        raise ValueError(f"kind must be a non-empty string of at most {_MAX_KIND} characters, got {row.kind!r}")
    if not isinstance(row.version, str) or not 0 < len(row.version) <= _MAX_VERSION:
        raise ValueError(f"version must be a non-empty string of at most {_MAX_VERSION} characters, "
                         f"got {row.version!r}")


def _as_row(item: CacheRow | tuple | Mapping[str, Any]) -> CacheRow:
    if isinstance(item, CacheRow):
        return item
    if isinstance(item, Mapping):
        return CacheRow(item["key"], item["kind"], item["payload"], item["version"])
    return CacheRow(*item)


class _Entry:
    """A cached row in the memory LRU: its JSON text, and the decoded dict once someone asked for
    a shared one (the LRU's bound then counts an estimate of the dict as well)."""

    __slots__ = ("parsed", "text")

    def __init__(self, text: str):
        self.text = text
        self.parsed: dict[str, Any] | None = None


#: Rough memory of a decoded JSON payload relative to its text (dicts, floats and strings).
_DECODED_FACTOR = 4


#: Per-process counters reported by stats().
_COUNTERS = ("hits", "misses", "memory_hits", "written", "duplicate", "corrupt", "retries")

_LIVE: weakref.WeakSet[CostCache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # Pooled connections belong to the parent: never reuse them in a forked child. The pool is
    # replaced (without closing the parent's sockets/files); locks held at fork time are renewed.
    for cache in list(_LIVE):
        cache._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class CostCache:
    """The persistent cache (see the module docstring for the guarantees and why they hold).

    ``url``: an SQLAlchemy URL (``postgresql+psycopg://user@host/db``, ``sqlite:////abs/path``),
    a plain file path for SQLite, or None for ``$COST_ORACLE_DB_URL`` or else the default file
    under the user's cache directory. ``memory_bytes`` bounds the in-process LRU (0 disables it).
    ``busy_timeout_s`` is how long an SQLite writer waits for another process's write lock.
    """

    def __init__(self, url: str | None = None, *, memory_bytes: int = 256 << 20, busy_timeout_s: float = 60.0,
                 pool_size: int | None = None, max_overflow: int | None = None, patience_s: float | None = None):
        self.url: URL = resolve_url(url)
        #: also wait out a database that is down (refused or lost connections) for this long,
        #: e.g. a fleet worker whose finished measurement must be stored, not timed again
        self._patience_s = patience_s
        self.backend: str = self.url.get_backend_name()
        self._memory_db = self.backend == "sqlite" and self.url.database in (None, "", ":memory:")
        self._busy_timeout_s = busy_timeout_s
        self.engine: Engine = self._make_engine(pool_size, max_overflow)
        # one connection shared by all threads (in-memory SQLite only) needs serializing
        self._serial: Any = threading.RLock() if self._memory_db else contextlib.nullcontext()
        self._lru = LRU(None, memory_bytes)  # key -> _Entry, bounded by the rows' text (+ decoded dicts)
        self._decode_lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(_COUNTERS, 0)  # see stats()
        self._count_lock = threading.Lock()
        self._closed = False

        t = cache_table
        self._select_one = select(t.c.kind, t.c.cost_model_version, t.c.payload, t.c.checksum).where(
            t.c.key == bindparam("key"))
        self._select_many = select(t.c.key, t.c.kind, t.c.cost_model_version, t.c.payload, t.c.checksum).where(
            t.c.key.in_(bindparam("keys", expanding=True)))
        insert = postgresql_insert if self.backend == "postgresql" else sqlite_insert
        dialect = self.engine.dialect
        self._select_one_sql = str(self._select_one.compile(dialect=dialect))
        self._positional = bool(dialect.positional)
        self._driver_error: type[Exception] = dialect.loaded_dbapi.Error
        first_writer_wins = insert(t).on_conflict_do_nothing(index_elements=[t.c.key])
        self._insert = first_writer_wins.returning(t.c.key)
        # SQLite: one executemany of plain tuples, no RETURNING (SQLAlchemy's insertmanyvalues
        # bookkeeping was half the time of storing a cold batch); the row count says whether
        # every row of a chunk was this call's
        self._insert_many: tuple[str, tuple[str, ...]] | None = None
        if self.backend == "sqlite":
            compiled = first_writer_wins.compile(dialect=dialect, column_keys=[c.name for c in t.columns])
            self._insert_many = (str(compiled), tuple(compiled.positiontup or ()))
        self._delete_bad = delete(t).where(t.c.key == bindparam("key"), t.c.checksum == bindparam("checksum"))
        self._create_schema()
        _LIVE.add(self)

    # -- set-up -------------------------------------------------------------------------------
    def _make_engine(self, pool_size: int | None, max_overflow: int | None) -> Engine:
        if self.backend == "postgresql":
            return create_engine(self.url, pool_size=pool_size or 8, max_overflow=max_overflow or 24,
                                 pool_timeout=60, pool_recycle=3600)
        if self._memory_db:
            return create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
        engine = create_engine(self.url, pool_size=pool_size or 16, max_overflow=max_overflow or 64, pool_timeout=60,
                               connect_args={"timeout": self._busy_timeout_s, "check_same_thread": False})
        busy_ms = int(self._busy_timeout_s * 1000)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            try:
                cur.execute(f"PRAGMA busy_timeout={busy_ms}")
                mode = cur.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    log.warning("SQLite cache %s is not in WAL mode (journal_mode=%s)", self.url.database, mode)
                cur.execute("PRAGMA synchronous=NORMAL")
            finally:
                cur.close()

        return engine

    def _create_schema(self) -> None:
        def create(conn: Connection) -> None:
            if self.backend == "postgresql":
                # CREATE ... IF NOT EXISTS races between servers in PostgreSQL (catalog unique
                # violations): serialize schema creation with a transaction-scoped advisory lock.
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SCHEMA_LOCK})
            conn.execute(CreateTable(cache_table, if_not_exists=True))
            for index in sorted(cache_table.indexes, key=lambda i: str(i.name)):
                conn.execute(CreateIndex(index, if_not_exists=True))

        self._write_tx(create)

    def _after_fork(self) -> None:
        self.engine.dispose(close=False)
        self._lru.after_fork()
        self._decode_lock = threading.Lock()
        self._count_lock = threading.Lock()
        if self._memory_db:
            self._serial = threading.RLock()

    # -- retries ------------------------------------------------------------------------------
    def _retry(self, fn: Any, *, attempts: int = 6) -> Any:
        """Run ``fn`` again on transient failures: a dropped connection, a PostgreSQL deadlock or
        serialization failure, or SQLite still locked after its busy timeout; with ``patience_s``,
        also a database that is down, until it is back or the patience is spent."""
        self._check_open()
        delay = 0.01
        end = None if self._patience_s is None else time.monotonic() + self._patience_s
        attempt = 0
        while True:
            try:
                with self._serial:
                    return fn()
            except DBAPIError as exc:
                attempt += 1
                patient = end is not None and time.monotonic() < end and is_connection_error(exc)
                if not patient and (attempt >= attempts or not self._transient(exc)):
                    raise
                log.info("cache: retrying after transient database error: %s", exc.orig)
                self._count(retries=1)
                time.sleep(delay)
                delay = min(delay * 4, 1.0)

    def _transient(self, exc: DBAPIError) -> bool:
        if exc.connection_invalidated:
            return True
        if getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES:
            return True
        return isinstance(exc, OperationalError) and "locked" in str(exc.orig).lower()

    def _write_tx(self, fn: Any) -> Any:
        def run() -> Any:
            with self.engine.begin() as conn:
                return fn(conn)

        return self._retry(run)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the cost cache is closed")

    # -- reads --------------------------------------------------------------------------------
    def get(self, key: str, *, copy: bool = True) -> dict[str, Any] | None:
        """The payload stored under ``key``, or None.

        With ``copy`` (the default) the caller gets a fresh dict of its own. ``copy=False``
        returns the dict kept in the in-process LRU, decoded once and shared by every caller:
        much faster for large payloads (a network's report is ~30 KB of JSON), and the caller
        must treat it as read-only.
        """
        self._check_open()
        entry = self._lru.get(key)
        if entry is not None:
            with self._count_lock:  # inline: the hottest line of the service
                counts = self._counts
                counts["hits"] += 1
                counts["memory_hits"] += 1
            return json.loads(entry.text) if copy else self._shared(key, entry)
        row = self._read_one(key)
        if row is None:
            self._count(misses=1)
            return None
        kind, version, payload, checksum = row
        if not self._verified(key, kind, version, payload, checksum):
            self._count(misses=1)
            return None
        self._count(hits=1)
        return self._remember(key, payload, copy)

    def _remember(self, key: str, payload: str, copy: bool) -> dict[str, Any]:
        entry = self._keep(key, payload)
        if copy or entry is None:
            return json.loads(payload)
        return self._shared(key, entry)

    def _keep(self, key: str, text: str) -> _Entry | None:
        """Remember a row (rows are immutable: an entry already kept, which may hold a decoded
        dict, stays); None when it does not fit or the memory LRU is off."""
        return self._lru.keep(key, _Entry(text), len(text))

    def _shared(self, key: str, entry: _Entry) -> dict[str, Any]:
        """The decoded dict of a kept row, decoded once and then shared by every caller."""
        parsed = entry.parsed
        if parsed is None:
            decoded = json.loads(entry.text)
            with self._decode_lock:
                if entry.parsed is None:
                    entry.parsed = decoded
                    self._lru.resize(key, entry, len(entry.text) * (1 + _DECODED_FACTOR))
                parsed = entry.parsed
        return parsed

    def _read_one(self, key: str) -> Any:
        """One row by key on a pooled DBAPI connection with the statement compiled once.

        This skips SQLAlchemy's per-execute bookkeeping (about 4x faster on SQLite). On
        PostgreSQL the read runs in autocommit, one round trip instead of three (BEGIN, SELECT,
        and the pool's ROLLBACK on return); a single SELECT needs no transaction. Autocommit is
        a client-side switch in psycopg and is turned off again before the connection goes back
        to the pool, where writers rely on real transactions. Any driver error invalidates that
        connection and falls back to the retrying Core path.
        """
        try:
            raw = None if self._memory_db else self.engine.raw_connection()
        except DBAPIError:  # no connection now: the retrying Core path below decides
            raw = None
        if raw is not None:
            try:
                driver = raw.driver_connection if self.backend == "postgresql" else None
                if driver is not None:
                    driver.autocommit = True
                cur = raw.cursor()
                try:
                    cur.execute(self._select_one_sql, (key,) if self._positional else {"key": key})
                    return cur.fetchone()
                finally:
                    cur.close()
                    if driver is not None:
                        driver.autocommit = False
            except self._driver_error as exc:
                log.info("cache: read failed (%s); reconnecting", exc)
                raw.invalidate()
                self._count(retries=1)
            finally:
                raw.close()

        def read() -> Any:
            with self.engine.connect() as conn:
                return conn.execute(self._select_one, {"key": key}).first()

        return self._retry(read)

    def get_many(self, keys: Iterable[str], *, copy: bool = True) -> dict[str, dict[str, Any]]:
        """``{key: payload}`` for every key that is stored; absent keys are simply missing.
        ``copy`` as in :meth:`get`."""
        self._check_open()
        out: dict[str, dict[str, Any]] = {}
        todo: list[str] = []
        memory_hits = 0
        for key in dict.fromkeys(keys):
            entry = self._lru.get(key)
            if entry is not None:
                out[key] = json.loads(entry.text) if copy else self._shared(key, entry)
                memory_hits += 1
            else:
                todo.append(key)
        db_hits = 0
        for start in range(0, len(todo), _READ_CHUNK):
            chunk = todo[start:start + _READ_CHUNK]

            def read(chunk: list[str] = chunk) -> list[Any]:
                with self.engine.connect() as conn:
                    return list(conn.execute(self._select_many, {"keys": chunk}))

            for key, kind, version, payload, checksum in self._retry(read):
                if self._verified(key, kind, version, payload, checksum):
                    out[key] = self._remember(key, payload, copy)
                    db_hits += 1
        self._count(hits=memory_hits + db_hits, memory_hits=memory_hits, misses=len(todo) - db_hits)
        return out

    def _verified(self, key: str, kind: str, version: str, payload: str, checksum: str) -> bool:
        if row_checksum(key, kind, version, payload) == checksum:
            return True
        self._count(corrupt=1)
        log.error("cache: row %s failed its checksum; treating it as a miss and deleting it", key)
        with contextlib.suppress(DBAPIError):
            self._write_tx(lambda conn: conn.execute(self._delete_bad, {"key": key, "checksum": checksum}))
        return False

    # -- writes -------------------------------------------------------------------------------
    def put(self, key: str, kind: str, payload: Mapping[str, Any], version: str) -> bool:
        """Store one row; True if this call wrote it, False if the key was already stored."""
        return self.put_many([CacheRow(key, kind, payload, version)]) == 1

    def put_many(self, rows: Iterable[CacheRow | tuple | Mapping[str, Any]]) -> int:
        """Store rows (``CacheRow``s, ``(key, kind, payload, version)`` tuples or dicts with
        those names); returns how many were new. Each chunk of rows is one transaction; rows
        whose key is already stored are left as they are (the first writer wins)."""
        return self.put_encoded(encode_rows(rows))

    def put_encoded(self, params: Iterable[dict[str, Any]]) -> int:
        """Store rows already encoded by :func:`encode_rows` (possibly in another process, so the
        JSON and checksum work of a large batch runs in parallel and one writer stores it all)."""
        unique: dict[str, dict[str, Any]] = {}
        for p in params:
            unique.setdefault(p["key"], p)
        ordered = [unique[k] for k in sorted(unique)]  # one lock order for every writer: no deadlocks
        written = 0
        for start in range(0, len(ordered), _WRITE_CHUNK):
            chunk = ordered[start:start + _WRITE_CHUNK]
            if self._insert_many is not None:
                sql, names = self._insert_many
                tuples = [tuple([p[n] for n in names]) for p in chunk]
                count = self._write_tx(lambda conn, sql=sql, tuples=tuples: conn.exec_driver_sql(sql, tuples).rowcount)
                # all or nothing for the LRU: when another writer stored some of these rows first,
                # which ones is unknown here, and the next read takes the stored rows (the truth)
                if count == len(chunk):
                    for p in chunk:
                        self._keep(p["key"], p["payload"])
                written += count
                continue
            inserted = self._write_tx(lambda conn, chunk=chunk: {r[0] for r in conn.execute(self._insert, chunk)})
            for p in chunk:
                if p["key"] in inserted:
                    # only rows this call wrote: after a lost race the stored row is the truth
                    self._keep(p["key"], p["payload"])
            written += len(inserted)
        self._count(written=written, duplicate=len(ordered) - written)
        return written

    # -- statistics and lifecycle -------------------------------------------------------------
    def _count(self, **deltas: int) -> None:
        with self._count_lock:
            counts = self._counts
            for name, n in deltas.items():
                counts[name] += n

    def stats(self) -> dict[str, Any]:
        """Counts for ``cost-oracle cache stats`` and the CacheStats RPC.

        Keys: ``backend`` ("sqlite" | "postgresql"), ``url`` (password hidden), ``table``,
        ``schema_version``, ``rows`` (total), ``rows_by_kind``, ``rows_by_version``, ``size_bytes``
        (database file + WAL, or the PostgreSQL table with indexes; None when unknown), and this
        process's counters since opening: ``hits``, ``misses``, ``memory_hits`` (hits served by
        the in-process LRU), ``memory_entries``, ``memory_bytes``, ``written``, ``duplicate``
        (writes that found the key already stored), ``corrupt`` (rows that failed their checksum),
        ``retries`` (operations repeated after a transient database error).
        """
        t = cache_table

        def read() -> tuple[list[Any], list[Any], int | None]:
            with self.engine.connect() as conn:
                by_kind = list(conn.execute(select(t.c.kind, func.count()).group_by(t.c.kind)))
                by_version = list(conn.execute(select(t.c.cost_model_version, func.count())
                                               .group_by(t.c.cost_model_version)))
                return by_kind, by_version, self._size_bytes(conn)

        by_kind, by_version, size = self._retry(read)
        with self._count_lock:
            counts = dict(self._counts)
        return {
            "backend": self.backend,
            "url": self.url.render_as_string(hide_password=True),
            "table": CACHE_TABLE,
            "schema_version": SCHEMA_VERSION,
            "rows": sum(n for _, n in by_kind),
            "rows_by_kind": {k: n for k, n in sorted(by_kind)},
            "rows_by_version": {v: n for v, n in sorted(by_version)},
            "size_bytes": size,
            "hits": counts.get("hits", 0),
            "misses": counts.get("misses", 0),
            "memory_hits": counts.get("memory_hits", 0),
            "memory_entries": len(self._lru),
            "memory_bytes": self._lru.bytes,
            "written": counts.get("written", 0),
            "duplicate": counts.get("duplicate", 0),
            "corrupt": counts.get("corrupt", 0),
            "retries": counts.get("retries", 0),
        }

    def _size_bytes(self, conn: Connection) -> int | None:
        if self.backend == "postgresql":
            return int(conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": CACHE_TABLE}).scalar_one())
        if self._memory_db:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            return int(pages) * int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
        path = Path(str(self.url.database))
        return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())

    def prune(self, *, kind: str | None = None, version: str | None = None, older_than_s: float | None = None,
              everything: bool = False, dry_run: bool = False) -> int:
        """Delete the rows matching every criterion given (``kind``; ``version``: rows written under
        that version, e.g. one a new cost model made unreachable, see ``stats()["rows_by_version"]``;
        ``older_than_s``: written that long ago or more), or all rows with ``everything``. Returns the rows deleted
        (with ``dry_run``: that would be). Raises ValueError when no criterion is given."""
        if not everything and kind is None and version is None and older_than_s is None:
            raise ValueError("name what to prune (kind, version, age) or ask for everything")
        t = cache_table
        where = []
        if kind is not None:
            where.append(t.c.kind == kind)
        if version is not None:
            where.append(t.c.cost_model_version == version)
        if older_than_s is not None:
            where.append(t.c.created_at <= time.time() - older_than_s)
        self._check_open()

        def run(conn: Connection) -> int:
            if dry_run:
                return int(conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one())
            return int(conn.execute(delete(t).where(*where)).rowcount or 0)

        n = self._write_tx(run)
        if not dry_run:
            self._lru.clear()  # no deleted row may still be served from memory
        return n

    def iter_rows(self, kind: str | None = None, batch: int = 1000) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
        """Every verified row as (key, kind, version, payload), for maintenance and checks."""
        t = cache_table
        stmt = select(t.c.key, t.c.kind, t.c.cost_model_version, t.c.payload, t.c.checksum).order_by(t.c.key)
        if kind is not None:
            stmt = stmt.where(t.c.kind == kind)
        last = ""
        while True:
            def read(last: str = last) -> list[Any]:
                with self.engine.connect() as conn:
                    return list(conn.execute(stmt.where(t.c.key > last).limit(batch)))

            rows = self._retry(read)
            for key, k, version, payload, checksum in rows:
                if self._verified(key, k, version, payload, checksum):
                    yield key, k, version, json.loads(payload)
            if len(rows) < batch:
                return
            last = rows[-1][0]

    def close(self) -> None:
        """Release every pooled connection (SQLite checkpoints its WAL when the last one closes)."""
        if not self._closed:
            self._closed = True
            self.engine.dispose()
            _LIVE.discard(self)

    def __enter__(self) -> CostCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CostCache({self.url.render_as_string(hide_password=True)!r})"
