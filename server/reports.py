"""What a caller is served: a stored report trimmed to a detail level, and the analysis behind it.

One place for both so the server process, which serves rows from the cache, and the analysis
processes, which serve what they have just computed, answer with the same figures, the same
``sources`` and the same trimming at every detail level; and so an engine failure reads the same
(an error in proto field paths, never a traceback) wherever the analysis ran.
"""

from __future__ import annotations

import logging
from typing import Any

from cost_engine.analyze import analyze
from cost_engine.report import CostReport
from cost_engine.spec.base import SpecError
from cost_oracle.contract.errors import Internal, InvalidArgument, invalid
from cost_oracle.contract.types import Context
from cost_oracle.server.candidates import Prepared

__all__ = ["DETAILS", "FIGURES", "serve_report"]

#: the oracle's one logger name, whichever module logs
log = logging.getLogger("cost_oracle.oracle")

DETAILS = ("full", "totals", "scalars")
#: report keys each detail level leaves out (the cache holds every figure and ``by_op_type``; ``views``
#: and ``by_module`` are re-derived from memoized blocks for the details that show them)
_DROPPED = {"full": (), "totals": ("by_module",), "scalars": ("by_module", "by_op_type", "views", "unknown_ops")}
#: every scalar figure of a report, all computed from the op list
FIGURES = ("params", "buffers", "macs", "flops", "memory_access_elements", "memory_access_bytes",
           "memory_access_bytes_fused", "peak_activation_bytes", "activations", "arithmetic_intensity", "op_count")
_ANALYTIC_SOURCES = dict.fromkeys(FIGURES, "analytic")
_INT_FIGURES = tuple(f for f in FIGURES if f not in ("arithmetic_intensity", "op_count"))  # op_count: < 2^40 ops
INT64_MAX = 2**63 - 1


def serve_report(report: dict[str, Any], label: str, key: str, hit: bool, detail: str) -> dict[str, Any]:
    """A fresh dict for a caller: the full report trimmed to ``detail``, plus how it was served."""
    dropped = _DROPPED[detail]
    out = {k: v for k, v in report.items() if k not in dropped}
    for k in ("by_module", "by_op_type", "views"):
        if k in out:
            out[k] = {m: dict(c) for m, c in out[k].items()}
    if "unknown_ops" in out:
        out["unknown_ops"] = dict(out["unknown_ops"])
    out["input_shape"] = list(out["input_shape"])
    out["output_shape"] = list(out["output_shape"])
    out["candidate"] = label
    out["cache_hit"] = hit
    out["cache_key"] = key
    out["sources"] = dict(_ANALYTIC_SOURCES)
    out["detail"] = detail
    return out


def _reason(item: Prepared, engine_path: str, reason: str) -> str:
    if item.name is not None and engine_path:
        return f"{engine_path}: {reason}"
    return reason


def analyze_item(item: Prepared, ctx: Context) -> CostReport:
    """``analyze(...)`` with engine errors as :class:`OracleError` in proto terms."""
    resolution = item.resolution(ctx)
    if item.is_block and resolution is None:
        raise InvalidArgument("a block candidate needs a resolution",
                              [("context.resolution", "a single block candidate needs context.resolution")])
    try:
        report = analyze(item.spec, batch_size=ctx.batch_size, resolution=resolution, dtype=ctx.dtype,
                         in_channels=item.in_channels)
    except SpecError as exc:
        raise invalid([(item.proto_path(e.path), _reason(item, e.path, e.reason))
                                         for e in exc.errors]) from None
    except Exception as exc:  # an engine bug must not take the server down or leak a traceback
        log.exception("analyze failed for %s", item.label)
        raise Internal(f"the cost engine failed on this candidate: {type(exc).__name__}") from None
    _check_int64(report, item, ctx)
    return report


def _check_int64(report: CostReport, item: Prepared, ctx: Context) -> None:
    """Refuse a report whose counts do not fit the wire's int64, before it is stored or sent.

    The engine counts in exact Python integers, so the check is on the exact totals, not on a
    guess. The totals bound everything else a report carries: a per-op-type or per-module row
    is a part of a non-negative total, and a tool view counts at most what ``flops`` or
    ``params`` count (2 per MAC at most; tests/test_server_hostile.py checks every built-in).
    A 1x1 conv 16384->16384 at batch 4096 and 4096 px is inside every declared bound and has
    2^64 MACs.
    """
    too_big = [(name, value) for name in _INT_FIGURES if abs(value := int(getattr(report, name))) > INT64_MAX]
    if too_big:
        path = item.proto_path("") or "candidate"
        names = ", ".join(name for name, _ in too_big)
        raise InvalidArgument(
            f"counts too large for a 64-bit integer: {names}",
            [(path, f"{name} = {value} exceeds the int64 maximum {INT64_MAX} (batch_size {ctx.batch_size}, "
                    f"input {'x'.join(map(str, report.input_shape))}); make the candidate or the batch smaller")
             for name, value in too_big])
