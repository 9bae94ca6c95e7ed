"""LampBank driver of the GFX4-IR.

Power commands go to MANUAL_POWER, which the controller keeps in RAM only (SP.r is set to
"no EEPROM" at connect and read back): the thermal loop writes it twenty times a second and
the EEPROM is rated for 100 000 writes. Every command is read back and compared.
"""

from __future__ import annotations

from collections.abc import Sequence

from drivers.clock import Clock
from drivers.errors import DeviceFault, InvalidCommand
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
        base_node: int = 1,
        zones: int = 4,
        name: str = "lamps",
    ) -> None:
        if not 1 <= zones <= 4:
            raise ValueError(f"zones = {zones} outside 1..4")
        if not 1 <= base_node <= 247 - zones + 1:
            raise ValueError(f"base_node = {base_node} leaves no room for {zones} zones")
        self._bus = bus
        self._clock = clock
        self._base = base_node
        self._zones = zones
        self._name = name
        bus.acquire()
        bus.on_connect.append(self._configure)

    @property
    def name(self) -> str:
        return self._name

    @property
    def zones(self) -> int:
        return self._zones

    def _node(self, zone: int) -> int:
        return self._base + zone

    async def _configure(self) -> None:
        t = self._bus.timeout_s * 4
        for z in range(self._zones):
            node = self._node(z)
            await self._bus.write_register(
                self._name, node, r.SP_R, r.SP_R_RAM_ONLY, t, locked=True
            )
            got = await self._bus.read_holding(self._name, node, r.SP_R, 1, t, locked=True)
            if got[0] != r.SP_R_RAM_ONLY:
                raise DeviceFault(
                    self._name,
                    f"zone {z + 1}: SP.r stays {got[0]}: manual power would wear the EEPROM",
                )

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
        async with self._bus.lock:
            await self._bus.ensure(self._name, timeout)
            for z, value in enumerate(raw):
                await self._bus.write_register(
                    self._name, self._node(z), r.MANUAL_POWER, value, timeout, locked=True
                )
            for z, value in enumerate(raw):
                back = await self._bus.read_holding(
                    self._name, self._node(z), r.MANUAL_POWER, 1, timeout, locked=True
                )
                if back[0] != value:
                    raise DeviceFault(
                        self._name,
                        f"zone {z + 1}: manual power read back {back[0] / r.POWER_SCALE:g} % "
                        f"after writing {value / r.POWER_SCALE:g} %",
                    )

    async def read_power(self, timeout: float = DEFAULT_TIMEOUT_S) -> list[Reading]:
        started = self._clock.now()
        out: list[Reading] = []
        for z in range(self._zones):
            power, alarms = await self._bus.read_holding(
                self._name, self._node(z), r.OUTPUT_POWER, 2, timeout
            )
            pct = power / r.POWER_SCALE
            if alarms & r.ALARM_SSR_SHORT:
                out.append(
                    Reading(pct, started, Status.FAULT, "SSR short (conducting without command)")
                )
            elif alarms & r.ALARM_SSR_OPEN:
                out.append(Reading(pct, started, Status.FAULT, "SSR open (not conducting)"))
            elif alarms & r.ALARM_NO_CURRENT:
                out.append(Reading(pct, started, Status.FAULT, "load failure (open lamp)"))
            else:
                # No voltage with the contactor open is the normal idle state, not a fault.
                out.append(Reading(pct, started))
        return out
