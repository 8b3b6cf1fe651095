"""``cost-oracle cache stats`` and ``cache prune``: what the oracle's cache holds, and removing rows.

``stats`` reads two levels: the oracle's answers (``hits``/``misses``: requests answered from
the cache, its in-process memos included) and the store's own reads (``counters[hits]`` etc.:
lookups that reached the cache store, memory LRU or database). A warm server answers many
requests from its memos, so the first is larger. ``prune`` deletes rows by kind, cost-model
version or age (``--dry-run`` counts them first); it works on the database directly
(``--db-url``), never through a server: a running server keeps what it has memoized until restarted.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cost_oracle.client.cli._common import UsageError, add_target_args, emit_json, human, open_oracle, table


def register(sub: Any) -> None:
    p = sub.add_parser("cache", help="the persistent cache (stats)", description=__doc__)
    csub = p.add_subparsers(dest="cache_command", metavar="ACTION")
    csub.required = True
    s = csub.add_parser("stats", help="entries by kind, hits, misses, writes, hit rate")
    s.add_argument("--json", action="store_true", help="print JSON")
    add_target_args(s)
    s.set_defaults(func=run_stats)
    pr = csub.add_parser("prune", help="delete rows by kind, version or age (on --db-url, not through a server)")
    pr.add_argument("--kind", help="only rows of this kind (cost, latency, ...; see cache stats entries[...])")
    pr.add_argument("--version", help="only rows written under this cost-model version (see cache stats --json "
                                      "rows_by_version)")
    pr.add_argument("--older-than", type=float, metavar="DAYS", help="only rows written at least DAYS ago")
    pr.add_argument("--all", action="store_true", help="every row (needs no other criterion)")
    pr.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    pr.add_argument("--db-url", help="the cache database (default: the oracle's, $COST_ORACLE_DB_URL)")
    pr.set_defaults(func=run_prune)


#: what each headline figure of ``cache stats`` counts (the table's third column)
_EXPLAIN = {
    "hits": "requests answered from the cache (memos included), this process",
    "misses": "requests computed and stored, this process",
    "writes": "rows this process wrote",
    "hit_rate": "hits / (hits + misses)",
    "entries": "rows in the database, every process's",
    "counters[hits]": "lookups that reached the store (memory LRU or database)",
    "counters[misses]": "store lookups that found no row",
    "counters[memory_hits]": "store lookups served by its memory LRU",
}


def run_stats(args: argparse.Namespace) -> int:
    with open_oracle(args) as oracle:
        stats = oracle.cache_stats()
    if args.json:
        emit_json(stats)
        return 0
    rows: list[tuple[str, Any]] = [(k, stats[k]) for k in ("backend", "entries", "hits", "misses", "writes",
                                                           "hit_rate") if k in stats]
    rows.extend((f"entries[{kind}]", n) for kind, n in sorted((stats.get("entries_by_kind") or {}).items()))
    rows.extend((f"counters[{k}]", v) for k, v in sorted((stats.get("counters") or {}).items()))
    queue = stats.get("queue") or {}
    rows.extend((f"queue.{k}", v) for k, v in queue.items() if not isinstance(v, dict))
    table([(k, v if isinstance(v, str) else human(v), _EXPLAIN.get(k, "")) for k, v in rows],
          ("stat", "value", "what it counts"))
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from cost_oracle.server.cache import CostCache

    if args.older_than is not None and not args.older_than >= 0:
        raise UsageError("--older-than", f"must be a number of days >= 0, got {args.older_than}")
    if not (args.all or args.kind or args.version or args.older_than is not None):
        raise UsageError("prune", "name what to delete: --kind, --version, --older-than DAYS, or --all")
    with CostCache(args.db_url) as cache:
        n = cache.prune(kind=args.kind, version=args.version,
                        older_than_s=None if args.older_than is None else args.older_than * 86400.0,
                        everything=args.all, dry_run=args.dry_run)
        left = cache.stats().get("rows", 0)
    verb = "would delete" if args.dry_run else "deleted"
    sys.stdout.write(f"{verb} {n} row(s); {left} in the cache now\n")
    return 0
