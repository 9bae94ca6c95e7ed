"""The zone loop of a panel (docs/panel.md, docs/adr/0162): every zone's power from every
instrumented site.

The chip loop of today (``ChipController``) keeps the control site (the centre, channel
``chip``) on the profile and gives the common power. The zone loop shares it out:

- **feed-forward**: the zone weights that heat every instrumented site alike by the
  identified gain matrix G (°C per % of each zone at each site, steady state): w = G⁺·1,
  scaled so the control site sees the common power as it would with equal zones (its
  identified chip model holds), negative weights cut to 0;
- **feedback**: PI on each instrumented site's difference from the control site, turned into
  zone trims by G⁺ (decoupled: the trim asked of one site is the least-squares zone change
  that moves it and leaves the others, the control site among them, where they are);
- **limits**: every zone within 0 … the chip loop's cap (the component's suspension fades
  it as it fades the common power) and 100 %, trims within ±``trim_max_pct``, each zone
  slewed at the chip loop's 400 %/s; the integrators hold while a zone is at a limit
  (conditional integration, the anti-windup) and while the common power is 0. A site the
  lamps cannot bring into line stays out of line: the judge fails it; no zone is driven
  past its limits to make it look good.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import structlog

from daemon.config import PanelGainsSection
from daemon.errors import StepFailed
from daemon.recipe.model import VacuumFilmBondRecipe
from daemon.thermal.loop import ChipLoop, ControllerFactory, Profile, ThermalModel, chip_controller
from daemon.thermal.panel_reach import unreachable_sites
from drivers.protocols import site_channel

log = structlog.get_logger(__name__)

SLEW_PCT_S = 400.0  # as the chip loop (ADR 0060)


# Tikhonov term of the pseudo-inverse, relative to the largest entry of GᵀG: instrumented
# sites that see the zones alike (the four corners of a symmetric panel) make G rank-deficient;
# the regularized inverse then shares the answer evenly among the zones that cannot be told
# apart (the minimum-norm least-squares solution), instead of failing. Its size is that of the
# identification's own error (tune finds each gain within a few % of its row's largest, ADR
# 0162; 1e-3 of GᵀG ~ 3 % of G's largest singular value): smaller, and the noise between two
# zones the sites cannot tell apart is inverted into opposite weights (ADR 0164: 7.6 °C instead
# of 3.1 °C on the shipped 3 × 3 panel's tuned gains).
RIDGE = 1e-3


def pinv(a: Sequence[Sequence[float]]) -> list[list[float]]:
    """The (ridge-regularized) pseudo-inverse (AᵀA + λI)⁻¹Aᵀ of the m × n matrix ``a``, n × m."""
    m, n = len(a), len(a[0])
    ata = [[sum(a[k][i] * a[k][j] for k in range(m)) for j in range(n)] for i in range(n)]
    lam = RIDGE * (max(abs(v) for row in ata for v in row) or 1.0)
    for i in range(n):
        ata[i][i] += lam
    aug = [row[:] + [a[k][i] for k in range(m)] for i, row in enumerate(ata)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(aug[r][col]))
        p = aug[piv][col]
        if p == 0.0:
            raise ValueError("the gain matrix is zero: no zone lights any site")
        aug[col], aug[piv] = aug[piv], aug[col]
        aug[col] = [v / p for v in aug[col]]
        for r in range(n):
            if r != col and aug[r][col] != 0.0:
                f = aug[r][col]
                aug[r] = [v - f * w for v, w in zip(aug[r], aug[col], strict=True)]
    return [row[n:] for row in aug]


def feedforward_weights(gains: Sequence[Sequence[float]]) -> list[float]:
    """Zone weights that heat every site of ``gains`` alike, scaled so that site 0 (the
    control site) gets what equal weights give it."""
    p = pinv(gains)
    w = [max(0.0, sum(row)) for row in p]  # G⁺·1, no zone told to cool by lighting less than 0
    g0 = gains[0]
    seen, equal = sum(g * x for g, x in zip(g0, w, strict=True)), sum(g0)
    if seen <= 0.0:
        raise ValueError("the feed-forward weights do not light the control site")
    return [x * equal / seen for x in w]


class ZoneLoop:
    """A loop that gives every lamp zone a power of its own (the step asks ``zones`` after
    ``update`` each period and commands the zones with it)."""

    def zones(
        self, t: float, temp: Callable[[str], float | None], common_pct: float, cap_pct: float
    ) -> list[float]:
        raise NotImplementedError


class PanelLoop(ZoneLoop):
    """A ``ChipLoop`` for the common power and the zone powers from the instrumented sites.

    ``gains[k][z]``: °C per % of zone z at the site of ``channels[k]``; ``channels[0]`` is
    the control site's (the chip channel)."""

    def __init__(
        self,
        inner: ChipLoop,
        gains: Sequence[Sequence[float]],
        channels: Sequence[str],
        *,
        kp: float = 0.5,
        ti_s: float = 6.0,
        trim_max_pct: float = 30.0,
    ) -> None:
        if len(gains) != len(channels) or not gains:
            raise ValueError("one row of gains per instrumented site")
        self._inner = inner
        self._gains = [list(r) for r in gains]
        self._channels = list(channels)
        self._w = feedforward_weights(gains)
        self._p = pinv(gains)
        self._kp, self._ti, self._trim_max = kp, ti_s, trim_max_pct
        self._i = [0.0] * len(channels)  # ∫ (site − control site) dt, °C·s
        self._last_t: float | None = None
        self._last_out: list[float] | None = None

    @property
    def weights(self) -> list[float]:
        return list(self._w)

    def unreachable_with_dead(
        self, dead: Collection[int], *, base_c: float, peak_c: float, window_min_c: float
    ) -> list[str]:
        """The instrumented sites' channels the other zones cannot bring into the window
        with the ``dead`` zones dark (``panel_reach.unreachable_sites``)."""
        return unreachable_sites(
            self._gains,
            self._channels,
            dead,
            base_c=base_c,
            peak_c=peak_c,
            window_min_c=window_min_c,
        )

    @property
    def expected_c(self) -> float | None:
        return self._inner.expected_c

    def update(
        self,
        t: float,
        profile: Profile,
        t_profile: float,
        *,
        measured_c: float,
        sink_c: float,
        cap_pct: float,
    ) -> float:
        return self._inner.update(
            t, profile, t_profile, measured_c=measured_c, sink_c=sink_c, cap_pct=cap_pct
        )

    def zones(
        self, t: float, temp: Callable[[str], float | None], common_pct: float, cap_pct: float
    ) -> list[float]:
        """Every zone's power for this period from the common power and the sites' readings."""
        dt = 0.0 if self._last_t is None else max(0.0, t - self._last_t)
        self._last_t = t
        ref = temp(self._channels[0])
        err = [0.0] * len(self._channels)
        if ref is not None:
            for k, ch in enumerate(self._channels[1:], start=1):
                v = temp(ch)
                err[k] = 0.0 if v is None else v - ref  # no reading: no trim from that site
        # The sites' temperature change asked for, and the zones' least-squares answer.
        want = [-(self._kp * e + i / self._ti) for e, i in zip(err, self._i, strict=True)]
        want[0] = 0.0
        trim = [sum(p * d for p, d in zip(row, want, strict=True)) for row in self._p]
        trim = [min(self._trim_max, max(-self._trim_max, x)) for x in trim]
        top = min(cap_pct, 100.0)
        raw = [common_pct * w + x for w, x in zip(self._w, trim, strict=True)]
        out = [min(top, max(0.0, v)) for v in raw]
        limited = any(v != r for v, r in zip(out, raw, strict=True))
        if common_pct > 0.0 and not limited:
            self._i = [i + e * dt for i, e in zip(self._i, err, strict=True)]
        last = self._last_out
        if last is not None and dt > 0.0:
            step = SLEW_PCT_S * dt
            out = [min(p + step, max(p - step, v)) for v, p in zip(out, last, strict=True)]
        self._last_out = out
        return out


