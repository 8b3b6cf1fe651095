"""An in-process server on a free loopback port, for tests that talk gRPC to a real server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc

from cost_oracle.server.app import Server, start
from cost_oracle.server.config import ServerConfig
from costoracle.v1 import oracle_pb2_grpc


@contextmanager
def in_process_server(db: Path, **config: Any) -> Iterator[Server]:
    """A started server on an SQLite cache at ``db`` (``config``: more ``ServerConfig`` fields)."""
    srv = start(ServerConfig(db_url=f"sqlite:///{db}", port=0, **config))
    try:
        yield srv
    finally:
        srv.stop(0)


@contextmanager
def stub_of(db: Path, **config: Any) -> Iterator[oracle_pb2_grpc.CostOracleStub]:
    """A stub of :func:`in_process_server` on an insecure loopback channel."""
    with in_process_server(db, **config) as srv:
        channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
        try:
            yield oracle_pb2_grpc.CostOracleStub(channel)
        finally:
            channel.close()
