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

import math
from collections.abc import Callable, Collection, Sequence

import structlog

from daemon.config import PanelGainsSection
from daemon.errors import StepFailed
from daemon.recipe.model import VacuumFilmBondRecipe
from daemon.thermal.loop import ChipLoop, ControllerFactory, Profile, ThermalModel, chip_controller
from daemon.thermal.panel_model import SiteModel, SiteObserver
from daemon.thermal.panel_reach import Reach, examine
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

# A site without a thermocouple, read from the site model's observer (ADR 0166), counts this
# much in the trims' least-squares fit against a measured site's 1: it is a model's word.
ESTIMATE_WEIGHT = 0.5

# With the site model every site is in the feedback (ADR 0166): stronger trims no longer push
# the sites no thermocouple sees off the profile to line up the ones it does. Measured on the
# 3 × 3 recipe (kp, Ti): 0.5, 6 s → 1.78 °C true uniformity; 2, 4 s → 1.32 °C; 3, 3 s → 1.13 °C;
# 4, 4 s → 1.16 °C.
MODEL_KP = 3.0
MODEL_TI_S = 3.0

# A measured site over the ceiling (the reflow's peak window top) pulls the zones that light
# it down (ADR 0169): the least-norm zone change lowering that site, this many °C per °C
# over it, plus as many per °C·s held. Without it the least-squares trims weighed one hot
# corner (uneven film) against the three cold ones its zone also lights, and left the corner
# zone up until the corner rode to the chip limit (272 °C).
CEILING_KP = 1.0
CEILING_KI_S = 1.0
# A site still over its ceiling this long after the cut began is beyond what the zones can
# do without dropping the others: the reflow stops naming it (ADR 0169).
CEILING_GRACE_S = 3.0


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


def feedforward_weights(
    gains: Sequence[Sequence[float]], dead: Collection[int] = ()
) -> list[float]:
    """Zone weights that heat every site of ``gains`` alike, scaled so that site 0 (the
    control site) gets what equal weights of every zone give it (the chip model was
    identified on them); the ``dead`` zones get 0 and the others make up for them."""
    live = [z for z in range(len(gains[0])) if z not in dead]
    if not live:
        return [0.0] * len(gains[0])
    p = pinv([[row[z] for z in live] for row in gains])
    w = [0.0] * len(gains[0])
    for z, prow in zip(live, p, strict=True):
        w[z] = max(0.0, sum(prow))  # G⁺·1, no zone told to cool by lighting less than 0
    g0 = gains[0]
    seen, equal = sum(g * x for g, x in zip(g0, w, strict=True)), sum(g0)
    if seen <= 0.0:
        raise ValueError("the feed-forward weights do not light the control site")
    return [x * equal / seen for x in w]


def weighted_pinv(
    gains: Sequence[Sequence[float]], weights: Sequence[float], dead: Collection[int] = ()
) -> list[list[float]]:
    """The zones' least-squares answer to a change asked of every site, each site's share
    of the fit by ``weights`` (an estimated site counts less than a measured one): zones ×
    sites, (GᵀSG + λI)⁻¹GᵀS on the live zones, rows of 0 for the ``dead`` ones."""
    zones = len(gains[0])
    live = [z for z in range(zones) if z not in dead]
    out = [[0.0] * len(gains) for _ in range(zones)]
    if not live:
        return out
    root = [math.sqrt(w) for w in weights]
    scaled = [[row[z] * r for z in live] for row, r in zip(gains, root, strict=True)]
    for z, prow in zip(live, pinv(scaled), strict=True):
        out[z] = [v * r for v, r in zip(prow, root, strict=True)]
    return out


class ZoneLoop:
    """A loop that gives every lamp zone a power of its own (the step asks ``zones`` after
    ``update`` each period and commands the zones with it)."""

    def zones(
        self,
        t: float,
        temp: Callable[[str], float | None],
        common_pct: float,
        cap_pct: float,
        delivered: Sequence[float] = (),
    ) -> list[float]:
        raise NotImplementedError


