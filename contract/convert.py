"""Protobuf messages <-> the engine's specs, the oracle's request dataclasses and report dicts.

Spec conversion is generic on purpose: proto field names equal the engine's dataclass field
names and each ``Block`` oneof field is named for its spec kind, so a message becomes the
engine's plain dict by walking descriptors (only fields the client *set* — proto3 ``optional``
gives presence — so an unset field takes the engine default) and ``cost_engine.spec.from_dict``
validates it. No per-kind code exists here: a newly registered spec kind needs only its message
and oneof entry in ``spec.proto`` (a test checks that the two agree).

Nothing a client sends is evaluated, imported or unpickled: a kind is a oneof field name that
selects a registered class, and values are proto scalars.

Error paths are proto paths: ``candidates[3].network.stages[0].blocks[1].mbconv.kernel_size``.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from cost_engine.keys import spec_json
from cost_engine.spec.base import Spec, SpecError, from_dict, to_dict
from cost_engine.spec.network import NetworkSpec
from cost_oracle.contract import wire as _wire
from cost_oracle.contract.budget import Budget, Constraint
from cost_oracle.contract.errors import (
    InvalidArgument,
    OracleError,
    error_for,
    from_status,
    invalid,
    join_path,
    spec_violations,
)
from cost_oracle.contract.results import CostResult, FilterResult, ItemError, SweepPoint
from cost_oracle.contract.spaces import EfficientNetCompoundSpace, FasterNetSpace, MultiplierSpace, Space
from cost_oracle.contract.types import BlockCandidate, Context, Limits
from costoracle.v1 import oracle_pb2 as pb
from costoracle.v1 import spec_pb2 as spb

__all__ = [
    "budget_from_proto",
    "budget_to_proto",
    "calibration_to_proto",
    "candidate_from_proto",
    "candidate_from_wire",
    "candidate_to_proto",
    "context_from_proto",
    "context_to_proto",
    "cost_result_from_proto",
    "filter_result_from_proto",
    "filter_result_to_proto",
    "fit_progress_to_proto",
    "info_to_proto",
    "item_error_from_status",
    "item_error_to_status",
    "report_blob",
    "report_to_dict",
    "report_to_proto",
    "space_from_proto",
    "space_to_proto",
    "stats_to_proto",
    "status_to_error",
    "sweep_point_from_proto",
    "sweep_point_to_proto",
]

_BLOCK_KINDS: tuple[str, ...] = tuple(f.name for f in spb.Block.DESCRIPTOR.oneofs_by_name["kind"].fields)
_BLOCK_KIND_LIST = ", ".join(_BLOCK_KINDS)

DTYPES = {pb.DTYPE_UNSPECIFIED: "float32", pb.DTYPE_FLOAT32: "float32", pb.DTYPE_FLOAT16: "float16",
          pb.DTYPE_BFLOAT16: "bfloat16", pb.DTYPE_FLOAT64: "float64"}
_DTYPE_ENUM = {"float32": pb.DTYPE_FLOAT32, "float16": pb.DTYPE_FLOAT16, "bfloat16": pb.DTYPE_BFLOAT16,
               "float64": pb.DTYPE_FLOAT64}
LATENCY_MODES = {pb.LATENCY_MODE_UNSPECIFIED: "none", pb.LATENCY_MODE_NONE: "none",
                 pb.LATENCY_MODE_MEASURE: "measure", pb.LATENCY_MODE_PREDICT: "predict", pb.LATENCY_MODE_AUTO: "auto"}
_LATENCY_ENUM = {"none": pb.LATENCY_MODE_NONE, "measure": pb.LATENCY_MODE_MEASURE,
                 "predict": pb.LATENCY_MODE_PREDICT, "auto": pb.LATENCY_MODE_AUTO}
METHODS = {pb.LATENCY_METHOD_UNSPECIFIED: "default", pb.LATENCY_METHOD_BLOCK_TABLE: "block_table",
           pb.LATENCY_METHOD_ROOFLINE: "roofline", pb.LATENCY_METHOD_FLOPS: "flops",
           pb.LATENCY_METHOD_KERNEL: "kernel"}
_METHOD_ENUM = {"default": pb.LATENCY_METHOD_UNSPECIFIED, "block_table": pb.LATENCY_METHOD_BLOCK_TABLE,
                "roofline": pb.LATENCY_METHOD_ROOFLINE, "flops": pb.LATENCY_METHOD_FLOPS,
                "kernel": pb.LATENCY_METHOD_KERNEL}
FORMATS = {pb.MEMORY_FORMAT_UNSPECIFIED: "contiguous", pb.MEMORY_FORMAT_CONTIGUOUS: "contiguous",
           pb.MEMORY_FORMAT_CHANNELS_LAST: "channels_last"}
_FORMAT_ENUM = {"contiguous": pb.MEMORY_FORMAT_CONTIGUOUS, "channels_last": pb.MEMORY_FORMAT_CHANNELS_LAST}
DETAILS = {pb.DETAIL_UNSPECIFIED: "full", pb.DETAIL_FULL: "full", pb.DETAIL_TOTALS: "totals",
           pb.DETAIL_SCALARS: "scalars"}
_DETAIL_ENUM = {"full": pb.DETAIL_FULL, "totals": pb.DETAIL_TOTALS, "scalars": pb.DETAIL_SCALARS}
SOURCES = {pb.SOURCE_ANALYTIC: "analytic", pb.SOURCE_MEASURED: "measured", pb.SOURCE_PREDICTED: "predicted",
           pb.SOURCE_UNSPECIFIED: ""}
_SOURCE_ENUM = {v: k for k, v in SOURCES.items()}
COST_FIELDS = {pb.COST_FIELD_MACS: "macs", pb.COST_FIELD_FLOPS: "flops", pb.COST_FIELD_PARAMS: "params",
               pb.COST_FIELD_MEMORY_ACCESS_BYTES: "memory_access_bytes",
               pb.COST_FIELD_PEAK_ACTIVATION_BYTES: "peak_activation_bytes", pb.COST_FIELD_LATENCY_MS: "latency_ms"}
_COST_FIELD_ENUM = {v: k for k, v in COST_FIELDS.items()}


def _enum(table: Mapping[int, str], value: int, path: str, errors: list[tuple[str, str]]) -> str:
    if value in table:
        return table[value]
    errors.append((path, f"unknown enum value {value}"))
    return ""


# -- specs: proto -> engine -----------------------------------------------------------------
def _scalars(msg: Any) -> dict[str, Any]:
    """Set scalar fields of a spec message as a plain dict (repeated/message fields are handled apart)."""
    return {fd.name: value for fd, value in msg.ListFields() if fd.message_type is None}


class _BlockTable(dict):  # type: ignore[type-arg]
    """bytes -> (spec, canonical JSON); a miss converts the block from its bytes, so that a network
    with a few new blocks is still read off the wire (only those blocks become messages). A block
    that does not decode or validate is a ``KeyError``: the caller takes the full path, which names
    the field."""

    def __missing__(self, key: bytes) -> tuple[Spec, str]:
        try:
            spec = block_from_proto(spb.Block.FromString(key), "block")
        except (DecodeError, RuntimeError, ValueError, OracleError):
            raise KeyError("block") from None
        return _BLOCKS.put(key, spec)


class _BlockMemo:
    """Parsed and validated block specs, each with its canonical JSON, by their serialized message:
    blocks repeat across the candidates of a search space, so most blocks of a new candidate were
    parsed (and their part of its cache key written) before."""

    def __init__(self, capacity: int = 65536):
        self.capacity = capacity
        self._data: _BlockTable = _BlockTable()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Spec | None:
        hit = self._data.get(key)
        return None if hit is None else hit[0]

    def put(self, key: bytes, spec: Spec) -> tuple[Spec, str]:
        entry = (spec, spec_json(spec))
        with self._lock:
            if len(self._data) >= self.capacity:
                self._data.clear()  # crude but bounded; refilled by the next requests
            self._data[key] = entry
        return entry


_BLOCKS = _BlockMemo()


def block_dict(msg: spb.Block, path: str, errors: list[tuple[str, str]]) -> dict[str, Any] | None:
    """A ``Block`` message as the engine's ``{"kind": ..., field: value}`` dict."""
    kind = msg.WhichOneof("kind")
    if kind is None:
        errors.append((path, f"empty block: set exactly one of {_BLOCK_KIND_LIST}"))
        return None
    return {"kind": kind, **_scalars(getattr(msg, kind))}


