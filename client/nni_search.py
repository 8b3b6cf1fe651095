"""NNI glue: the oracle as an NNI NAS profiler, and a budget filter NNI's strategies sample through
(the optional ``nni`` extra; NNI 3.0, which imports ``pytorch_lightning``).

NNI 3.0 asks two things of a hardware-cost tool. A :class:`nni.nas.profiler.Profiler` turns a
*sample* (the dict of choices a strategy drew from a model space) into one number, which
:class:`~nni.nas.oneshot.pytorch.profiler.RangeProfilerFilter` bounds and
:class:`~nni.nas.oneshot.pytorch.profiler.SampleProfilerPenalty` adds to a one-shot loss; a
*filter* (a :class:`~nni.nas.oneshot.pytorch.profiler.ProfilerFilter`, or the ``filter_fn`` of the
multi-trial :class:`~nni.nas.strategy.middleware.Filter` middleware) rejects a sample before any
training. Neither can send an ``nn.Module`` to a remote oracle (nothing a client sends is
unpickled), so both take ``build(sample) -> candidate``: the spec of the network the sample
chooses, as the Optuna adapter's ``build(trial)`` does::

    from nni.nas.strategy import RandomOneShot
    from cost_oracle.client import Budget, RemoteOracle
    from cost_oracle.client.nni_search import OracleBudgetFilter, OracleProfiler

    oracle = RemoteOracle("localhost:50051")
    guard = OracleBudgetFilter(oracle, Budget(max_macs=300_000_000, max_latency_ms=20), build=my_spec,
                               resolution=224, latency="predict")
    strategy = RandomOneShot(filter=guard)          # one-shot: resampled until within the budget
    macs = OracleProfiler(space, oracle, build=my_spec, metric="macs", resolution=224)

:class:`OracleBudgetFilter` checks a whole :class:`client.Budget` (analytic and latency limits, in
one oracle Filter call per sample, cached) where a ``RangeProfilerFilter`` bounds one figure. It
works with :class:`client.RemoteOracle` and :class:`client.InProcessOracle`; NNI calls profilers
and filters synchronously, so the asyncio client has no place here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

try:
    with warnings.catch_warnings():
        # NNI 3.0 warns, once per class, about torch classes newer than it ("your PyTorch version
        # might not be supported"); the profiler and filter interfaces used here do not touch them
        warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
        from nni.nas.oneshot.pytorch.profiler import ProfilerFilter
        from nni.nas.profiler import Profiler
except ImportError as exc:  # pragma: no cover - only without the extra
    raise ImportError("cost_oracle.client.nni_search needs NNI 3.0 and pytorch-lightning: "
                      f"pip install 'cost-oracle[nni]' ({exc})") from exc

from cost_oracle.client.figures import FIGURES, report_figures

__all__ = ["FIGURES", "OracleBudgetFilter", "OracleProfiler"]


def _figure(report: Any, metric: str) -> float:
    value = report_figures(report)[metric]
    if value is None:
        raise ValueError(f"the oracle returned no {metric} (latency needs latency='measure' or 'predict')")
    return float(value)


def _candidate(build: Callable[[Mapping[str, Any]], Any], sample: Mapping[str, Any]) -> Any:
    try:
        return build(sample)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"build(sample) failed for sample {dict(sample)}: {exc}") from exc


class OracleProfiler(Profiler):
    """``profile(sample)``: the oracle's ``metric`` (one of :data:`FIGURES`) of ``build(sample)``.

    ``model_space`` is what NNI profilers are made with; the oracle needs only ``build``. Every
    call is one oracle query (a cache lookup once the candidate was costed, anywhere)."""

    def __init__(self, model_space: Any, oracle: Any, build: Callable[[Mapping[str, Any]], Any],
                 metric: str = "macs", **context: Any):
        super().__init__(model_space)
        if metric not in FIGURES:
            raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(FIGURES)}")
        self.model_space = model_space
        self.oracle = oracle
        self.build = build
        self.metric = metric
        self.context = {"detail": "scalars", **context}

    def profile(self, sample: Mapping[str, Any]) -> float:
        return _figure(self.oracle.cost(_candidate(self.build, sample), **self.context), self.metric)


class OracleBudgetFilter(ProfilerFilter):
    """True for a sample whose candidate is within ``budget`` (every limit of it); callable as NNI
    filters are. ``history`` keeps each checked sample's verdict (a :class:`cost_oracle.client.FilterResult`:
    constraint values, which limit decided, cache hit), ``asked``/``rejected`` count them.

    As a ProfilerFilter its ``profiler`` is an :class:`OracleProfiler` of ``metric`` over the same
    oracle, build and context, for code that reads one figure off the filter."""

    def __init__(self, oracle: Any, budget: Any, build: Callable[[Mapping[str, Any]], Any], *,
                 model_space: Any = None, metric: str = "macs", keep_history: bool = True, **context: Any):
        super().__init__(OracleProfiler(model_space, oracle, build, metric, **context))
        self.oracle = oracle
        self.budget = budget
        self.build = build
        self.context = {"detail": "scalars", **context}
        self.keep_history = keep_history
        self.history: list[tuple[dict[str, Any], Any]] = []
        self.asked = 0
        self.rejected = 0

    def filter(self, sample: Mapping[str, Any]) -> bool:
        out = self.oracle.filter([_candidate(self.build, sample)], self.budget, include_reports=True,
                                 **self.context)
        item = out.results[0]
        if item.error is not None:
            raise ValueError(f"the candidate of sample {dict(sample)} is invalid: {'; '.join(item.error.lines())}")
        self.asked += 1
        self.rejected += not item.feasible
        if self.keep_history:
            self.history.append((dict(sample), item))
        return bool(item.feasible)

    def model_filter(self, model: Any) -> bool:
        """``filter_fn`` for the multi-trial :class:`nni.nas.strategy.middleware.Filter`: it hands
        over an ``ExecutableModelSpace``, whose ``sample`` is the dict of choices."""
        sample = getattr(model, "sample", None)
        if sample is None:
            raise ValueError(f"{type(model).__name__} carries no sample: is it a frozen ExecutableModelSpace?")
        return self.filter(sample)
