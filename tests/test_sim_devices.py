"""Simulated drivers: the protocol behaviour the daemon relies on, on top of the plant."""

from __future__ import annotations

import math
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from drivers.clock import ManualClock, VirtualClock
from drivers.errors import DeviceFault, DeviceNotConnected, InvalidCommand
from drivers.protocols import (
    IN_CHILLER_FLOW,
    IN_CHUCK_VACUUM_OK,
    IN_DOOR_CLOSED,
    IN_ESTOP_OK,
    IN_SUPPORT_VACUUM_OK,
    INPUTS,
    OUT_CHUCK_VACUUM,
    OUT_FILM_CLAMP,
    OUT_LAMP_CONTACTOR,
    OUT_SCR_ENABLE,
    OUT_SUPPORT_VACUUM,
    OUT_UV_ENABLE,
    OUTPUTS,
    VALVE_PUMP,
    VALVES,
    Device,
    Machine,
)
from drivers.reading import Status
from drivers.sim.devices import SimThermocouples, build_sim_machine
from drivers.sim.plant import Plant, PlantFault, PlantParams


async def connected(clock: ManualClock | VirtualClock | None = None) -> tuple[Machine, Plant]:
    plant = Plant(clock if clock is not None else ManualClock())
    machine = build_sim_machine(plant)
    for dev in machine.devices():
        await dev.connect()
    return machine, plant


def tick(plant: Plant, seconds: float) -> None:
    clock = plant.clock
    assert isinstance(clock, ManualClock)
    clock.t += seconds
    plant.advance()


async def test_machine_has_every_device_with_its_config_name() -> None:
    machine = build_sim_machine(Plant(ManualClock()))
    names = [d.name for d in machine.devices()]
    assert names == [
        "dio",
        "lamps",
        "tc",
        "gauge",
        "pump",
        "valves",
        "chiller",
        "o2",
        "zstage",
        "uv",
        "dispenser",
    ]
    assert all(isinstance(d, Device) for d in machine.devices())


def every_call(m: Machine) -> list[Callable[[], Awaitable[Any]]]:
    return [
        lambda: m.lamps.set_power([0.0] * 4),
        m.lamps.read_power,
        m.thermocouples.read,
        m.gauge.read,
        m.pump.start,
        m.pump.stop,
        m.pump.status,
        lambda: m.valves.set(VALVE_PUMP, True),
        m.valves.states,
        lambda: m.chiller.set_setpoint(20.0),
        m.chiller.start,
        m.chiller.stop,
        m.chiller.status,
        m.o2.read,
        m.zstage.home,
        lambda: m.zstage.move_abs(10.0, 100.0),
        m.zstage.stop,
        m.zstage.status,
        lambda: m.uv.set_irradiance(10.0),
        lambda: m.dio.write_output(OUT_UV_ENABLE, True),
        m.uv.open_shutter,
        m.uv.close_shutter,
        m.uv.status,
        lambda: m.dispenser.set_pressure(100.0),
        lambda: m.dispenser.dispense(1.0),
        m.dispenser.stop,
        m.dispenser.status,
        m.dio.read_inputs,
        lambda: m.dio.write_output(OUT_FILM_CLAMP, True),
        m.dio.read_outputs,
    ]


async def test_every_call_before_connect_raises_not_connected() -> None:
    machine = build_sim_machine(Plant(ManualClock()))
    for call in every_call(machine):
        with pytest.raises(DeviceNotConnected):
            await call()


async def test_every_call_works_once_connected_and_fails_again_after_close() -> None:
    machine, _ = await connected()
    for call in every_call(machine):
        await call()
    for dev in machine.devices():
        await dev.close()
    with pytest.raises(DeviceNotConnected, match="gauge"):
        await machine.gauge.read()