def block_from_proto(msg: spb.Block, path: str) -> Spec:
    """One block spec, validated by ``from_dict``; raises InvalidArgument (paths under ``path``)."""
    key = msg.SerializeToString(deterministic=True)
    hit = _BLOCKS.get(key)
    if hit is not None:
        return hit
    errors: list[tuple[str, str]] = []
    d = block_dict(msg, path, errors)
    if d is None:
        raise InvalidArgument("empty block", errors)
    try:
        spec = from_dict(d)
    except SpecError as exc:
        base = f"{path}.{d['kind']}"
        raise invalid([(join_path(base, e.path), e.reason) for e in exc.errors]) from None
    _BLOCKS.put(key, spec)
    return spec


@functools.lru_cache(maxsize=4096)
def _shell_errors(scalars: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, str], ...]:
    """Field errors of a network's own scalar fields (engine paths), from ``from_dict``."""
    fields = dict(scalars)
    try:
        from_dict({"kind": "network", **fields}, expected=NetworkSpec)
    except SpecError as exc:
        return tuple((e.path, e.reason) for e in exc.errors if e.path in fields)
    return ()


def _shell_ok(scalars: tuple[tuple[str, Any], ...]) -> bool:
    return not _shell_errors(scalars)


def network_from_wire(raw: bytes) -> tuple[NetworkSpec, str] | None:
    """A serialized ``Candidate``'s network and its canonical JSON without message objects (blocks
    seen before are looked up by their bytes, a new one is converted on its own; see
    ``cost_oracle.contract.wire``); None means: take :func:`candidate_from_proto`."""
    return _wire.network_from_wire(raw, _BLOCKS._data, _shell_ok)


