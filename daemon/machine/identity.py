"""Device identities for the run record (traceability): what each driver says it is."""

from __future__ import annotations

from typing import Final

from drivers.errors import DeviceError
from drivers.protocols import DEFAULT_TIMEOUT_S, Identifiable, Machine

NOT_REPORTED: Final = "not reported by the driver"


async def identify_machine(machine: Machine, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, str]:
    """Ask every device that can say who it is; never raises.

    A device that cannot answer gets a line saying why instead of an identity: a run must not
    be refused for want of a serial number, and the record then shows the gap honestly.
    Devices are asked one after the other, as the monitor does for the simulated plant.
    """
    out: dict[str, str] = {}
    for device in machine.devices():
        if not isinstance(device, Identifiable):
            out[device.name] = NOT_REPORTED
            continue
        try:
            out[device.name] = await device.identify(timeout)
        except DeviceError as exc:
            out[device.name] = f"unavailable: {exc}"
        except Exception as exc:  # a driver bug must not stop the run from being recorded
            out[device.name] = f"unavailable: {type(exc).__name__}: {exc}"
    return out
