"""The NNI adapter (issue 15) on a real NNI 3.0 model space: NNI's own RandomOneShot sampling
module resamples through the oracle's budget filter, its RangeProfilerFilter and
SampleProfilerPenalty read the oracle's profiler, in process and through a server; and the spec a
sample is mapped to counts what NNI's frozen module computes (the tracer agrees with it)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # NNI 3.0 warns about torch classes it does not know
    warnings.simplefilter("ignore")
    nni = pytest.importorskip("nni")
    import torch
    from nni.nas.evaluator.pytorch import ClassificationModule
    from nni.nas.nn.pytorch import ModelSpace, MutableBatchNorm2d, MutableConv2d, Repeat
    from nni.nas.oneshot.pytorch.profiler import RangeProfilerFilter, SampleProfilerPenalty
    from nni.nas.oneshot.pytorch.sampling import RandomSamplingLightningModule
    from nni.nas.strategy import RandomOneShot
    from torch import nn

from servers import in_process_server

from cost_engine import analyze_module
from cost_engine.spec import ConvSpec, MBConvSpec, NetworkSpec
from cost_oracle.client import Budget, InProcessOracle, RemoteOracle
from cost_oracle.client.nni_search import OracleBudgetFilter, OracleProfiler

STAGES = ((24, 2), (40, 2))  # (width, stride of the first block)
DEPTHS, KERNELS, EXPANDS = (1, 2, 3), (3, 5, 7), (3, 4, 6)
RES = 64
BUDGET = Budget(max_macs=6_400_000)  # about half of the space is within it


class _Block(nn.Module):
    """NNI's mutable MBConv (no SE), as the oracle's ``MBConvSpec`` with ``act='relu'`` builds it."""

    def __init__(self, cin: int, cout: int, stride: int, label: str):
        super().__init__()
        k, e = nni.choice(f"{label}_k", list(KERNELS)), nni.choice(f"{label}_e", list(EXPANDS))
        mid = cin * e
        self.expand = nn.Sequential(MutableConv2d(cin, mid, 1, bias=False), MutableBatchNorm2d(mid), nn.ReLU())
        self.dw = nn.Sequential(MutableConv2d(mid, mid, k, stride=stride, padding=k // 2, groups=mid, bias=False),
                                MutableBatchNorm2d(mid), nn.ReLU())
        self.project = nn.Sequential(MutableConv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.residual else y


class _Space(ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        stages, cin = [], 16
        for i, (w, s) in enumerate(STAGES):
            stages.append(Repeat(lambda j, cin=cin, w=w, s=s, i=i: _Block(cin if j == 0 else w, w, s if j == 0 else 1,
                                                                          f"s{i}_b{j}"),
                                 nni.choice(f"s{i}_d", list(DEPTHS)), label=f"s{i}"))
            cin = w
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


def build(sample: Mapping[str, Any]) -> NetworkSpec:
    """The oracle's spec of the network a sample of :class:`_Space` chooses (choices of blocks past
    a stage's depth are in every sample and mean nothing)."""
    stages = tuple(
        tuple(MBConvSpec(out_channels=w, kernel_size=sample[f"s{i}_b{j}_k"], expand_ratio=float(sample[f"s{i}_b{j}_e"]),
                         stride=s if j == 0 else 1, se_ratio=0.0, act="relu") for j in range(sample[f"s{i}_d"]))
        for i, (w, s) in enumerate(STAGES))
    return NetworkSpec(stem=(ConvSpec(out_channels=16, kernel_size=3, stride=2, act="relu"),), stages=stages,
                       resolution=RES)


@pytest.fixture(scope="module")
def space() -> _Space:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _Space()


def _samples(space: _Space, n: int) -> list[dict[str, Any]]:
    import random

    rng = random.Random(7)
    mutables = space.simplify()
    return [{k: rng.choice(list(m.values)) for k, m in mutables.items()} for _ in range(n)]


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with in_process_server(tmp_path_factory.mktemp("nni") / "c.sqlite") as srv:
        yield f"127.0.0.1:{srv.port}"


