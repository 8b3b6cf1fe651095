"""``cost-oracle calibrate``: measure (or fetch cached) a device's peak FLOP/s and memory bandwidth.

The ceilings feed the roofline latency prediction; they are cached with the device fingerprint,
so this runs once per device, dtype and thread count (``--refresh`` measures again).
"""

from __future__ import annotations

import argparse
from typing import Any

from cost_oracle.client.cli._common import add_target_args, emit_json, human, open_oracle, table


def register(sub: Any) -> None:
    p = sub.add_parser("calibrate", help="measure a device's peak FLOP/s and memory bandwidth (cached)",
                       description=__doc__)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    p.add_argument("--dtype", default="float32", help="float32 | float16 | bfloat16")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: usable cores)")
    p.add_argument("--refresh", action="store_true", help="measure again even if cached")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_target_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_oracle(args) as oracle:
        cal = oracle.calibrate(device=args.device, dtype=args.dtype, threads=args.threads, refresh=args.refresh)
    if args.json:
        emit_json(cal)
        return 0
    rows = [
        ("device", cal.get("device")),
        ("dtype", cal.get("dtype")),
        ("threads", cal.get("threads")),
        ("peak FLOP/s", human(round(float(cal.get("peak_flops", 0.0))))),
        ("bandwidth B/s", human(round(float(cal.get("bandwidth_bytes_per_s", 0.0))))),
        ("overhead us/op", human(1e6 * float(cal.get("overhead_s_per_op", 0.0)))),
        ("cached", cal.get("cached")),
    ]
    table(rows, ("figure", "value"))
    return 0
