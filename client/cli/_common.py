"""What every subcommand shares: target and context flags, reading candidates, printing, errors.

Every subcommand runs in-process by default (no server needed) and remotely with ``--server``,
through the same client API, so the CLI is a thin shell over :mod:`client` and prints the same
keys either way. Errors reach the user as ``error: <field path>: <reason>`` lines on stderr with
a non-zero exit; a traceback is a bug.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from cost_oracle.client.errors import OracleError
from cost_oracle.client.types import PARETO_METRICS
from cost_oracle.contract.budget import Budget

SERVER_ENV = "COST_ORACLE_SERVER"
TOKEN_ENV = "COST_ORACLE_TOKEN"

#: exit codes: bad input (a field, a flag, a file) vs anything else going wrong
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """A bad flag value or file, reported like a field violation (``--spec: no such file``)."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


# -- flags --------------------------------------------------------------------------------------
def add_target_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where to ask (default: in-process, no server)")
    g.add_argument("--server", metavar="HOST:PORT", default=os.environ.get(SERVER_ENV),
                   help=f"ask a running oracle over gRPC (env {SERVER_ENV})")
    g.add_argument("--token", default=None, help=f"bearer token for --server (env {TOKEN_ENV})")
    g.add_argument("--tls", action="store_true", help="use TLS to --server (system roots unless --tls-ca)")
    g.add_argument("--tls-ca", metavar="FILE", help="PEM root certificate to trust for --server (implies --tls)")
    g.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="per-call deadline in seconds (default: 60; calls that measure latency: 600)")
    g.add_argument("--db-url", default=None, metavar="URL",
                   help="in-process cache: sqlite:///path or postgresql+psycopg://... (env COST_ORACLE_DB_URL; "
                        "default: the cache file under the user cache directory, shared with `serve`)")


def add_context_args(p: argparse.ArgumentParser, *, latency: bool = True, resolution: bool = True) -> None:
    g = p.add_argument_group("context")
    g.add_argument("--batch-size", type=int, default=1, metavar="N", help="batch size (default 1)")
    if resolution:  # a sweep's --resolution is a grid axis instead
        g.add_argument("--resolution", dest="context_resolution", type=int, default=None, metavar="PX",
                       help="input resolution (default: the network's own; required for a standalone block)")
    g.add_argument("--dtype", default="float32", help="float32 | float16 | bfloat16 | float64 (default float32)")
    if resolution:
        g.add_argument("--in-channels", type=int, default=None, metavar="C",
                       help="input channels of a standalone block spec")
    g.add_argument("--detail", default=None, choices=("full", "totals", "scalars"),
                   help="how much of each report to return")
    if not latency:
        return
    g.add_argument("--device", default="cpu", help="latency device: cpu, cuda, cuda:N (default cpu)")
    g.add_argument("--latency", dest="latency", action="store_const", const="measure", default="none",
                   help="add a measured latency on --device (cached; the first measurement takes seconds)")
    g.add_argument("--latency-mode", dest="latency", choices=("none", "measure", "predict", "auto"),
                   help="how to get the latency: measure, predict (--latency-method), or auto (a cached "
                        "measurement, else a prediction)")
    g.add_argument("--latency-method", default="default",
                   choices=("default", "kernel", "block_table", "roofline", "flops"),
                   help="prediction method (default: kernel once `cost-oracle latency fit` ran for this device "
                        "and context, else block_table)")
    g.add_argument("--never-measure", action="store_true",
                   help="a prediction that would need measurements first fails instead of measuring")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for latency (default: usable cores)")
    g.add_argument("--channels-last", action="store_true", help="measure in channels_last memory format")
    g.add_argument("--compile", action="store_true", help="measure torch.compile instead of eager")


def add_budget_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("budget (unset limits are not checked)")
    g.add_argument("--max-macs", type=_count, metavar="N", help="e.g. 400M, 1.5G, 385814752")
    g.add_argument("--max-flops", type=_count, metavar="N")
    g.add_argument("--max-params", type=_count, metavar="N")
    g.add_argument("--max-memory-access", type=_count, metavar="BYTES", help="memory access in bytes (e.g. 100M)")
    g.add_argument("--max-peak-activation", type=_count, metavar="BYTES", help="peak activation memory in bytes")
    g.add_argument("--max-latency-ms", type=float, metavar="MS", help="latency limit on --device")
    g.add_argument("--measure-all", action="store_true",
                   help="measure every analytic survivor instead of only those too close to call")
    g.add_argument("--pareto", default=None, metavar="FIELDS",
                   help="mark the Pareto front over these costs, e.g. macs,latency "
                        "(macs, flops, params, memory_access, peak_activation, latency)")


