"""The persistent cache: keys from canonical JSON, immutable rows in SQLite (WAL) or PostgreSQL."""

from cost_engine.keys import cache_key, canonical_json
from cost_oracle.server.cache.store import DB_URL_ENV, CacheRow, CostCache, default_sqlite_path, resolve_url

__all__ = ["DB_URL_ENV", "CacheRow", "CostCache", "cache_key", "canonical_json", "default_sqlite_path",
           "resolve_url"]
