"""The persistent cache: keys, round trips, versions, integrity checks, threads and processes.

Everything that touches a database runs twice, on an SQLite file and on a real PostgreSQL
server started by the tests (``pg_db_url``). Run as a script, this file is the worker of the
multi-process test: ``python tests/test_cache.py worker URL SEED N_OPS``.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text, update

from cost_engine.spec import MBConvSpec, NetworkSpec, from_dict
from cost_oracle.server.cache import CacheRow, CostCache, cache_key
from cost_oracle.server.cache.schema import cache_table
from cost_oracle.server.cache.store import DB_URL_ENV, resolve_url

VERSION = "1"


# -- keys (no database) ---------------------------------------------------------------------------
def test_key_is_sha256_of_the_documented_canonical_json() -> None:
    # pinned by hand so a client in another language can compute the same key
    material = '{"context":{"batch_size":1,"dtype":"float32"},"spec":{"b":1.5,"kind":"conv"},"version":"7"}'
    expected = hashlib.sha256(material.encode()).hexdigest()
    assert cache_key({"kind": "conv", "b": 1.5}, {"dtype": "float32", "batch_size": 1}, "7") == expected


def test_key_ignores_dict_order_at_every_level() -> None:
    a = {"kind": "network", "stages": [[{"kind": "conv", "out_channels": 8, "stride": 2}]], "resolution": 224}
    b = {"resolution": 224, "stages": [[{"stride": 2, "out_channels": 8, "kind": "conv"}]], "kind": "network"}
    ctx_a, ctx_b = {"batch_size": 4, "dtype": "float16"}, {"dtype": "float16", "batch_size": 4}
    assert cache_key(a, ctx_a, VERSION) == cache_key(b, ctx_b, VERSION)


def test_int_and_float_spellings_of_a_float_field_give_one_key() -> None:
    ctx = {"batch_size": 1}
    as_int = MBConvSpec(out_channels=32, expand_ratio=6).to_dict()
    as_float = MBConvSpec(out_channels=32, expand_ratio=6.0).to_dict()
    parsed = from_dict({"kind": "mbconv", "out_channels": 32, "expand_ratio": 6}).to_dict()
    assert cache_key(as_int, ctx, VERSION) == cache_key(as_float, ctx, VERSION) == cache_key(parsed, ctx, VERSION)
    # defaults are spelled out by to_dict, so leaving a field out is the same candidate
    explicit = MBConvSpec(out_channels=32, kernel_size=3, se_ratio=0.25).to_dict()
    assert cache_key(explicit, ctx, VERSION) == cache_key(as_int, ctx, VERSION)
    # the normalization is to_dict's job: raw dicts with 6 and 6.0 are different JSON
    assert cache_key({"x": 6}, ctx, VERSION) != cache_key({"x": 6.0}, ctx, VERSION)


def test_version_context_and_spec_each_change_the_key() -> None:
    spec = NetworkSpec(stem=(MBConvSpec(out_channels=16),)).to_dict()
    ctx = {"batch_size": 1, "resolution": 224, "dtype": "float32"}
    base = cache_key(spec, ctx, "1")
    assert cache_key(spec, ctx, "2") != base
    assert cache_key(spec, {**ctx, "batch_size": 2}, "1") != base
    other = NetworkSpec(stem=(MBConvSpec(out_channels=16, kernel_size=5),)).to_dict()
    assert cache_key(other, ctx, "1") != base
    assert len(base) == 64 and int(base, 16) >= 0


def test_key_rejects_what_has_no_canonical_json() -> None:
    with pytest.raises(ValueError):
        cache_key({"x": float("nan")}, {}, VERSION)
    with pytest.raises(TypeError):
        cache_key({"x": {1, 2}}, {}, VERSION)
    with pytest.raises(TypeError, match="spec_dict"):
        cache_key(["not", "a", "dict"], {}, VERSION)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="version"):
        cache_key({}, {}, "")


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                     | st.text(max_size=8), lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=20)


@given(st.dictionaries(st.text(max_size=6), _json, max_size=6), st.randoms())
def test_key_is_a_function_of_content_not_insertion_order(spec: dict[str, Any], rnd: random.Random) -> None:
    items = list(spec.items())
    rnd.shuffle(items)
    assert cache_key(dict(items), {"b": 1}, VERSION) == cache_key(spec, {"b": 1}, VERSION)


# -- URLs -----------------------------------------------------------------------------------------
def test_url_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(DB_URL_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    default = resolve_url(None)
    assert default.get_backend_name() == "sqlite"
    assert Path(default.database).parent.is_relative_to(tmp_path / "xdg")  # type: ignore[arg-type]
    assert Path(default.database).parent.is_dir()  # type: ignore[arg-type]
    monkeypatch.setenv(DB_URL_ENV, str(tmp_path / "env.sqlite"))
    assert resolve_url(None).database == str(tmp_path / "env.sqlite")
    assert resolve_url(str(tmp_path / "flag.db")).database == str(tmp_path / "flag.db")  # the flag wins
    assert resolve_url("postgresql://u:secret@h/db").drivername == "postgresql+psycopg"
    assert resolve_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(ValueError, match="db_url"):
        resolve_url("mysql://u@h/db")


# -- backends -------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "cache.sqlite")
    return str(request.getfixturevalue("pg_db_url"))


def key_of(i: int, version: str = VERSION) -> str:
    return cache_key({"kind": "conv", "out_channels": i}, {"batch_size": 1}, version)


def payload_of(i: int) -> dict[str, Any]:
    return {"macs": i * 1000, "flops": i * 2000.5, "by_kind": {"conv2d": i}, "name": f"n{i}", "list": [i, 1.5, None]}


def test_round_trip_and_first_writer_wins(db_url: str) -> None:
    with CostCache(db_url) as cache:
        assert cache.get(key_of(1)) is None
        assert cache.put(key_of(1), "cost", payload_of(1), VERSION) is True
        assert cache.put(key_of(1), "cost", {"different": True}, VERSION) is False
        assert cache.get(key_of(1)) == payload_of(1)
    with CostCache(db_url) as fresh:  # a new process-level view: no in-memory copy, read from the database
        assert fresh.get(key_of(1)) == payload_of(1)
        assert fresh.stats()["memory_hits"] == 0


def test_returned_payloads_are_private_copies(db_url: str) -> None:
    with CostCache(db_url) as cache:
        cache.put(key_of(2), "cost", payload_of(2), VERSION)
        first = cache.get(key_of(2))
        assert first is not None
        first["macs"] = -1
        first["by_kind"]["conv2d"] = -1
        assert cache.get(key_of(2)) == payload_of(2)
        assert cache.get_many([key_of(2)])[key_of(2)] == payload_of(2)


def test_shared_payloads_are_decoded_once_and_copies_stay_private(db_url: str) -> None:
    with CostCache(db_url) as writer:
        writer.put(key_of(3), "cost", payload_of(3), VERSION)
    with CostCache(db_url) as cache:
        shared = cache.get(key_of(3), copy=False)  # from the database
        assert shared == payload_of(3)
        assert cache.get(key_of(3), copy=False) is shared  # from memory, same object
        assert cache.get_many([key_of(3)], copy=False)[key_of(3)] is shared
        own = cache.get(key_of(3))
        assert own == shared and own is not shared
        own["by_kind"]["conv2d"] = -1
        assert cache.get(key_of(3), copy=False) == payload_of(3)


def test_memory_bound_evicts_and_misses_fall_back_to_the_database(db_url: str) -> None:
    with CostCache(db_url, memory_bytes=4000) as cache:
        cache.put_many([(key_of(i), "cost", payload_of(i), VERSION) for i in range(200)])
        for _ in range(2):
            assert cache.get_many([key_of(i) for i in range(200)], copy=False) == {
                key_of(i): payload_of(i) for i in range(200)}
        s = cache.stats()
        assert 0 < s["memory_bytes"] <= 4000 and s["memory_entries"] < 200
        assert s["hits"] == 400 and s["memory_hits"] < 400


def test_put_many_get_many_across_chunks(db_url: str) -> None:
    n = 2300  # more than one write chunk (1000) and several read chunks (500)
    rows: list[Any] = []
    for i in range(n):
        k, p = key_of(i), payload_of(i)
        if i % 3 == 0:
            rows.append(CacheRow(k, "cost", p, VERSION))
        elif i % 3 == 1:
            rows.append((k, "cost", p, VERSION))
        else:
            rows.append({"key": k, "kind": "cost", "payload": p, "version": VERSION})
    rows.append(rows[5])  # a duplicate inside one batch is stored once
    with CostCache(db_url) as cache:
        assert cache.put_many(rows) == n
        assert cache.put_many(rows[:10]) == 0
    with CostCache(db_url) as cache:
        wanted = [key_of(i) for i in range(0, n + 400, 2)] + [key_of(4)]  # some absent, one repeated
        got = cache.get_many(wanted)
        assert got == {key_of(i): payload_of(i) for i in range(0, n, 2)}
        s = cache.stats()
        assert s["rows"] == n and s["rows_by_kind"] == {"cost": n}
        assert s["hits"] == n // 2 and s["misses"] == 200


def test_a_batch_that_loses_some_rows_to_another_writer_serves_the_stored_rows(db_url: str) -> None:
    """Two servers computed some of the same rows: the first writer's rows are the truth, and the
    second server's memory must not keep its own losing copies (nor miscount what it wrote)."""
    with CostCache(db_url) as first, CostCache(db_url) as second:
        assert first.put_many([(key_of(i), "cost", payload_of(i), VERSION) for i in range(0, 10, 2)]) == 5
        mine = [(key_of(i), "cost", {"second": i}, VERSION) for i in range(10)]
        assert second.put_many(mine) == 5
        got = second.get_many([key_of(i) for i in range(10)], copy=False)
        assert got == {key_of(i): payload_of(i) if i % 2 == 0 else {"second": i} for i in range(10)}
        s = second.stats()
        assert s["written"] == 5 and s["duplicate"] == 5 and s["rows"] == 10


