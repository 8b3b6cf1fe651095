"""Sampled NAS search spaces: random members of the spaces the latency predictors are fitted on
and judged against (OFA-like MBConv, FasterNet, a ResNet-like space).

A kernel latency model is fitted over the kernels of a *space*, so a user who has no candidate
list yet can name one of these (``cost-oracle latency fit --space ofa:40,fasternet:20``); the
benchmarks draw their training and held-out networks from the same functions, so what the
benchmark reports is what a fit over these spaces gives.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from cost_engine.families.fasternet import fasternet
from cost_engine.families.resnet import resnet
from cost_engine.spec import ConvSpec, LinearSpec, MBConvSpec, NetworkSpec, PoolSpec

__all__ = ["OFA_RESOLUTIONS", "OFA_STAGES", "SPACES", "fasternet_candidate", "ofa_candidate", "resnet_candidate",
           "sample", "sample_space"]

#: MobileNetV3-large skeleton as searched by Once-for-All: (width, stride, act, SE)
OFA_STAGES = ((24, 2, "relu", 0.0), (40, 2, "relu", 0.25), (80, 2, "hardswish", 0.0), (112, 1, "hardswish", 0.25),
              (160, 2, "hardswish", 0.25))
OFA_RESOLUTIONS = (160, 176, 192, 208, 224)


def ofa_candidate(rng: random.Random) -> NetworkSpec:
    """Per block kernel 3/5/7 and expand 3/4/6, per stage depth 2/3/4, resolution 160-224."""
    stages = []
    for width, stride, act, se in OFA_STAGES:
        depth = rng.choice((2, 3, 4))
        stages.append(tuple(MBConvSpec(out_channels=width, expand_ratio=float(rng.choice((3, 4, 6))),
                                       kernel_size=rng.choice((3, 5, 7)), stride=stride if i == 0 else 1,
                                       se_ratio=se, act=act) for i in range(depth)))
    return NetworkSpec(
        stem=(ConvSpec(out_channels=16, kernel_size=3, stride=2, act="hardswish"),
              MBConvSpec(out_channels=16, expand_ratio=1.0, kernel_size=3, se_ratio=0.0, act="relu")),
        stages=tuple(stages),
        head=(ConvSpec(out_channels=960, kernel_size=1, act="hardswish"), PoolSpec(mode="global_avg", flatten=True),
              LinearSpec(out_features=1280, act="hardswish"), LinearSpec(out_features=1000)),
        resolution=rng.choice(OFA_RESOLUTIONS))


def fasternet_candidate(rng: random.Random) -> NetworkSpec:
    """Embed 32/40/48/64, n_div 4/8, depths (1-2, 1-3, 4/6/8, 1-2), GELU, 224 px."""
    depths = (rng.choice((1, 2)), rng.choice((1, 2, 3)), rng.choice((4, 6, 8)), rng.choice((1, 2)))
    return fasternet(embed_dim=rng.choice((32, 40, 48, 64)), depths=depths, n_div=rng.choice((4, 8)),
                     act="gelu", resolution=224)


def resnet_candidate(rng: random.Random) -> NetworkSpec:
    """Basic or bottleneck blocks, depths 1-3 per stage, width 32/48/64, 128-192 px."""
    w = rng.choice((32, 48, 64))
    return resnet(tuple(rng.choice((1, 2, 3)) for _ in range(4)), widths=(w, 2 * w, 4 * w, 8 * w),
                  block=rng.choice(("basic", "bottleneck")), stem_width=w, resolution=rng.choice((128, 160, 192)))


SPACES: dict[str, Callable[[random.Random], NetworkSpec]] = {
    "ofa": ofa_candidate, "fasternet": fasternet_candidate, "resnet": resnet_candidate}


def sample(fn: Callable[[random.Random], NetworkSpec], n: int, rng: random.Random) -> list[NetworkSpec]:
    """``n`` distinct members of a space (distinct by spec; a small space may have fewer than
    ``n``: after ``50 n`` draws without a new one, what was found is returned)."""
    seen: dict[str, NetworkSpec] = {}
    misses = 0
    while len(seen) < n and misses < 50 * max(1, n):
        c = fn(rng)
        key = json.dumps(c.to_dict(), sort_keys=True)
        if key in seen:
            misses += 1
        seen.setdefault(key, c)
    return list(seen.values())


def sample_space(name: str, n: int, seed: int = 0) -> list[NetworkSpec]:
    """``n`` distinct members of the space called ``name`` (a key of :data:`SPACES`)."""
    if name not in SPACES:
        raise KeyError(f"unknown space {name!r}: one of {', '.join(SPACES)}")
    return sample(SPACES[name], n, random.Random(seed))