def network_from_proto(msg: spb.NetworkSpec, path: str) -> NetworkSpec:
    """A network from its message: every block validated (memoized), then the network's own fields
    and rules by the engine's validation; every bad field of every block is reported at once."""
    errors: list[tuple[str, str]] = []

    memo = _BLOCKS._data

    def blocks(items: Sequence[spb.Block], base: str) -> tuple[Spec, ...]:
        out = []
        for i, b in enumerate(items):
            hit = memo.get(b.SerializeToString(deterministic=True))  # the hot path: a block seen before
            if hit is not None:
                spec = hit[0]
            else:
                try:
                    spec = block_from_proto(b, f"{base}[{i}]")
                except OracleError as exc:
                    errors.extend(exc.violations)
                    continue
            out.append(spec)
        return tuple(out)

    stem = blocks(msg.stem, f"{path}.stem")
    stages = tuple(blocks(stage.blocks, f"{path}.stages[{s}].blocks") for s, stage in enumerate(msg.stages))
    head = blocks(msg.head, f"{path}.head")
    scalars = _scalars(msg)
    # the network's own scalar fields go through from_dict's typed parsing and bounds too (on a
    # shell with no blocks, so only its "needs at least one block" rule is not about them);
    # the candidates of a search space share these few fields, so the verdict is memoized
    errors.extend((join_path(path, p), reason) for p, reason in _shell_errors(tuple(sorted(scalars.items()))))
    if errors:
        if not (msg.stem or msg.head or any(st.blocks for st in msg.stages)):
            errors.append((f"{path}.stages", "a network needs at least one block"))
        raise InvalidArgument("invalid network", errors)
    spec = NetworkSpec(stem=stem, stages=stages, head=head, **scalars)
    problems = spec_violations(spec, path, recursive=False)
    if problems:
        raise invalid(problems)
    return spec


def candidate_from_proto(msg: spb.Candidate, path: str = "candidate") -> Spec | str | BlockCandidate:
    """What the oracle takes: a built-in name, a NetworkSpec, or a BlockCandidate; raises InvalidArgument."""
    which = msg.WhichOneof("candidate")
    has_in = msg.HasField("in_channels")
    if which == "builtin":
        if has_in:
            raise InvalidArgument("in_channels is only for a block", [(f"{path}.in_channels",
                                                                      "only a block candidate takes in_channels")])
        if not msg.builtin:
            raise InvalidArgument("empty name", [(f"{path}.builtin", "must name a built-in model")])
        return msg.builtin
    if which == "network":
        if has_in:
            raise InvalidArgument("in_channels is only for a block",
                                  [(f"{path}.in_channels", "a network takes network.in_channels instead")])
        return network_from_proto(msg.network, f"{path}.network")
    if which == "block":
        errors: list[tuple[str, str]] = []
        spec: Spec | None = None
        try:
            spec = block_from_proto(msg.block, f"{path}.block")
        except OracleError as exc:
            errors.extend(exc.violations)
        if not has_in:
            errors.append((f"{path}.in_channels", "a block candidate needs in_channels"))
        if errors or spec is None:
            raise InvalidArgument("invalid block candidate", errors)
        return BlockCandidate(spec, int(msg.in_channels))
    raise InvalidArgument("empty candidate", [(path, "set one of builtin, network or block")])


