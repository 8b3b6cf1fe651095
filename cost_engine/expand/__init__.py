"""Closed-form shape inference: spec + input shape -> ordered primitive op list (no torch)."""

from cost_engine.expand import blocks as _blocks  # noqa: F401  (registers the block expanders)
from cost_engine.expand.emitter import Emitter, T
from cost_engine.expand.network import expand, input_shape_of, network_blocks
from cost_engine.expand.registry import EXPANDERS, ShapeError, expand_block

__all__ = ["EXPANDERS", "Emitter", "ShapeError", "T", "expand", "expand_block", "input_shape_of",
           "network_blocks"]
