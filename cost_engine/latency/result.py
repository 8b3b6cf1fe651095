"""``LatencyResult``: one latency figure, always saying whether it was measured or predicted and
how uncertain it is, with everything needed to judge it (protocol, fingerprint, canary)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from cost_engine.latency.keys import PROTOCOL_VERSION

SOURCES = ("measured", "predicted")
METHODS = ("paired", "roofline", "block_table", "flops", "kernel")
#: a measurement whose 95% CI half-width exceeds this fraction of its median is *noisy*: reported
#: as such, never served from the cache as final, and re-measured when asked again
#: (``COST_ORACLE_NOISY_REL_CI`` sets it; read when a result is made, so a test may patch it)
NOISY_REL_CI = float(os.environ.get("COST_ORACLE_NOISY_REL_CI", "0.05"))


@dataclass
class LatencyResult:
    """Milliseconds per forward of one batch.

    Measured (``method="paired"``, see ``paired.py``): the candidate was timed alternately with
    a reference network; ``ratio`` is candidate / reference and every ``*_ms`` figure that is not
    named ``raw_*`` is a ratio times ``anchor_ms`` (the reference on this fingerprint when the
    host is quiet, ``anchor.py``). ``median_ms``, ``p10_ms``, ``p90_ms`` and ``cv`` are of one
    distribution — the pair estimates pooled with equal weight per session — so the median
    always lies within [p10, p90]. ``uncertainty_ms`` is the half-width of the 95% CI
    (``ci_low_ms``..``ci_high_ms``): the larger of half the range of the session estimates and
    the pooled median's CI; ``noisy`` when it exceeds :data:`NOISY_REL_CI` of the median.
    ``raw_*`` are the candidate's own wall-clock figures from the same sessions (equal session
    weights too), the number a plain timer would print. Predicted: ``median_ms`` is the
    estimate, ``uncertainty_ms`` the model's typical error (from its residual fit, else a stated
    prior), ``p10_ms``/``p90_ms`` the band ``median -/+ uncertainty``, ``cv`` = uncertainty /
    median, ``runs`` 0.
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    cv: float
    runs: int
    source: str
    method: str
    uncertainty_ms: float
    sessions: int = 0
    spread_across_sessions: float = 0.0
    session_medians_ms: list[float] = field(default_factory=list)
    protocol_version: str = PROTOCOL_VERSION
    settings: dict[str, Any] = field(default_factory=dict)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    canary: dict[str, Any] | None = None
    page_faults_per_call: float | None = None
    threads: int | None = None
    first_call_ms: float | None = None
    cached: bool = False
    key: str = ""
    noisy: bool = False
    ci_low_ms: float = 0.0
    ci_high_ms: float = 0.0
    ratio: float | None = None
    ratio_p10: float | None = None
    ratio_p90: float | None = None
    ratio_uncertainty: float | None = None
    session_ratios: list[float] = field(default_factory=list)
    reference: dict[str, Any] | None = None
    anchor_ms: float | None = None
    anchor_sessions: int = 0
    anchor_key: str = ""
    raw_median_ms: float | None = None
    raw_p10_ms: float | None = None
    raw_p90_ms: float | None = None
    raw_cv: float | None = None
    raw_session_medians_ms: list[float] = field(default_factory=list)
    raw_spread_across_sessions: float | None = None
    #: re-measurements of a noisy result this one pools (0: the first measurement)
    remeasured: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], cached: bool | None = None) -> LatencyResult:
        names = {f.name for f in dataclasses.fields(cls)}
        result = cls(**{k: v for k, v in data.items() if k in names})
        if cached is not None:
            result.cached = cached
        return result

    @property
    def relative_uncertainty(self) -> float:
        return self.uncertainty_ms / self.median_ms if self.median_ms > 0 else float("inf")

    def with_anchor(self, anchor_ms: float, sessions: int) -> LatencyResult:
        """The same paired measurement in milliseconds of another anchor (a later, better one)."""
        if self.ratio is None:
            return self
        a = anchor_ms
        u = (self.ratio_uncertainty or 0.0) * a
        med = self.ratio * a
        return dataclasses.replace(
            self, median_ms=med, p10_ms=(self.ratio_p10 or 0.0) * a, p90_ms=(self.ratio_p90 or 0.0) * a,
            uncertainty_ms=u, ci_low_ms=max(0.0, med - u), ci_high_ms=med + u,
            session_medians_ms=[r * a for r in self.session_ratios], anchor_ms=a, anchor_sessions=sessions)


def predicted(median_ms: float, uncertainty_ms: float, method: str, **extra: Any) -> LatencyResult:
    return LatencyResult(median_ms=median_ms, p10_ms=max(0.0, median_ms - uncertainty_ms),
                         p90_ms=median_ms + uncertainty_ms, ci_low_ms=max(0.0, median_ms - uncertainty_ms),
                         ci_high_ms=median_ms + uncertainty_ms,
                         cv=uncertainty_ms / median_ms if median_ms > 0 else 0.0, runs=0, source="predicted",
                         method=method, uncertainty_ms=uncertainty_ms, **extra)
