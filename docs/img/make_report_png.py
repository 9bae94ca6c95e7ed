"""Regenerate docs/img/report.png: a real simulated run, its report, a Chromium screenshot.

    .venv/bin/python docs/img/make_report_png.py

The run is the shipped SAC305 recipe on the simulated machine in virtual time (the same
executor, plant and record as `bonderd run --sim`), so the picture shows what the software
produces, not a mock-up. Needs Debian's chromium.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from daemon.config import Settings, config_hash  # noqa: E402
from daemon.machine.factory import close_all, connect_all  # noqa: E402
from daemon.machine.monitor import Monitor  # noqa: E402
from daemon.recipe.load import load_recipe_file  # noqa: E402
from daemon.report import write_report  # noqa: E402
from daemon.run.executor import Executor  # noqa: E402
from daemon.store.records import RunStore  # noqa: E402
from daemon.thermal.source import configured_model  # noqa: E402
from drivers.clock import VirtualClock  # noqa: E402
from drivers.sim.devices import build_sim_machine  # noqa: E402
from drivers.sim.plant import Plant  # noqa: E402

RECIPE = REPO / "recipes" / "sac305-polyimide.toml"
OUT = REPO / "docs" / "img" / "report.png"


async def record_run(data_dir: Path) -> str:
    settings = Settings()
    loaded = load_recipe_file(RECIPE, settings.limits)
    clock = VirtualClock()
    plant = Plant(clock, seed=0)
    solder = loaded.recipe.materials.solder
    plant.set_solder(solder.solidus_c, solder.liquidus_c)
    machine = build_sim_machine(plant)
    await connect_all(machine)
    monitor = Monitor(machine, clock, concurrent=False)
    with RunStore(data_dir) as store:
        executor = Executor(
            machine,
            clock,
            monitor,
            store,
            settings.limits,
            equipment_id=settings.equipment_id,
            config_hash=config_hash(settings),
            # The simulated plant's identified model, as `bonderd run --sim` uses.
            thermal_model=configured_model(settings, sim=True),
        )
        monitor_task = asyncio.create_task(monitor.run())
        try:
            await monitor.next()
            doc = await executor.run(loaded, lot_id="L2026-0412", operator="A. Meyer")
        finally:
            monitor_task.cancel()
            await asyncio.gather(monitor_task, return_exceptions=True)
            await close_all(machine)
    return str(doc["run_id"])


def main() -> int:
    browser = shutil.which("chromium")
    if browser is None:
        print("needs Debian's chromium (apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run_id = asyncio.run(record_run(work / "data"))
        with RunStore(work / "data") as store:
            page = write_report(store, run_id, work)
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={work / 'profile'}",
                "--window-size=1200,1900",
                f"--screenshot={OUT}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
