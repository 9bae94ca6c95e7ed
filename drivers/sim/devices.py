"""Simulated drivers: every device protocol implemented on top of the plant.

They behave like the real drivers as seen from the daemon: a call before ``connect()`` raises
DeviceNotConnected, bad arguments raise InvalidCommand naming the argument, a device that does
not answer makes the call wait its timeout (on the plant's clock) and raise DeviceTimeout, and
a device reporting a fault of its own raises DeviceFault. Sensor artefacts that the daemon
must cope with (thermocouple noise and quantization, the O2 analyzer's 2 s stream) live here;
the physics, the sensors' own lags and the fault state live in the plant.
"""

# The device protocols pass an explicit per-call timeout (the real drivers hand it to their
# transports), so every method has a ``timeout`` parameter by contract.

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drivers.errors import (
    DeviceError,
    DeviceFault,
    DeviceNotConnected,
    DeviceTimeout,
    InvalidCommand,
)
from drivers.machine_read import MachineReadings
from drivers.protocols import (
    DEFAULT_TIMEOUT_S,
    OUTPUTS,
    VALVES,
    ChillerStatus,
    DispenserStatus,
    Machine,
    PumpStatus,
    StageStatus,
    UvStatus,
)
from drivers.reading import Reading, Status
from drivers.sim.plant import TC_CHANNELS, Plant

if TYPE_CHECKING:
    from drivers.protocols import (
        Chiller,
        DigitalIO,
        Dispenser,
        Identifiable,
        LampBank,
        OxygenAnalyzer,
        Pump,
        Thermocouples,
        UvSource,
        VacuumGauge,
        Valves,
        ZStage,
    )


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


