"""Can a panel still reflow with a dead lamp zone? (issue 17 item 5, ADRs 0165, 0167, 0168)

The twin here is the identified gain matrix G (ADR 0162: °C per % of each zone at each
site, steady state, over the chuck; every site's with the site model of ADR 0166). With the
control site held on the profile by the chip loop, a site's rise over the chuck is its share
``G_k·u / G_0·u`` of the control site's, for zone powers u. With zone ``d`` dark (u_d = 0)
the other zones may take any powers within 0 … 100 %. The question is whether some such u
puts every site inside the peak window — its bottom *and* its top — while the control site
is at the peak target, whether the control site itself can still get there at full power,
and whether the sites then stay close enough together to freeze in step (ADR 0168): a site
far over the control site is still molten when the control site's latent heat makes the chip
loop cut the lamps, and falls faster than the cool's rate (the corner zone dead on the 3 × 3
recipe: the twin's best spread 5.8 °C, the plant's 5.8 °C, the side sites cooling at
4.4 °C/s against the 3 °C/s limit).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

# Zone powers tried in 5 % steps: the gains are good to a few % (ADR 0162), and at 10 % the
# spread found with the corner zone dead was 6.7 °C where 5 % steps find the 5.8 °C the plant
# shows (a dead zone leaves three live ones: 21³ powers, once per new set of dead zones).
GRID = 20

# Sites apart by more than this many seconds of the cool's rate freeze out of step: the
# judge's rate is a 2 s least-squares slope (judge/series.py RATE_WINDOW_S), and a site still
# molten more than half a window after the control site has frozen sees the chip loop's cut
# for the control site's latent heat in its own slope.
FREEZE_IN_STEP_S = 1.0


@dataclass(frozen=True, slots=True)
class Reach:
    """What the twin says of the best zone powers with the dead zones dark: ``predicted_c``
    every site's peak (channels' order, the control site's first); the channels ``below``
    and ``above`` the window there, those ``apart`` (farther from the control site than half
    the allowed spread when the spread is over it); ``control_lost`` when even full power
    cannot lift the control site to its peak."""

    control_lost: bool = False
    below: list[str] = field(default_factory=list)
    above: list[str] = field(default_factory=list)
    apart: list[str] = field(default_factory=list)
    spread_c: float = 0.0
    predicted_c: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.control_lost or self.below or self.above or self.apart)


def examine(
    gains: Sequence[Sequence[float]],
    channels: Sequence[str],
    dead: Collection[int],
    *,
    base_c: float,
    peak_c: float,
    window_min_c: float,
    window_max_c: float | None = None,
    max_spread_c: float | None = None,
) -> Reach:
    """The twin's answer for zone powers with the ``dead`` zones at 0 and the others within
    0 … 100 %: the powers that put the sites inside [``window_min_c``, ``window_max_c``]
    (least total shortfall) and, among those, the least spread; ``base_c`` the chuck, what
    every rise is over. No ``window_max_c`` or ``max_spread_c``: that test is not made."""
    zones = len(gains[0])
    live = [z for z in range(zones) if z not in dead]
    rise = peak_c - base_c
    if rise <= 0.0:
        return Reach()
    if not live:
        return Reach(control_lost=True)
    top = window_max_c if window_max_c is not None else float("inf")
    best: tuple[float, float, list[float]] | None = None
    steps = [i / GRID for i in range(GRID + 1)]
    for combo in itertools.product(steps, repeat=len(live)):
        if max(combo) < 1.0:
            continue  # scaled up to full power on its strongest zone: the same shares
        u = [0.0] * zones
        for z, v in zip(live, combo, strict=True):
            u[z] = v * 100.0
        seen = [sum(g * x for g, x in zip(row, u, strict=True)) for row in gains]
        if seen[0] < rise:
            continue  # the control site does not get to its peak on these powers
        temps = [base_c + rise * s / seen[0] for s in seen]
        short = sum(max(0.0, window_min_c - t) + max(0.0, t - top) for t in temps)
        spread = max(temps) - min(temps)
        if best is None or (short, spread) < (best[0], best[1]):
            best = (short, spread, temps)
    if best is None:
        return Reach(control_lost=True)
    _, spread, temps = best
    pairs = list(zip(channels[1:], temps[1:], strict=True))
    apart: list[str] = []
    if max_spread_c is not None and spread > max_spread_c:
        apart = [ch for ch, t in pairs if abs(t - temps[0]) > max_spread_c / 2.0]
    return Reach(
        below=[ch for ch, t in pairs if t < window_min_c],
        above=[ch for ch, t in pairs if t > top],
        apart=apart,
        spread_c=spread,
        predicted_c=temps,
    )


def unreachable_sites(
    gains: Sequence[Sequence[float]],
    channels: Sequence[str],
    dead: Collection[int],
    *,
    base_c: float,
    peak_c: float,
    window_min_c: float,
) -> list[str]:
    """The channels of the sites no zone powers (the ``dead`` zones at 0, the others within
    0 … 100 %) can bring to ``window_min_c`` while the control site (``channels[0]``) is at
    ``peak_c``; the control site's own channel when even it cannot reach ``peak_c`` at full
    power. Empty: the other zones can still lift every site into the window's bottom."""
    reach = examine(gains, channels, dead, base_c=base_c, peak_c=peak_c, window_min_c=window_min_c)
    return [channels[0]] if reach.control_lost else reach.below
