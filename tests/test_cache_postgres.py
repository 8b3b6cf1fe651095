"""The cache shared through one PostgreSQL database by several servers (processes).

Run as a script, this file is the worker of the multi-process tests:
``python tests/test_cache_postgres.py write URL WRITER_ID`` and ``... open URL``. Each worker says
"ready" once it has started up and then waits for "go" on stdin, so the workers really race.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from cost_oracle.server.cache import CostCache, cache_key
from cost_oracle.server.cache.schema import cache_table

pytestmark = pytest.mark.postgres

N_KEYS = 2000
ROUND = 250  # keys raced on at a time: the writers' transactions overlap heavily
VERSION = "1"


def key_of(i: int) -> str:
    return cache_key({"kind": "fasternet", "dim": i}, {"batch_size": 1}, VERSION)


def payload_of(i: int, writer: int) -> dict[str, Any]:
    return {"i": i, "writer": writer, "macs": i * 7, "blocks": [{"kind": "pconv", "n": i % 5}]}


def _barrier() -> None:
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")


def _write(url: str, writer: int) -> None:
    """Put every key, shuffled within rounds, as single puts and batches of random sizes."""
    rnd = random.Random(writer)
    order: list[int] = []
    for start in range(0, N_KEYS, ROUND):
        part = list(range(start, min(start + ROUND, N_KEYS)))
        rnd.shuffle(part)
        order += part
    written = 0
    with CostCache(url) as cache:
        cache.get(key_of(0))  # connected before the race starts
        _barrier()
        pos = 0
        while pos < len(order):
            n = 1 if rnd.random() < 0.3 else rnd.randint(2, 100)
            chunk = order[pos:pos + n]
            pos += n
            if n == 1:
                written += cache.put(key_of(chunk[0]), "cost", payload_of(chunk[0], writer), VERSION)
            else:
                written += cache.put_many([(key_of(i), "cost", payload_of(i, writer), VERSION) for i in chunk])
        stats = cache.stats()
    print(json.dumps({"written": written, "retries": stats["retries"]}))


def _open(url: str) -> None:
    _barrier()
    with CostCache(url) as cache:
        cache.put(key_of(0), "cost", payload_of(0, 0), VERSION)
    print("ok")


def _race(args: list[list[str]]) -> list[str]:
    """Start one worker per argument list, release them together, return their last lines."""
    procs = [subprocess.Popen([sys.executable, __file__, *a], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for a in args]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.communicate(timeout=60)[1]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(out.strip().splitlines()[-1])
    return outs


def test_two_writers_put_the_same_keys_concurrently(pg_db_url: str) -> None:
    results = [json.loads(line) for line in _race([["write", pg_db_url, str(w)] for w in (1, 2)])]
    # every key stored exactly once, by exactly one of the two, with nothing retried (no deadlock)
    assert sum(r["written"] for r in results) == N_KEYS
    assert [r["retries"] for r in results] == [0, 0]
    with CostCache(pg_db_url) as cache:
        with cache.engine.connect() as conn:
            total, distinct = conn.execute(select(func.count(), func.count(cache_table.c.key.distinct()))).one()
        assert total == distinct == N_KEYS
        got = cache.get_many([key_of(i) for i in range(N_KEYS)])
        assert len(got) == N_KEYS and cache.stats()["corrupt"] == 0
        for i in range(N_KEYS):
            assert got[key_of(i)] in (payload_of(i, 1), payload_of(i, 2))
        # both really raced: each won some keys
        assert {p["writer"] for p in got.values()} == {1, 2}


def test_servers_starting_together_create_the_schema_once(pg_db_url: str) -> None:
    assert _race([["open", pg_db_url]] * 4) == ["ok"] * 4
    with CostCache(pg_db_url) as cache:
        assert cache.stats()["rows"] == 1


def test_cache_recovers_when_the_server_drops_its_connections(pg_db_url: str) -> None:
    with CostCache(pg_db_url, memory_bytes=0) as cache:
        cache.put_many([(key_of(i), "cost", payload_of(i, 0), VERSION) for i in range(10)])
        assert cache.get(key_of(1)) == payload_of(1, 0)
        admin = CostCache(pg_db_url)
        with admin.engine.connect() as conn:  # what a server restart or failover does to pooled connections
            killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()
        admin.close()
        assert killed >= 1
        assert cache.get(key_of(2)) == payload_of(2, 0)
        assert cache.put(key_of(20), "cost", payload_of(20, 0), VERSION) is True
        assert cache.get_many([key_of(20), key_of(3)]) == {key_of(20): payload_of(20, 0), key_of(3): payload_of(3, 0)}
        assert cache.stats()["retries"] >= 1


def test_reads_leave_pooled_connections_transactional(pg_db_url: str) -> None:
    # reads switch psycopg to autocommit for one round trip; writers need it off again
    with CostCache(pg_db_url, memory_bytes=0, pool_size=1, max_overflow=1) as cache:
        cache.put(key_of(1), "cost", payload_of(1, 0), VERSION)
        for _ in range(3):
            assert cache.get(key_of(1)) == payload_of(1, 0)
            assert cache.get(key_of(2)) is None
        with cache.engine.connect() as conn:
            assert conn.connection.driver_connection.autocommit is False
            conn.execute(text("SELECT 1"))
            status = conn.connection.driver_connection.info.transaction_status
            assert status == psycopg.pq.TransactionStatus.INTRANS  # a SELECT opened a transaction


def test_stats_never_show_the_password(pg_db_url: str) -> None:
    url = make_url(pg_db_url).set(password="s3cret-pw").render_as_string(hide_password=False)
    with CostCache(url) as cache:  # trust authentication ignores the password
        s = cache.stats()
    assert s["backend"] == "postgresql"
    assert "s3cret-pw" not in s["url"] and "s3cret-pw" not in repr(cache)
    assert s["size_bytes"] > 0


if __name__ == "__main__":
    if sys.argv[1] == "write":
        _write(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "open":
        _open(sys.argv[2])