# -- specs: engine -> proto -----------------------------------------------------------------
def _fill(msg: Any, data: Mapping[str, Any]) -> None:
    fields = msg.DESCRIPTOR.fields_by_name
    for name, value in data.items():
        if name == "kind":
            continue
        fd = fields[name]
        if fd.message_type is None:
            setattr(msg, name, value)
        elif fd.message_type.name == "Block":
            for b in value:
                _fill_block(getattr(msg, name).add(), b)
        elif fd.message_type.name == "Stage":
            for stage in value:
                st = getattr(msg, name).add()
                for b in stage:
                    _fill_block(st.blocks.add(), b)
        else:  # pragma: no cover - spec.proto has no other message fields
            raise TypeError(f"unexpected message field {name}")


def _fill_block(msg: spb.Block, data: Mapping[str, Any]) -> None:
    kind = data["kind"]
    if kind not in _BLOCK_KINDS:
        raise ValueError(f"spec kind {kind!r} has no Block message in spec.proto")
    _fill(getattr(msg, kind), data)
    if not data.keys() - {"kind"}:
        getattr(msg, kind).SetInParent()  # a block with only defaults still selects its kind


def candidate_to_proto(candidate: Spec | str | BlockCandidate) -> spb.Candidate:
    if isinstance(candidate, str):
        return spb.Candidate(builtin=candidate)
    if isinstance(candidate, BlockCandidate):
        msg = spb.Candidate(in_channels=candidate.in_channels)
        _fill_block(msg.block, to_dict(candidate.block))
        return msg
    if isinstance(candidate, NetworkSpec):
        msg = spb.Candidate()
        _fill(msg.network, to_dict(candidate))
        return msg
    if isinstance(candidate, Spec):
        raise TypeError(f"a single {candidate.kind!r} block needs in_channels: pass BlockCandidate(block, in_channels)")
    raise TypeError(f"not a candidate: {type(candidate).__name__}")


# -- context, budget, detail ----------------------------------------------------------------
def context_from_proto(msg: pb.Context, path: str = "context") -> Context:
    errors: list[tuple[str, str]] = []
    ctx = Context(
        batch_size=msg.batch_size if msg.HasField("batch_size") else 1,
        resolution=msg.resolution if msg.HasField("resolution") else None,
        dtype=_enum(DTYPES, msg.dtype, f"{path}.dtype", errors),
        device=msg.device,
        latency=_enum(LATENCY_MODES, msg.latency, f"{path}.latency", errors),
        threads=msg.threads if msg.HasField("threads") else None,
        memory_format=_enum(FORMATS, msg.memory_format, f"{path}.memory_format", errors),
        compile=msg.compile,
        latency_method=_enum(METHODS, msg.latency_method, f"{path}.latency_method", errors),
        cudnn_benchmark=msg.cudnn_benchmark,
        cold_l2=msg.cold_l2,
        cuda_graphs=msg.cuda_graphs,
        never_measure=msg.never_measure,
    )
    if errors:  # check the other fields too, with the bad enums at their defaults
        bad = {p for p, _ in errors}
        probe = Context(batch_size=ctx.batch_size, resolution=ctx.resolution, device=ctx.device, threads=ctx.threads)
        errors.extend(e for e in probe.validate(path) if e[0] not in bad)
    else:
        errors.extend(ctx.validate(path))
    if errors:
        raise InvalidArgument("invalid context", errors)
    return ctx


def context_to_proto(ctx: Context) -> pb.Context:
    msg = pb.Context(batch_size=ctx.batch_size, dtype=_DTYPE_ENUM.get(ctx.dtype, pb.DTYPE_UNSPECIFIED),
                     device=ctx.device, latency=_LATENCY_ENUM.get(ctx.latency, pb.LATENCY_MODE_UNSPECIFIED),
                     memory_format=_FORMAT_ENUM.get(ctx.memory_format, pb.MEMORY_FORMAT_UNSPECIFIED),
                     compile=ctx.compile, latency_method=_METHOD_ENUM.get(ctx.latency_method,
                                                                          pb.LATENCY_METHOD_UNSPECIFIED),
                     cudnn_benchmark=ctx.cudnn_benchmark, cold_l2=ctx.cold_l2, cuda_graphs=ctx.cuda_graphs,
                     never_measure=ctx.never_measure)
    if ctx.resolution is not None:
        msg.resolution = ctx.resolution
    if ctx.threads is not None:
        msg.threads = ctx.threads
    return msg


