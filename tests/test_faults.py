"""Fault scenarios: the file format, the injector's timing, and each fault's effect."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import get_args

import pytest

from drivers.clock import ManualClock, VirtualClock
from drivers.errors import DeviceFault, DeviceTimeout
from drivers.protocols import (
    IN_CHILLER_FLOW,
    IN_DOOR_CLOSED,
    IN_ESTOP_OK,
    OUT_LAMP_CONTACTOR,
    OUT_SCR_ENABLE,
    VALVE_PUMP,
    Machine,
)
from drivers.reading import Status
from drivers.sim.devices import build_sim_machine
from drivers.sim.faults import (
    Fault,
    FaultInjector,
    FaultKind,
    FaultScenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
)
from drivers.sim.plant import FAULT_KINDS, Plant, PlantParams


def tick(plant: Plant, seconds: float) -> None:
    clock = plant.clock
    assert isinstance(clock, ManualClock)
    clock.t += seconds
    plant.advance()


async def rig(*faults: Fault) -> tuple[Machine, Plant, FaultInjector]:
    """A connected simulated machine whose run started at t = 0 with these faults."""
    plant = Plant(ManualClock())
    machine = build_sim_machine(plant)
    for dev in machine.devices():
        await dev.connect()
    injector = FaultInjector(FaultScenario(fault=list(faults)), plant, plant.clock)
    injector.run_started()
    return machine, plant, injector


def at(t: float, device: str, kind: str, **extra: float) -> Fault:
    return Fault.model_validate({"at_s": t, "device": device, "kind": kind, **extra})


# ----------------------------------------------------------------- the file


CONTRACT_EXAMPLE = """\
[[fault]]
at_step = "reflow"     # or: at_s = 12.5   (seconds of run time)
after_s = 5.0
device = "tc.chip"     # device or channel name as in the equipment config
kind = "open"
value = 0.0            # kind-specific parameter (drift °C/s, leak mbar·L/s, ...)

