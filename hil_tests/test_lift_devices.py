"""Z stage, UV source and dispenser over their real drivers against their emulators."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from daemon.machine.identity import NOT_REPORTED, identify_machine
from daemon.run.rig import BuiltMachine
from drivers.errors import DeviceError, DeviceFault, DeviceTimeout, InvalidCommand
from drivers.protocols import OUT_UV_ENABLE
from drivers.sim.plant import PlantFault
from hil_tests.conftest import Rig, emulated


async def test_zaber_homes_moves_and_reports_position_and_load_cell_force(
    rig: Rig, machine: BuiltMachine
) -> None:
    emulated(rig)
    z = machine.machine.zstage
    st = await z.status(0.5)
    assert not st.homed and st.force_n.ok
    with pytest.raises(InvalidCommand, match="not homed"):
        await z.move_abs(100.0, 500.0, 0.5)
    await z.home(0.5)
    await z.move_abs(400.0, 1000.0, 0.5, accel_um_s2=5000.0)
    deadline = time.monotonic() + 3.0
    while (st := await z.status(0.5)).busy:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert st.homed and not st.fault
    assert abs(st.position_um.value - 400.0) <= 0.5  # a few microsteps (0.1905 µm each)
    assert rig.plant is not None
    assert st.force_n.ok and abs(st.force_n.value - rig.plant.force_n) < 0.01  # 12-bit AI
    with pytest.raises(InvalidCommand):
        await z.move_abs(20_000.0, 100.0, 0.5)


async def test_zaber_stall_reads_fault_and_broken_load_cell_reads_fault(
    rig: Rig, machine: BuiltMachine
) -> None:
    emus = emulated(rig)
    assert rig.plant is not None
    rig.plant.schedule_fault(PlantFault("zstage", "fail"), at_t=rig.clock.now())
    st = await machine.machine.zstage.status(0.5)
    assert st.fault and "FS" in st.detail
    await machine.machine.zstage.stop(0.5)  # a stop still goes out on a stalled axis
    emus.wago.load_cell_broken = True
    st = await machine.machine.zstage.status(0.5)
    assert not st.force_n.ok and "wire break" in st.force_n.detail
    assert not math.isnan(st.position_um.value)


async def test_omnicure_shutter_and_irradiance_round_trip(rig: Rig, machine: BuiltMachine) -> None:
    emulated(rig)
    uv, dio = machine.machine.uv, machine.machine.dio
    await uv.set_irradiance(50.0, 0.5)
    with pytest.raises(DeviceFault, match="Err"):  # its remote interlock line is open
        await uv.open_shutter(0.5)
    await dio.write_output(OUT_UV_ENABLE, True, 0.5)
    await uv.open_shutter(0.5)
    st = await uv.status(0.5)
    assert st.shutter_open and st.irradiance_mw_cm2 == 50.0 and st.lamp_ready
    assert rig.plant is not None and rig.plant.uv_shutter_open
    await uv.close_shutter(0.5)
    assert not (await uv.status(0.5)).shutter_open and not rig.plant.uv_shutter_open
    # The coupler's line alone closes an open shutter (the dead-man of the exposure).
    await uv.open_shutter(0.5)
    await dio.write_output(OUT_UV_ENABLE, False, 0.5)
    assert not (await uv.status(0.5)).shutter_open and not rig.plant.uv_shutter_open


async def test_ultimus_shot_and_stop(rig: Rig, machine: BuiltMachine) -> None:
    emulated(rig)
    d = machine.machine.dispenser
    assert rig.plant is not None
    await d.set_pressure(250.0, 0.5)
    await d.dispense(5.0, 0.5)
    st = await d.status(0.5)
    assert st.dispensing and st.pressure_kpa == 250.0 and rig.plant.dispensing
    await d.stop(0.5)
    st = await d.status(0.5)
    assert not st.dispensing and not rig.plant.dispensing and st.pressure_kpa == 0.0
    with pytest.raises(InvalidCommand):
        await d.dispense(30.0, 0.5)  # longer than the timed mode's 5 digits


@pytest.mark.parametrize("device", ["zstage", "uv", "dispenser"])
async def test_silent_garbage_and_slow_lift_devices(
    rig: Rig, machine: BuiltMachine, device: str
) -> None:
    emus = emulated(rig)
    m = machine.machine
    call = {
        "zstage": lambda: m.zstage.status(0.3),
        "uv": lambda: m.uv.status(0.3),
        "dispenser": lambda: m.dispenser.status(0.3),
    }[device]
    bad = emus.emulator(device).bad

    async def recovers() -> None:
        bad.clear()
        deadline = time.monotonic() + 3.0
        while True:  # the line was dropped; it is back after the reconnect backoff
            try:
                await call()
                return
            except DeviceError:
                assert time.monotonic() < deadline, f"{device} did not come back"
                await asyncio.sleep(0.05)

    bad.delay_s = 0.02
    await call()  # slow but within the timeout: used
    bad.delay_s = 0.0
    bad.garbage = True
    with pytest.raises(DeviceError):
        await call()
    await recovers()
    bad.silent = True
    with pytest.raises(DeviceTimeout):
        await call()
    await recovers()


async def test_devices_say_what_they_are_through_their_drivers(
    rig: Rig, machine: BuiltMachine
) -> None:
    emulated(rig)
    ids = await identify_machine(machine.machine, timeout=1.0)
    assert ids["zstage"].startswith("Zaber device id 50081")
    assert "OmniCure S2000" in ids["uv"]
    assert "TPG361" in ids["gauge"] and "nXDS" in ids["pump"] and "JULABO" in ids["chiller"]
    assert ids["dio"].startswith("WAGO 750-352")
    # The Ultimus and the ADAM-6018 cannot say over their protocols what they are.
    assert ids["dispenser"] == NOT_REPORTED and ids["tc"] == NOT_REPORTED
