"""Imports every module that registers block builders."""

from cost_engine.modules import (
    basic,  # noqa: F401
    mobile,  # noqa: F401
    residual,  # noqa: F401
)
