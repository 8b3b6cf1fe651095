"""``cost-oracle list``: the built-in model names (and, with ``--kinds``, the spec kinds)."""

from __future__ import annotations

import argparse
from typing import Any

from cost_engine.spec import SPEC_KINDS
from cost_oracle.client.cli._common import add_target_args, emit_json, open_oracle


def register(sub: Any) -> None:
    p = sub.add_parser("list", help="built-in model names", description=__doc__)
    p.add_argument("--kinds", action="store_true", help="list the spec kinds instead")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    add_target_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.server:
        with open_oracle(args) as oracle:
            data = oracle.info().to_dict()
        names = list(data.get("spec_kinds" if args.kinds else "builtins", []))
    elif args.kinds:

        names = sorted(SPEC_KINDS)
    else:
        # no cache, no oracle: the names are the engine's own registry
        import cost_engine.families.catalog  # noqa: F401 - registers the built-in names
        from cost_engine.families import BUILTINS

        names = sorted(BUILTINS)
    if args.json:
        emit_json(names)
    else:
        print("\n".join(names))
    return 0
