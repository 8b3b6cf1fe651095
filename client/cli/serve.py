"""``cost-oracle serve``: run the gRPC oracle (loopback by default; SIGTERM shuts it down gracefully).

Flags override ``COST_ORACLE_*`` environment variables, which override the defaults; the cache
is the SQLite file under the user cache directory unless ``--db-url`` names another (a
PostgreSQL URL shares one cache between several servers).
"""

from __future__ import annotations

import argparse
from typing import Any

from cost_oracle.client.errors import FailedPrecondition


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the gRPC oracle", description=__doc__)
    try:
        from cost_oracle.server.config import add_arguments
    except ImportError as exc:  # the server part is not installed / importable
        p.set_defaults(func=_unavailable, reason=str(exc))
        return
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cost_oracle.server.app import serve
    from cost_oracle.server.config import ServerConfig

    return int(serve(ServerConfig.from_args(args)) or 0)


def _unavailable(args: argparse.Namespace) -> int:

    raise FailedPrecondition(f"the server is not available in this installation: {args.reason}")
