"""``bonderd tune --panel``: identify a panel's zone-to-site gain matrix by stepping each lamp
zone (docs/panel.md, docs/adr/0162), as an ordinary run through the interlocks.

Every zone at ``BASE_PCT`` until the instrumented sites settle, then each zone in turn
``STEP_PCT`` higher for ``SETTLE_S`` and back to the base for as long. G[k][z] is the rise of
site k over the step less the chuck's (the chiller's share, alike for every site), per %:
the mean reading of the step's last ``AVERAGE_S`` against that of the base before it. The
sites stay under the solder's solidus (the matrix of solid joints; its ratios are what the
zone loop's weights need).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from daemon.thermal.loop import Profile
from daemon.thermal.panel_loop import ZoneLoop
from daemon.thermal.panel_model import step_time_constant

BASE_PCT = 20.0
STEP_PCT = 10.0
SETTLE_S = 45.0  # ~9 of a site's chip-to-cell time constants; the experiment fits tune's recipe
AVERAGE_S = 5.0  # the thermocouples' noise, averaged out


class TuneError(Exception):
    pass


class ZoneStepLoop(ZoneLoop):
    """The experiment: base, then for each zone a step up and back. ``channels[0]`` is the
    control site's (chip)."""

    def __init__(self, channels: Sequence[str], zones: int) -> None:
        self.channels = list(channels)
        self.n_zones = zones
        self.done = False
        self._t0: float | None = None
        # Per phase (base, step z, base, step z+1, ...): sums of each channel and the chuck.
        self._sums: dict[int, list[float]] = {}
        self._counts: dict[int, int] = {}
        # Per step phase: (time into the phase, every channel's reading, the chuck's), the
        # step responses the site model's time constants are read from (ADR 0166).
        self._series: dict[int, list[tuple[float, list[float]]]] = {}

    def duration_s(self) -> float:
        return 2.0 * SETTLE_S + 2.0 * SETTLE_S * self.n_zones

    @property
    def expected_c(self) -> float | None:
        return None  # the profile clock runs plain: the experiment is a schedule

    def update(self, t: float, profile: Profile, t_profile: float, **_: object) -> float:
        return 0.0 if self.done else BASE_PCT

    def _phase(self, elapsed: float) -> int:
        """0: the first base; 2z+1: zone z stepped; 2z+2: back on the base after it."""
        if elapsed < 2.0 * SETTLE_S:
            return 0
        return 1 + int((elapsed - 2.0 * SETTLE_S) // SETTLE_S)

    def _phase_end(self, phase: int) -> float:
        return 2.0 * SETTLE_S if phase == 0 else 2.0 * SETTLE_S + phase * SETTLE_S

    def zones(
        self,
        t: float,
        temp: Callable[[str], float | None],
        common_pct: float,
        cap_pct: float,
        delivered: Sequence[float] = (),
    ) -> list[float]:
        if self._t0 is None:
            self._t0 = t
        elapsed = t - self._t0
        phase = self._phase(elapsed)
        if phase > 2 * self.n_zones:
            self.done = True
        if self.done:
            return [0.0] * self.n_zones
        values = [temp(ch) for ch in [*self.channels, "chuck"]]
        valid = all(v is not None for v in values)
        if phase % 2 == 1 and valid:
            start = self._phase_end(phase - 1)
            self._series.setdefault(phase, []).append((elapsed - start, values))  # type: ignore[arg-type]
        if valid and elapsed >= self._phase_end(phase) - AVERAGE_S:
            sums = self._sums.setdefault(phase, [0.0] * len(values))
            for i, v in enumerate(values):
                sums[i] += v  # type: ignore[operator]
            self._counts[phase] = self._counts.get(phase, 0) + 1
        pct = [BASE_PCT] * self.n_zones
        if phase % 2 == 1:
            pct[(phase - 1) // 2] += STEP_PCT
        top = min(cap_pct, 100.0)
        return [min(top, p) for p in pct]

    def gains(self) -> list[list[float]]:
        """G[k][z], °C per %, from the recorded phases; TuneError if a phase has no readings."""
        means: dict[int, list[float]] = {}
        for phase in range(2 * self.n_zones + 1):
            n = self._counts.get(phase, 0)
            if n == 0:
                raise TuneError(f"no valid readings at the end of phase {phase} of the experiment")
            means[phase] = [v / n for v in self._sums[phase]]
        out = [[0.0] * self.n_zones for _ in self.channels]
        for z in range(self.n_zones):
            before, step = means[2 * z], means[2 * z + 1]
            chuck = step[-1] - before[-1]
            for k in range(len(self.channels)):
                out[k][z] = (step[k] - before[k] - chuck) / STEP_PCT
        return out

    def time_constants(self) -> list[float]:
        """Each channel's first-order time constant, s, read from its response to the zone
        that lights it most (the largest rise over the noise): the rise over the base before
        the step, less the chuck's, through ``step_time_constant``."""
        gains = self.gains()
        means = {p: [v / self._counts[p] for v in self._sums[p]] for p in self._sums}
        out: list[float] = []
        for k in range(len(self.channels)):
            z = max(range(self.n_zones), key=lambda zz: abs(gains[k][zz]))
            phase = 2 * z + 1
            series = self._series.get(phase)
            if not series:
                raise TuneError(f"no readings of the step of zone {z + 1}")
            base = means[2 * z]
            times = [0.0] + [t for t, _ in series]
            rise = [0.0] + [v[k] - base[k] - (v[-1] - base[-1]) for _, v in series]
            out.append(step_time_constant(times, rise, gains[k][z] * STEP_PCT))
        return out


def gains_section_toml(
    channels: Sequence[str],
    gains: Sequence[Sequence[float]],
    at: str,
    tau_s: Sequence[float] = (),
) -> str:
    """The ``[panel_gains]`` section of the configuration, as ``bonderd tune --panel`` prints it."""
    rows = ", ".join("[" + ", ".join(f"{g:.4g}" for g in row) + "]" for row in gains)
    names = ", ".join(f'"{c}"' for c in channels)
    return (
        "[panel_gains]\n"
        "# The panel's zone-to-site gains, identified by bonderd tune --panel (docs/panel.md):\n"
        "# °C per % of each lamp zone at each instrumented site, the control site's first.\n"
        f"channels = [{names}]\n"
        f"gains_c_per_pct = [{rows}]\n"
        + (
            "# Every site's time constant, s: the site model of the commissioning panel.\n"
            f"tau_s = [{', '.join(f'{t:.4g}' for t in tau_s)}]\n"
            if tau_s
            else ""
        )
        + f'identified_at = "{at}"\n'
    )
