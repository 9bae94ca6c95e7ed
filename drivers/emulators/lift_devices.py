"""Emulators of the lead-lift's devices: Zaber stage, OmniCure S2000, Nordson Ultimus.

Serial devices on TCP sockets like the others (serial_devices.py, ADR 0021); framing, error
replies and state follow each protocol module in drivers/; the values are the plant's.
"""

from __future__ import annotations

import asyncio

from drivers.emulators.serial_devices import SerialEmulator
from drivers.nordson import protocol as nd
from drivers.omnicure import protocol as oc
from drivers.sim.plant import Plant
from drivers.zaber import protocol as zb


class ZaberEmulator(SerialEmulator):
    """A one-axis Zaber controller at device address 1 (ASCII protocol, replies CR LF)."""

    DEVICE_ID = 50081  # an X-series integrated stage, as `get deviceid` reports it
    SERIAL = 123456
    VERSION = "7.25"

    def __init__(self, plant: Plant, *, um_per_microstep: float = 0.1905, **kw: object) -> None:
        super().__init__("zstage", plant, **kw)  # type: ignore[arg-type]
        self.step = um_per_microstep
        p = plant.params
        self.maxspeed = round(p.z_speed_max_um_s / self.step * zb.SPEED_UNIT)
        self.accel = round(p.z_accel_um_s2 / self.step * zb.ACCEL_UNIT)

    def _flag(self) -> str:
        if self.plant.zstage_failed:
            return "FS"
        if not self.plant.z_homed:
            return "WR"
        return zb.NO_FLAG

    def _reply(self, ok: bool, data: str) -> bytes:
        busy = "BUSY" if self.plant.z_moving and not self.plant.zstage_failed else "IDLE"
        return f"@01 1 {'OK' if ok else 'RJ'} {busy} {self._flag()} {data}\r\n".encode()

    def _answer(self, words: list[str]) -> bytes:
        plant = self.plant
        # One instant per reply: the data and the BUSY/IDLE flag of one line must agree (with
        # the plant advanced again for the flag, a position short of the target read IDLE).
        plant.advance()
        cmd = " ".join(words)
        if cmd == "get pos":
            return self._reply(True, str(round(plant.z_um / self.step)))
        if cmd == "get deviceid":
            return self._reply(True, str(self.DEVICE_ID))
        if cmd == "get system.serial":
            return self._reply(True, str(self.SERIAL))
        if cmd == "get version":
            return self._reply(True, self.VERSION)
        if cmd == "get maxspeed":
            return self._reply(True, str(self.maxspeed))
        if cmd == "get accel":
            return self._reply(True, str(self.accel))
        if cmd == "home":
            if not plant.zstage_failed:
                plant.z_home()
            return self._reply(True, "0")
        if cmd == "stop":
            plant.z_stop()
            return self._reply(True, "0")
        if len(words) == 3 and words[0] == "set" and words[1] in ("maxspeed", "accel"):
            try:
                value = int(words[2])
            except ValueError:
                return self._reply(False, "BADDATA")
            if value <= 0:
                return self._reply(False, "BADDATA")
            setattr(self, words[1], value)
            return self._reply(True, "0")
        if len(words) == 3 and words[:2] == ["move", "abs"]:
            try:
                target = int(words[2]) * self.step
            except ValueError:
                return self._reply(False, "BADDATA")
            if not plant.z_homed:
                return self._reply(False, "BADCOMMAND")
            if plant.zstage_failed:
                return self._reply(True, "0")  # accepted, but the stalled axis does not move
            speed = min(self.maxspeed / zb.SPEED_UNIT * self.step, plant.params.z_speed_max_um_s)
            try:
                plant.z_move(target, speed)
            except ValueError:
                return self._reply(False, "BADDATA")
            return self._reply(True, "0")
        return self._reply(False, "BADCOMMAND")

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line = (await reader.readuntil(b"\n")).decode("ascii", errors="replace").strip()
            if not line.startswith("/"):
                continue  # not a command: a real device ignores it
            words = line[1:].split()
            if len(words) < 3 or words[0] not in ("1", "01") or words[1] != "1":
                continue  # addressed to another device or axis: not ours to answer
            await self.reply(writer, self._answer(words[2:]))


