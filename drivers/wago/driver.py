"""Driver of the WAGO 750-352 coupler: DigitalIO, and the valves wired to its outputs.

The coupler's Modbus watchdog is armed on every connect (ADR 0022): if the daemon stops
talking for ``watchdog_s``, the coupler drops every output (lamp contactor, SCR enable,
valves) on its own. Every request retriggers it (function-code mask 0xFFFF), so the
monitor's 20 Hz reads keep it alive and nothing else has to.
"""

from __future__ import annotations

import math

from drivers.clock import Clock
from drivers.errors import DeviceFault, InvalidCommand
from drivers.modbus import ModbusBus
from drivers.protocols import DEFAULT_TIMEOUT_S, VALVES
from drivers.reading import Reading, Status
from drivers.wago import registers as r

# Every output that is not a valve belongs to DigitalIO (lamp contactor, SCR enable, film
# clamp, vacuum hold-downs), in channel order.
DIO_OUTPUTS = tuple(n for n in r.OUTPUT_CHANNELS if n not in VALVES)


class WagoCoupler:
    """The coupler itself; ``WagoDigitalIO`` and ``WagoValves`` are views of it."""

    def __init__(self, bus: ModbusBus, *, device_id: int = 1, watchdog_s: float = 1.0) -> None:
        if not 0.1 <= watchdog_s <= 6553.5:
            raise ValueError(f"watchdog_s = {watchdog_s} outside 0.1..6553.5")
        self.bus = bus
        self.device_id = device_id
        self.watchdog_s = watchdog_s
        self.watchdog_armed = False
        bus.on_connect.append(self._arm_watchdog)

    async def _arm_watchdog(self) -> None:
        """Runs under the bus lock right after every (re)connect."""
        b, dev, t = self.bus, self.device_id, self.bus.timeout_s * 4
        name = "dio"
        # Stopping first clears an exhausted watchdog from an earlier session, so the time
        # and mask registers accept writes again (they are locked while it runs).
        await b.write_register(name, dev, r.WD_AC_STOP_SIMPLE, r.WD_STOP_KEY, t, locked=True)
        await b.write_register(name, dev, r.WD_FC_MASK, r.WD_MASK_ALL, t, locked=True)
        await b.write_register(name, dev, r.WD_TIME, round(self.watchdog_s * 10), t, locked=True)
        # The watchdog starts on a *change* of the trigger register: a daemon reconnecting
        # to a coupler that an earlier session armed must not write the value it holds.
        held = await b.read_holding(name, dev, r.WD_TRIGGER, 1, t, locked=True)
        await b.write_register(name, dev, r.WD_TRIGGER, (held[0] + 1) & 0xFFFF, t, locked=True)
        status = await b.read_holding(name, dev, r.WD_RUNNING, 1, t, locked=True)
        if status[0] != r.WD_STATUS_ACTIVE:
            raise DeviceFault(name, f"watchdog did not start (status {status[0]})")
        self.watchdog_armed = True

    async def connect(self, timeout: float) -> None:
        await self.bus.connect("dio", timeout)

    async def read_outputs(self, device: str, timeout: float) -> list[bool]:
        return await self.bus.read_coils(
            device, self.device_id, r.OUTPUTS_READBACK_BASE, r.N_OUTPUTS, timeout
        )

    async def write_output(self, device: str, channel: int, on: bool, timeout: float) -> None:
        try:
            await self.bus.write_coil(device, self.device_id, r.OUTPUTS_BASE + channel, on, timeout)
        except DeviceFault as exc:
            # A coupler whose watchdog ran out refuses output writes (exception 4) until it
            # is re-armed, which only a reconnect does: say so instead of "device failure".
            status = await self.bus.read_holding(device, self.device_id, r.WD_RUNNING, 1, timeout)
            if status[0] == r.WD_STATUS_EXHAUSTED:
                self.watchdog_armed = False
                # Only a new session re-arms it: the next request reconnects. The outputs stay
                # off until somebody writes them again, which the interlocks and steps decide.
                await self.bus.reopen()
                raise DeviceFault(
                    device,
                    f"output {channel} refused: the coupler's watchdog expired (no request for "
                    f"{self.watchdog_s:g} s), every output is off; the link is re-opened and the watchdog re-armed",
                ) from exc
            raise

    async def read_inputs(self, device: str, timeout: float) -> list[bool]:
        return await self.bus.read_discrete(
            device, self.device_id, r.INPUTS_BASE, r.N_INPUTS, timeout
        )

    async def read_analog(self, device: str, timeout: float) -> list[int]:
        """Every analog input channel's raw process value (750-455 format)."""
        return await self.bus.read_input(device, self.device_id, r.AI_BASE, r.N_AI, timeout)


