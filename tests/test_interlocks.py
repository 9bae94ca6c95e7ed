"""The interlock monitor: rules on synthetic snapshots, latching, reset, suspension, dead-man."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from daemon.config import Limits
from daemon.machine.factory import close_all, connect_all
from daemon.machine.monitor import Monitor, Snapshot
from daemon.recipe.load import load_recipe_file
from daemon.safety.findings import Action
from daemon.safety.interlocks import InterlockLatched, Interlocks
from daemon.safety.rules import RuleEngine
from daemon.safety.run_view import RunLimits, RunView
from daemon.steps.context import StepContext
from drivers.clock import ManualClock, VirtualClock
from drivers.protocols import (
    IN_CHILLER_FLOW,
    IN_DOOR_CLOSED,
    IN_ESTOP_OK,
    OUT_LAMP_CONTACTOR,
    OUT_SCR_ENABLE,
    ChillerStatus,
    PumpStatus,
)
from drivers.reading import Reading, Status
from drivers.sim.devices import build_sim_machine
from drivers.sim.faults import parse_scenario
from drivers.sim.plant import Plant
from tests.simrun import RECIPES, run_recipe

SAC = next(r for r in RECIPES if r.name.startswith("sac305"))
LIMITS = Limits()
RUN_LIMITS = RunLimits.of(load_recipe_file(SAC, LIMITS).recipe, LIMITS)


def snap(
    t: float, *, chip: float = 25.0, comp: float = 25.0, chuck: float = 25.0, **kw: Any
) -> Snapshot:
    temps = {
        "chip": Reading(chip + (t * 7.3 % 0.3), t),  # a little noise: live sensors move
        "component": Reading(comp + (t * 5.1 % 0.3), t),
        "chuck": Reading(chuck + (t * 3.7 % 0.3), t),
    }
    base = Snapshot(
        t=t,
        temps=temps,
        pressure=Reading(1.0 + (t * 1.3 % 0.01), t),
        o2=Reading(1.0, t),
        lamp_pct=(0.0, 0.0, 0.0, 0.0),
        pump=PumpStatus(running=True, fault=False),
        valves={},
        chiller=ChillerStatus(Reading(20.0, t), 20.0, running=True, fault=False),
        inputs={IN_ESTOP_OK: True, IN_DOOR_CLOSED: True, IN_CHILLER_FLOW: True},
        outputs={},
        stage=None,
        uv=None,
    )
    return replace(base, **kw)


def engine(step: str = "reflow", cmd: float = 0.0, enabled: bool = True) -> RuleEngine:
    eng = RuleEngine(LIMITS)
    eng.arm(RunView(RUN_LIMITS, lambda: step, lambda: enabled, lambda _t: (cmd, cmd)))
    return eng


def codes(eng: RuleEngine, s: Snapshot) -> dict[str, Action]:
    return {f.code: f.action for f in eng.evaluate(s)}


def test_recipe_limits_tighten_the_equipment_limits() -> None:
    # SAC305 peak window max 252 + 20 °C margin, under the 300 °C equipment limit.
    assert RUN_LIMITS.chip_max_c == 272.0
    assert RUN_LIMITS.component_max_c == 320.0
    assert RUN_LIMITS.component_suspend_c == 310.0


def test_a_clean_snapshot_gives_no_finding() -> None:
    eng = engine()
    assert [codes(eng, snap(0.1 * i)) for i in range(50)] == [{}] * 50


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"chip": 280.0}, "chip_overtemp"),
        ({"comp": 321.0}, "component_tg"),
        ({"chuck": 71.0}, "chuck_overtemp"),
        ({"inputs": {IN_ESTOP_OK: False, IN_DOOR_CLOSED: True, IN_CHILLER_FLOW: True}}, "estop"),
        (
            {"inputs": {IN_ESTOP_OK: True, IN_DOOR_CLOSED: False, IN_CHILLER_FLOW: True}},
            "door_open",
        ),
        ({"pump": PumpStatus(running=False, fault=True, detail="tripped")}, "pump_fault"),
        ({"pressure": Reading(5.0, 0.0, Status.FAULT, "sensor error")}, "gauge_fault"),
    ],
)
def test_each_condition_trips_with_its_code(kw: dict[str, Any], code: str) -> None:
    eng = engine()
    temps = {k: kw.pop(k) for k in ("chip", "comp", "chuck") if k in kw}
    found = codes(eng, snap(1.0, **temps, **kw))
    assert found.get(code) is Action.TRIP, found


def test_a_used_device_trips_at_its_first_miss_with_the_lamps_enabled() -> None:
    eng = engine(enabled=True)
    assert codes(eng, snap(1.0, errors={"gauge": "timeout"}))["device_lost"] is Action.TRIP


def test_with_the_lamps_off_a_used_device_trips_after_two_misses_in_a_row() -> None:
    eng = engine(step="pump_down", enabled=False)
    lost = {"gauge": "timeout"}
    assert codes(eng, snap(1.0, errors=lost))["device_lost"] is Action.WARN  # one lost frame
    assert "device_lost" not in codes(eng, snap(1.05))  # it answered again: count restarts
    assert codes(eng, snap(1.10, errors=lost))["device_lost"] is Action.WARN
    assert codes(eng, snap(1.15, errors=lost))["device_lost"] is Action.TRIP


def test_thermocouple_open_stale_range_and_stuck() -> None:
    eng = engine()
    s = snap(1.0)
    open_tc = {**s.temps, "chip": Reading(1372.0, 1.0, Status.FAULT, "open thermocouple")}
    assert codes(eng, replace(s, temps=open_tc))["tc_open"] is Action.TRIP
    stale = {**s.temps, "chuck": Reading(25.0, 0.2)}
    assert codes(eng, replace(s, temps=stale))["tc_stale"] is Action.TRIP
    wild = {**s.temps, "component": Reading(-80.0, 1.0)}
    assert codes(eng, replace(s, temps=wild))["tc_range"] is Action.TRIP
    eng = engine()
    found: dict[str, Action] = {}
    for i in range(30):  # 3 s of one identical value at 10 Hz
        t = 2.0 + 0.1 * i
        s = snap(t)
        found = codes(eng, replace(s, temps={**s.temps, "component": Reading(40.0, t)}))
    assert found.get("tc_component_stuck") is Action.TRIP


def test_stuck_needs_enough_readings_not_just_time() -> None:
    # A monitor slowed to one snapshot a second (a device timing out) repeats by chance.
    eng = engine()
    for i in range(4):
        s = snap(float(i))
        found = codes(eng, replace(s, temps={**s.temps, "chuck": Reading(27.0, float(i))}))
    assert "tc_chuck_stuck" not in found


def test_thermocouples_disagreeing_before_heating_trip() -> None:
    eng = engine(step="purge")
    assert "tc_disagree" not in codes(eng, snap(1.0, chip=30.0, chuck=20.0))
    assert codes(eng, snap(1.1, chip=45.0, chuck=20.0))["tc_disagree"] is Action.TRIP


def test_pressure_rising_during_heating_trips_and_asks_to_vent_at_once() -> None:
    eng = engine(step="cool")
    assert codes(eng, snap(1.0)) == {}
    found = [
        f for f in eng.evaluate(snap(1.1, pressure=Reading(9.0, 1.1))) if f.code == "vacuum_lost"
    ]
    assert found and found[0].action is Action.TRIP and found[0].vent_now


def test_oxygen_suspends_before_the_lamps_are_on_and_trips_once_they_are() -> None:
    high = {"o2": Reading(300.0, 1.0), "pressure": Reading(1.0, 1.0)}  # 0.3 ppm·bar: 0.0003
    assert "o2_high" not in codes(engine(step="reflow", enabled=False), snap(1.0, **high))
    # 2 mbar at 50 000 ppm = 0.1 mbar of O2, above the recipe's 0.05 mbar.
    leak = {"o2": Reading(50_000.0, 1.0), "pressure": Reading(2.0, 1.0)}
    assert (
        codes(engine(step="reflow", enabled=False), snap(1.0, **leak))["o2_high"] is Action.SUSPEND
    )
    assert codes(engine(step="reflow", enabled=True), snap(1.0, **leak))["o2_high"] is Action.TRIP
    # At atmosphere the ppm limit applies: 60 ppm > 50 ppm.
    atm = {"o2": Reading(60.0, 1.0), "pressure": Reading(1000.0, 1.0)}
    assert codes(engine(step="pump_down"), snap(1.0, **atm))["o2_high"] is Action.SUSPEND


def test_component_near_tg_suspends_with_hysteresis() -> None:
    eng = engine()
    assert codes(eng, snap(1.0, comp=311.0))["component_near_tg"] is Action.SUSPEND
    # Still suspended inside the 5 °C band, released below it.
    assert "component_near_tg" in codes(eng, snap(1.1, comp=306.0))
    assert "component_near_tg" not in codes(eng, snap(1.2, comp=304.0))


def _context(clock: ManualClock) -> StepContext:
    # Only the lamp-command bookkeeping is exercised: nothing else of the context is touched.
    return StepContext(None, clock, None, None, Limits())  # type: ignore[arg-type]


def test_lamps_switched_off_after_the_read_are_not_a_stuck_scr() -> None:
    """A host that judges two snapshots late, both read before the lamps went off at the end
    of cooling, must not open the contactor for a stuck SCR (a false trip scraps the panel);
    the same output read after the lamps went off is one."""
    clock = ManualClock(10.0)
    ctx = _context(clock)
    ctx.note_lamp_cmd(15.0)
    eng = RuleEngine(LIMITS)
    eng.arm(RunView(RUN_LIMITS, lambda: "cool", lambda: True, ctx.lamp_cmd_since))
    lit = (15.0, 15.0, 15.0, 15.0)
    clock.t = 10.2
    ctx.note_lamp_cmd(0.0)  # after the two reads below, before they are judged
    clock.t = 10.25
    assert "lamp_uncommanded" not in codes(eng, snap(10.1, lamp_pct=lit))
    assert "lamp_uncommanded" not in codes(eng, snap(10.15, lamp_pct=lit))
    # Read at the switch-off's own instant: before or after it, no telling (ADR 0187).
    assert "lamp_uncommanded" not in codes(eng, snap(10.2, lamp_pct=lit))
    clock.t = 10.3
    codes(eng, snap(10.25, lamp_pct=lit))
    assert codes(eng, snap(10.3, lamp_pct=lit))["lamp_uncommanded"] is Action.TRIP


def test_a_command_at_the_reads_own_instant_is_not_known_to_precede_it() -> None:
    """On the paced clock of ``serve --sim`` the read, the controller's next command and the
    judgement can share one clock instant in any order: a read of 74 % judged after a cut to
    54 % at its own instant tripped a good run (``test_serve_runs``, ~1 run in 8 under the
    CI's load). A stuck SCR still trips on the next two reads."""
    clock = ManualClock(311.6)
    ctx = _context(clock)
    ctx.note_lamp_cmd(74.7)
    eng = RuleEngine(LIMITS)
    eng.arm(RunView(RUN_LIMITS, lambda: "cool", lambda: True, ctx.lamp_cmd_since))
    clock.t = 311.65
    lit = (74.7, 74.7, 74.7, 74.7)
    ctx.note_lamp_cmd(54.7)  # after the read below, at the same instant
    assert ctx.lamp_cmd_since(311.65) == (54.7, 74.7)
    assert "lamp_uncommanded" not in codes(eng, snap(311.65, lamp_pct=lit))
    clock.t = 311.7
    ctx.note_lamp_cmd(13.4)
    assert "lamp_uncommanded" not in codes(eng, snap(311.7, lamp_pct=(54.7,) * 4))
    clock.t = 311.8
    codes(eng, snap(311.75, lamp_pct=lit))  # the SCR stays at 74.7 % under 13.4 %
    assert codes(eng, snap(311.8, lamp_pct=lit))["lamp_uncommanded"] is Action.TRIP


def test_a_reading_older_than_the_command_log_is_not_judged_on_the_lamps() -> None:
    """The log keeps LAMP_CMD_LOG_S of commands; at 100x that is 20 ms of wall time, and the
    staleness limit is a second of it. A reading from before the log's oldest entry was
    taken under a command the log no longer has: neither a stuck SCR nor a dark lamp."""
    clock = ManualClock(0.0)
    ctx = _context(clock)
    for i in range(100):
        clock.t = 0.05 * i
        ctx.note_lamp_cmd(80.0 if i < 90 else 0.0)
    assert ctx.lamp_cmd_log[0][0] > 1.0  # the 80 % of 1.0 s is gone
    assert ctx.lamp_cmd_since(1.0) == (0.0, 100.0)
    assert ctx.lamp_cmd_since(4.42) == (0.0, 80.0)  # still in the log: judged


def test_lamp_commands_in_force_since_a_reading() -> None:
    clock = ManualClock(0.0)
    ctx = _context(clock)
    assert ctx.lamp_cmd_since(0.0) == (0.0, 0.0)
    for t, pct in ((1.0, 30.0), (2.0, 50.0), (3.0, 10.0)):
        clock.t = t
        ctx.note_lamp_cmd(pct)
    assert ctx.lamp_cmd_since(2.5) == (10.0, 50.0)  # 50 in force at 2.5, 10 since 3
    assert ctx.lamp_cmd_since(3.5) == (10.0, 10.0)
    assert ctx.lamp_cmd_since(0.5) == (0.0, 50.0)
    clock.t = 10.0
    ctx.note_lamp_cmd(20.0)  # older entries age out, the one in force at the horizon stays
    assert ctx.lamp_cmd_since(9.0) == (10.0, 20.0)


def test_stuck_scr_and_heat_without_lamps_and_no_heating() -> None:
    eng = engine(cmd=20.0)
    on = (100.0, 100.0, 100.0, 100.0)
    codes(eng, snap(1.0, lamp_pct=on))
    assert codes(eng, snap(1.1, lamp_pct=on))["lamp_uncommanded"] is Action.TRIP
    eng = engine(cmd=0.0, enabled=False, step="cool")
    found: dict[str, Action] = {}
    for i in range(40):  # lamps off, chip climbing 4 °C/s
        found = codes(eng, snap(1.0 + 0.1 * i, chip=100.0 + 0.4 * i))
    assert found.get("heat_without_lamps") is Action.TRIP
    eng = engine(cmd=40.0)
    for i in range(3):  # lamps commanded, SCRs measure no load current
        found = codes(eng, snap(1.0 + 0.1 * i))
    assert found.get("lamp_no_output") is Action.TRIP
    eng = engine(cmd=100.0)
    for i in range(40):  # full power, chip flat
        found = codes(eng, snap(1.0 + 0.1 * i, chip=150.0))
    assert found.get("no_heating") is Action.TRIP


def test_idle_machine_only_warns_about_devices_and_ignores_the_door() -> None:
    eng = RuleEngine(LIMITS)
    inputs = {IN_ESTOP_OK: True, IN_DOOR_CLOSED: False, IN_CHILLER_FLOW: False}
    found = codes(eng, snap(1.0, inputs=inputs, errors={"uv": "timeout"}))
    assert found == {"device_lost": Action.WARN}


async def _machine(tmp_path: Path) -> tuple[VirtualClock, Plant, Any, Monitor, Interlocks]:
    clock = VirtualClock()
    plant = Plant(clock)
    plant.arm_dio_watchdog(1.0)
    machine = build_sim_machine(plant)
    await connect_all(machine)
    monitor = Monitor(machine, clock, concurrent=False)
    return clock, plant, machine, monitor, Interlocks(machine, clock, monitor, LIMITS)


async def test_estop_while_idle_latches_until_reset_and_reset_needs_the_cause_gone(
    tmp_path: Path,
) -> None:
    clock, plant, machine, monitor, interlocks = await _machine(tmp_path)
    events: list[tuple[str, str]] = []
    interlocks.subscribe(lambda e, p: events.append((e, p["code"])))
    mon = asyncio.create_task(monitor.run(), name="monitor")
    interlocks.start()
    try:
        await clock.sleep(0.5)
        plant.schedule_fault(
            parse_scenario('[[fault]]\nat_s = 0\ndevice = "dio"\nkind = "estop"\n').fault[0],
            clock.now() + 0.05,
        )
        await clock.sleep(0.5)
        assert interlocks.trip is not None and interlocks.trip.code == "estop"
        assert ("AlarmRaised", "estop") in events
        assert interlocks.lamp_inhibit() is not None
        with pytest.raises(InterlockLatched, match="estop"):
            interlocks.reset()
        plant.clear_faults()  # the operator releases the E-stop
        await clock.sleep(0.3)
        assert interlocks.trip is not None  # latched: releasing the button is not a reset
        interlocks.reset()
        assert interlocks.trip is None and ("AlarmCleared", "estop") in events
    finally:
        mon.cancel()
        await asyncio.gather(mon, return_exceptions=True)
        await interlocks.stop()
        await close_all(machine)


async def test_a_silent_monitor_trips_the_interlocks(tmp_path: Path) -> None:
    clock, _, machine, monitor, interlocks = await _machine(tmp_path)
    mon = asyncio.create_task(monitor.run(), name="monitor")
    interlocks.start()
    try:
        await clock.sleep(0.5)
        assert interlocks.trip is None and interlocks.healthy()
        mon.cancel()  # the monitor hangs
        await asyncio.gather(mon, return_exceptions=True)
        await clock.sleep(LIMITS.snapshot_stale_s + 0.5)
        assert interlocks.trip is not None and interlocks.trip.code == "monitor_stale"
        assert not interlocks.healthy()
    finally:
        await interlocks.stop()
        await close_all(machine)


async def test_hung_daemon_drops_the_contactor_within_the_watchdog_time(tmp_path: Path) -> None:
    """The hardware dead-man: nobody talks to the coupler, its watchdog drops the outputs."""
    clock, plant, machine, monitor, interlocks = await _machine(tmp_path)
    mon = asyncio.create_task(monitor.run(), name="monitor")
    interlocks.start()
    try:
        await machine.dio.write_output(OUT_SCR_ENABLE, True)
        await machine.dio.write_output(OUT_LAMP_CONTACTOR, True)
        await machine.lamps.set_power([50.0] * 4)
        await clock.sleep(3.0)  # normal I/O traffic keeps the watchdog fed
        assert plant.state.contactor_energized and max(plant.state.lamp_output_pct) == 50.0
        # The daemon hangs: monitor and interlocks stop, nobody writes the outputs off.
        mon.cancel()
        await asyncio.gather(mon, return_exceptions=True)
        await interlocks.stop()
        hung_at = clock.now()
        while plant.state.contactor_energized:
            await clock.sleep(0.01)
        assert clock.now() - hung_at <= 1.0 + 0.01
        assert max(plant.state.lamp_output_pct) == 0.0
    finally:
        await close_all(machine)


async def test_a_trip_in_a_run_names_the_interlock_and_is_recorded(tmp_path: Path) -> None:
    scenario = parse_scenario(
        '[[fault]]\nat_step = "cool"\nafter_s = 2.0\ndevice = "chiller"\nkind = "fail"\n'
    )
    doc, sim = await run_recipe(SAC, tmp_path, scenario=scenario)
    assert doc["result"] == "aborted"
    assert doc["reason"].startswith("interlock chiller_fault")
    record_alarms = [a for a in doc["alarms"] if a["code"] == "chiller_fault"]
    assert record_alarms and record_alarms[0]["severity"] == "alarm"
    raised = [p for _, e, p in sim.events if e == "AlarmRaised" and p["code"] == "chiller_fault"]
    assert raised
    # Latched: the next start is refused until an operator reset with the cause gone.
    assert sim.interlocks.trip is not None
