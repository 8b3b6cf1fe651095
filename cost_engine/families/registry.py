"""The built-in model names: each family module registers its named models here (``@builtin``),
and :func:`resolve` turns a name into its spec. A module of its own so that the family modules
import the registry, not the package that imports them."""

from __future__ import annotations

from collections.abc import Callable

from cost_engine.spec.base import FieldError, Spec, SpecError, quote

__all__ = ["BUILTINS", "builtin", "resolve"]

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
        if candidate in BUILTINS:
            if candidate not in _CACHE:
                _CACHE[candidate] = BUILTINS[candidate]()
            return _CACHE[candidate]
        known = ", ".join(sorted(BUILTINS))
        raise SpecError([FieldError("name", f"unknown built-in model {quote(candidate)}; known: {known}")])
    raise SpecError([FieldError("candidate", f"must be a spec or a built-in name, got {type(candidate).__name__}")])
