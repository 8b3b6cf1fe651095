"""``cost-oracle filter FILE [budget flags]``: which candidates fit a budget.

Analytic limits (MACs, FLOPs, params, memory access, peak activation memory) are checked first,
for every candidate; the latency limit only for the survivors, by prediction, measuring only
those too close to call (``--measure-all`` measures every survivor). Each candidate gets its
constraint values in the Optuna convention (``actual - limit``, <= 0 is within the limit);
``--pareto macs,latency`` marks the Pareto front of the feasible ones.

    cost-oracle filter candidates.jsonl --max-macs 400M --max-params 6M --pareto macs,params
    cost-oracle filter candidates.jsonl --max-latency-ms 15 --device cpu --format json
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cost_oracle.client.cli._common import (
    EXIT_FAILED,
    Progress,
    add_budget_args,
    add_context_args,
    add_progress_args,
    add_target_args,
    budget_from_args,
    context_kwargs,
    emit_json,
    load_candidates,
    open_oracle,
    pareto_from_args,
    table,
    write_csv,
)
from cost_oracle.client.cli._results import front_summary, report_item_errors, verdict_header, verdict_row


def register(sub: Any) -> None:
    p = sub.add_parser("filter", help="which candidates fit a budget (and their Pareto front)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE",
                   help="candidates: JSON list or JSON lines of names / spec objects; '-' = stdin")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format")
    p.add_argument("--feasible-only", action="store_true", help="print only the candidates within the budget")
    add_budget_args(p)
    add_context_args(p)
    add_target_args(p)
    add_progress_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    candidates = load_candidates(args.file)
    budget = budget_from_args(args)
    pareto = pareto_from_args(args)
    ctx = context_kwargs(args)
    ctx.setdefault("detail", "scalars")
    progress = Progress("filter: costing", args.progress)
    with open_oracle(args) as oracle:
        if progress.enabled:
            # a Filter is one call: cost the candidates first, chunk by chunk with a bar (their
            # rows are then cached, so the filter itself only looks them up)
            analytic = {k: v for k, v in ctx.items() if k not in ("latency", "latency_method", "device",
                                                                           "never_measure")}
            try:
                oracle.cost_many(candidates, chunk_size=256, progress=progress.update, in_channels=args.in_channels,
                                 **analytic)
            finally:
                progress.close()
        outcome = oracle.filter(candidates, budget, pareto=pareto, include_reports=True,
                               in_channels=args.in_channels, **ctx)
    failed = report_item_errors(outcome.results)
    results = [r for r in outcome.results if r.feasible or not args.feasible_only]
    labels = [_label(c, r) for c, r in zip(candidates, outcome.results, strict=True)]
    if args.format == "json":
        d = outcome.to_dict()
        d["results"] = [r.to_dict() for r in results]
        emit_json({"budget": budget.to_dict(), "pareto_fields": list(pareto), **d})
        return EXIT_FAILED if failed else 0
    rows = [verdict_row(r, labels[r.index], pareto=bool(pareto)) for r in results]
    if args.format == "csv":
        write_csv(rows, verdict_header())
    else:
        table(rows, verdict_header())
        sys.stdout.write(f"{len(outcome.results)} candidates, {len(outcome.feasible)} within budget, "
                         f"{front_summary(outcome.pareto_front, pareto)}, "
                         f"{outcome.measurements} latency measurements\n")
    return EXIT_FAILED if failed else 0


def _label(raw: Any, r: Any) -> str:
    """A row's name: the built-in name, or the spec's kind, as the report calls it."""
    if r.report is not None:
        return r.report.candidate
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict):
        return str(raw.get("name") or raw.get("kind") or "spec")
    return "?"
