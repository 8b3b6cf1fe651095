"""Validation and (de)serialization shared by every spec kind.

Specs are frozen dataclasses of plain data. Each field declares its bounds in its metadata, so
one generic pass can name every bad field with its path and reason, all at once, and the same
declarations give JSON round trips (the cache key is sha256 of this canonical JSON). Nothing is
imported, evaluated or unpickled from client data: a kind string selects a registered class.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any, ClassVar, NamedTuple, TypeVar

#: Hard bounds that keep any single spec affordable to analyze and build.
MAX_CHANNELS = 16384
MAX_KERNEL = 31
MAX_STRIDE = 8
MAX_GROUPS = MAX_CHANNELS
MAX_RESOLUTION = 4096
MAX_BATCH = 4096
MAX_BLOCKS = 2048
MAX_REPEATS = 256
MAX_TOKENS = 65536
MAX_HEADS = 256

#: the ``act`` values a spec accepts: the activation op kinds (``formulas.ACTIVATION_FLOPS``, the
#: one list of them; a test holds the two equal) and "none"
ACTIVATIONS = ("relu", "relu6", "silu", "gelu", "sigmoid", "hardsigmoid", "hardswish", "tanh", "none")
#: other names for an activation, accepted wherever a spec is built (Python, JSON, gRPC) and
#: stored under the canonical name, so ``act="swish"`` and ``act="silu"`` are one cache key
ACTIVATION_ALIASES = {"swish": "silu", "identity": "none"}


def canonical_act(name: Any) -> Any:
    """The canonical activation name for ``name`` (unchanged when it is not an alias)."""
    return ACTIVATION_ALIASES.get(name, name) if isinstance(name, str) else name


class FieldError(NamedTuple):
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class SpecError(ValueError):
    """Every invalid field of a spec, each with its path (``stages[2].blocks[0].kernel_size``)."""

    def __init__(self, errors: list[FieldError]):
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


def bounded(default: Any = dataclasses.MISSING, *, lo: float | None = None, hi: float | None = None,
            choices: tuple[str, ...] | None = None, odd: bool = False, doc: str = "") -> Any:
    """A spec field with declared bounds (checked by :func:`validate`)."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "odd": odd, "doc": doc}
    if default is dataclasses.MISSING:
        return field(metadata=meta)
    if isinstance(default, (list, dict, set)):
        raise TypeError("spec defaults must be immutable")
    return field(default=default, metadata=meta)


def join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


class Spec:
    """Base of every spec dataclass; ``kind`` is the tag used in JSON and in the gRPC oneof."""

    def __post_init__(self) -> None:
        # activation aliases become the canonical name (fields listed once per class, at register)
        for name in getattr(type(self), "_act_fields", ()):
            value = getattr(self, name)
            if value in ACTIVATION_ALIASES:
                object.__setattr__(self, name, ACTIVATION_ALIASES[value])

    kind: ClassVar[str] = ""

    def check(self) -> list[tuple[str, str]]:
        """Cross-field rules: (field name, reason) pairs; the generic bounds are checked apart."""
        return []

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def __getstate__(self) -> dict[str, Any]:
        # the memoized hash is of this process's string hashing (randomized per process): never ship it
        state = dict(self.__dict__)
        state.pop(_HASH_ATTR, None)
        return state


_HASH_ATTR = "_spec_hash"


def _memoize_hash(cls: type) -> None:
    """Give a frozen spec dataclass a hash computed once per instance.

    A spec is a dict key everywhere on the hot path (block memo, validation memo, JSON memo, the
    server's candidate memo), and a dataclass recomputes the hash of its field tuple (a network:
    of every nested block) at every lookup.
    """
    plain = cls.__hash__
    if plain is None or getattr(plain, "_memoized", False):
        return

    def __hash__(self: Any) -> int:
        try:
            return self.__dict__[_HASH_ATTR]
        except KeyError:
            h = plain(self)
            object.__setattr__(self, _HASH_ATTR, h)
            return h

    __hash__._memoized = True  # type: ignore[attr-defined]
    cls.__hash__ = __hash__  # type: ignore[method-assign]


SPEC_KINDS: dict[str, type[Spec]] = {}
S = TypeVar("S", bound=type)


def register(kind: str) -> Callable[[S], S]:
    def deco(cls: S) -> S:
        if kind in SPEC_KINDS:
            raise ValueError(f"spec kind {kind!r} registered twice")
        cls.kind = kind  # type: ignore[attr-defined]
        cls._act_fields = tuple(f.name for f in dataclasses.fields(cls)  # type: ignore[attr-defined]
                                if f.metadata.get("choices") is ACTIVATIONS)
        _memoize_hash(cls)
        SPEC_KINDS[kind] = cls  # type: ignore[assignment]
        return cls

    return deco


