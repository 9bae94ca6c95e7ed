"""A request abandoned mid-flight (the monitor's cycle ended at its budget) leaves no trace.

The monitor publishes each snapshot at its read budget and cancels the reads still running
(docs/adr/0100). What the drivers must guarantee then, each tested here against the
emulators: the bus is free at once; an answer that arrives after the cancel is never taken
for the next request's (RTU and the ASCII lines carry no id: the link is re-opened); a
cancelled re-connect does not leave the WAGO watchdog half armed. And the monitor over the
real drivers: a driver that overruns its own timeout costs its own reading, not the
snapshot, and never makes the monitor stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from daemon.machine.monitor import READ_GRACE_S, READ_TIMEOUT_S
from daemon.run.rig import BuiltMachine
from drivers.wago import registers as wago
from hil_tests.conftest import Rig, emulated
from hil_tests.watch import (
    LIMITS,
    Watched,
    modbus_bus,
    worst_age_s,
)


async def _cancel_when(
    task: asyncio.Task[Any], ready: Callable[[], bool], after_s: float = 0.0
) -> None:
    """Cancel ``task`` ``after_s`` after ``ready()`` holds (its request is in the emulator)."""
    deadline = time.monotonic() + 3.0
    while not ready():
        assert time.monotonic() < deadline, "the request never reached the emulator"
        assert not task.done(), task
        await asyncio.sleep(0.005)
    await asyncio.sleep(after_s)
    assert not task.done(), task
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_an_rtu_answer_after_the_cancel_is_never_taken_for_the_next_request(
    rig: Rig, machine: BuiltMachine
) -> None:
    """GFX4 (RTU over TCP): a block read cancelled while the unit is answering it.

    Had the link been kept, the block (an FC3 answer) would pass for the next request's, a
    power write: the write's own echo would then pass for its read-back, and the command
    would fail its verification (or, worse, seem to pass on the old registers).
    """
    emus = emulated(rig)
    m = machine.machine
    gfx4 = emus.modbus["lamps"]
    bus = modbus_bus(machine, "lamps")
    held = gfx4.bad.delayed
    gfx4.bad.delay_s = 0.3
    reading = asyncio.create_task(m.lamps.read_power(0.5))
    # Cancelled 0.1 s before the unit answers: the answer would come within the next
    # request's first attempt (0.2 s), not after a retry (whose settle time would drop it).
    await _cancel_when(reading, lambda: gfx4.bad.delayed > held, after_s=0.2)
    gfx4.bad.delay_s = 0.0
    assert not bus.lock.locked()  # the bus is free at once
    # At once a different request: a write and its read-back.
    await m.lamps.set_power([30.0] * m.lamps.zones, 0.5)
    assert gfx4.context.manual == [300] * m.lamps.zones  # type: ignore[attr-defined]
    block = await m.lamps.read_power(0.5)
    assert len(block) == m.lamps.zones
    await m.lamps.set_power([0.0] * m.lamps.zones, 0.5)
    assert gfx4.context.manual == [0] * m.lamps.zones  # type: ignore[attr-defined]


async def test_a_serial_answer_after_the_cancel_is_never_taken_for_the_next_exchange(
    rig: Rig, machine: BuiltMachine
) -> None:
    """TPG 36x: a read cancelled while the gauge sends the pressure (the answer to ``ENQ``):
    the next read's ``PR1`` would take that late pressure for its ACK."""
    emus = emulated(rig)
    m = machine.machine
    tpg = emus.emulator("gauge")
    held = tpg.bad.delayed
    tpg.bad.delay_s = 0.3
    reading = asyncio.create_task(m.gauge.read(1.0))
    # The ACK to PR1 came (late), the pressure is on its way.
    await _cancel_when(reading, lambda: tpg.bad.delayed > held + 1, after_s=0.1)
    tpg.bad.delay_s = 0.0
    for _ in range(3):
        r = await m.gauge.read(0.5)
        assert r.ok and 900 < r.value < 1100, r  # the emulated chamber is at atmosphere


async def test_a_cancelled_reconnect_arms_the_wago_watchdog_in_full_on_the_next_request(
    rig: Rig, machine: BuiltMachine
) -> None:
    """The coupler's on-connect configuration (stop the watchdog, set its time and mask,
    trigger it) cancelled half way: the watchdog is stopped at that point. The link must
    not pass for a configured one: the next request re-opens it and arms the watchdog."""
    emus = emulated(rig)
    m = machine.machine
    coupler = emus.wago
    assert coupler.wd_status == wago.WD_STATUS_ACTIVE  # armed by the fixture's connect
    bus = modbus_bus(machine, "dio")
    await bus.reopen()  # the link dropped: the next request re-connects and configures
    emus.emulator("dio").bad.delay_s = 0.5  # reads are slow: the hook's first read waits
    reading = asyncio.create_task(m.dio.read_inputs(1.0))
    # Cancelled once the hook has stopped the watchdog and waits for a read.
    await _cancel_when(reading, lambda: coupler.wd_status == wago.WD_STATUS_OFF)
    emus.emulator("dio").bad.delay_s = 0.0
    assert coupler.wd_status == wago.WD_STATUS_OFF
    await m.dio.read_inputs(0.5)
    assert coupler.wd_status == wago.WD_STATUS_ACTIVE
    assert coupler.wd_time == 10  # 1 s, in 100 ms units


async def test_a_driver_overrunning_its_timeout_costs_its_reading_not_the_snapshot(
    rig: Rig, machine: BuiltMachine, watched: Watched
) -> None:
    """The TPG answers every line 0.3 s late: a read (``PR1``, then ``ENQ``, each within
    its timeout) takes 0.6 s. Cut at the budget, the gauge is missing from each snapshot and
    every other device is in it, published on time; before, every cycle waited the 0.6 s
    and two in a row made the monitor stale."""
    emus = emulated(rig)
    tpg = emus.emulator("gauge")
    since = time.monotonic()
    tpg.bad.delay_s = 0.3
    try:
        await asyncio.sleep(2.0)
    finally:
        tpg.bad.delay_s = 0.0
    window = [(wall, s) for wall, s in watched.snaps if wall >= since + 0.7]
    assert len(window) >= 3
    for wall, snap in window:
        assert "gauge" in snap.errors, snap.errors
        assert set(snap.errors) == {"gauge"}, snap.errors
        assert snap.temps and snap.lamp_pct and snap.inputs is not None
        # Published at the budget after its reads began (a loaded host: some slack).
        assert wall - watched.started[snap.t] < READ_TIMEOUT_S + READ_GRACE_S + 0.15
    assert worst_age_s(watched, since) < LIMITS.snapshot_stale_s
    assert watched.interlocks.trip is None  # no monitor_stale
    assert watched.monitor.cut_reads >= 3
    # The gauge answers on time again: it is read again (its line re-opened).
    back_by = time.monotonic() + 3.0
    while not any(w > since + 2.0 and "gauge" not in s.errors for w, s in watched.snaps):
        assert time.monotonic() < back_by, "the gauge's readings did not come back"
        await asyncio.sleep(0.05)


pytestmark = pytest.mark.timeout(60)