def test_a_new_cost_model_version_never_reads_old_rows(db_url: str) -> None:
    spec = MBConvSpec(out_channels=24).to_dict()
    ctx = {"batch_size": 1, "resolution": 32, "dtype": "float32"}
    with CostCache(db_url) as cache:
        cache.put(cache_key(spec, ctx, "1"), "cost", {"macs": 1}, "1")
        assert cache.get(cache_key(spec, ctx, "2")) is None
        cache.put(cache_key(spec, ctx, "2"), "cost", {"macs": 2}, "2")
        assert cache.get(cache_key(spec, ctx, "1")) == {"macs": 1}
        assert cache.get(cache_key(spec, ctx, "2")) == {"macs": 2}
        assert cache.stats()["rows_by_version"] == {"1": 1, "2": 1}


def test_stats_report_kinds_counters_and_size(db_url: str) -> None:
    with CostCache(db_url) as cache:
        cache.put(key_of(1), "cost", payload_of(1), VERSION)
        cache.put(key_of(2), "latency", {"median_ms": 1.25}, VERSION)
        cache.put(key_of(3), "latency", {"median_ms": 2.5}, VERSION)
        cache.get(key_of(1))
        cache.get(key_of(99))
        s = cache.stats()
    assert s["rows_by_kind"] == {"cost": 1, "latency": 2} and s["rows"] == 3
    assert (s["hits"], s["misses"], s["written"]) == (1, 1, 3)
    assert s["backend"] in ("sqlite", "postgresql")
    assert isinstance(s["size_bytes"], int) and s["size_bytes"] > 0
    json.dumps(s)  # served as-is by the stats RPC and the CLI


