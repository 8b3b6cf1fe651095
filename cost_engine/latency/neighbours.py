"""Where a network sits among measured ones, by make-up: the share of its predicted time per
unit type, and its launches.

Both the kernel model's interval (``kernel_model.py``) and a latency filter's probe
(``probe.py``) judge a prediction by the errors made on the measured networks most like it:
errors are shared by networks of the same make-up (one space predicted 2% high, another 5%
low), so the nearest networks' errors say more about this one's than all networks' errors do.
"""

from __future__ import annotations

import math

#: the measured networks whose errors judge one prediction: the largest of 9 exchangeable errors
#: is their conformal 90% quantile (a tenth of new errors exceed it: rank ceil((9 + 1) * 0.9) = 9)
NEIGHBOURS = 9
#: weight of log(launches) against the time shares: doubling the launches counts like a 21%
#: shift of share (networks of one make-up differ in depth too, but less than spaces differ)
LAUNCH_WEIGHT = 0.3


def make_up(shares: dict[str, float], launches: float, types: list[str]) -> list[float]:
    return [float(shares.get(t, 0.0)) for t in types] + [LAUNCH_WEIGHT * math.log(launches) if launches > 0 else 0.0]


def nearest(x: list[list[float]], point: list[float], k: int, skip: int = -1) -> list[int]:
    """Indices of the ``k`` rows of ``x`` nearest to ``point`` (Euclidean), ``skip`` left out."""
    dist = sorted((sum((a - b) ** 2 for a, b in zip(row, point, strict=True)), j)
                  for j, row in enumerate(x) if j != skip)
    return [j for _, j in dist[:k]]
