"""LampBank driver of the GFX4-IR (Modbus RTU, GFX4 access mode, ADR 0025).

Power commands go to MANUAL_POWER, which the controller keeps in RAM only (SP.r is set to
"no EEPROM" at connect and read back): the thermal loop writes it twenty times a second and
the EEPROM is rated for 100 000 writes. One control cycle costs two RTU transactions: one
FC16 write of the four zones' manual power through the custom map, and one FC3 read of the
custom block that both verifies the command (read-back) and yields every zone's output power
and alarms. ``read_power`` serves that read while it is fresh instead of asking again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from drivers.clock import Clock
from drivers.errors import DeviceFault, DeviceTimeout, InvalidCommand
from drivers.gefran import registers as r
from drivers.modbus import ModbusBus
from drivers.protocols import DEFAULT_TIMEOUT_S
from drivers.reading import Reading, Status


class Gfx4Lamps:
    def __init__(
        self,
        bus: ModbusBus,
        clock: Clock,
        *,
        node: int = 1,
        zones: int = 4,
        fresh_s: float = 0.05,
        name: str = "lamps",
    ) -> None:
        if not 1 <= zones <= 4:
            raise ValueError(f"zones = {zones} outside 1..4")
        if not 1 <= node <= 247:
            raise ValueError(f"node = {node} outside 1..247")
        self._bus = bus
        self._clock = clock
        self._node = node
        self._zones = zones
        self._fresh_s = fresh_s  # clock time a block read stands for a fresh one (one period)
        self._name = name
        self._block: tuple[float, float, list[int]] | None = None  # (clock, clock, regs)
        # Set while a power command (write + read-back) holds the line: a reading asked for
        # meanwhile takes that command's read-back instead of queueing a read of its own.
        self._commanding: asyncio.Event | None = None
        self._map_checked = False  # the custom map is checked once, at the first connect
        bus.acquire()
        bus.on_connect.append(self._configure)

    @property
    def name(self) -> str:
        return self._name

    @property
    def zones(self) -> int:
        return self._zones

    async def _configure(self) -> None:
        t = self._bus.timeout_s * 4
        for z in range(self._zones):
            addr = r.zone_address(z, r.SP_R)
            # Read first, write only what differs: a re-connect runs inside a monitor read
            # (ADR 0080), and every RTU transaction costs its time on the line.
            got = await self._bus.read_holding(self._name, self._node, addr, 1, t, locked=True)
            if got[0] == r.SP_R_RAM_ONLY:
                continue
            await self._bus.write_register(
                self._name, self._node, addr, r.SP_R_RAM_ONLY, t, locked=True
            )
            got = await self._bus.read_holding(self._name, self._node, addr, 1, t, locked=True)
            if got[0] != r.SP_R_RAM_ONLY:
                raise DeviceFault(
                    self._name,
                    f"zone {z + 1}: SP.r stays {got[0]}: manual power would wear the EEPROM",
                )
        block = await self._read_block(t, locked=True)
        if self._map_checked:
            return  # the custom map is configuration kept in the unit's EEPROM
        # The custom map must alias the zones' own parameters, or the driver would command
        # and watch registers that drive nothing.
        for z in range(self._zones):
            for custom, param in (
                (r.CUSTOM_MANUAL, r.MANUAL_POWER),
                (r.CUSTOM_OUTPUT, r.OUTPUT_POWER),
                (r.CUSTOM_ALARMS, r.ALARMS),
            ):
                direct = await self._bus.read_holding(
                    self._name, self._node, r.zone_address(z, param), 1, t, locked=True
                )
                if direct[0] != block[custom + z]:
                    raise DeviceFault(
                        self._name,
                        f"custom map entry {custom + z} is not zone {z + 1} parameter {param}: "
                        "configure the custom map as docs/devices.md describes",
                    )
        self._map_checked = True

    async def _read_block(self, timeout: float, *, locked: bool = False) -> list[int]:
        started = self._clock.now()
        regs = await self._bus.read_holding(
            self._name, self._node, 0, r.CUSTOM_BLOCK, timeout, locked=locked
        )
        self._block = (started, started, regs)
        return regs

    async def connect(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._bus.connect(self._name, timeout)

    async def close(self) -> None:
        await self._bus.release()

    async def set_power(self, pct: Sequence[float], timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not isinstance(pct, Sequence) or isinstance(pct, str | bytes) or len(pct) != self._zones:
            raise InvalidCommand(self._name, f"pct: expected a sequence of {self._zones} values")
        raw: list[int] = []
        for i, v in enumerate(pct):
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v <= 100.0:
                raise InvalidCommand(self._name, f"pct[{i}] = {v!r} outside 0..100")
            raw.append(round(v * r.POWER_SCALE))
        # One transaction under the bus lock: a second command (the safe state's 0 %) must
        # not land between this one's write and its read-back.
        done = self._commanding = asyncio.Event()
        try:
            async with self._bus.lock:
                await self._bus.ensure(self._name, timeout)
                self._block = None
                await self._bus.write_registers(
                    self._name, self._node, r.CUSTOM_MANUAL, raw, timeout, locked=True
                )
                back = await self._read_block(timeout, locked=True)
        finally:
            done.set()
            if self._commanding is done:
                self._commanding = None
        for z, value in enumerate(raw):
            if back[r.CUSTOM_MANUAL + z] != value:
                raise DeviceFault(
                    self._name,
                    f"zone {z + 1}: manual power read back "
                    f"{back[r.CUSTOM_MANUAL + z] / r.POWER_SCALE:g} % "
                    f"after writing {value / r.POWER_SCALE:g} %",
                )

    async def read_power(self, timeout: float = DEFAULT_TIMEOUT_S) -> list[Reading]:
        asked = self._clock.now()
        block = self._block
        if block is not None and asked - block[0] > self._fresh_s:
            block = None
        commanding = self._commanding
        if block is None and commanding is not None:
            # The command's read-back is this same block, read after this call began: as
            # fresh as a read of our own, without queueing for the line behind it (on a
            # loaded host two queued transactions can cost a whole read budget, ADR 0080).
            waited = time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await commanding.wait()
            timeout -= time.monotonic() - waited
            back = self._block
            if back is not None and back[0] >= asked:
                block = back
        if block is not None:
            ts, regs = block[1], block[2]
        else:
            if timeout <= 0:
                raise DeviceTimeout(self._name, "a power command held the line for the whole read")
            ts = self._clock.now()
            regs = await self._read_block(timeout)
        out: list[Reading] = []
        for z in range(self._zones):
            pct = regs[r.CUSTOM_OUTPUT + z] / r.POWER_SCALE
            alarms = regs[r.CUSTOM_ALARMS + z]
            if alarms & r.ALARM_SSR_SHORT:
                out.append(Reading(pct, ts, Status.FAULT, "SSR short (conducting without command)"))
            elif alarms & r.ALARM_SSR_OPEN:
                out.append(Reading(pct, ts, Status.FAULT, "SSR open (not conducting)"))
            elif alarms & r.ALARM_NO_CURRENT:
                out.append(Reading(pct, ts, Status.FAULT, "load failure (open lamp)"))
            else:
                # No voltage with the contactor open is the normal idle state, not a fault.
                out.append(Reading(pct, ts))
        return out
