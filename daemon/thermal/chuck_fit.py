"""The chuck and its chiller, identified from a cold chuck step (``bonderd tune``, ADR 0175).

The second run of ``bonderd tune`` (``chuck_recipe``, daemon/thermal/tune.py) begins with a
``chuck_stabilize`` step to ``CHUCK_SETPOINT_C``, below room temperature, from a chuck at
room temperature. The chuck hold (daemon/steps/chuck_hold.py) overdrives the chiller there, so the
chiller works at its full capacity for most of the step: the chuck then cools at a rate set
by that capacity and by the chuck's and the coolant's heat capacities, and trails the
coolant by the chuck's lag (its heat capacity over the chuck–coolant conductance). Those
two are what the step's duration depends on, and both are seen in the chuck thermocouple
and the chiller's coolant reading alone:

- ``cool_rate_k_s``: the chuck's cooling rate while the chiller is saturated (least squares
  over the saturated stretch);
- ``lag_s``: the chuck's lag behind the coolant, (chuck − coolant) / −d(chuck)/dt over the
  same stretch.

Neither is a plant constant by itself (a heavier chuck and a weaker chiller look alike);
the twin uses them as ratios to the same measurement on the nominal plant
(drivers/sim/plant/calibrate.py), as it does the chip's model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from daemon.machine.monitor import Monitor
from daemon.thermal.fit import TuneError

__all__ = ["CHUCK_SETPOINT_C", "ChuckModel", "ChuckRecord", "ChuckTap", "identify_chuck"]

# The tune run's chuck: 6 K below a 23 °C room gives a saturated stretch of ~20 s on the
# nameplate chiller for the slope (the chuck must start more than _SATURATED_ABOVE_K above
# it, so a room below ~20 °C is refused), and stays well above a cleanroom's dew point.
CHUCK_SETPOINT_C: Final = 17.0
# The saturated stretch: the chuck still this far above the step's setpoint (the hold lets
# the chiller off its limit within a few tenths of a kelvin) ...
_SATURATED_ABOVE_K: Final = 2.0
# ... and after the coolant has pulled ahead of the chuck by its lag (the first seconds of
# the step are the coolant's own transient, not the chuck's steady cooling).
_SKIP_S: Final = 8.0
_MIN_SAMPLES: Final = 20


@dataclass(frozen=True, slots=True)
class ChuckModel:
    cool_rate_k_s: float  # the chuck's cooling rate with the chiller at full capacity
    lag_s: float  # the chuck behind its coolant


@dataclass
class ChuckRecord:
    """The closing cold step as the tune run saw it: time, chuck, coolant (°C)."""

    setpoint_c: float = 0.0
    t: list[float] = field(default_factory=list)
    chuck: list[float] = field(default_factory=list)
    fluid: list[float] = field(default_factory=list)


def identify_chuck(rec: ChuckRecord) -> ChuckModel:
    """The chuck's saturated cooling rate and lag from ``rec``; TuneError if the step gave
    too short a saturated stretch to tell."""
    if not rec.t:
        raise TuneError("chuck step: no samples of the chuck and the chiller were recorded")
    t0 = rec.t[0]
    idx = [
        i
        for i, t in enumerate(rec.t)
        if t - t0 >= _SKIP_S and rec.chuck[i] - rec.setpoint_c > _SATURATED_ABOVE_K
    ]
    if len(idx) < _MIN_SAMPLES:
        raise TuneError(
            f"chuck step: {len(idx)} samples with the chiller at full capacity, need "
            f"{_MIN_SAMPLES}: the chuck did not start well above {rec.setpoint_c:g} °C"
        )
    ts = [rec.t[i] for i in idx]
    ys = [rec.chuck[i] for i in idx]
    n = len(ts)
    tm, ym = sum(ts) / n, sum(ys) / n
    stt = sum((t - tm) ** 2 for t in ts)
    slope = sum((t - tm) * (y - ym) for t, y in zip(ts, ys, strict=True)) / stt
    if not slope < 0:
        raise TuneError(f"chuck step: the chuck did not cool (slope {slope:.4g} K/s)")
    lead = sum(rec.chuck[i] - rec.fluid[i] for i in idx) / n
    if not lead > 0:
        raise TuneError(f"chuck step: the coolant was not below the chuck ({lead:.3g} K)")
    return ChuckModel(cool_rate_k_s=-slope, lag_s=lead / -slope)


class ChuckTap:
    """Fills a ChuckRecord from the monitor's snapshots while the run's step ``index`` runs.

    An executor listener (``executor.subscribe(tap.on_event)``) that follows the monitor
    with ``call_on_next`` once that step has started: nothing is polled, and the control
    loop's snapshots are read, not requested.
    """

    def __init__(self, monitor: Monitor, index: int, setpoint_c: float) -> None:
        self.record = ChuckRecord(setpoint_c=setpoint_c)
        self._monitor = monitor
        self._index = index
        self._active = False

    def on_event(self, event: str, payload: Mapping[str, Any]) -> None:
        if event == "StepStarted":
            was, self._active = self._active, payload.get("index") == self._index
            if self._active and not was:
                self._monitor.call_on_next(self._sample)
        elif event == "RunCompleted":
            self._active = False

    def _sample(self) -> None:
        if not self._active:
            return
        snap = self._monitor.latest
        chiller = snap.chiller if snap is not None else None
        chuck = snap.temp("chuck") if snap is not None else None
        if (
            snap is not None
            and chiller is not None
            and chuck is not None
            and chiller.temperature.ok
        ):
            rec = self.record
            rec.t.append(snap.t)
            rec.chuck.append(chuck)
            rec.fluid.append(chiller.temperature.value)
        self._monitor.call_on_next(self._sample)