class PanelLoop(ZoneLoop):
    """A ``ChipLoop`` for the common power and the zone powers from the instrumented sites.

    ``gains[k][z]``: °C per % of zone z at the site of ``channels[k]``; ``channels[0]`` is
    the control site's (the chip channel). With a ``model`` of every site (ADR 0166) the
    feed-forward is solved over all of them and the feedback reads the sites without a
    thermocouple from the model's observer, each weighted ``estimate_weight`` against a
    measured site's 1."""

    def __init__(
        self,
        inner: ChipLoop,
        gains: Sequence[Sequence[float]],
        channels: Sequence[str],
        *,
        kp: float | None = None,
        ti_s: float | None = None,
        trim_max_pct: float = 30.0,
        model: SiteModel | None = None,
        estimate_weight: float = ESTIMATE_WEIGHT,
    ) -> None:
        if len(gains) != len(channels) or not gains:
            raise ValueError("one row of gains per instrumented site")
        self._inner = inner
        self._gains = [list(r) for r in gains]
        self._channels = list(channels)
        self._observer: SiteObserver | None = None
        if model is not None:
            if model.channels[0] != channels[0] or not set(channels) <= set(model.channels):
                raise ValueError("the site model is not of this panel's instrumented sites")
            self._observer = SiteObserver(model, channels)
            self._sites = list(model.channels)
            self._site_gains = [list(r) for r in model.gains]
            measured = set(channels)
            self._site_weights = [1.0 if ch in measured else estimate_weight for ch in self._sites]
        else:
            self._sites = list(channels)
            self._site_gains = self._gains
            self._site_weights = [1.0] * len(channels)
        self._dead: frozenset[int] = frozenset()
        have = set(channels)
        self._measured = [i for i, ch in enumerate(self._sites) if ch in have]
        self.ceiling_c: float | None = None  # set by the reflow (its peak window's top)
        self._cut = [0.0] * len(self._site_gains[0])  # held ceiling cut per zone, %
        self._over_s = 0.0  # how long a measured site has been over the ceiling
        self._w = feedforward_weights(self._site_gains)
        self._p = weighted_pinv(self._site_gains, self._site_weights)
        self._kp = kp if kp is not None else (MODEL_KP if model is not None else 0.5)
        self._ti = ti_s if ti_s is not None else (MODEL_TI_S if model is not None else 6.0)
        self._trim_max = trim_max_pct
        self._i = [0.0] * len(self._sites)  # ∫ (site − control site) dt, °C·s
        self._last_t: float | None = None
        self._last_out: list[float] | None = None
        self.estimates: dict[str, float | None] = {}  # the last cycle's, by site channel

    @property
    def weights(self) -> list[float]:
        return list(self._w)

    @property
    def has_model(self) -> bool:
        return self._observer is not None

    def reach_with_dead(
        self,
        dead: Collection[int],
        *,
        base_c: float,
        peak_c: float,
        window_min_c: float,
        window_max_c: float,
        max_spread_c: float | None,
    ) -> Reach:
        """What the twin says of the sites with the ``dead`` zones dark
        (``panel_reach.examine``): every site's on the model, the instrumented sites' on their
        gains without one."""
        return examine(
            self._site_gains,
            self._sites,
            dead,
            base_c=base_c,
            peak_c=peak_c,
            window_min_c=window_min_c,
            window_max_c=window_max_c,
            max_spread_c=max_spread_c,
        )

    def compensate(self, dead: Collection[int]) -> None:
        """Re-solve the feed-forward without the ``dead`` zones: the others carry their share,
        each within its limits (ADR 0167). The trims keep the healthy head's least-squares
        answer, the dead zones' part of it lost: re-solved over the live zones they traded
        the estimated sides against the measured corners and left the corners 1.7 °C over
        the centre, too fast in the cool (dead corner zone, the 3 × 3 recipe)."""
        self._dead = frozenset(dead)
        self._w = feedforward_weights(self._site_gains, self._dead)

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
        self,
        t: float,
        temp: Callable[[str], float | None],
        common_pct: float,
        cap_pct: float,
        delivered: Sequence[float] = (),
    ) -> list[float]:
        """Every zone's power for this period from the common power and the sites' readings
        (and, with a model, the estimates it makes from ``delivered``, each zone's reading)."""
        dt = 0.0 if self._last_t is None else max(0.0, t - self._last_t)
        self._last_t = t
        obs = self._observer
        if obs is not None:
            drive = delivered if delivered else (self._last_out or ())
            temps = obs.update(t, drive, temp("chuck"), temp)
            self.estimates = {self._sites[j]: temps[j] for j in obs.estimated}
        else:
            temps = [temp(ch) for ch in self._sites]
        ref = temps[0]
        err = [0.0] * len(self._sites)
        if ref is not None:
            for k in range(1, len(self._sites)):
                v = temps[k]
                err[k] = 0.0 if v is None else v - ref  # no reading: no trim from that site
        # The sites' temperature change asked for, and the zones' least-squares answer.
        want = [-(self._kp * e + i / self._ti) for e, i in zip(err, self._i, strict=True)]
        want[0] = 0.0
        # Plain loops from 0.0: the same adds in the same order as ``sum`` (ADR 0181).
        asked: list[float] = []
        for row in self._p:
            ss = 0.0
            for p, d in zip(row, want, strict=True):
                ss += p * d
            asked.append(ss)
        trim = [min(self._trim_max, max(-self._trim_max, x)) for x in asked]
        top = min(cap_pct, 100.0)
        raw = [common_pct * w + x for w, x in zip(self._w, trim, strict=True)]
        raw = self._ceiling(raw, temps, dt)
        out = [min(top, max(0.0, v)) for v in raw]
        # A trim at its bound is a limit too: integrating on would wind up what it cannot
        # deliver.
        limited = any(v != r for v, r in zip(out, raw, strict=True)) or any(
            a != x for a, x in zip(asked, trim, strict=True)
        )
        if common_pct > 0.0 and not limited and not any(self._cut):
            self._i = [i + e * dt for i, e in zip(self._i, err, strict=True)]
        last = self._last_out
        if last is not None and dt > 0.0:
            step = SLEW_PCT_S * dt
            out = [min(p + step, max(p - step, v)) for v, p in zip(out, last, strict=True)]
        self._last_out = out
        return out

    @property
    def ceiling_held_s(self) -> float:
        return self._over_s

    def over_ceiling(self, temp: Callable[[str], float | None]) -> tuple[str, float] | None:
        """The hottest measured site and its reading once it has stayed over ``ceiling_c``
        for ``CEILING_GRACE_S`` with its zones pulled down: the loop cannot bring it back."""
        if self.ceiling_c is None or self._over_s < CEILING_GRACE_S:
            return None
        got = [(ch, temp(ch)) for ch in self._channels]
        hot = [(ch, v) for ch, v in got if v is not None and v > self.ceiling_c]
        return max(hot, key=lambda p: p[1]) if hot else None

    def _ceiling(self, raw: list[float], temps: Sequence[float | None], dt: float) -> list[float]:
        """The zones less the ceiling's cut: the hottest measured site over ``ceiling_c``
        lowered by the least-norm zone change along its gain row (ADR 0169); the cut held
        once made (a site pulled back under its ceiling would climb again without it)."""
        if self.ceiling_c is None:
            return raw
        over, k = 0.0, -1
        for i in self._measured:
            v = temps[i]
            if v is not None and v - self.ceiling_c > over:
                over, k = v - self.ceiling_c, i
        row = self._site_gains[k] if k >= 0 else []
        norm = sum(g * g for g in row)
        self._over_s = self._over_s + dt if k >= 0 else 0.0
        if k >= 0 and norm > 0.0:
            live = [0.0 if z in self._dead else g / norm for z, g in enumerate(row)]
            self._cut = [
                c + CEILING_KI_S * over * dt * d for c, d in zip(self._cut, live, strict=True)
            ]
            return [
                r - c - CEILING_KP * over * d for r, c, d in zip(raw, self._cut, live, strict=True)
            ]
        return [r - c for r, c in zip(raw, self._cut, strict=True)]