class SimLampBank(_SimDevice):
    def __init__(self, plant: Plant) -> None:
        super().__init__(plant, "lamps")

    @property
    def zones(self) -> int:
        return self._plant.params.zones

    async def set_power(self, pct: Sequence[float], timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._begin(timeout)
        # 20 commands a second: the plain cases (a list or tuple of floats) skip the ABC
        # check and the per-zone message formatting.
        plain = type(pct) is list or type(pct) is tuple
        if not plain and (not isinstance(pct, Sequence) or isinstance(pct, str | bytes)):
            raise InvalidCommand(self._name, f"pct: expected a sequence of {self.zones} values")
        if len(pct) != self.zones:
            raise InvalidCommand(self._name, f"pct: expected {self.zones} zones, got {len(pct)}")
        values = [
            v
            if type(v) is float and 0.0 <= v <= 100.0
            else self._number(f"pct[{i}]", v, 0.0, 100.0)
            for i, v in enumerate(pct)
        ]
        await self._exchange(timeout)
        self._plant.set_lamp_power(values)

    async def read_power(self, timeout: float = DEFAULT_TIMEOUT_S) -> list[Reading]:
        self._begin(timeout)
        await self._exchange(timeout)
        return self._sample_power()

    def _sample_power(self) -> list[Reading]:
        now = self._clock.now()
        dead = self._plant.lamp_dead
        if not dead:
            # Zones commanded alike hold one float object (set_power([pct] * zones)): rounded
            # once, the same number for each.
            readings: list[Reading] = []
            last: float | None = None
            shown = 0.0
            for pct in self._plant.lamp_output_pct():
                if pct is not last:
                    last, shown = pct, round(pct, 2)
                readings.append(Reading(shown, now))
            return readings
        out: list[Reading] = []
        for i, pct in enumerate(self._plant.lamp_output_pct()):
            if i in dead:
                # The SCR controller sees no load current: partial-load-failure alarm.
                out.append(Reading(0.0, now, Status.FAULT, "load failure (open lamp)"))
            else:
                out.append(Reading(round(pct, 2), now))
        return out


class SimThermocouples(_SimDevice):
    def __init__(self, plant: Plant) -> None:
        super().__init__(plant, "tc")
        self._rng = plant.rng("tc")

    @property
    def channels(self) -> tuple[str, ...]:
        return TC_CHANNELS

    async def read(self, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Reading]:
        self._begin(timeout)
        await self._exchange(timeout)
        return self._sample()

    def _sample(self) -> dict[str, Reading]:
        p = self._plant.params
        now = self._clock.now()
        junctions, faults = self._plant.tc_junctions, self._plant.tc_faults
        gauss, noise, res = self._rng.gauss, p.tc_noise_c, p.tc_resolution_c
        exact = _DECIMAL_STEPS.get(res)
        out: dict[str, Reading] = {}
        for ch in TC_CHANNELS:
            # Every channel draws its noise, faulty or not: the stream stays aligned.
            noisy = junctions[ch] + gauss(0.0, noise)
            fault = faults.get(ch) if faults else None
            if fault is None:
                k = round(noisy / res)  # _quantize, inlined: three channels, 20 times a second
                if exact is not None and -exact[1] < k < exact[1]:
                    out[ch] = Reading(k / exact[0], now)
                else:
                    out[ch] = Reading(round(k * res, 6), now)
            elif fault.kind == "open":
                out[ch] = Reading(p.tc_open_value_c, now, Status.FAULT, "open thermocouple")
            elif fault.kind == "stuck":
                # A frozen transmitter repeats one number: no noise, no change, status OK.
                out[ch] = Reading(fault.value, now)
            elif fault.kind == "drift":
                drifted = noisy + fault.value * (now - fault.since)
                out[ch] = Reading(_quantize(drifted, p.tc_resolution_c), now)
            else:  # no_response of one channel: the module answers but keeps the old value
                out[ch] = Reading(
                    fault.last_value, fault.since, Status.STALE, "channel not updating"
                )
        return out


class SimVacuumGauge(_SimDevice):
    def __init__(self, plant: Plant) -> None:
        super().__init__(plant, "gauge")
        self._rng = plant.rng("gauge")
        self._last = plant.pressure_mbar

    async def read(self, timeout: float = DEFAULT_TIMEOUT_S) -> Reading:
        self._begin(timeout)
        await self._exchange(timeout)
        return self._sample()

    def _sample(self) -> Reading:
        now = self._clock.now()
        kind, stuck = self._plant.gauge_fault()
        if kind == "fail":
            return Reading(self._last, now, Status.FAULT, "sensor error")
        if kind == "stuck":
            return Reading(stuck, now)
        noise = 1.0 + self._rng.gauss(0.0, self._plant.params.gauge_noise_rel)
        value = float(f"{max(0.0, self._plant.pressure_mbar * noise):.4g}")
        self._last = value
        return Reading(value, now)


class SimPump(_SimDevice):
    def __init__(self, plant: Plant) -> None:
        super().__init__(plant, "pump")

    async def start(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._begin(timeout)
        await self._exchange(timeout)
        if self._plant.pump_tripped:
            raise DeviceFault(self._name, "pump tripped (overload): cannot start")
        self._plant.pump_start()

    async def stop(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._begin(timeout)
        await self._exchange(timeout)
        self._plant.pump_stop()

    async def status(self, timeout: float = DEFAULT_TIMEOUT_S) -> PumpStatus:
        self._begin(timeout)
        await self._exchange(timeout)
        return self._sample()

    def _sample(self) -> PumpStatus:
        tripped = self._plant.pump_tripped
        return PumpStatus(
            running=self._plant.pump_running,
            fault=tripped,
            detail="tripped (overload)" if tripped else "",
        )


class SimValves(_SimDevice):
    def __init__(self, plant: Plant) -> None:
        super().__init__(plant, "valves")

    async def set(self, valve: str, open_: bool, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._begin(timeout)
        if valve not in VALVES:
            raise InvalidCommand(
                self._name, f"valve: unknown valve {valve!r} (known: {', '.join(VALVES)})"
            )
        await self._exchange(timeout)
        self._plant.set_valve(valve, bool(open_))

    async def states(self, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, bool]:
        self._begin(timeout)
        await self._exchange(timeout)
        return self._sample()

    def _sample(self) -> dict[str, bool]:
        return self._plant.valves()


class SimChiller(_SimDevice):
    def __init__(self, plant: Plant) -> None:
        super().__init__(plant, "chiller")

    async def set_setpoint(self, celsius: float, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._begin(timeout)
        p = self._plant.params
        sp = self._number("celsius", celsius, p.chiller_setpoint_min_c, p.chiller_setpoint_max_c)
        await self._exchange(timeout)
        self._plant.chiller_set_setpoint(sp)

    async def start(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._begin(timeout)
        await self._exchange(timeout)
        if self._plant.chiller_failed:
            raise DeviceFault(self._name, "chiller failure: cannot start")
        self._plant.chiller_start()

    async def stop(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._begin(timeout)
        await self._exchange(timeout)
        self._plant.chiller_stop()

    async def status(self, timeout: float = DEFAULT_TIMEOUT_S) -> ChillerStatus:
        self._begin(timeout)
        await self._exchange(timeout)
        return self._sample()

    def _sample(self) -> ChillerStatus:
        failed = self._plant.chiller_failed
        return ChillerStatus(
            temperature=Reading(_quantize(self._plant.fluid_c, 0.1), self._clock.now()),
            setpoint_c=self._plant.chiller_setpoint_c,
            running=self._plant.chiller_running,
            fault=failed,
            detail="chiller failure" if failed else "",
        )


class SimOxygenAnalyzer(_SimDevice):
    def __init__(self, plant: Plant) -> None:
        super().__init__(plant, "o2")
        # The last streamed value and its rounding: between the analyzer's updates the plant
        # hands back the same float object, and it is not rounded again (see _sample_power).
        self._raw: float | None = None
        self._shown = 0.0

    async def read(self, timeout: float = DEFAULT_TIMEOUT_S) -> Reading:
        self._begin(timeout)
        await self._exchange(timeout)
        return self._sample()

    def _sample(self) -> Reading:
        # The analyzer streams one value per period: between updates the last value keeps
        # its own timestamp, so a consumer can judge its age.
        raw, ts = self._plant.o2_sample()
        if raw is not self._raw:
            self._raw, self._shown = raw, round(raw, 2)
        value = self._shown
        if not self._plant.o2_measuring:
            return Reading(value, ts, Status.STALE, "analyzer not measuring")
        return Reading(value, ts)


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


class SimDigitalIO(_SimDevice):
    """The remote I/O coupler. Every answered call re-arms its output watchdog."""

    def __init__(self, plant: Plant) -> None:
        super().__init__(plant, "dio")

    def _answered(self) -> None:
        self._plant.dio_contact()

    async def read_inputs(self, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, bool]:
        self._begin(timeout)
        await self._exchange(timeout)
        return self._sample_inputs()

    def _sample_inputs(self) -> dict[str, bool]:
        return self._plant.inputs()

    async def write_output(self, name: str, on: bool, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._begin(timeout)
        if name not in OUTPUTS:
            raise InvalidCommand(
                self._name, f"name: unknown output {name!r} (known: {', '.join(OUTPUTS)})"
            )
        await self._exchange(timeout)
        self._plant.set_output(name, bool(on))

    async def read_outputs(self, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, bool]:
        self._begin(timeout)
        await self._exchange(timeout)
        return self._sample_outputs()

    def _sample_outputs(self) -> dict[str, bool]:
        return self._plant.outputs()


# One monitor cycle's reads, in the monitor's order (the plant's noise streams are drawn in
# this order, so a run reads the same numbers as with the single reads): (key in
# ``MachineReadings.errors``, Machine attribute, the device's read method, its sampler).
_READS = (
    ("tc", "thermocouples", "read", "_sample"),
    ("gauge", "gauge", "read", "_sample"),
    ("o2", "o2", "read", "_sample"),
    ("lamps", "lamps", "read_power", "_sample_power"),
    ("pump", "pump", "status", "_sample"),
    ("valves", "valves", "states", "_sample"),
    ("chiller", "chiller", "status", "_sample"),
    ("dio", "dio", "read_inputs", "_sample_inputs"),
    ("dio.outputs", "dio", "read_outputs", "_sample_outputs"),
    ("zstage", "zstage", "status", "_sample"),
    ("uv", "uv", "status", "_sample"),
    ("dispenser", "dispenser", "status", "_sample"),
)

# A read of ``read_all``: (key, device, read method name, sampler or None to call the read
# method, the device's answered-hook or None).
_Read = tuple[str, Any, str, "Callable[[], Any] | None", "Callable[[], None] | None"]


@dataclass(slots=True)
class SimMachine(Machine):
    """The simulated machine: its devices, and ``read_all`` for the monitor (``ReadsAll``).

    ``read_all`` integrates the plant once and samples every device from that state, as the
    single reads would at that instant, with each device's connection state and faults;
    the silent ones cost the call its budget once, as concurrent reads would. A device that
    is not simulated here (a real driver in a mixed machine) or whose read method was
    replaced on the instance (a test's spy) is read through that method.
    """

    plant: Plant
    # The reads resolved for the devices in place (rebuilt when one is replaced), and the
    # instance dicts where a replaced read method would show.
    _devices: tuple[object, ...] = field(default=(), init=False, repr=False, compare=False)
    _reads: tuple[_Read, ...] = field(default=(), init=False, repr=False, compare=False)
    _spied: tuple[tuple[dict[str, Any], str], ...] = field(
        default=(), init=False, repr=False, compare=False
    )
    # Every read is a simulated device's sampler (no foreign device, no spy): ``read_all``
    # may then sample them in one plain loop.
    _all_sampled: bool = field(default=False, init=False, repr=False, compare=False)

    def _resolve(self) -> tuple[_Read, ...]:
        devices = (
            self.thermocouples,
            self.gauge,
            self.o2,
            self.lamps,
            self.pump,
            self.valves,
            self.chiller,
            self.dio,
            self.zstage,
            self.uv,
            self.dispenser,
        )
        if devices == self._devices:
            for instance_dict, method in self._spied:
                if method in instance_dict:
                    break
            else:
                return self._reads
        reads: list[_Read] = []
        spied: list[tuple[dict[str, Any], str]] = []
        for key, attr, method, sampler in _READS:
            dev = getattr(self, attr)
            if isinstance(dev, _SimDevice) and method not in vars(dev):
                answered = (
                    dev._answered if type(dev)._answered is not _SimDevice._answered else None
                )
                reads.append((key, dev, method, getattr(dev, sampler), answered))
                spied.append((vars(dev), method))
            else:
                reads.append((key, dev, method, None, None))
        self._devices, self._reads, self._spied = devices, tuple(reads), tuple(spied)
        self._all_sampled = all(r[3] is not None for r in reads)
        return self._reads

    async def read_all(self, timeout: float) -> MachineReadings:
        if not (type(timeout) is float and 0.0 < timeout < math.inf):
            t = _finite(timeout)
            if t is None or t <= 0.0:
                raise InvalidCommand(
                    "machine", f"timeout must be a finite number > 0, got {timeout}"
                )
        plant = self.plant
        plant.advance()
        silent = plant.unresponsive_devices
        errors: dict[str, str] = {}
        values: list[Any] = []
        reads = self._resolve()
        if self._all_sampled and not silent:
            # Nearly every cycle: every device simulated here and none silent. The loop
            # below, without the checks that cannot fire (20 cycles a second).
            append = values.append
            for key, dev, _method, sample, answered in reads:
                if dev._connected:
                    if answered is not None:
                        answered()
                    append(sample())  # type: ignore[misc]  # _all_sampled: never None
                else:
                    errors[key] = str(dev._not_connected_error())
                    append(None)
            return MachineReadings.of(values, errors)
        late = False  # a device read through its own method let the clock move
        wait = False
        for key, dev, method, sample, answered in reads:
            if sample is None:
                try:
                    values.append(await getattr(dev, method)(timeout))
                except DeviceError as exc:
                    errors[key] = str(exc) or type(exc).__name__
                    values.append(None)
                late = True
                continue
            if late:
                plant.advance()
                late = False
            if not dev._connected:
                errors[key] = str(dev._not_connected_error())
                values.append(None)
            elif dev._name in silent:
                errors[key] = str(dev._timeout_error(timeout))
                values.append(None)
                wait = True
            else:
                if answered is not None:
                    answered()
                values.append(sample())
        if wait:
            await plant.clock.sleep(timeout)
        return MachineReadings.of(values, errors)


def build_sim_machine(plant: Plant) -> SimMachine:
    """Every device of the bonder, simulated on ``plant`` (not yet connected)."""
    return SimMachine(
        lamps=SimLampBank(plant),
        thermocouples=SimThermocouples(plant),
        gauge=SimVacuumGauge(plant),
        pump=SimPump(plant),
        valves=SimValves(plant),
        chiller=SimChiller(plant),
        o2=SimOxygenAnalyzer(plant),
        zstage=SimZStage(plant),
        uv=SimUvSource(plant),
        dispenser=SimDispenser(plant),
        dio=SimDigitalIO(plant),
        plant=plant,
    )


if TYPE_CHECKING:
    # mypy proves each simulated class satisfies its protocol structurally.
    def _conformance(plant: Plant) -> None:
        _lamps: LampBank = SimLampBank(plant)
        _tc: Thermocouples = SimThermocouples(plant)
        _gauge: VacuumGauge = SimVacuumGauge(plant)
        _pump: Pump = SimPump(plant)
        _valves: Valves = SimValves(plant)
        _chiller: Chiller = SimChiller(plant)
        _o2: OxygenAnalyzer = SimOxygenAnalyzer(plant)
        _zstage: ZStage = SimZStage(plant)
        _uv: UvSource = SimUvSource(plant)
        _dispenser: Dispenser = SimDispenser(plant)
        _dio: DigitalIO = SimDigitalIO(plant)
        _ident: Identifiable = SimDigitalIO(plant)
