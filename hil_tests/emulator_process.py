"""`bonderd emulate` in its own process, for the HIL bond.

The emulators get their own interpreter and event loop, so the daemon's control loop and the
devices it talks to do not take turns on one thread (the reason the in-process bond was
load-sensitive). The fixture writes a config with free ports, starts the process, waits for
its "listening" lines and stops it with SIGTERM afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from drivers.emulators.modbus_devices import _free_port
from drivers.emulators.runner import DRIVERS, EmulatedMachine

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 30.0


@dataclass
class EmulatorProcess:
    config: Path
    proc: asyncio.subprocess.Process
    lines: list[str]


def config_text(data_dir: Path, machine: EmulatedMachine | None = None) -> str:
    machine = machine or EmulatedMachine()
    host = "127.0.0.1"
    out = [f'data_dir = "{data_dir}"', ""]
    wago_port = _free_port(host)
    for dev, driver in DRIVERS.items():
        keys: dict[str, float | int | str]
        if driver in ("wago-750-352", "adam-6018", "gfx4-ir"):
            port = wago_port if driver == "wago-750-352" else _free_port(host)
            keys = {"host": host, "port": port}
            if driver == "gfx4-ir":
                keys["baudrate"] = machine.gfx4_baudrate
        else:
            keys = {"url": f"socket://{host}:{_free_port(host)}"}
        keys.update(machine.transport_extras(dev))
        inline = ", ".join(
            f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in keys.items()
        )
        out += [f"[devices.{dev}]", f'driver = "{driver}"', f"transport = {{ {inline} }}", ""]
    return "\n".join(out)


@contextlib.asynccontextmanager
async def emulator_process(
    tmp: Path, speed: float, recipe: Path | None = None
) -> AsyncIterator[EmulatorProcess]:
    cfg = tmp / "emulated.toml"
    cfg.write_text(config_text(tmp / "data", EmulatedMachine(gfx4_baudrate=38400)))
    args = [sys.executable, "-m", "daemon.app.cli", "emulate", "--config", str(cfg)]
    args += ["--speed", f"{speed:g}"]
    if recipe is not None:
        args += ["--recipe", str(recipe)]
    log = (tmp / "emulate.log").open("wb")  # the emulators' own log, for a post-mortem
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    log.close()
    # The emulators stand for instruments with processors of their own, which a busy
    # controller PC cannot slow down. On a shared CI host they get a higher scheduling
    # priority, so the test measures the drivers and the daemon, not the neighbours' jobs.
    # (Silently skipped where the process may not raise a priority.)
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, proc.pid, -10)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(READY_TIMEOUT_S):
            while True:
                raw = await proc.stdout.readline()
                if not raw:
                    raise RuntimeError(f"bonderd emulate exited: {lines}")
                lines.append(raw.decode().rstrip())
                if lines[-1].startswith("plant at"):
                    break
        yield EmulatorProcess(cfg, proc, lines)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
