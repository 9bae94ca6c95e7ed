"""The operator station in a real browser: Debian's chromium driven by Playwright against
`bonderd serve --sim --speed 50`, a run started over MQTT with bonderctl (the station's own
buttons come with its logins)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.mqtt_broker import RECIPES, REPO, Broker, Serve, running_broker, write_config

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian package chromium not installed (tools/debian-packages.txt)"
)
EQ = "bonder-hmi"
SPEED = 50.0


@dataclass
class Station:
    serve: Serve
    broker: Broker
    url: str

    def bonderctl(self, *args: str) -> str:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "daemon.app.bonderctl",
                "--broker",
                f"mqtt://127.0.0.1:{self.broker.port}",
                "--equipment",
                EQ,
                *args,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def start_run(self, recipe: str, lot: str) -> None:
        self.bonderctl("put-recipe", str(RECIPES / f"{recipe}.toml"))
        self.bonderctl("start", recipe, "--lot", lot, "--operator", "ana")


@contextmanager
def station(workdir: Path, speed: float = SPEED) -> Iterator[Station]:
    with running_broker(workdir / "broker") as broker:
        serve = Serve(
            write_config(workdir / "bonderd.toml", broker_port=broker.port, equipment_id=EQ),
            speed=speed,
        )
        serve.start()
        try:
            serve.wait_ready()
            urls = [x["url"] for x in serve.log_lines() if x.get("event") == "hmi_listening"]
            assert urls, serve.log_text()
            yield Station(serve, broker, urls[0])
        finally:
            serve.stop()


@dataclass
class Watched:
    """What a page did that a user would not see: console errors, foreign requests."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@contextmanager
def browser_page(base_url: str) -> Iterator[tuple[Any, Watched]]:
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 950})
            page = context.new_page()
            watched = Watched()
            page.on(
                "console",
                lambda m: watched.errors.append(m.text) if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
            page.on("request", lambda r: watched.requests.append(r.url))
            page.goto(base_url)
            yield page, watched
        finally:
            browser.close()


def points(page: Any) -> int:
    return int(page.get_attribute("#chart-temps", "data-points"))


def test_live_view_follows_a_run_and_requests_nothing_outside(tmp_path: Path) -> None:
    with station(tmp_path) as st, browser_page(st.url) as (page, watched):
        page.wait_for_selector("#live.live-on")
        assert page.text_content("#state") == "idle"
        assert page.text_content("#control") == "remote"
        # The machine's synoptic is live before any run: the E-stop chain and the door read.
        assert "released" in page.text_content('.tile[data-key="estop_ok"]')
        assert "closed" in page.text_content('.tile[data-key="door_closed"]')

        st.start_run("snpb-low-tg", "LOT-HMI")
        page.wait_for_function("() => document.getElementById('state').textContent === 'running'")
        assert page.text_content("#lot") == "LOT-HMI"
        assert page.text_content("#recipe") == "snpb-low-tg v1"
        assert page.text_content("#e10") == "PRD"
        page.wait_for_function("() => document.getElementById('operator').textContent === 'ana'")
        first_step = page.text_content("#step")

        page.wait_for_function("() => +document.getElementById('chart-temps').dataset.points > 0")
        before = points(page)
        page.wait_for_function(
            f"() => +document.getElementById('chart-temps').dataset.points > {before + 3}"
        )
        # The step advances, its bar moves and a time remaining is shown, through to reflow.
        page.wait_for_function(
            "() => document.getElementById('step').textContent === 'reflow'", timeout=60_000
        )
        assert first_step != "reflow"
        page.wait_for_function("() => document.getElementById('step-progress').value > 0")
        page.wait_for_function(
            "() => document.getElementById('remaining').textContent.startsWith('≈')"
        )
        # In reflow the lamps are on behind a closed contactor and the pump holds the vacuum.
        assert page.get_attribute('.tile[data-key="lamp_contactor"]', "class") == "tile on"
        assert page.get_attribute('.tile[data-key="pump"]', "class") == "tile on"

        # A page opened mid-run draws the whole run so far from the records at once, far
        # more points than the live frames it has seen.
        late = page.context.new_page()
        late.goto(st.url)
        late.wait_for_selector("#live.live-on")
        late.wait_for_function("() => +document.getElementById('chart-temps').dataset.points > 200")
        assert "live" in (late.text_content("#run-note") or "")
        late.close()

        # Before the daemon stops: afterwards the browser rightly logs its refused reconnects.
        errors = list(watched.errors)
        st.serve.stop()
        # The daemon is gone: the page says so rather than showing a frozen picture as live.
        page.wait_for_selector("#live.live-off", timeout=15_000)
        assert "not live" in page.text_content("#live")

    assert errors == [], errors
    outside = [u for u in watched.requests if not u.startswith(st.url)]
    assert outside == [], outside
