"""The machine monitor: one periodic loop reads every device, concurrently, with timeouts.

Steps, the controller, guards and the trace all consume the same snapshot, so what the
record shows is exactly what the control decisions were based on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from drivers.clock import Clock
from drivers.errors import DeviceError
from drivers.protocols import (
    ChillerStatus,
    DispenserStatus,
    Machine,
    PumpStatus,
    StageStatus,
    UvStatus,
)
from drivers.reading import Reading

log = structlog.get_logger(__name__)

T = TypeVar("T")

READ_TIMEOUT_S = 0.5


@dataclass(frozen=True, slots=True)
class Snapshot:
    t: float  # clock time of the snapshot
    temps: dict[str, Reading]
    pressure: Reading | None
    o2: Reading | None
    lamp_pct: tuple[float, ...]
    pump: PumpStatus | None
    valves: dict[str, bool] | None
    chiller: ChillerStatus | None
    inputs: dict[str, bool] | None
    outputs: dict[str, bool] | None
    stage: StageStatus | None
    uv: UvStatus | None
    dispenser: DispenserStatus | None = None
    errors: dict[str, str] = field(default_factory=dict)  # device -> why it gave no reading

    def temp(self, channel: str) -> float | None:
        r = self.temps.get(channel)
        return r.value if r is not None and r.ok else None

    def pressure_mbar(self) -> float | None:
        return self.pressure.value if self.pressure is not None and self.pressure.ok else None

    def o2_ppm(self) -> float | None:
        return self.o2.value if self.o2 is not None and self.o2.ok else None

    def lamp_mean_pct(self) -> float:
        return sum(self.lamp_pct) / len(self.lamp_pct) if self.lamp_pct else 0.0


class Monitor:
    def __init__(
        self, machine: Machine, clock: Clock, period_s: float = 0.05, *, concurrent: bool = True
    ) -> None:
        self._m = machine
        self._clock = clock
        self.period_s = period_s
        self.latest: Snapshot | None = None
        # Real devices sit on separate buses and are read concurrently; simulated ones answer
        # without waiting, so one after the other is the same and cheaper.
        self.concurrent = concurrent
        self.overruns = 0  # cycles that started late: the loop is not keeping its period
        self._cond = asyncio.Condition()

    async def _read(self, device: str, aw: Awaitable[T], errors: dict[str, str]) -> T | None:
        # Every driver call carries its own timeout (drivers/protocols.py), so no second
        # timer here: this loop runs twenty times a second on every device.
        try:
            return await aw
        except DeviceError as exc:
            errors[device] = str(exc) or type(exc).__name__
            return None

    async def read_once(self) -> Snapshot:
        m, t = self._m, READ_TIMEOUT_S
        errs: dict[str, str] = {}
        # Stamped when the reads start: they run concurrently, and what a reading means for
        # rates and lags is when it was asked for, not when the slowest device answered.
        started = self._clock.now()
        reads: tuple[tuple[str, Callable[[], Awaitable[Any]]], ...] = (
            ("tc", lambda: m.thermocouples.read(t)),
            ("gauge", lambda: m.gauge.read(t)),
            ("o2", lambda: m.o2.read(t)),
            ("lamps", lambda: m.lamps.read_power(t)),
            ("pump", lambda: m.pump.status(t)),
            ("valves", lambda: m.valves.states(t)),
            ("chiller", lambda: m.chiller.status(t)),
            ("dio", lambda: m.dio.read_inputs(t)),
            ("dio.outputs", lambda: m.dio.read_outputs(t)),
            ("zstage", lambda: m.zstage.status(t)),
            ("uv", lambda: m.uv.status(t)),
            ("dispenser", lambda: m.dispenser.status(t)),
        )
        if self.concurrent:
            async with asyncio.TaskGroup() as tg:  # _read turns device errors into `errs`
                tasks = [tg.create_task(self._read(name, fn(), errs)) for name, fn in reads]
            values = [task.result() for task in tasks]
        else:
            values = [await self._read(name, fn(), errs) for name, fn in reads]
        (
            temps,
            pressure,
            o2,
            lamps,
            pump,
            valves,
            chiller,
            inputs,
            outputs,
            stage,
            uv,
            dispenser,
        ) = values
        lamp_readings = lamps
        snap = Snapshot(
            t=started,
            temps=temps or {},
            pressure=pressure,
            o2=o2,
            lamp_pct=tuple(r.value for r in lamp_readings) if lamp_readings else (),
            pump=pump,
            valves=valves,
            chiller=chiller,
            inputs=inputs,
            outputs=outputs,
            stage=stage,
            uv=uv,
            dispenser=dispenser,
            errors=errs,
        )
        async with self._cond:
            self.latest = snap
            self._cond.notify_all()
        return snap

    async def run(self) -> None:
        """Read forever every ``period_s`` of clock time; cancel to stop.

        Scheduled on absolute deadlines, so the time the consumers of a snapshot take does
        not stretch the period; a late cycle is not made up for by a burst.
        """
        due = self._clock.now()
        while True:
            await self.read_once()
            due += self.period_s
            now = self._clock.now()
            if due < now:
                self.overruns += 1
                due = now
            await self._clock.sleep(due - now)

    async def next(self) -> Snapshot:
        """Wait for the next fresh snapshot."""
        async with self._cond:
            await self._cond.wait()
            assert self.latest is not None
            return self.latest