_SUFFIX = {"k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6, "g": 1e9, "G": 1e9, "b": 1e9, "B": 1e9, "t": 1e12, "T": 1e12}


def _count(text: str) -> int:
    """``400M`` / ``1.5G`` / ``385814752`` as an integer (argparse type)."""
    t = text.strip().replace("_", "")
    scale = 1.0
    if t and t[-1] in _SUFFIX:
        scale, t = _SUFFIX[t[-1]], t[:-1]
    try:
        value = float(t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number like 400M or 1.5G, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return round(value)


# -- building client objects from flags ------------------------------------------------------
def open_oracle(args: argparse.Namespace) -> Any:
    """The remote oracle for ``--server``, else the in-process one (same API, same results)."""
    if getattr(args, "server", None):
        from cost_oracle.client.remote import RemoteOracle

        tls: Any = False
        if getattr(args, "tls_ca", None):
            try:
                tls = Path(args.tls_ca).read_bytes()
            except OSError as exc:
                raise UsageError("--tls-ca", f"cannot read {args.tls_ca}: {exc.strerror}") from None
        elif getattr(args, "tls", False):
            tls = True
        token = getattr(args, "token", None) or os.environ.get(TOKEN_ENV) or None
        kwargs: dict[str, Any] = {"token": token, "tls": tls}
        if getattr(args, "timeout", None) is not None:
            kwargs["timeout"] = args.timeout
        return RemoteOracle(args.server, **kwargs)
    from cost_oracle.client.inprocess import InProcessOracle

    return InProcessOracle(db_url=getattr(args, "db_url", None))


def context_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The context keywords of the client API from the context flags."""
    out: dict[str, Any] = {"batch_size": args.batch_size, "resolution": getattr(args, "context_resolution", None),
                           "dtype": args.dtype}
    if getattr(args, "detail", None):
        out["detail"] = args.detail
    if hasattr(args, "latency"):
        out.update(device=args.device, latency=args.latency, latency_method=args.latency_method,
                   threads=args.threads, memory_format="channels_last" if args.channels_last else "contiguous",
                   compile=args.compile, never_measure=args.never_measure)
    return out


def budget_from_args(args: argparse.Namespace) -> Any:

    return Budget(max_macs=args.max_macs, max_flops=args.max_flops, max_params=args.max_params,
                  max_memory_access_bytes=args.max_memory_access,
                  max_peak_activation_bytes=args.max_peak_activation, max_latency_ms=args.max_latency_ms,
                  measure_all=args.measure_all)


def pareto_from_args(args: argparse.Namespace) -> tuple[str, ...]:

    if not getattr(args, "pareto", None):
        return ()
    names = [n.strip() for n in args.pareto.split(",") if n.strip()]
    bad = [n for n in names if n not in PARETO_METRICS]
    if bad or not names:
        raise UsageError("--pareto", f"unknown cost {', '.join(bad) or '(none)'}; choose from "
                                     + ", ".join(sorted(set(PARETO_METRICS.values()) | set(PARETO_METRICS))))
    out: list[str] = []
    for n in names:
        canonical = PARETO_METRICS[n]
        if canonical not in out:
            out.append(canonical)
    return tuple(out)


# -- candidates -------------------------------------------------------------------------------
def read_text(path: str, flag: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        raise UsageError(flag, f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(flag, f"is a directory: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(flag, f"cannot read {path}: {exc}") from None


def load_spec_file(path: str, flag: str = "--spec") -> Any:
    """A candidate as plain JSON data (a spec object, ``{"name": ...}``, or ``{"spec": ..., "in_channels": N}``);
    the client API parses it, so its bad fields are named like any other candidate's."""
    data = parse_json(read_text(path, flag), flag)
    if not isinstance(data, (dict, str)):
        raise UsageError(flag, f"must hold a JSON object (a spec with a 'kind') or a name, got {type(data).__name__}")
    if isinstance(data, dict) and "kind" not in data and data.keys() & {"builtin", "network", "block"}:
        return _from_proto_json(data, flag)
    return data


#: the fields of the proto ``Candidate`` message as proto-JSON writes them (what a gRPC user sends)
_PROTO_CANDIDATE = {"builtin", "network", "block", "in_channels", "inChannels"}


def _from_proto_json(data: dict[str, Any], flag: str) -> Any:
    """A candidate written in the proto-JSON form of ``costoracle.v1.Candidate`` (``{"network":
    {"stages": [{"blocks": [{"mbconv": {...}}]}]}}``), read with protobuf's own JSON parser and
    turned into the spec format (``{"kind": "network", "stages": [[{"kind": "mbconv", ...}]]}``)."""
    from google.protobuf import json_format

    from cost_oracle.contract.convert import candidate_from_proto
    from costoracle.v1 import spec_pb2

    if not data.keys() <= _PROTO_CANDIDATE:
        extra = ", ".join(sorted(data.keys() - _PROTO_CANDIDATE))
        raise UsageError(flag, f"looks like a proto-JSON Candidate but has other keys ({extra}); a spec file is "
                               "either that or a spec object tagged with \"kind\" (see cost-oracle spec NAME)")
    try:
        msg = json_format.ParseDict(data, spec_pb2.Candidate())
        cand = candidate_from_proto(msg)
    except json_format.ParseError as exc:
        raise UsageError(flag, f"not a valid proto-JSON Candidate: {str(exc)[:300]}") from None
    except OracleError as exc:
        raise UsageError(flag, "; ".join(f"{p}: {r}" for p, r in exc.violations) or exc.message) from None
    if isinstance(cand, str):
        return cand
    block = getattr(cand, "block", None)
    if block is not None:
        return {"spec": block.to_dict(), "in_channels": cand.in_channels}
    return cand.to_dict()


def parse_json(text: str, flag: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(flag, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def load_candidates(path: str, flag: str = "candidates") -> list[Any]:
    """Candidates from a file as plain data: a JSON list, or JSON lines (one name or spec object per line,
    bare names allowed, ``#`` comments). Each is parsed by the client API, so a bad one fails alone."""
    text = read_text(path, flag)
    stripped = text.strip()
    if not stripped:
        raise UsageError(flag, f"{path} holds no candidates")
    items: list[Any]
    if stripped.startswith("["):
        data = parse_json(stripped, flag)
        if not isinstance(data, list):
            raise UsageError(flag, "must be a JSON list or JSON lines")
        items = data
    else:
        items = []
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line[0] in "{[\"":
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise UsageError(flag, f"line {lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
            else:
                items.append(line)  # a bare built-in name
    return items


# -- output -------------------------------------------------------------------------------------
def emit_json(obj: Any, out: Any = None, *, indent: int | None = 2) -> None:
    out = out or sys.stdout
    # sorted keys: the in-process and the --server output of one query are then byte-identical
    json.dump(obj, out, indent=indent, sort_keys=True, allow_nan=False, default=_jsonable)
    out.write("\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


def human(value: Any) -> str:
    """Numbers for people: 385814752 -> 385.81M; floats with 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
            if abs(value) >= scale:
                return f"{value / scale:.2f}{suffix}"
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(rows: Sequence[Sequence[Any]], header: Sequence[str], out: Any = None) -> None:
    out = out or sys.stdout
    cells = [[str(h) for h in header]] + [[_clip(human(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, r in enumerate(cells):
        out.write("  ".join(c.ljust(w) if i == 0 or not _numeric(c) else c.rjust(w)
                            for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")


def _clip(cell: str, width: int = 80) -> str:
    return cell if len(cell) <= width else cell[:width - 3] + "..."


_NUMBER = re.compile(r"-?\d[\d.]*(e[+-]?\d+)?[KMGT]?")


def _numeric(cell: str) -> bool:
    return _NUMBER.fullmatch(cell) is not None


def write_csv(rows: Iterable[Sequence[Any]], header: Sequence[str], out: Any = None) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if c is None else c for c in r])
    (out or sys.stdout).write(buf.getvalue())


# -- progress -----------------------------------------------------------------------------------
def add_progress_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="always show the progress bar on stderr (default: only on a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="never show it")


class Progress:
    """A progress bar on stderr for long work (tqdm, a runtime dependency; a plain counter if it
    is missing all the same). A finished bar stays, with its count and time.

    Silent when stderr is not a terminal unless forced (``--progress``), so piped output and
    logs stay clean; never writes to stdout, which carries the results.
    """

    def __init__(self, desc: str, enabled: bool | None = None, unit: str = "cand"):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.desc = desc
        self.unit = unit
        self._bar: Any = None
        self._done = 0
        self._total = 0
        self._last = -1.0

    def update(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None and self._total == 0:
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=sys.stderr, leave=True,
                                 dynamic_ncols=True)
            except ImportError:
                self._bar = None
        self._total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.update(done - self._done)
        else:
            pct = 100.0 * done / total if total else 100.0
            if pct - self._last >= 5 or done == total:
                sys.stderr.write(f"\r{self.desc}: {done}/{total} ({pct:.0f}%)")
                sys.stderr.flush()
                self._last = pct
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self._total:
            sys.stderr.write("\n")


class Ticker:
    """Elapsed seconds on stderr while one long call runs (a measurement has no count to show):
    ``with Ticker("measuring latency on cpu"):``. Silent off a terminal, like :class:`Progress`."""

    def __init__(self, desc: str, enabled: bool | None = None, every_s: float = 1.0):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.desc = desc
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            sys.stderr.write(f"\r{self.desc} ... {time.monotonic() - self._start:.0f} s")
            sys.stderr.flush()

    def __enter__(self) -> Ticker:
        self._start = time.monotonic()
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="cli-ticker", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            if time.monotonic() - self._start >= self.every_s:
                sys.stderr.write(f"\r{self.desc}: {time.monotonic() - self._start:.0f} s\n")


def iter_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    for r in rows:
        yield json.dumps(r, sort_keys=True, allow_nan=False, default=_jsonable)