def detail_from_proto(value: int, path: str = "detail") -> str:
    errors: list[tuple[str, str]] = []
    d = _enum(DETAILS, value, path, errors)
    if errors:
        raise InvalidArgument("invalid detail", errors)
    return d


def detail_to_proto(detail: str) -> int:
    return _DETAIL_ENUM[detail]


_BUDGET_FIELDS = ("max_macs", "max_flops", "max_params", "max_memory_access_bytes", "max_peak_activation_bytes",
                  "max_latency_ms")


def budget_from_proto(msg: pb.Budget, path: str = "budget") -> Budget:
    kwargs: dict[str, Any] = {f: getattr(msg, f) for f in _BUDGET_FIELDS if msg.HasField(f)}
    b = Budget(measure_all=msg.measure_all, **kwargs)
    errors = b.validate(path)
    if errors:
        raise InvalidArgument("invalid budget", errors)
    return b


def budget_to_proto(budget: Budget) -> pb.Budget:
    msg = pb.Budget(measure_all=budget.measure_all)
    for f in _BUDGET_FIELDS:
        v = getattr(budget, f)
        if v is not None:
            setattr(msg, f, v)
    return msg


def pareto_from_proto(values: Sequence[int], path: str = "pareto_fields") -> list[str]:
    errors: list[tuple[str, str]] = []
    out = [_enum(COST_FIELDS, v, f"{path}[{i}]", errors) for i, v in enumerate(values)]
    if errors:
        raise InvalidArgument("invalid pareto fields", errors)
    return out


def pareto_to_proto(names: Sequence[str]) -> list[int]:
    return [_COST_FIELD_ENUM[n] for n in names]


# -- reports ---------------------------------------------------------------------------------
_SCALAR_INTS = ("batch_size", "params", "buffers", "macs", "flops", "memory_access_elements", "memory_access_bytes",
                "memory_access_bytes_fused", "peak_activation_bytes", "activations", "op_count")
_COUNTS = tuple(f.name for f in pb.Counts.DESCRIPTOR.fields)
_LATENCY_FIELDS = {f.name: f for f in pb.Latency.DESCRIPTOR.fields}
_LATENCY_LISTS = ("session_medians_ms", "raw_session_medians_ms")


def _counts(c: Mapping[str, Any]) -> pb.Counts:
    return pb.Counts(**{k: int(c.get(k, 0)) for k in _COUNTS})


def latency_to_proto(lat: Mapping[str, Any], msg: pb.Latency | None = None) -> pb.Latency:
    m = msg if msg is not None else pb.Latency()
    for k, v in lat.items():
        fd = _LATENCY_FIELDS.get(k)
        if fd is None:
            continue
        if k == "source":
            m.source = _SOURCE_ENUM.get(str(v), pb.SOURCE_UNSPECIFIED)
        elif k == "fingerprint":
            m.fingerprint.update({str(a): str(b) for a, b in (v or {}).items()})
        elif k in _LATENCY_LISTS:
            getattr(m, k).extend(float(x) for x in v or ())
        elif fd.type == fd.TYPE_DOUBLE:
            x = float(v or 0.0)
            m.__setattr__(k, x if math.isfinite(x) else 0.0)
        elif fd.type == fd.TYPE_BOOL:
            setattr(m, k, bool(v))
        elif fd.type in (fd.TYPE_INT64, fd.TYPE_INT32):
            setattr(m, k, int(v or 0))
        else:
            setattr(m, k, str(v if v is not None else ""))
    return m


def latency_to_dict(m: pb.Latency) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _LATENCY_FIELDS:
        v = getattr(m, name)
        if name == "source":
            out[name] = SOURCES.get(v, "")
        elif name == "fingerprint":
            out[name] = dict(v)
        elif name in _LATENCY_LISTS:
            out[name] = list(v)
        else:
            out[name] = v
    return out


