"""One serial line (RS-232 port, or a device server's TCP socket opened as ``socket://``).

Request/response ASCII devices share these rules: one exchange at a time (the line lock), at
least ``min_gap_s`` between the end of one exchange and the next command where the manual asks
for it (Julabo: 250 ms), a wall-clock timeout on every answer, a line that broke is re-opened
on the next call after a bounded backoff, and every failure is a ``drivers.errors`` exception.
One answer that does not come in time re-opens the line at once (no backoff) and the next
exchange probes briefly: only a second one in a row is a line that stopped answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import serial_asyncio_fast
import structlog

from drivers.errors import DeviceNotConnected, DeviceTimeout

log = structlog.get_logger(__name__)

PARITIES = ("N", "E", "O")  # pyserial's own parity codes


class SerialLine:
    def __init__(
        self,
        device: str,
        url: str,
        *,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: int = 1,
        eol: bytes = b"\r",
        min_gap_s: float = 0.0,
        backoff_min_s: float = 0.2,
        backoff_max_s: float = 5.0,
        probe_s: float = 0.3,
    ) -> None:
        self.device = device
        self.url = url
        if parity not in PARITIES:
            raise ValueError(f"parity = {parity!r}: expected one of {', '.join(PARITIES)}")
        self._baudrate, self._bytesize, self._parity, self._stopbits = (
            baudrate,
            bytesize,
            parity,
            stopbits,
        )
        self.eol = eol
        self.min_gap_s = min_gap_s
        self.lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._last_end = 0.0  # monotonic end of the last exchange
        self._backoff_min = backoff_min_s
        self._backoff_max = backoff_max_s
        self._backoff = backoff_min_s
        self._retry_at = 0.0
        self.on_connect: list[Callable[[], Awaitable[None]]] = []
        # Exchanges in a row that got no answer in time. The first is a late answer (a
        # starved host, a busy device), not a lost device: the line is re-opened at once
        # (a late answer must not pass for the next one) and the next exchange probes with
        # at most ``probe_s``; a second one in a row starts the backoff (ADR 0080).
        self._timeouts = 0
        self.probe_s = probe_s

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self, timeout: float) -> None:
        async with self.lock:
            self._retry_at = 0.0
            if not self.connected:
                await self._open(timeout)

    async def close(self) -> None:
        async with self.lock:
            await self._drop()

    async def _drop(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):  # the line is gone either way
                await asyncio.wait_for(writer.wait_closed(), 0.5)

    def _close_now(self) -> None:
        """Drop the line without waiting for the close (safe in a cancelled task)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()

    async def _failed(self) -> None:
        await self._drop()
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2.0, self._backoff_max)

    async def _open(self, timeout: float) -> None:
        if time.monotonic() < self._retry_at:
            raise DeviceNotConnected(
                self.device,
                f"{self.url} down; next reconnect attempt in {self._retry_at - time.monotonic():.1f} s",
            )
        try:
            self._reader, self._writer = await asyncio.wait_for(
                serial_asyncio_fast.open_serial_connection(
                    url=self.url,
                    baudrate=self._baudrate,
                    bytesize=self._bytesize,
                    parity=self._parity,
                    stopbits=self._stopbits,
                ),
                timeout,
            )
        except (TimeoutError, OSError, ValueError) as exc:  # SerialException is an OSError
            await self._failed()
            raise DeviceNotConnected(self.device, f"cannot open {self.url}: {exc}") from exc
        self._backoff = self._backoff_min
        log.info("serial_connected", device=self.device, url=self.url)
        try:
            for hook in self.on_connect:
                await hook()
        except BaseException:
            # What the device must be asked at connect (the TPG's units) is asked again in
            # full by the next exchange, not taken as known on a line left open.
            self._close_now()
            raise

    async def ensure(self, timeout: float) -> None:
        """Open the line if needed; call with the lock held."""
        if not self.connected:
            await self._open(timeout)

    def gap_elapsed(self) -> bool:
        """Whether a command may go out now without waiting for the device's minimum gap."""
        return time.monotonic() >= self._last_end + self.min_gap_s

    async def _gap(self) -> None:
        wait = self._last_end + self.min_gap_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)  # the device's own timing rule, wall time by nature

    async def send(self, data: bytes, timeout: float) -> None:
        """Write a command that has no answer (lock held by the caller)."""
        await self.ensure(timeout)
        await self._gap()
        assert self._writer is not None
        try:
            self._writer.write(data)
            await asyncio.wait_for(self._writer.drain(), timeout)
        except (TimeoutError, OSError) as exc:
            await self._failed()
            raise DeviceNotConnected(self.device, f"write failed: {exc}") from exc
        finally:
            self._last_end = time.monotonic()

    async def exchange(self, data: bytes, timeout: float, *, eol: bytes | None = None) -> bytes:
        """Write ``data`` and read one answer up to the end-of-line (lock held by the caller).

        The answer is returned without its terminator. Input left over from an earlier,
        abandoned exchange is discarded first so it cannot pass for this answer.
        """
        if self._timeouts:
            timeout = min(timeout, self.probe_s)
        await self.ensure(timeout)
        await self._gap()
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        end = eol if eol is not None else self.eol
        try:
            _discard(reader)
            writer.write(data)
            await writer.drain()
            line = await asyncio.wait_for(reader.readuntil(end), timeout)
        except TimeoutError as exc:
            self._timeouts += 1
            if self._timeouts == 1:
                await self._drop()  # re-opened by the next exchange, without a backoff
            else:
                await self._failed()
            raise DeviceTimeout(self.device, f"no answer to {data!r} within {timeout:g} s") from exc
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as exc:
            await self._failed()
            raise DeviceNotConnected(self.device, f"line lost during {data!r}: {exc}") from exc
        except asyncio.CancelledError:
            # Abandoned mid-exchange (the monitor's cycle ended): the answer may still come
            # and carries no echo of the question, so it must not reach the next exchange.
            # The line is re-opened by the next exchange, at once: nobody said it is gone.
            self._close_now()
            raise
        finally:
            self._last_end = time.monotonic()
        self._timeouts = 0
        return line[: -len(end)]

    async def readline(self, timeout: float) -> bytes:
        """Read one streamed line (for devices that talk without being asked)."""
        await self.ensure(timeout)
        reader = self._reader
        assert reader is not None
        try:
            line = await asyncio.wait_for(reader.readuntil(self.eol), timeout)
        except TimeoutError as exc:
            raise DeviceTimeout(self.device, f"no line within {timeout:g} s") from exc
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as exc:
            await self._failed()
            raise DeviceNotConnected(self.device, f"line lost: {exc}") from exc
        return line[: -len(self.eol)]


def _discard(reader: asyncio.StreamReader) -> None:
    buf = getattr(reader, "_buffer", None)
    if isinstance(buf, bytearray):
        buf.clear()
