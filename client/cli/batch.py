"""``cost-oracle batch FILE``: cost many candidates (a JSON list, or JSON lines of names / specs).

One result per candidate, in input order: a report, or that candidate's own error (one bad
candidate does not fail the others). ``--format jsonl`` (default) prints one JSON object per
line as results arrive; ``json`` one list; ``csv`` / ``table`` the scalar figures. Each failed
candidate is also named on stderr (``error: candidates[3].network...kernel_size: ...``) and the
exit code is 1 when any failed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cost_oracle.client.cli._common import (
    EXIT_FAILED,
    Progress,
    add_context_args,
    add_progress_args,
    add_target_args,
    context_kwargs,
    emit_json,
    iter_lines,
    load_candidates,
    open_oracle,
    table,
    write_csv,
)
from cost_oracle.client.types import CostResult, ItemError

SCALARS = ("candidate", "batch_size", "dtype", "macs", "flops", "params", "memory_access_bytes",
           "memory_access_bytes_fused", "peak_activation_bytes", "activations", "arithmetic_intensity", "cache_hit")


def register(sub: Any) -> None:
    p = sub.add_parser("batch", help="cost many candidates from a file (JSON list or JSON lines)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE",
                   help="candidates: JSON list or JSON lines of names / spec objects; '-' = stdin")
    p.add_argument("--format", choices=("jsonl", "json", "csv", "table"), default="jsonl", help="output format")
    p.add_argument("--chunk-size", type=int, default=None, help="results per streamed chunk (remote)")
    add_progress_args(p)
    add_context_args(p)
    add_target_args(p)
    p.set_defaults(func=run)


def _row(i: int, r: CostResult | ItemError) -> dict[str, Any]:
    if isinstance(r, ItemError):
        return r.to_dict()
    return {"index": i, **r.to_dict()}


def run(args: argparse.Namespace) -> int:
    candidates = load_candidates(args.file)
    ctx = context_kwargs(args)
    if args.format in ("csv", "table"):
        ctx.setdefault("detail", "scalars")
    progress = Progress("batch", args.progress)
    try:
        with open_oracle(args) as oracle:
            results = oracle.cost_many(candidates, in_channels=args.in_channels, chunk_size=args.chunk_size,
                                       progress=progress.update, **ctx)
    finally:
        progress.close()
    failed = [r for r in results if isinstance(r, ItemError)]
    for err in failed:
        for line in err.lines():
            sys.stderr.write(f"error: {line}\n")
    rows = [_row(i, r) for i, r in enumerate(results)]
    if args.format == "jsonl":
        for line in iter_lines(rows):
            sys.stdout.write(line + "\n")
    elif args.format == "json":
        emit_json(rows)
    else:
        header = ["index", *SCALARS, "latency_ms", "error"]
        flat = [[i, *(_scalar(r, k) for k in SCALARS),
                 r.latency_ms if isinstance(r, CostResult) else None,
                 "; ".join(r.lines()) if isinstance(r, ItemError) else ""]
                for i, r in enumerate(results)]
        (write_csv if args.format == "csv" else table)(flat, header)
    return EXIT_FAILED if failed else 0


def _scalar(r: CostResult | ItemError, key: str) -> Any:
    if isinstance(r, ItemError):
        return None
    v = getattr(r, key)
    return v
