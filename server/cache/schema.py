"""The cache table, in SQLAlchemy Core, portable between SQLite and PostgreSQL.

One table of immutable rows. The table name carries the schema version: a future change of
layout gets a new table beside this one instead of migrating rows in place, so an old server
and a new one can share a database during a rolling upgrade without reading each other's rows.

Column choices: ``payload`` is JSON *text*, not a JSON/JSONB column — the cache never queries
inside a payload, text is byte-for-byte what was written on both backends, and the checksum is
computed over exactly those bytes. ``created_at`` is Unix seconds as a float so both backends
store the same thing without time-zone conversions.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, MetaData, String, Table, Text

__all__ = ["CACHE_TABLE", "SCHEMA_VERSION", "cache_table", "metadata"]

SCHEMA_VERSION = 1
CACHE_TABLE = f"cost_oracle_cache_v{SCHEMA_VERSION}"

metadata = MetaData()

cache_table = Table(
    CACHE_TABLE,
    metadata,
    # sha256 hex of the canonical request (cost_engine.keys.cache_key)
    Column("key", String(64), primary_key=True),
    # "cost", "latency", "calibration", ...: what the payload is; for statistics and pruning
    Column("kind", String(32), nullable=False),
    Column("cost_model_version", String(64), nullable=False),
    # compact JSON text of the payload dict
    Column("payload", Text, nullable=False),
    # sha256 hex over key, kind, version and payload (see store.row_checksum)
    Column("checksum", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)

Index(f"ix_{CACHE_TABLE}_kind", cache_table.c.kind)
