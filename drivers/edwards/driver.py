"""Pump driver of the nXDS.

Commands are ``!C802 1`` / ``!C802 0`` (start / stop), answered ``*C802 <err>`` (0 = done);
``?V802`` answers ``=V802 <speed Hz>;<status 1 hex>;<status 2 hex>``.
"""

from __future__ import annotations

from drivers.errors import DeviceError, DeviceFault, InvalidCommand
from drivers.protocols import DEFAULT_TIMEOUT_S, PumpStatus
from drivers.serial_line import SerialLine

# Status word 1
ST1_DECEL = 1 << 0
ST1_ACCEL_RUNNING = 1 << 1
ST1_STANDBY = 1 << 2
ST1_NORMAL_SPEED = 1 << 3
ST1_ABOVE_RAMP = 1 << 4
# Status word 2
ST2_WARNING = 1 << 6
ST2_ALARM = 1 << 7

ERRORS = {
    1: "invalid command for object",
    2: "invalid query/command",
    3: "missing parameter",
    4: "parameter out of range",
    5: "invalid command in current state",
}


class NxdsPump:
    def __init__(self, line: SerialLine, *, name: str = "pump") -> None:
        self._line = line
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def connect(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._line.connect(timeout)

    async def close(self) -> None:
        await self._line.close()

    async def _ask(self, cmd: str, timeout: float) -> str:
        async with self._line.lock:
            raw = await self._line.exchange(cmd.encode("ascii") + b"\r", timeout)
        try:
            return raw.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise DeviceError(self._name, f"{cmd}: garbled answer {raw!r}") from exc

    async def _command(self, on: bool, timeout: float) -> None:
        cmd = f"!C802 {1 if on else 0}"
        ans = await self._ask(cmd, timeout)
        if not ans.startswith("*C802 "):
            raise DeviceError(self._name, f"{cmd}: unexpected answer {ans!r}")
        try:
            err = int(ans[6:])
        except ValueError as exc:
            raise DeviceError(self._name, f"{cmd}: unexpected answer {ans!r}") from exc
        if err == 5:
            raise DeviceFault(self._name, f"{cmd}: refused in the current state (alarm?)")
        if err:
            raise InvalidCommand(self._name, f"{cmd}: error {err} ({ERRORS.get(err, 'unknown')})")

    async def identify(self, timeout: float = DEFAULT_TIMEOUT_S) -> str:
        """``?S801``: pump type and the controller's firmware versions."""
        ans = await self._ask("?S801", timeout)
        if not ans.startswith("=S801 "):
            raise DeviceError(self._name, f"?S801: unexpected answer {ans!r}")
        fields = [f.strip() for f in ans[6:].split(";")]
        return "Edwards " + ", ".join(f for f in fields if f)

    async def start(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._command(True, timeout)

    async def stop(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._command(False, timeout)

    async def status(self, timeout: float = DEFAULT_TIMEOUT_S) -> PumpStatus:
        ans = await self._ask("?V802", timeout)
        try:
            if not ans.startswith("=V802 "):
                raise ValueError(ans)
            speed_s, st1_s, st2_s = ans[6:].split(";")[:3]
            speed, st1, st2 = int(speed_s), int(st1_s, 16), int(st2_s, 16)
        except ValueError as exc:
            raise DeviceError(self._name, f"?V802: garbled answer {ans!r}") from exc
        running = bool(st1 & (ST1_ACCEL_RUNNING | ST1_NORMAL_SPEED | ST1_STANDBY))
        alarm = bool(st2 & ST2_ALARM)
        detail = "alarm" if alarm else ("warning" if st2 & ST2_WARNING else "")
        if running:
            detail = f"{speed} Hz" + (f", {detail}" if detail else "")
        return PumpStatus(running=running, fault=alarm, detail=detail)
