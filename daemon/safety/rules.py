"""The interlock rules: what each snapshot of the machine must satisfy, and what follows if not.

Each rule gives a ``Finding`` while its condition holds:

- ``TRIP``: latched. The interlock monitor switches every energy source off at once, the run
  is aborted with the rule's code in its reason, and only an operator reset clears the latch,
  and only once the condition is gone.
- ``SUSPEND``: the lamps are held at 0 % while the condition holds; the rule itself applies
  hysteresis, so a suspension clears only once the value is back by the hysteresis band.
- ``WARN``: an alarm for the operator; nothing is switched.

Limits come from the configuration (``[limits]``, daemon/config.py) and from the recipe
(peak window, Tg and margin, atmosphere). docs/safety.md lists every rule with its limit.
"""

from __future__ import annotations

from collections import deque

from daemon.config import Limits
from daemon.machine.monitor import Snapshot
from daemon.machine.motion import Z_MOVING_UM
from daemon.recipe.model import (
    O2_PPM_MIN_PRESSURE_MBAR,
)
from daemon.safety.findings import Action, Finding
from daemon.safety.run_view import (
    HEAT_STEPS,
    O2_STEPS,
    PRE_HEAT_STEPS,
    RunView,
)
from drivers.protocols import (
    IN_CHILLER_FLOW,
    IN_CHUCK_VACUUM_OK,
    IN_DOOR_CLOSED,
    IN_ESTOP_OK,
    IN_SUPPORT_VACUUM_OK,
)
from drivers.reading import Reading, Status

DEVICE_LOST_MISSES = 2  # misses in a row before a used device trips, lamps not enabled


# Identical readings in a row before a sensor counts as stuck. With the simulated TC (σ 0.1 °C,
# 0.1 °C steps) a repeat has p ≈ 0.4, so 20 in a row happen by chance about once in 10⁸.
STUCK_MIN_READINGS = 20


class _Window:
    """(t, value) pairs of the last ``span_s`` seconds."""

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self.points: deque[tuple[float, float]] = deque()

    def add(self, t: float, value: float) -> None:
        self.points.append((t, value))
        while self.points and self.points[0][0] < t - self.span_s:
            self.points.popleft()

    def clear(self) -> None:
        self.points.clear()

    def full(self) -> bool:
        """The window spans (nearly) its whole length."""
        return len(self.points) >= 2 and self.points[-1][0] - self.points[0][0] >= 0.9 * self.span_s

    def rise(self) -> float:
        return self.points[-1][1] - self.points[0][1] if self.points else 0.0


# Thermocouple channel -> (its stuck-rule key, its label in messages): formatted once per
# channel, not on every snapshot (a handful of channels, twenty snapshots a second).
_TC_NAMES: dict[str, tuple[str, str]] = {}