def report_to_proto(d: Mapping[str, Any], msg: pb.CostReport | None = None) -> pb.CostReport:
    """A report dict (``CostReport.to_dict()`` plus the oracle's keys) as a ``CostReport`` message."""
    m = msg if msg is not None else pb.CostReport()
    m.candidate = str(d.get("candidate", ""))
    for k in _SCALAR_INTS:
        setattr(m, k, int(d[k]))
    m.input_shape.extend(d["input_shape"])
    m.output_shape.extend(d["output_shape"])
    m.dtype = d["dtype"]
    m.arithmetic_intensity = float(d["arithmetic_intensity"])
    m.cost_model_version = str(d["cost_model_version"])
    m.complete = bool(d.get("complete", True))
    if "unknown_ops" in d:
        m.unknown_ops.update({k: int(v) for k, v in d["unknown_ops"].items()})
    if "by_op_type" in d:
        for k, c in d["by_op_type"].items():
            m.by_op_type[k].CopyFrom(_counts(c))
    if "by_module" in d:
        m.by_module.extend(pb.ModuleCounts(module=k, counts=_counts(c)) for k, c in d["by_module"].items())
    if "views" in d:
        for tool, counts in d["views"].items():
            view = m.views[tool]
            view.counts.update({k: int(v) for k, v in counts.items() if k not in ("exact", "reason")})
            if "exact" in counts:
                view.exact = bool(counts["exact"])
                view.reason = str(counts.get("reason", ""))
    m.cache_hit = bool(d.get("cache_hit", False))
    m.cache_key = str(d.get("cache_key", ""))
    for k, v in (d.get("sources") or {}).items():
        m.sources[k] = _SOURCE_ENUM.get(v, pb.SOURCE_UNSPECIFIED)
    if d.get("latency"):
        latency_to_proto(d["latency"], m.latency)
    m.detail = _DETAIL_ENUM.get(str(d.get("detail", "full")), pb.DETAIL_FULL)
    return m


def _view_dict(v: pb.ToolView) -> dict[str, Any]:
    out: dict[str, Any] = dict(v.counts)
    if v.HasField("exact") and not v.exact:
        out.update(exact=False, reason=v.reason)
    return out


def report_blob(d: Mapping[str, Any]) -> bytes:
    """A report dict as the serialized ``CostReport`` (what the servicer splices into answers)."""
    return report_to_proto(d).SerializeToString()


def candidate_from_wire(data: bytes) -> Spec | str | BlockCandidate:
    """A serialized ``Candidate`` as what the oracle takes: the network fast path when it applies,
    else the message conversion (the bytes were validated by the server before)."""
    fast = network_from_wire(data)
    return fast[0] if fast is not None else candidate_from_proto(spb.Candidate.FromString(data))


def report_to_dict(m: pb.CostReport) -> dict[str, Any]:
    """A ``CostReport`` message as the dict the CLI prints: ``CostReport.to_dict()`` keys (those the
    report's ``detail`` includes) plus cache_hit, cache_key, sources, detail and latency (if any)."""
    detail = DETAILS.get(m.detail, "full")
    out: dict[str, Any] = {
        "candidate": m.candidate,
        "batch_size": m.batch_size,
        "input_shape": list(m.input_shape),
        "output_shape": list(m.output_shape),
        "dtype": m.dtype,
    }
    for k in _SCALAR_INTS[1:]:
        out[k] = getattr(m, k)
    out["arithmetic_intensity"] = m.arithmetic_intensity
    # same key order as CostReport.to_dict()
    out["op_count"] = out.pop("op_count")
    out["complete"] = m.complete if m.HasField("complete") else True
    if detail != "scalars":
        out["unknown_ops"] = dict(m.unknown_ops)
        out["by_op_type"] = {k: {f: getattr(c, f) for f in _COUNTS} for k, c in sorted(m.by_op_type.items())}
    if detail == "full":
        out["by_module"] = {mc.module: {f: getattr(mc.counts, f) for f in _COUNTS} for mc in m.by_module}
    if detail != "scalars":
        out["views"] = {tool: _view_dict(v) for tool, v in sorted(m.views.items())}
    out["cost_model_version"] = m.cost_model_version
    out["cache_hit"] = m.cache_hit
    out["cache_key"] = m.cache_key
    out["sources"] = {k: SOURCES.get(v, "") for k, v in m.sources.items()}
    out["detail"] = detail
    if m.HasField("latency"):
        out["latency"] = latency_to_dict(m.latency)
    return out


def status_to_error(status: Any) -> OracleError:
    return from_status(status)


# -- filter and sweep results ---------------------------------------------------------------
_DECIDED = ("analytic", "predicted", "measured", "error")


def filter_result_to_proto(r: FilterResult, msg: pb.FilterResult | None = None) -> pb.FilterResult:
    m = msg if msg is not None else pb.FilterResult()
    m.index = r.index
    m.feasible = r.feasible
    for c in r.constraints:
        m.constraints.add(name=c.name, value=_finite(c.value), actual=_finite(c.actual), limit=_finite(c.limit),
                          ratio=_finite(c.ratio, big=True))
    m.violated.extend(r.violated)
    if r.error is not None:
        m.error.CopyFrom(item_error_to_status(r.error))
    if r.report is not None:
        report_to_proto(r.report.to_dict(), m.report)
    m.pareto = r.pareto
    m.decided_by = r.decided_by
    return m


