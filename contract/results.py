"""The oracle's answers as plain types, one per concept: what the core returns, what the servicer
turns into messages, and what every client (remote, asyncio, in-process) hands its caller.

Every result converts to and from the plain dict the CLI prints (``to_dict``/``from_dict``), so
"identical keys in both modes" holds by construction rather than by two hand-kept field lists.
Keys a newer server adds land in ``extra`` and survive a round trip instead of being dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from cost_oracle.contract.budget import Constraint
from cost_oracle.contract.errors import FieldViolation, OracleError

#: What a caller may pass as a candidate: a cost_engine spec or a built-in model name.
Candidate = Union[Any, str]  # noqa: UP007 - cost_engine.spec.Spec, kept Any so the types import without it

#: The figures a budget can limit, by their flag / field names.
BUDGET_FIELDS = ("max_macs", "max_flops", "max_params", "max_memory_access_bytes", "max_peak_activation_bytes",
                 "max_latency_ms")

#: Cost figures a Pareto front may be taken over (all minimized): accepted names -> canonical name.
PARETO_METRICS = {
    "macs": "macs",
    "flops": "flops",
    "params": "params",
    "memory_access": "memory_access_bytes",
    "memory_access_bytes": "memory_access_bytes",
    "peak_activation": "peak_activation_bytes",
    "peak_activation_bytes": "peak_activation_bytes",
    "latency": "latency_ms",
    "latency_ms": "latency_ms",
}


def _split(cls: type, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    known = {k: v for k, v in data.items() if k in names}
    extra = {k: v for k, v in data.items() if k not in names}
    return known, extra


@dataclass(frozen=True)
class LatencyResult:
    """A latency figure and how it was obtained (``source``: measured or predicted)."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    cv: float
    runs: int
    source: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyResult:
        known, extra = _split(cls, data)
        return cls(
            median_ms=float(known.get("median_ms", 0.0)),
            p10_ms=float(known.get("p10_ms", 0.0)),
            p90_ms=float(known.get("p90_ms", 0.0)),
            cv=float(known.get("cv", 0.0)),
            runs=int(known.get("runs", 0)),
            source=str(known.get("source", "")),
            extra=extra,
        )

    @property
    def noisy(self) -> bool:
        """The measurement's 95% CI is wider than the server's bound (``noisy_rel_ci``)."""
        return bool(self.extra.get("noisy"))

    @property
    def method(self) -> str:
        """How it was obtained: ``paired`` (measured), or the prediction method (``kernel``,
        ``block_table``, ``roofline``, ``flops``) a request's ``default`` resolved to."""
        return str(self.extra.get("method", ""))

    @property
    def interval(self) -> tuple[float, float, float] | None:
        """A prediction's (low ms, high ms, level), e.g. the kernel model's 90% interval; None
        for a measurement (its ``ci_low_ms``/``ci_high_ms`` are a 95% CI of the median)."""
        level = float(self.extra.get("interval_level") or 0.0)
        if self.source != "predicted" or not level:
            return None
        return float(self.extra.get("ci_low_ms", 0.0)), float(self.extra.get("ci_high_ms", 0.0)), level

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"median_ms": self.median_ms, "p10_ms": self.p10_ms, "p90_ms": self.p90_ms,
                               "cv": self.cv, "runs": self.runs, "source": self.source}
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class CostResult:
    """Every figure of the engine's ``CostReport.to_dict()`` plus where the answer came from.

    ``cache_hit`` says whether the oracle served a stored row; ``cache_key`` is the row's key
    (sha256 of canonical JSON of spec, context and cost-model version).
    """

    candidate: str
    batch_size: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    dtype: str
    params: int
    buffers: int
    macs: int
    flops: int
    memory_access_elements: int
    memory_access_bytes: int
    memory_access_bytes_fused: int
    peak_activation_bytes: int
    activations: int
    arithmetic_intensity: float
    op_count: int
    unknown_ops: dict[str, int]
    by_op_type: dict[str, dict[str, int]]
    by_module: dict[str, dict[str, int]]
    views: dict[str, dict[str, int]]
    cost_model_version: str
    #: False: an op in ``unknown_ops`` may carry MACs, the totals are a lower bound (traced modules only)
    complete: bool = True
    cache_hit: bool = False
    cache_key: str = ""
    sources: dict[str, str] = field(default_factory=dict)
    latency: LatencyResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostResult:
        known, extra = _split(cls, data)
        latency = known.pop("latency", None)
        for shape in ("input_shape", "output_shape"):
            known[shape] = tuple(int(v) for v in known.get(shape, ()))
        for mapping in ("unknown_ops", "by_op_type", "by_module", "views", "sources"):
            known[mapping] = dict(known.get(mapping) or {})
        known.setdefault("cost_model_version", "")
        return cls(**known, latency=LatencyResult.from_dict(latency) if latency else None, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The JSON the CLI prints: ``to_dict()`` keys of the engine, ``cache_hit``, ``cache_key``
        and, when latency was asked for, ``latency``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("extra", "latency"):
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        out.update(self.extra)
        if self.latency is not None:
            out["latency"] = self.latency.to_dict()
        return out

    @property
    def latency_ms(self) -> float | None:
        return self.latency.median_ms if self.latency is not None else None

    def metric(self, name: str) -> float | None:
        """A figure by budget / Pareto name (``macs``, ``memory_access``, ``latency`` ...)."""
        key = PARETO_METRICS.get(name, name)
        if key == "latency_ms":
            return self.latency_ms
        value = getattr(self, key, None)
        return float(value) if isinstance(value, (int, float)) else None


@dataclass(frozen=True)
class ItemError:
    """A candidate of a batch that failed on its own (the rest of the batch still answered)."""

    index: int
    code: str
    message: str
    violations: tuple[FieldViolation, ...] = ()
    #: the server limit a RESOURCE_EXHAUSTED names (``max_pending_measurements``), if any
    quota: str | None = None

    @classmethod
    def of(cls, index: int, err: OracleError) -> ItemError:
        """Candidate ``index``'s error, with the message its status carries (the violations, if any)."""
        return cls(index, err.code.value, err.text(), err.violations, err.quota)

    def lines(self) -> list[str]:
        """One line per bad field (or the message), as the CLI prints them."""
        return [str(v) for v in self.violations] or [f"{self.code}: {self.message}"]

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "error": {"code": self.code, "message": self.message,
                                                "violations": [{"field": v.field, "reason": v.reason}
                                                               for v in self.violations]}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ItemError:
        err = data.get("error", data)
        return cls(index=int(data.get("index", 0)), code=str(err.get("code", "UNKNOWN")),
                   message=str(err.get("message", "")),
                   violations=tuple(FieldViolation(str(v.get("field", "")), str(v.get("reason", "")))
                                    for v in err.get("violations", ())))


@dataclass(frozen=True)
class FilterResult:
    """One candidate's verdict under a budget: feasible, or which limits it breaks and by how much."""

    index: int
    feasible: bool
    constraints: tuple[Constraint, ...] = ()
    violated: tuple[str, ...] = ()
    error: ItemError | None = None
    report: CostResult | None = None
    pareto: bool = False
    decided_by: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "feasible": self.feasible, "pareto": self.pareto,
                               "decided_by": self.decided_by,
                               "constraints": [c.to_dict() for c in self.constraints],
                               "violated": list(self.violated)}
        if self.error is not None:
            out["error"] = self.error.to_dict()["error"]
        if self.report is not None:
            out["report"] = self.report.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FilterResult:
        index = int(data.get("index", 0))
        error = data.get("error")
        report = data.get("report")
        return cls(index=index, feasible=bool(data.get("feasible", False)),
                   constraints=tuple(Constraint.from_dict(c) for c in data.get("constraints", ())),
                   violated=tuple(str(v) for v in data.get("violated", ())),
                   error=ItemError.from_dict({"index": index, "error": error}) if error else None,
                   report=CostResult.from_dict(report) if report else None,
                   pareto=bool(data.get("pareto", False)), decided_by=str(data.get("decided_by", "")))


