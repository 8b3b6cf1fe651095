"""``cost-oracle latency fit``: profile this device's kernels over a search space and fit the
kernel latency model, so that predictions need no measurement afterwards.

The space is what a search will ask about: ``--space ofa:40,fasternet:20,resnet:20`` (members
sampled from the built-in NAS spaces), ``--space builtins`` (every built-in model) or
``--space FILE`` (a JSON list or JSON lines of names and spec objects, the ``batch`` format).
Units are drawn in proportion to how often the space uses them, then re-sampled near the ones
predicted worst (``--adaptive``); ``--networks`` members are measured whole for the overhead
term and the 90% interval. Units and networks already timed on this device are not timed again,
so an interrupted fit resumes. Once fitted for a device and context (threads, batch, dtype,
memory format), predictions that name no method use it (``Latency.method`` = ``kernel``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cost_oracle.client.cli._common import (
    Progress,
    UsageError,
    add_progress_args,
    add_target_args,
    emit_json,
    load_candidates,
    open_oracle,
    table,
)

DEFAULT_SPACE = "ofa:40,fasternet:20,resnet:20"


def register(sub: Any) -> None:
    p = sub.add_parser("latency", help="the learned latency model of a device (fit)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    lsub = p.add_subparsers(dest="latency_command", metavar="ACTION")
    lsub.required = True
    f = lsub.add_parser("fit", help="profile kernels over a space and fit the kernel latency model",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("--space", default=DEFAULT_SPACE,
                   help=f"NAME[:N],... of ofa, fasternet, resnet; 'builtins'; or a candidates FILE "
                        f"(default {DEFAULT_SPACE})")
    f.add_argument("--budget-min", dest="budget_min", type=float, default=None, metavar="MIN",
                   help="wall-clock budget of the profiling in minutes (default: none, --max-units decides)")
    f.add_argument("--max-units", type=int, default=400, help="kernel units to time at most (default 400)")
    f.add_argument("--networks", type=int, default=30,
                   help="space members measured whole (default 30; the 90%% interval is a rank of their "
                        "leave-one-out errors, so fewer than ~20 make it their largest)")
    f.add_argument("--adaptive", type=float, default=0.4,
                   help="share of --max-units re-sampled near the worst-predicted units (default 0.4)")
    f.add_argument("--seed", type=int, default=0, help="sampling seed (space members and units)")
    g = f.add_argument_group("context (the model holds for these)")
    g.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    g.add_argument("--threads", type=int, default=None, help="CPU threads (default: usable cores)")
    g.add_argument("--batch-size", type=int, default=1)
    g.add_argument("--dtype", default="float32", help="float32 | float16 | bfloat16")
    g.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    f.add_argument("--json", action="store_true", help="print the fitted model's summary as JSON")
    add_progress_args(f)
    add_target_args(f)
    f.set_defaults(func=run_fit)


def space_candidates(text: str, seed: int = 0) -> list[Any]:
    """The candidates ``--space`` names (see the module docstring)."""
    from cost_engine.families.sampled import SPACES, sample_space

    text = text.strip()
    if text == "builtins":
        from cost_engine.families import BUILTINS  # the package registers every built-in on import

        return sorted(BUILTINS)
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.partition(":")[0] in SPACES for p in parts):
        if ":" in text or "," in text:
            raise UsageError("--space", f"unknown space in {text!r}: name {', '.join(SPACES)} (NAME[:N],...), "
                                        "builtins, or a candidates file")
        return load_candidates(text, "--space")
    groups: list[list[Any]] = []
    for i, part in enumerate(parts):
        name, _, count = part.partition(":")
        try:
            n = int(count) if count else 30
        except ValueError:
            raise UsageError("--space", f"{part!r}: the count after ':' must be an integer") from None
        if not 1 <= n <= 10_000:
            raise UsageError("--space", f"{part!r}: the count must be in [1, 10000], got {n}")
        groups.append([s.to_dict() for s in sample_space(name, n, seed + i)])
    # interleaved, so that the first --networks members (measured whole) come from every space
    return [g[i] for i in range(max(map(len, groups))) for g in groups if i < len(g)]


class _Phases:
    """One progress bar per phase of the fit (networks measured whole, then units)."""

    def __init__(self, enabled: bool | None):
        self.enabled = enabled
        self.phase = ""
        self.bar: Progress | None = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase:
            self.close()
            self.phase = phase
            if phase in ("networks", "units"):
                self.bar = Progress(f"fit: timing {phase}", self.enabled, unit=phase[:-1])
        if self.bar is not None and total:
            self.bar.update(done, total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_fit(args: argparse.Namespace) -> int:
    candidates = space_candidates(args.space, args.seed)
    if not candidates:
        raise UsageError("--space", "names no candidates")
    ctx: dict[str, Any] = {"device": args.device, "threads": args.threads, "batch_size": args.batch_size,
                           "dtype": args.dtype,
                           "memory_format": "channels_last" if args.channels_last else "contiguous"}
    phases = _Phases(args.progress)
    try:
        with open_oracle(args) as oracle:
            model = oracle.fit_latency_model(candidates, max_units=args.max_units, networks=args.networks,
                                             budget_minutes=args.budget_min, adaptive=args.adaptive, seed=args.seed,
                                             progress=phases, **ctx)
    finally:
        phases.close()
    if args.json:
        emit_json(model)
        return 0
    rounds = model.get("rounds") or []
    rows = [
        ("space", f"{len(candidates)} candidates, {model['distinct_units_in_space']} distinct kernel units"),
        ("timed units", f"{model['units']} ({model['unit_measurements']} new this fit)"),
        ("networks measured", f"{model['networks']} ({model['network_measurements']} new this fit)"),
        ("profiling", f"{model['profiling_s'] / 60:.1f} min" + (" (stopped by the budget)"
                                                                 if model.get("stopped_by_budget") else "")),
        ("90% interval", f"+-{100 * model['interval_90_rel']:.1f}%"),
        ("kernel types", ", ".join(model.get("types") or [])),
        ("adaptive rounds", "; ".join(f"median |log err| {r['median_abs_log_error']:.3f} on "
                                      f"{r['validation_units']}, +{r['resampled']} near "
                                      f"{'/'.join(r['worst_types'])}" for r in rounds) or "none"),
    ]
    table(rows, ("kernel model", "value"))
    sys.stderr.write("predictions on this device and context now use it (latency method 'default' or 'kernel')\n")
    return 0
