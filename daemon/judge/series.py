"""The recorded trace as the judge reads it: one series per quantity, spans as masks, the
extremes, times above a level and the sliding least-squares rates every check is built on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Final

from daemon.recipe.catalogue import step_types
from daemon.recipe.model import (
    BumpReflowRecipe,
    Reflow,
    VacuumFilmBondRecipe,
)
from daemon.store.trace import Sample

try:
    from daemon.judge import _series_native as _native
except ImportError:  # built without a C compiler: the Python reference, slower
    _native = None  # type: ignore[assignment]

# The judge's phases, from the step catalogue.
HEATING_TYPES: Final = step_types(lambda s: s.heats)
COOLING_TYPES: Final = step_types(lambda s: s.cools)

# Rates are least-squares slopes over a centred window of this width. At the 20 Hz trace that
# is 41 points, and noise within ±0.1 °C moves the slope by at most ~0.14 °C/s (the worst
# case is a 0.2 °C step in mid-window; random noise moves it ~0.02 °C/s), where a difference
# of consecutive samples reads up to 2 °C/s of pure noise. A 1 s window would allow 0.27 °C/s
# of noise error, too close to recipe limits of 1-3 °C/s. Ramps last tens of seconds, and a
# 1 s burst at 10 °C/s (lamp stuck on) still reads 5 °C/s, so nothing real is averaged away.
RATE_WINDOW_S: Final = 2.0
# A window with fewer points or a shorter span (gaps, missing readings) gives no rate.
RATE_MIN_POINTS: Final = 5
RATE_MIN_SPAN_S: Final = 0.6 * RATE_WINDOW_S
# Samples between exact rebuilds of the sliding rate window's sums (``rates``).
RATE_RESUM: Final = 100


Series = list[float | None]  # one value per sample, None = no valid reading
Mask = list[bool]  # one flag per sample: inside the span a check covers


def valid(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else v


def window_text(lo: float, hi: float) -> str:
    return f"[{lo:g}, {hi:g}]"


class Trace:
    """The samples as per-sample columns, computed once for all checks."""

    def __init__(
        self,
        recipe: VacuumFilmBondRecipe | BumpReflowRecipe,
        samples: Sequence[Sample],
        *,
        chip_channel: str | None = None,
    ) -> None:
        self.recipe = recipe
        self.samples = samples
        # The chip signal is the channel the reflow controls on: the recipe's peak window and
        # ramp limit were written for it. A panel's site is judged on its own channel.
        reflow = next((s for s in recipe.steps if isinstance(s, Reflow)), None)
        self.chip_channel = chip_channel or (reflow.control_tc if reflow is not None else "chip")
        step_type = {s.name: s.type for s in recipe.steps}
        self.t = [s.t_s for s in samples]
        self.phase = [step_type.get(s.step) for s in samples]
        self.heating = [p in HEATING_TYPES for p in self.phase]
        self.cooling = [p in COOLING_TYPES for p in self.phase]
        self.chip: Series = []
        self.component: Series = []  # Sample.component_avg_c
        # The chuck must be below Tg everywhere, so its hottest channel is what counts.
        self.chuck: Series = []  # the hottest valid ``chuck*`` channel
        self._temperature_columns(samples)
        # valid() inlined: two columns of every sample.
        isnan = math.isnan
        self.pressure: Series = [
            None if (v := s.pressure_mbar) is None or isnan(v) else v for s in samples
        ]
        self.o2: Series = [None if (v := s.o2_ppm) is None or isnan(v) else v for s in samples]
        self.o2_partial: Series = [valid(s.o2_partial_mbar()) for s in samples]
        # A rate belongs to the step it was measured in: at a boundary the next step may
        # legitimately change pace (lamps off for venting once the cool is done). Rates are
        # read only in heating and cooling steps (the ramp and cooling-rate checks, their
        # metrics): the other steps' windows are not computed.
        self.rate: Series = self._rates()

    @classmethod
    def sharing(cls, base: Trace, chip_channel: str, chip: Series) -> Trace:
        """The trace of the same samples judged on another chip signal (a panel's site):
        ``base``'s columns but the chip's and its rates, which are computed from ``chip``.

        A panel is judged once per site on the same samples; only the chip column differs,
        so the others (read by every check, never written) are shared, not rebuilt nine
        times (docs/adr/0180).
        """
        if len(chip) != len(base.samples):
            raise ValueError(f"chip has {len(chip)} values, the trace {len(base.samples)} samples")
        tr = cls.__new__(cls)
        tr.recipe, tr.samples, tr.chip_channel = base.recipe, base.samples, chip_channel
        tr.t, tr.phase, tr.heating, tr.cooling = base.t, base.phase, base.heating, base.cooling
        tr.component, tr.chuck = base.component, base.chuck
        tr.pressure, tr.o2, tr.o2_partial = base.pressure, base.o2, base.o2_partial
        tr.chip = chip
        tr.rate = tr._rates()
        return tr

    def _rates(self) -> Series:
        rate: Series = []
        samples = self.samples
        start = 0
        for end in range(1, len(samples) + 1):
            if end == len(samples) or samples[end].step != samples[start].step:
                if self.heating[start] or self.cooling[start]:
                    rate += rates(self.t[start:end], self.chip[start:end])
                else:
                    rate += [None] * (end - start)
                start = end
        return rate

    def _temperature_columns(self, samples: Sequence[Sample]) -> None:
        """The chip, component-average and hottest-chuck columns in one pass.

        The same values as ``valid`` of the chip channel, ``valid(component_avg_c())`` and
        the largest valid ``chuck*`` reading, sample by sample (tests/test_conformance.py
        compares them), without a method call and a scan of every channel name per sample:
        the channels of each prefix are picked once per layout of the temperature dict (one
        layout per run, as a rule), in the dict's order, so the average adds up in the same
        order as ``component_avg_c``.
        """
        channel = self.chip_channel
        chip, component, chuck = self.chip, self.component, self.chuck
        layouts: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[str, ...]]] = {}
        names: tuple[str, ...] = ()
        comp_keys: tuple[str, ...] = ()
        chuck_keys: tuple[str, ...] = ()
        isnan = math.isnan
        for s in samples:
            temps = s.temps_c
            if tuple(temps) != names:
                names = tuple(temps)
                layout = layouts.get(names)
                if layout is None:
                    layout = layouts[names] = (
                        tuple(k for k in names if k.startswith("component")),
                        tuple(k for k in names if k.startswith("chuck")),
                    )
                comp_keys, chuck_keys = layout
            v = temps.get(channel)
            chip.append(None if v is None or isnan(v) else v)
            if len(comp_keys) == 1:
                # One channel (the usual layout): sum([x]) / 1 is 0 + x, i.e. x + 0.0.
                x = temps[comp_keys[0]]
                component.append(None if x is None or isnan(x) else x + 0.0)
            else:
                comp = [x for k in comp_keys if (x := temps[k]) is not None]
                avg = sum(comp) / len(comp) if comp else None
                component.append(None if avg is None or math.isnan(avg) else avg)
            if len(chuck_keys) == 1:
                x = temps[chuck_keys[0]]
                chuck.append(None if x is None or isnan(x) else x)
            else:
                hot = [x for k in chuck_keys if (x := temps[k]) is not None and not math.isnan(x)]
                chuck.append(max(hot) if hot else None)

    def mask(self, pred: Callable[[int], bool]) -> Mask:
        return [pred(i) for i in range(len(self.samples))]

    def in_steps(self, names: set[str]) -> Mask:
        return [s.step in names for s in self.samples]

    def where(self, i: int) -> str:
        s = self.samples[i]
        return f"t={s.t_s:.1f} s in step {s.step or '(between steps)'}"


# ---------------------------------------------------------------------------- signal helpers


@dataclass
class Extreme:
    """The extreme of a series over a span, and the samples in it that lacked the reading."""

    value: float | None = None
    at: int = -1
    seen: int = 0
    missing: int = 0
    first_missing: int = -1


def extreme(span: Mask, values: Series, *, highest: bool = True) -> Extreme:
    # Whole-list passes in C (compress, count, max, index): the checks run over the complete
    # trace at the run's end, 13 passes of ~5000 samples. Same answer as a loop that keeps
    # the first strictly greater (smaller) value: max() and min() keep the first extreme
    # element, and index() finds that element again (the first equal one is it).
    if len(span) != len(values):
        raise ValueError(f"span has {len(span)} samples, the series {len(values)}")
    ext = Extreme()
    inside = list(compress(values, span))
    ext.seen = len(inside)
    ext.missing = inside.count(None)
    present = [v for v in inside if v is not None] if ext.missing else inside
    if not ext.missing and not present:
        return ext
    where = list(compress(range(len(span)), span))  # sample index of each inside value
    if ext.missing:
        ext.first_missing = where[inside.index(None)]
    if present:
        value = max(present) if highest else min(present)  # type: ignore[type-var]
        ext.value, ext.at = value, where[inside.index(value)]
    return ext


def missing_text(tr: Trace, count: int, first: int, what: str) -> str:
    return (
        f"{what} not measured in {count} sample(s), first at {tr.where(first)}: "
        "not measured is not proof"
    )


def time_above(t: Sequence[float], values: Series, span: Mask, level: float) -> float:
    """Time the series spent at or above ``level`` within the span, over sample intervals.

    Crossings are placed by linear interpolation, so the result does not depend on where the
    samples happen to fall; an interval with a missing reading at either end is not counted.
    """
    total = 0.0
    for i in range(1, len(t)):
        a, b = values[i - 1], values[i]
        if a is None or b is None or not (span[i - 1] and span[i]):
            continue
        dt = t[i] - t[i - 1]
        da, db = a - level, b - level
        if da >= 0 and db >= 0:
            total += dt
        elif da >= 0 or db >= 0:
            total += dt * max(da, db) / abs(da - db)
    return total


def rates(t: Sequence[float], values: Series) -> Series:
    """Per sample: least-squares slope (°C/s) of the series over a centred window
    (``rates_py``; its C twin where the project was built with one, the same numbers to the
    bit: docs/adr/0186)."""
    if _native is not None:
        return _native.rates(t, values, RATE_WINDOW_S, RATE_MIN_POINTS, RATE_MIN_SPAN_S, RATE_RESUM)
    return rates_py(t, values)


def rates_py(t: Sequence[float], values: Series) -> Series:
    """Per sample: least-squares slope (°C/s) of the series over a centred window.

    The window's sums slide: a point is added as the window reaches it and taken off as the
    window leaves it, so each sample costs a few operations instead of a pass over its ~41
    points (the pass was two thirds of the end-of-run judge). Times count from an origin
    inside the window, moved and the sums rebuilt exactly every ``RATE_RESUM`` samples, so
    the sums stay small and the add-and-take-off rounding cannot pile up: the slope agrees
    with a fresh fit of the window to ~1e-12 relative (tests/test_conformance.py).
    """
    ts = [x for x, v in zip(t, values, strict=True) if v is not None]
    vs = [v for v in values if v is not None]
    n_valid = len(ts)
    half = RATE_WINDOW_S / 2.0
    out: Series = []
    lo = hi = 0
    # Sums over the window [lo, hi) of d = t - origin, d², v, d·v.
    origin = ts[0] if ts else 0.0
    s1 = s2 = sy = sdy = 0.0
    since_resum = RATE_RESUM
    for tc, v in zip(t, values, strict=True):
        if v is None:
            out.append(None)
            continue
        new_lo = lo
        while new_lo < n_valid and ts[new_lo] < tc - half:
            new_lo += 1
        new_hi = max(hi, new_lo)
        while new_hi < n_valid and ts[new_hi] <= tc + half:
            new_hi += 1
        since_resum += 1
        if since_resum >= RATE_RESUM or new_lo >= hi:
            # Rebuild exactly around an origin here (also when the window jumped a gap).
            origin, since_resum = tc, 0
            s1 = s2 = sy = sdy = 0.0
            for j in range(new_lo, new_hi):
                d = ts[j] - origin
                s1 += d
                s2 += d * d
                sy += vs[j]
                sdy += d * vs[j]
        else:
            for j in range(lo, new_lo):  # left the window
                d = ts[j] - origin
                s1 -= d
                s2 -= d * d
                sy -= vs[j]
                sdy -= d * vs[j]
            for j in range(hi, new_hi):  # entered it
                d = ts[j] - origin
                s1 += d
                s2 += d * d
                sy += vs[j]
                sdy += d * vs[j]
        lo, hi = new_lo, new_hi
        n = hi - lo
        if n < RATE_MIN_POINTS or ts[hi - 1] - ts[lo] < RATE_MIN_SPAN_S:
            out.append(None)
            continue
        # The same fit with times relative to the window's centre: x = d - u.
        u = tc - origin
        sx = s1 - n * u
        sxx = s2 - 2.0 * u * s1 + n * u * u
        sxy = sdy - u * sy
        den = n * sxx - sx * sx
        out.append((n * sxy - sx * sy) / den if den > 0 else None)
    return out


# ---------------------------------------------------------------------------- the checks
