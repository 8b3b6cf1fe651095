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

__all__ = ["BUILTINS", "COST_MODEL_VERSION", "CostReport", "SpecError", "analyze", "build", "resolve"]


def build(candidate: Any, **kwargs: Any) -> nn.Module:
    """The randomly initialized ``torch.nn.Module`` of a candidate (imports torch)."""
    from cost_engine.build import build as _build

    return _build(candidate, **kwargs)
