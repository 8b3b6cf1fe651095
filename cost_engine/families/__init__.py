"""Families that generate networks, and the built-in model names."""

from __future__ import annotations

from collections.abc import Callable

from cost_engine.spec.base import FieldError, Spec, SpecError, quote

#: built-in name -> zero-argument factory of its NetworkSpec
BUILTINS: dict[str, Callable[[], Spec]] = {}


def builtin(name: str) -> Callable[[Callable[[], Spec]], Callable[[], Spec]]:
    def deco(fn: Callable[[], Spec]) -> Callable[[], Spec]:
        if name in BUILTINS:
            raise ValueError(f"built-in {name!r} registered twice")
        BUILTINS[name] = fn
        return fn

    return deco


_CACHE: dict[str, Spec] = {}


def resolve(candidate: Spec | str) -> Spec:
    """A spec as is, or the spec of a built-in model name."""
    if isinstance(candidate, Spec):
        return candidate
    if isinstance(candidate, str):
        _load()
        if candidate in BUILTINS:
            if candidate not in _CACHE:
                _CACHE[candidate] = BUILTINS[candidate]()
            return _CACHE[candidate]
        known = ", ".join(sorted(BUILTINS))
        raise SpecError([FieldError("name", f"unknown built-in model {quote(candidate)}; known: {known}")])
    raise SpecError([FieldError("candidate", f"must be a spec or a built-in name, got {type(candidate).__name__}")])


def _load() -> None:
    """Import the family modules (they register their built-ins)."""
    from cost_engine.families import catalog  # noqa: F401