def site_model_of(recipe: object, gains: PanelGainsSection | None) -> SiteModel | None:
    """The site model in ``gains`` for ``recipe``'s panel: a section identified on the
    commissioning panel (a row and a time constant for every site of it); else None."""
    panel = recipe.panel if isinstance(recipe, VacuumFilmBondRecipe) else None
    if gains is None or panel is None or panel.sites == 1 or not gains.tau_s:
        return None
    ref = panel.reference_site
    site_of = {site_channel(i, ref): i for i in range(panel.sites)}
    if sorted(gains.channels) != sorted(site_of):
        return None
    return SiteModel(
        channels=tuple(gains.channels),
        gains=tuple(tuple(r) for r in gains.gains_c_per_pct),
        tau_s=tuple(gains.tau_s),
        positions=tuple(divmod(site_of[ch], panel.cols) for ch in gains.channels),
    )


def zone_loop_for(recipe: object, gains: PanelGainsSection | None) -> ControllerFactory | None:
    """The zone loop for a run of ``recipe``: with ``gains`` (the configuration's
    ``[panel_gains]``) for exactly the channels the recipe's panel instruments, or a site model
    of every site of it (ADR 0166); None (the chip loop, equal zones) for a single chip,
    without gains, or with gains identified for other channels (said in the log: the run is
    then judged, site by site, on equal power)."""
    panel = recipe.panel if isinstance(recipe, VacuumFilmBondRecipe) else None
    if gains is None or panel is None or panel.sites == 1:
        return None
    ref = panel.reference_site
    wanted = sorted(site_channel(i, ref) for i in panel.instrumented_sites)
    sites = site_model_of(recipe, gains)
    if sites is None and sorted(gains.channels) != wanted:
        log.warning(
            "panel_gains_not_for_this_panel",
            configured=gains.channels,
            instrumented=wanted,
            hint="run `bonderd tune --panel RECIPE --write` for this panel",
        )
        return None
    rows, channels = gains.gains_c_per_pct, list(gains.channels)
    if sites is not None:  # the instrumented sites' rows of the model, in its order
        channels = [ch for ch in channels if ch in wanted]
        rows = [
            r for ch, r in zip(gains.channels, gains.gains_c_per_pct, strict=True) if ch in wanted
        ]

    def factory(model: ThermalModel | None, melt: tuple[float, float] | None) -> ChipLoop:
        if model is None:
            raise StepFailed(
                "no identified thermal model in the configuration ([thermal]): run "
                "`bonderd tune --write --config FILE` on this machine first"
            )
        return PanelLoop(chip_controller(model, melt), rows, channels, model=sites)

    return factory