class RuleEngine:
    """Evaluates every rule on a snapshot; keeps the little history some rules need."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.run: RunView | None = None
        self._suspended: set[str] = set()
        # signal -> (value, since t, identical readings in a row)
        self._same_since: dict[str, tuple[float, float, int]] = {}
        self._missed: dict[str, int] = {}  # device -> snapshots in a row without an answer
        self._pressure_floor: float | None = None
        self._heated = False
        self._gain = _Window(limits.heat_gain_window_s)
        self._lamps_off = _Window(2.0)
        self._lamps_off_since: float | None = None
        self._uncommanded = 0
        self._no_output = 0
        self._zone_dark: list[int] = []  # per zone: snapshots in a row dark under a command
        self._dead_zones: set[int] = set()  # zones found dead this run (0-based)
        self._chiller_seen_running = False
        self._z_last: tuple[float, float] | None = None  # (position, since) while not moving

    @property
    def dead_zones(self) -> frozenset[int]:
        """The lamp zones found dark under a command this run (0-based)."""
        return frozenset(self._dead_zones)

    def arm(self, run: RunView) -> None:
        self.run = run
        self._suspended.clear()
        self._same_since.clear()
        self._missed.clear()
        self._pressure_floor = None
        self._heated = False
        self._gain.clear()
        self._lamps_off.clear()
        self._lamps_off_since = None
        self._uncommanded = 0
        self._no_output = 0
        self._zone_dark = []
        self._dead_zones = set()
        self._chiller_seen_running = False
        self._z_last = None

    def disarm(self) -> None:
        self.run = None
        self._suspended.clear()

    # ------------------------------------------------------------------------------------
    def evaluate(self, snap: Snapshot) -> list[Finding]:
        out: list[Finding] = []
        self._always(snap, out)
        run = self.run
        if run is not None:
            step = run.step_type()
            # Asked once: the rules are plain functions, nothing changes it while they judge.
            energy_on = run.lamps_enabled()
            self._devices(snap, run, step, energy_on, out)
            self._thermocouples(snap, step, out)
            self._temperatures(snap, run, out)
            self._lamps(snap, run, step, energy_on, out)
            if "gauge" in run.limits.used_devices:  # a lead lift has no working space
                self._vacuum(snap, step if run.limits.vacuum_process else None, out)
            self._oxygen(snap, run, step, energy_on, out)
            self._utilities(snap, run, out)
            self._zstage(snap, run, out)
        else:
            for device, why in snap.errors.items():
                out.append(Finding("device_lost", Action.WARN, f"{device} not answering: {why}"))
        return out

    def _always(self, snap: Snapshot, out: list[Finding]) -> None:
        """Rules that hold with or without a run."""
        inputs = snap.inputs
        if inputs is not None:
            if not inputs.get(IN_ESTOP_OK, False):
                out.append(Finding("estop", Action.TRIP, "E-stop pressed"))
            if self.run is not None and not inputs.get(IN_DOOR_CLOSED, False):
                out.append(Finding("door_open", Action.TRIP, "door opened during the run"))
        run = self.run
        uv = snap.uv
        if uv is not None and uv.shutter_open and not (run is not None and run.uv_exposing()):
            out.append(
                Finding("uv_shutter_open", Action.TRIP, "UV shutter open outside an exposure")
            )
        stage = snap.stage
        if stage is None:
            return
        force_max = self.limits.z_force_max_n
        if run is not None and run.limits.z_force_max_n is not None:
            force_max = min(force_max, run.limits.z_force_max_n)
        if stage.force_n.status is Status.OK and stage.force_n.value > force_max:
            out.append(
                Finding(
                    "z_force",
                    Action.TRIP,
                    f"Z stage force {stage.force_n.value:.2f} N above the limit "
                    f"{force_max:g} N: a lead tip not released, or the stage pushing on the "
                    "part; stage stopped",
                )
            )

    def _devices(
        self, snap: Snapshot, run: RunView, step: str | None, energy_on: bool, out: list[Finding]
    ) -> None:
        # With the lamps enabled a device the step needs trips at its first miss: every miss
        # is a read timeout of blindness with energy on. With no energy source on, one lost
        # frame or one stall of the host is not a lost device: it trips once it has missed
        # DEVICE_LOST_MISSES snapshots in a row.
        errors = snap.errors
        if not errors:  # every device answered (nearly every snapshot): no miss to count
            if self._missed:
                self._missed = {}
        else:
            self._missed = {d: self._missed.get(d, 0) + 1 for d in errors}
            used_now = run.limits.devices_for(step)
            for device, why in errors.items():
                used = device in used_now
                lost = used and (energy_on or self._missed[device] >= DEVICE_LOST_MISSES)
                action = Action.TRIP if lost else Action.WARN
                out.append(Finding("device_lost", action, f"{device} not answering: {why}"))
        stage, uv = snap.stage, snap.uv
        if (stage is not None and stage.fault) or (uv is not None and uv.fault):
            for key, name, status in (("zstage", "Z stage", stage), ("uv", "UV source", uv)):
                if status is not None and status.fault:
                    # A faulted drive holding the lifted support, or a faulted source the step
                    # is using, stops the run; in a step that does not need it, a warning.
                    action = Action.TRIP if key in run.limits.devices_for(step) else Action.WARN
                    out.append(Finding("device_fault", action, f"{name}: {status.detail}"))

    def _stuck(self, key: str, r: Reading, now: float, label: str, out: list[Finding]) -> None:
        # A live sensor never repeats one value for long: noise moves the last digit. A frozen
        # transmitter or a value held by a broken converter does.
        # Both a time and a count: when the monitor slows down (a device timing out), a few
        # readings a second apart repeat by chance and prove nothing.
        prev = self._same_since.get(key)
        if prev is None or prev[0] != r.value:
            self._same_since[key] = (r.value, now, 1)
            return
        n = prev[2] + 1
        self._same_since[key] = (prev[0], prev[1], n)
        if now - prev[1] >= self.limits.tc_stuck_s and n >= STUCK_MIN_READINGS:
            out.append(
                Finding(
                    f"{key}_stuck",
                    Action.TRIP,
                    f"{label} stuck at {r.value:g} for {now - prev[1]:.1f} s (no noise)",
                )
            )

    def _thermocouples(self, snap: Snapshot, step: str | None, out: list[Finding]) -> None:
        lim = self.limits
        names = _TC_NAMES
        now = snap.t
        stale_s, lo_c, hi_c = lim.tc_stale_s, lim.tc_min_c, lim.tc_max_c
        for ch, r in snap.temps.items():
            if (kl := names.get(ch)) is None:
                kl = names[ch] = (f"tc_{ch}", f"thermocouple '{ch}'")
            key, label = kl
            status = r.status
            if status is Status.FAULT:
                out.append(
                    Finding("tc_open", Action.TRIP, f"{label} failed: {r.detail or 'fault'}")
                )
                continue
            if status is Status.STALE or now - r.ts > stale_s:
                why = r.detail or f"last value {now - r.ts:.1f} s old"
                out.append(Finding("tc_stale", Action.TRIP, f"{label} not updating: {why}"))
                continue
            value = r.value
            if not lo_c <= value <= hi_c:
                out.append(
                    Finding(
                        "tc_range",
                        Action.TRIP,
                        f"{label} reads {value:.1f} °C, outside {lo_c:g}..{hi_c:g} °C",
                    )
                )
                continue
            self._stuck(key, r, now, label, out)
        if step in PRE_HEAT_STEPS and not self._heated:
            # Before any heat the parts sit on the chuck and follow it: a channel far from the
            # others is drifting or has come off its part.
            ok = {ch: r.value for ch, r in snap.temps.items() if r.status is Status.OK}
            if len(ok) >= 2:
                lo, hi = min(ok, key=ok.__getitem__), max(ok, key=ok.__getitem__)
                if ok[hi] - ok[lo] > lim.tc_disagree_max_c:
                    out.append(
                        Finding(
                            "tc_disagree",
                            Action.TRIP,
                            f"thermocouples '{hi}' ({ok[hi]:.1f} °C) and '{lo}' ({ok[lo]:.1f} °C) "
                            f"disagree by more than {lim.tc_disagree_max_c:g} °C before heating",
                        )
                    )

    def _temperatures(self, snap: Snapshot, run: RunView, out: list[Finding]) -> None:
        rl = run.limits
        temps = snap.temps
        r = temps.get("chip")
        chip = r.value if r is not None and r.status is Status.OK else None  # snap.temp, inlined
        if chip is not None and chip > rl.chip_max_c:
            out.append(
                Finding(
                    "chip_overtemp",
                    Action.TRIP,
                    f"chip {chip:.1f} °C above the limit {rl.chip_max_c:g} °C",
                )
            )
        if len(temps) > 3:
            # A panel: every instrumented site's chip is held to the same hard limit
            # (docs/panel.md). The machine's three channels alone skip the loop.
            for ch, rs in temps.items():
                if ch.startswith("site_") and rs.status is Status.OK and rs.value > rl.chip_max_c:
                    out.append(
                        Finding(
                            "chip_overtemp",
                            Action.TRIP,
                            f"chip of {ch} {rs.value:.1f} °C above the limit {rl.chip_max_c:g} °C",
                        )
                    )
                    break
        avg = snap.component_avg_c()
        if avg is not None:
            if avg > rl.component_max_c:
                out.append(
                    Finding(
                        "component_tg",
                        Action.TRIP,
                        f"component average {avg:.1f} °C above Tg − margin ({rl.component_max_c:g} °C)",
                    )
                )
            resume_below = rl.component_suspend_c - self.limits.component_hysteresis_c
            held = "component_near_tg" in self._suspended
            if avg > rl.component_suspend_c or (held and avg > resume_below):
                self._suspended.add("component_near_tg")
                out.append(
                    Finding(
                        "component_near_tg",
                        Action.SUSPEND,
                        f"component average {avg:.1f} °C near Tg − margin: lamps held off until "
                        f"it is below {resume_below:g} °C",
                    )
                )
            else:
                self._suspended.discard("component_near_tg")
        r = temps.get("chuck")
        chuck = r.value if r is not None and r.status is Status.OK else None
        if chuck is not None and chuck > rl.chuck_max_c:
            out.append(
                Finding(
                    "chuck_overtemp",
                    Action.TRIP,
                    f"chuck {chuck:.1f} °C above the limit {rl.chuck_max_c:g} °C",
                )
            )

    def _lamps(
        self, snap: Snapshot, run: RunView, step: str | None, energy_on: bool, out: list[Finding]
    ) -> None:
        lim = self.limits
        # What the lamps were told while this reading was taken and since: a stuck SCR is an
        # output above every command of that time, dead lamps no output under any of them.
        cmd_low, cmd = run.lamp_cmd_pct(snap.t)
        zones = snap.lamp_pct
        measured = max(zones) if zones else 0.0
        r = snap.temps.get("chip")
        chip = r.value if r is not None and r.status is Status.OK else None
        if step in HEAT_STEPS:
            self._heated = True
        # Stuck SCR: a zone delivers more than it was told to while it was read (the command
        # may drop between the read and this check), two snapshots in a row.
        if measured > cmd + lim.lamp_uncommanded_pct:
            self._uncommanded += 1
        else:
            self._uncommanded = 0
        # Dead lamps: told to deliver and delivering nothing (the SCRs measure load current).
        if energy_on and cmd_low >= lim.lamp_uncommanded_pct and measured < 1.0:
            self._no_output += 1
        else:
            self._no_output = 0
        if self._no_output >= 3:
            out.append(
                Finding(
                    "lamp_no_output",
                    Action.TRIP,
                    f"lamps commanded {cmd_low:.0f} % and delivering {measured:.0f} %: lamp or SCR "
                    "failure",
                )
            )
        per_zone = run.lamp_zone_cmds()
        if per_zone is not None and zones and len(per_zone) == len(zones):
            self._dead_zone_own(zones, per_zone, energy_on, measured, out)
        elif self._dead_zones or (energy_on and zones and cmd_low >= lim.lamp_uncommanded_pct):
            self._dead_zone(zones, energy_on, cmd_low, measured, out)
        if self._uncommanded >= 2:
            out.append(
                Finding(
                    "lamp_uncommanded",
                    Action.TRIP,
                    f"lamp output {measured:.0f} % with {cmd:.0f} % commanded: stuck SCR, "
                    "contactor opened",
                )
            )
        if chip is None:
            self._gain.clear()
            self._lamps_off.clear()
            return
        # Heating gain: lamps driven hard for the whole window must raise the chip. (The
        # windows are cleared only when they hold points: most snapshots they are empty.)
        if cmd_low >= lim.heat_gain_min_pct:
            self._gain.add(snap.t, chip)
            if self._gain.full() and self._gain.rise() < lim.heat_gain_min_rise_c:
                out.append(
                    Finding(
                        "no_heating",
                        Action.TRIP,
                        f"lamps at {cmd_low:.0f} % for {lim.heat_gain_window_s:g} s and the chip rose "
                        f"{self._gain.rise():.1f} °C: lamp failure or thermocouple off the chip",
                    )
                )
        elif self._gain.points:
            self._gain.clear()
        # Lamps commanded off (for longer than the filaments glow) and the chip still heating.
        if cmd <= 0.0 and not energy_on:
            self._lamps_off_since = self._lamps_off_since or snap.t
            if snap.t - self._lamps_off_since >= 1.0:
                self._lamps_off.add(snap.t, chip)
                if (
                    self._lamps_off.full()
                    and self._lamps_off.rise() > lim.heat_without_lamps_rise_c
                ):
                    out.append(
                        Finding(
                            "heat_without_lamps",
                            Action.TRIP,
                            f"chip rose {self._lamps_off.rise():.1f} °C in 2 s with the lamps "
                            "commanded off: stuck SCR or drifting thermocouple, contactor opened",
                        )
                    )
        else:
            self._lamps_off_since = None
            if self._lamps_off.points:
                self._lamps_off.clear()

    def _vacuum(self, snap: Snapshot, step: str | None, out: list[Finding]) -> None:
        p = snap.pressure
        if p is not None and p.status is Status.FAULT:
            out.append(Finding("gauge_fault", Action.TRIP, f"vacuum gauge: {p.detail or 'fault'}"))
            return
        if p is None or p.status is not Status.OK:
            return
        self._stuck("gauge", p, snap.t, "vacuum gauge", out)
        if step not in HEAT_STEPS:
            self._pressure_floor = None
            return
        floor = p.value if self._pressure_floor is None else min(self._pressure_floor, p.value)
        self._pressure_floor = floor
        if p.value > floor + self.limits.pressure_rise_max_mbar:
            out.append(
                Finding(
                    "vacuum_lost",
                    Action.TRIP,
                    f"pressure rose from {floor:.2f} to {p.value:.1f} mbar during heating/cooling: "
                    "leak or torn film",
                    vent_now=True,
                )
            )

    def _oxygen(
        self, snap: Snapshot, run: RunView, step: str | None, energy_on: bool, out: list[Finding]
    ) -> None:
        # Guarded from the pump-down before heating through the end of cooling. Before the
        # lamps are on, bad oxygen suspends heating (the pump may still bring it down); once
        # they are on, it trips.
        if step not in O2_STEPS:
            return
        action = Action.TRIP if step in HEAT_STEPS and energy_on else Action.SUSPEND
        o2 = snap.o2
        if o2 is None or o2.status is not Status.OK or snap.t - o2.ts > self.limits.o2_stale_s:
            why = (o2.detail or "old value") if o2 is not None else "no reading"
            out.append(Finding("o2_stale", action, f"O2 analyzer gives no fresh reading ({why})"))
            return
        p = snap.pressure_mbar()
        if p is None:
            return
        rl = run.limits
        partial = o2.value * 1e-6 * p
        # Under vacuum the ppm figure is dominated by the leak's air and means little; the
        # partial pressure is what oxidises the solder (daemon/judge/reflow.py, ADR 0004).
        if p >= O2_PPM_MIN_PRESSURE_MBAR and o2.value > rl.o2_max_ppm:
            out.append(
                Finding("o2_high", action, f"O2 {o2.value:.1f} ppm above {rl.o2_max_ppm:g} ppm")
            )
        elif partial > rl.o2_max_partial_mbar:
            out.append(
                Finding(
                    "o2_high",
                    action,
                    f"O2 partial pressure {partial:.3f} mbar above {rl.o2_max_partial_mbar:g} mbar",
                )
            )

    def _utilities(self, snap: Snapshot, run: RunView, out: list[Finding]) -> None:
        ch = snap.chiller
        if ch is not None:
            if ch.fault:
                out.append(
                    Finding("chiller_fault", Action.TRIP, f"chiller: {ch.detail or 'fault'}")
                )
            elif ch.running:
                self._chiller_seen_running = True
            flow = snap.inputs.get(IN_CHILLER_FLOW, False) if snap.inputs is not None else True
            if self._chiller_seen_running and not flow and not ch.fault:
                out.append(Finding("chiller_no_flow", Action.TRIP, "no coolant flow to the chuck"))
        pump = snap.pump
        if pump is not None and pump.fault:
            # A recipe that never pumps (lead lift) is told, not stopped.
            action = Action.TRIP if "pump" in run.limits.used_devices else Action.WARN
            out.append(Finding("pump_fault", action, f"vacuum pump: {pump.detail or 'fault'}"))

    def _dead_zone(
        self,
        zones: tuple[float, ...],
        energy_on: bool,
        cmd_low: float,
        measured: float,
        out: list[Finding],
    ) -> None:
        """One zone dark while the others deliver: a warning naming it.

        The controller makes up for one zone of several, and the checks judge the result, so
        the run may go on; maintenance must still hear of it. Latched for the run: a dead lamp
        does not come back by itself, and the warning must not come and go with the command.
        (All zones get the same command; every zone dark is `lamp_no_output`, a trip.)
        """
        lim = self.limits
        if zones and energy_on and cmd_low >= lim.lamp_uncommanded_pct and measured >= 1.0:
            if len(self._zone_dark) != len(zones):
                self._zone_dark = [0] * len(zones)
            for i, value in enumerate(zones):
                self._zone_dark[i] = self._zone_dark[i] + 1 if value < 1.0 else 0
                if self._zone_dark[i] >= 3:
                    self._dead_zones.add(i)
        if self._dead_zones:
            names = ", ".join(str(i + 1) for i in sorted(self._dead_zones))
            out.append(
                Finding(
                    "lamp_zone_dead",
                    Action.WARN,
                    f"lamp zone {names} delivering nothing while commanded: the run goes on "
                    "only while the other zones can carry the profile (a panel's reflow stops "
                    "when they cannot bring every site into its window); lamp or SCR to be "
                    "serviced",
                )
            )

    def _dead_zone_own(
        self,
        zones: tuple[float, ...],
        cmds: tuple[float, ...],
        energy_on: bool,
        measured: float,
        out: list[Finding],
    ) -> None:
        """A panel's zones, each judged under its own command (ADR 0165): the zone loop may
        trim one zone to 0 while another is commanded hard and dark, which the lowest
        command of all (``_dead_zone``) would never call driven."""
        lim = self.limits
        if energy_on and measured >= 1.0:
            if len(self._zone_dark) != len(zones):
                self._zone_dark = [0] * len(zones)
            for i, (value, cmd) in enumerate(zip(zones, cmds, strict=True)):
                dark = cmd >= lim.lamp_uncommanded_pct and value < 1.0
                self._zone_dark[i] = self._zone_dark[i] + 1 if dark else 0
                if self._zone_dark[i] >= 3:
                    self._dead_zones.add(i)
        self._dead_zone((), False, 0.0, 0.0, out)  # the latched warning, as for equal zones

    def _zstage(self, snap: Snapshot, run: RunView, out: list[Finding]) -> None:
        """Following error, a stall, and the vacuum holds once the support is lifted."""
        cmd = run.z_command()
        if cmd is None:
            self._z_last = None
            return
        inputs = snap.inputs
        if inputs is not None:
            lost = [
                name
                for sw, name in ((IN_CHUCK_VACUUM_OK, "chuck"), (IN_SUPPORT_VACUUM_OK, "support"))
                if not inputs.get(sw, False)
            ]
            if lost:
                out.append(
                    Finding(
                        "vacuum_hold_lost",
                        Action.TRIP,
                        f"{' and '.join(lost)} vacuum hold lost with the support lifted: the "
                        "bent leads are no longer held",
                    )
                )
        stage = snap.stage
        if stage is None or stage.position_um.status is not Status.OK:
            return
        z = stage.position_um.value
        expected = cmd.position_at(snap.t)
        err = z - expected
        if abs(err) > self.limits.z_following_error_max_um:
            out.append(
                Finding(
                    "z_following_error",
                    Action.TRIP,
                    f"Z stage at {z:.0f} µm, the commanded move is at {expected:.0f} µm "
                    f"(error {err:+.0f} µm, limit {self.limits.z_following_error_max_um:g} µm)",
                )
            )
        # Busy with the move outstanding, and not moving: stalled (the following error grows
        # too, but a slow move would take long to show it).
        moving_due = snap.t - cmd.t0 < cmd.duration_s() and abs(cmd.target_um - z) > Z_MOVING_UM
        last = self._z_last
        if last is None or abs(z - last[0]) > Z_MOVING_UM or not stage.busy or not moving_due:
            self._z_last = (z, snap.t)
        elif snap.t - last[1] >= self.limits.z_stall_s:
            out.append(
                Finding(
                    "z_stall",
                    Action.TRIP,
                    f"Z stage busy and not moving for {snap.t - last[1]:.1f} s at {z:.0f} µm "
                    f"(commanded to {cmd.target_um:.0f} µm)",
                )
            )

    def suspended(self) -> bool:
        return bool(self._suspended)
