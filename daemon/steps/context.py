"""What a step sees of the machine: snapshots, lamp power, valves, its deadline."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from daemon.config import Limits
from daemon.errors import SafetyStop, StepFailed
from daemon.machine.monitor import Monitor, Snapshot
from daemon.machine.motion import ZCommand
from daemon.recipe.model import AnyRecipe
from daemon.steps.chuck_hold import ChuckHold
from daemon.steps.estimates import ProcessEstimates
from daemon.thermal.loop import ChipLoop, ControllerFactory, ThermalModel
from drivers.clock import Clock
from drivers.errors import DeviceError
from drivers.protocols import (
    IN_DOOR_CLOSED,
    IN_ESTOP_OK,
    OUT_LAMP_CONTACTOR,
    OUT_SCR_ENABLE,
    Machine,
)

CMD_TIMEOUT_S = 0.5


# How far back the lamp commands are kept: longer than any read-to-judgement delay that
# does not already trip the monitor's staleness rule (1 s).
LAMP_CMD_LOG_S = 2.0


@dataclass
class StepContext:
    machine: Machine
    clock: Clock
    monitor: Monitor
    recipe: AnyRecipe
    limits: Limits
    step_name: str = ""
    deadline: float | None = None
    timeout_s: float = 0.0
    setpoint_c: float | None = None  # recorded in the trace
    # A panel's site-model estimates of the sites without a thermocouple, by their estimate
    # channel (``site_<n>_est``), while the zone loop runs (ADR 0166): recorded in the trace
    # under those marked names, never as a reading. Empty for everything else.
    site_estimates: dict[str, float | None] = field(default_factory=dict)
    progress: float = 0.0  # 0..1 within the step, for the operator's display
    lamps_enabled: bool = field(default=False)
    # The chip loop, kept from reflow into cooling (no gap at the hand-over); built by
    # ``controller_factory`` (None = daemon.thermal.loop.ChipController) from ``thermal_model``
    # (None = the configuration has no identified model: ADR 0062).
    controller: ChipLoop | None = None
    thermal_model: ThermalModel | None = None
    controller_factory: ControllerFactory | None = None
    follow_ended_t: float | None = None  # clock time the last profile ended (hand-over)
    # The interlock monitor's verdict: why the lamps must stay at 0 % now (None = they may be
    # on). Checked on every lamp command, so a step cannot undo a trip or a suspension.
    inhibit: Callable[[], str | None] | None = None
    # The lamp zones the interlocks found dead this run (a panel's reflow asks whether the
    # others can still carry it, ADR 0165). None: no interlock monitor (nothing found).
    dead_zones: Callable[[], frozenset[int]] | None = None
    lamp_cmd_pct: float = 0.0  # last commanded power, for the stuck-SCR interlocks
    # (clock time, power) of every change of ``lamp_cmd_pct`` over the last LAMP_CMD_LOG_S:
    # a reading is judged against the commands in force since it was taken (lamp_cmd_since).
    lamp_cmd_log: deque[tuple[float, float]] = field(default_factory=deque)
    # A panel's zones get powers of their own (set_lamp_zones): the lowest zone's command and
    # its log, as ``lamp_cmd_pct`` is the highest's. None: every zone has had one command.
    lamp_cmd_low_pct: float | None = None
    lamp_cmd_low_log: deque[tuple[float, float]] = field(default_factory=deque)
    # Whether each log has lost its oldest entries: a reading older than what is left was
    # taken under a command no longer known (lamp_cmd_since answers "any": ADR 0187).
    _lamp_log_cut: bool = field(default=False, init=False, repr=False)
    _lamp_low_log_cut: bool = field(default=False, init=False, repr=False)
    # Per zone, the lower of its last two commands (set_lamp_zones; None after set_lamps): a
    # zone dark under its own command is dead even while another zone is trimmed to 0.
    lamp_zone_in_force: tuple[float, ...] | None = None
    _lamp_zone_last: tuple[float, ...] | None = field(default=None, init=False, repr=False)
    # Set by the executor when the run is being aborted. Python 3.11's wait_for can swallow a
    # cancellation that lands as its command completes, so the step also stops at its next tick.
    aborting: bool = False
    # Lead lift, release, encapsulation: the daemon's estimates (dose, volume, conversion),
    # whether a UV exposure is under way (the shutter may be open), and the Z move the stage
    # was last commanded (the following-error interlock compares the stage with it).
    estimates: ProcessEstimates = field(default_factory=ProcessEstimates)
    uv_exposing: bool = False
    z_command: ZCommand | None = None
    # The last move commanded, kept when the daemon stops the stage: if the stage did not
    # take the stop, the safe state knows how long it may still be moving.
    z_last_move: ZCommand | None = None
    # When the dispenser's timed shot under way ends by itself (clock time): if the dispenser
    # does not take the stop, the safe state waits for that rather than end the run mid-shot.
    shot_end_t: float | None = None
    # The chuck loop over the chiller's setpoint (ADR 0090): set by chuck_stabilize, then
    # serviced on every tick for the rest of the run.
    chuck_hold: ChuckHold | None = None
    # The wall-time bound on a device command (None on virtual time): see ``command``.
    _cmd_guard_s: float | None = field(default=None, init=False, repr=False)

    async def tick(self) -> Snapshot:
        """The next fresh snapshot; fails the step once its timeout has passed."""
        if self.aborting:
            raise asyncio.CancelledError
        snap = await self.monitor.next()
        if self.aborting:
            raise asyncio.CancelledError
        if self.deadline is not None and snap.t > self.deadline:
            raise StepFailed(
                f"step '{self.step_name}' did not reach its goal within {self.timeout_s:g} s"
            )
        if self.chuck_hold is not None:
            cmd = self.chuck_hold.due(snap)
            if cmd is not None:
                chiller = self.machine.chiller
                await self.command("chiller setpoint", chiller.set_setpoint(cmd, CMD_TIMEOUT_S))
        return snap

    def __post_init__(self) -> None:
        self._cmd_guard_s = CMD_TIMEOUT_S * 2 if math.isfinite(self.clock.speed) else None

    async def command(self, what: str, aw: Awaitable[None]) -> None:
        """Await a device command; a device error fails the step with the device named.

        Every driver bounds its own calls (the timeout each command passes it); on a clock
        that follows the wall (real, scaled or paced time: the drivers may be real) the
        command is bounded once more, on the event loop's clock, in case a driver does not
        keep to its own. On virtual time (infinite speed) only simulated devices can answer,
        and they time out on the plant's clock (drivers/sim/devices.py): a wall-time bound
        there measures the host, not the machine, and its timer, set and cancelled for
        every lamp command, was ~3 % of a simulated run (docs/adr/0106).
        """
        guard_s = self._cmd_guard_s
        try:
            if guard_s is None:
                await aw
            else:
                # asyncio.timeout, not wait_for: on 3.11 wait_for wraps every command in a
                # new task (a task object and a loop iteration per lamp command, 20x/s), and
                # can swallow a cancellation that lands as the command completes.
                async with asyncio.timeout(guard_s):
                    await aw
        except (DeviceError, TimeoutError) as exc:
            raise StepFailed(f"{what} failed: {str(exc) or 'timeout'}") from exc

    def check_permissives(self, snap: Snapshot) -> None:
        """Lamps may be switched on only with the E-stop chain closed and the door shut."""
        inputs = snap.inputs
        if inputs is None:
            raise SafetyStop("io_lost", "digital I/O not answering: lamps not enabled")
        if not inputs.get(IN_ESTOP_OK, False):
            raise SafetyStop("estop", "E-stop pressed: lamps not enabled")
        if not inputs.get(IN_DOOR_CLOSED, False):
            raise SafetyStop("door_open", "door open: lamps not enabled")

    def inhibited(self) -> str | None:
        return self.inhibit() if self.inhibit is not None else None

    async def enable_lamps(self) -> None:
        snap = self.monitor.latest or await self.tick()
        # A suspension (e.g. oxygen still high) delays heating; the step's timeout bounds it.
        while (why := self.inhibited()) is not None:
            try:
                snap = await self.tick()
            except StepFailed as exc:
                raise StepFailed(f"{exc}: heating held off — {why}") from exc
        self.check_permissives(snap)
        dio, t = self.machine.dio, CMD_TIMEOUT_S
        await self.command("SCR enable", dio.write_output(OUT_SCR_ENABLE, True, t))
        await self.command("lamp contactor", dio.write_output(OUT_LAMP_CONTACTOR, True, t))
        self.lamps_enabled = True
        if self.inhibited() is not None:
            # A trip landed while the outputs were being written: undo at once.
            await self.disable_lamps()

    def note_lamp_cmd(self, pct: float, low: float | None = None) -> None:
        """Log a command: ``pct`` to every zone, or (a panel) ``pct`` the highest zone's and
        ``low`` the lowest's."""
        now = self.clock.now()
        self.lamp_cmd_pct = pct
        log = self.lamp_cmd_log
        log.append((now, pct))
        # Keep the entry in force at the horizon: it is the command a reading taken then saw.
        horizon = now - LAMP_CMD_LOG_S
        while len(log) > 1 and log[1][0] < horizon:
            log.popleft()
            self._lamp_log_cut = True
        if low is not None or self.lamp_cmd_low_pct is not None:
            lo = pct if low is None else low
            self.lamp_cmd_low_pct = lo
            low_log = self.lamp_cmd_low_log
            low_log.append((now, lo))
            while len(low_log) > 1 and low_log[1][0] < horizon:
                low_log.popleft()
                self._lamp_low_log_cut = True

    def lamp_cmd_since(self, t: float) -> tuple[float, float]:
        """The lowest and highest power commanded at any time from clock time ``t`` to now.

        A snapshot's lamp reading was taken at or after ``t``; the interlocks judge it later.
        If the command changed in between (a ramp, the lamps switched off at a step's end),
        the output the reading shows answers a command of then, not of now: judged against
        the command of now, a host that delays the judgement two periods made a stuck SCR
        out of a lamp switched off (ADR 0098).

        A command logged at ``t`` itself counts as one since ``t``, and the one before it as
        in force at ``t``: on a discrete-event clock the read and the command share an
        instant in either order, and a read that came first saw the old command (ADR 0187).
        A reading older than the log (the host held its judgement past LAMP_CMD_LOG_S) was
        taken under a command no longer known: the answer is then 0 to 100 %, no judgement.
        """
        low = high = self.lamp_cmd_pct
        in_force = 0.0
        # The log is in clock order (note_lamp_cmd appends at now()): the commands since
        # ``t`` are its tail and the entry before them was in force at ``t``. Walked from the
        # newest, a snapshot judged a cycle after its read looks at a few entries, not the
        # whole LAMP_CMD_LOG_S of them (~80 at 20 Hz).
        for when, pct in reversed(self.lamp_cmd_log):
            if when < t:
                in_force = pct
                break
            if pct < low:
                low = pct
            elif pct > high:
                high = pct
        else:
            if self._lamp_log_cut:
                return 0.0, 100.0
        if self.lamp_cmd_low_pct is not None:
            # A panel: the low end is the lowest zone's, from its own log (the same walk).
            low, in_force_low = self.lamp_cmd_low_pct, 0.0
            for when, pct in reversed(self.lamp_cmd_low_log):
                if when < t:
                    in_force_low = pct
                    break
                low = min(low, pct)
            else:
                if self._lamp_low_log_cut:
                    return 0.0, max(high, in_force)
            return min(low, in_force_low), max(high, in_force)
        return min(low, in_force), max(high, in_force)

    async def set_lamps(self, pct: float) -> None:
        if not self.lamps_enabled and pct > 0:
            raise StepFailed("lamp power requested while the lamps are not enabled")
        inhibit = self.inhibit
        if self.aborting or (inhibit is not None and inhibit() is not None):
            pct = 0.0  # an abort or a suspension may land between a reading and this command
        # While the command is on its way the higher of the old and the new one is in force.
        # When that is the old one, the log's newest entry already says so (note_lamp_cmd
        # writes lamp_cmd_pct and that entry together): a second entry of the same value
        # would change no answer of lamp_cmd_since.
        if pct > self.lamp_cmd_pct:
            self.note_lamp_cmd(pct)
        lamps = self.machine.lamps
        await self.command("lamp power", lamps.set_power([pct] * lamps.zones, CMD_TIMEOUT_S))
        self.note_lamp_cmd(pct)
        self.lamp_zone_in_force = self._lamp_zone_last = None

    async def set_lamp_zones(self, pcts: Sequence[float]) -> None:
        """Each zone its own power (a panel's zone loop, docs/panel.md). The interlocks judge
        the readings against the highest zone's command (a stuck SCR is an output above every
        command) and the lowest's (lamps driven hard: every zone; a dead lamp: no output under
        any command); the lamps' own limits are the caller's (``PanelLoop``)."""
        high, low = max(pcts), min(pcts)
        if not self.lamps_enabled and high > 0:
            raise StepFailed("lamp power requested while the lamps are not enabled")
        inhibit = self.inhibit
        if self.aborting or (inhibit is not None and inhibit() is not None):
            pcts, high, low = [0.0] * len(pcts), 0.0, 0.0
        # While the command is on its way the wider of the old and the new range is in force.
        old_low = self.lamp_cmd_pct if self.lamp_cmd_low_pct is None else self.lamp_cmd_low_pct
        if high > self.lamp_cmd_pct or low < old_low:
            self.note_lamp_cmd(max(high, self.lamp_cmd_pct), low=min(low, old_low))
        lamps = self.machine.lamps
        await self.command("lamp power", lamps.set_power(list(pcts), CMD_TIMEOUT_S))
        self.note_lamp_cmd(high, low=low)
        now = tuple(pcts)
        last = self._lamp_zone_last
        self.lamp_zone_in_force = (
            now if last is None else tuple(min(a, b) for a, b in zip(last, now, strict=True))
        )
        self._lamp_zone_last = now

    async def disable_lamps(self) -> None:
        dio, t = self.machine.dio, CMD_TIMEOUT_S
        await self.command(
            "lamps to 0 %", self.machine.lamps.set_power([0.0] * self.machine.lamps.zones, t)
        )
        self.note_lamp_cmd(0.0)
        self.lamp_zone_in_force = self._lamp_zone_last = None
        await self.command("lamp contactor", dio.write_output(OUT_LAMP_CONTACTOR, False, t))
        await self.command("SCR enable", dio.write_output(OUT_SCR_ENABLE, False, t))
        self.lamps_enabled = False
        self.setpoint_c = None
        self.site_estimates = {}
