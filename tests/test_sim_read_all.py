"""The simulated machine read whole (``SimMachine.read_all``) and the monitor's read budget.

What the interlocks see through ``read_all`` must be what they would see through the single
reads: the same numbers for the same seed, each device's faults, connection state and
silence. A silent device costs a cycle its budget once and is reported missing, so the
other devices stay visible (issue #5: a silent I/O coupler blinded the monitor for 1 s).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from daemon.machine.factory import connect_all
from daemon.machine.monitor import CONTROL_PERIOD_S, READ_TIMEOUT_S, Monitor
from daemon.run.virtual import BOND_RECIPES, run_recipe
from drivers.clock import ManualClock, VirtualClock
from drivers.errors import DeviceTimeout, InvalidCommand
from drivers.machine_read import READ_KEYS, MachineReadings, ReadsAll
from drivers.protocols import OUT_LAMP_CONTACTOR
from drivers.reading import Reading, Status
from drivers.sim.devices import SimMachine, build_sim_machine
from drivers.sim.faults import parse_scenario
from drivers.sim.plant import Plant, PlantFault


async def _machine(clock: ManualClock | VirtualClock, seed: int = 3) -> SimMachine:
    machine = build_sim_machine(Plant(clock, seed=seed))
    await connect_all(machine)
    return machine


async def _single_reads(m: SimMachine, timeout: float) -> list[Any]:
    """The monitor's reads one call each, in its order (None for a device that failed)."""
    calls = [
        m.thermocouples.read,
        m.gauge.read,
        m.o2.read,
        m.lamps.read_power,
        m.pump.status,
        m.valves.states,
        m.chiller.status,
        m.dio.read_inputs,
        m.dio.read_outputs,
        m.zstage.status,
        m.uv.status,
        m.dispenser.status,
    ]
    out: list[Any] = []
    for call in calls:
        try:
            out.append(await call(timeout))
        except DeviceTimeout:
            out.append(None)
    return out


def _values(r: MachineReadings) -> list[Any]:
    return [
        r.temps,
        r.pressure,
        r.o2,
        r.lamps,
        r.pump,
        r.valves,
        r.chiller,
        r.inputs,
        r.outputs,
        r.stage,
        r.uv,
        r.dispenser,
    ]


async def _heat(m: SimMachine, clock: ManualClock) -> None:
    """Lamps on, pump down and chiller running for a while: every reading moves."""
    await m.dio.write_output(OUT_LAMP_CONTACTOR, True)
    await m.dio.write_output("scr_enable", True)
    await m.lamps.set_power([40.0] * m.lamps.zones)
    await m.pump.start()
    await m.valves.set("pump_isolation", True)
    await m.chiller.start()
    clock.t += 7.3


async def test_read_all_reads_what_the_single_reads_read_for_the_same_seed() -> None:
    a_clock, b_clock = ManualClock(), ManualClock()
    a, b = await _machine(a_clock), await _machine(b_clock)
    assert isinstance(a, ReadsAll)
    for m, clock in ((a, a_clock), (b, b_clock)):
        await _heat(m, clock)
    for _ in range(5):  # the noise streams stay aligned cycle after cycle
        whole = await a.read_all(0.05)
        single = await _single_reads(b, 0.05)
        assert whole.errors == {}
        assert _values(whole) == single
        assert whole.temps is not None and whole.temps["chip"].value > 30.0
        a_clock.t += 0.05
        b_clock.t += 0.05
    assert a.plant.state == b.plant.state


async def test_faulty_sensors_read_as_through_the_single_reads() -> None:
    a_clock, b_clock = ManualClock(), ManualClock()
    a, b = await _machine(a_clock), await _machine(b_clock)
    faults = [
        PlantFault("tc.chip", "open"),
        PlantFault("tc.component", "drift", 2.0),
        PlantFault("tc.chuck", "no_response"),
        PlantFault("gauge", "fail"),
        PlantFault("o2", "fail"),
        PlantFault("lamps.z1", "fail"),
        PlantFault("chiller", "fail"),
        PlantFault("zstage", "fail"),
    ]
    for m, clock in ((a, a_clock), (b, b_clock)):
        await _heat(m, clock)
        for f in faults:
            m.plant.schedule_fault(f, clock.t)
        clock.t += 3.0
    whole = await a.read_all(0.05)
    assert _values(whole) == await _single_reads(b, 0.05)
    assert whole.temps is not None and whole.temps["chip"].status is Status.FAULT
    assert whole.lamps is not None and whole.lamps[0].status is Status.FAULT
    assert whole.stage is not None and whole.stage.fault


async def test_silent_devices_cost_the_budget_once_and_are_reported_missing() -> None:
    clock = VirtualClock()
    m = await _machine(clock)
    m.plant.schedule_fault(PlantFault("dio", "no_response"), 0.0)
    m.plant.schedule_fault(PlantFault("valves", "no_response"), 0.0)
    t0 = clock.now()
    r = await m.read_all(0.05)
    assert clock.now() == pytest.approx(t0 + 0.05)  # not 3 x 0.05: one budget per call
    assert set(r.errors) == {"dio", "dio.outputs", "valves"}
    assert r.errors["dio"] == "dio: no response within 0.05 s"
    assert r.inputs is None and r.outputs is None and r.valves is None
    # Everything else answered, as of the call's start.
    assert r.temps is not None and r.pressure is not None and r.pump is not None
    assert all(reading.ts == t0 for reading in r.temps.values())


