"""Two thermocouple modules read as one: the machine's module and a second one for a panel's
instrumented sites (an ADAM-6018+ has eight inputs; docs/panel.md)."""

from __future__ import annotations

import asyncio

from drivers.protocols import DEFAULT_TIMEOUT_S, Thermocouples
from drivers.reading import Reading


class ThermocouplePair:
    """``first``'s channels, then ``second``'s; both read at once, each on its own link."""

    def __init__(self, first: Thermocouples, second: Thermocouples) -> None:
        both = set(first.channels) & set(second.channels)
        if both:
            raise ValueError(f"channel(s) {', '.join(sorted(both))} on both thermocouple modules")
        self._first, self._second = first, second

    @property
    def name(self) -> str:
        return self._first.name

    @property
    def channels(self) -> tuple[str, ...]:
        return self._first.channels + self._second.channels

    async def connect(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await asyncio.gather(self._first.connect(timeout), self._second.connect(timeout))

    async def close(self) -> None:
        await asyncio.gather(self._first.close(), self._second.close())

    async def read(self, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Reading]:
        a, b = await asyncio.gather(self._first.read(timeout), self._second.read(timeout))
        return {**a, **b}
