"""Simulated drivers of the lead-lift devices: the Z stage with its load cell, the UV source,
the encapsulant dispenser (drivers/sim/devices.py has the rest and the machine).
"""

from __future__ import annotations

from drivers.errors import (
    DeviceFault,
    InvalidCommand,
)
from drivers.protocols import (
    DEFAULT_TIMEOUT_S,
    DispenserStatus,
    StageStatus,
    UvStatus,
)
from drivers.reading import Reading
from drivers.sim.device_base import _finite, _SimDevice
from drivers.sim.plant import Plant


class SimZStage(_SimDevice):
    def __init__(self, plant: Plant) -> None:
        super().__init__(plant, "zstage")
        # Position and force as last rounded, by the plant's float object: a stage at rest
        # (most of a run) reports the same objects cycle after cycle (see _sample_power).
        self._z_raw: float | None = None
        self._z_shown = 0.0
        self._f_raw: float | None = None
        self._f_shown = 0.0

    def _check_fault(self) -> None:
        if self._plant.zstage_failed:
            raise DeviceFault(self._name, "drive fault")

    async def home(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._begin(timeout)
        await self._exchange(timeout)
        self._check_fault()
        self._plant.z_home()

    async def move_abs(
        self,
        position_um: float,
        speed_um_s: float,
        timeout: float = DEFAULT_TIMEOUT_S,
        *,
        accel_um_s2: float | None = None,
    ) -> None:
        self._begin(timeout)
        p = self._plant.params
        pos = self._number("position_um", position_um, p.z_min_um, p.z_max_um)
        v = _finite(speed_um_s)
        if v is None or not 0.0 < v <= p.z_speed_max_um_s:
            raise InvalidCommand(
                self._name, f"speed_um_s = {speed_um_s!r} outside (0, {p.z_speed_max_um_s:g}]"
            )
        acc: float | None = None
        if accel_um_s2 is not None:
            acc = _finite(accel_um_s2)
            if acc is None or not 0.0 < acc <= p.z_accel_max_um_s2:
                raise InvalidCommand(
                    self._name,
                    f"accel_um_s2 = {accel_um_s2!r} outside (0, {p.z_accel_max_um_s2:g}]",
                )
        await self._exchange(timeout)
        self._check_fault()
        if not self._plant.z_homed:
            raise InvalidCommand(self._name, "not homed: home() before move_abs()")
        self._plant.z_move(pos, v, acc)

    async def stop(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._begin(timeout)
        await self._exchange(timeout)
        self._plant.z_stop()

    async def status(self, timeout: float = DEFAULT_TIMEOUT_S) -> StageStatus:
        self._begin(timeout)
        await self._exchange(timeout)
        return self._sample()

    def _sample(self) -> StageStatus:
        now = self._clock.now()
        failed = self._plant.zstage_failed
        z, f = self._plant.z_um, self._plant.force_n
        if z is not self._z_raw:
            self._z_raw, self._z_shown = z, round(z, 2)
        if f is not self._f_raw:
            self._f_raw, self._f_shown = f, round(f, 4)
        return StageStatus(
            position_um=Reading(self._z_shown, now),
            force_n=Reading(self._f_shown, now),
            busy=self._plant.z_moving,
            homed=self._plant.z_homed,
            fault=failed,
            detail="drive fault" if failed else "",
        )


class SimUvSource(_SimDevice):
    def __init__(self, plant: Plant) -> None:
        super().__init__(plant, "uv")

    async def set_irradiance(self, mw_cm2: float, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._begin(timeout)
        lim = self._plant.params.uv_irradiance_max_mw_cm2
        value = self._number("mw_cm2", mw_cm2, 0.0, lim)
        await self._exchange(timeout)
        self._plant.uv_set_irradiance(value)

    async def open_shutter(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._begin(timeout)
        await self._exchange(timeout)
        if self._plant.uv_failed:
            raise DeviceFault(self._name, "lamp failure: shutter stays closed")
        if not self._plant.uv_enabled:
            raise DeviceFault(self._name, "remote interlock open: shutter stays closed")
        self._plant.uv_shutter(True)

    async def close_shutter(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._begin(timeout)
        await self._exchange(timeout)
        self._plant.uv_shutter(False)

    async def status(self, timeout: float = DEFAULT_TIMEOUT_S) -> UvStatus:
        self._begin(timeout)
        await self._exchange(timeout)
        return self._sample()

    def _sample(self) -> UvStatus:
        failed = self._plant.uv_failed
        return UvStatus(
            shutter_open=self._plant.uv_shutter_open,
            # The source's own sensor: a lamp that went out delivers nothing.
            irradiance_mw_cm2=0.0 if failed else self._plant.uv_irradiance_mw_cm2,
            lamp_ready=not failed,
            fault=failed,
            detail="lamp failure" if failed else "",
        )


class SimDispenser(_SimDevice):
    def __init__(self, plant: Plant) -> None:
        super().__init__(plant, "dispenser")

    async def set_pressure(self, kpa: float, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._begin(timeout)
        value = self._number("kpa", kpa, 0.0, self._plant.params.dispense_pressure_max_kpa)
        await self._exchange(timeout)
        self._plant.dispenser_set_pressure(value)

    async def dispense(self, duration_s: float, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._begin(timeout)
        lim = self._plant.params.dispense_shot_max_s
        d = _finite(duration_s)
        if d is None or not 0.0 < d <= lim:
            raise InvalidCommand(self._name, f"duration_s = {duration_s!r} outside (0, {lim:g}]")
        await self._exchange(timeout)
        if self._plant.dispenser_failed:
            raise DeviceFault(self._name, "dispenser fault")
        self._plant.dispense(d)

    async def stop(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._begin(timeout)
        await self._exchange(timeout)
        self._plant.dispense_stop()

    async def status(self, timeout: float = DEFAULT_TIMEOUT_S) -> DispenserStatus:
        self._begin(timeout)
        await self._exchange(timeout)
        return self._sample()

    def _sample(self) -> DispenserStatus:
        failed = self._plant.dispenser_failed
        return DispenserStatus(
            dispensing=self._plant.dispensing,
            pressure_kpa=self._plant.dispenser_pressure_kpa,
            fault=failed,
            detail="dispenser fault" if failed else "",
        )