async def test_a_silent_coupler_does_not_rearm_its_watchdog() -> None:
    clock = VirtualClock()
    m = await _machine(clock)
    m.plant.arm_dio_watchdog(1.0)
    await m.dio.write_output(OUT_LAMP_CONTACTOR, True)
    for _ in range(30):  # 1.5 s of answered cycles: the watchdog is re-armed by each
        await m.read_all(0.05)
        await clock.sleep(0.05)
    assert m.plant.contactor_energized
    m.plant.schedule_fault(PlantFault("dio", "no_response"), clock.now())
    for _ in range(11):
        await m.read_all(0.05)
        await clock.sleep(0.05)
    assert not m.plant.contactor_energized  # its own watchdog dropped the outputs


async def test_a_disconnected_device_is_reported_and_the_budget_is_checked() -> None:
    clock = ManualClock()
    m = await _machine(clock)
    await m.gauge.close()
    r = await m.read_all(0.05)
    assert r.pressure is None
    assert r.errors == {"gauge": "gauge: not connected (call connect() first)"}
    assert clock.t == 0.0
    for bad in (0.0, -1.0, float("nan"), float("inf"), "0.5"):
        with pytest.raises(InvalidCommand, match="timeout must be a finite number > 0"):
            await m.read_all(bad)  # type: ignore[arg-type]


async def test_a_replaced_device_or_read_method_is_read_through_it() -> None:
    clock = ManualClock()
    m = await _machine(clock)
    await m.read_all(0.05)  # the reads are resolved once, then reused while nothing changes
    calls: list[float] = []
    original = m.gauge.read

    async def spy(timeout: float = 1.0) -> Reading:
        calls.append(timeout)
        return await original(timeout)

    m.gauge.read = spy  # type: ignore[method-assign]

    class SilentPump:
        name = "pump"

        async def status(self, timeout: float = 1.0) -> Any:
            raise DeviceTimeout("pump", f"no response within {timeout:g} s")

    m.pump = SilentPump()  # type: ignore[assignment]
    r = await m.read_all(0.05)
    assert calls == [0.05]
    assert r.pressure is not None
    assert r.errors == {"pump": "pump: no response within 0.05 s"}


async def test_monitor_publishes_a_silent_device_as_missing_one_period_after_the_reads() -> None:
    clock = VirtualClock()
    m = await _machine(clock)
    monitor = Monitor(m, clock, concurrent=False)
    assert monitor.read_budget_s == CONTROL_PERIOD_S
    assert Monitor(m, clock, concurrent=True).read_budget_s == READ_TIMEOUT_S
    m.plant.schedule_fault(PlantFault("dio", "no_response"), 0.0)
    task = asyncio.create_task(monitor.run())
    try:
        snaps = [await monitor.next() for _ in range(4)]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # One snapshot per period, on schedule: the silent coupler costs no extra time. Each is
    # published one budget after its reads started (the last one at 0.15 + 0.05).
    assert [s.t for s in snaps] == pytest.approx([0.0, 0.05, 0.1, 0.15])
    assert monitor.latest_published_t == pytest.approx(0.2)
    assert monitor.overruns == 0
    for s in snaps:
        assert set(s.errors) == {"dio", "dio.outputs"}
        assert s.inputs is None and s.temp("chip") is not None and s.pressure_mbar() is not None
    assert set(READ_KEYS) >= set(snaps[0].errors)


async def test_next_returns_the_latest_snapshot_and_tolerates_a_cancelled_waiter() -> None:
    clock = VirtualClock()
    m = await _machine(clock)
    monitor = Monitor(m, clock, concurrent=False)
    cancelled = asyncio.create_task(monitor.next())
    waiting = asyncio.create_task(monitor.next())
    await asyncio.sleep(0)
    cancelled.cancel()
    snap = await monitor.read_once()
    assert await waiting is snap is monitor.latest
    assert cancelled.cancelled()


@pytest.mark.parametrize("after_s", [10.0, 10.02])
async def test_a_coupler_going_silent_with_the_lamps_on_trips_within_two_periods(
    tmp_path: Path, after_s: float
) -> None:
    scenario = parse_scenario(
        f'[[fault]]\nat_step = "reflow"\nafter_s = {after_s}\ndevice = "dio"\n'
        'kind = "no_response"\n'
    )
    recipe = next(p for p in BOND_RECIPES if p.stem.startswith("sac305"))
    doc, sim = await run_recipe(recipe, tmp_path, scenario=scenario)
    reflow = next(t for t, e, p in sim.events if e == "StepStarted" and p["name"] == "reflow")
    fired = reflow + after_s
    assert doc["result"] == "aborted"
    assert doc["reason"].startswith("interlock device_lost: dio not answering")
    trip = sim.interlocks.trip
    assert trip is not None and trip.code == "device_lost"
    # Latched (lamps inhibited) and lamps commanded 0 within two control periods; the
    # contactor itself hangs on the silent coupler: its own watchdog drops it.
    assert fired < trip.t <= fired + 2 * CONTROL_PERIOD_S + 1e-9
    t_lamps0 = min(t for t, pct in sim.lamps.power if t >= fired and pct == 0.0)
    assert t_lamps0 <= fired + 2 * CONTROL_PERIOD_S + 1e-9