@dataclass(frozen=True)
class FilterOutcome:
    """A filter call's answer: one verdict per candidate (request order) and the summary sets."""

    results: tuple[FilterResult, ...]
    feasible: tuple[int, ...]
    pareto_front: tuple[int, ...] = ()
    measurements: int = 0

    def to_pandas(self) -> Any:
        """One row per candidate: verdict, figures (with include_reports), ``constraint[...]`` columns."""
        from cost_oracle.contract.frames import frame, verdict_row

        front = set(self.pareto_front)
        return frame({**verdict_row(r), "pareto": r.index in front} for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"results": [r.to_dict() for r in self.results], "feasible": list(self.feasible),
                "pareto_front": list(self.pareto_front), "measurements": self.measurements}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FilterOutcome:
        return cls(results=tuple(FilterResult.from_dict(r) for r in data.get("results", ())),
                   feasible=tuple(int(i) for i in data.get("feasible", ())),
                   pareto_front=tuple(int(i) for i in data.get("pareto_front", ())),
                   measurements=int(data.get("measurements", 0)))


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: its coordinates, a label, the generated spec (if asked) and its verdict."""

    index: int
    params: dict[str, float]
    label: str
    result: FilterResult
    spec: dict[str, Any] | None = None
    #: index of an earlier point that generates the same network (never on the Pareto front)
    duplicate_of: int | None = None

    @property
    def point(self) -> dict[str, float]:
        """The grid coordinates (``params`` is their older name; in a report it is a parameter count)."""
        return self.params

    def to_dict(self) -> dict[str, Any]:
        # "point": the grid coordinates (not "params", which in a report is a parameter count)
        out: dict[str, Any] = {"index": self.index, "point": dict(self.params), "label": self.label,
                               **{k: v for k, v in self.result.to_dict().items() if k != "index"}}
        if self.spec is not None:
            out["spec"] = self.spec
        if self.duplicate_of is not None:
            out["duplicate_of"] = self.duplicate_of
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepPoint:
        index = int(data.get("index", 0))
        verdict = {k: v for k, v in data.items() if k not in ("point", "params", "label", "spec", "duplicate_of")}
        dup = data.get("duplicate_of")
        coords = data.get("point", data.get("params")) or {}  # "params": the name before it was "point"
        return cls(index=index, params={str(k): float(v) for k, v in coords.items()},
                   label=str(data.get("label", "")), result=FilterResult.from_dict(verdict),
                   spec=data.get("spec"), duplicate_of=None if dup is None else int(dup))


@dataclass(frozen=True)
class SweepOutcome:
    """A sweep's answer: every point of the space (index order) and the summary sets."""

    total: int
    points: tuple[SweepPoint, ...]
    feasible: tuple[int, ...]
    pareto_front: tuple[int, ...] = ()
    measurements: int = 0
    #: distinct networks among the points (``total`` minus the points marked ``duplicate_of``)
    distinct: int = 0

    def to_pandas(self) -> Any:
        """One row per point: its label, coordinates (``point[...]``), duplicate_of, verdict and figures."""
        from cost_oracle.contract.frames import frame, verdict_row

        front = set(self.pareto_front)
        return frame({"index": p.index, "label": p.label, **{f"point[{k}]": v for k, v in p.params.items()},
                      "duplicate_of": p.duplicate_of, **verdict_row(p.result), "pareto": p.index in front}
                     for p in self.points)

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "points": [p.to_dict() for p in self.points],
                "feasible": list(self.feasible), "pareto_front": list(self.pareto_front),
                "measurements": self.measurements, "distinct": self.distinct}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepOutcome:
        return cls(total=int(data.get("total", 0)),
                   points=tuple(SweepPoint.from_dict(p) for p in data.get("points", ())),
                   feasible=tuple(int(i) for i in data.get("feasible", ())),
                   pareto_front=tuple(int(i) for i in data.get("pareto_front", ())),
                   measurements=int(data.get("measurements", 0)), distinct=int(data.get("distinct", 0)))


@dataclass(frozen=True)
class ServerInfo:
    """What an oracle is: versions, cost-model version, devices, limits, spec kinds."""

    data: dict[str, Any]

    @property
    def cost_model_version(self) -> str:
        return str(self.data.get("cost_model_version", ""))

    @property
    def devices(self) -> list[Any]:
        return list(self.data.get("devices", []))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


@dataclass(frozen=True)
class SweepChunk:
    """Part of a streamed sweep: ``points`` are final except their ``pareto`` flag (the front is
    known only when the last point is costed; the closing :class:`SweepOutcome` lists it)."""

    total: int
    points: tuple[SweepPoint, ...]
