"""Optuna studies over an OFA-like space with the oracle as their budget (issue 15): NSGA-II in
process, TPE through a server, and the asyncio client; every completed trial is within budget and
its stored constraint values are the oracle's own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

from servers import in_process_server  # noqa: E402

from cost_engine.spec import NetworkSpec  # noqa: E402
from cost_oracle.client import AsyncRemoteOracle, Budget, InProcessOracle, RemoteOracle  # noqa: E402
from cost_oracle.client.optuna_search import CONSTRAINTS, OracleBudget  # noqa: E402

BUDGET = Budget(max_macs=32_000_000, max_params=700_000)  # about half of the space is within it


def _example() -> Any:
    """``examples/ofa_search.py`` as a module: the test and the example search one space."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ofa_search", Path(__file__).resolve().parents[1] / "examples"
                                                  / "ofa_search.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_OFA = _example().ofa


def ofa(trial: Any) -> NetworkSpec:
    """The example's OFA-like space at 96 px with 10 classes (the budget below is set for it)."""
    return _OFA(trial, resolution=96, classes=10)


def run_study(oracle: Any, sampler: Any, n: int) -> tuple[Any, OracleBudget]:
    guard = OracleBudget(oracle, BUDGET, build=ofa)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    for _ in range(n):
        trial = guard.ask_feasible(study)  # infeasible ones are told PRUNED: never "trained"
        study.tell(trial, guard.objectives(trial, ["macs", "params"]))
    return study, guard


def check_study(study: Any, guard: OracleBudget, oracle: Any, n: int) -> None:
    optuna_state = optuna.trial.TrialState
    done = [t for t in study.trials if t.state == optuna_state.COMPLETE]
    pruned = [t for t in study.trials if t.state == optuna_state.PRUNED]
    assert len(done) == n and guard.rejected == len(pruned) > 0, "the budget should reject some candidates"
    assert all(max(guard.constraints_func(t)) <= 0 for t in done)
    if hasattr(done[0], "constraints"):  # Optuna >= 5 also keeps them on the trial, by name
        assert all(list(t.constraints.values()) == t.user_attrs[CONSTRAINTS] for t in done + pruned)
    assert all(max(t.user_attrs[CONSTRAINTS]) > 0 for t in pruned)
    for t in done[:5] + pruned[:5]:  # the stored values are the oracle's, asked again directly
        fixed = optuna.trial.FixedTrial(t.params)
        again = oracle.filter([ofa(fixed)], BUDGET).results[0]
        assert [c.value for c in again.constraints] == t.user_attrs[CONSTRAINTS]
        assert again.feasible == (t.state == optuna_state.COMPLETE)
    for t in done[:5]:
        cost = oracle.cost(ofa(optuna.trial.FixedTrial(t.params)), detail="scalars")
        assert list(t.values) == [cost.macs, cost.params]


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with in_process_server(tmp_path_factory.mktemp("optuna") / "c.sqlite") as srv:
        yield f"127.0.0.1:{srv.port}"


def test_nsga2_in_process_trains_nothing_infeasible(tmp_path: Path) -> None:
    with InProcessOracle(f"sqlite:///{tmp_path / 'c.sqlite'}") as oracle:
        study, guard = run_study(oracle, optuna.samplers.NSGAIISampler(seed=1, population_size=10), 30)
        check_study(study, guard, oracle, 30)


def test_tpe_through_a_server(address: str) -> None:
    with RemoteOracle(address) as oracle:
        guard = OracleBudget(oracle, BUDGET, build=ofa)
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=2, constraints_func=guard.constraints_func))
        study.optimize(lambda t: guard.objectives(t, ["params"])[0], n_trials=25)
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        # the constraint-aware best trial is feasible and the stored values are the oracle's
        feasible = [t for t in study.trials if max(t.user_attrs[CONSTRAINTS]) <= 0]
        assert (feasible and study.best_trial in feasible) or max(study.best_trial.user_attrs[CONSTRAINTS]) <= 0
        pruned_study, pruned_guard = run_study(oracle, optuna.samplers.TPESampler(seed=3), 15)
        check_study(pruned_study, pruned_guard, oracle, 15)


def test_the_asyncio_client_checks_a_trial(address: str) -> None:
    study = optuna.create_study()
    trial = study.ask()

    async def check() -> bool:
        async with AsyncRemoteOracle(address) as oracle:
            return await OracleBudget(oracle, BUDGET, build=ofa).check_async(trial)

    feasible = asyncio.run(check())
    with RemoteOracle(address) as oracle:
        direct = oracle.filter([ofa(optuna.trial.FixedTrial(trial.params))], BUDGET).results[0]
    assert feasible == direct.feasible
    assert trial.user_attrs[CONSTRAINTS] == [c.value for c in direct.constraints]


def test_an_unchecked_trial_is_never_read_as_feasible() -> None:
    guard = OracleBudget(None, BUDGET, build=ofa)
    study = optuna.create_study()
    t = study.ask()
    with pytest.raises(RuntimeError, match="not checked"):
        guard.constraints_func(t)
    with pytest.raises(ValueError, match="unknown objective"):
        guard.objectives(t, ["accuracy"])


# -- the data-frame view of batch, filter and sweep results ---------------------------------------------
def test_results_as_data_frames(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    from cost_engine import analyze
    from cost_oracle import client
    from cost_oracle.client import EfficientNetCompoundSpace

    names = ["mobilenet_v2", "resnet18", "no_such_model"]
    with InProcessOracle(f"sqlite:///{tmp_path / 'c.sqlite'}") as oracle:
        batch = client.to_pandas(oracle.cost_many(names, resolution=64, detail="scalars"))
        filt = oracle.filter(names[:2], Budget(max_macs=500_000_000), pareto=["macs", "params"], include_reports=True,
                             resolution=64).to_pandas()
        sweep = oracle.sweep(EfficientNetCompoundSpace(phi=(0.0, 1.0)), Budget(max_macs=500_000_000),
                             pareto=["macs", "params"], include_reports=True).to_pandas()
    assert isinstance(batch, pd.DataFrame) and len(batch) == 3
    assert batch.loc[0, "macs"] == analyze("mobilenet_v2", resolution=64).macs and batch.loc[2, "error"]
    assert list(filt["feasible"]) == [True, True] and "constraint[max_macs]" in filt.columns
    assert filt.loc[1, "constraint[max_macs]"] == analyze("resnet18", resolution=64).macs - 500_000_000
    assert len(sweep) == 2 and {"point[phi]", "point[width]", "label", "duplicate_of", "feasible"} <= set(sweep.columns)
    assert sweep.loc[0, "macs"] == analyze("efficientnet_b0").macs
