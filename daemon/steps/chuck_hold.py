"""The chuck loop: a cascade over the chiller that drives its setpoint harder (ADR 0090).

The chiller (a temperature-control unit with its own PI on the fluid) only moves the chuck
through its fluid: the fluid lags the chiller's setpoint (its closed-loop lag, ~20 s, and
its capacity), and the chuck lags the fluid (chuck heat capacity over the chuck–fluid
conductance, ~25 s). Given only the recipe's setpoint, the chiller works at a fraction of its
capacity for most of the approach and the chuck creeps into its band over ~4 lags.

The outer loop commands the chiller's setpoint from both measured temperatures:

    command = setpoint + K·(setpoint − (T_chuck + c·(T_fluid − T_chuck)))

clamped to the equipment's chuck-setpoint range (``[limits] chuck_setpoint_min_c`` ..
``chuck_setpoint_max_c``; chuck_stabilize also keeps the top under the component's Tg − margin
− approach). Far from the setpoint it saturates (the chiller works at its full
capacity: the overdrive); near it, the fluid–chuck difference, which is the chuck's rate of
change times its lag (the heat on its way into the chuck), brakes it: a PD on the chuck whose
derivative is measured through the fluid, not differentiated from a noisy thermocouple. In
equilibrium (fluid = chuck) the command is the setpoint itself, so the loop leaves no offset,
and the chiller's own integral takes the steady losses.

It runs for the rest of the run from the chuck_stabilize step on (``StepContext.tick``): the
chiller's internal integral winds up during the overdrive, and handing the bare setpoint back
lets the chuck drift out of its band while that unwinds (~1.5 K over a minute in the sim).
With a bad chuck or fluid reading it falls back to the bare setpoint; with the chiller lost,
failed or stopped it writes nothing (the interlocks act on that).

K and c are loop gains, not plant constants: chosen on the simulated plant for the fastest
approach without leaving the band, and checked to stay inside ±1 K with the chuck's heat
capacity, the chuck–fluid conductance and the chiller's lag each off by a third
(tests/test_chuck_hold.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.machine.monitor import Snapshot

# Outer-loop gain: 1 K of chuck error asks for 20 K of fluid overdrive, so the chiller
# saturates until the chuck is within a few tenths of a kelvin, the time-optimal shape.
BOOST_GAIN = 20.0
# Share of the fluid–chuck difference counted as chuck temperature still to come (the
# derivative time is this × the chuck's lag behind the fluid, ≈ 7 s on the sim).
FLUID_LEAD = 0.3
# How often the chiller's setpoint is rewritten, and the smallest change worth a write. A
# serial unit (Julabo: ≥ 0.3 s between commands, the line held ~0.5 s per command) must keep
# answering the monitor's status reads in between; the chuck's lags are tens of seconds, and
# 2 s costs < 1 s of settle against 0.5 s on the simulated plant.
COMMAND_PERIOD_S = 2.0
COMMAND_DEADBAND_C = 0.05


@dataclass
class ChuckHold:
    """Holds the chuck at ``setpoint_c`` through the chiller's setpoint, within ``lo_c..hi_c``."""

    setpoint_c: float
    lo_c: float
    hi_c: float
    gain: float = BOOST_GAIN
    lead: float = FLUID_LEAD
    last_sent_c: float | None = None
    last_t: float | None = None

    def command_c(self, chuck_c: float | None, fluid_c: float | None) -> float:
        """The chiller setpoint the loop asks for now."""
        sp = self.setpoint_c
        if chuck_c is None or fluid_c is None:
            return sp  # no state to act on: the chiller's own loop on the bare setpoint
        predicted = chuck_c + self.lead * (fluid_c - chuck_c)
        return min(self.hi_c, max(self.lo_c, sp + self.gain * (sp - predicted)))

    def due(self, snap: Snapshot) -> float | None:
        """The setpoint to write at this snapshot, or None (not due, or no change worth it)."""
        if self.last_t is not None and snap.t - self.last_t < COMMAND_PERIOD_S:
            return None
        chiller = snap.chiller
        if chiller is None or chiller.fault or not chiller.running:
            # Lost, failed or stopped: the interlocks judge that; a setpoint write would only
            # turn their trip into a command error.
            return None
        fluid = chiller.temperature.value if chiller.temperature.ok else None
        cmd = self.command_c(snap.temp("chuck"), fluid)
        self.last_t = snap.t
        if self.last_sent_c is not None and abs(cmd - self.last_sent_c) < COMMAND_DEADBAND_C:
            return None
        self.last_sent_c = cmd
        return cmd
