"""Optuna glue: the oracle's budget as Optuna constraints, its figures as objectives, and a
pre-filter that rejects an infeasible candidate before any training (the optional ``optuna`` extra).

The oracle's constraint values already follow Optuna's convention (``actual - limit``, <= 0 is
feasible), so the adapter only has to ask once per trial and remember the answer on the trial:

    import optuna
    from cost_oracle.client import Budget, InProcessOracle
    from cost_oracle.client.optuna_search import OracleBudget

    with InProcessOracle() as oracle:
        guard = OracleBudget(oracle, Budget(max_macs=400_000_000), build=my_network, resolution=160)
        study = optuna.create_study(directions=["minimize", "minimize"],
                                    sampler=optuna.samplers.NSGAIISampler(constraints_func=guard.constraints_func))
        study.optimize(lambda t: guard.objectives(t, ["macs", "params"]), n_trials=200)

``build(trial)`` turns a trial's suggestions into a candidate (a spec or a built-in name); every
call of :meth:`OracleBudget.check` costs it through the oracle's Filter (cached: a repeated
candidate is a lookup) and stores the verdict in the trial's user attributes
(``oracle_constraints``, ``oracle_feasible``, ``oracle_figures``), which is what
:meth:`constraints_func` reads later (Optuna calls it with a finished ``FrozenTrial``); on
Optuna >= 5, whose samplers deprecate ``constraints_func``, also as
``trial.set_constraint(name, actual - limit)``, which they read off the trial itself. For a
hard budget, :meth:`ask_feasible` asks trials until one is within the budget, telling Optuna each
rejected one as PRUNED, so no training ever starts on an infeasible candidate. The same class
works with :class:`client.RemoteOracle`, :class:`client.InProcessOracle` and (``*_async``)
:class:`client.AsyncRemoteOracle`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cost_oracle.client.figures import FIGURES as OBJECTIVES
from cost_oracle.client.figures import report_figures

__all__ = ["OBJECTIVES", "OracleBudget"]

#: user-attribute names on the trial
CONSTRAINTS = "oracle_constraints"
FEASIBLE = "oracle_feasible"
FIGURES = "oracle_figures"
DECIDED_BY = "oracle_decided_by"  # analytic | predicted | calibrated | measured
CACHE_HIT = "oracle_cache_hit"


class OracleBudget:
    """``oracle`` and ``budget`` (a :class:`client.Budget`); ``build(trial) -> candidate``;
    ``context``: the oracle's context keywords for every query (``resolution=``, ``latency=``...)."""

    def __init__(self, oracle: Any, budget: Any, build: Callable[[Any], Any], **context: Any):
        self.oracle = oracle
        self.budget = budget
        self.build = build
        self.context = {"detail": "scalars", **context}
        self.asked = 0
        self.rejected = 0

    # -- one trial ------------------------------------------------------------------------------
    def check(self, trial: Any) -> bool:
        """Cost the trial's candidate under the budget; store and return whether it is feasible."""
        out = self.oracle.filter([self.build(trial)], self.budget, include_reports=True, **self.context)
        return self._remember(trial, out.results[0])

    async def check_async(self, trial: Any) -> bool:
        """:meth:`check` with an :class:`client.AsyncRemoteOracle`."""
        out = await self.oracle.filter([self.build(trial)], self.budget, include_reports=True, **self.context)
        return self._remember(trial, out.results[0])

    def _remember(self, trial: Any, r: Any) -> bool:
        if r.error is not None:
            raise ValueError(f"trial {trial.number}: the candidate is invalid: {'; '.join(r.error.lines())}")
        trial.set_user_attr(CONSTRAINTS, [float(c.value) for c in r.constraints])
        if hasattr(trial, "set_constraint"):  # Optuna >= 5 reads named constraints off the trial itself
            for c in r.constraints:
                trial.set_constraint(c.name, float(c.value))
        trial.set_user_attr(FEASIBLE, bool(r.feasible))
        rep = r.report
        trial.set_user_attr(FIGURES, report_figures(rep) if rep is not None else {})
        trial.set_user_attr(DECIDED_BY, r.decided_by)
        trial.set_user_attr(CACHE_HIT, bool(rep.cache_hit) if rep is not None else None)
        return bool(r.feasible)

    def check_many(self, trials: Sequence[Any]) -> list[bool]:
        """:meth:`check` for several trials in one Filter call: the oracle measures the close calls
        among them together, in shared worker sessions (one measurement's start-up for all)."""
        out = self.oracle.filter([self.build(t) for t in trials], self.budget, include_reports=True, **self.context)
        return [self._remember(t, r) for t, r in zip(trials, out.results, strict=True)]

    # -- what Optuna calls ------------------------------------------------------------------------
    def constraints_func(self, trial: Any) -> Sequence[float]:
        """Optuna's ``constraints_func``: the stored ``actual - limit`` per budget limit (<= 0 ok).
        A trial that was never checked has no verdict, which Optuna must not read as feasible."""
        values = trial.user_attrs.get(CONSTRAINTS)
        if values is None:
            raise RuntimeError(f"trial {trial.number} was not checked by the oracle: call check(trial) (or "
                               "objectives(trial, ...)) in the objective")
        return values or [0.0]

    def objectives(self, trial: Any, names: Sequence[str]) -> tuple[float, ...]:
        """The oracle's figures of the trial's candidate as objective values (checked if not yet)."""
        unknown = [n for n in names if n not in OBJECTIVES]
        if unknown:
            raise ValueError(f"unknown objective(s) {unknown}; choose from {', '.join(OBJECTIVES)}")
        if FIGURES not in trial.user_attrs:
            self.check(trial)
        figures = trial.user_attrs[FIGURES]
        missing = [n for n in names if figures.get(n) is None]
        if missing:
            raise ValueError(f"the oracle returned no {missing} (latency needs latency='measure' or 'predict')")
        return tuple(float(figures[n]) for n in names)

    # -- a hard budget: nothing infeasible is ever trained ------------------------------------------
    def ask_feasible(self, study: Any, max_tries: int = 1000, **ask: Any) -> Any:
        """``study.ask()`` until a trial's candidate is within the budget; each rejected trial is told
        to the study as PRUNED (its constraint values stay on it). Returns the feasible trial, whose
        candidate is ``self.build(trial)`` (costed and cached already)."""
        import optuna

        for _ in range(max_tries):
            trial = study.ask(**ask)
            self.asked += 1
            if self.check(trial):
                return trial
            self.rejected += 1
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        raise RuntimeError(f"no feasible candidate in {max_tries} tries: is the budget reachable in this space?")

    def ask_feasible_many(self, study: Any, n: int, **ask: Any) -> list[Any]:
        """``n`` trials asked at once and checked in one call (:meth:`check_many`); the infeasible
        ones are told PRUNED, the feasible ones returned (possibly fewer than ``n``, or none)."""
        import optuna

        trials = [study.ask(**ask) for _ in range(n)]
        self.asked += n
        keep = []
        for trial, ok in zip(trials, self.check_many(trials), strict=True):
            if ok:
                keep.append(trial)
            else:
                self.rejected += 1
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return keep