# -- validation -----------------------------------------------------------------------------
def validate(spec: Spec, path: str = "", recursive: bool = True) -> list[FieldError]:
    """Every bound and cross-field rule of ``spec`` (and, when ``recursive``, of nested specs).

    Memoized per spec (specs are frozen and hashable): a search space repeats the same blocks in
    thousands of candidates, and a server validates every candidate it is sent.
    """
    try:
        # a spec that holds specs (a network of up to thousands of blocks, ~230 KB) has a memo of
        # its own, of 256: 65,536 of them would be gigabytes; a block's entry is a few fields
        memo = _validate_holder_memo if _holds_specs(spec) else _validate_memo
        found = memo(spec, recursive)
    except TypeError:  # an unhashable value smuggled into a field: validate without the memo
        found = tuple(_validate(spec, "", recursive))
    if not path:
        return list(found)
    return [FieldError(join_path(path, e.path), e.reason) for e in found]


def join_path(prefix: str, path: str) -> str:
    """``prefix`` + a field path relative to it (``a.b`` + ``[2].c`` -> ``a.b[2].c``)."""
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def clip(text: str, limit: int, length: int | None = None) -> str:
    """``text`` cut to at most ``limit`` characters, saying how long it was (``length``, default
    its own): an error quotes what a client sent, and a client may send 8,000 characters."""
    if len(text) <= limit:
        return text
    return text[:max(0, limit - 20)] + f"... ({len(text) if length is None else length} chars)"


def quote(value: Any, limit: int = 100) -> str:
    """A bad value as an error message shows it: its ``repr``, clipped (a string's length is
    its own, not its repr's)."""
    return clip(repr(value), limit, len(value) if isinstance(value, (str, bytes)) else None)


def _holds_specs(spec: Spec) -> bool:
    return any(isinstance(v, tuple) and v and isinstance(v[0], (Spec, tuple))
               for v in (getattr(spec, f.name) for f in dataclasses.fields(spec)))  # type: ignore[arg-type]


@functools.lru_cache(maxsize=65536)
def _validate_memo(spec: Spec, recursive: bool) -> tuple[FieldError, ...]:
    return tuple(_validate(spec, "", recursive))


@functools.lru_cache(maxsize=256)
def _validate_holder_memo(spec: Spec, recursive: bool) -> tuple[FieldError, ...]:
    return tuple(_validate(spec, "", recursive))