def filter_result_from_proto(m: pb.FilterResult) -> FilterResult:
    return FilterResult(
        index=m.index, feasible=m.feasible,
        constraints=tuple(Constraint(c.name, c.value, c.actual, c.limit, c.ratio) for c in m.constraints),
        violated=tuple(m.violated), error=item_error_from_status(m.index, m.error) if m.HasField("error") else None,
        report=cost_result_from_proto(m.report) if m.HasField("report") else None, pareto=m.pareto,
        decided_by=m.decided_by)


def item_error_to_status(e: ItemError) -> Any:
    return error_for(e.code, e.message, e.violations, e.quota).to_status()


def item_error_from_status(index: int, status: Any) -> ItemError:
    err = from_status(status)  # the message as sent (the violations may have been clipped to fit)
    return ItemError(index, err.code.value, err.message, err.violations, err.quota)


def cost_result_from_proto(m: pb.CostReport) -> CostResult:
    return CostResult.from_dict(report_to_dict(m))


def sweep_point_to_proto(p: SweepPoint, msg: pb.SweepPoint | None = None) -> pb.SweepPoint:
    m = msg if msg is not None else pb.SweepPoint()
    m.index = p.index
    m.params.update({k: float(v) for k, v in p.params.items()})
    if p.spec is not None:
        _fill(m.spec, p.spec)
    filter_result_to_proto(p.result, m.result)
    m.label = p.label
    if p.duplicate_of is not None:
        m.duplicate_of = p.duplicate_of
    return m


def sweep_point_from_proto(m: pb.SweepPoint) -> SweepPoint:
    spec = to_dict(network_from_proto(m.spec, "spec")) if m.HasField("spec") else None
    return SweepPoint(m.index, dict(m.params), m.label, filter_result_from_proto(m.result), spec,
                      m.duplicate_of if m.HasField("duplicate_of") else None)


def space_from_proto(msg: pb.SweepRequest) -> Space:
    which = msg.WhichOneof("space")
    if which == "efficientnet_compound":
        s = msg.efficientnet_compound
        d = EfficientNetCompoundSpace()  # an empty axis takes EfficientNet's own (1.2, 1.1, 1.15), as the CLI
        return EfficientNetCompoundSpace(alpha=tuple(s.alpha) or d.alpha, beta=tuple(s.beta) or d.beta,
                                         gamma=tuple(s.gamma) or d.gamma, phi=tuple(s.phi),
                                         target=s.target if s.HasField("target") else d.target,
                                         tolerance=s.tolerance if s.HasField("tolerance") else d.tolerance)
    if which == "multipliers":
        s = msg.multipliers
        return MultiplierSpace(family=s.family or "efficientnet", width=tuple(s.width), depth=tuple(s.depth),
                               resolution=tuple(s.resolution), resolution_multiplier=tuple(s.resolution_multiplier))
    if which == "fasternet":
        s = msg.fasternet
        return FasterNetSpace(n_div=tuple(s.n_div), mlp_ratio=tuple(s.mlp_ratio),
                              depths=tuple(tuple(d.depths) for d in s.depths), embed_dim=tuple(s.embed_dim),
                              act=tuple(s.act), resolution=tuple(s.resolution))
    raise InvalidArgument("no sweep space", [("space", "set one of efficientnet_compound, multipliers, fasternet")])


def space_to_proto(space: Space, msg: pb.SweepRequest | None = None) -> pb.SweepRequest:
    m = msg if msg is not None else pb.SweepRequest()
    if isinstance(space, EfficientNetCompoundSpace):
        m.efficientnet_compound.CopyFrom(pb.EfficientNetCompoundSpace(
            alpha=space.alpha, beta=space.beta, gamma=space.gamma, phi=space.phi, target=space.target,
            tolerance=space.tolerance))
    elif isinstance(space, MultiplierSpace):
        m.multipliers.CopyFrom(pb.MultiplierSpace(family=space.family, width=space.width, depth=space.depth,
                                                  resolution=space.resolution,
                                                  resolution_multiplier=space.resolution_multiplier))
    elif isinstance(space, FasterNetSpace):
        m.fasternet.CopyFrom(pb.FasterNetSpace(n_div=space.n_div, mlp_ratio=space.mlp_ratio,
                                               depths=[pb.Depths(depths=d) for d in space.depths],
                                               embed_dim=space.embed_dim, act=space.act,
                                               resolution=space.resolution))
    else:
        raise TypeError(f"not a sweep space: {type(space).__name__}")
    return m


