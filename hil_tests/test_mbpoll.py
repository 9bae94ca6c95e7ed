"""A third-party Modbus master (mbpoll, Debian) against the emulators, by the manuals' addresses.

mbpoll numbers registers from 1 (``-r 1`` is protocol address 0), as the manuals' 4xxxx
references do.
"""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest

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
