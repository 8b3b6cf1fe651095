"""The JSON Schema of the spec format, generated from the spec dataclasses themselves.

A candidate file (``cost-oracle cost --spec FILE``) is the plain-data form of a spec
(:func:`cost_engine.spec.to_dict`): an object tagged with its ``kind``, every other key a field of
that kind's dataclass. The schema says the same from the same source, so it can never drift from
what :func:`~cost_engine.spec.from_dict` accepts: each field's type from its annotation, its bounds
and choices from its ``bounded(...)`` metadata, the defaults, and which fields are required.
Cross-field rules (``groups`` divides the channels, ...) are beyond a schema; ``from_dict`` and
every entry point still check them and name the field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from cost_engine.spec.base import ACTIVATION_ALIASES, ACTIVATIONS, SPEC_KINDS, Spec, _hints

__all__ = ["json_schema"]

SCHEMA_ID = "https://nas-cost-oracle.invalid/spec.schema.json"


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of any one spec: a block, a network, or any other kind."""
    defs = {kind: _kind_schema(kind, cls) for kind, cls in sorted(SPEC_KINDS.items())}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "NAS cost oracle candidate spec",
        "description": "One spec, tagged with its kind (see cost-oracle spec NAME for a built-in's).",
        "$defs": defs,
        "oneOf": [{"$ref": f"#/$defs/{k}"} for k in defs],
    }


def _kind_schema(kind: str, cls: type[Spec]) -> dict[str, Any]:
    hints = _hints(cls)
    props: dict[str, Any] = {"kind": {"const": kind}}
    required = ["kind"]
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        s = _type_schema(hints[f.name], f.metadata)
        if f.default is not dataclasses.MISSING:
            s["default"] = list(f.default) if isinstance(f.default, tuple) else f.default
        else:
            required.append(f.name)
        if f.metadata.get("doc"):
            s["description"] = f.metadata["doc"]
        props[f.name] = s
    doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    return {"type": "object", "description": doc, "properties": props, "required": required,
            "additionalProperties": False}


def _type_schema(hint: Any, meta: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        inner = _type_schema(options[0], meta) if len(options) == 1 else _any_spec()
        return {"anyOf": [inner, {"type": "null"}]} if type(None) in args else inner
    if origin is tuple:
        if len(args) > 1 and args[1] is not Ellipsis:
            return {"type": "array", "prefixItems": [_type_schema(a, meta) for a in args],
                    "minItems": len(args), "maxItems": len(args)}
        return {"type": "array", "items": _type_schema(args[0] if args else Any, meta)}
    if isinstance(hint, type) and issubclass(hint, Spec):
        return _any_spec() if hint is Spec else {"$ref": f"#/$defs/{hint.kind}"}  # type: ignore[attr-defined]
    if hint is bool:
        return {"type": "boolean"}
    if hint in (int, float):
        s: dict[str, Any] = {"type": "integer" if hint is int else "number"}
        if meta.get("lo") is not None:
            s["minimum"] = meta["lo"]
        if meta.get("hi") is not None:
            s["maximum"] = meta["hi"]
        return s
    if hint is str:
        choices = meta.get("choices")
        if choices:
            extra = list(ACTIVATION_ALIASES) if choices is ACTIVATIONS else []
            return {"type": "string", "enum": [*choices, *extra]}
        return {"type": "string"}
    return {}


def _any_spec() -> dict[str, Any]:
    return {"oneOf": [{"$ref": f"#/$defs/{k}"} for k in sorted(SPEC_KINDS)]}
