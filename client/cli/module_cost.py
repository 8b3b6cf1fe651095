"""``cost-oracle cost --module pkg.mod:factory``: count the user's own ``nn.Module`` by tracing it.

A model the spec format cannot describe is counted by the tracer (``cost_engine.analyze_module``),
in this process: the module is imported from the user's own command line (the current directory
is importable, as with ``python -m``), never from a request, and never sent to a server (nothing
a client sends is unpickled). ``factory`` is a module attribute: an ``nn.Module`` instance, or a
callable that returns one when called with no arguments (a class, ``functools.partial``, a
function).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any

from cost_oracle.client.cli._common import UsageError, emit_json

__all__ = ["INT_DTYPES", "load_module", "parse_inputs", "run_module"]

#: dtypes an input may name besides the context's floating one (token ids, masks)
INT_DTYPES = ("int64", "int32", "bool")


def load_module(ref: str) -> Any:
    """``pkg.mod:attr`` (``attr`` may be dotted) as an ``nn.Module`` instance."""
    from torch import nn

    path, sep, attr = ref.partition(":")
    if not sep or not path or not attr:
        raise UsageError("--module", f"must be MODULE:FACTORY (e.g. mypkg.models:build), got {ref!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(path)
    except ImportError as exc:
        raise UsageError("--module", f"cannot import {path!r}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError("--module", f"{path!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, nn.Module):
        if not callable(obj):
            raise UsageError("--module", f"{ref} is a {type(obj).__name__}, not an nn.Module or a factory")
        try:
            obj = obj()
        except Exception as exc:
            raise UsageError("--module", f"calling {ref}() failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(obj, nn.Module):
            raise UsageError("--module", f"{ref}() returned a {type(obj).__name__}, not an nn.Module")
    return obj


def parse_inputs(values: list[str] | None, batch_size: int, resolution: int | None) -> list[Any]:
    """``--input-shape`` values (``1,3,224,224`` or ``2,16:int64``) as ``analyze_module`` inputs;
    none given: one image batch at the context's batch size and resolution (224 by default)."""
    import torch

    if not values:
        side = resolution or 224
        return [(batch_size, 3, side, side)]
    out: list[Any] = []
    for i, value in enumerate(values):
        dims, _, dtype = value.partition(":")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
        except ValueError:
            shape = ()
        if not shape or any(d < 1 for d in shape):
            raise UsageError("--input-shape", f"input {i}: must be positive integers like 1,3,224,224, got {value!r}")
        if dtype and dtype not in INT_DTYPES:
            raise UsageError("--input-shape", f"input {i}: dtype must be one of {', '.join(INT_DTYPES)} (floating "
                                              f"inputs take --dtype), got {dtype!r}")
        out.append(torch.empty(shape, dtype=getattr(torch, dtype), device="meta") if dtype else shape)
    return out


def run_module(args: argparse.Namespace, print_summary: Any) -> int:
    """Trace and print the report of ``--module``; the figures and their JSON are the engine's."""
    if getattr(args, "server", None):
        raise UsageError("--module", "a module is counted in this process by tracing it; it cannot be sent to "
                                     "--server (give a spec to ask a server)")
    if args.name or args.spec:
        raise UsageError("--module", "give a built-in NAME, --spec FILE or --module, one of them")
    if getattr(args, "latency", "none") not in (None, "none"):
        raise UsageError("--latency", "latency is measured for specs only; --module counts static costs")
    from cost_engine import analyze_module
    from cost_engine.formulas import UnknownOpError

    module = load_module(args.module)
    inputs = parse_inputs(args.input_shape, args.batch_size, getattr(args, "context_resolution", None))
    try:
        report = analyze_module(module, inputs=inputs, dtype=args.dtype, strict=args.strict)
    except UnknownOpError as exc:
        raise UsageError("--strict", str(exc.args[0]) if exc.args else str(exc)) from exc
    d = report.to_dict()
    d["candidate"] = args.module
    if args.json:
        emit_json(d)
        if not d["complete"]:
            sys.stderr.write(partial_warning(d) + "\n")
        return 0
    print_summary(d)
    if d.get("unused_params"):
        sys.stdout.write(f"unused params (never read by the forward, not counted): {d['unused_params']:,}\n")
    if not d["complete"]:
        sys.stdout.write(partial_warning(d) + "\n")
    return 0


def partial_warning(d: dict[str, Any]) -> str:
    return ("WARNING: the totals are a lower bound: ops without a formula may carry MACs: "
            f"{d.get('unknown_ops')} (--strict fails instead)")
