"""What other counting tools would print for the built module, derived from the op list."""

from __future__ import annotations

from cost_engine.ops import Op


def views_of(ops: list[Op] | tuple[Op, ...]) -> dict[str, dict[str, int]]:
    return {}