@pytest.mark.parametrize(
    ("pct", "match"),
    [
        ([0.0, 0.0, 120.0, 0.0], r"pct\[2\] = 120"),
        ([0.0, -1.0, 0.0, 0.0], r"pct\[1\] = -1"),
        ([math.nan, 0.0, 0.0, 0.0], r"pct\[0\] = nan"),
        ([10.0, 10.0, 10.0], "expected 4 zones, got 3"),
        ("1234", "expected a sequence"),
    ],
)
async def test_lamp_power_outside_range_or_zone_count_is_refused(pct: Any, match: str) -> None:
    machine, plant = await connected()
    with pytest.raises(InvalidCommand, match=match):
        await machine.lamps.set_power(pct)
    assert plant.state.lamp_cmd_pct == (0.0, 0.0, 0.0, 0.0)


async def test_unknown_valve_or_output_is_refused_by_name() -> None:
    machine, _ = await connected()
    with pytest.raises(InvalidCommand, match="valve: unknown valve 'roughing'"):
        await machine.valves.set("roughing", True)
    with pytest.raises(InvalidCommand, match="name: unknown output 'heater'"):
        await machine.dio.write_output("heater", True)


async def test_timeout_must_be_positive() -> None:
    machine, _ = await connected()
    with pytest.raises(InvalidCommand, match="timeout"):
        await machine.gauge.read(timeout=0.0)
    with pytest.raises(InvalidCommand, match="timeout"):
        await machine.gauge.read(timeout=math.inf)


async def test_lamp_read_power_is_what_the_scrs_deliver() -> None:
    machine, plant = await connected()
    await machine.lamps.set_power([10.0, 20.0, 30.0, 40.0])
    assert [r.value for r in await machine.lamps.read_power()] == [0.0] * 4
    await machine.dio.write_output(OUT_LAMP_CONTACTOR, True)
    await machine.dio.write_output(OUT_SCR_ENABLE, True)
    tick(plant, 0.1)
    readings = await machine.lamps.read_power()
    assert [r.value for r in readings] == [10.0, 20.0, 30.0, 40.0]
    assert all(r.ok and r.ts == pytest.approx(0.1) for r in readings)
    assert machine.lamps.zones == 4


async def test_thermocouples_quantize_to_0_1_with_about_0_1_noise() -> None:
    machine, plant = await connected()
    assert machine.thermocouples.channels == ("chip", "component", "chuck")
    values: list[float] = []
    for _ in range(400):
        tick(plant, 0.01)
        readings = await machine.thermocouples.read()
        assert set(readings) == {"chip", "component", "chuck"}
        r = readings["chip"]
        assert r.ok and r.ts == pytest.approx(plant.clock.now())
        values.append(r.value)
    for v in values:
        assert abs(v * 10.0 - round(v * 10.0)) < 1e-6
    assert statistics.mean(values) == pytest.approx(23.0, abs=0.03)
    assert 0.07 < statistics.stdev(values) < 0.14


async def test_thermocouple_noise_is_reproducible_from_the_seed() -> None:
    async def reads(seed: int) -> list[float]:
        tc = SimThermocouples(Plant(ManualClock(), seed=seed))
        await tc.connect()
        return [(await tc.read())["chip"].value for _ in range(50)]

    assert await reads(1) == await reads(1)
    assert await reads(1) != await reads(2)


async def test_thermocouple_reading_lags_a_fast_ramp() -> None:
    machine, plant = await connected()
    await machine.valves.set(VALVE_PUMP, True)
    await machine.pump.start()
    await machine.dio.write_output(OUT_LAMP_CONTACTOR, True)
    await machine.dio.write_output(OUT_SCR_ENABLE, True)
    await machine.lamps.set_power([100.0] * 4)
    for _ in range(100):
        tick(plant, 0.01)
    true_chip = plant.state.chip_c
    measured = (await machine.thermocouples.read())["chip"].value
    assert true_chip - measured > 5.0  # > 20 K/s × 0.3 s, minus noise


