"""The ``Oracle`` protocol and what the remote and in-process oracles share.

Both oracles take the same keyword context, normalize candidates the same way and build their
typed results through the same converters from the oracle core's plain results, so a NAS loop
switches between "a server across the network" and "this process" by changing one constructor.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from cost_engine.spec.base import SPEC_KINDS, Spec, SpecError, from_dict
from cost_engine.spec.network import NetworkSpec
from cost_oracle.client.errors import FieldViolation, InvalidArgument, OracleError, error_for
from cost_oracle.client.types import (
    PARETO_METRICS,
    CostResult,
    FilterOutcome,
    FilterResult,
    ItemError,
    ServerInfo,
    SweepOutcome,
)
from cost_oracle.contract.budget import Budget
from cost_oracle.contract.errors import join_path, translate_path
from cost_oracle.contract.types import BlockCandidate, Context

Progress = Callable[[int, int], None]

#: keyword arguments that form the request context (everything else is an error)
CONTEXT_KEYS = ("batch_size", "resolution", "dtype", "device", "latency", "threads", "memory_format", "compile",
                "latency_method", "cudnn_benchmark", "cold_l2", "cuda_graphs", "never_measure")


@runtime_checkable
class Oracle(Protocol):
    """What every oracle answers; ``RemoteOracle``, ``AsyncRemoteOracle`` (awaitable) and ``InProcessOracle``.

    Context keywords (all optional): ``batch_size=1``, ``resolution=None`` (the network's own),
    ``dtype="float32"``, ``device="cpu"``, ``latency`` (``False``/``"none"``, ``True``/``"measure"``,
    ``"predict"``, ``"auto"``), ``latency_method`` (``"default"``: the kernel model once fitted with
    ``fit_latency_model``, else ``"block_table"``; or ``"roofline"``, ``"flops"``, ``"kernel"``),
    ``never_measure`` (a prediction that would have to measure fails instead), ``threads``, ``memory_format``,
    ``compile``, ``cudnn_benchmark``, ``cold_l2``, ``cuda_graphs`` (both CUDA only),
    ``detail`` (``"full"``, ``"totals"``, ``"scalars"``) and
    ``in_channels`` (for a standalone block spec).
    """

    def cost(self, candidate: Any, **context: Any) -> CostResult: ...

    def cost_many(self, candidates: Iterable[Any], **context: Any) -> list[CostResult | ItemError]: ...

    def filter(self, candidates: Iterable[Any], budget: Any, pareto: Sequence[str] | None = None,
               **context: Any) -> FilterOutcome: ...

    def sweep(self, space: Any, budget: Any = None, **context: Any) -> SweepOutcome: ...

    def info(self) -> ServerInfo: ...

    def cache_stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def make_context(**kw: Any) -> Any:
    """The core's ``Context`` from client keywords (``latency=True`` means measure)."""

    unknown = sorted(set(kw) - set(CONTEXT_KEYS))
    if unknown:
        raise TypeError(f"unknown context argument(s): {', '.join(unknown)}")
    lat = kw.get("latency", "none")
    if lat is None or lat is False:
        lat = "none"
    elif lat is True:
        lat = "measure"
    kw["latency"] = lat
    if kw.get("device") is None:
        kw["device"] = ""
    if kw.get("latency_method") is None:
        kw.pop("latency_method", None)
    if kw.get("memory_format") is None:
        kw.pop("memory_format", None)
    return Context(**kw)


def split_kwargs(kw: dict[str, Any]) -> tuple[dict[str, Any], str | None, int | None]:
    """(context keywords, detail, in_channels) from a method's keywords."""
    kw = dict(kw)
    detail = kw.pop("detail", None)
    in_channels = kw.pop("in_channels", None)
    return kw, detail, in_channels


def as_candidate(candidate: Any, in_channels: int | None = None, path: str = "candidate") -> Any:
    """A name, a network spec, or a block candidate, from anything a caller may pass.

    Accepted: a built-in name; a ``NetworkSpec``; a ``BlockCandidate``; a bare block spec with
    ``in_channels``; or plain JSON data — ``{"name": ...}``, a spec dict with ``kind`` (a block
    dict may carry its own ``in_channels``), or ``{"spec": {...}, "in_channels": N}``. Plain data is
    parsed with the engine's ``from_dict``; a bad field raises :class:`InvalidArgument` with the
    same proto-style path the oracle core gives (``candidate.network.stages[0].blocks[1].mbconv.kernel_size``).
    """

    if isinstance(candidate, Mapping):
        candidate, in_channels = _from_data(candidate, in_channels, path)
    if isinstance(candidate, Spec) and not isinstance(candidate, NetworkSpec) and in_channels is not None:
        if isinstance(in_channels, bool) or not isinstance(in_channels, int):

            raise InvalidArgument("bad in_channels", [FieldViolation(join_path(path, "in_channels"),
                                                                     f"must be an integer, got {in_channels!r}")])
        return BlockCandidate(candidate, in_channels)
    return candidate


@dataclass
class Split:
    """A batch split into what can be sent to the oracle and what already failed locally."""

    valid: list[Any] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # input index of each valid candidate
    errors: dict[int, ItemError] = field(default_factory=dict)
    total: int = 0

    def add_error(self, index: int, exc: OracleError) -> None:
        self.errors[index] = ItemError(index, exc.code.value, exc.message, exc.violations)


def split(candidates: Iterable[Any], in_channels: int | None = None,
          convert: Callable[[Any, str], Any] | None = None) -> Split:
    """Coerce every candidate (``convert`` may map it further, e.g. to its wire form), keeping failures apart."""
    out = Split()
    for i, c in enumerate(candidates):
        out.total += 1
        path = f"candidates[{i}]"
        try:
            value = as_candidate(c, in_channels, path)
            if convert is not None:
                value = convert(value, path)
        except OracleError as exc:
            out.add_error(i, exc)
            continue
        out.valid.append(value)
        out.positions.append(i)
    return out


def reindex(err: ItemError, index: int) -> ItemError:
    """A sub-batch item's error at its place in the whole input (``candidates[j]`` -> ``candidates[i]``)."""

    def fix(p: str) -> str:
        return re.sub(r"^candidates\[\d+\]", f"candidates[{index}]", p)

    return ItemError(index, err.code, err.message, tuple(FieldViolation(fix(v.field), v.reason)
                                                        for v in err.violations))


def merge_costs(parts: Split, answered: Sequence[CostResult | ItemError]) -> list[CostResult | ItemError]:
    """Answers for the valid candidates and the local errors, back in input order."""
    out: list[CostResult | ItemError | None] = [None] * parts.total
    for i, e in parts.errors.items():
        out[i] = e
    for pos, r in zip(parts.positions, answered, strict=True):
        out[pos] = reindex(r, pos) if isinstance(r, ItemError) else r
    return [r for r in out if r is not None]


def merge_filter(parts: Split, outcome: FilterOutcome) -> FilterOutcome:
    """A filter answer over the valid candidates, with the local failures put back in input order."""

    results: list[FilterResult | None] = [None] * parts.total
    for i, e in parts.errors.items():
        results[i] = FilterResult(index=i, feasible=False, error=e, decided_by="error")
    for r in outcome.results:
        pos = parts.positions[r.index]
        results[pos] = dataclasses.replace(r, index=pos, error=reindex(r.error, pos) if r.error else None)
    return FilterOutcome(results=tuple(r for r in results if r is not None),
                         feasible=tuple(sorted(parts.positions[i] for i in outcome.feasible)),
                         pareto_front=tuple(sorted(parts.positions[i] for i in outcome.pareto_front)),
                         measurements=outcome.measurements)


def _from_data(data: Mapping[str, Any], in_channels: int | None, path: str) -> tuple[Any, int | None]:

    if "kind" not in data and set(data) <= {"name", "builtin"} and data:
        name = data.get("name", data.get("builtin"))
        if not isinstance(name, str):
            raise InvalidArgument("bad name", [FieldViolation(join_path(path, "builtin"), "must be a string")])
        return name, in_channels
    if "kind" not in data and "spec" in data and set(data) <= {"spec", "in_channels"}:
        inner = data["spec"]
        if "in_channels" in data:
            in_channels = data["in_channels"]
        if not isinstance(inner, Mapping):
            raise InvalidArgument("bad spec", [FieldViolation(path, "spec must be an object with a 'kind'")])
        data = inner
    kind = data.get("kind")
    if isinstance(kind, str) and kind != "network" and "in_channels" in data:
        fields = getattr(SPEC_KINDS.get(kind), "__dataclass_fields__", {})
        if "in_channels" not in fields:  # the block's own input channels, not a spec field
            in_channels = data["in_channels"]
            data = {k: v for k, v in data.items() if k != "in_channels"}
    try:
        spec = from_dict(dict(data))
    except SpecError as exc:
        prefix = join_path(path, "network") if kind == "network" else (
            join_path(path, f"block.{kind}") if isinstance(kind, str) and kind in SPEC_KINDS else path)
        raise InvalidArgument(str(exc), [
            FieldViolation(join_path(prefix, translate_path(e.path, data) if kind == "network" else e.path)
                           if e.path else prefix, e.reason) for e in exc.errors]) from None
    return spec, in_channels


def pareto_names(pareto: Sequence[str] | str | None) -> tuple[str, ...]:
    """Canonical Pareto field names (``memory_access`` -> ``memory_access_bytes`` ...)."""
    if not pareto:
        return ()
    if isinstance(pareto, str):
        pareto = [p for p in pareto.split(",") if p.strip()]
    out: list[str] = []
    bad = []
    for name in pareto:
        canonical = PARETO_METRICS.get(name.strip())
        if canonical is None:
            bad.append(name)
        elif canonical not in out:
            out.append(canonical)
    if bad:
        raise InvalidArgument("unknown Pareto field", [FieldViolation("pareto", f"unknown cost {b!r}; choose from "
                                                                                 + ", ".join(sorted(PARETO_METRICS)))
                                                       for b in bad])
    return tuple(out)


def budget_or_default(budget: Any) -> Any:

    if budget is None:
        return Budget()
    if isinstance(budget, dict):
        return Budget(**budget)
    return budget


# -- converters from the oracle core's results ---------------------------------------------
def oracle_error(exc: OracleError) -> OracleError:
    """The core's error as a remote caller receives it: the same class, with the status's message
    (the violations, when there are any)."""
    return error_for(exc.code, exc.text(), exc.violations, exc.quota)

