"""Families that generate networks, and the built-in model names (registered by the family
modules on import; the catalog imports them all)."""

from __future__ import annotations

from cost_engine.families import catalog  # noqa: F401 - after the registry: its modules register into it
from cost_engine.families.registry import BUILTINS, builtin, resolve

__all__ = ["BUILTINS", "builtin", "resolve"]