def _validate(spec: Spec, path: str, recursive: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    for f in dataclasses.fields(spec):  # type: ignore[arg-type]
        value = getattr(spec, f.name)
        errors.extend(_check_value(value, f.metadata, join(path, f.name), recursive))
    if not errors:
        errors.extend(FieldError(join(path, name), reason) for name, reason in spec.check())
    return errors


def _check_value(value: Any, meta: Mapping[str, Any], path: str, recursive: bool) -> list[FieldError]:
    if isinstance(value, Spec):
        return validate(value, path) if recursive else []
    if isinstance(value, tuple):
        out: list[FieldError] = []
        for i, v in enumerate(value):
            if recursive or not isinstance(v, Spec):  # a nested spec unchecked: no path to build
                out.extend(_check_value(v, meta, join(path, i), recursive))
        return out
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return [FieldError(path, "must be a finite number")]
        lo, hi = meta.get("lo"), meta.get("hi")
        if lo is not None and value < lo:
            return [FieldError(path, f"must be >= {lo}, got {value}")]
        if hi is not None and value > hi:
            return [FieldError(path, f"must be <= {hi}, got {value}")]
        if meta.get("odd") and value % 2 == 0:
            return [FieldError(path, f"must be odd and >= 1, got {value}")]
        return []
    if isinstance(value, str):
        choices = meta.get("choices")
        if choices and value not in choices and canonical_act(value) not in choices:
            aliases = f" (or {', '.join(ACTIVATION_ALIASES)})" if choices is ACTIVATIONS else ""
            return [FieldError(path, f"must be one of {', '.join(choices)}{aliases}; got {quote(value, 40)}")]
    return []


# -- JSON round trip ------------------------------------------------------------------------
def to_dict(spec: Spec) -> dict[str, Any]:
    """Canonical plain-data form: every field, defaults included, tagged with ``kind``."""
    out: dict[str, Any] = {"kind": spec.kind}
    hints = _hints(type(spec))
    for f in dataclasses.fields(spec):  # type: ignore[arg-type]
        value = getattr(spec, f.name)
        # 1 and 1.0 must give one cache key: floats are written as floats
        out[f.name] = float(value) if hints[f.name] is float and not isinstance(value, bool) else _plain(value)
    return out


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _plain(value: Any) -> Any:
    if isinstance(value, Spec):
        return to_dict(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def from_dict(data: Any, path: str = "", expected: type[Spec] | None = None) -> Spec:
    """Parse and validate; raises :class:`SpecError` listing every bad field."""
    errors: list[FieldError] = []
    spec = _parse_spec(data, path, expected, errors)
    if errors or spec is None:
        raise SpecError(errors or [FieldError(path or "spec", "invalid")])
    return spec


def _parse_spec(data: Any, path: str, expected: type[Spec] | None, errors: list[FieldError]) -> Spec | None:
    if not isinstance(data, Mapping):
        errors.append(FieldError(path or "spec", f"must be an object, got {type(data).__name__}"))
        return None
    kind = data.get("kind")
    if expected is not None and kind is None:
        cls: type[Spec] | None = expected
    elif not isinstance(kind, str) or kind not in SPEC_KINDS:
        known = ", ".join(sorted(SPEC_KINDS))
        if kind is None:
            hint = ""
            if data.keys() & {"network", "block", "builtin"}:
                hint = (" (this looks like the proto-JSON Candidate form; a spec is the object itself, e.g. "
                        "{\"kind\": \"network\", \"stages\": [[{\"kind\": \"mbconv\", ...}]], ...})")
            elif "stages" in data:
                hint = " (a network: add \"kind\": \"network\")"
            errors.append(FieldError(join(path, "kind"), f"is missing: every spec object is tagged with its kind, "
                                                         f"one of {known}{hint}"))
        else:
            errors.append(FieldError(join(path, "kind"), f"unknown spec kind {quote(kind, 60)}; known: {known}"))
        return None
    else:
        cls = SPEC_KINDS[kind]
    assert cls is not None
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key != "kind" and key not in names:
            errors.append(FieldError(join(path, str(key)), "unknown field"))
    kwargs: dict[str, Any] = {}
    n_before = len(errors)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        fpath = join(path, f.name)
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                errors.append(FieldError(fpath, "is required"))
            continue
        n_field = len(errors)
        kwargs[f.name] = _parse_value(data[f.name], hints[f.name], fpath, errors)
        if len(errors) == n_field:  # parsed: check its bounds now, so every bad field is named at once
            errors.extend(_check_value(kwargs[f.name], f.metadata, fpath, recursive=False))
    if len(errors) > n_before:
        return None
    try:
        spec = cls(**kwargs)
    except (TypeError, ValueError) as exc:  # __post_init__ normalization errors
        errors.append(FieldError(path or "spec", str(exc)))
        return None
    # fields were bound-checked and nested specs validated as they were parsed
    errors.extend(FieldError(join(path, name), reason) for name, reason in spec.check())
    return spec


def _parse_value(value: Any, hint: Any, path: str, errors: list[FieldError]) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _parse_value(value, non_none[0], path, errors)
        # a union of spec classes: dispatch on the kind tag
        return _parse_spec(value, path, None, errors)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            errors.append(FieldError(path, f"must be a list, got {type(value).__name__}"))
            return ()
        if len(value) > MAX_BLOCKS:
            errors.append(FieldError(path, f"must have at most {MAX_BLOCKS} items, got {len(value)}"))
            return ()
        item = args[0] if args else Any
        if len(args) > 1 and args[1] is not Ellipsis:  # fixed-length tuple
            if len(value) != len(args):
                errors.append(FieldError(path, f"must have exactly {len(args)} items"))
                return ()
            return tuple(_parse_value(v, a, join(path, i), errors) for i, (v, a) in enumerate(zip(value, args,
                                                                                                    strict=True)))
        return tuple(_parse_value(v, item, join(path, i), errors) for i, v in enumerate(value))
    if isinstance(hint, type) and issubclass(hint, Spec):
        kind = value.get("kind") if isinstance(value, Mapping) else None
        expected = None if (kind is not None and hint is Spec) else (hint if hint is not Spec else None)
        return _parse_spec(value, path, expected, errors)
    if hint is bool:
        if not isinstance(value, bool):
            errors.append(FieldError(path, f"must be true or false, got {value!r}"))
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            errors.append(FieldError(path, f"must be an integer, got {value!r}"))
            return 0
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(FieldError(path, f"must be a number, got {value!r}"))
            return 0.0
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            errors.append(FieldError(path, f"must be a string, got {value!r}"))
            return ""
        return value
    return value
