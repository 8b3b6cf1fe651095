"""``cost-oracle spec NAME`` and ``cost-oracle schema``: the candidate file format, shown.

``spec NAME`` prints a built-in model's spec as the JSON a ``--spec FILE`` takes, so the quickest
way to write a candidate is to start from a built-in and edit it (the file it prints is costed
exactly as the name is: the same cache key). ``schema`` prints the JSON Schema of that format,
generated from the spec dataclasses (``cost_engine/spec/schema.py``), for editors and validators.
"""

from __future__ import annotations

import argparse
from typing import Any

from cost_engine.spec import to_dict
from cost_engine.spec.schema import json_schema
from cost_oracle.client.cli._common import UsageError, emit_json


def register(sub: Any) -> None:
    p = sub.add_parser("spec", help="print a built-in model's spec as editable JSON (the --spec FILE format)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="a built-in model name (cost-oracle list)")
    p.set_defaults(func=run_spec)
    s = sub.add_parser("schema", help="print the JSON Schema of candidate spec files", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.set_defaults(func=run_schema)


def run_spec(args: argparse.Namespace) -> int:
    import cost_engine.families.catalog  # noqa: F401 - registers the built-in names
    from cost_engine.families import BUILTINS, resolve

    if args.name not in BUILTINS:
        close = sorted(n for n in BUILTINS if n.split("_")[0] == args.name.split("_")[0]) or sorted(BUILTINS)
        raise UsageError("name", f"unknown built-in {args.name!r}; known: {', '.join(close)}")
    emit_json(to_dict(resolve(args.name)))
    return 0


def run_schema(args: argparse.Namespace) -> int:

    emit_json(json_schema())
    return 0
