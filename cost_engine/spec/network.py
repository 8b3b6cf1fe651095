"""A candidate network: stem, stages of blocks, head — the unit a NAS controller asks about."""

from __future__ import annotations

from dataclasses import dataclass

from cost_engine.spec.base import (
    MAX_BLOCKS,
    MAX_CHANNELS,
    MAX_RESOLUTION,
    Spec,
    bounded,
    register,
)


@register("network")
@dataclass(frozen=True)
class NetworkSpec(Spec):
    """Blocks run in order: ``stem``, then each stage's blocks, then ``head``.

    Module paths in the built network are ``stem.<i>``, ``stages.<s>.<i>`` and ``head.<i>``;
    breakdowns use the same paths. ``resolution`` is the default input size (a request may
    override it); ``name`` is informational only and not part of the cost identity.
    """

    stem: tuple[Spec, ...] = ()
    stages: tuple[tuple[Spec, ...], ...] = ()
    head: tuple[Spec, ...] = ()
    in_channels: int = bounded(3, lo=1, hi=MAX_CHANNELS)
    resolution: int = bounded(224, lo=1, hi=MAX_RESOLUTION)

    def blocks(self) -> list[tuple[str, Spec]]:
        """(module path, block) in execution order."""
        out = [(f"stem.{i}", b) for i, b in enumerate(self.stem)]
        for s, stage in enumerate(self.stages):
            out.extend((f"stages.{s}.{i}", b) for i, b in enumerate(stage))
        out.extend((f"head.{i}", b) for i, b in enumerate(self.head))
        return out

    def check(self) -> list[tuple[str, str]]:
        problems = []
        n = len(self.stem) + sum(len(stage) for stage in self.stages) + len(self.head)
        if n == 0:
            problems.append(("stages", "a network needs at least one block"))
        if n > MAX_BLOCKS:
            problems.append(("stages", f"must hold at most {MAX_BLOCKS} blocks in all, got {n}"))
        for field_name in ("stem", "head"):
            for i, b in enumerate(getattr(self, field_name)):
                if isinstance(b, NetworkSpec):
                    problems.append((f"{field_name}[{i}]", "a network cannot nest another network"))
        for s, stage in enumerate(self.stages):
            for i, b in enumerate(stage):
                if isinstance(b, NetworkSpec):
                    problems.append((f"stages[{s}][{i}]", "a network cannot nest another network"))
        return problems