class OmniCureEmulator(SerialEmulator):
    """OmniCure S2000: CRC-8 framed commands; nothing is accepted before ``CONN``."""

    SERIAL = "2041"

    def __init__(self, plant: Plant, *, irradiance_full_mw_cm2: float = 200.0, **kw: object):
        super().__init__("uv", plant, **kw)  # type: ignore[arg-type]
        self.full = irradiance_full_mw_cm2
        self.connected = False
        self.locked = False
        self.iris = 0
        self.crc_errors = 0

    def _status(self) -> int:
        plant = self.plant
        bits = oc.ST_LAMP_ON
        if plant.uv_failed:
            bits |= oc.ST_ALARM
        else:
            bits |= oc.ST_LAMP_READY
        if plant.uv_shutter_open:
            bits |= oc.ST_SHUTTER_OPEN
        if self.locked:
            bits |= oc.ST_FRONT_PANEL_LOCKED
        return bits

    def _answer(self, text: str) -> bytes:
        plant = self.plant
        if text == "CONN":
            self.connected = True
            return oc.frame("READY")
        if not self.connected:
            return b"Err01\r"  # not connected (to confirm: the code the unit uses)
        if text == "DCON":
            self.connected = False
            return oc.frame("CLOSE")
        if text in ("LOC", "ULOC"):
            self.locked = text == "LOC"
            return oc.frame("Received")
        if text == "CLR":
            return oc.frame("Received")
        if text == "OPN":
            if plant.uv_failed:
                return b"Err05\r"  # lamp not ready (to confirm)
            if not plant.uv_enabled:
                return b"Err06\r"  # remote interlock open (to confirm: the unit's code)
            plant.uv_shutter(True)
            return oc.frame("Received")
        if text == "CLS":
            plant.uv_shutter(False)
            return oc.frame("Received")
        if text.startswith("SIL"):
            try:
                level = int(text[3:])
            except ValueError:
                return b"Err03\r"
            if not 0 <= level <= 100:
                return b"Err03\r"
            self.iris = level
            plant.uv_set_irradiance(
                min(plant.params.uv_irradiance_max_mw_cm2, self.full * level / 100)
            )
            return oc.frame("Received")
        if text == "GIL":
            return oc.frame(str(self.iris))
        if text == "GUS":
            return oc.frame(str(self._status()))
        if text == "GSN":
            return oc.frame(self.SERIAL)
        if text in ("VEB", "VIO"):
            return oc.frame("10")
        return b"Err02\r"  # unknown command (to confirm)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line = (await reader.readuntil(b"\r"))[:-1]
            try:
                text = oc.unframe(line)
            except ValueError:
                self.crc_errors += 1
                await self.reply(writer, b"Err67\r")  # the manual's example error
                continue
            await self.reply(writer, self._answer(text))


class UltimusEmulator(SerialEmulator):
    """Nordson EFD Ultimus: ENQ/ACK, STX..ETX packets with checksum, A0/A2, EOT."""

    def __init__(self, plant: Plant, **kw: object) -> None:
        super().__init__("dispenser", plant, **kw)  # type: ignore[arg-type]
        self.units = "00"  # psi after a factory reset; the driver sets kPa
        self.timed = False
        self.pressure = 0  # wire units (0.1 of the unit)
        self.time_ticks = 0  # 0.1 ms
        self.memory = "000"
        self.shots = 0

    def _kpa(self, wire: int) -> float:
        per_unit = {"00": 6.894757, "01": 100.0, "02": 1.0}[self.units]
        return wire / nd.PRESSURE_SCALE * per_unit

    def _execute(self, text: str) -> tuple[bool, str | None]:
        """(success, feedback data or None) for one packet's command+data."""
        cmd, data = text[:4], text[4:]
        plant = self.plant
        if cmd == "E6  " and data in ("00", "01", "02"):
            self.units = data
            return True, None
        if cmd == "TT  ":
            self.timed = True
            return True, None
        if cmd == "MT  ":
            self.timed = False
            return True, None
        if cmd == "PS  " and len(data) == 4 and data.isdigit():
            kpa = self._kpa(int(data))
            if kpa > plant.params.dispense_pressure_max_kpa:
                return False, None
            self.pressure = int(data)
            plant.dispenser_set_pressure(kpa)
            if kpa == 0.0 and plant.dispensing:
                plant.dispense_stop()  # no air pressure: nothing flows
            return True, None
        if cmd == "DS  " and len(data) == 6 and data[0] == "T" and data[1:].isdigit():
            self.time_ticks = int(data[1:])
            return True, None
        if cmd == "DI  " and not data:
            if not self.timed or self.time_ticks == 0 or plant.dispenser_failed:
                return False, None
            plant.dispense(self.time_ticks / nd.TIME_SCALE)
            self.shots += 1
            return True, None
        if text == "UA   ":
            return True, self.memory
        if text == "E8" + self.memory:
            return True, f"PD{self.pressure:04d}DT{self.time_ticks:05d}VC0000"
        if cmd == "EL  " and not data:
            pa = 1 if plant.dispenser_failed else 2
            return True, f"IN2PA{pa}AI2"
        return False, None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pending: str | None = None
        while True:
            b = await reader.readexactly(1)
            if b == nd.ENQ:
                pending = None
                await self.reply(writer, nd.ACK)
            elif b == nd.STX:
                raw = nd.STX + await reader.readuntil(nd.ETX)
                try:
                    text = nd.parse(raw[:-1])
                except ValueError:
                    await self.reply(writer, nd.packet(nd.FAILURE))
                    continue
                ok, feedback = self._execute(text)
                pending = feedback
                await self.reply(writer, nd.packet(nd.SUCCESS if ok else nd.FAILURE))
            elif b == nd.ACK and pending is not None:
                data, pending = pending, None
                await self.reply(writer, nd.packet("D0" + data))
            elif b == nd.EOT:
                pending = None
