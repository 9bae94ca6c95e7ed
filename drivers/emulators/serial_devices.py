"""Serial-device emulators on TCP sockets (pyserial opens them as ``socket://host:port``).

ADR 0021: a TCP socket stands for the RS-232 cable (as a serial device server would); a pty
would tie the tests to Linux and to one process. Framing, answers, error replies and timing
rules follow each manual; values come from the plant through the simulated twins.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from drivers.emulators.modbus_devices import SIM_TIMEOUT_S, Misbehaviour, _free_port
from drivers.errors import DeviceError, DeviceFault
from drivers.sim.devices import SimChiller, SimOxygenAnalyzer, SimPump, SimVacuumGauge
from drivers.sim.plant import Plant


class SerialEmulator:
    def __init__(self, name: str, plant: Plant, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.name = name
        self.plant = plant
        self.host = host
        self.port = port
        self.bad = Misbehaviour()
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def where(self) -> str:
        return f"serial over TCP socket://{self.host}:{self.port}"

    async def start(self) -> None:
        if self.port == 0:
            self.port = _free_port(self.host)
        self._server = await asyncio.start_server(self._client, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.close()
        for t in list(self._conns):
            t.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self._writers.add(writer)
        try:
            await self.serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the master went away
        except asyncio.CancelledError:
            # stop(): this task is the top of the connection; ending it normally keeps
            # asyncio's server callback from reporting the cancellation as an error.
            return
        finally:
            self._conns.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def reply(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if self.bad.silent or self.bad.lose_answer():
            return
        if self.bad.delay_s:
            self.bad.delayed += 1
            await asyncio.sleep(self.bad.delay_s)
        if self.bad.garbage:
            data = os.urandom(len(data)).replace(b"\r", b"#").replace(b"\n", b"#") + data[-1:]
        writer.write(data)
        await writer.drain()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


def _twin_connected(twin: object) -> None:
    twin._connected = True  # type: ignore[attr-defined]


class Tpg36xEmulator(SerialEmulator):
    """Pfeiffer TPG 361: mnemonic + ACK, then ENQ fetches the data."""

    def __init__(self, plant: Plant, **kw: object) -> None:
        super().__init__("gauge", plant, **kw)  # type: ignore[arg-type]
        self._gauge = SimVacuumGauge(plant)
        _twin_connected(self._gauge)
        self.unit = 0  # mbar

    async def _data(self, mnemonic: str) -> bytes:
        if mnemonic in ("PR1", "PR2"):
            if mnemonic == "PR2":
                return b"5,+0.0000E+00"  # no sensor on channel 2
            try:
                rd = await self._gauge.read(SIM_TIMEOUT_S)
            except DeviceError:
                return b"3,+0.0000E+00"
            status = 0 if rd.ok else 3
            return f"{status},{rd.value:+.4E}".encode()
        if mnemonic == "UNI":
            return str(self.unit).encode()
        if mnemonic == "AYT":
            return b"TPG361,PTG28290,44998000,010100,010100"
        return b""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        last = ""
        while True:
            b = await reader.readexactly(1)
            if b == b"\x05":
                await self.reply(writer, await self._data(last) + b"\r\n")
            elif b == b"\r":
                cmd = buf.decode("ascii", errors="replace").strip().upper()
                buf = b""
                if cmd in ("PR1", "PR2", "UNI", "AYT"):
                    last = cmd
                    await self.reply(writer, b"\x06\r\n")
                else:
                    await self.reply(writer, b"\x15\r\n")
            elif b != b"\n":
                buf += b


class NxdsEmulator(SerialEmulator):
    def __init__(self, plant: Plant, **kw: object) -> None:
        super().__init__("pump", plant, **kw)  # type: ignore[arg-type]
        self._pump = SimPump(plant)
        _twin_connected(self._pump)

    async def _answer(self, cmd: str) -> str:
        if cmd in ("!C802 1", "!C802 0"):
            try:
                if cmd.endswith("1"):
                    await self._pump.start(SIM_TIMEOUT_S)
                else:
                    await self._pump.stop(SIM_TIMEOUT_S)
            except DeviceFault:
                return "*C802 5"
            except DeviceError:
                return ""
            return "*C802 0"
        if cmd == "?V802":
            try:
                st = await self._pump.status(SIM_TIMEOUT_S)
            except DeviceError:
                return ""
            st1 = 0x0A if st.running else 0
            st2 = 0x80 if st.fault else 0
            return f"=V802 {30 if st.running else 0};{st1:04X};{st2:04X}"
        if cmd == "?S801":
            return "=S801 nXDS6iR;D37280000;D37250000"
        if cmd.startswith(("!", "?")):
            return f"*{cmd[1:5]} 2"
        return "*C000 2"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line = (await reader.readuntil(b"\r"))[:-1].decode("ascii", errors="replace").strip()
            ans = await self._answer(line)
            if ans:
                await self.reply(writer, ans.encode() + b"\r")


class JulaboEmulator(SerialEmulator):
    """Julabo FL: answers ``\\r\\n``-terminated; ignores a command sent < 250 ms after the last."""

    MIN_GAP_S = 0.25

    def __init__(self, plant: Plant, **kw: object) -> None:
        super().__init__("chiller", plant, **kw)  # type: ignore[arg-type]
        self._chiller = SimChiller(plant)
        _twin_connected(self._chiller)
        self.remote = False
        self.ignored = 0
        self._last_rx = -1.0

    async def _answer(self, cmd: str) -> str:
        name, _, arg = cmd.partition(" ")
        try:
            if name == "in_pv_00":
                st = await self._chiller.status(SIM_TIMEOUT_S)
                return f"{st.temperature.value:.2f}"
            if name == "in_sp_00":
                st = await self._chiller.status(SIM_TIMEOUT_S)
                return f"{st.setpoint_c:.2f}"
            if name == "version":
                return "JULABO FL1201 VERSION 1.7"
            if name == "status":
                st = await self._chiller.status(SIM_TIMEOUT_S)
                if st.fault:
                    return "-10 REFRIGERATION FAILURE"
                code = (2 if self.remote else 0) + (1 if st.running else 0)
                mode = "REMOTE" if self.remote else "MANUAL"
                return f"{code:02d} {mode} {'START' if st.running else 'STOP'}"
            if name == "out_sp_00":
                self.remote = True
                await self._chiller.set_setpoint(float(arg), SIM_TIMEOUT_S)
                return ""
            if name == "out_mode_05":
                self.remote = True
                if arg.strip() == "1":
                    await self._chiller.start(SIM_TIMEOUT_S)
                else:
                    await self._chiller.stop(SIM_TIMEOUT_S)
                return ""
        except (ValueError, DeviceFault):
            return ""
        except DeviceError:
            return ""
        return "-08 INVALID COMMAND" if not name.startswith("out_") else ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line = (await reader.readuntil(b"\r"))[:-1].decode("ascii", errors="replace").strip()
            now = time.monotonic()
            too_soon = now - self._last_rx < self.MIN_GAP_S
            self._last_rx = now
            if too_soon:
                self.ignored += 1
                continue
            ans = await self._answer(line)
            if ans:
                await self.reply(writer, ans.encode() + b"\r\n")


class Teledyne3000TAEmulator(SerialEmulator):
    """Streams one line per analyzer period; nothing while it is not measuring."""

    def __init__(self, plant: Plant, **kw: object) -> None:
        super().__init__("o2", plant, **kw)  # type: ignore[arg-type]
        self._o2 = SimOxygenAnalyzer(plant)
        _twin_connected(self._o2)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        period = self.plant.params.o2_sample_period_s
        clock = self.plant.clock
        sent_ts = None
        while True:
            with contextlib.suppress(DeviceError):
                rd = await self._o2.read(SIM_TIMEOUT_S)
                if rd.ok and rd.ts != sent_ts:
                    sent_ts = rd.ts
                    rng = "RA-LO" if rd.value < 100 else "RA-HI"
                    await self.reply(writer, f"ST, {rd.value:8.2f} PPM, {rng}, AL-OFF\r\n".encode())
            await clock.sleep(period / 10)
