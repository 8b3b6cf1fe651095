"""A real server process for the server tests (``ServerProcess``), and tests of the process itself:
the listening line, a free port from ``--port 0``, config errors, a port already in use.

The other ``test_server*`` modules import :class:`ServerProcess` from here; clients talk to it with
the generated stubs only, as any user would.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from costoracle.v1 import oracle_pb2 as pb
from costoracle.v1 import oracle_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 90.0
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 256 << 20), ("grpc.max_send_message_length", 256 << 20)]


class ServerProcess:
    """``python -m cost_oracle.server.app --port 0 --db-url URL [args]`` as a subprocess, with its address parsed
    from the ``cost-oracle listening on HOST:PORT`` line."""

    def __init__(self, db_url: str, *args: str, log_dir: Path | None = None, env: dict[str, str] | None = None):
        self.db_url = db_url
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.log_path = (log_dir or Path("/tmp")) / f"server-{os.getpid()}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""
        self._channels: list[grpc.Channel] = []

    def start(self) -> ServerProcess:
        cmd = [sys.executable, "-m", "cost_oracle.server.app", "--port", "0", "--db-url", self.db_url, *self.args]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log, env=self.env)
        self.address = self._read_address()
        return self

    def _read_address(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + START_TIMEOUT_S
        buf = b""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()[-2000:]}")
            if sel.select(timeout=0.2):
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                buf += chunk
                if b"\n" in buf:
                    line = buf.split(b"\n", 1)[0].decode()
                    assert line.startswith("cost-oracle listening on "), line
                    return line.rsplit(" ", 1)[-1]
        raise TimeoutError(f"server did not start in {START_TIMEOUT_S}s: {self.log()[-2000:]}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def channel(self, credentials: grpc.ChannelCredentials | None = None, **kw: Any) -> grpc.Channel:
        opts = CHANNEL_OPTIONS + list(kw.get("options", []))
        ch = (grpc.secure_channel(self.address, credentials, options=opts) if credentials
              else grpc.insecure_channel(self.address, options=opts))
        self._channels.append(ch)
        return ch

    def stub(self) -> oracle_pb2_grpc.CostOracleStub:
        return oracle_pb2_grpc.CostOracleStub(self.channel())

    def cpu_seconds(self) -> float:
        """CPU time the server process has used (user + system, all threads), from /proc."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        for ch in self._channels:
            ch.close()
        self._channels.clear()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def health_status(channel: grpc.Channel, service: str = "") -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


# -- tests of the process itself -----------------------------------------------------------------
def test_listening_line_free_port_and_clean_exit(tmp_path: Path) -> None:
    srv = ServerProcess(f"sqlite:///{tmp_path / 'c.sqlite'}", log_dir=tmp_path).start()
    try:
        host, port = srv.address.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        ch = srv.channel()
        assert health_status(ch) == health_pb2.HealthCheckResponse.SERVING
        info = oracle_pb2_grpc.CostOracleStub(ch).GetServerInfo(pb.GetServerInfoRequest(), timeout=30)
        assert info.limits.max_batch_size > 0 and "mbconv" in info.spec_kinds and "efficientnet_b0" in info.builtins
    finally:
        code = srv.stop(signal.SIGTERM)
    assert code == 0
    assert '"event":"stopped"' in srv.log()


def test_port_in_use_and_bad_config_fail_cleanly(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "cost_oracle.server.app", "--port", str(port), "--db-url",
                               f"sqlite:///{tmp_path / 'c.sqlite'}"], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
    assert proc.returncode == 2 and "cannot listen" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "cost_oracle.server.app", "--port", "0", "--workers", "0",
                           "--tls-cert", "x"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "workers" in proc.stderr and "tls_cert/tls_key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_environment_configures_the_server(tmp_path: Path) -> None:
    env = {"COST_ORACLE_MAX_BATCH": "7", "COST_ORACLE_DB_URL": f"sqlite:///{tmp_path / 'env.sqlite'}"}
    cmd = [sys.executable, "-m", "cost_oracle.server.app", "--port", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**os.environ, **env})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        addr = line.rsplit(" ", 1)[-1].strip()
        with grpc.insecure_channel(addr) as ch:
            info = oracle_pb2_grpc.CostOracleStub(ch).GetServerInfo(pb.GetServerInfoRequest(), timeout=30)
        assert info.limits.max_batch_size == 7
        assert (tmp_path / "env.sqlite").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        if proc.stdout is not None:
            proc.stdout.close()
