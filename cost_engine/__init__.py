"""Cost engine: specs, closed-form expansion, one formula registry, tracing, building.

``analyze`` and the spec layer import no torch; ``build`` and ``trace`` import it on use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cost_engine.analyze import analyze
from cost_engine.families import BUILTINS, resolve
from cost_engine.report import COST_MODEL_VERSION, CostReport
from cost_engine.spec import SpecError

if TYPE_CHECKING:
    from torch import nn

    from cost_engine.ops import Op

__all__ = ["BUILTINS", "COST_MODEL_VERSION", "CostReport", "SpecError", "analyze", "analyze_module", "build", "resolve",
           "trace_ops"]


def build(candidate: Any, **kwargs: Any) -> nn.Module:
    """The randomly initialized ``torch.nn.Module`` of a candidate, in eval mode (imports torch)."""
    from cost_engine.modules import build as _build

    return _build(candidate, **kwargs)


def trace_ops(module: nn.Module, input_shape: tuple[int, ...] | None = None, **kwargs: Any) -> list[Op]:
    """The canonical op list of any ``nn.Module``, traced on meta tensors (imports torch)."""
    from cost_engine.trace import trace_ops as _trace_ops

    return _trace_ops(module, input_shape, **kwargs)


def analyze_module(module: nn.Module, input_shape: tuple[int, ...] | None = None, **kwargs: Any) -> CostReport:
    """The cost report of any ``nn.Module`` from its trace (imports torch); ``inputs=`` for a
    forward of several or integer arguments (see :func:`cost_engine.trace.analyze_module`)."""
    from cost_engine.trace import analyze_module as _analyze_module

    return _analyze_module(module, input_shape, **kwargs)
