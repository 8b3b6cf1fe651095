"""Imports every module that registers block builders."""

from cost_engine.modules import basic  # noqa: F401
from cost_engine.modules import mobile  # noqa: F401
from cost_engine.modules import residual  # noqa: F401
