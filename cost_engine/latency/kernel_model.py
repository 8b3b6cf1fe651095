"""The learned kernel-level latency predictor (issue #11): one LightGBM regressor per unit type on
log-latency, a learned per-network overhead, and an interval calibrated on measured networks.

Why each part:

* **Per type, on log-latency, from shape features** (``kernels.log_features``): nn-Meter's and
  LitePred's finding — a depthwise conv and a dense one differ in efficiency by an order of
  magnitude at equal FLOPs, and one regressor per type learns each type's efficiency surface.
  LightGBM with linear leaves (``linear_tree``): within a leaf the log-latency is linear in the
  log features, so a unit a little larger than any timed one extrapolates along its FLOPs and
  bytes instead of being clamped to the largest seen. A type with too few samples is predicted
  by the model of all types together (the type is a categorical feature there).
* **Ensemble spread**: each type has :data:`BAGS` models on bootstrap-like bags (row sampling,
  different seeds); their spread is the unit's own model uncertainty, reported per prediction.
* **Network overhead**: a network is not the sum of its units timed alone (one unit's output is
  still in cache for the next; Python dispatch between modules), and not by the same factor for
  every type (a squeeze-excite timed alone pays its tiny kernels' dispatch, which in a network
  overlaps). ``measured = sum_t s_t * sum_t + o * launches + c``: one scale per unit type,
  shrunk towards the common one (ridge, :data:`TYPE_RIDGE`), all terms nonnegative, least
  squares over the measured networks; with fewer networks than :data:`MIN_NETS_PER_TERM` per
  term, one common scale.
* **Interval**: the 90% interval is ``median * exp(+-q)``, ``q`` from the leave-one-out log
  residuals of the overhead fit (split-conformal style): with at least :data:`LOCAL_MIN`
  measured networks, the largest residual of the :data:`NEIGHBOURS` nearest to the
  network in make-up (``neighbours.py``; of 9 exchangeable errors a tenth exceeds the largest,
  so a 90% interval that is narrow where the model is good — an OFA network is predicted to
  2%, a ResNet to 7%), else the conformal rank over all of them. Coverage is an empirical claim
  checked on held-out networks by ``benchmarks/kernel_prediction.py``.

Stored as data: LightGBM's own text model format inside a JSON payload, never a pickle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cost_engine.latency.kernels import FEATURES, Kernel, log_features
from cost_engine.latency.neighbours import NEIGHBOURS, make_up, nearest

MODEL_VERSION = 2
BAGS = 5
#: per-type overhead scales need this many measured networks per fitted term, else one scale
MIN_NETS_PER_TERM = 2
#: weight of the pull of each type's scale towards the common scale, relative to a network's
#: typical share of that type (1: a type's scale moves only as far as the networks insist)
TYPE_RIDGE = 1.0
#: a type with fewer timed units than this is predicted by the all-types model
MIN_TYPE_SAMPLES = 12
Z90 = 1.6448536269514722
#: fewer measured networks than this: one interval for all (the conformal rank over all of them)
LOCAL_MIN = 2 * NEIGHBOURS
TYPE_CODES: dict[str, int] = {t: i for i, t in enumerate((
    "conv", "pwconv", "dwconv", "gconv", "linear", "se", "pool", "gap", "add", "eltwise", "concat", "copy", "norm",
    "matmul", "softmax"))}


def _params(seed: int, n: int) -> dict[str, Any]:
    return {
        "objective": "regression", "learning_rate": 0.1, "num_leaves": 15, "min_data_in_leaf": max(2, min(10, n // 10)),
        "min_data_in_bin": 1, "linear_tree": True, "linear_lambda": 1e-3, "bagging_fraction": 0.8, "bagging_freq": 1,
        "feature_fraction": 1.0, "seed": seed, "deterministic": True, "num_threads": 1, "verbose": -1,
    }


def _rows(kernels: list[Kernel], typed: bool) -> list[list[float]]:
    return [log_features(k) + ([float(TYPE_CODES.get(k.type, len(TYPE_CODES)))] if typed else []) for k in kernels]


def _train(kernels: list[Kernel], ms: list[float], typed: bool, rounds: int) -> list[Any]:
    import lightgbm as lgb
    import numpy as np

    x = np.asarray(_rows(kernels, typed), dtype=float)
    y = np.log(np.asarray(ms, dtype=float))
    boosters = []
    for seed in range(BAGS):
        data = lgb.Dataset(x, y, params={"min_data_in_bin": 1, "verbose": -1},
                           categorical_feature=[len(FEATURES)] if typed else "auto", free_raw_data=False)
        boosters.append(lgb.train(_params(seed, len(ms)), data, num_boost_round=rounds))
    return boosters


@dataclass
class KernelModel:
    #: per unit type (and ``"*"``, all types) the bag of boosters
    models: dict[str, list[Any]]
    scale: float = 1.0
    #: per unit type, its scale in the overhead term (a type not listed: ``scale``)
    type_scale: dict[str, float] = field(default_factory=dict)
    per_launch_ms: float = 0.0
    constant_ms: float = 0.0
    log_q90: float = math.log(1.5)
    stats: dict[str, Any] = field(default_factory=dict)
    #: the measured networks' make-up (``types``, ``x``) and absolute leave-one-out log errors
    #: (``r``): a network's interval is the largest error of its nearest (empty: ``log_q90``)
    local: dict[str, Any] = field(default_factory=dict)

    # -- units ---------------------------------------------------------------------------------
    def unit_predictions(self, kernels: list[Kernel]) -> list[tuple[float, float]]:
        """(ms, log spread across the bag) per unit."""
        import numpy as np

        out: list[tuple[float, float]] = [(0.0, 0.0)] * len(kernels)
        by_model: dict[str, list[int]] = {}
        for i, k in enumerate(kernels):
            by_model.setdefault(k.type if k.type in self.models else "*", []).append(i)
        for name, idx in by_model.items():
            sub = [kernels[i] for i in idx]
            x = np.asarray(_rows(sub, name == "*"), dtype=float)
            preds = np.stack([b.predict(x) for b in self.models[name]])  # bags x units, log ms
            for j, i in enumerate(idx):
                out[i] = (float(np.exp(preds[:, j].mean())), float(preds[:, j].std()))
        return out

    # -- networks ------------------------------------------------------------------------------
    def network_terms(self, kernels: list[Kernel]) -> tuple[dict[str, float], int, float]:
        """(sum of unit predictions ms per type group, launches, unit-level log spread of the sum);
        a type group is a type with a regressor of its own, the others pooled under ``"*"``."""
        units = self.unit_predictions(kernels)
        by_type: dict[str, float] = {}
        for k, (ms, _) in zip(kernels, units, strict=True):
            group = k.type if k.type in self.models else "*"
            by_type[group] = by_type.get(group, 0.0) + ms
        total = sum(by_type.values())
        # bag spreads of units are correlated (one model per type): added linearly, not in quadrature
        spread = sum(ms * s for ms, s in units) / total if total > 0 else 0.0
        return by_type, int(sum(k.features["launches"] for k in kernels)), spread

    def predict_network(self, kernels: list[Kernel]) -> dict[str, Any]:
        by_type, launches, spread = self.network_terms(kernels)
        ms = _overhead_predict((self.scale, self.type_scale, self.per_launch_ms, self.constant_ms), by_type, launches)
        shares = _shares(by_type)
        q = math.hypot(self.network_q90(shares, launches), spread * Z90)
        return {"median_ms": ms, "low_ms": ms * math.exp(-q), "high_ms": ms * math.exp(q), "log_q90": q,
                "log_sigma": q / Z90, "unit_sum_ms": sum(by_type.values()), "launches": launches,
                "units": len(kernels), "bag_spread": spread, "type_shares": shares}

    def network_q90(self, shares: dict[str, float], launches: int) -> float:
        """The half-width (log) of a network's 90% interval before its units' own spread."""
        x, r = self.local.get("x") or [], self.local.get("r") or []
        if len(r) < LOCAL_MIN:
            return self.log_q90
        nn = nearest(x, make_up(shares, launches, list(self.local["types"])), NEIGHBOURS)
        return max(0.01, max(r[j] for j in nn))

    # -- storage ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"version": MODEL_VERSION, "features": list(FEATURES),
                "models": {t: [b.model_to_string() for b in bag] for t, bag in self.models.items()},
                "scale": self.scale, "type_scale": self.type_scale, "per_launch_ms": self.per_launch_ms,
                "constant_ms": self.constant_ms,
                "log_q90": self.log_q90, "stats": self.stats, "local": self.local}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KernelModel:
        """From stored data (LightGBM's text format): nothing is unpickled or evaluated."""
        import lightgbm as lgb

        if data.get("version") != MODEL_VERSION or list(data.get("features", ())) != list(FEATURES):
            raise ValueError("the stored kernel model was fitted by another version (features differ): refit it")
        models = {t: [lgb.Booster(model_str=s) for s in bag] for t, bag in data["models"].items()}
        return cls(models, data["scale"], dict(data.get("type_scale", {})), data["per_launch_ms"],
                   data["constant_ms"], data["log_q90"], data.get("stats", {}), _local(data.get("local")))


def _shares(by_type: dict[str, float]) -> dict[str, float]:
    """Each type group's share of a network's unit sum (its make-up)."""
    total = sum(by_type.values())
    return {t: v / total for t, v in sorted(by_type.items())} if total > 0 else {}


def _local(data: Any) -> dict[str, Any]:
    """A stored model's make-up table, checked for shape (a malformed one: the global interval)."""
    if not isinstance(data, dict):
        return {}
    types, x, r = data.get("types"), data.get("x"), data.get("r")
    if not (isinstance(types, list) and isinstance(x, list) and isinstance(r, list) and len(x) == len(r)
            and all(isinstance(row, list) and len(row) == len(types) + 1 for row in x)):
        return {}
    return {"types": [str(t) for t in types], "x": [[float(v) for v in row] for row in x], "r": [float(v) for v in r]}


def _overhead_fit(sums: list[float], launches: list[int], measured: list[float]) -> tuple[float, float, float]:
    """measured = s * sum + o * launches + c (o, c >= 0): least squares, dropping a negative term."""
    import numpy as np

    y = np.asarray(measured, dtype=float)
    columns = [np.asarray(sums, dtype=float), np.asarray(launches, dtype=float), np.ones(len(y))]
    active = [0, 1, 2] if len(y) >= 6 else [0]
    while True:
        a = np.stack([columns[i] for i in active], axis=1)
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        bad = [i for i, c in zip(active, coef, strict=True) if i > 0 and c < 0]
        if not bad:
            break
        active.remove(bad[0])
    full = [0.0, 0.0, 0.0]
    for i, c in zip(active, coef, strict=True):
        full[i] = float(c)
    if full[0] <= 0:
        full = [float(np.sum(y) / max(1e-12, np.sum(columns[0]))), 0.0, 0.0]
    return full[0], full[1], full[2]


def _nonneg_lstsq(a: Any, y: Any) -> Any:
    """Least squares with every coefficient >= 0: solve, zero the most negative, repeat."""
    import numpy as np

    active = list(range(a.shape[1]))
    coef = np.zeros(a.shape[1])
    while active:
        sol, *_ = np.linalg.lstsq(a[:, active], y, rcond=None)
        if (sol >= 0).all():
            coef[active] = sol
            break
        active.pop(int(np.argmin(sol)))
    return coef


def _typed_overhead_fit(by_type: list[dict[str, float]], launches: list[int], measured: list[float],
                        ) -> tuple[float, dict[str, float], float, float]:
    """(common scale, per-type scales, per launch, constant): the common fit, then nonnegative
    least squares with one scale per type, each pulled towards the common scale (ridge rows
    weighted by the type's mean share and :data:`TYPE_RIDGE`). Too few networks: common only."""
    import numpy as np

    sums = [sum(d.values()) for d in by_type]
    s0, o0, c0 = _overhead_fit(sums, launches, measured)
    types = sorted({t for d in by_type for t in d})
    if len(measured) < MIN_NETS_PER_TERM * (len(types) + 2):
        return s0, {}, o0, c0
    x = np.asarray([[d.get(t, 0.0) for t in types] + [float(n), 1.0] for d, n in zip(by_type, launches, strict=True)])
    y = np.asarray(measured, dtype=float)
    weight = math.sqrt(TYPE_RIDGE) * x[:, :len(types)].mean(axis=0)
    ridge = np.zeros((len(types), x.shape[1]))
    ridge[np.arange(len(types)), np.arange(len(types))] = weight
    coef = _nonneg_lstsq(np.vstack([x, ridge]), np.concatenate([y, weight * s0]))
    return s0, {t: float(c) for t, c in zip(types, coef, strict=False)}, float(coef[-2]), float(coef[-1])


def _overhead_predict(fit: tuple[float, dict[str, float], float, float], by_type: dict[str, float],
                      launches: int) -> float:
    s0, scales, o, c = fit
    return sum(scales.get(t, s0) * v for t, v in by_type.items()) + o * launches + c


def fit_kernel_model(units: list[tuple[Kernel, float]], networks: list[tuple[list[Kernel], float]], *,
                     rounds: int = 150) -> KernelModel:
    """Fit from timed units (``(kernel, ms)``) and measured networks (``(its units, ms)``)."""
    if not units:
        raise ValueError("a kernel model needs timed units")
    if not networks:
        raise ValueError("a kernel model needs at least one measured network (for its overhead term)")
    by_type: dict[str, list[tuple[Kernel, float]]] = {}
    for k, ms in units:
        by_type.setdefault(k.type, []).append((k, ms))
    models: dict[str, list[Any]] = {"*": _train([k for k, _ in units], [m for _, m in units], True, rounds)}
    for t, rows in by_type.items():
        if len(rows) >= MIN_TYPE_SAMPLES:
            models[t] = _train([k for k, _ in rows], [m for _, m in rows], False, rounds)
    model = KernelModel(models)
    terms = [model.network_terms(ks) for ks, _ in networks]
    net_types = [t[0] for t in terms]
    launches = [t[1] for t in terms]
    measured = [ms for _, ms in networks]
    fit = _typed_overhead_fit(net_types, launches, measured)
    model.scale, model.type_scale, model.per_launch_ms, model.constant_ms = fit
    # leave-one-out log residuals of the overhead fit: the interval's half-width
    residuals = []
    for i in range(len(networks)):
        rest = [j for j in range(len(networks)) if j != i]
        if not rest:
            break
        loo = _typed_overhead_fit([net_types[j] for j in rest], [launches[j] for j in rest],
                                  [measured[j] for j in rest])
        pred = _overhead_predict(loo, net_types[i], launches[i])
        residuals.append(abs(math.log(measured[i] / pred)) if pred > 0 else 1.0)
    if residuals:
        ranked = sorted(residuals)
        # the ceil((n+1) * 0.9)-th smallest (split-conformal's finite-sample quantile), capped at the largest
        rank = min(len(ranked), math.ceil((len(ranked) + 1) * 0.9)) - 1
        model.log_q90 = max(ranked[rank], 0.01)
    if len(residuals) >= LOCAL_MIN:
        types = sorted({t for d in net_types for t in d})
        rows = [make_up(_shares(d), n, types) for d, n in zip(net_types, launches, strict=True)]
        model.local = {"types": types, "x": rows, "r": residuals}
    model.stats = {"units": len(units), "networks": len(networks), "types": sorted(models),
                   "unit_counts": {t: len(r) for t, r in sorted(by_type.items())}}
    return model
