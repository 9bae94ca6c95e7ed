"""`bonderd serve --sim` has the I/O coupler's dead-man armed, as `run`, `tune` and the tests.

The daemon's requests stop reaching the simulated coupler in the middle of a reflow (a
stalled link: the daemon still believes its outputs are set). The coupler's own watchdog
must drop the lamp contactor within its time, whatever the daemon's code does meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from daemon.app.serve import Daemon
from daemon.config import load_settings
from daemon.run.rig import DIO_WATCHDOG_S, Plant
from drivers.protocols import OUT_LAMP_CONTACTOR
from tests.mqtt_broker import RECIPES, write_config

SPEED = 20.0
PERIOD_S = 0.05  # the monitor's period: the plant integrates at least this often


async def _until(cond: Callable[[], bool], timeout_s: float) -> None:
    # Polled: the plant's state has no event to wait on.
    async with asyncio.timeout(timeout_s):
        while not cond():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def test_serve_sim_contactor_drops_by_the_coupler_watchdog_when_the_link_stalls(
    tmp_path: Path,
) -> None:
    # No broker listens on this port: the MQTT service retries; commands come in directly.
    settings = load_settings(write_config(tmp_path / "b.toml", broker_port=9), required=True)
    daemon = Daemon(settings, sim=True, speed=SPEED)
    serving = asyncio.create_task(daemon.run())
    try:
        await _until(lambda: daemon.ctl is not None, 20)
        ctl = daemon.ctl
        assert ctl is not None
        plant = ctl.rig.plant
        assert plant is not None
        # Armed for one second of wall time, in the plant's simulated seconds.
        assert plant.dio_watchdog_s == DIO_WATCHDOG_S * SPEED

        start = {
            "command": "start",
            "command_id": "c1",
            "args": {
                "recipe_toml": (RECIPES / "snpb-low-tg.toml").read_text(),
                "lot_id": "DEADMAN",
            },
        }
        reply = await ctl.handle(json.dumps(start).encode(), "remote")
        assert reply["ok"], reply
        await _until(lambda: plant.outputs()[OUT_LAMP_CONTACTOR], 60)
        await _until(lambda: ctl.executor.current_step == "reflow", 60)

        dropped: list[float] = []

        def watch(p: Plant) -> None:
            if not dropped and not p.outputs()[OUT_LAMP_CONTACTOR]:
                dropped.append(p.t)

        plant.add_observer(watch)
        # The stall: from here on nothing the daemon sends reaches the coupler.
        plant.advance()
        last_contact = plant.t
        plant.dio_contact = lambda: None  # type: ignore[method-assign]
        plant.set_output = lambda _name, _on: None  # type: ignore[method-assign]
        await _until(lambda: bool(dropped), 10)
    finally:
        daemon.request_stop("test over")
        await asyncio.wait_for(serving, 60)
    late = dropped[0] - last_contact
    assert DIO_WATCHDOG_S * SPEED - PERIOD_S <= late <= DIO_WATCHDOG_S * SPEED + 2 * PERIOD_S
