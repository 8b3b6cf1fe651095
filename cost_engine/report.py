"""The cost report of one candidate in one context, and its JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cost_engine.ops import Shape
from cost_engine.summary import Summary

#: Bump when any formula, expansion or convention changes: cached rows of another version are
#: never served.
COST_MODEL_VERSION = "1"

DTYPE_BYTES: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


@dataclass
class CostReport:
    """Every static cost of a candidate. Memory figures are in bytes of ``dtype``."""

    candidate: str
    batch_size: int
    input_shape: Shape
    output_shape: Shape
    dtype: str
    summary: Summary
    #: parameter elements of a traced module that its forward never read (an eval-mode aux head);
    #: not in ``params``. Always 0 for a spec.
    unused_params: int = 0
    #: tool -> why its view of a traced module may differ from the tool's print (absent: exact;
    #: always empty for a spec, whose views tests/test_views.py holds to the real tools)
    view_caveats: dict[str, str] = field(default_factory=dict)

    @property
    def itemsize(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def params(self) -> int:
        return self.summary.totals.params

    @property
    def buffers(self) -> int:
        return self.summary.totals.buffers

    @property
    def macs(self) -> int:
        return self.summary.totals.macs

    @property
    def flops(self) -> int:
        return self.summary.totals.flops

    @property
    def memory_access_elements(self) -> int:
        return self.summary.totals.read + self.summary.totals.written

    @property
    def memory_access_bytes(self) -> int:
        return self.memory_access_elements * self.itemsize

    @property
    def memory_access_bytes_fused(self) -> int:
        return self.summary.fused_access * self.itemsize

    @property
    def peak_activation_bytes(self) -> int:
        return self.summary.peak_elements * self.itemsize

    @property
    def activations(self) -> int:
        return self.summary.activations

    @property
    def arithmetic_intensity(self) -> float:
        return self.flops / self.memory_access_bytes if self.memory_access_bytes else 0.0

    @property
    def unknown_ops(self) -> dict[str, int]:
        return dict(self.summary.unknown)

    @property
    def complete(self) -> bool:
        """False when an op without a formula may carry MACs: the totals are then a lower bound
        (``unknown_ops`` names the ops and how often each ran). Always True for a spec."""
        return not self.summary.lower_bound

    def by_module(self) -> dict[str, dict[str, int]]:
        """Per innermost module path; the parts add up to the totals."""
        return {m: c.to_dict(self.itemsize) for m, c in self.summary.by_module.items()}

    def by_op_type(self) -> dict[str, dict[str, int]]:
        return {k: c.to_dict(self.itemsize) for k, c in sorted(self.summary.by_kind.items())}

    def to_dict(self, *, breakdowns: bool = True) -> dict[str, Any]:
        """The report as plain JSON data. Without ``breakdowns``, ``by_module`` and ``views`` are
        left out: they are the two parts whose size and cost grow with every op, they are derived
        from the same op records, and a search loop that reads the figures never needs them (the
        oracle stores reports without them and re-derives them from memoized blocks on request)."""
        out: dict[str, Any] = {
            "candidate": self.candidate,
            "batch_size": self.batch_size,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "dtype": self.dtype,
            "params": self.params,
            "buffers": self.buffers,
            "macs": self.macs,
            "flops": self.flops,
            "memory_access_elements": self.memory_access_elements,
            "memory_access_bytes": self.memory_access_bytes,
            "memory_access_bytes_fused": self.memory_access_bytes_fused,
            "peak_activation_bytes": self.peak_activation_bytes,
            "activations": self.activations,
            "arithmetic_intensity": self.arithmetic_intensity,
            "op_count": self.summary.totals.ops,
            "complete": self.complete,
            "unknown_ops": self.unknown_ops,
            "by_op_type": self.by_op_type(),
        }
        if self.unused_params:
            out["unused_params"] = self.unused_params
        if breakdowns:
            out.update(self.breakdowns())
        out["cost_model_version"] = COST_MODEL_VERSION
        return out

    def breakdowns(self, by_module: bool = True) -> dict[str, Any]:
        """``by_module`` (unless told not to) and ``views``: what ``to_dict(breakdowns=False)`` leaves out."""
        out: dict[str, Any] = {"by_module": self.by_module()} if by_module else {}
        views: dict[str, dict[str, Any]] = {tool: dict(v) for tool, v in sorted(self.summary.views.items())}
        if self.unused_params or self.view_caveats:
            from cost_engine.views import mark_traced_views

            mark_traced_views(views, self.unused_params, self.view_caveats)
        out["views"] = views
        return out
