"""UvSource driver of the OmniCure S2000.

The unit must be greeted with ``CONN`` (answer ``READY``) before it accepts anything, and
again after it was power-cycled, so the greeting runs on every (re)connect; the front panel
is then locked (``LOC``) so nobody changes the iris behind the recipe's back. The S2000 sets
its output with the iris (``SIL`` percent); irradiance at the work plane is proportional to
the iris opening, with the factor measured at commissioning with a radiometer
(``irradiance_full_mw_cm2``: the irradiance at iris 100 %).
"""

from __future__ import annotations

import math

from drivers.errors import DeviceError, DeviceFault, InvalidCommand
from drivers.omnicure import protocol as p
from drivers.protocols import DEFAULT_TIMEOUT_S, UvStatus
from drivers.serial_line import SerialLine

ACK_TEXT = "Received"


class OmniCureS2000:
    def __init__(
        self, line: SerialLine, *, irradiance_full_mw_cm2: float, name: str = "uv"
    ) -> None:
        if not (math.isfinite(irradiance_full_mw_cm2) and irradiance_full_mw_cm2 > 0):
            raise ValueError("irradiance_full_mw_cm2 must be > 0")
        self._line = line
        self._full = irradiance_full_mw_cm2
        self._name = name
        line.on_connect.append(self._greet)

    @property
    def name(self) -> str:
        return self._name

    async def _ask(self, text: str, timeout: float, *, locked: bool = False) -> str:
        if locked:
            raw = await self._line.exchange(p.frame(text), timeout, eol=p.EOL)
        else:
            async with self._line.lock:
                raw = await self._line.exchange(p.frame(text), timeout, eol=p.EOL)
        try:
            return p.unframe(raw)
        except p.ErrorReply as exc:
            raise DeviceFault(self._name, f"{text}: {exc}") from exc
        except ValueError as exc:
            raise DeviceError(self._name, f"{text}: {exc}") from exc

    async def _command(self, text: str, timeout: float, *, locked: bool = False) -> None:
        ans = await self._ask(text, timeout, locked=locked)
        if ans != ACK_TEXT:
            raise DeviceError(self._name, f"{text}: unexpected answer {ans!r}")

    async def _greet(self) -> None:
        t = 1.0
        ans = await self._ask("CONN", t, locked=True)
        if ans != "READY":
            raise DeviceError(self._name, f"CONN: expected READY, got {ans!r}")
        await self._command("LOC", t, locked=True)

    async def connect(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._line.connect(timeout)

    async def close(self) -> None:
        await self._line.close()

    async def identify(self, timeout: float = DEFAULT_TIMEOUT_S) -> str:
        serial = await self._ask("GSN", timeout)
        main = await self._ask("VEB", timeout)
        io = await self._ask("VIO", timeout)
        return f"Excelitas OmniCure S2000, serial {serial}, main board sw {main}, I/O board sw {io}"

    async def set_irradiance(self, mw_cm2: float, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not (math.isfinite(mw_cm2) and 0.0 <= mw_cm2 <= self._full):
            raise InvalidCommand(self._name, f"mw_cm2 = {mw_cm2} outside 0..{self._full:g}")
        await self._command(f"SIL{round(100.0 * mw_cm2 / self._full)}", timeout)

    async def open_shutter(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._command("OPN", timeout)

    async def close_shutter(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._command("CLS", timeout)

    async def status(self, timeout: float = DEFAULT_TIMEOUT_S) -> UvStatus:
        gus = await self._ask("GUS", timeout)
        iris = await self._ask("GIL", timeout)
        try:
            bits, level = int(gus), int(iris)
        except ValueError as exc:
            raise DeviceError(self._name, f"GUS/GIL: garbled answers {gus!r}, {iris!r}") from exc
        fault = bool(bits & (p.ST_ALARM | p.ST_SHUTTER_FAULT))
        details = [
            why
            for bit, why in ((p.ST_ALARM, "alarm"), (p.ST_SHUTTER_FAULT, "shutter fault"))
            if bits & bit
        ]
        return UvStatus(
            shutter_open=bool(bits & p.ST_SHUTTER_OPEN),
            irradiance_mw_cm2=self._full * level / 100.0,
            lamp_ready=bool(bits & p.ST_LAMP_READY),
            fault=fault,
            detail=", ".join(details),
        )
