"""Server settings from flags, environment variables and defaults (in that order of precedence).

One dataclass so ``python -m cost_oracle.server.app`` and ``cost-oracle serve`` (the client's CLI) share the
same flags, names and defaults: the CLI calls :func:`add_arguments` on its own sub-parser and
:meth:`ServerConfig.from_args` on the result.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

__all__ = ["ENV", "ServerConfig", "add_arguments"]

#: config field -> environment variable
ENV: dict[str, str] = {
    "host": "COST_ORACLE_HOST",
    "port": "COST_ORACLE_PORT",
    "db_url": "COST_ORACLE_DB_URL",
    "workers": "COST_ORACLE_WORKERS",
    "token": "COST_ORACLE_TOKEN",
    "tls_cert": "COST_ORACLE_TLS_CERT",
    "tls_key": "COST_ORACLE_TLS_KEY",
    "max_batch_size": "COST_ORACLE_MAX_BATCH",
    "max_sweep_size": "COST_ORACLE_MAX_SWEEP",
    "max_message_bytes": "COST_ORACLE_MAX_MESSAGE_BYTES",
    "max_pending_measurements": "COST_ORACLE_MAX_PENDING_MEASUREMENTS",
    "latency_waiters": "COST_ORACLE_LATENCY_WAITERS",
    "metrics_port": "COST_ORACLE_METRICS_PORT",
    "grace_s": "COST_ORACLE_GRACE_S",
    "log_level": "COST_ORACLE_LOG_LEVEL",
    "log_requests": "COST_ORACLE_LOG_REQUESTS",
    "analyze_processes": "COST_ORACLE_ANALYZE_PROCESSES",
    "measure_on": "COST_ORACLE_MEASURE_ON",
    "db_patience_s": "COST_ORACLE_DB_PATIENCE_S",
}

MEASURE_ON = ("local", "fleet")

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``serve`` needs. ``port`` 0 picks a free port (printed on start).

    ``analyze_processes``: worker processes for cold batches of 16+ candidates (they write their
    rows to the same cache before answering); 0 keeps all analysis in the server process (the
    default below 4 cores, where the processes only compete with the server for the CPU).
    ``token``: when set, every RPC but health needs metadata ``authorization: Bearer <token>``.
    ``tls_cert``/``tls_key``: PEM files; both or neither. ``grace_s``: how long in-flight calls
    may run after SIGTERM/SIGINT before they are cancelled. ``workers``: requests doing work at
    once; ``latency_waiters``: further requests that may block on measurements at once, on threads
    of their own, so measuring clients never starve analytic ones (``server/gate.py``).
    ``measure_on``: ``local`` (this host's devices, the default) or ``fleet`` (latency jobs in the
    shared PostgreSQL, measured by ``cost-oracle worker`` hosts; needs a PostgreSQL ``db_url``).
    ``db_patience_s``: how long a request waits out a cache database that is down (a PostgreSQL
    restart, a fail-over) before it answers UNAVAILABLE; 0 answers at once.
    """

    host: str = "127.0.0.1"
    port: int = 50051
    db_url: str | None = None
    workers: int = 8
    max_batch_size: int = 10_000
    max_sweep_size: int = 20_000
    max_message_bytes: int = 64 << 20
    max_pending_measurements: int = 64
    latency_waiters: int = 64
    #: Prometheus metrics on this HTTP port of ``host`` (None: no metrics; 0: a free port)
    metrics_port: int | None = None
    default_chunk_size: int = 256
    token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    grace_s: float = 10.0
    log_level: str = "info"
    log_requests: bool = True
    analyze_processes: int = field(default_factory=lambda: _default_processes())
    measure_on: str = "local"
    db_patience_s: float = 10.0

    def errors(self) -> list[str]:
        out = []
        if not self.host:
            out.append("host: must not be empty")
        if not 0 <= self.port <= 65535:
            out.append(f"port: must be in [0, 65535], got {self.port}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            out.append(f"metrics_port: must be in [0, 65535], got {self.metrics_port}")
        if not 1 <= self.workers <= 1024:
            out.append(f"workers: must be in [1, 1024], got {self.workers}")
        for name in ("max_batch_size", "max_sweep_size", "max_pending_measurements", "latency_waiters",
                     "default_chunk_size"):
            if getattr(self, name) < 1:
                out.append(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.max_message_bytes < 1024:
            out.append(f"max_message_bytes: must be >= 1024, got {self.max_message_bytes}")
        if bool(self.tls_cert) != bool(self.tls_key):
            out.append("tls_cert/tls_key: give both or neither")
        for name in ("tls_cert", "tls_key"):
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                out.append(f"{name}: no such file: {path}")
        if not 0 <= self.analyze_processes <= 64:
            out.append(f"analyze_processes: must be in [0, 64], got {self.analyze_processes}")
        if self.measure_on not in MEASURE_ON:
            out.append(f"measure_on: must be one of {', '.join(MEASURE_ON)}; got {self.measure_on!r}")
        elif self.measure_on == "fleet" and not str(self.db_url or "").startswith("postgresql"):
            out.append("measure_on: fleet needs a PostgreSQL db_url (the job table lives in the shared database)")
        if not 0 <= self.db_patience_s <= 3600:
            out.append(f"db_patience_s: must be in [0, 3600], got {self.db_patience_s}")
        if self.grace_s < 0:
            out.append(f"grace_s: must be >= 0, got {self.grace_s}")
        if self.log_level not in LOG_LEVELS:
            out.append(f"log_level: must be one of {', '.join(LOG_LEVELS)}; got {self.log_level!r}")
        if self.token is not None and (not self.token or any(c.isspace() for c in self.token)):
            out.append("token: must be non-empty without whitespace")
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, base: ServerConfig | None = None) -> ServerConfig:
        """``base`` (default: the defaults) with every variable of :data:`ENV` that is set."""
        env = os.environ if env is None else env
        cfg = base or cls()
        changes: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in ENV.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            changes[name] = _parse(name, types[name], raw, var)
        return replace(cfg, **changes)

    @classmethod
    def from_args(cls, ns: argparse.Namespace, env: Mapping[str, str] | None = None) -> ServerConfig:
        """Flags over environment over defaults (flags left at None are not given)."""
        cfg = cls.from_env(env)
        changes = {f.name: getattr(ns, f.name) for f in fields(cls) if getattr(ns, f.name, None) is not None}
        return replace(cfg, **changes)


def _default_processes() -> int:
    """Analysis processes pay off only with cores to spare: none below 4 cores, then up to 4."""
    cores = os.cpu_count() or 1
    return 0 if cores < 4 else min(4, cores // 2)


def _parse(name: str, type_name: Any, raw: str, var: str) -> Any:
    t = str(type_name)
    try:
        if t.startswith("int"):
            return int(raw)
        if t.startswith("float"):
            return float(raw)
        if t.startswith("bool"):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
    except ValueError:
        raise ValueError(f"{var}: cannot parse {raw!r} for {name}") from None
    return raw


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The server flags (every default None: unset flags fall back to the environment, then defaults)."""
    d = ServerConfig()
    parser.add_argument("--host", help=f"address to bind (default {d.host}; ${ENV['host']})")
    parser.add_argument("--port", type=int, help=f"port; 0 picks a free one (default {d.port}; ${ENV['port']})")
    parser.add_argument("--db-url", dest="db_url",
                        help="cache database: SQLite file path or postgresql://... "
                             f"(default under the user cache dir; ${ENV['db_url']})")
    parser.add_argument("--workers", type=int,
                        help=f"requests doing work at once (default {d.workers}; ${ENV['workers']})")
    parser.add_argument("--max-batch", dest="max_batch_size", type=int,
                        help=f"most candidates per request (default {d.max_batch_size})")
    parser.add_argument("--max-sweep", dest="max_sweep_size", type=int,
                        help=f"most points per sweep (default {d.max_sweep_size})")
    parser.add_argument("--max-message-bytes", dest="max_message_bytes", type=int,
                        help=f"largest request/response message (default {d.max_message_bytes})")
    parser.add_argument("--max-pending-measurements", dest="max_pending_measurements", type=int,
                        help=f"latency queue capacity (default {d.max_pending_measurements})")
    parser.add_argument("--latency-waiters", dest="latency_waiters", type=int,
                        help="requests that may wait on measurements at once, on threads apart from --workers "
                             f"(default {d.latency_waiters}; ${ENV['latency_waiters']})")
    parser.add_argument("--metrics-port", dest="metrics_port", type=int,
                        help=f"serve Prometheus metrics on this HTTP port (off by default; ${ENV['metrics_port']}; "
                             "needs the 'metrics' extra)")
    parser.add_argument("--token", help=f"require 'authorization: Bearer TOKEN' (${ENV['token']})")
    parser.add_argument("--tls-cert", dest="tls_cert", help="PEM certificate chain (enables TLS with --tls-key)")
    parser.add_argument("--tls-key", dest="tls_key", help="PEM private key")
    parser.add_argument("--grace", dest="grace_s", type=float,
                        help=f"seconds in-flight calls may finish after SIGTERM (default {d.grace_s})")
    parser.add_argument("--log-level", dest="log_level", choices=LOG_LEVELS, help="log level (default info)")
    parser.add_argument("--analyze-processes", dest="analyze_processes", type=int,
                        help="processes that analyze large cold batches in parallel; 0 = in the server process "
                             f"(default {d.analyze_processes}; ${ENV['analyze_processes']})")
    parser.add_argument("--measure-on", dest="measure_on", choices=MEASURE_ON,
                        help="where latency is measured: local (this host, default) or fleet (jobs in the shared "
                             f"PostgreSQL for `cost-oracle worker` hosts; ${ENV['measure_on']})")
    parser.add_argument("--db-patience", dest="db_patience_s", type=float,
                        help="seconds a request waits out a cache database that is down before it answers "
                             f"UNAVAILABLE (default {d.db_patience_s:g}; ${ENV['db_patience_s']})")
    parser.add_argument("--no-request-log", dest="log_requests", action="store_const", const=False,
                        help="do not log one line per request")
    return parser