class WagoDigitalIO:
    def __init__(self, coupler: WagoCoupler, name: str = "dio") -> None:
        self._c = coupler
        self._name = name
        coupler.bus.acquire()

    @property
    def name(self) -> str:
        return self._name

    async def connect(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._c.connect(timeout)

    async def close(self) -> None:
        await self._c.bus.release()

    async def read_inputs(self, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, bool]:
        bits = await self._c.read_inputs(self._name, timeout)
        return {name: bits[ch] for name, ch in r.INPUT_CHANNELS.items()}

    async def write_output(self, name: str, on: bool, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if name not in DIO_OUTPUTS:
            raise InvalidCommand(
                self._name, f"name: unknown output {name!r} (known: {', '.join(DIO_OUTPUTS)})"
            )
        await self._c.write_output(self._name, r.OUTPUT_CHANNELS[name], bool(on), timeout)

    async def read_outputs(self, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, bool]:
        bits = await self._c.read_outputs(self._name, timeout)
        return {name: bits[r.OUTPUT_CHANNELS[name]] for name in DIO_OUTPUTS}

    async def identify(self, timeout: float = DEFAULT_TIMEOUT_S) -> str:
        rev, series, item, major, minor = await self._c.bus.read_holding(
            self._name, self._c.device_id, r.INFO_REVISION, 5, timeout
        )
        return f"WAGO {series}-{item}, firmware {major}.{minor} (index {rev})"


class WagoValves:
    def __init__(self, coupler: WagoCoupler, name: str = "valves") -> None:
        self._c = coupler
        self._name = name
        coupler.bus.acquire()

    @property
    def name(self) -> str:
        return self._name

    async def connect(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._c.connect(timeout)

    async def close(self) -> None:
        await self._c.bus.release()

    async def set(self, valve: str, open_: bool, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if valve not in VALVES:
            raise InvalidCommand(
                self._name, f"valve: unknown valve {valve!r} (known: {', '.join(VALVES)})"
            )
        await self._c.write_output(self._name, r.OUTPUT_CHANNELS[valve], bool(open_), timeout)

    async def states(self, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, bool]:
        bits = await self._c.read_outputs(self._name, timeout)
        return {v: bits[r.OUTPUT_CHANNELS[v]] for v in VALVES}


class WagoLoadCell:
    """A load cell's amplifier (4-20 mA = 0..``full_scale_n``) on a 750-455 analog input.

    Serves the Z stage's force (``drivers.zaber.driver.ForceSource``). A current below 4 mA
    (wire break, amplifier unpowered) or above 20 mA reads FAULT, never a plausible force.
    """

    def __init__(
        self,
        coupler: WagoCoupler,
        clock: Clock,
        *,
        channel: int = r.AI_LOAD_CELL,
        full_scale_n: float,
        zero_offset_n: float = 0.0,
        name: str = "zstage.force",
    ) -> None:
        if not 0 <= channel < r.N_AI:
            raise ValueError(f"channel = {channel} outside 0..{r.N_AI - 1}")
        if not (math.isfinite(full_scale_n) and full_scale_n > 0):
            raise ValueError(f"full_scale_n = {full_scale_n}: must be > 0")
        self._c = coupler
        self._clock = clock
        self._channel = channel
        self._full = full_scale_n
        self._zero = zero_offset_n
        self._name = name

    async def read_force(self, timeout: float) -> Reading:
        started = self._clock.now()
        raw = (await self._c.read_analog(self._name, timeout))[self._channel]
        status = raw & r.AI_STATUS_MASK
        force = (raw & ~r.AI_STATUS_MASK) / r.AI_FULL_SCALE * self._full - self._zero
        if status == r.AI_UNDERRANGE:
            return Reading(force, started, Status.FAULT, "load cell below 4 mA (wire break)")
        if status & r.AI_OVERRANGE:
            return Reading(force, started, Status.FAULT, "load cell above 20 mA (overload)")
        return Reading(round(force, 4), started)
