"""Cache payload text: whichever encoder writes it, ``json.loads`` must read back the same value
(NaN, infinities, huge integers and non-string keys included), and what ``json`` refuses is
still refused."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cost_engine import analyze
from cost_oracle.server.cache import payload

_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                       max_leaves=20)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _VALUES, max_size=6))
def test_payload_text_reads_back_as_the_value(value: dict) -> None:
    assert _same(json.loads(payload.dumps(value)), json.loads(json.dumps(value)))


def test_edge_values_keep_their_meaning() -> None:
    cases = {"nan": float("nan"), "inf": float("inf"), "none": None, "big": 2**64 + 1, "neg_zero": -0.0,
             "tiny": 5e-324, "text": "naïve ✓", "nested": [{"a": [1, 2.5, None]}]}
    back = json.loads(payload.dumps(cases))
    assert math.isnan(back["nan"]) and back["inf"] == float("inf") and back["none"] is None
    assert back["big"] == 2**64 + 1 and isinstance(back["big"], int)
    assert math.copysign(1, back["neg_zero"]) == -1 and back["tiny"] == 5e-324 and back["text"] == "naïve ✓"
    odd_keys = {1: "a", 2.5: "b", None: "c"}
    assert json.loads(payload.dumps(odd_keys)) == json.loads(json.dumps(odd_keys))


@dataclasses.dataclass
class _Thing:
    a: int = 1


@pytest.mark.parametrize("bad", [{"x": _Thing()}, {"x": datetime.datetime(2026, 1, 1)}, {"x": {1, 2}}, {"x": b"raw"}])
def test_what_json_refuses_is_refused(bad: dict) -> None:
    with pytest.raises(TypeError):
        payload.dumps(bad)


def test_a_report_row_round_trips() -> None:
    d = analyze("mobilenet_v2").to_dict(breakdowns=False)
    assert json.loads(payload.dumps(d)) == d