def test_the_spec_of_a_sample_counts_what_nnis_frozen_module_computes(space: _Space, tmp_path: Path) -> None:
    with InProcessOracle(f"sqlite:///{tmp_path / 'c.sqlite'}") as oracle:
        for sample in _samples(space, 4):
            frozen = space.freeze(sample).eval()
            traced = analyze_module(frozen, (1, 3, RES, RES))
            mine = oracle.cost(build(sample), detail="scalars")
            assert (traced.macs, traced.params) == (mine.macs, mine.params), sample


def test_nnis_one_shot_sampler_resamples_until_within_the_budget(space: _Space, tmp_path: Path) -> None:
    import random

    import numpy

    random.seed(3)
    numpy.random.seed(3)  # NNI draws with numpy's global state
    with InProcessOracle(f"sqlite:///{tmp_path / 'c.sqlite'}") as oracle:
        guard = OracleBudgetFilter(oracle, BUDGET, build=build)
        strategy = RandomOneShot(filter=guard)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = ClassificationModule(num_classes=10)
            module.set_model(strategy.mutate_model(space))
        sampler = RandomSamplingLightningModule(module, strategy.filter)
        drawn = [sampler.resample() for _ in range(12)]
        assert guard.rejected > 0, "the budget should reject some samples"
        assert guard.asked == 12 + guard.rejected  # NNI asked the filter once per draw
        for sample in drawn:  # every sample NNI went on with is within the budget, asked again directly
            assert oracle.cost(build(sample), detail="scalars").macs <= BUDGET.max_macs
        for sample, item in guard.history:  # and each verdict is the oracle's own
            again = oracle.filter([build(sample)], BUDGET).results[0]
            assert again.feasible == item.feasible
            assert [c.value for c in again.constraints] == [c.value for c in item.constraints]


def test_nnis_range_filter_and_penalty_read_the_oracle_through_a_server(space: _Space, address: str) -> None:
    with RemoteOracle(address) as oracle:
        macs = OracleProfiler(space, oracle, build=build, metric="macs")
        params = OracleProfiler(space, oracle, build=build, metric="params")
        samples = _samples(space, 10)
        values = [macs.profile(s) for s in samples]
        assert values == [float(oracle.cost(build(s), detail="scalars").macs) for s in samples]
        limit = sorted(values)[len(values) // 2]
        in_range = RangeProfilerFilter(macs, max=limit)
        assert [in_range(s) for s in samples] == [v <= limit for v in values]
        assert params.profile(samples[0]) == float(oracle.cost(build(samples[0])).params)
        penalty = SampleProfilerPenalty(macs, baseline=limit, scale=0.5, nonlinear="positive")
        loss, details = penalty(torch.tensor(1.0), samples[0])
        assert details["penalty"] == values[0]
        assert float(loss) == pytest.approx(1.0 + 0.5 * max(values[0] / limit - 1, 0.0))
        # the whole-budget filter through the server, and as the multi-trial Filter's filter_fn
        guard = OracleBudgetFilter(oracle, BUDGET, build=build)
        verdicts = [guard(s) for s in samples]
        assert verdicts == [v <= BUDGET.max_macs for v in values]

        class Frozen:  # what nni.nas.strategy.middleware.Filter hands its filter_fn
            sample = samples[1]

        assert guard.model_filter(Frozen()) == verdicts[1]


def test_bad_use_is_a_clear_error(space: _Space, tmp_path: Path) -> None:
    with InProcessOracle(f"sqlite:///{tmp_path / 'c.sqlite'}") as oracle:
        with pytest.raises(ValueError, match="unknown metric 'energy'"):
            OracleProfiler(space, oracle, build=build, metric="energy")
        with pytest.raises(ValueError, match="latency needs"):
            OracleProfiler(space, oracle, build=build, metric="latency_ms").profile(_samples(space, 1)[0])
        with pytest.raises(ValueError, match=r"build\(sample\) failed .*s0_d"):
            OracleBudgetFilter(oracle, BUDGET, build=build)({"s1_d": 1})
        bad = OracleBudgetFilter(oracle, BUDGET, build=lambda s: NetworkSpec(
            stem=(ConvSpec(out_channels=0),), resolution=RES))
        with pytest.raises(ValueError, match=r"is invalid: .*out_channels"):
            bad(_samples(space, 1)[0])
        with pytest.raises(ValueError, match="carries no sample"):
            bad.model_filter(object())
