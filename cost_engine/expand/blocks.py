"""Imports every module that registers block expanders."""

from cost_engine.expand import basic  # noqa: F401
from cost_engine.expand import mobile  # noqa: F401
from cost_engine.expand import residual  # noqa: F401
