"""``cost-oracle sweep FAMILY [grid flags] [budget flags]``: cost every point of a search space.

Examples::

    cost-oracle sweep efficientnet --phi 0..3 --alpha 1.1..1.3:0.05 --beta 1.05..1.2:0.05 --gamma 1.1..1.2:0.05
    cost-oracle sweep fasternet --n-div 2,4,8 --mlp-ratio 1,2,3 --max-macs 400M --pareto macs,params
    cost-oracle sweep mobilenet_v2 --width 0.5..1.4:0.1 --resolution 128,160,192,224 --format csv

The oracle expands the space (the families' own generators), costs every point, applies the
budget (analytic limits first, latency only for survivors) and marks the Pareto front. Output:
a table (default), JSON (the input of ``cost-oracle plot``) or CSV; a progress bar on stderr.
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
    open_oracle,
    pareto_from_args,
    table,
    write_csv,
)
from cost_oracle.client.cli._results import front_summary, param_names, report_item_errors, verdict_header, verdict_row
from cost_oracle.client.cli.spaces import add_space_args, space_from_args, space_to_dict


def register(sub: Any) -> None:
    p = sub.add_parser("sweep", help="cost every point of a parameterized space under a budget",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_space_args(p)
    add_sweep_options(p)
    p.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format")
    p.add_argument("--feasible-only", action="store_true", help="print only the points within the budget")
    p.set_defaults(func=run)


def add_sweep_options(p: argparse.ArgumentParser) -> None:
    add_budget_args(p)
    add_context_args(p, resolution=False)
    add_target_args(p)
    p.add_argument("--include-specs", action="store_true", help="include each point's generated spec (JSON)")
    add_progress_args(p)


def run_sweep(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(space, budget, outcome) of the sweep the flags describe."""
    space = space_from_args(args)
    budget = budget_from_args(args)
    pareto = pareto_from_args(args)
    ctx = context_kwargs(args)
    ctx.setdefault("detail", "scalars")
    progress = Progress("sweep", args.progress)
    try:
        with open_oracle(args) as oracle:
            outcome = oracle.sweep(space, budget, pareto=pareto, include_reports=True,
                                   include_specs=args.include_specs, progress=progress.update, **ctx)
    finally:
        progress.close()
    return space, budget, outcome


def run(args: argparse.Namespace) -> int:
    space, budget, outcome = run_sweep(args)
    failed = report_item_errors([p.result for p in outcome.points])
    points = [p for p in outcome.points if p.result.feasible or not args.feasible_only]
    if args.format == "json":
        d = outcome.to_dict()
        d["points"] = [p.to_dict() for p in points]
        d = {"space": space_to_dict(space), "budget": budget.to_dict(), "pareto_fields": list(pareto_from_args(args)),
             **d}
        emit_json(d)
        return EXIT_FAILED if failed else 0
    names = param_names(points)
    pareto = pareto_from_args(args)
    rows = [verdict_row(p.result, p.label, p.params, names, pareto=bool(pareto)) for p in points]
    if args.format == "csv":
        write_csv(rows, verdict_header(names))
    else:
        table([r[:1] + r[2:] for r in rows], [h for h in verdict_header(names) if h != "label"])
        collapsed = outcome.total - outcome.distinct
        sys.stdout.write(f"{outcome.total} points ({outcome.distinct} distinct networks, {collapsed} collapsed into "
                         f"an earlier point's), {len(outcome.feasible)} within budget, "
                         f"{front_summary(outcome.pareto_front, pareto)}, "
                         f"{outcome.measurements} latency measurements\n")
    return EXIT_FAILED if failed else 0
