"""Thermocouples driver of the ADAM-6018+: one read of the values, one of the status."""

from __future__ import annotations

from collections.abc import Mapping

from drivers.adam import registers as r
from drivers.clock import Clock
from drivers.modbus import ModbusBus
from drivers.protocols import DEFAULT_TIMEOUT_S
from drivers.reading import Reading, Status


class Adam6018:
    def __init__(
        self,
        bus: ModbusBus,
        clock: Clock,
        channels: Mapping[str, int],
        *,
        device_id: int = 1,
        range_min_c: float = r.TYPE_K_MIN_C,
        range_max_c: float = r.TYPE_K_MAX_C,
        name: str = "tc",
    ) -> None:
        for ch, idx in channels.items():
            if not 0 <= idx < r.CHANNELS:
                raise ValueError(f"channel {ch!r}: input {idx} outside 0..{r.CHANNELS - 1}")
        self._bus = bus
        self._clock = clock
        self._map = dict(channels)
        self._dev = device_id
        self._lo = range_min_c
        self._span = range_max_c - range_min_c
        self._name = name
        bus.acquire()

    @property
    def name(self) -> str:
        return self._name

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self._map)

    async def connect(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._bus.connect(self._name, timeout)

    async def close(self) -> None:
        await self._bus.release()

    def raw_to_c(self, raw: int) -> float:
        return self._lo + raw / r.RAW_FULL_SCALE * self._span

    async def read(self, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Reading]:
        started = self._clock.now()
        raw = await self._bus.read_holding(
            self._name, self._dev, r.AI_VALUE_BASE, r.CHANNELS, timeout
        )
        st = await self._bus.read_holding(
            self._name, self._dev, r.AI_STATUS_BASE, 2 * r.CHANNELS, timeout
        )
        out: dict[str, Reading] = {}
        for ch, idx in self._map.items():
            status = st[2 * idx] | (st[2 * idx + 1] << 16)
            value = round(self.raw_to_c(raw[idx]), 2)
            if status & r.STATUS_OPEN_CIRCUIT:
                out[ch] = Reading(value, started, Status.FAULT, "open thermocouple (burnout)")
            elif status & (r.STATUS_FAILED | r.STATUS_ADC_FAILED):
                out[ch] = Reading(
                    value, started, Status.FAULT, f"input failed (status 0x{status:x})"
                )
            elif status & (r.STATUS_OVER_RANGE | r.STATUS_UNDER_RANGE):
                side = "over" if status & r.STATUS_OVER_RANGE else "under"
                out[ch] = Reading(value, started, Status.FAULT, f"{side} range")
            else:
                out[ch] = Reading(value, started)
        return out
