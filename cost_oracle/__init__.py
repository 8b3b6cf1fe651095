"""The NAS cost oracle's installed name: ``cost_oracle.client`` (remote, asyncio and in-process
clients, the CLI), ``cost_oracle.server`` (the gRPC service) and ``cost_oracle.contract`` (the plain
types between them). The repository keeps them as the top-level folders ``client/``, ``server/``
and ``contract/``; pyproject maps them here so an installed oracle never shadows another
distribution's ``client`` or ``server``. The engine (``cost_engine``) and the generated stubs
(``costoracle.v1``, the proto package) keep their own distinct top-level names.

The client's public names are reachable from here too: ``from cost_oracle import RemoteOracle``.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """Lazily hand out the client's public names, so ``import cost_oracle`` stays cheap."""
    if name.startswith("__"):
        raise AttributeError(name)
    from cost_oracle import client

    if name in client.__all__:
        return getattr(client, name)
    raise AttributeError(f"module 'cost_oracle' has no attribute {name!r}")


def __dir__() -> list[str]:
    from cost_oracle import client

    return sorted([*globals(), *client.__all__])