async def test_gauge_reads_the_working_space_pressure() -> None:
    machine, plant = await connected()
    r = await machine.gauge.read()
    assert r.ok and r.value == pytest.approx(1013.0, rel=0.01)
    await machine.valves.set(VALVE_PUMP, True)
    await machine.pump.start()
    tick(plant, 5.0)
    r = await machine.gauge.read()
    assert r.value == pytest.approx(plant.state.pressure_mbar, rel=0.01)
    assert r.value < 1.0
    assert (await machine.pump.status()).running
    assert (await machine.valves.states()) == {v: v == VALVE_PUMP for v in VALVES}


async def test_o2_analyzer_streams_one_value_every_2_s_with_its_own_timestamp() -> None:
    machine, plant = await connected()
    first = await machine.o2.read()
    assert first.ok and first.ts == 0.0 and first.value == pytest.approx(209_000.0)
    await machine.valves.set(VALVE_PUMP, True)
    await machine.pump.start()
    tick(plant, 1.9)
    await machine.valves.set(VALVE_PUMP, False)
    await machine.valves.set("n2_purge", True)
    tick(plant, 0.05)
    held = await machine.o2.read()
    assert held.ts == 0.0 and held.value == first.value  # no new sample yet
    tick(plant, 0.1)
    fresh = await machine.o2.read()
    assert fresh.ts == pytest.approx(2.0)
    assert fresh.value < 200_000.0  # N2 already diluted the sample taken at t = 2 s
    assert fresh.status is Status.OK


async def test_chiller_status_and_flow_input() -> None:
    machine, plant = await connected()
    await machine.chiller.set_setpoint(18.0)
    assert not (await machine.dio.read_inputs())[IN_CHILLER_FLOW]
    await machine.chiller.start()
    tick(plant, 200.0)
    st = await machine.chiller.status()
    assert st.running and not st.fault and st.setpoint_c == 18.0
    assert st.temperature.value == pytest.approx(18.0, abs=0.3)
    inputs = await machine.dio.read_inputs()
    assert set(inputs) == set(INPUTS)
    assert inputs[IN_CHILLER_FLOW] and inputs[IN_ESTOP_OK] and inputs[IN_DOOR_CLOSED]
    with pytest.raises(InvalidCommand, match="celsius"):
        await machine.chiller.set_setpoint(250.0)  # above the circulator's 200 °C


async def test_dio_outputs_read_back() -> None:
    machine, _ = await connected()
    assert await machine.dio.read_outputs() == dict.fromkeys(OUTPUTS, False)
    await machine.dio.write_output(OUT_FILM_CLAMP, True)
    outs = await machine.dio.read_outputs()
    assert outs[OUT_FILM_CLAMP] and not outs[OUT_LAMP_CONTACTOR]


async def test_z_stage_must_be_homed_and_moves_in_the_background() -> None:
    machine, plant = await connected()
    with pytest.raises(InvalidCommand, match="not homed"):
        await machine.zstage.move_abs(100.0, 100.0)
    await machine.zstage.home()
    with pytest.raises(InvalidCommand, match="speed_um_s"):
        await machine.zstage.move_abs(100.0, 0.0)
    with pytest.raises(InvalidCommand, match="position_um"):
        await machine.zstage.move_abs(-5.0, 100.0)
    with pytest.raises(InvalidCommand, match="accel_um_s2"):
        await machine.zstage.move_abs(100.0, 100.0, accel_um_s2=0.0)
    await machine.zstage.move_abs(200.0, 100.0)
    tick(plant, 1.0)
    st = await machine.zstage.status()
    assert st.busy and st.homed and 0.0 < st.position_um.value < 200.0
    tick(plant, 2.0)
    st = await machine.zstage.status()
    assert not st.busy and st.position_um.value == 200.0
    # Nothing held the support: the head moved away from it, no lead felt anything.
    assert st.force_n.value == 0.0 and not plant.state.leads_torn


async def test_z_stage_moves_at_the_commanded_acceleration() -> None:
    machine, plant = await connected()
    await machine.zstage.home()
    tick(plant, 0.1)
    await machine.zstage.move_abs(1000.0, 500.0, accel_um_s2=500.0)
    tick(plant, 0.5)  # still accelerating at 500 µm/s²: 0.5·a·t² = 62.5 µm
    st = await machine.zstage.status()
    assert st.position_um.value == pytest.approx(62.5, abs=1.0)
    assert plant.state.z_accel_um_s2 == 500.0


