"""The baseline the chip loop is measured against: a plain PID (simple-pid), relay-autotuned.

Åström–Hägglund relay test on the same simulated plant, through the same executor and
interlocks (a vacuum-film run whose reflow step's lamps are the relay): around
``RELAY_SETPOINT_C`` the lamps switch between ``RELAY_HIGH_PCT`` and 0 % with a small
hysteresis; from the settled oscillation's amplitude ``a`` and period ``Pu`` the ultimate
gain is ``Ku = 4·d / (π·√(a² − ε²))`` (d the relay's half swing, ε the hysteresis), and the
PID gains are Tyreus–Luyben's (Kp = Ku/2.2, Ti = 2.2·Pu, Td = Pu/6.3): Ziegler–Nichols' are
tuned for quarter-amplitude decay, which on a thermal profile is overshoot by design.

The baseline then follows the recipe's setpoint with nothing else: no feedforward, no model,
no lag compensation; derivative on the measurement (simple-pid's default) and output
clamping with its built-in integral clamping. It runs on the profile's plain clock
(``expected_c`` None): a plain PID has no expectation of the reading to hold a soak on.
"""

from __future__ import annotations

import asyncio
import functools
import math
import pathlib
import tempfile
from dataclasses import dataclass

from simple_pid import PID

from daemon.config import Limits
from daemon.recipe.load import parse_recipe
from daemon.run.virtual import run_recipe
from daemon.thermal.loop import ChipLoop, ControllerFactory, Profile, ThermalModel
from daemon.thermal.tune import DEFAULT_MELT, experiment_recipe

RELAY_SETPOINT_C = 150.0  # the soak level of both shipped recipes' neighbourhood
RELAY_HIGH_PCT = 40.0
HYSTERESIS_C = 0.3  # 3σ of the thermocouple noise: no chattering at the switch
RELAY_S = 60.0
SETTLE_CYCLES = 3  # cycles ignored before measuring


@dataclass(frozen=True, slots=True)
class RelayResult:
    ku: float
    pu_s: float
    amplitude_c: float
    kp: float
    ki: float
    kd: float


class RelayLoop:
    """A ChipLoop that heats to the setpoint, then relays around it, and records the reading."""

    def __init__(self) -> None:
        self.t: list[float] = []
        self.y: list[float] = []
        self._on = True

    @property
    def expected_c(self) -> float | None:
        return None

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
        if measured_c > RELAY_SETPOINT_C + HYSTERESIS_C:
            self._on = False
        elif measured_c < RELAY_SETPOINT_C - HYSTERESIS_C:
            self._on = True
        self.t.append(t)
        self.y.append(measured_c)
        return min(cap_pct, RELAY_HIGH_PCT if self._on else 0.0)

    def result(self) -> RelayResult:
        """Ku and Pu from the settled oscillation (upward crossings of the setpoint)."""
        ups = [
            self.t[i]
            for i in range(1, len(self.y))
            if self.y[i - 1] < RELAY_SETPOINT_C <= self.y[i]
        ]
        if len(ups) < SETTLE_CYCLES + 3:
            raise RuntimeError(f"relay test: only {len(ups)} oscillations")
        start = ups[SETTLE_CYCLES]
        periods = [
            b - a for a, b in zip(ups[SETTLE_CYCLES:], ups[SETTLE_CYCLES + 1 :], strict=False)
        ]
        pu = sum(periods) / len(periods)
        tail = [y for t, y in zip(self.t, self.y, strict=True) if start <= t <= ups[-1]]
        a = (max(tail) - min(tail)) / 2.0
        d = RELAY_HIGH_PCT / 2.0
        ku = 4.0 * d / (math.pi * math.sqrt(max(a * a - HYSTERESIS_C**2, 1e-6)))
        kp = ku / 2.2
        ti = 2.2 * pu
        td = pu / 6.3
        return RelayResult(ku, pu, a, kp, kp / ti, kp * td)


async def _relay_test(seed: int) -> RelayResult:
    loop = RelayLoop()

    def factory(_m: ThermalModel | None, _melt: tuple[float, float] | None) -> ChipLoop:
        return loop

    loaded = parse_recipe(experiment_recipe(DEFAULT_MELT, RELAY_S).encode(), "relay test", Limits())
    with tempfile.TemporaryDirectory() as tmp:
        _, sim = await run_recipe(loaded, pathlib.Path(tmp), seed=seed, controller_factory=factory)
        sim.store.close()
    return loop.result()


@functools.cache
def relay_autotune(seed: int = 0) -> RelayResult:
    """The relay test's result (run once per seed and process)."""
    return asyncio.run(_relay_test(seed))


class BaselinePid:
    """simple-pid following the profile's setpoint, nothing else."""

    def __init__(self, gains: RelayResult) -> None:
        self._pid = PID(
            gains.kp, gains.ki, gains.kd, setpoint=0.0, sample_time=None, output_limits=(0, 100)
        )
        self._last_t: float | None = None

    @property
    def expected_c(self) -> float | None:
        return None

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
        dt = 0.05 if self._last_t is None else max(1e-6, t - self._last_t)
        self._last_t = t
        self._pid.setpoint = profile.at(t_profile)[0]
        self._pid.output_limits = (0.0, max(0.0, cap_pct))
        out = self._pid(measured_c, dt=dt)
        return float(out) if out is not None else 0.0


def baseline_factory(seed: int = 0) -> ControllerFactory:
    gains = relay_autotune(seed)

    def factory(_m: ThermalModel | None, _melt: tuple[float, float] | None) -> ChipLoop:
        return BaselinePid(gains)

    return factory
