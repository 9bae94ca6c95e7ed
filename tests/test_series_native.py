"""The judge's rates from the C twin are the Python reference's to the bit (ADR 0186).

The judge of a run on a machine built without a C compiler runs ``rates_py``; both must
give every run the same verdicts and the same metrics, so the same doubles.
"""

from __future__ import annotations

import random

import pytest

from daemon.judge import series
from daemon.judge.series import (
    RATE_MIN_POINTS,
    RATE_MIN_SPAN_S,
    RATE_RESUM,
    RATE_WINDOW_S,
    Series,
    rates_py,
)

try:
    from daemon.judge import _series_native
except ImportError:  # pragma: no cover - reported by the first test
    _series_native = None  # type: ignore[assignment]

needs_native = pytest.mark.skipif(_series_native is None, reason="the C twin is not built")


def _native(t: list[float], values: Series) -> Series:
    return _series_native.rates(
        t, values, RATE_WINDOW_S, RATE_MIN_POINTS, RATE_MIN_SPAN_S, RATE_RESUM
    )


def _bits(values: Series) -> list[str | None]:
    return [None if v is None else v.hex() for v in values]


def test_the_c_twin_is_built_and_in_use() -> None:
    assert _series_native is not None, "daemon/judge/_series_native.c was not compiled"
    assert series._native is _series_native


def _trace(rng: random.Random) -> tuple[list[float], Series]:
    """A chip trace at the monitor's ~20 Hz with jitter, gaps, dropped readings, holds and
    ramps: every way the window can slide, jump and come up short."""
    t: list[float] = []
    values: Series = []
    now, temp, slope = rng.uniform(0.0, 100.0), rng.uniform(20.0, 250.0), 0.0
    for _ in range(rng.randint(0, 700)):
        now += rng.choice([0.05, 0.05, 0.05000000000001137, 0.04999999999999716, 0.3, 2.5])
        if rng.random() < 0.02:
            slope = rng.choice([0.0, rng.uniform(-4.0, 4.0)])
        temp += slope * 0.05 + rng.gauss(0.0, 0.05)
        t.append(now)
        values.append(None if rng.random() < 0.05 else round(temp, 1))
    return t, values


@needs_native
def test_the_rates_of_every_kind_of_trace_are_the_same_to_the_bit() -> None:
    rng = random.Random("rates")
    for _ in range(200):
        t, values = _trace(rng)
        assert _bits(_native(t, values)) == _bits(rates_py(t, values))


@needs_native
def test_a_flat_or_short_series_gives_none_in_both() -> None:
    t = [0.05 * i for i in range(40)]
    flat: Series = [100.0] * 40
    assert _native(t, flat) == rates_py(t, flat)  # den > 0 but a zero slope
    assert _native(t[:3], [1.0, 2.0, None]) == rates_py(t[:3], [1.0, 2.0, None]) == [None] * 3
    assert _native([], []) == rates_py([], []) == []


@needs_native
def test_mismatched_columns_are_refused_by_both() -> None:
    with pytest.raises(ValueError):
        rates_py([0.0, 0.05], [1.0])
    with pytest.raises(ValueError):
        _native([0.0, 0.05], [1.0])
