"""Imports every module that registers block expanders."""

from cost_engine.expand import (
    basic,  # noqa: F401
    mobile,  # noqa: F401
    residual,  # noqa: F401
)
