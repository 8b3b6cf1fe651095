"""Imports every family module, registering the built-in names."""
from cost_engine.families import efficientnet, fasternet, mobilenet, shufflenet  # noqa: F401
