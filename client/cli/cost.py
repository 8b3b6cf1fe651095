"""``cost-oracle cost NAME | --spec FILE``: every cost of one candidate.

``--json`` prints the engine's ``CostReport.to_dict()`` keys plus ``cache_hit``,
``cost_model_version`` and ``cache_key`` (and ``latency`` with ``--latency``), identical
in-process and with ``--server``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from client.cli._common import (
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
    candidate = candidate_from_args(args)
    with open_oracle(args) as oracle:
        result = oracle.cost(candidate, in_channels=args.in_channels, **context_kwargs(args))
    if args.json:
        emit_json(result.to_dict())
    else:
        print_summary(result.to_dict())
    return 0


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
                     f"runs {lat['runs']}]"))
    table([(k, v if isinstance(v, str) else human(v)) for k, v in rows], ("figure", "value"), out)
    if d.get("unknown_ops"):
        out.write(f"unknown ops (not counted): {d['unknown_ops']}\n")
