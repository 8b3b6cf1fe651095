"""Container health probe: exit 0 when the oracle's standard gRPC health service says SERVING.

Kept free of the oracle's own stubs (only grpc.health.v1) so it works even if the service
contract changes; used by the Dockerfile HEALTHCHECK and docker-compose.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def probe(target: str, timeout: float = 3.0, service: str = "") -> bool:
    try:
        with grpc.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    except grpc.RpcError:
        return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="127.0.0.1:50051", help="HOST:PORT of the oracle")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
    args = parser.parse_args(argv)
    ok = probe(args.target, args.timeout)
    print("SERVING" if ok else "NOT SERVING", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