def test_bad_rows_are_refused_and_nothing_is_written(db_url: str) -> None:
    with CostCache(db_url) as cache:
        with pytest.raises(ValueError, match="key"):
            cache.put("not-a-sha256", "cost", {}, VERSION)
        with pytest.raises(ValueError, match="kind"):
            cache.put(key_of(1), "", {}, VERSION)
        with pytest.raises(ValueError, match="version"):
            cache.put(key_of(1), "cost", {}, "")
        with pytest.raises(TypeError, match="payload"):
            cache.put(key_of(1), "cost", [1, 2], VERSION)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="key"):  # one bad row fails the batch before anything is written
            cache.put_many([(key_of(2), "cost", {}, VERSION), ("bad", "cost", {}, VERSION)])
        assert cache.stats()["rows"] == 0


def test_rows_encoded_in_another_process_are_stored_as_put_many_would(db_url: str) -> None:
    """The analysis processes encode rows (JSON text and checksum) and the server writes them:
    the stored rows are byte for byte those put_many writes, and pass their checksums."""
    import pickle

    from cost_oracle.server.cache.store import encode_rows

    rows = [(key_of(i), "cost", payload_of(i), VERSION) for i in range(40)]
    encoded = pickle.loads(pickle.dumps(encode_rows(rows + rows[:3])))  # as shipped between processes
    assert len(encoded) == 40
    with CostCache(db_url) as cache:
        assert cache.put_encoded(encoded) == 40
        assert cache.put_encoded(encoded[:5]) == 0  # already stored: first writer wins
        assert cache.get_many([key_of(i) for i in range(40)]) == {key_of(i): payload_of(i) for i in range(40)}
    with CostCache(db_url) as fresh:
        assert all(fresh.get(key_of(i)) == payload_of(i) for i in range(40))
        assert fresh.stats()["corrupt"] == 0
    with pytest.raises(ValueError, match="key"):  # a bad row fails at encoding, before any write
        encode_rows([(key_of(1), "cost", {}, VERSION), ("bad", "cost", {}, VERSION)])


