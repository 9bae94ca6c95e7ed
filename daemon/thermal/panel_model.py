"""A dynamic model of every site of a panel, and the observer it makes for the sites without
a thermocouple (docs/panel.md "The site model", docs/adr/0166).

The model is identified, not given the plant: a commissioning panel with a thermocouple on
every site is stepped zone by zone (``bonderd tune --panel RECIPE --commissioning``), which
gives, per site, its steady-state rise over the chuck per % of each zone (G, as
``[panel_gains]`` has for the instrumented sites) and the time constant of its response
(the area over the normalized step response: robust to the thermocouples' noise). Each
site is then a first-order lag:

    dx_i/dt = (G_i · u − x_i) / τ_i,     T_i = chuck + x_i

driven by the zone powers the lamps actually deliver (their readings, a dead zone's 0).

The linear model cannot know what the run does beyond it: the gains fall as radiation
grows with T⁴, a site's solder melts and freezes. Those errors show on the measured sites
as residuals r_k = T_k − (chuck + x_k), alike for sites alike; the observer corrects each
unmeasured site by the residuals of the measured ones interpolated to it (inverse square
distance, fixed weights: a steady-state output-injection gain). An estimate is never a
reading: it lives in the loop and the judge, marked ``site_<n>_est``.

The per-cycle work is one multiply-add per site and zone and one per site and measured site
on precomputed weights (9 × 4 + 4 × 5 for the 3 × 3 panel): no allocation beyond the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Time constants are fitted on step responses that settle within the experiment's phase;
# a site that never rose (no zone lights it measurably) gets this one, it rests on G ≈ 0.
DEFAULT_TAU_S = 5.0

# The observer's lag factors are kept for this many distinct periods (then worked out anew).
_LAG_PERIODS_KEPT = 8


@dataclass(frozen=True, slots=True)
class SiteModel:
    """The identified model of every site: ``channels[i]`` (the control site's ``chip``
    first, the others ``site_<n>``), ``gains[i][z]`` °C per % of zone z over the chuck,
    ``tau_s[i]`` the first-order time constant, ``positions[i]`` (row, col)."""

    channels: tuple[str, ...]
    gains: tuple[tuple[float, ...], ...]
    tau_s: tuple[float, ...]
    positions: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        n = len(self.channels)
        if not (len(self.gains) == len(self.tau_s) == len(self.positions) == n) or n == 0:
            raise ValueError("SiteModel: one gain row, time constant and position per site")
        if any(not (math.isfinite(t) and t > 0.0) for t in self.tau_s):
            raise ValueError("SiteModel: every time constant must be > 0")


def _idw(
    positions: Sequence[tuple[int, int]], target: tuple[int, int], known: Sequence[int]
) -> list[float]:
    """Inverse-square-distance weights (summing to 1) of the ``known`` sites at ``target``."""
    w = []
    for k in known:
        dr, dc = positions[k][0] - target[0], positions[k][1] - target[1]
        d2 = float(dr * dr + dc * dc)
        w.append(1.0 / d2 if d2 > 0.0 else 1e9)
    total = sum(w)
    return [x / total for x in w]


class SiteObserver:
    """Every site's temperature each cycle: the reading where a site has one, the model's
    estimate corrected by the measured sites' residuals where it has none."""

    def __init__(self, model: SiteModel, measured: Sequence[str]) -> None:
        have = set(measured)
        self.model = model
        self.channels = model.channels
        self._g = [list(r) for r in model.gains]
        self._tau = list(model.tau_s)
        self._meas = [i for i, ch in enumerate(model.channels) if ch in have]
        self._est = [i for i, ch in enumerate(model.channels) if ch not in have]
        if not self._meas:
            raise ValueError("SiteObserver: no measured site to correct the model with")
        self._x: list[float] | None = None
        self._last_t: float | None = None
        # Fixed correction weights per estimated site, and per set of measured sites that
        # read (a thermocouple dropping out of one snapshot drops it from the correction).
        self._weights: dict[tuple[int, ...], list[list[float]]] = {}
        self._zones = len(self._g[0])
        self._lags: dict[float, list[float]] = {}

    @property
    def estimated(self) -> list[int]:
        """The indices (into ``channels``) of the sites without a thermocouple."""
        return list(self._est)

    def _weights_for(self, known: tuple[int, ...]) -> list[list[float]]:
        w = self._weights.get(known)
        if w is None:
            pos = self.model.positions
            w = self._weights[known] = [_idw(pos, pos[j], known) for j in self._est]
        return w

    def update(
        self,
        t: float,
        delivered: Sequence[float],
        chuck_c: float | None,
        temp: Callable[[str], float | None],
    ) -> list[float | None]:
        """Every site's temperature (in ``channels`` order) at ``t``, after advancing the
        model under ``delivered`` (each zone's %, as read) since the last call. None where a
        site neither reads nor can be estimated (no chuck reading, no measured site)."""
        g = self._g
        u = list(delivered) if len(delivered) == self._zones else [0.0] * self._zones
        x = self._x
        # Dot products as plain loops from 0.0: ``sum`` of a generator adds the same terms
        # in the same order from 0 (0 + a float is that float), at twice the cost per cycle.
        if x is None:
            x = self._x = []
            for row in g:
                ss = 0.0
                for a, b in zip(row, u, strict=True):
                    ss += a * b
                x.append(ss)
        else:
            dt = max(0.0, t - (self._last_t if self._last_t is not None else t))
            # The lags' factors are the same ``math.exp`` of the same operands whenever a
            # period recurs (the clock's 0.05 s comes as two or three doubles, cycle after
            # cycle): kept per period, a handful of them.
            lags = self._lags.get(dt)
            if lags is None:
                if len(self._lags) >= _LAG_PERIODS_KEPT:
                    self._lags.clear()
                lags = self._lags[dt] = [1.0 - math.exp(-dt / tau) for tau in self._tau]
            for i, (row, k) in enumerate(zip(g, lags, strict=True)):
                ss = 0.0
                for a, b in zip(row, u, strict=True):
                    ss += a * b
                xi = x[i]
                x[i] = xi + (ss - xi) * k
        self._last_t = t
        out: list[float | None] = [None] * len(g)
        chans = self.channels
        known: list[int] = []
        resid: list[float] = []
        for k in self._meas:
            v = temp(chans[k])
            out[k] = v
            if v is not None and chuck_c is not None:
                known.append(k)
                resid.append(v - chuck_c - x[k])
        if chuck_c is None or not known:
            return out
        for j, w in zip(self._est, self._weights_for(tuple(known)), strict=True):
            corr = 0.0
            for a, r in zip(w, resid, strict=True):
                corr += a * r
            out[j] = chuck_c + x[j] + corr
        return out


def step_time_constant(times: Sequence[float], rise: Sequence[float], final: float) -> float:
    """The first-order time constant of a step response: the area between the final value
    and the response, over the final value (τ = ∫(1 − y/y∞) dt), trapezoidal. The step's
    end is where the response has settled; ``DEFAULT_TAU_S`` for a response too small to
    measure (a site the zone does not light)."""
    if len(times) < 2 or abs(final) < 1e-9:
        return DEFAULT_TAU_S
    area = 0.0
    for k in range(1, len(times)):
        a = 1.0 - rise[k - 1] / final
        b = 1.0 - rise[k] / final
        area += 0.5 * (a + b) * (times[k] - times[k - 1])
    return max(0.1, area)
