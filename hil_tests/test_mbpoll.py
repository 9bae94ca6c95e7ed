"""A third-party Modbus master (mbpoll, Debian) against the emulators, by the manuals' addresses.

mbpoll numbers registers from 1 (``-r 1`` is protocol address 0), as the manuals' 4xxxx
references do.
"""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest

from drivers.emulators.modbus_devices import Gfx4Context
from hil_tests.conftest import Rig, emulated

MBPOLL = shutil.which("mbpoll")
pytestmark = pytest.mark.skipif(
    MBPOLL is None, reason="mbpoll not installed (tools/debian-packages.txt)"
)


async def mbpoll(port: int, *args: str, write: str | None = None) -> dict[int, int]:
    assert MBPOLL is not None
    proc = await asyncio.create_subprocess_exec(
        MBPOLL,
        "-m",
        "tcp",
        "-a",
        "1",
        "-1",
        "-0",
        "-p",
        str(port),
        *args,
        "127.0.0.1",
        *([write] if write is not None else []),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    text = out.decode()
    assert proc.returncode == 0, text
    return {
        int(a): int(v, 0)
        for a, v in re.findall(r"^\[(\d+)\]:\s+(-?(?:0x)?[0-9A-Fa-f]+)", text, re.M)
    }


async def test_mbpoll_reads_adam_thermocouples(rig: Rig) -> None:
    emus = emulated(rig)
    port = emus.modbus["thermocouples"].port
    values = await mbpoll(port, "-t", "4", "-r", "0", "-c", "8")
    assert rig.plant is not None
    for idx, ch in enumerate(("chip", "component", "chuck")):
        celsius = values[idx] / 65535 * 1370.0
        assert abs(celsius - rig.plant.state.tc_junction_c[ch]) < 1.0
    assert all(values[i] == 65535 for i in range(3, 8))  # unwired inputs: burnout
    status = await mbpoll(port, "-t", "4", "-r", "100", "-c", "16")
    assert [status[100 + 2 * i] & 0x8 for i in range(3)] == [0, 0, 0]
    assert all(status[100 + 2 * i] & 0x8 for i in range(3, 8))


async def test_mbpoll_arms_the_wago_watchdog(rig: Rig) -> None:
    emus = emulated(rig)
    port = emus.modbus["dio"].port
    await mbpoll(port, "-t", "4:hex", "-r", str(0x1001), write="0xFFFF")
    await mbpoll(port, "-t", "4", "-r", str(0x1000), write="10")  # 1.0 s
    await mbpoll(port, "-t", "4", "-r", str(0x1003), write="1")
    assert (await mbpoll(port, "-t", "4", "-r", str(0x1006)))[0x1006] == 1
    assert emus.wago.wd_status == 1
    await asyncio.sleep(1.3)
    assert (await mbpoll(port, "-t", "4", "-r", str(0x1006)))[0x1006] == 2  # exhausted
    await mbpoll(port, "-t", "4:hex", "-r", str(0x1008), write="0xAA55")
    assert (await mbpoll(port, "-t", "4", "-r", str(0x1006)))[0x1006] == 0


async def test_mbpoll_reads_and_writes_gfx4_registers_over_rtu(rig: Rig) -> None:
    """GFX4 access mode on the RTU line (the emulator's pty): custom block and zone maps."""
    emus = emulated(rig)
    assert MBPOLL is not None
    pty = emus.gfx4_pty.path

    async def rtu(*args: str, write: list[str] | None = None) -> dict[int, int]:
        assert MBPOLL is not None
        proc = await asyncio.create_subprocess_exec(
            MBPOLL,
            "-m",
            "rtu",
            "-b",
            "38400",
            "-P",
            "none",
            "-a",
            "1",
            "-1",
            "-0",
            *args,
            pty,
            *(write or []),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
        text = out.decode()
        assert proc.returncode == 0, text
        return {int(a): int(v) for a, v in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", text, re.M)}

    # Manual power of zones 1-4 through the custom map (one FC16), read back per zone map.
    await rtu("-t", "4", "-r", "0", write=["100", "200", "300", "405"])
    block = await rtu("-t", "4", "-r", "0", "-c", "12")
    assert [block[i] for i in range(4)] == [100, 200, 300, 405]
    zone2 = await rtu("-t", "4", "-r", str(2048 + 252))  # zone 2 MANUAL_POWER, zone map
    assert zone2[2048 + 252] == 200
    ctx = emus.modbus["lamps"].context
    assert isinstance(ctx, Gfx4Context) and ctx.manual == [100, 200, 300, 405]