async def test_vacuum_holds_make_their_switches_after_the_pull_down_time() -> None:
    machine, plant = await connected()
    inputs = await machine.dio.read_inputs()
    assert not inputs[IN_CHUCK_VACUUM_OK] and not inputs[IN_SUPPORT_VACUUM_OK]
    await machine.dio.write_output(OUT_CHUCK_VACUUM, True)
    await machine.dio.write_output(OUT_SUPPORT_VACUUM, True)
    tick(plant, 0.5 * plant.params.vacuum_hold_s)
    inputs = await machine.dio.read_inputs()
    assert not inputs[IN_CHUCK_VACUUM_OK] and not inputs[IN_SUPPORT_VACUUM_OK]
    tick(plant, plant.params.vacuum_hold_s)
    inputs = await machine.dio.read_inputs()
    assert inputs[IN_CHUCK_VACUUM_OK] and inputs[IN_SUPPORT_VACUUM_OK]
    await machine.dio.write_output(OUT_SUPPORT_VACUUM, False)
    inputs = await machine.dio.read_inputs()
    assert inputs[IN_CHUCK_VACUUM_OK] and not inputs[IN_SUPPORT_VACUUM_OK]


async def test_uv_source_and_dispenser() -> None:
    machine, plant = await connected()
    with pytest.raises(InvalidCommand, match="mw_cm2"):
        await machine.uv.set_irradiance(1e6)
    await machine.uv.set_irradiance(50.0)
    # The remote interlock line is open: the source refuses to open its shutter.
    with pytest.raises(DeviceFault, match="interlock"):
        await machine.uv.open_shutter()
    await machine.dio.write_output(OUT_UV_ENABLE, True)
    await machine.uv.open_shutter()
    tick(plant, 2.0)
    st = await machine.uv.status()
    assert st.shutter_open and st.lamp_ready and st.irradiance_mw_cm2 == 50.0
    assert plant.state.uv_dose_mj_cm2 == pytest.approx(100.0)
    # Opening the line closes the shutter even when the serial link is gone.
    plant.schedule_fault(PlantFault("uv", "no_response"), 0.0)
    tick(plant, 0.0)
    await machine.dio.write_output(OUT_UV_ENABLE, False)
    assert not plant.state.uv_shutter_open
    tick(plant, 1.0)
    assert plant.state.uv_dose_mj_cm2 == pytest.approx(100.0)
    with pytest.raises(InvalidCommand, match="duration_s"):
        await machine.dispenser.dispense(0.0)
    with pytest.raises(InvalidCommand, match="kpa"):
        await machine.dispenser.set_pressure(-1.0)
    await machine.dispenser.set_pressure(200.0)
    await machine.dispenser.dispense(1.0)
    assert (await machine.dispenser.status()).dispensing
    tick(plant, 1.5)
    st_d = await machine.dispenser.status()
    assert not st_d.dispensing and st_d.pressure_kpa == 200.0
    assert plant.state.dispensed_ul == pytest.approx(
        200.0 * 1.0 * plant.params.dispense_ul_per_kpa_s
    )


async def test_drivers_work_on_the_virtual_clock() -> None:
    clock = VirtualClock()
    machine, _ = await connected(clock)
    await machine.valves.set(VALVE_PUMP, True)
    await machine.pump.start()
    await clock.sleep(5.0)
    r = await machine.gauge.read()
    assert r.ts == 5.0 and r.value < 1.0


async def test_pump_refuses_to_start_while_tripped() -> None:
    machine, plant = await connected(ManualClock())
    plant.schedule_fault(PlantFault("pump", "fail"), 0.0)
    with pytest.raises(DeviceFault, match="tripped"):
        await machine.pump.start()


def test_params_are_shared_with_the_plant() -> None:
    plant = Plant(ManualClock(), PlantParams(zones=2))
    assert build_sim_machine(plant).lamps.zones == 2