# -- info, stats, calibration ---------------------------------------------------------------
def _queue_to_proto(q: Mapping[str, Any], m: pb.QueueStats) -> None:
    for k in ("pending", "in_flight", "done", "coalesced", "dropped", "cache_hits", "failed", "max_pending",
              "worker_restarts"):
        setattr(m, k, int(q.get(k) or 0))
    for dev, s in (q.get("devices") or {}).items():
        d = m.devices[str(dev)]
        d.pending = int(s.get("pending") or 0)
        d.in_flight = int(s.get("in_flight") or 0)
        d.busy_s = float(s.get("busy_s") or 0.0)
        for k in ("done", "failed", "workers"):
            setattr(d, k, int(s.get(k) or 0))
    m.measure_on = str(q.get("measure_on") or "local")


def info_to_proto(info: Mapping[str, Any], limits: Limits | None = None) -> pb.GetServerInfoResponse:
    m = pb.GetServerInfoResponse(server_version=info["server_version"],
                                 cost_model_version=info["cost_model_version"],
                                 latency_protocol_version=info.get("latency_protocol_version", ""),
                                 spec_kinds=info["spec_kinds"], builtins=info["builtins"],
                                 sweep_families=info["sweep_families"], auth_required=bool(info.get("auth_required")),
                                 cache_backend=info.get("cache_backend", ""),
                                 activations=info.get("activations", []))
    m.activation_aliases.update(info.get("activation_aliases", {}))
    m.versions.update({k: str(v) for k, v in info["versions"].items()})
    for d in info["devices"]:
        m.devices.add(name=d["name"], fingerprint={k: str(v) for k, v in d["fingerprint"].items()})
    lim = info["limits"]
    m.limits.CopyFrom(pb.Limits(**{k: int(lim[k]) for k in ("max_batch_size", "max_sweep_size", "max_message_bytes",
                                                              "max_pending_measurements", "default_chunk_size")}))
    _queue_to_proto(info.get("queue") or {}, m.queue)
    return m


def stats_to_proto(stats: Mapping[str, Any]) -> pb.GetCacheStatsResponse:
    m = pb.GetCacheStatsResponse(backend=stats["backend"], entries=stats["entries"], hits=stats["hits"],
                                 misses=stats["misses"], writes=stats["writes"], hit_rate=stats["hit_rate"])
    m.entries_by_kind.update(stats["entries_by_kind"])
    m.counters.update(stats["counters"])
    _queue_to_proto(stats.get("queue") or {}, m.queue)
    return m


def fit_progress_to_proto(d: Mapping[str, Any]) -> pb.FitLatencyModelResponse:
    msg = pb.FitLatencyModelResponse(phase=str(d["phase"]), done=int(d["done"]), total=int(d["total"]),
                                     elapsed_s=float(d["elapsed_s"]))
    model = d.get("model")
    if model is not None:
        m = msg.model
        for name in ("key", "generation", "units", "networks", "unit_measurements", "network_measurements",
                     "profiling_s", "distinct_units_in_space", "interval_90_rel", "stopped_by_budget"):
            setattr(m, name, model[name])
        m.types.extend(model["types"])
        m.fingerprint.update(model["fingerprint"])
        m.unit_counts.update(model["unit_counts"])
        for r in model["rounds"]:
            m.rounds.add(**r)
    return msg


def calibration_to_proto(d: Mapping[str, Any]) -> pb.CalibrateResponse:
    c = pb.Calibration(device=str(d.get("device", "")), dtype=str(d.get("dtype", "")),
                       threads=int(d.get("threads") or 0),
                       peak_flops=float(d.get("peak_flops") or 0.0),
                       bandwidth_bytes_per_s=float(d.get("bandwidth_bytes_per_s") or 0.0),
                       overhead_s_per_op=float(d.get("overhead_s_per_op") or 0.0),
                       protocol_version=str(d.get("protocol_version", "")), cached=bool(d.get("cached")))
    c.fingerprint.update({k: str(v) for k, v in (d.get("fingerprint") or {}).items()})
    return pb.CalibrateResponse(calibration=c)


def _finite(x: float, big: bool = False) -> float:
    if math.isfinite(x):
        return x
    return 1e300 if big and x > 0 else 0.0