[[fault]]
at_s = 12.5
device = "chamber"
kind = "leak"
value = 0.05
"""


def test_contract_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text(CONTRACT_EXAMPLE, encoding="utf-8")
    first, second = load_scenario(path).fault
    assert (first.at_step, first.after_s, first.device, first.kind) == (
        "reflow",
        5.0,
        "tc.chip",
        "open",
    )
    # ``value = 0.0`` on a kind without a value is the default spelled out: no value.
    assert first.to_plant_fault().value is None
    assert (second.at_s, second.kind, second.value) == (12.5, "leak", 0.05)


def test_empty_file_is_an_empty_scenario(tmp_path: Path) -> None:
    path = tmp_path / "none.toml"
    path.write_text("# nothing goes wrong today\n", encoding="utf-8")
    assert load_scenario(path).fault == []


def errors_of(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.toml")
    return str(info.value)


FAULT_HEAD = '[[fault]]\nat_s = 1\ndevice = "tc.chip"\nkind = "open"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            FAULT_HEAD + FAULT_HEAD.replace('"open"', '"melt"'),
            "s.toml: fault[1].kind: Input should be",
        ),
        (
            FAULT_HEAD.replace('"open"', '"tear"'),
            "fault[0].kind: kind 'tear' does not apply to device 'tc.chip'",
        ),
        (
            FAULT_HEAD.replace('"tc.chip"', '"tc.heater"'),
            "fault[0].device: unknown device 'tc.heater'",
        ),
        (
            FAULT_HEAD.replace('"tc.chip"', '"lamps.z9"'),
            "fault[0].device: unknown device 'lamps.z9'",
        ),
        (FAULT_HEAD + 'at_step = "reflow"\n', "fault[0].at_s: give exactly one of at_step or at_s"),
        (
            FAULT_HEAD.replace("at_s = 1\n", ""),
            "fault[0].at_s: give exactly one of at_step or at_s",
        ),
        (
            FAULT_HEAD.replace("at_s = 1", "at_s = -1"),
            "fault[0].at_s: Input should be greater than or equal to 0",
        ),
        (
            FAULT_HEAD + "after_s = -2\n",
            "fault[0].after_s: Input should be greater than or equal to 0",
        ),
        (FAULT_HEAD + "after_s = nan\n", "fault[0].after_s: Input should be a finite number"),
        (FAULT_HEAD + "value = inf\n", "fault[0].value: Input should be a finite number"),
        (FAULT_HEAD + 'value = "3"\n', "fault[0].value: Input should be a valid number"),
        (FAULT_HEAD + "colour = 1\n", "fault[0].colour: Extra inputs are not permitted"),
        (FAULT_HEAD + "value = 2\n", "fault[0].value: kind 'open' takes no value (got 2)"),
        (FAULT_HEAD.replace('"open"', '"drift"'), "fault[0].value: kind 'drift' needs a value"),
        (FAULT_HEAD.replace('"open"', '"drift"') + "value = 0\n", "a drift of 0"),
        (
            '[[fault]]\nat_s = 1\ndevice = "chamber"\nkind = "leak"\nvalue = -1\n',
            "fault[0].value: a leak rate must be > 0",
        ),
        (
            '[[fault]]\nat_s = 1\ndevice = "lamps"\nkind = "stuck_on"\nvalue = 150\n',
            "fault[0].value: stuck_on output must be in (0, 100]",
        ),
        (
            '[[fault]]\nat_step = ""\ndevice = "pump"\nkind = "fail"\n',
            "fault[0].at_step: String should have at least 1 character",
        ),
        ("[fault]\nat_s = 1\n", "s.toml: fault: Input should be a valid list"),
        ("fault = 3\nextra = 1\n", "s.toml: extra: Extra inputs are not permitted"),
        ("[[fault]\nat_s = 1\n", "s.toml: invalid TOML: "),
    ],
)
def test_bad_scenarios_name_file_field_and_reason(text: str, expected: str) -> None:
    assert expected in errors_of(text)


def test_every_error_is_reported_not_just_the_first() -> None:
    text = FAULT_HEAD.replace("at_s = 1", "at_s = -1") + "colour = 1\n"
    err = errors_of(text)
    assert "fault[0].at_s" in err and "fault[0].colour" in err


def test_non_utf8_file_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(FAULT_HEAD.encode() + b"# r\xe9sum\xe9\n")
    with pytest.raises(ScenarioError, match=r"latin1\.toml: not valid UTF-8"):
        load_scenario(path)


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope\.toml: cannot read"):
        load_scenario(tmp_path / "nope.toml")


def test_stuck_on_defaults_to_full_output_and_value_given_is_tracked() -> None:
    default = at(0.0, "lamps.z2", "stuck_on")
    half = at(0.0, "lamps.z2", "stuck_on", value=50.0)
    assert default.to_plant_fault().value is None
    assert half.to_plant_fault().value == 50.0


def test_every_fault_kind_is_used_by_some_device() -> None:
    used = set().union(*FAULT_KINDS.values())
    assert used == set(get_args(FaultKind))


# ------------------------------------------------------------------ the injector


async def test_at_s_faults_fire_relative_to_run_start_plus_delay() -> None:
    plant = Plant(ManualClock(100.0))
    scenario = FaultScenario(fault=[at(2.0, "dio", "door_open", after_s=0.5)])
    injector = FaultInjector(scenario, plant, plant.clock)
    tick(plant, 10.0)
    assert injector.fired == []  # nothing before the run starts
    injector.run_started()  # run starts at t = 110
    tick(plant, 2.4)
    assert injector.fired == [] and injector.pending == [0]
    tick(plant, 1.0)
    [fired] = injector.fired
    assert (
        fired.index == 0 and fired.t == pytest.approx(112.5) and fired.run_t_s == pytest.approx(2.5)
    )
    assert not plant.inputs()[IN_DOOR_CLOSED]
    assert injector.pending == []


async def test_step_faults_fire_after_their_step_starts_and_only_once() -> None:
    plant = Plant(ManualClock())
    scenario = parse_scenario(
        '[[fault]]\nat_step = "reflow"\nafter_s = 1.5\ndevice = "chamber"\nkind = "tear"\n'
        '[[fault]]\nat_step = "bump"\ndevice = "dio"\nkind = "estop"\n'
    )
    injector = FaultInjector(scenario, plant, plant.clock)
    injector.run_started()
    tick(plant, 3.0)
    injector.step_started("purge")
    tick(plant, 3.0)
    injector.step_started("reflow")
    tick(plant, 1.0)
    assert injector.fired == []
    tick(plant, 1.0)
    [fired] = injector.fired
    assert fired.t == pytest.approx(7.5) and fired.fault.kind == "tear"
    injector.step_started("reflow")  # a step starting again does not re-fire its faults
    tick(plant, 10.0)
    assert len(injector.fired) == 1
    assert not plant.state.estop_pressed  # its step never ran


async def test_pending_faults_can_be_cancelled_at_run_end() -> None:
    plant = Plant(ManualClock())
    injector = FaultInjector(FaultScenario(fault=[at(50.0, "pump", "fail")]), plant, plant.clock)
    injector.run_started()
    injector.cancel_pending()
    tick(plant, 100.0)
    assert injector.fired == [] and not plant.pump_tripped


# ------------------------------------------------------------- each fault's effect


async def test_open_thermocouple_reads_fault_upscale() -> None:
    machine, plant, _ = await rig(at(1.0, "tc.chip", "open"))
    tick(plant, 0.5)
    assert (await machine.thermocouples.read())["chip"].ok
    tick(plant, 1.0)
    readings = await machine.thermocouples.read()
    assert readings["chip"].status is Status.FAULT
    assert readings["chip"].value == plant.params.tc_open_value_c
    assert readings["component"].ok  # only that channel


async def test_drifting_thermocouple_walks_away_at_its_rate() -> None:
    machine, plant, _ = await rig(at(1.0, "tc.component", "drift", value=0.5))
    tick(plant, 21.0)
    r = (await machine.thermocouples.read())["component"]
    assert r.ok  # a drift is not detectable from the status
    assert r.value == pytest.approx(23.0 + 0.5 * 20.0, abs=0.5)


async def test_stuck_thermocouple_repeats_one_value_without_noise() -> None:
    machine, plant, _ = await rig(
        at(1.0, "tc.chip", "stuck"), at(1.0, "tc.chuck", "stuck", value=42.0)
    )
    await machine.dio.write_output(OUT_LAMP_CONTACTOR, True)
    await machine.dio.write_output(OUT_SCR_ENABLE, True)
    tick(plant, 1.0)
    await machine.lamps.set_power([50.0] * 4)
    values = []
    for _ in range(20):
        tick(plant, 0.1)
        values.append((await machine.thermocouples.read())["chip"])
    assert {r.value for r in values} == {23.0}
    assert all(r.ok for r in values)
    assert plant.state.chip_c > 60.0  # while the chip actually heats
    assert (await machine.thermocouples.read())["chuck"].value == 42.0


async def test_one_channel_not_answering_reads_stale_with_its_old_timestamp() -> None:
    machine, plant, _ = await rig(at(2.0, "tc.component", "no_response"))
    tick(plant, 5.0)
    r = (await machine.thermocouples.read())["component"]
    assert r.status is Status.STALE and r.ts == 2.0


@pytest.mark.parametrize(
    ("device", "call"),
    [
        ("tc", lambda m: m.thermocouples.read(timeout=0.5)),
        ("gauge", lambda m: m.gauge.read(timeout=0.5)),
        ("lamps", lambda m: m.lamps.read_power(timeout=0.5)),
        ("lamps.z3", lambda m: m.lamps.set_power([0.0] * 4, timeout=0.5)),
        ("pump", lambda m: m.pump.status(timeout=0.5)),
        ("valves", lambda m: m.valves.set(VALVE_PUMP, True, timeout=0.5)),
        ("chiller", lambda m: m.chiller.status(timeout=0.5)),
        ("o2", lambda m: m.o2.read(timeout=0.5)),
        ("dio", lambda m: m.dio.read_inputs(timeout=0.5)),
        ("zstage", lambda m: m.zstage.status(timeout=0.5)),
        ("uv", lambda m: m.uv.status(timeout=0.5)),
        ("dispenser", lambda m: m.dispenser.status(timeout=0.5)),
    ],
)
async def test_no_response_waits_the_timeout_then_raises(
    device: str, call: Callable[[Machine], Awaitable[object]]
) -> None:
    clock = VirtualClock()
    plant = Plant(clock)
    machine = build_sim_machine(plant)
    for dev in machine.devices():
        await dev.connect()
    injector = FaultInjector(FaultScenario(fault=[at(1.0, device, "no_response")]), plant, clock)
    injector.run_started()
    await clock.sleep(1.0)
    with pytest.raises(DeviceTimeout, match=r"no response within 0\.5 s"):
        await call(machine)
    assert clock.now() == pytest.approx(1.5)


async def test_gauge_sensor_error_reads_fault_and_stuck_gauge_reads_ok() -> None:
    machine, plant, _ = await rig(at(1.0, "gauge", "fail"))
    tick(plant, 2.0)
    assert (await machine.gauge.read()).status is Status.FAULT
    machine, plant, _ = await rig(at(1.0, "gauge", "stuck"))
    await machine.valves.set(VALVE_PUMP, True)
    await machine.pump.start()
    tick(plant, 5.0)
    r = await machine.gauge.read()
    assert r.ok and r.value == pytest.approx(plant.params.p_atm_mbar * math.exp(-1.5), rel=0.02)
    assert plant.state.pressure_mbar < 1.0


async def test_chamber_leak_raises_the_base_pressure() -> None:
    machine, plant, _ = await rig(at(30.0, "chamber", "leak", value=0.15))
    await machine.valves.set(VALVE_PUMP, True)
    await machine.pump.start()
    tick(plant, 29.0)
    before = plant.state.pressure_mbar
    tick(plant, 20.0)
    after = plant.state.pressure_mbar
    assert before < 0.03
    p = plant.params
    assert after == pytest.approx(
        p.pump_ultimate_mbar + (0.15 + p.leak_mbar_l_s) / p.pump_speed_l_s, rel=0.05
    )


@pytest.mark.parametrize("device", ["film", "chamber"])
async def test_tear_lets_the_pressure_rise_and_the_film_stops_pressing(device: str) -> None:
    machine, plant, _ = await rig(at(10.0, device, "tear"))
    await machine.valves.set(VALVE_PUMP, True)
    await machine.pump.start()
    tick(plant, 9.0)
    assert (await machine.gauge.read()).value < 0.1
    g_vac = plant.state.g_chip_component_w_k
    tick(plant, 5.0)
    assert (await machine.gauge.read()).value > 300.0
    assert plant.state.g_chip_component_w_k < g_vac - 1.0


async def test_chiller_failure_drops_flow_and_refuses_restart() -> None:
    machine, plant, _ = await rig(at(5.0, "chiller", "fail"))
    await machine.chiller.start()
    tick(plant, 4.0)
    assert (await machine.dio.read_inputs())[IN_CHILLER_FLOW]
    tick(plant, 2.0)
    assert not (await machine.dio.read_inputs())[IN_CHILLER_FLOW]
    st = await machine.chiller.status()
    assert st.fault and not st.running
    with pytest.raises(DeviceFault, match="chiller"):
        await machine.chiller.start()


async def test_pump_trip_stops_pumping() -> None:
    machine, plant, _ = await rig(at(3.0, "pump", "fail"))
    await machine.valves.set(VALVE_PUMP, True)
    await machine.pump.start()
    tick(plant, 5.0)
    st = await machine.pump.status()
    assert st.fault and not st.running
    p_trip = plant.state.pressure_mbar
    tick(plant, 60.0)
    assert plant.state.pressure_mbar > p_trip  # the leak fills the space back up
    with pytest.raises(DeviceFault, match="tripped"):
        await machine.pump.start()


async def test_lamp_stuck_on_heats_without_a_command_and_dead_zone_reads_fault() -> None:
    machine, plant, _ = await rig(
        at(0.0, "lamps.z1", "stuck_on", value=60.0), at(0.0, "lamps.z4", "fail")
    )
    await machine.dio.write_output(OUT_LAMP_CONTACTOR, True)
    await machine.dio.write_output(OUT_SCR_ENABLE, True)
    await machine.lamps.set_power([0.0, 30.0, 30.0, 30.0])
    tick(plant, 2.0)
    power = await machine.lamps.read_power()
    assert [r.value for r in power[:3]] == [60.0, 30.0, 30.0]
    assert power[3].status is Status.FAULT and power[3].value == 0.0
    assert plant.state.filament_w[3] == 0.0


async def test_o2_analyzer_failure_reads_stale_never_zero() -> None:
    machine, plant, _ = await rig(at(3.0, "o2", "fail"))
    tick(plant, 2.5)
    ok = await machine.o2.read()
    assert ok.ok and ok.ts == 2.0
    tick(plant, 10.0)
    r = await machine.o2.read()
    assert r.status is Status.STALE and r.ts == 2.0 and r.value == ok.value


async def test_stuck_o2_analyzer_keeps_streaming_one_value() -> None:
    machine, plant, _ = await rig(at(1.0, "o2", "stuck", value=3.0))
    tick(plant, 5.0)
    r = await machine.o2.read()
    assert r.ok and r.value == 3.0 and r.ts == 4.0
    assert plant.state.o2_ppm > 100_000.0


async def test_estop_forces_the_lamp_contactor_off_in_hardware() -> None:
    machine, plant, _ = await rig(at(2.0, "dio", "estop"))
    await machine.dio.write_output(OUT_LAMP_CONTACTOR, True)
    await machine.dio.write_output(OUT_SCR_ENABLE, True)
    await machine.lamps.set_power([50.0] * 4)
    tick(plant, 3.0)
    assert not (await machine.dio.read_inputs())[IN_ESTOP_OK]
    assert not (await machine.dio.read_outputs())[OUT_LAMP_CONTACTOR]
    await machine.dio.write_output(OUT_LAMP_CONTACTOR, True)  # the chain holds it off
    assert not (await machine.dio.read_outputs())[OUT_LAMP_CONTACTOR]
    e_in = plant.state.energy_in_j
    tick(plant, 5.0)
    assert plant.state.filament_w == pytest.approx((0.0,) * 4, abs=1e-3)
    assert plant.state.energy_in_j - e_in < 0.25 * 0.38 * 2000.0  # filament decay only
    plant.clear_faults()  # E-stop released and reset
    assert (await machine.dio.read_inputs())[IN_ESTOP_OK]
    assert not (await machine.dio.read_outputs())[OUT_LAMP_CONTACTOR]  # stays off until asked


async def test_door_open_clears_the_door_input() -> None:
    machine, plant, _ = await rig(at(1.0, "dio", "door_open"))
    assert (await machine.dio.read_inputs())[IN_DOOR_CLOSED]
    tick(plant, 1.0)
    assert not (await machine.dio.read_inputs())[IN_DOOR_CLOSED]


async def test_stage_uv_and_dispenser_failures_raise_device_fault() -> None:
    machine, plant, _ = await rig(
        at(1.0, "zstage", "fail"), at(1.0, "uv", "fail"), at(1.0, "dispenser", "fail")
    )
    await machine.zstage.home()
    tick(plant, 1.0)
    with pytest.raises(DeviceFault):
        await machine.zstage.move_abs(10.0, 10.0)
    assert (await machine.zstage.status()).fault
    with pytest.raises(DeviceFault):
        await machine.uv.open_shutter()
    uv = await machine.uv.status()
    assert uv.fault and not uv.lamp_ready
    with pytest.raises(DeviceFault):
        await machine.dispenser.dispense(1.0)
    assert (await machine.dispenser.status()).fault


async def test_injector_refuses_faults_the_plant_cannot_apply() -> None:
    plant = Plant(ManualClock(), PlantParams(zones=2))
    with pytest.raises(ScenarioError, match=r"fault\[0\]\.device"):
        FaultInjector(FaultScenario(fault=[at(0.0, "lamps.z4", "fail")]), plant, plant.clock)