def test_a_row_that_fails_its_checksum_is_a_miss_and_is_replaced(db_url: str) -> None:
    with CostCache(db_url) as cache:
        cache.put(key_of(5), "cost", payload_of(5), VERSION)
        cache.put(key_of(6), "cost", payload_of(6), VERSION)
        with cache.engine.begin() as conn:  # what a torn or tampered row would look like
            conn.execute(update(cache_table).where(cache_table.c.key == key_of(5)).values(payload='{"macs":0}'))
    with CostCache(db_url) as cache:
        assert cache.get(key_of(5)) is None
        assert cache.get_many([key_of(5), key_of(6)]) == {key_of(6): payload_of(6)}
        assert cache.stats()["corrupt"] == 1
        assert cache.put(key_of(5), "cost", payload_of(5), VERSION) is True  # the bad row was removed
    with CostCache(db_url) as cache:
        assert cache.get(key_of(5)) == payload_of(5)


def test_a_closed_cache_refuses_work(db_url: str) -> None:
    cache = CostCache(db_url)
    cache.put(key_of(1), "cost", payload_of(1), VERSION)
    cache.close()
    with pytest.raises(RuntimeError, match="closed"):
        cache.get(key_of(1))


def test_eight_threads_mixed_get_and_put(db_url: str) -> None:
    n_threads, n_ops, n_keys = 8, 500, 300
    errors: list[BaseException] = []
    wrong: list[str] = []
    start = threading.Barrier(n_threads)
    index = {key_of(i): i for i in range(n_keys)}
    with CostCache(db_url) as cache:

        def work(seed: int) -> None:
            rnd = random.Random(seed)
            try:
                start.wait()
                for _ in range(n_ops):
                    i = rnd.randrange(n_keys)
                    op = rnd.random()
                    if op < 0.45:
                        cache.put(key_of(i), "cost", payload_of(i), VERSION)
                    elif op < 0.55:
                        batch = [rnd.randrange(n_keys) for _ in range(rnd.randint(1, 20))]
                        cache.put_many([(key_of(j), "cost", payload_of(j), VERSION) for j in batch])
                    elif op < 0.9:
                        got = cache.get(key_of(i))
                        if got is not None and got != payload_of(i):
                            wrong.append(key_of(i))
                    else:
                        for k, v in cache.get_many([key_of(rnd.randrange(n_keys)) for _ in range(10)]).items():
                            if v != payload_of(index[k]):
                                wrong.append(k)
            except BaseException as exc:  # reported below, with the thread's seed
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not any(t.is_alive() for t in threads)
        assert errors == [] and wrong == []
        s = cache.stats()
        stored = {k: v for k, _kind, _ver, v in cache.iter_rows()}
    assert s["written"] == s["rows"] == len(stored)  # each stored row was written exactly once
    assert all(v == payload_of(i) for i in range(n_keys) if (v := stored.get(key_of(i))) is not None)


