"""One lost answer costs a retry, not a reading; a device that stays silent still trips.

The monitor and the interlocks run over the real drivers against the emulators, with the
run rules armed as in a reflow with the lamps enabled (where a used device trips at its
first missed reading). An emulator loses exactly one answer at a chosen instant: every
snapshot must still hold every device's reading and the monitor must never go stale. Then
a device goes silent for two seconds: `device_lost` trips at its first missed reading.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from daemon.recipe.load import load_recipe_file
from daemon.run.rig import BuiltMachine
from daemon.safety.findings import Action
from daemon.safety.rules import RuleEngine
from daemon.safety.run_view import RunLimits, RunView
from hil_tests.conftest import Rig, emulated
from hil_tests.watch import (
    LIMITS,
    RECIPE,
    Watched,
    device_trips,
    modbus_bus,
    worst_age_s,
)

# The device each emulator serves, and the monitor's name for its reading.
MODBUS = {"dio": "dio", "thermocouples": "tc", "lamps": "lamps"}
# Every reading a silent emulator takes away: the coupler serves the inputs, the outputs,
# the valves and the Z stage's load cell.
SERVES = {
    "dio": {"dio", "dio.outputs", "valves", "zstage"},
    "thermocouples": {"tc"},
    "lamps": {"lamps"},
}


@pytest.mark.parametrize("device", list(MODBUS))
async def test_one_lost_modbus_answer_costs_a_retry_not_a_reading(
    rig: Rig, machine: BuiltMachine, watched: Watched, device: str
) -> None:
    emus = emulated(rig)
    bad = emus.emulator(device).bad
    bus = modbus_bus(machine, device)
    retried = bus.retried
    since = time.monotonic()
    bad.drop_answers = 1
    deadline = time.monotonic() + 3.0
    while bad.dropped < 1:
        assert time.monotonic() < deadline, "the emulator never lost the answer"
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.0)  # the retry, and a second of readings after it
    assert bus.retried == retried + 1  # the lost answer was asked again, once
    window = [s for wall, s in watched.snaps if wall >= since]
    assert len(window) >= 3  # readings went on after the loss (a loaded host: a few)
    missed = [(s.t, s.errors) for s in window if s.errors]
    assert missed == [], missed
    assert device_trips(watched, window) == []
    # One retry (0.2 s) inside the read budget: far from the 1 s staleness limit.
    assert worst_age_s(watched, since) < 0.75 * LIMITS.snapshot_stale_s
    assert watched.interlocks.trip is None


async def test_every_modbus_device_losing_an_answer_at_once_costs_one_retry_each(
    rig: Rig, machine: BuiltMachine, watched: Watched
) -> None:
    emus = emulated(rig)
    since = time.monotonic()
    for device in MODBUS:
        emus.emulator(device).bad.drop_answers = 1
    deadline = time.monotonic() + 3.0
    while any(emus.emulator(d).bad.dropped < 1 for d in MODBUS):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.0)
    window = [s for wall, s in watched.snaps if wall >= since]
    assert [s.errors for s in window if s.errors] == []
    assert device_trips(watched, window) == []
    assert watched.interlocks.trip is None


@pytest.mark.parametrize("device", list(MODBUS))
async def test_two_seconds_of_silence_trips_device_lost(
    rig: Rig, machine: BuiltMachine, watched: Watched, device: str
) -> None:
    emus = emulated(rig)
    bad = emus.emulator(device).bad
    since = time.monotonic()
    bad.silent = True
    try:
        await asyncio.sleep(2.0)
    finally:
        bad.clear()
    window = [(wall, s) for wall, s in watched.snaps if wall >= since]
    first_miss = next(wall for wall, s in window if MODBUS[device] in s.errors)
    # Missed at the first read that ran out of its budget (0.4 s), not later.
    assert first_miss - since < 1.0
    trips = device_trips(watched, [s for _, s in window])
    assert any(t.startswith(f"{MODBUS[device]} not answering") for t in trips), trips
    assert {t.split(" ")[0] for t in trips} <= SERVES[device], trips
    # The device answers again: the link is re-opened (with the device's on-connect
    # configuration) inside one read's budget, and its readings come back.
    back_by = time.monotonic() + 8.0  # the backoff after 2 s of silence is at most 1.6 s
    while not any(
        wall > since + 2.0 and MODBUS[device] not in s.errors for wall, s in watched.snaps
    ):
        assert time.monotonic() < back_by, f"{device} readings did not come back"
        await asyncio.sleep(0.05)
    # Throughout, the monitor kept reading every other device: a silent device costs its own
    # reading, and a fast DeviceNotConnected while its link waits for the backoff.
    assert worst_age_s(watched, since) < LIMITS.snapshot_stale_s
    assert watched.interlocks.trip is None  # no monitor_stale


@pytest.mark.parametrize("device", ["lamps", "thermocouples"])
async def test_a_late_answer_is_never_taken_for_the_next_request(
    rig: Rig, machine: BuiltMachine, device: str
) -> None:
    """The first attempt's answer comes after the retry went out (RTU: no transaction id).

    TCP: the framer skips the late answer by its transaction id. RTU: the late answer
    answers the same question (the retry is the same request); the line is kept quiet
    briefly so the retry's own answer is dropped instead of passing for the next request's.
    """
    emus = emulated(rig)
    m = machine.machine
    bad = emus.emulator(device).bad
    bus = modbus_bus(machine, device)
    retried = bus.retried

    async def slow_first_answer() -> None:
        bad.delay_s = 0.3  # longer than one attempt (0.2 s), shorter than the call (0.5 s)
        await asyncio.sleep(0.05)
        bad.delay_s = 0.0

    if device == "lamps":
        await m.dio.write_output("scr_enable", True, 0.5)
        await m.dio.write_output("lamp_contactor", True, 0.5)
        setter = asyncio.create_task(slow_first_answer())
        before = await m.lamps.read_power(0.5)
        # At once a different request: a write and its read-back. Had the retry's answer (a
        # register block) been taken for the write's answer, the write's own echo would then
        # pass for the read-back, and the read-back would fail or show the old power.
        await m.lamps.set_power([30.0] * m.lamps.zones, 0.5)
        await setter
        assert bus.retried == retried + 1
        assert [r.value for r in before] == [0.0] * m.lamps.zones
        assert emus.modbus["lamps"].context.manual == [300] * m.lamps.zones  # type: ignore[attr-defined]
        after = await m.lamps.read_power(0.5)
        assert all(r.value > 0 for r in after)
        await m.lamps.set_power([0.0] * m.lamps.zones, 0.5)
    else:
        setter = asyncio.create_task(slow_first_answer())
        temps = await m.thermocouples.read(0.5)
        await setter
        assert bus.retried == retried + 1
        assert all(r.ok and 15 < r.value < 35 for r in temps.values())
        for _ in range(3):
            again = await m.thermocouples.read(0.5)
            assert all(r.ok and 15 < r.value < 35 for r in again.values())


@pytest.mark.parametrize(("device", "reading"), [("thermocouples", "tc"), ("gauge", "gauge")])
async def test_one_answer_later_than_the_read_budget_is_one_miss_not_a_lost_device(
    rig: Rig, machine: BuiltMachine, watched: Watched, device: str, reading: str
) -> None:
    """A busy device (or a starved host) answers one read 0.6 s late, with the lamps off.

    The read runs out of its budget: one missed reading, a warning. The next read probes the
    device at once (no backoff), gets its answer, and the run goes on: only a second miss in
    a row would be a lost device. (Before, the timeout dropped the link and the next reads
    failed during the backoff: two misses, a trip.) The ADAM on Modbus TCP, the TPG on its
    serial line.
    """
    emus = emulated(rig)
    bad = emus.emulator(device).bad
    run_limits = RunLimits.of(load_recipe_file(RECIPE, LIMITS).recipe, LIMITS)
    pumping = RuleEngine(LIMITS)
    pumping.arm(RunView(run_limits, lambda: "pump_down", lambda: False, lambda _t: (0.0, 0.0)))
    since = time.monotonic()
    # Later than the read budget (0.4 s) by as much as the 0.7 s of ADR 0080 was later than
    # the 0.5 s budget then: the next read's probe (0.3 s) gets its answer.
    bad.delay_s = 0.6
    await asyncio.sleep(0.05)  # one request is in the emulator, delayed
    bad.delay_s = 0.0
    await asyncio.sleep(2.0)
    window = [s for wall, s in watched.snaps if wall >= since]
    missed = [s for s in window if reading in s.errors]
    assert len(missed) == 1, [s.errors for s in missed]
    findings = [f for s in window for f in pumping.evaluate(s) if f.code == "device_lost"]
    assert findings and all(f.action is Action.WARN for f in findings), findings
    assert worst_age_s(watched, since) < LIMITS.snapshot_stale_s
    assert watched.interlocks.trip is None
