"""Typed async interfaces of every device class the bonder drives.

Every call takes a ``timeout`` in seconds (wall time) and raises only
``drivers.errors.DeviceError`` subclasses. Real drivers and simulated twins implement
the same protocols, so the daemon cannot tell them apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from drivers.reading import Reading

DEFAULT_TIMEOUT_S = 1.0

# Names of the valves and digital I/O points, shared by the daemon, the plant and the config.
# The thermocouple channels of the machine, in the order of the TC module's inputs.
TC_CHANNELS: Final = ("chip", "component", "chuck")


def panel_reference_site(rows: int, cols: int) -> int:
    """The site of a panel the ``chip`` thermocouple sits on: the centre (row-major middle;
    of an even layout's four central sites the upper left). docs/panel.md."""
    return ((rows - 1) // 2) * cols + (cols - 1) // 2


def site_channel(site: int, reference: int) -> str:
    """The thermocouple channel of a panel's instrumented site: the reference site is the
    machine's ``chip`` channel, every other one ``site_<n>`` (row-major site number)."""
    return "chip" if site == reference else f"site_{site}"


VALVE_N2_PURGE = "n2_purge"  # N2 into the working space
VALVE_VENT = "vent"  # working space to atmosphere (N2 vent line)
VALVE_PUMP = "pump_isolation"  # open = the pump is connected to the working space
VALVES = (VALVE_N2_PURGE, VALVE_VENT, VALVE_PUMP)

IN_ESTOP_OK = "estop_ok"  # E-stop chain closed (True = not pressed)
IN_DOOR_CLOSED = "door_closed"
IN_CHILLER_FLOW = "chiller_flow"  # flow switch in the chuck coolant loop
# Vacuum switches of the lead-lift holds: True once the hold has pulled its vacuum.
IN_CHUCK_VACUUM_OK = "chuck_vacuum_ok"
IN_SUPPORT_VACUUM_OK = "support_vacuum_ok"
# Appended, never inserted: a point's position is its channel on the I/O coupler.
INPUTS = (
    IN_ESTOP_OK,
    IN_DOOR_CLOSED,
    IN_CHILLER_FLOW,
    IN_CHUCK_VACUUM_OK,
    IN_SUPPORT_VACUUM_OK,
)

OUT_LAMP_CONTACTOR = "lamp_contactor"
OUT_SCR_ENABLE = "scr_enable"
OUT_FILM_CLAMP = "film_clamp"
# Vacuum valves of the lead-lift holds: the chuck holds the chip side, the Z stage's head
# holds the support ("both sides held by vacuum").
OUT_CHUCK_VACUUM = "chuck_vacuum"
OUT_SUPPORT_VACUUM = "support_vacuum"
# Closes the UV source's remote-interlock circuit: de-energised (by the daemon, or by the
# coupler's watchdog) the source holds its shutter closed whatever it is told over its serial
# line, and closes it if open. The hardware dead-man of the UV exposure (ADR 0115).
OUT_UV_ENABLE = "uv_enable"
OUTPUTS = (
    OUT_LAMP_CONTACTOR,
    OUT_SCR_ENABLE,
    OUT_FILM_CLAMP,
    OUT_CHUCK_VACUUM,
    OUT_SUPPORT_VACUUM,
    OUT_UV_ENABLE,
)


@runtime_checkable
class Device(Protocol):
    @property
    def name(self) -> str: ...

    async def connect(self, timeout: float = DEFAULT_TIMEOUT_S) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class Identifiable(Protocol):
    """A device that can say what it is: make, model, serial number, firmware.

    Optional, and kept apart from :class:`Device` so that no driver has to implement it: the
    run record stores whatever identity each driver reports (traceability), and "not
    reported" for the others.
    """

    async def identify(self, timeout: float = DEFAULT_TIMEOUT_S) -> str:
        """One line naming the device and its firmware, as read from the device."""


class LampBank(Device, Protocol):
    """SCR power controllers of the IR lamp zones."""

    @property
    def zones(self) -> int: ...

    async def set_power(self, pct: Sequence[float], timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Command each zone's output power, 0..100 %."""

    async def read_power(self, timeout: float = DEFAULT_TIMEOUT_S) -> list[Reading]:
        """The output power each zone delivers now, %."""


class Thermocouples(Device, Protocol):
    @property
    def channels(self) -> tuple[str, ...]: ...

    async def read(self, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Reading]:
        """Every channel in °C; an open thermocouple reads with status FAULT."""


class VacuumGauge(Device, Protocol):
    async def read(self, timeout: float = DEFAULT_TIMEOUT_S) -> Reading:
        """Working-space pressure, mbar."""


# The status records are not frozen (like Reading): the monitor builds five per cycle, 20 times
# a second, and a frozen dataclass's __init__ costs ~4x; nothing mutates or hashes them
# (docs/adr/0085).
@dataclass(slots=True)
class PumpStatus:
    running: bool
    fault: bool
    detail: str = ""


class Pump(Device, Protocol):
    async def start(self, timeout: float = DEFAULT_TIMEOUT_S) -> None: ...

    async def stop(self, timeout: float = DEFAULT_TIMEOUT_S) -> None: ...

    async def status(self, timeout: float = DEFAULT_TIMEOUT_S) -> PumpStatus: ...


class Valves(Device, Protocol):
    async def set(self, valve: str, open_: bool, timeout: float = DEFAULT_TIMEOUT_S) -> None: ...

    async def states(self, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, bool]: ...


@dataclass(slots=True)
class ChillerStatus:
    temperature: Reading  # bath / outlet temperature, °C
    setpoint_c: float
    running: bool
    fault: bool
    detail: str = ""


class Chiller(Device, Protocol):
    async def set_setpoint(self, celsius: float, timeout: float = DEFAULT_TIMEOUT_S) -> None: ...

    async def start(self, timeout: float = DEFAULT_TIMEOUT_S) -> None: ...

    async def stop(self, timeout: float = DEFAULT_TIMEOUT_S) -> None: ...

    async def status(self, timeout: float = DEFAULT_TIMEOUT_S) -> ChillerStatus: ...


class OxygenAnalyzer(Device, Protocol):
    async def read(self, timeout: float = DEFAULT_TIMEOUT_S) -> Reading:
        """O2 in ppm; STALE while the analyzer is not measuring (never a fake 0 ppm)."""


@dataclass(slots=True)
class StageStatus:
    position_um: Reading
    force_n: Reading
    busy: bool
    homed: bool
    fault: bool
    detail: str = ""


class ZStage(Device, Protocol):
    async def home(self, timeout: float = DEFAULT_TIMEOUT_S) -> None: ...

    async def move_abs(
        self,
        position_um: float,
        speed_um_s: float,
        timeout: float = DEFAULT_TIMEOUT_S,
        *,
        accel_um_s2: float | None = None,
    ) -> None:
        """Start a trapezoidal move; returns once the move is accepted, not when it ends.

        ``accel_um_s2`` is the move's acceleration and deceleration; None = the stage's
        configured default.
        """

    async def stop(self, timeout: float = DEFAULT_TIMEOUT_S) -> None: ...

    async def status(self, timeout: float = DEFAULT_TIMEOUT_S) -> StageStatus: ...


@dataclass(slots=True)
class UvStatus:
    shutter_open: bool
    irradiance_mw_cm2: float
    lamp_ready: bool
    fault: bool
    detail: str = ""


class UvSource(Device, Protocol):
    async def set_irradiance(self, mw_cm2: float, timeout: float = DEFAULT_TIMEOUT_S) -> None: ...

    async def open_shutter(self, timeout: float = DEFAULT_TIMEOUT_S) -> None: ...

    async def close_shutter(self, timeout: float = DEFAULT_TIMEOUT_S) -> None: ...

    async def status(self, timeout: float = DEFAULT_TIMEOUT_S) -> UvStatus: ...


@dataclass(slots=True)
class DispenserStatus:
    dispensing: bool
    pressure_kpa: float
    fault: bool
    detail: str = ""


class Dispenser(Device, Protocol):
    async def set_pressure(self, kpa: float, timeout: float = DEFAULT_TIMEOUT_S) -> None: ...

    async def dispense(self, duration_s: float, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Start a timed shot; returns once the shot is triggered."""

    async def stop(self, timeout: float = DEFAULT_TIMEOUT_S) -> None: ...

    async def status(self, timeout: float = DEFAULT_TIMEOUT_S) -> DispenserStatus: ...


class DigitalIO(Device, Protocol):
    async def read_inputs(self, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, bool]: ...

    async def write_output(
        self, name: str, on: bool, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None: ...

    async def read_outputs(self, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, bool]: ...


@dataclass(slots=True)
class Machine:
    """One instance of every device the bonder has."""

    lamps: LampBank
    thermocouples: Thermocouples
    gauge: VacuumGauge
    pump: Pump
    valves: Valves
    chiller: Chiller
    o2: OxygenAnalyzer
    zstage: ZStage
    uv: UvSource
    dispenser: Dispenser
    dio: DigitalIO

    def devices(self) -> list[Device]:
        return [
            self.dio,
            self.lamps,
            self.thermocouples,
            self.gauge,
            self.pump,
            self.valves,
            self.chiller,
            self.o2,
            self.zstage,
            self.uv,
            self.dispenser,
        ]
