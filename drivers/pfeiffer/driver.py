"""VacuumGauge driver of the TPG 361/362.

Every mnemonic is a two-step exchange: ``PR1<CR>`` is acknowledged with ``<ACK><CR><LF>``
(``<NAK>`` = not understood), then ``<ENQ>`` fetches the data. ``UNI`` is read at connect so
a controller set to Torr or Pa is converted, never misread as mbar.
"""

from __future__ import annotations

from drivers.clock import Clock
from drivers.errors import DeviceError, DeviceFault
from drivers.protocols import DEFAULT_TIMEOUT_S
from drivers.reading import Reading, Status
from drivers.serial_line import SerialLine

ACK, NAK, ENQ = b"\x06", b"\x15", b"\x05"
EOL = b"\r\n"
# UNI codes -> factor to mbar
UNITS = {
    0: ("mbar", 1.0),
    1: ("Torr", 1.33322),
    2: ("Pa", 0.01),
    3: ("Micron", 1.33322e-3),
    4: ("hPa", 1.0),
}
STATUS = {
    0: "ok",
    1: "underrange",
    2: "overrange",
    3: "sensor error",
    4: "sensor off",
    5: "no sensor",
    6: "identification error",
}


class Tpg36x:
    def __init__(
        self, line: SerialLine, clock: Clock, *, channel: int = 1, name: str = "gauge"
    ) -> None:
        if channel not in (1, 2):
            raise ValueError(f"channel = {channel}: the TPG 36x has channels 1 and 2")
        self._line = line
        self._clock = clock
        self._channel = channel
        self._name = name
        self._to_mbar: float | None = None
        self._last: float | None = None
        line.on_connect.append(self._read_unit)

    @property
    def name(self) -> str:
        return self._name

    async def _mnemonic(self, cmd: str, timeout: float) -> str:
        ack = await self._line.exchange(cmd.encode("ascii") + b"\r", timeout, eol=EOL)
        if ack == NAK:
            raise DeviceFault(self._name, f"{cmd}: NAK (not understood)")
        if ack != ACK:
            raise DeviceError(self._name, f"{cmd}: expected ACK, got {ack!r}")
        data = await self._line.exchange(ENQ, timeout, eol=EOL)
        try:
            return data.decode("ascii")
        except UnicodeDecodeError as exc:
            raise DeviceError(self._name, f"{cmd}: garbled answer {data!r}") from exc

    async def _read_unit(self) -> None:
        text = await self._mnemonic("UNI", 1.0)
        try:
            self._to_mbar = UNITS[int(text.strip())][1]
        except (ValueError, KeyError) as exc:
            raise DeviceError(self._name, f"UNI: unexpected answer {text!r}") from exc

    async def connect(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._line.connect(timeout)

    async def identify(self, timeout: float = DEFAULT_TIMEOUT_S) -> str:
        """``AYT``: type, model no., serial no., firmware and hardware versions."""
        async with self._line.lock:
            await self._line.ensure(timeout)
            text = await self._mnemonic("AYT", timeout)
        fields = text.split(",")
        if len(fields) < 5:
            raise DeviceError(self._name, f"AYT: unexpected answer {text!r}")
        kind, model, serial, fw, hw = (f.strip() for f in fields[:5])
        return f"Pfeiffer {kind}, model {model}, serial {serial}, firmware {fw}, hardware {hw}"

    async def close(self) -> None:
        await self._line.close()

    async def read(self, timeout: float = DEFAULT_TIMEOUT_S) -> Reading:
        started = self._clock.now()
        async with self._line.lock:
            await self._line.ensure(timeout)
            text = await self._mnemonic(f"PR{self._channel}", timeout)
        try:
            status_s, value_s = text.split(",")
            status, value = int(status_s), float(value_s)
        except ValueError as exc:
            raise DeviceError(self._name, f"PR{self._channel}: garbled answer {text!r}") from exc
        if self._to_mbar is None:
            raise DeviceError(self._name, "unit not known (UNI not read)")
        mbar = value * self._to_mbar
        if status == 0:
            self._last = mbar
            return Reading(mbar, started)
        why = STATUS.get(status, f"status {status}")
        if status in (1, 2):
            # Under/over range: the value is the range limit, a bound not a measurement.
            return Reading(mbar, started, Status.FAULT, why)
        return Reading(self._last if self._last is not None else mbar, started, Status.FAULT, why)
