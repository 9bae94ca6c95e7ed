"""What a step sees of the machine: snapshots, lamp power, valves, its deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field

from daemon.config import Limits
from daemon.errors import SafetyStop, StepFailed
from daemon.monitor import Monitor, Snapshot
from daemon.recipe.model import VacuumFilmBondRecipe
from daemon.thermal import LampController
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


@dataclass
class StepContext:
    machine: Machine
    clock: Clock
    monitor: Monitor
    recipe: VacuumFilmBondRecipe
    limits: Limits
    step_name: str = ""
    deadline: float | None = None
    timeout_s: float = 0.0
    setpoint_c: float | None = None  # recorded in the trace
    progress: float = 0.0  # 0..1 within the step, for the operator's display
    lamps_enabled: bool = field(default=False)
    controller: LampController | None = None

    async def tick(self) -> Snapshot:
        """The next fresh snapshot; fails the step once its timeout has passed."""
        snap = await self.monitor.next()
        if self.deadline is not None and snap.t > self.deadline:
            raise StepFailed(
                f"step '{self.step_name}' did not reach its goal within {self.timeout_s:g} s"
            )
        return snap

    async def command(self, what: str, aw: Awaitable[None]) -> None:
        """Await a device command; a device error fails the step with the device named."""
        try:
            await asyncio.wait_for(aw, CMD_TIMEOUT_S * 2)
        except (DeviceError, TimeoutError) as exc:
            raise StepFailed(f"{what} failed: {exc or 'timeout'}") from exc

    def check_permissives(self, snap: Snapshot) -> None:
        """Lamps may be switched on only with the E-stop chain closed and the door shut."""
        inputs = snap.inputs
        if inputs is None:
            raise SafetyStop("io_lost", "digital I/O not answering: lamps not enabled")
        if not inputs.get(IN_ESTOP_OK, False):
            raise SafetyStop("estop", "E-stop pressed: lamps not enabled")
        if not inputs.get(IN_DOOR_CLOSED, False):
            raise SafetyStop("door_open", "door open: lamps not enabled")

    async def enable_lamps(self) -> None:
        snap = self.monitor.latest or await self.tick()
        self.check_permissives(snap)
        dio, t = self.machine.dio, CMD_TIMEOUT_S
        await self.command("SCR enable", dio.write_output(OUT_SCR_ENABLE, True, t))
        await self.command("lamp contactor", dio.write_output(OUT_LAMP_CONTACTOR, True, t))
        self.lamps_enabled = True

    async def set_lamps(self, pct: float) -> None:
        if not self.lamps_enabled and pct > 0:
            raise StepFailed("lamp power requested while the lamps are not enabled")
        zones = self.machine.lamps.zones
        await self.command("lamp power", self.machine.lamps.set_power([pct] * zones, CMD_TIMEOUT_S))

    async def disable_lamps(self) -> None:
        dio, t = self.machine.dio, CMD_TIMEOUT_S
        await self.command(
            "lamps to 0 %", self.machine.lamps.set_power([0.0] * self.machine.lamps.zones, t)
        )
        await self.command("lamp contactor", dio.write_output(OUT_LAMP_CONTACTOR, False, t))
        await self.command("SCR enable", dio.write_output(OUT_SCR_ENABLE, False, t))
        self.lamps_enabled = False
        self.setpoint_c = None
