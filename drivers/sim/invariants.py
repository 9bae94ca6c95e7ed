"""Invariants of every simulated run, checked on the plant's true state, not on readings.

The interlocks judge what the sensors say; this checker judges what physically happened in
the simulated plant, after every integration: a faulty sensor cannot hide a violation from
it. It runs on every simulated run of the test suite (daemon/run/virtual.py) and of
``bonderd run --sim``; any violation fails the test, or the command with exit code 1. The
rig's simulation branch (daemon/run/rig_sim.py) sets it up for a recipe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.protocols import OUT_SCR_ENABLE, VALVE_VENT
from drivers.sim.plant import Plant

VENTED_MBAR = 500.0  # above this the film no longer seals the space: no lamps
SAFE_VENTED_MBAR = 850.0  # where the safe state must leave an aborted run
# Time a condition may last before it is a violation: one control period for the interlock to
# see it, one to act, and the command's transit.
GRACE_S = 0.35
# A bump reflow heats in nitrogen at about atmospheric pressure, so "vented" there means air
# in the space: the vent line open, or O2 at a tenth of air's (21 mbar). Below that, air
# seeping in is the interlocks' to catch through the O2 analyzer, whose 2 s sampling this
# checker's 0.35 s grace could not honour; the conformance checks fail the run on O2 anyway.
AIR_O2_PARTIAL_MBAR = 21.0
# Under a scaled clock the event loop's scheduling jitter is multiplied by the speed; allow this
# much wall time of it on top (virtual time has none).
JITTER_WALL_S = 0.02


def grace_for(speed: float) -> float:
    return GRACE_S + (JITTER_WALL_S * speed if speed != float("inf") else 0.0)


@dataclass
class InvariantChecker:
    chip_max_c: float  # the equipment's hard limit
    tg_c: float  # the component polymer's glass transition
    lamps_allowed: Callable[[], bool]  # the daemon has the lamps enabled and no trip latched
    grace_s: float = GRACE_S
    n2_atmosphere: bool = False  # lamps run at atmospheric pressure under N2 (bump reflow)
    violations: list[str] = field(default_factory=list)
    checks: int = 0
    _since: dict[str, float] = field(default_factory=dict)

    def _persist(self, key: str, cond: bool, t: float, message: str) -> None:
        if not cond:
            self._since.pop(key, None)
            return
        since = self._since.setdefault(key, t)
        if t - since > self.grace_s and not any(v.startswith(key) for v in self.violations):
            self.violations.append(f"{key}: {message} (t={t:.2f} s, since {since:.2f} s)")

    def __call__(self, plant: Plant) -> None:
        self.checks += 1
        t = plant.t
        chip, comp = plant.chip_c, plant.component_c
        if plant.panel is not None:
            # The hard limit holds for every chip of a panel, not the measured one only.
            chip = max(site.chip_c for site in plant.sites_integrated())
        if chip > self.chip_max_c:
            self._once("chip_hard_limit", f"chip {chip:.1f} °C above {self.chip_max_c:g} °C", t)
        if comp > self.tg_c:
            self._once("component_tg", f"component {comp:.1f} °C above Tg {self.tg_c:g} °C", t)
        emitting = max(plant.lamp_output_pct()) > 0.0
        self._persist(
            "lamps_not_allowed",
            emitting and not self.lamps_allowed(),
            t,
            "lamps emitting while the contactor should be open",
        )
        if self.n2_atmosphere:
            o2_partial = plant.o2_ppm * 1e-6 * plant.pressure_mbar
            vented = plant.valves()[VALVE_VENT] or o2_partial > AIR_O2_PARTIAL_MBAR
            what = f"air in the working space (O2 {o2_partial:.2f} mbar, vent line open or not)"
        else:
            vented = plant.pressure_mbar > VENTED_MBAR
            what = f"the working space at {plant.pressure_mbar:.0f} mbar"
        self._persist("lamps_vented", emitting and vented, t, f"lamps emitting with {what}")

    def _once(self, key: str, message: str, t: float) -> None:
        if not any(v.startswith(key) for v in self.violations):
            self.violations.append(f"{key}: {message} (t={t:.2f} s)")

    def finish(self, plant: Plant, doc: dict[str, Any]) -> list[str]:
        """End-of-run checks: the run left the machine in the safe state."""
        s = plant.state
        if max(s.lamp_output_pct) > 0.0 or s.contactor_energized or s.outputs[OUT_SCR_ENABLE]:
            self.violations.append("run_end: lamps, contactor or SCR enable still on")
        if s.uv_shutter_open:
            self.violations.append("run_end: UV shutter open")
        if s.dispensing or s.z_moving:
            self.violations.append("run_end: dispenser or Z stage still moving")
        if doc.get("result") != "completed" and s.pressure_mbar < SAFE_VENTED_MBAR:
            # Only a safe state that reported it could not vent may leave the space evacuated.
            reported = any(a.get("code") == "safe_state_incomplete" for a in doc.get("alarms", []))
            if not reported:
                self.violations.append(
                    f"run_end: aborted run left at {s.pressure_mbar:.1f} mbar, not vented, "
                    "and the safe state reported nothing"
                )
        return self.violations
