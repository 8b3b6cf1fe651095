"""``cost-oracle cost NAME | --spec FILE | --module PKG.MOD:FACTORY``: every cost of one candidate.

``--json`` prints the engine's ``CostReport.to_dict()`` keys plus ``cache_hit``,
``cost_model_version`` and ``cache_key`` (and ``latency`` with ``--latency``), identical
in-process and with ``--server``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cost_oracle.client.cli._common import (
    Ticker,
    UsageError,
    add_context_args,
    add_target_args,
    context_kwargs,
    emit_json,
    human,
    load_spec_file,
    open_oracle,
    table,
)


def register(sub: Any) -> None:
    p = sub.add_parser("cost", help="every cost of one candidate (a built-in name or a spec file)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", help="built-in model name (see `cost-oracle list`)")
    p.add_argument("--spec", metavar="FILE", help="a candidate spec in JSON ('-' reads stdin)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    g = p.add_argument_group("your own nn.Module, traced in this process")
    g.add_argument("--module", metavar="PKG.MOD:FACTORY",
                   help="import FACTORY from PKG.MOD (an nn.Module, or a callable returning one) and count it")
    g.add_argument("--input-shape", action="append", metavar="SHAPE[:DTYPE]",
                   help="the forward's input, e.g. 1,3,224,224 (repeat for several inputs; 2,16:int64 for token "
                        "ids); default: --batch-size x 3 x --resolution^2")
    g.add_argument("--strict", action="store_true", help="fail on any op without a formula instead of listing it")
    add_context_args(p)
    add_target_args(p)
    p.set_defaults(func=run)


def candidate_from_args(args: argparse.Namespace) -> Any:
    if args.name and args.spec:
        raise UsageError("--spec", "give a built-in NAME or --spec FILE, not both")
    if args.spec:
        return load_spec_file(args.spec)
    if not args.name:
        raise UsageError("name", "give a built-in model NAME or --spec FILE (see `cost-oracle list`)")
    return args.name


def run(args: argparse.Namespace) -> int:
    if args.module:
        from cost_oracle.client.cli.module_cost import run_module

        return run_module(args, print_summary)
    if args.input_shape or args.strict:
        raise UsageError("--input-shape" if args.input_shape else "--strict", "applies to --module only")
    candidate = candidate_from_args(args)
    context = context_kwargs(args)
    mode = context.get("latency")
    device = context.get("device") or "cpu"
    # a first measurement (or a prediction's missing blocks) is seconds of fresh worker sessions:
    # the elapsed time ticks on a terminal instead of looking stuck
    desc = {"measure": f"measuring latency on {device} unless cached",
            "auto": f"latency on {device}: a cached measurement, else a prediction",
            "predict": f"predicting latency on {device} (measuring what the prediction lacks, unless "
                       "--never-measure)"}.get(str(mode))
    with open_oracle(args) as oracle, Ticker(desc or "", enabled=None if desc else False):
        result = oracle.cost(candidate, in_channels=args.in_channels, **context)
    if args.json:
        emit_json(result.to_dict())
    else:
        print_summary(result.to_dict())
    return 0


def noisy_warning(lat: dict[str, Any]) -> str:
    """The warning printed beside a noisy latency figure."""
    med = lat.get("median_ms") or 0.0
    half = ((lat.get("ci_high_ms") or 0.0) - (lat.get("ci_low_ms") or 0.0)) / 2
    rel = half / med if med else float("inf")
    bound = lat.get("noisy_rel_ci") or 0.0
    return (f"WARNING: noisy (95% CI +-{rel:.1%} > +-{bound:.0%}); not final, re-measured when asked again")


def print_summary(d: dict[str, Any], out: Any = None) -> None:
    out = out or sys.stdout
    out.write(f"{d.get('candidate')}  input {'x'.join(map(str, d.get('input_shape', [])))}  {d.get('dtype')}  "
              f"cost model v{d.get('cost_model_version')}  {'cache hit' if d.get('cache_hit') else 'computed'}\n")
    rows = [(k, d[k]) for k in ("macs", "flops", "params", "buffers", "memory_access_bytes",
                                "memory_access_bytes_fused", "peak_activation_bytes", "activations",
                                "arithmetic_intensity", "op_count") if k in d]
    lat = d.get("latency")
    if lat:
        rows.append((f"latency_ms ({lat.get('source')})",
                     f"{lat['median_ms']:.4g} [p10 {lat['p10_ms']:.4g}, p90 {lat['p90_ms']:.4g}, cv {lat['cv']:.3f}, "
                     f"runs {lat['runs']}]" + ("  NOISY" if lat.get("noisy") else "")))
        if lat.get("method") == "paired" and lat.get("ratio"):
            rows.append(("latency paired",
                         f"ratio {lat['ratio']:.4f} to {lat.get('reference')} "
                         f"x anchor {lat.get('anchor_ms', 0):.4g} ms "
                         f"({lat.get('anchor_sessions', 0)} sessions); 95% CI {lat.get('ci_low_ms', 0):.4g}"
                         f"-{lat.get('ci_high_ms', 0):.4g}"))
            rows.append(("latency raw_ms", f"{lat.get('raw_median_ms', 0):.4g} [p10 {lat.get('raw_p10_ms', 0):.4g}, "
                                           f"p90 {lat.get('raw_p90_ms', 0):.4g}] (wall clock, unpaired)"))
        elif lat.get("source") == "predicted":
            level = lat.get("interval_level") or 0.0
            band = (f"; {level:.0%} interval {lat.get('ci_low_ms', 0):.4g}-{lat.get('ci_high_ms', 0):.4g} ms"
                    if level else f"; +-{lat.get('uncertainty_ms', 0):.3g} ms (1 sigma)")
            measured = int(lat.get("measured_for_prediction") or 0)
            rows.append(("latency predicted", f"method {lat.get('method')}{band}"
                         + (f"; {measured} measurement(s) ran first" if measured else "")))
    table([(k, v if isinstance(v, str) else human(v)) for k, v in rows], ("figure", "value"), out)
    if lat and lat.get("noisy"):
        out.write(f"latency {noisy_warning(lat)}\n")
    if d.get("unknown_ops"):
        out.write(f"unknown ops (no formula; their MACs and FLOPs not counted): {d['unknown_ops']}\n")