def _worker(url: str, seed: int, n_ops: int) -> None:
    """One process of the multi-process test: mixed reads and writes on shared keys."""
    rnd = random.Random(seed)
    written = wrong = 0
    with CostCache(url) as cache:
        for _ in range(n_ops):
            i = rnd.randrange(400)
            if rnd.random() < 0.5:
                written += cache.put_many([(key_of(j), "cost", payload_of(j), VERSION)
                                           for j in range(i, min(i + rnd.randint(1, 8), 400))])
            else:
                got = cache.get(key_of(i))
                wrong += got is not None and got != payload_of(i)
    print(json.dumps({"written": written, "wrong": wrong}))


def test_two_processes_share_one_cache(db_url: str) -> None:
    procs = [subprocess.Popen([sys.executable, __file__, "worker", db_url, str(seed), "400"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["wrong"] == 0 for r in results)
    with CostCache(db_url) as cache:
        rows = list(cache.iter_rows())
        assert len(rows) == sum(r["written"] for r in results)  # every row written once, by one of them
        assert all(payload == payload_of(payload["macs"] // 1000) for _k, _kind, _v, payload in rows)
        if cache.backend == "sqlite":
            with cache.engine.connect() as conn:
                assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
                assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"


def test_a_forked_child_opens_its_own_connections(db_url: str) -> None:
    import multiprocessing

    with CostCache(db_url, pool_size=1) as cache:
        cache.put(key_of(1), "cost", payload_of(1), VERSION)
        with cache.engine.connect() as conn:  # the one pooled connection, kept alive for comparison
            parents = conn.connection.driver_connection

        def child() -> None:
            with cache.engine.connect() as conn:
                own = conn.connection.driver_connection is not parents
            ok = own and cache.get(key_of(1)) == payload_of(1) and cache.put(key_of(2), "cost", payload_of(2), VERSION)
            raise SystemExit(0 if ok else 1)

        proc = multiprocessing.get_context("fork").Process(target=child)
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
        # the parent's own connections were left alone by the child
        assert cache.get_many([key_of(1), key_of(2)]) == {key_of(1): payload_of(1), key_of(2): payload_of(2)}


def test_in_memory_sqlite_is_usable_from_threads() -> None:
    with CostCache("sqlite://") as cache:
        threads = [threading.Thread(target=lambda j=j: [cache.put(key_of(i), "cost", payload_of(i), VERSION)
                                                        for i in range(j, 200, 4)]) for j in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert cache.get_many([key_of(i) for i in range(200)]) == {key_of(i): payload_of(i) for i in range(200)}


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "worker":
    _worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
