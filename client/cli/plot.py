"""``cost-oracle plot``: a sweep's cost scatter and Pareto front as a PNG.

From a saved sweep (``cost-oracle sweep ... --format json > s.json``)::

    cost-oracle plot --input s.json --x macs --y params --out front.png

or by running the sweep (same grid and budget flags as ``sweep``)::

    cost-oracle plot fasternet --n-div 2,4,8 --mlp-ratio 1,2,3 --x flops --y memory_access --out front.png
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cost_oracle.client.cli._common import UsageError, parse_json, read_text
from cost_oracle.client.cli.spaces import add_space_args, space_to_dict
from cost_oracle.client.cli.sweep import add_sweep_options, run_sweep


def register(sub: Any) -> None:
    p = sub.add_parser("plot", help="draw a sweep's cost scatter and Pareto front to a PNG",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_space_args(p, required=False)
    add_sweep_options(p)
    p.add_argument("--input", metavar="FILE", help="a sweep's JSON output ('-' = stdin) instead of running one")
    p.add_argument("--x", default="macs", help="x axis: macs, flops, params, memory_access, peak_activation, "
                                               "activations, arithmetic_intensity, latency (default macs)")
    p.add_argument("--y", default="params", help="y axis (default params)")
    p.add_argument("--log", action="store_true", help="log-log axes")
    p.add_argument("--title", default=None, help="the plot's title (default: the space, its size and the budget)")
    p.add_argument("--labels", action="store_true",
                   help="label every point with its index (default: only the front's, by their coordinates)")
    p.add_argument("--json", action="store_true", help="print what was drawn (counts, front indices) as JSON")
    p.add_argument("--out", "-o", required=True, metavar="FILE.png",
                   help="where to write the PNG; FILE.csv beside it lists every drawn point (index, label, x, y)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cost_oracle.client.plot import axis_name, plot_sweep

    try:  # before any sweep runs: a missing optional dependency is said first, with its fix
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("plot", "needs matplotlib, an optional dependency: install the 'plot' extra "
                                 "(.venv/bin/pip install -e '.[plot]', or pip install matplotlib)") from None

    for flag in ("x", "y"):
        try:
            axis_name(getattr(args, flag))
        except ValueError as exc:
            raise UsageError(f"--{flag}", str(exc)) from None
    if args.input and args.family:
        raise UsageError("--input", "give a sweep FAMILY with grid flags or --input FILE, not both")
    if args.input:
        data = parse_json(read_text(args.input, "--input"), "--input")
        if not isinstance(data, dict) or not isinstance(data.get("points"), list):
            raise UsageError("--input", "must be a sweep's JSON output (cost-oracle sweep ... --format json)")
    elif args.family:
        if "latency_ms" in (axis_name(args.x), axis_name(args.y)) and args.latency == "none":
            args.latency = "auto"
        space, budget, outcome = run_sweep(args)
        data = {"space": space_to_dict(space), "budget": budget.to_dict(), **outcome.to_dict()}
    else:
        raise UsageError("family", "give a sweep FAMILY with grid flags, or --input FILE")
    try:
        drawn = plot_sweep(data, args.out, x=args.x, y=args.y, title=args.title, log=args.log,
                           label_all=args.labels)
    except ValueError as exc:
        raise UsageError("--input" if args.input else "family", str(exc)) from None
    sys.stderr.write(f"wrote {drawn['out']}: {drawn['points']} points, {drawn['feasible']} within budget, "
                     f"Pareto front of {len(drawn['front'])}; every point in {drawn['csv']}\n")
    if args.json:
        sys.stdout.write(json.dumps(drawn, sort_keys=True) + "\n")
    return 0
