"""What runs in the analysis processes that take the cold part of a large batch.

Its own module because these functions run in other processes: they are started with ``spawn``,
so everything submitted to them must be a module-level function importable by its path, and none
of it may lean on the server process's state (its memos, its pool, its locks). Jobs carry wire
bytes, built-in names or specs, and answer with serialized reports plus rows already encoded for
the cache, so the server process only stores them (one writer) and forwards the bytes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from cost_engine.families import resolve
from cost_engine.report import COST_MODEL_VERSION
from cost_engine.spec.base import Spec
from cost_oracle.contract.errors import OracleError, error_for
from cost_oracle.contract.types import BlockCandidate, Context
from cost_oracle.server.cache import CacheRow
from cost_oracle.server.cache.store import encode_rows
from cost_oracle.server.candidates import Prepared
from cost_oracle.server.reports import FIGURES, analyze_item, serve_report


def pool_init(parent: int | None = None) -> None:
    """In a fresh analysis process: load the catalog (the first job should not pay for it), and
    watch the parent: a SIGKILLed server cannot shut its pool down, and its workers must not
    live on holding memory (they exit within a second of the parent's death)."""
    from cost_engine.families import catalog  # noqa: F401

    # the server's pid comes from the server: read here, it could already be init's if the
    # server died while this process was still importing
    parent = os.getppid() if parent is None else parent

    def watch() -> None:
        while True:
            time.sleep(_PARENT_POLL_S)
            if os.getppid() != parent:  # re-parented: the server is gone
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


#: seconds between an analysis process's checks that its server is alive
_PARENT_POLL_S = 0.5


def pool_job(detail: str, jobs: Sequence[tuple[Any, ...]], encode: Callable[[dict[str, Any]], bytes],
             decode: Callable[[bytes], Any] | None) -> tuple[list[tuple[str, str, Any, Any]], list[dict[str, Any]]]:
    """Analyze and encode: (key, "ok", serialized report, scalars) or (key, "error", error state,
    None) per job, and the rows encoded for ``CostCache.put_encoded``. The server stores the rows
    before it answers anything, so a served report is always a stored one. ``encode`` (a report
    as the answer's bytes) and ``decode`` (a candidate's wire bytes as a spec) are the servicer's,
    passed by reference, so this module speaks no protobuf."""
    out: list[tuple[str, str, Any, Any]] = []
    rows: list[CacheRow] = []
    for key, what, in_channels, batch_size, resolution, dtype in jobs:
        ctx = Context(batch_size=batch_size, resolution=resolution, dtype=dtype)
        try:
            item = _worker_item(what, in_channels, decode)
            engine_report = analyze_item(item, ctx)
        except OracleError as exc:
            out.append((key, "error", (exc.code.value, exc.message, exc.violations, exc.quota), None))
            continue
        report = engine_report.to_dict(breakdowns=False)
        rows.append(CacheRow(key, "cost", report, COST_MODEL_VERSION))
        if detail != "scalars":
            report = {**report, **engine_report.breakdowns(by_module=detail == "full")}
        blob = encode(serve_report(report, "", key, True, detail))
        out.append((key, "ok", blob, {k: report[k] for k in (*FIGURES, "input_shape", "output_shape", "dtype",
                                                              "batch_size", "cost_model_version", "candidate")}))
    return out, encode_rows(rows)


def _worker_item(what: bytes | str | Spec, in_channels: int | None, decode: Callable[[bytes], Any] | None) -> Prepared:
    """The job's candidate: wire bytes (decoded here, with this process's block memo), a built-in
    name, or a spec. The server validated it already; a failure here is an engine error."""
    if isinstance(what, bytes):
        assert decode is not None, "wire bytes need the servicer's decoder"
        what = decode(what)
        if isinstance(what, BlockCandidate):
            what = what.block
    if isinstance(what, str):
        return Prepared(resolve(what), what, what)
    return Prepared(what, what.kind, None, in_channels)


def rebuild_error(state: tuple[Any, ...]) -> OracleError:
    """The error a job's ``(code, message, violations, quota)`` state describes."""
    return error_for(*state)