def zone_loop_for(recipe: object, gains: PanelGainsSection | None) -> ControllerFactory | None:
    """The zone loop for a run of ``recipe``: with ``gains`` (the configuration's ``[panel_gains]``) for
    exactly the channels the recipe's panel instruments; None (the chip loop, equal zones)
    for a single chip, without gains, or with gains identified for other channels (said in
    the log: the run is then judged, site by site, on equal power)."""
    panel = recipe.panel if isinstance(recipe, VacuumFilmBondRecipe) else None
    if gains is None or panel is None or panel.sites == 1:
        return None
    ref = panel.reference_site
    wanted = sorted(site_channel(i, ref) for i in panel.instrumented_sites)
    if sorted(gains.channels) != wanted:
        log.warning(
            "panel_gains_not_for_this_panel",
            configured=gains.channels,
            instrumented=wanted,
            hint="run `bonderd tune --panel RECIPE --write` for this panel",
        )
        return None
    rows, channels = gains.gains_c_per_pct, list(gains.channels)

    def factory(model: ThermalModel | None, melt: tuple[float, float] | None) -> ChipLoop:
        if model is None:
            raise StepFailed(
                "no identified thermal model in the configuration ([thermal]): run "
                "`bonderd tune --write --config FILE` on this machine first"
            )
        return PanelLoop(chip_controller(model, melt), rows, channels)

    return factory
