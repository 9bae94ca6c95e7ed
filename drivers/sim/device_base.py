"""What every simulated device shares: connection state, argument checks, injected silence,
the plant model's name in its identity, and the sensors' quantization (drivers/sim/devices.py).
"""

from __future__ import annotations

import math

from drivers.errors import (
    DeviceNotConnected,
    DeviceTimeout,
    InvalidCommand,
)
from drivers.protocols import (
    DEFAULT_TIMEOUT_S,
)
from drivers.sim.plant import Plant

# Names the plant model in device identities; bump it when the physics changes, so a record
# says which simulation produced it.
# 2: lead lift, holds, encapsulant, heat release, coalescence. 3: the working-space gas
# integrated exactly, 0.025 s substep (ADR 0121): the same physics, different numbers.
PLANT_MODEL = "3"


def _quantize(value: float, step: float) -> float:
    # The second round removes the binary noise of the multiplication (0.30000000000000004).
    k = round(value / step)
    exact = _DECIMAL_STEPS.get(step)
    if exact is not None and -exact[1] < k < exact[1]:
        return k / exact[0]
    return round(k * step, 6)


# Steps of 1/d, d a power of ten (0.1 °C, the usual resolution): (d, the bound on k). For
# such a step, round(k * step, 6) is the double nearest the decimal k/d (the product is
# within ~1e-16 relative of it, far inside the 0.5e-6 that rounding to six decimals
# forgives, for |k/d| < 1e6), and so is k / d: Python divides two ints correctly rounded.
# The same number, bit for bit (tests/test_sim_devices_quantize.py), without the decimal
# conversion round(x, 6) makes: ~0.7 µs, for every thermocouple reading (docs/adr/0106).
_DECIMAL_STEPS: dict[float, tuple[int, int]] = {
    1.0 / d: (d, d * 10**6) for d in (1, 10, 100, 1000, 10**4, 10**5, 10**6)
}


def _finite(value: object) -> float | None:
    """``value`` as a finite float, or None if it is not a real finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


class _SimDevice:
    """Connection state, argument checks and injected no-response shared by every device."""

    def __init__(self, plant: Plant, name: str) -> None:
        self._plant = plant
        self._clock = plant.clock
        self._name = name
        self._connected = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._check_timeout(timeout)
        await self._exchange(timeout)
        self._connected = True

    async def close(self) -> None:
        self._connected = False

    async def identify(self, timeout: float = DEFAULT_TIMEOUT_S) -> str:
        """``Identifiable``: says plainly that it is simulated, so no record can pass it off
        as a real instrument."""
        self._begin(timeout)
        await self._exchange(timeout)
        return f"simulated {type(self).__name__} ({self._name}), bonderd plant model {PLANT_MODEL}"

    def _check_timeout(self, timeout: float) -> None:
        if type(timeout) is float and 0.0 < timeout < math.inf:
            return  # the common case, checked on every call: no conversion
        t = _finite(timeout)
        if t is None or t <= 0.0:
            raise InvalidCommand(self._name, f"timeout must be a finite number > 0, got {timeout}")

    def _begin(self, timeout: float) -> None:
        """Checks every call makes before touching the device."""
        if not self._connected:
            raise self._not_connected_error()
        self._check_timeout(timeout)

    async def _exchange(self, timeout: float) -> None:
        """One request/response with the device: brings the plant up to now, or times out."""
        self._plant.advance()
        if self._plant.unresponsive(self._name):
            await self._clock.sleep(timeout)
            raise self._timeout_error(timeout)
        self._answered()

    def _timeout_error(self, timeout: float) -> DeviceTimeout:
        return DeviceTimeout(self._name, f"no response within {timeout:g} s")

    def _not_connected_error(self) -> DeviceNotConnected:
        return DeviceNotConnected(self._name, "not connected (call connect() first)")

    def _answered(self) -> None:
        """The device answered a request (the I/O coupler re-arms its watchdog)."""

    def _number(self, arg: str, value: object, lo: float, hi: float) -> float:
        v = _finite(value)
        if v is None or not lo <= v <= hi:
            raise InvalidCommand(self._name, f"{arg} = {value!r} outside {lo:g}..{hi:g}")
        return v
