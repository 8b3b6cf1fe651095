"""A private, throw-away PostgreSQL 15 cluster for tests and benchmarks.

Tests of the shared cache must run against a real server, not a mock, and must not depend on
one being installed as a service: ``postgres_cluster()`` runs ``initdb`` into a temporary
directory, starts the server on a free loopback port (and a Unix socket in the same directory)
with trust authentication, creates a database, yields its SQLAlchemy URL, and on exit — normal
or not — stops the server (``pg_ctl stop -m fast``, then ``immediate`` if that fails) and
removes the directory.

PostgreSQL refuses to run as root, so when we are root every server binary runs as the
``postgres`` user through ``runuser`` and the directory is handed to that user; otherwise the
binaries run as ourselves. Durability settings are off (``fsync=off``): the tests kill clients,
never the server, and a test cluster is discarded anyway.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PG_BIN_ENV", "create_database", "drop_database", "postgres_cluster", "start_server", "stop_server",
           "unavailable_reason"]

#: Override the directory holding initdb and pg_ctl.
PG_BIN_ENV = "COST_ORACLE_PG_BIN"
DEFAULT_PG_BIN = "/usr/lib/postgresql/15/bin"
PG_USER = "postgres"


def pg_bin_dir() -> Path:
    return Path(os.environ.get(PG_BIN_ENV) or DEFAULT_PG_BIN)


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here (the skip reason), or None when it can."""
    bindir = pg_bin_dir()
    missing = [name for name in ("initdb", "pg_ctl", "postgres") if not os.access(bindir / name, os.X_OK)]
    if missing:
        return f"PostgreSQL 15 binaries not found: {', '.join(missing)} missing in {bindir} (set ${PG_BIN_ENV})"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return f"running as root and there is no {PG_USER!r} user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is not available to drop to the postgres user"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], cwd: Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", PG_USER, "--", *cmd]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no server log)"


def _admin(port: int, sql: str) -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=port, user=PG_USER, dbname="postgres", autocommit=True,
                         connect_timeout=10) as conn:
        conn.execute(sql)


def _split(url: str) -> tuple[int, str]:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return int(parsed.port or 5432), str(parsed.database)


def create_database(url: str, name: str) -> str:
    """A new empty database on the cluster of ``url``; returns its URL."""
    from sqlalchemy.engine import make_url

    if not name.replace("_", "").isalnum():
        raise ValueError(f"database name must be alphanumeric/underscore, got {name!r}")
    port, _ = _split(url)
    _admin(port, f'CREATE DATABASE "{name}"')
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop the database of ``url``, disconnecting anything still attached to it."""
    port, name = _split(url)
    _admin(port, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: the clusters running now, by port: what stop_server / start_server need
_CLUSTERS: dict[int, tuple[Path, Path, Path, str, Path]] = {}


def stop_server(url: str, mode: str = "fast") -> None:
    """Stop the cluster serving ``url`` (the database goes away under its clients). Fast by
    default: with synchronous commit off, an ``immediate`` stop (a crash: no checkpoint) may lose
    the last commits; a cluster started with ``durable=True`` survives one."""
    bindir, data, _, _, tmp = _CLUSTERS[_split(url)[0]]
    _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", mode, "-w", "-t", "30", "stop"], cwd=tmp)


def start_server(url: str) -> None:
    """Start a cluster stopped by :func:`stop_server` again, on the same port."""
    bindir, data, logfile, options, tmp = _CLUSTERS[_split(url)[0]]
    done = _run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(logfile), "-o", options, "-w", "-t", "60",
                 "start"], cwd=tmp)
    if done.returncode != 0:
        raise RuntimeError(f"pg_ctl start failed: {done.stdout}\n{done.stderr}\n{_tail(logfile)}")


@contextlib.contextmanager
def postgres_cluster(dbname: str = "cost_oracle_test", *, durable: bool = False) -> Iterator[str]:
    """Start a private cluster; yields ``postgresql+psycopg://postgres@127.0.0.1:PORT/dbname``.
    ``durable``: commits reach the WAL before they return (synchronous_commit on), so a crash
    (``pg_ctl stop -m immediate``) loses nothing committed; fsync stays off (the OS keeps the
    files across a PostgreSQL crash)."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    bindir = pg_bin_dir()
    tmp = Path(tempfile.mkdtemp(prefix="cost-oracle-pg-"))
    data, logfile = tmp / "data", tmp / "server.log"
    started = False
    try:
        if os.geteuid() == 0:
            user = pwd.getpwnam(PG_USER)
            os.chown(tmp, user.pw_uid, user.pw_gid)
        init = _run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER, "-E", "UTF8",
                     "--no-locale", "--no-sync", "--no-instructions"], cwd=tmp)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
        last_error = ""
        for _attempt in range(3):  # the free port may be taken between probing and binding
            port = _free_port()
            options = (f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off "
                       f"-c synchronous_commit={'on' if durable else 'off'} "
                       "-c full_page_writes=off -c shared_buffers=32MB -c max_connections=200")
            start = _run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(logfile), "-o", options, "-w", "-t", "60",
                          "start"], cwd=tmp)
            started = True  # even a failed start may have left a postmaster behind: always stop
            if start.returncode == 0:
                break
            last_error = f"{start.stdout}\n{start.stderr}\n{_tail(logfile)}"
        else:
            raise RuntimeError(f"pg_ctl start failed three times:\n{last_error}")
        _admin(port, f'CREATE DATABASE "{dbname}"')
        _CLUSTERS[port] = (bindir, data, logfile, options, tmp)
        yield f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}/{dbname}"
    finally:
        if started:
            _CLUSTERS.pop(port, None)
            stop = _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"], cwd=tmp)
            if stop.returncode != 0 and (data / "postmaster.pid").exists():
                _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop"], cwd=tmp)
        shutil.rmtree(tmp, ignore_errors=True)
