"""Reading the whole machine in one call: what a simulated machine offers the monitor.

A real machine is read device by device, concurrently, each call with its own timeout. A
simulated one can answer every read of a control cycle from one integration of the plant:
``ReadsAll.read_all`` does that, with each device's faults (not connected, not answering,
its own fault states) exactly as its single reads show them. The monitor uses it when the
machine has it and reads sequentially (drivers/sim/devices.py: ``SimMachine``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from drivers.protocols import ChillerStatus, DispenserStatus, PumpStatus, StageStatus, UvStatus
from drivers.reading import Reading

# The keys of ``MachineReadings.errors``: one per read of a monitor cycle. The coupler's
# inputs and outputs are two reads on the real machine (two Modbus function codes).
READ_KEYS = (
    "tc",
    "gauge",
    "o2",
    "lamps",
    "pump",
    "valves",
    "chiller",
    "dio",
    "dio.outputs",
    "zstage",
    "uv",
    "dispenser",
)


@dataclass(slots=True)
class MachineReadings:
    """Every monitored value of one cycle; None where the device gave no reading."""

    temps: dict[str, Reading] | None
    pressure: Reading | None
    o2: Reading | None
    lamps: list[Reading] | None
    pump: PumpStatus | None
    valves: dict[str, bool] | None
    chiller: ChillerStatus | None
    inputs: dict[str, bool] | None
    outputs: dict[str, bool] | None
    stage: StageStatus | None
    uv: UvStatus | None
    dispenser: DispenserStatus | None
    errors: dict[str, str]  # READ_KEYS entry -> why it gave no reading (the DeviceError text)

    @classmethod
    def of(cls, values: list[Any], errors: dict[str, str]) -> MachineReadings:
        """From one value per read in READ_KEYS order (None where it gave no reading)."""
        tc, gauge, o2, lamps, pump, valves, chiller, ins, outs, stage, uv, disp = values
        return cls(tc, gauge, o2, lamps, pump, valves, chiller, ins, outs, stage, uv, disp, errors)


@runtime_checkable
class ReadsAll(Protocol):
    async def read_all(self, timeout: float) -> MachineReadings:
        """Read every device once. ``timeout`` is the read budget of the whole call: a
        device that does not answer costs it once, however many do not, and is reported
        in ``errors``; the others' readings are those of the call's start."""
        ...
