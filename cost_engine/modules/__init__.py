"""Spec -> ``torch.nn.Module`` (imports torch; the spec and expand layers do not)."""

from cost_engine.modules import blocks as _blocks  # noqa: F401  (registers the block builders)
from cost_engine.modules.network import Network, build
from cost_engine.modules.registry import BUILDERS, build_block

__all__ = ["BUILDERS", "Network", "build", "build_block"]
