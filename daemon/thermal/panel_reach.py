"""Can a panel still reflow with a dead lamp zone? (issue 17 item 5, ADR 0165)

The twin here is the identified gain matrix G (ADR 0162: °C per % of each zone at each
instrumented site, steady state, over the chuck). With the control site held on the profile
by the chip loop, a site's rise over the chuck is its share ``G_k·u / G_0·u`` of the control
site's, for zone powers u. With zone ``d`` dark (u_d = 0) the other zones may take any
powers within 0 … 100 %; the question is whether some such u brings every instrumented site
to the bottom of the peak window while the control site is at the peak target — and whether
the control site itself can still get there at full power.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence

GRID = 10  # zone powers tried in 10 % steps: the gains are good to a few % (ADR 0162)


def unreachable_sites(
    gains: Sequence[Sequence[float]],
    channels: Sequence[str],
    dead: Collection[int],
    *,
    base_c: float,
    peak_c: float,
    window_min_c: float,
) -> list[str]:
    """The channels of the instrumented sites no zone powers (the ``dead`` zones at 0, the
    others within 0 … 100 %) can bring to ``window_min_c`` while the control site
    (``channels[0]``) is at ``peak_c``; the control site's own channel when even it cannot
    reach ``peak_c`` at full power. ``base_c``: the chuck, what every rise is over. Empty:
    the other zones can still carry the reflow."""
    zones = len(gains[0])
    live = [z for z in range(zones) if z not in dead]
    rise = peak_c - base_c
    if not live or rise <= 0.0:
        return [] if rise <= 0.0 else list(channels)
    need = (window_min_c - base_c) / rise  # the share of the control site's rise each needs
    best: tuple[float, list[float]] | None = None
    steps = [i / GRID for i in range(GRID + 1)]
    for combo in itertools.product(steps, repeat=len(live)):
        if max(combo) < 1.0:
            continue  # scaled up to full power on its strongest zone: the same shares
        u = [0.0] * zones
        for z, v in zip(live, combo, strict=True):
            u[z] = v * 100.0
        seen = [sum(g * x for g, x in zip(row, u, strict=True)) for row in gains]
        if seen[0] <= 0.0:
            continue
        shares = [s / seen[0] for s in seen]
        worst = min(shares[1:], default=1.0) if seen[0] >= rise else -1.0
        if best is None or worst > best[0]:
            best = (worst, shares)
    if best is None or best[0] < 0.0:
        return [channels[0]]  # even the control site cannot reach its peak
    shares = best[1]
    return [ch for ch, s in zip(channels[1:], shares[1:], strict=True) if s < need]
