"""The gRPC server process: ``serve(config)`` and ``python -m cost_oracle.server.app [flags]``.

Start-up prints exactly one machine-readable line on stdout, ``cost-oracle listening on HOST:PORT``
(with the real port when 0 was asked for), so scripts and tests can start it on a free port and
read where it is. Logs are JSON lines on stderr, one per request. SIGTERM or SIGINT drains:
health turns NOT_SERVING (load balancers stop sending), new calls are refused with UNAVAILABLE,
in-flight calls get ``grace_s`` to finish, then the cache and the measurement queue are closed.
"""

from __future__ import annotations

import argparse
import gc
import hmac
import json
import logging
import signal
import ssl
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from cost_engine.families import BUILTINS, resolve
from cost_oracle.contract.types import Limits
from cost_oracle.server.config import ServerConfig, add_arguments
from cost_oracle.server.gate import RequestGate
from cost_oracle.server.metrics import start_metrics
from cost_oracle.server.oracle import Oracle
from cost_oracle.server.servicer import SERVICE_NAME, CostOracleServicer, generic_handler
from costoracle.v1 import oracle_pb2

__all__ = ["Server", "main", "serve", "start"]

log = logging.getLogger("cost_oracle.server")
_HEALTH_PREFIX = "/grpc.health.v1.Health/"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a message that is itself a JSON object is merged in."""

    def format(self, record: logging.LogRecord) -> str:
        rec: dict[str, Any] = {"ts": round(record.created, 6), "level": record.levelname.lower(),
                               "logger": record.name}
        msg = record.getMessage()
        if msg.startswith("{"):
            try:
                rec.update(json.loads(msg))
            except ValueError:
                rec["msg"] = msg
        else:
            rec["msg"] = msg
        if record.exc_info:
            rec["exc"] = self.formatException(record.exc_info)
        return json.dumps(rec, separators=(",", ":"))


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("cost_oracle")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class AuthInterceptor(grpc.ServerInterceptor):
    """Bearer-token check on every method but health; a wrong or missing token is UNAUTHENTICATED."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or details.method.startswith(_HEALTH_PREFIX):
            return handler
        got = ""
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                got = value if isinstance(value, str) else value.decode("latin-1")
        if hmac.compare_digest(got.encode("latin-1", "replace"), self._expected):
            return handler
        method = details.method

        def deny(request: Any, context: grpc.ServicerContext) -> Any:
            log.warning(json.dumps({"event": "request", "method": method.rsplit("/", 1)[-1],
                                    "status": "UNAUTHENTICATED", "ms": 0.0}))
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "missing or wrong bearer token (metadata 'authorization: Bearer <token>')")

        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(deny, handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(deny, handler.request_deserializer,
                                                        handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(deny, handler.request_deserializer,
                                                        handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(deny, handler.request_deserializer, handler.response_serializer)


#: grpcurl and newer tools ask for reflection v1 first; grpcio-reflection ships v1alpha only
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def _serve_reflection(names: tuple[str, ...], server: grpc.Server) -> None:
    """Server reflection under both ``grpc.reflection.v1alpha`` and ``grpc.reflection.v1``. The two
    protocols have the same messages field for field (v1 only renamed the package), so the one
    v1alpha servicer answers both, its messages read and written as the same bytes."""

    servicer = reflection.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(REFLECTION_V1, {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo, request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString)}),))


def _address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


