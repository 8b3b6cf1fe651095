"""``cost-oracle cache stats``: rows by kind, hits, misses and writes of the oracle's cache."""

from __future__ import annotations

import argparse
from typing import Any

from client.cli._common import add_target_args, emit_json, human, open_oracle, table


def register(sub: Any) -> None:
    p = sub.add_parser("cache", help="the persistent cache (stats)", description=__doc__)
    csub = p.add_subparsers(dest="cache_command", metavar="ACTION")
    csub.required = True
    s = csub.add_parser("stats", help="entries by kind, hits, misses, writes, hit rate")
    s.add_argument("--json", action="store_true", help="print JSON")
    add_target_args(s)
    s.set_defaults(func=run_stats)


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
    table([(k, v if isinstance(v, str) else human(v)) for k, v in rows], ("stat", "value"))
    return 0
