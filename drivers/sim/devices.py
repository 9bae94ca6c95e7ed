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
    InvalidCommand,
)
from drivers.machine_read import MachineReadings
from drivers.protocols import (
    DEFAULT_TIMEOUT_S,
    OUTPUTS,
    VALVES,
    ChillerStatus,
    Machine,
    PumpStatus,
)
from drivers.reading import Reading, Status
from drivers.sim.device_base import _DECIMAL_STEPS, _finite, _quantize, _SimDevice
from drivers.sim.lift_devices import SimDispenser, SimUvSource, SimZStage
from drivers.sim.plant import Plant

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
        # The machine's channels, and a panel's instrumented sites' (a second module).
        return self._plant.tc_channels

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
        for ch in self._plant.tc_channels:
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
