"""The GFX4 emulator also as a plain Modbus RTU slave on a pseudo-terminal.

A third-party master that speaks RTU only over a serial port (mbpoll) opens the pty's slave
side as it would the RS-485 adapter; the same register context answers it as answers the
RTU-over-TCP server. Holding-register functions only (3, 4, 6, 16): all the GFX4 needs.
"""

from __future__ import annotations

import asyncio
import os
import struct
import tty

from pymodbus.constants import ExcCodes

from drivers.emulators.modbus_devices import _PlantContext


def crc16(data: bytes) -> bytes:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


def _frame_length(buf: bytes) -> int | None:
    """Length of the request at the start of ``buf`` once its header is in, else None."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc in (3, 4, 6):
        return 8
    if fc == 16:
        return 9 + buf[6] if len(buf) >= 7 else None
    return 4  # unsupported: resynchronise on the next bytes


class RtuPty:
    def __init__(self, context: _PlantContext, node: int) -> None:
        self.context = context
        self.node = node
        self.path = ""
        self._master = -1
        self._slave = -1
        self._buf = b""
        self._task: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def start(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        os.set_blocking(self._master, False)
        asyncio.get_running_loop().add_reader(self._master, self._readable)
        self._task = asyncio.create_task(self._serve(), name="gfx4-rtu-pty")

    async def stop(self) -> None:
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 512)
        except (BlockingIOError, OSError):
            return
        self._buf += data
        while (n := _frame_length(self._buf)) is not None and len(self._buf) >= n:
            frame, self._buf = self._buf[:n], self._buf[n:]
            if frame[-2:] == crc16(frame[:-2]):
                self._queue.put_nowait(frame)
            else:
                self._buf = b""  # noise: wait for the line to go quiet, as a slave does

    async def _serve(self) -> None:
        while True:
            frame = await self._queue.get()
            reply = await self._answer(frame)
            if reply:
                os.write(self._master, reply + crc16(reply))

    async def _answer(self, f: bytes) -> bytes:
        unit, fc = f[0], f[1]
        if unit != self.node:
            return b""  # another node on the bus
        ctx = self.context
        addr, value = struct.unpack(">HH", f[2:6])
        rc: object
        if fc in (3, 4):
            rc = await ctx.async_getValues(unit, fc, addr, value)
            if isinstance(rc, list):
                regs = [int(v) for v in rc]
                return bytes([unit, fc, 2 * len(regs)]) + struct.pack(f">{len(regs)}H", *regs)
        elif fc == 6:
            rc = await ctx.async_setValues(unit, fc, addr, [value])
            if rc is None:
                return f[:6]
        elif fc == 16:
            regs = list(struct.unpack(f">{value}H", f[7 : 7 + 2 * value]))
            rc = await ctx.async_setValues(unit, fc, addr, regs)
            if rc is None:
                return f[:6]
        else:
            rc = ExcCodes.ILLEGAL_FUNCTION
        code = int(rc) if isinstance(rc, ExcCodes) else int(ExcCodes.DEVICE_FAILURE)
        return bytes([unit, fc | 0x80, code])
