"""Cache latency: get/put percentiles on SQLite (and PostgreSQL), next to a plain dict lookup.

Every figure comes from one run on one machine, so the ratios against the dict lookup (the
floor of any in-process cache) are meaningful even where absolute numbers drift with load.

    python benchmarks/cache_bench.py                       # SQLite in a temp dir
    python benchmarks/cache_bench.py --pg-url postgresql://user@host/db
    python benchmarks/cache_bench.py --start-pg            # a private PostgreSQL 15 (tests/pg.py)
    python benchmarks/cache_bench.py --payload small       # ~300 B payloads instead of full reports

Operations: ``get db`` reads through a cache whose in-process LRU is off (every get is a query);
``get mem`` is a repeated key served by the LRU, decoded afresh (``copy``) or shared
(``copy=False``); ``put`` is one row per transaction; ``put_many``/``get_many`` are per row of a
``--batch``-row call.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cost_oracle.server.cache import CostCache, cache_key  # noqa: E402

VERSION = "bench"


def sample_payloads(kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec dict, payload): a real EfficientNet-B0 report, or a small summary of one."""
    import cost_engine.families.catalog  # noqa: F401 - registers the built-in families
    from cost_engine import analyze, resolve

    spec = resolve("efficientnet_b0")
    report = analyze(spec).to_dict()
    if kind == "small":
        report = {k: v for k, v in report.items() if not isinstance(v, (dict, list))}
    return spec.to_dict(), report


def percentiles(samples_ns: list[int]) -> tuple[float, float, float]:
    qs = statistics.quantiles(samples_ns, n=100, method="inclusive")
    return qs[49] / 1000, qs[89] / 1000, qs[98] / 1000


def timed(fn: Callable[[Any], Any], args: list[Any], per: int = 1) -> list[int]:
    """Nanoseconds per call (divided by ``per`` items for batch calls)."""
    out = []
    clock = time.perf_counter_ns
    for a in args:
        t0 = clock()
        fn(a)
        out.append((clock() - t0) // per)
    return out


def run_backend(url: str, label: str, n: int, payload: dict[str, Any], batch: int) -> list[tuple[str, list[int]]]:
    keys = [cache_key({"bench": i}, {"label": label}, VERSION) for i in range(n)]
    many = [cache_key({"bench_many": i}, {"label": label}, VERSION) for i in range(5 * batch)]
    rows = [(k, "cost", {**payload, "candidate": str(i)}, VERSION) for i, k in enumerate(keys)]
    results: list[tuple[str, list[int]]] = []
    with CostCache(url) as writer:
        results.append(("put (1 row / tx)", timed(lambda r: writer.put(*r), rows)))
        chunks = [[(k, "cost", payload, VERSION) for k in many[j:j + batch]] for j in range(0, len(many), batch)]
        results.append((f"put_many (per row of {batch})", [t for c in chunks for t in timed(writer.put_many, [c],
                                                                                                per=batch)]))
        results.append(("get miss", timed(writer.get, [cache_key({"absent": i}, {}, VERSION) for i in range(n)])))
        stats = writer.stats()
    with CostCache(url, memory_bytes=0) as cold:
        results.append(("get db", timed(cold.get, keys)))
        results.append((f"get_many db (per key of {batch})",
                        [t for j in range(0, len(many), batch) for t in timed(cold.get_many, [many[j:j + batch]],
                                                                              per=batch)]))
    with CostCache(url) as warm:
        hot = keys[: min(n, 500)]
        warm.get_many(hot, copy=False)  # in memory, decoded once
        results.append(("get mem (copy)", timed(warm.get, hot * (n // len(hot)))))
        results.append(("get mem (copy=False)", timed(lambda k: warm.get(k, copy=False), hot * (n // len(hot)))))
    print(f"# {label}: {stats['url']}, {stats['rows']} rows, {stats['size_bytes'] or 0} bytes")
    return results


@contextlib.contextmanager
def private_postgres() -> Iterator[str]:
    spec = importlib.util.spec_from_file_location("pg", ROOT / "tests" / "pg.py")
    assert spec and spec.loader
    pg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pg)
    reason = pg.unavailable_reason()
    if reason:
        raise SystemExit(f"--start-pg: {reason}")
    with pg.postgres_cluster("cache_bench") as url:
        yield url


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="operations per measurement")
    ap.add_argument("--batch", type=int, default=500, help="rows per put_many / keys per get_many call")
    ap.add_argument("--payload", choices=("report", "small"), default="report")
    ap.add_argument("--sqlite", help="SQLite file to use (default: a new one in a temp dir)")
    ap.add_argument("--pg-url", help="also measure this PostgreSQL database")
    ap.add_argument("--start-pg", action="store_true", help="also measure a private PostgreSQL 15 cluster")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args(argv)

    spec_dict, payload = sample_payloads(args.payload)
    text = json.dumps(payload, separators=(",", ":"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# payload: {args.payload}, {len(text)} bytes of JSON; n={args.n}; "
          f"load average {load:.1f} on {os.cpu_count()} CPUs")

    # baselines in the same run: a plain dict lookup, and decoding the payload (what a copy costs)
    keys = [cache_key({"d": i}, {}, VERSION) for i in range(args.n)]
    plain = {k: payload for k in keys}
    base: list[tuple[str, list[int]]] = [
        ("dict lookup (baseline)", timed(plain.__getitem__, keys)),
        ("json.loads(payload)", timed(json.loads, [text] * args.n)),
        ("cache_key(efficientnet_b0)", timed(lambda i: cache_key(spec_dict, {"batch_size": i}, VERSION),
                                             list(range(args.n)))),
    ]
    sections: list[tuple[str, list[tuple[str, list[int]]]]] = [("baseline", base)]
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        sqlite_path = args.sqlite or str(Path(tmp) / "bench.sqlite")
        sections.append(("sqlite", run_backend(sqlite_path, "sqlite", args.n, payload, args.batch)))
        pg_url = args.pg_url or (stack.enter_context(private_postgres()) if args.start_pg else None)
        if pg_url:
            sections.append(("postgresql", run_backend(pg_url, "postgresql", args.n, payload, args.batch)))

    dict_p50 = percentiles(base[0][1])[0]
    report = []
    print(f"\n{'backend':<11} {'operation':<34} {'p50 us':>9} {'p90 us':>9} {'p99 us':>9} {'p50 / dict':>11}")
    for section, results in sections:
        for name, samples in results:
            p50, p90, p99 = percentiles(samples)
            ratio = p50 / dict_p50 if dict_p50 > 0 else float("inf")
            print(f"{section:<11} {name:<34} {p50:>9.2f} {p90:>9.2f} {p99:>9.2f} {ratio:>10.0f}x")
            report.append({"backend": section, "op": name, "p50_us": p50, "p90_us": p90, "p99_us": p99,
                           "ratio_p50_to_dict": ratio})
    if args.json:
        print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