class Server:
    """A started server: ``port``, ``stop(grace)``, ``wait()``. Use :func:`serve` for the process."""

    def __init__(self, config: ServerConfig, oracle: Oracle | None = None):
        problems = config.errors()
        if problems:
            raise ValueError("; ".join(problems))
        self.config = config
        limits = Limits(max_batch_size=config.max_batch_size, max_sweep_size=config.max_sweep_size,
                        max_message_bytes=config.max_message_bytes,
                        max_pending_measurements=config.max_pending_measurements,
                        default_chunk_size=config.default_chunk_size)
        if config.tls_cert:
            _check_tls(config.tls_cert, config.tls_key)
        try:
            self.oracle = oracle or Oracle(config.db_url, limits=limits, analyze_processes=config.analyze_processes,
                                           measure_on=config.measure_on, db_patience_s=config.db_patience_s)
        except SQLAlchemyError as exc:  # an unopenable file, a refused connection: one line, no traceback
            cause = getattr(exc, "orig", None) or exc
            raise OSError(f"cannot open the cache database {_redacted(config.db_url)}: "
                          f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}") from None
        # measurement waits get threads of their own beyond the working ones (server/gate.py)
        self.oracle.gate = RequestGate(config.workers, config.latency_waiters)
        self.servicer = CostOracleServicer(self.oracle, auth_required=config.token is not None,
                                           log_requests=config.log_requests)
        self.metrics_port: int | None = None
        self._metrics_http: Any = None
        if config.metrics_port is not None:

            try:
                metrics, self._metrics_http, self.metrics_port = start_metrics(self.oracle, config.host,
                                                                               config.metrics_port)
            except OSError as exc:
                self.oracle.close()
                raise OSError(f"cannot serve metrics on {_address(config.host, config.metrics_port)}: "
                              f"{exc.strerror or exc}") from None
            self.servicer.metrics = metrics
            self.oracle.metrics = metrics
        self.health = health.HealthServicer()
        options = [
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.so_reuseport", 0),  # a port in use is an error, not a silent second listener
        ]
        interceptors = [AuthInterceptor(config.token)] if config.token else []
        self.grpc_server = grpc.server(ThreadPoolExecutor(max_workers=config.workers + config.latency_waiters,
                                                          thread_name_prefix="rpc"),
                                       interceptors=interceptors, options=options)
        self.grpc_server.add_generic_rpc_handlers((generic_handler(self.servicer),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc_server)
        _serve_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME, REFLECTION_V1),
                          self.grpc_server)
        addr = _address(config.host, config.port)
        try:
            if config.tls_cert:
                assert config.tls_key
                with open(config.tls_key, "rb") as f:
                    key = f.read()
                with open(config.tls_cert, "rb") as f:
                    cert = f.read()
                port = self.grpc_server.add_secure_port(addr, grpc.ssl_server_credentials([(key, cert)]))
            else:
                port = self.grpc_server.add_insecure_port(addr)
        except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
            self.oracle.close()
            raise OSError(f"cannot listen on {addr}: {exc}") from None
        if not port:
            self.oracle.close()
            raise OSError(f"cannot listen on {addr}")
        self.port = port
        self.host = config.host
        self._stopped = threading.Event()

    def start(self) -> Server:
        # import the built-in catalog now, so the first request does not pay for it

        if not BUILTINS:
            try:
                resolve("efficientnet_b0")
            except Exception:
                log.exception("loading the built-in models failed")
        # the analysis processes start in the background: no request waits for their spawn
        threading.Thread(target=self._warm_pool, name="warm-pool", daemon=True).start()
        self.grpc_server.start()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self

    def _warm_pool(self) -> None:
        try:
            self.oracle.warm_pool()
        except Exception:  # the server still works without them (analysis in-process)
            log.exception("starting the analysis processes failed")

    @property
    def address(self) -> str:
        return _address(self.host, self.port)

    def stop(self, grace: float | None = None) -> None:
        """Drain: NOT_SERVING, refuse new calls, let in-flight calls finish within ``grace`` seconds."""
        if self._stopped.is_set():
            return
        grace = self.config.grace_s if grace is None else grace
        self.health.enter_graceful_shutdown()
        self.servicer.draining.set()
        log.info(json.dumps({"event": "draining", "grace_s": grace}))
        self.grpc_server.stop(grace).wait()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        self.oracle.close()
        self._stopped.set()
        log.info(json.dumps({"event": "stopped"}))

    def wait(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)


def _check_tls(cert: str, key: str | None) -> None:
    """Load the TLS pair before binding: gRPC reports a bad key only as "Failed to bind"."""

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise OSError(f"cannot use the TLS certificate {cert} with the key {key}: {exc}") from None


def _redacted(url: str | None) -> str:
    """A database URL without its password, for an error message."""
    if not url:
        return "(default)"
    try:

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


def start(config: ServerConfig | None = None) -> Server:
    """A started server in this process (for embedding and tests); the caller stops it."""
    return Server(config or ServerConfig.from_env()).start()


def _tune_gc() -> None:
    """A long-running server holds large, ever-growing memos (blocks, specs, reports) that the
    cyclic collector would rescan again and again while a cold batch allocates: freeze what
    start-up made, and collect the young generation less often (measured by
    ``benchmarks/server_bench.py``; reports and specs hold no reference cycles)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 50)


def serve(config: ServerConfig | None = None) -> int:
    """Run the server until SIGTERM or SIGINT; returns the process exit code."""
    config = config or ServerConfig.from_env()
    setup_logging(config.log_level)
    try:
        server = Server(config)
    except (OSError, ValueError) as exc:
        print(f"cost-oracle: error: {exc}", file=sys.stderr)
        return 2
    server.start()
    _tune_gc()
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info(json.dumps({"event": "signal", "signal": signal.Signals(signum).name}))
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    print(f"cost-oracle listening on {server.address}", flush=True)
    log.info(json.dumps({"event": "listening", "address": server.address, "db": server.oracle.cache.backend,
                         "workers": config.workers, "tls": bool(config.tls_cert),
                         "metrics_port": server.metrics_port,
                         "auth": config.token is not None}))
    try:
        while not stop.wait(0.5):
            pass
        server.stop()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cost_oracle.server.app",
                                     description="Run the NAS cost oracle gRPC server.")
    add_arguments(parser)
    ns = parser.parse_args(argv)
    try:
        config = ServerConfig.from_args(ns)
    except ValueError as exc:
        print(f"cost-oracle: error: {exc}", file=sys.stderr)
        return 2
    return serve(config)


if __name__ == "__main__":
    _ = oracle_pb2  # the generated module registers the descriptors reflection serves
    sys.exit(main())
