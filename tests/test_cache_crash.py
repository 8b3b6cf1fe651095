"""A writer SIGKILLed at random moments never leaves a cache that fails to open or serves a bad row.

A subprocess writes batches of rows in a loop and reports on stdout when it starts a batch and
when the batch is committed; the test kills it, either after a random time or a few
milliseconds after it announced a batch (large batches, so the kill usually lands inside the
transaction: SQLite then has uncommitted frames in its WAL, since a 2 MB transaction spills
past the page cache). After each kill the cache is reopened and checked:

* it opens, and SQLite's ``PRAGMA integrity_check`` is ``ok``;
* every row it holds passes the store's checksum *and* the payload's own self-check field, and
  equals exactly what the writer wrote for that key;
* every batch the writer reported committed is there in full (a killed process loses nothing
  it committed), the batch in flight is there entirely or not at all, and nothing else is.

Run as a script, this file is the writer: ``python tests/test_cache_crash.py URL ROUND BATCH``.
"""

from __future__ import annotations

import functools
import hashlib
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cost_oracle.server.cache import CostCache, cache_key, canonical_json
from cost_oracle.server.cache.schema import cache_table

VERSION = "1"
ROUND_STRIDE = 10_000_000
BATCH_STRIDE = 10_000


@functools.cache
def key_of(i: int) -> str:
    return cache_key({"kind": "mbconv", "id": i}, {"batch_size": 8, "dtype": "float32"}, VERSION)


@functools.cache  # compare-only: the checks below never mutate it
def payload_of(i: int) -> dict[str, Any]:
    """~2 KB, deterministic in ``i``, with a self-check over everything else in it."""
    body = {"i": i, "macs": i * 3, "flops": i * 6.5, "by_module": {f"stages.{j}": i + j for j in range(60)}}
    return {**body, "check": hashlib.sha256(canonical_json(body).encode()).hexdigest()}


def self_check_ok(payload: dict[str, Any]) -> bool:
    body = {k: v for k, v in payload.items() if k != "check"}
    return payload.get("check") == hashlib.sha256(canonical_json(body).encode()).hexdigest()


def batch_ids(round_: int, b: int, size: int) -> range:
    start = round_ * ROUND_STRIDE + b * BATCH_STRIDE
    return range(start, start + size)


def _writer(url: str, round_: int, size: int) -> None:
    with CostCache(url) as cache:
        print("ready", flush=True)
        b = 0
        while True:
            print(f"begin {b}", flush=True)
            cache.put_many([(key_of(i), "cost", payload_of(i), VERSION) for i in batch_ids(round_, b, size)])
            print(f"commit {b}", flush=True)
            if round_ and b % 4 == 3:  # rewrite stored rows of an earlier round: a no-op for the store
                old = cache.get_many([key_of(i) for i in batch_ids(round_ - 1, 0, 20)])
                assert cache.put_many([(k, "cost", p, VERSION) for k, p in old.items()]) == 0
            b += 1


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "crash.sqlite")
    return str(request.getfixturevalue("pg_db_url"))


def _kill_writer(url: str, round_: int, rnd: random.Random) -> tuple[set[int], set[int], str]:
    """Run one writer and SIGKILL it; returns (committed batches, begun batches, how it was killed)."""
    targeted = round_ % 2 == 1
    size = 1000 if targeted else 50
    errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed below, read on failure
    proc = subprocess.Popen([sys.executable, __file__, url, str(round_), str(size)], stdout=subprocess.PIPE,
                            stderr=errors, text=True)
    assert proc.stdout is not None

    def stderr() -> str:
        errors.seek(0)
        return errors.read()

    lines = []
    try:
        first = proc.stdout.readline().strip()
        assert first == "ready", stderr()
        if targeted:  # a few ms after it announced a large batch: usually inside the transaction
            wanted = f"begin {rnd.randint(1, 3)}"
            while (line := proc.stdout.readline().strip()) != wanted:
                assert line, stderr()
                lines.append(line)
            lines.append(line)
            time.sleep(rnd.uniform(0.0, 0.08))
            how = f"{wanted} + ms"
        else:
            delay = rnd.uniform(0.2, 1.2)
            time.sleep(delay)
            how = f"after {delay:.2f}s"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        rest = proc.stdout.read()  # what the pipe still holds, including what readline() buffered
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, f"the writer ended on its own:\n{stderr()}"
    errors.close()
    lines += rest.split()
    words = " ".join(lines).split()
    committed = {int(words[j + 1]) for j, w in enumerate(words) if w == "commit" and j + 1 < len(words)}
    begun = {int(words[j + 1]) for j, w in enumerate(words) if w == "begin" and j + 1 < len(words)}
    return committed, begun, how


def _check_cache(url: str, expected: dict[int, tuple[set[int], set[int], int]]) -> int:
    """Reopen after a kill and check every row and every batch; returns the number of rows."""
    with CostCache(url, memory_bytes=0) as cache:
        stored: dict[str, dict[str, Any]] = {}
        for key, kind, version, payload in cache.iter_rows():
            assert (kind, version) == ("cost", VERSION)
            # equal to what was written (which carries a valid self-check); the self-check
            # itself only for rows that differ, to say how they differ
            if key != key_of(payload["i"]) or payload != payload_of(payload["i"]):
                raise AssertionError(f"row {key} differs from what was written (self-check ok: "
                                     f"{self_check_ok(payload)})")
            stored[key] = payload
        with cache.engine.connect() as conn:
            raw_rows = conn.execute(select(func.count()).select_from(cache_table)).scalar_one()
        assert cache.stats()["corrupt"] == 0
        assert raw_rows == len(stored)  # no row the checks skipped
        if cache.backend == "sqlite":
            with sqlite3.connect(str(cache.url.database)) as db:
                assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    present_ids = {p["i"] for p in stored.values()}
    accounted: set[int] = set()
    for round_, (committed, begun, size) in expected.items():
        for b in begun:
            ids = set(batch_ids(round_, b, size))
            accounted |= ids
            if b in committed:
                assert ids <= present_ids, f"round {round_} batch {b}: a committed batch lost rows"
            else:
                assert ids <= present_ids or not ids & present_ids, f"round {round_} batch {b}: half a batch"
    assert present_ids <= accounted, "rows that no writer announced"
    return len(stored)


def test_sigkilled_writers_leave_only_complete_rows(db_url: str) -> None:
    rnd = random.Random(20240601)
    expected: dict[int, tuple[set[int], set[int], int]] = {}
    counts, kills = [], []
    for round_ in range(6):
        committed, begun, how = _kill_writer(db_url, round_, rnd)
        expected[round_] = (committed, begun, 1000 if round_ % 2 else 50)
        kills.append(how)
        counts.append(_check_cache(db_url, expected))
    assert counts == sorted(counts) and counts[-1] > 0, (counts, kills)
    # and the cache still takes writes and serves them after all that
    with CostCache(db_url) as cache:
        fresh = range(99 * ROUND_STRIDE, 99 * ROUND_STRIDE + 10)
        assert cache.put_many([(key_of(i), "cost", payload_of(i), VERSION) for i in fresh]) == 10
        assert cache.get_many([key_of(i) for i in fresh]) == {key_of(i): payload_of(i) for i in fresh}


if __name__ == "__main__":
    _writer(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
