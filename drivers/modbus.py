"""One physical Modbus link, shared by every driver that talks over it.

A ``ModbusBus`` is a TCP connection (Modbus TCP, MBAP framing) or an RS-485 line reached
through a serial device server (RTU framing over TCP, ADR 0021). Every request holds the
bus lock, so drivers sharing a line never interleave frames; every request has a wall-clock
deadline that covers the wait for the lock, a reconnect and every attempt; every failure
becomes a ``drivers.errors`` exception.

One lost frame costs one retry, not the link (ADR 0080): an attempt that gets no answer
within ``timeout_s`` is sent again on the same link, up to ``retries`` times, the last
attempt taking whatever is left of the call's deadline. Only when the call's deadline is
spent is the link dropped and re-opened on a later request, no sooner than a bounded
exponential backoff, so a device that is gone costs the 20 Hz loop one timeout and then a fast
``DeviceNotConnected``, not a timeout per cycle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

import structlog
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from drivers.errors import DeviceError, DeviceFault, DeviceNotConnected, DeviceTimeout

log = structlog.get_logger(__name__)

T = TypeVar("T")
Framing = Literal["tcp", "rtu"]

# After a request that got no answer, the next one gets this many attempt timeouts in all.
PROBE_ATTEMPTS = 1.5

# Modbus exception codes, as the devices' manuals name them.
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class ModbusBus:
    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        framing: Framing = "tcp",
        timeout_s: float = 0.2,
        retries: int = 1,
        backoff_min_s: float = 0.2,
        backoff_max_s: float = 5.0,
        rtu_settle_s: float = 0.05,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.framing = framing
        self.timeout_s = timeout_s
        self.retries = retries
        self._backoff_min = backoff_min_s
        self._backoff_max = backoff_max_s
        self._backoff = backoff_min_s
        # After a retry that succeeded on RTU, how long the line is kept quiet so a late
        # answer to the first attempt lands while no request is outstanding (and is dropped)
        # instead of passing for the answer to the next request: RTU frames carry no id.
        self.rtu_settle_s = rtu_settle_s
        self._retry_at = 0.0  # monotonic time before which no reconnect is tried
        self.retried = 0  # attempts sent again after no answer (a maintenance figure)
        self._timeouts = 0  # requests in a row whose deadline ran out without an answer
        self._client: AsyncModbusTcpClient | None = None
        self.lock = asyncio.Lock()
        self.last_ok: float | None = None  # monotonic time of the last good answer
        self.on_connect: list[Callable[[], Awaitable[None]]] = []
        self._users = 0

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def acquire(self) -> None:
        """A driver starts using the bus (the bus closes when the last one lets go)."""
        self._users += 1

    async def release(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users == 0:
            async with self.lock:
                self._drop()

    async def connect(self, device: str, timeout: float) -> None:
        async with self.lock:
            if not self.connected:
                self._retry_at = 0.0
                await self._open(device, timeout)

    async def reopen(self) -> None:
        """Drop the link now; the next request opens it again (and runs the on-connect hooks)."""
        async with self.lock:
            self._drop()
            self._retry_at = 0.0

    async def ensure(self, device: str, timeout: float) -> None:
        """Open the link if needed; call with ``lock`` held (for multi-request transactions)."""
        if not self.connected:
            await self._open(device, timeout)

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _failed(self) -> None:
        self._drop()
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2.0, self._backoff_max)

    async def _open(self, device: str, timeout: float) -> None:
        if time.monotonic() < self._retry_at:
            raise DeviceNotConnected(
                device,
                f"{self.host}:{self.port} down; next reconnect attempt in "
                f"{self._retry_at - time.monotonic():.1f} s",
            )
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            framer=FramerType.RTU if self.framing == "rtu" else FramerType.SOCKET,
            # pymodbus's own per-request wait must not cut an attempt short: each attempt is
            # bounded by ``_call`` (the last one by what is left of the call's deadline).
            timeout=max(self.timeout_s, timeout),
            retries=0,
            # Reconnection is ours (bounded backoff, reported to the caller), not pymodbus's.
            reconnect_delay=0.0,
            reconnect_delay_max=0.0,
            name=f"{self.name}",
        )
        try:
            ok = await asyncio.wait_for(client.connect(), timeout)
        except (TimeoutError, OSError, ModbusException) as exc:
            client.close()
            self._failed()
            raise DeviceNotConnected(
                device, f"cannot connect to {self.host}:{self.port}: {exc}"
            ) from exc
        except BaseException:  # cancelled (the monitor's cycle ended): not the device's fault
            client.close()
            raise
        if not ok:
            client.close()
            self._failed()
            raise DeviceNotConnected(device, f"cannot connect to {self.host}:{self.port}")
        self._client = client
        self._backoff = self._backoff_min
        log.info("modbus_connected", bus=self.name, host=self.host, port=self.port)
        try:
            for hook in self.on_connect:
                # Runs under the bus lock: a device that must be configured on every connect
                # (the WAGO watchdog) is configured before anybody else's request goes out.
                await hook()
        except BaseException:
            # A configuration that did not complete (an error, a timeout, a cancelled read)
            # must run again in full: a link left open would pass for a configured one (a
            # WAGO watchdog half armed). The next request re-opens it.
            self._drop()
            raise

    async def call(
        self,
        device: str,
        what: str,
        request: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]],
        timeout: float,
        *,
        locked: bool = False,
    ) -> ModbusPDU:
        """Send one request; returns the response PDU, or raises a DeviceError.

        ``timeout`` bounds the whole call: the wait for the bus, a reconnect if the link is
        down, and every attempt. ``locked``: the caller holds the bus lock (a transaction).
        """
        if self._timeouts:
            # The last request got no answer: this one probes with one attempt (and room for
            # an RTU re-connect), so a device that is gone costs one full read budget and
            # then a short one before it is a fast DeviceNotConnected (ADR 0080, 0100).
            timeout = min(timeout, PROBE_ATTEMPTS * self.timeout_s)
        deadline = time.monotonic() + timeout
        if locked:
            return await self._call(device, what, request, timeout, deadline)
        try:
            # Another driver's transaction (the GFX4's write and read-back, the WAGO's reads
            # queued by one monitor cycle) must not stretch this call past its own timeout.
            async with asyncio.timeout(timeout):
                await self.lock.acquire()
        except TimeoutError as exc:
            raise DeviceTimeout(
                device, f"{what}: bus {self.name} busy for {timeout:g} s (another request)"
            ) from exc
        try:
            if not self.connected:
                await self._reopen_within(device, what, deadline)
            return await self._call(device, what, request, timeout, deadline)
        finally:
            self.lock.release()

    async def _reopen_within(self, device: str, what: str, deadline: float) -> None:
        """Re-open the link (and run the on-connect hooks) inside a request's deadline.

        A device server that accepts the connection while the device behind it stays silent
        would otherwise hold the request for every hook's own timeout: the monitor's read of
        that device, and with it every snapshot, would go stale (ADR 0080). ``connect()``
        keeps its own, longer budget for the first connection.
        """
        left = deadline - time.monotonic()
        if left <= 0:  # the wait for the bus took it all: not the device's fault, no backoff
            raise DeviceTimeout(
                device, f"{what}: no time left to reconnect to {self.host}:{self.port}"
            )
        try:
            async with asyncio.timeout(left):
                await self._open(device, left)
        except TimeoutError as exc:
            self._failed()
            raise DeviceTimeout(
                device,
                f"{what}: reconnecting to {self.host}:{self.port} took longer than the request",
            ) from exc

    async def _call(
        self,
        device: str,
        what: str,
        request: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]],
        timeout: float,
        deadline: float,
    ) -> ModbusPDU:
        attempt = 0
        while True:
            client = self._client
            if client is None:
                raise DeviceNotConnected(device, f"{self.host}:{self.port} not connected")
            left = deadline - time.monotonic()
            last = attempt >= self.retries
            # Every attempt but the last gets ``timeout_s``; the last gets what is left, so a
            # slow answer is not cut short when no further attempt could follow it anyway.
            wait = left if last else min(left, self.timeout_s)
            try:
                rsp = await asyncio.wait_for(request(client), max(0.001, wait))
            except asyncio.CancelledError:
                self._abandoned(device, what)
                raise
            except (TimeoutError, ModbusException, OSError) as exc:
                attempt += 1
                if not last and deadline - time.monotonic() > 0.01 and client.connected:
                    # TCP: the retry gets a new transaction id, a late answer to the first
                    # attempt is skipped by the framer. RTU: the same request goes out again,
                    # so a late answer to the first attempt answers the same question.
                    self.retried += 1
                    log.warning(
                        "modbus_retry",
                        bus=self.name,
                        device=device,
                        what=what,
                        error=str(exc) or type(exc).__name__,
                    )
                    continue
                timed_out = (
                    isinstance(exc, TimeoutError)
                    or "timeout" in str(exc).lower()
                    or "No response" in str(exc)
                )
                if timed_out and client.connected and self._timeouts == 0:
                    # The call's deadline is spent, once: a late answer (a starved host, a
                    # busy device) is not a lost device. The next request probes at once (see
                    # ``call``), with no backoff; on RTU on a fresh link, so the late answer,
                    # which has no transaction id, cannot pass for the next one (ADR 0080).
                    self._timeouts = 1
                    if self.framing == "rtu":
                        self._drop()
                    raise DeviceTimeout(device, f"{what}: no answer within {timeout:g} s") from exc
                # Again, or the link broke: the device is not answering. Drop the link and
                # re-open it no sooner than the backoff, so a device that is gone costs one
                # timeout, then a fast DeviceNotConnected per request.
                self._timeouts += 1 if timed_out else 0
                self._failed()
                if timed_out:
                    raise DeviceTimeout(device, f"{what}: no answer within {timeout:g} s") from exc
                raise DeviceNotConnected(device, f"{what}: {exc}") from exc
            if attempt and self.framing == "rtu" and self.rtu_settle_s > 0:
                try:
                    await asyncio.sleep(
                        min(self.rtu_settle_s, max(0.0, deadline - time.monotonic()))
                    )
                except asyncio.CancelledError:
                    self._abandoned(device, what)  # the first attempt's answer may still come
                    raise
            self._timeouts = 0
            if isinstance(rsp, ExceptionResponse) or rsp.isError():
                code = getattr(rsp, "exception_code", 0)
                self.last_ok = time.monotonic()
                raise DeviceFault(
                    device,
                    f"{what}: Modbus exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})",
                )
            self.last_ok = time.monotonic()
            return rsp

    def _abandoned(self, device: str, what: str) -> None:
        """A request was cancelled while its answer may still be on its way.

        TCP: the answer carries the request's transaction id and the framer skips it, the
        link stays. RTU has no id: the late answer would pass for the next request's, so the
        link is dropped (at once, no backoff: nobody said the device is gone) and the next
        request re-opens it, with the device's on-connect configuration.
        """
        if self.framing == "rtu":
            self._drop()
        log.info("modbus_request_cancelled", bus=self.name, device=device, what=what)

    # Convenience wrappers; addresses are 0-based protocol addresses.

    async def read_holding(
        self,
        device: str,
        device_id: int,
        address: int,
        count: int,
        timeout: float,
        *,
        locked: bool = False,
    ) -> list[int]:
        rsp = await self.call(
            device,
            f"read holding registers {address}+{count}",
            lambda c: c.read_holding_registers(address, count=count, device_id=device_id),
            timeout,
            locked=locked,
        )
        return _checked(device, list(rsp.registers), count, "registers")

    async def read_input(
        self, device: str, device_id: int, address: int, count: int, timeout: float
    ) -> list[int]:
        rsp = await self.call(
            device,
            f"read input registers {address}+{count}",
            lambda c: c.read_input_registers(address, count=count, device_id=device_id),
            timeout,
        )
        return _checked(device, list(rsp.registers), count, "registers")

    async def read_discrete(
        self, device: str, device_id: int, address: int, count: int, timeout: float
    ) -> list[bool]:
        rsp = await self.call(
            device,
            f"read discrete inputs {address}+{count}",
            lambda c: c.read_discrete_inputs(address, count=count, device_id=device_id),
            timeout,
        )
        return _checked(device, list(rsp.bits), count, "bits")[:count]

    async def read_coils(
        self, device: str, device_id: int, address: int, count: int, timeout: float
    ) -> list[bool]:
        rsp = await self.call(
            device,
            f"read coils {address}+{count}",
            lambda c: c.read_coils(address, count=count, device_id=device_id),
            timeout,
        )
        return _checked(device, list(rsp.bits), count, "bits")[:count]

    async def write_coil(
        self, device: str, device_id: int, address: int, value: bool, timeout: float
    ) -> None:
        await self.call(
            device,
            f"write coil {address}",
            lambda c: c.write_coil(address, value, device_id=device_id),
            timeout,
        )

    async def write_register(
        self,
        device: str,
        device_id: int,
        address: int,
        value: int,
        timeout: float,
        *,
        locked: bool = False,
    ) -> None:
        await self.call(
            device,
            f"write register {address}",
            lambda c: c.write_register(address, value, device_id=device_id),
            timeout,
            locked=locked,
        )

    async def write_registers(
        self,
        device: str,
        device_id: int,
        address: int,
        values: list[int],
        timeout: float,
        *,
        locked: bool = False,
    ) -> None:
        await self.call(
            device,
            f"write registers {address}+{len(values)}",
            lambda c: c.write_registers(address, values, device_id=device_id),
            timeout,
            locked=locked,
        )


def _checked(device: str, values: list[T], count: int, kind: str) -> list[T]:
    if len(values) < count:
        raise DeviceError(device, f"short answer: {len(values)} {kind} for {count} asked")
    return values
