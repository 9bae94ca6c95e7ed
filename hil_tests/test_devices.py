"""Per device over the real drivers: the WAGO watchdog, no answer, garbage, slow, drop-and-return."""

from __future__ import annotations

import asyncio
import time

import pytest

from daemon.run.rig import BuiltMachine
from drivers.emulators.modbus_devices import Gfx4Context
from drivers.errors import DeviceError, DeviceNotConnected, DeviceTimeout
from drivers.protocols import OUT_LAMP_CONTACTOR, OUT_SCR_ENABLE, VALVE_PUMP
from drivers.reading import Status
from drivers.sim.plant import PlantFault
from hil_tests.conftest import Rig, emulated


async def test_wago_watchdog_drops_outputs_when_the_daemon_stops_talking(
    rig: Rig, machine: BuiltMachine
) -> None:
    emus = emulated(rig)
    m = machine.machine
    assert emus.wago.wd_status == 1  # armed by connect()
    await m.dio.write_output(OUT_LAMP_CONTACTOR, True, 0.5)
    await m.dio.write_output(OUT_SCR_ENABLE, True, 0.5)
    await m.valves.set(VALVE_PUMP, True, 0.5)
    # Normal traffic keeps it alive well past the watchdog time (1 s).
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:
        assert (await m.dio.read_outputs(0.5))[OUT_LAMP_CONTACTOR]
        await asyncio.sleep(0.1)
    assert rig.plant is not None and rig.plant.state.contactor_energized
    # Silence: the coupler drops every output on its own within its watchdog time.
    silent_from = time.monotonic()
    while rig.plant.state.contactor_energized:
        assert time.monotonic() - silent_from < 2.0, "contactor still on 2 s after silence"
        await asyncio.sleep(0.02)
    waited = time.monotonic() - silent_from
    assert 0.9 <= waited <= 1.5  # watchdog 1 s; the upper margin absorbs a loaded host
    state = rig.plant.state
    assert not state.outputs[OUT_SCR_ENABLE] and not state.valves[VALVE_PUMP]
    # The write after the timeout is refused and says why; the driver re-opens the link,
    # which re-arms the watchdog, and the outputs stay off until written again.
    with pytest.raises(DeviceError, match="watchdog expired"):
        await m.dio.write_output(OUT_LAMP_CONTACTOR, True, 0.5)
    assert not rig.plant.state.contactor_energized
    assert not (await m.dio.read_outputs(0.5))[OUT_LAMP_CONTACTOR]
    assert emus.wago.wd_status == 1  # re-armed by the new session


@pytest.mark.parametrize("device", ["thermocouples", "gauge"])
async def test_device_that_does_not_answer_times_out_then_recovers(
    rig: Rig, machine: BuiltMachine, device: str
) -> None:
    emus = emulated(rig)
    m = machine.machine
    read = m.thermocouples.read if device == "thermocouples" else m.gauge.read
    emus.emulator(device).bad.silent = True
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeout):
        await read(0.3)
    assert time.monotonic() - t0 < 0.6
    emus.emulator(device).bad.clear()
    # The link was dropped after the timeout; it comes back after the reconnect backoff.
    deadline = time.monotonic() + 3.0
    while True:
        try:
            await read(0.3)
            break
        except DeviceNotConnected:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("device", ["thermocouples", "gauge", "pump"])
async def test_garbage_is_an_error_never_a_value(
    rig: Rig, machine: BuiltMachine, device: str
) -> None:
    emus = emulated(rig)
    m = machine.machine
    emus.emulator(device).bad.garbage = True
    call = {
        "thermocouples": lambda: m.thermocouples.read(0.3),
        "gauge": lambda: m.gauge.read(0.3),
        "pump": lambda: m.pump.status(0.3),
    }[device]
    with pytest.raises(DeviceError):
        await call()


async def test_slow_answer_within_timeout_is_used_beyond_it_times_out(
    rig: Rig, machine: BuiltMachine
) -> None:
    emus = emulated(rig)
    m = machine.machine
    emus.emulator("gauge").bad.delay_s = 0.1
    r = await m.gauge.read(0.5)
    assert r.ok and 900 < r.value < 1100
    emus.emulator("gauge").bad.delay_s = 0.6
    with pytest.raises(DeviceTimeout):
        await m.gauge.read(0.3)


async def test_emulator_restart_drop_and_return(rig: Rig, machine: BuiltMachine) -> None:
    emus = emulated(rig)
    m = machine.machine
    await m.thermocouples.read(0.5)
    em = emus.emulator("thermocouples")
    await em.stop()
    with pytest.raises(DeviceError):
        await m.thermocouples.read(0.3)
    await em.start()
    deadline = time.monotonic() + 6.0
    while True:
        try:
            temps = await m.thermocouples.read(0.3)
            break
        except DeviceError:
            assert time.monotonic() < deadline, "no recovery within 6 s"
            await asyncio.sleep(0.1)
    assert all(r.ok and 15 < r.value < 35 for r in temps.values())


async def test_open_thermocouple_reads_fault_through_adam_burnout(
    rig: Rig, machine: BuiltMachine
) -> None:
    emulated(rig)
    assert rig.plant is not None
    rig.plant.schedule_fault(PlantFault("tc.chip", "open"), at_t=rig.clock.now())
    temps = await machine.machine.thermocouples.read(0.5)
    assert temps["chip"].status is Status.FAULT and "burnout" in temps["chip"].detail
    assert temps["component"].ok


async def test_o2_stream_gap_reads_stale_never_zero(rig: Rig, machine: BuiltMachine) -> None:
    emulated(rig)
    assert rig.plant is not None
    await rig.clock.sleep(2.5)
    first = await machine.machine.o2.read(0.5)
    assert first.ok and first.value > 100_000  # air
    rig.plant.schedule_fault(PlantFault("o2", "fail"), at_t=rig.clock.now())
    await rig.clock.sleep(6.0)
    r = await machine.machine.o2.read(0.5)
    assert r.status is Status.STALE
    assert r.value > 100_000  # the last measured value, aged: never a made-up 0 ppm


async def test_gfx4_power_is_read_back_and_kept_out_of_eeprom(
    rig: Rig, machine: BuiltMachine
) -> None:
    emus = emulated(rig)
    ctx = emus.modbus["lamps"].context
    assert isinstance(ctx, Gfx4Context)
    assert ctx.sp_r == [1, 1, 1, 1]
    await machine.machine.lamps.set_power([10.0, 20.0, 30.0, 40.5], 0.5)
    assert ctx.manual == [100, 200, 300, 405]  # one FC16 write through the custom map
    assert ctx.eeprom_writes == 0
    # Contactor open: no voltage, the zones deliver nothing.
    power = await machine.machine.lamps.read_power(0.5)
    assert [p.value for p in power] == [0.0] * 4
