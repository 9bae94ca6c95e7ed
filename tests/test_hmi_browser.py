"""The operator station in a real browser: Debian's chromium driven by Playwright against
`bonderd serve --sim --speed 50`, a run started over MQTT with bonderctl (the station's own
buttons come with its logins)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from daemon.store.records import RunStore
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


USERS = {
    "ana": ("operator", "ana-secret-1"),
    "eve": ("engineer", "eve-secret-2"),
    "max": ("maintenance", "max-secret-3"),
}


def add_users(path: Path) -> None:
    """The accounts, made as an administrator makes them: `bonderd user add`."""
    for name, (role, password) in USERS.items():
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "daemon.app.cli",
                "user",
                "add",
                name,
                "--role",
                role,
                "--users-file",
                str(path),
            ],
            input=password + "\n",
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert f"user {name} added, role {role}" in done.stdout


@contextmanager
def station(
    workdir: Path, speed: float = SPEED, hmi_extra: str = "", faults: Path | None = None
) -> Iterator[Station]:
    with running_broker(workdir / "broker") as broker:
        serve = Serve(
            write_config(
                workdir / "bonderd.toml",
                broker_port=broker.port,
                equipment_id=EQ,
                hmi_extra=hmi_extra,
            ),
            speed=speed,
            extra_args=[] if faults is None else ["--faults", str(faults)],
        )
        serve.start()
        try:
            serve.wait_ready()
            # The station listens moments after MQTT is up (both are services of the loop).
            urls: list[str] = []
            deadline = time.monotonic() + 20.0
            while not urls and time.monotonic() < deadline:
                urls = [x["url"] for x in serve.log_lines() if x.get("event") == "hmi_listening"]
                time.sleep(0.05)
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


def state_is(page: Any, *states: str, timeout: float = 30_000) -> None:
    wanted = ",".join(f"'{x}'" for x in states)
    page.wait_for_function(
        f"() => [{wanted}].includes(document.getElementById('state').textContent)",
        timeout=timeout,
    )


def login(page: Any, name: str, password: str) -> None:
    page.fill("#login-name", name)
    page.fill("#login-password", password)
    page.click("#login")


def result_text(page: Any, contains: str) -> str:
    page.wait_for_function(
        f"() => document.getElementById('action-result').textContent.includes({contains!r})"
    )
    return str(page.text_content("#action-result"))


def test_operator_runs_holds_and_aborts_a_lot_from_the_station(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    add_users(users)
    with (
        station(tmp_path, speed=20, hmi_extra=f'users_file = "{users}"') as st,
        browser_page(st.url) as (page, watched),
    ):
        st.bonderctl("put-recipe", str(RECIPES / "snpb-low-tg.toml"))
        page.wait_for_selector("#live.live-on")
        assert page.is_hidden("#actions")  # the anonymous view has no buttons

        login(page, "ana", "wrong-password")
        assert "unknown name or wrong password" in result_text(page, "login refused")
        login(page, "ana", USERS["ana"][1])
        page.wait_for_selector("#actions:not([hidden])")
        assert page.text_content("#user") == "ana (operator)"

        # Remote control: the MES runs the machine, the station cannot start it.
        assert page.text_content("#control") == "remote"
        assert page.is_disabled("#start") and page.is_visible("#remote-note")
        page.click("#take-control")
        page.wait_for_function("() => document.getElementById('control').textContent === 'local'")
        assert page.text_content("#e10") == "ENG"
        assert page.is_enabled("#start")

        page.select_option("#start-recipe", "snpb-low-tg")
        page.fill("#start-lot", "LOT-STATION")
        page.click("#start")
        state_is(page, "running")
        page.wait_for_function("() => document.getElementById('operator').textContent === 'ana'")
        assert page.text_content("#lot") == "LOT-STATION"

        # Hold asked for in the chuck stabilisation: held at the next step boundary.
        page.click("#hold")
        state_is(page, "holding", "held")
        state_is(page, "held")
        assert page.is_enabled("#resume")
        page.click("#resume")
        state_is(page, "running")

        # Abort asks first; cancelling changes nothing.
        page.click("#abort")
        page.wait_for_selector("#abort-dialog[open]")
        page.click("#abort-cancel")
        assert page.text_content("#state") == "running"
        page.click("#abort")
        page.fill("#abort-reason", "wrong film loaded")
        page.click("#abort-confirm")
        state_is(page, "aborting", "aborted")
        state_is(page, "aborted", timeout=60_000)

        # Resetting is an engineer's: the operator's button is disabled, and the API refuses.
        assert page.is_disabled("#reset")
        page.click("#logout")
        page.wait_for_selector("#login-form:not([hidden])")
        login(page, "eve", USERS["eve"][1])
        page.wait_for_selector("#actions:not([hidden])")
        for code in page.eval_on_selector_all(
            "#alarms li[data-code]", "els => els.map(e => e.dataset.code)"
        ):
            page.click(f'#alarms li[data-code="{code}"] button.ack')
            result_text(page, "ack_alarm: done")
        page.click("#reset")
        state_is(page, "idle")
        page.click("#release-control")
        page.wait_for_function("() => document.getElementById('control').textContent === 'remote'")

        # The run is in the history: found by its lot, its report and its trace one click away.
        page.click("nav a[href='/history']")
        page.wait_for_selector("#runs tbody tr")
        page.fill("#f-lot", "station")
        page.select_option("#f-result", "aborted")
        page.click("#filter button")
        page.wait_for_function("() => document.querySelectorAll('#runs tbody tr').length === 1")
        assert "LOT-STATION" in (page.text_content("#runs tbody tr") or "")
        csv_href = page.get_attribute("#runs tbody tr a:text('CSV')", "href")
        csv = page.request.get(st.url.rstrip("/") + csv_href)
        assert csv.ok and csv.text().count("\n") > 100
        page.click("#runs tbody tr a:text('report')")
        page.wait_for_load_state()
        assert "LOT-STATION" in page.content() and "wrong film loaded" in page.content()
        errors = list(watched.errors)
        log = st.serve.log_lines()

    # The one refusal asked for, the wrong password, is a 401 the browser reports; nothing else.
    assert errors == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ], errors
    actions = [(x["user"], x["command"], x["ok"]) for x in log if x.get("event") == "hmi_action"]
    assert ("ana", "start", True) in actions and ("ana", "hold", True) in actions
    assert ("ana", "abort", True) in actions and ("eve", "reset", True) in actions
    commands = [x for x in log if x.get("event") == "command" and x.get("origin") == "station"]
    assert {c["command"] for c in commands} >= {"take_control", "start", "hold", "resume", "abort"}
    # The record keeps who held and resumed, and why the run was aborted and by whom.
    with RunStore(tmp_path / "data") as store:
        run = store.list_runs(1)[0]
    assert run.lot_id == "LOT-STATION" and run.operator == "ana"
    assert run.state == "aborted"
    assert "wrong film loaded (by ana at the operator station)" in run.reason
    assert run.holds and run.holds[0].requested_by == "ana (operator station)"


def test_in_remote_control_the_station_cannot_hold_but_can_always_abort(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    add_users(users)
    with (
        station(tmp_path, speed=20, hmi_extra=f'users_file = "{users}"') as st,
        browser_page(st.url) as (page, watched),
    ):
        page.wait_for_selector("#live.live-on")
        login(page, "ana", USERS["ana"][1])
        page.wait_for_selector("#actions:not([hidden])")
        st.start_run("snpb-low-tg", "LOT-MES")  # the MES starts the lot
        state_is(page, "running")
        assert page.text_content("#control") == "remote"
        assert page.is_disabled("#start") and page.is_disabled("#hold")
        assert page.is_enabled("#abort")
        # The disabled button is a courtesy; the controller's rule is what holds. Asked
        # directly, it refuses with its reason, and the run goes on.
        refused = page.evaluate(
            """async () => {
                const s = await (await fetch('/api/session')).json();
                const r = await fetch('/api/action/hold', {method: 'POST',
                    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf},
                    body: '{}'});
                return [r.status, await r.json()];
            }"""
        )
        assert refused[0] == 409
        assert refused[1]["error"]["code"] == "not_allowed"
        assert "remote control" in refused[1]["error"]["message"]
        assert page.text_content("#state") == "running"
        page.click("#abort")
        page.fill("#abort-reason", "smoke at the chamber")
        page.click("#abort-confirm")
        state_is(page, "aborted", timeout=60_000)
        errors = [e for e in watched.errors if "409 (Conflict)" not in e]
    assert errors == [], errors


FAULTS = REPO / "tests" / "data" / "faults" / "tc-chip-open-in-reflow.toml"


def test_a_fault_alarm_is_shown_acknowledged_and_reset(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    add_users(users)
    with (
        station(tmp_path, speed=20, hmi_extra=f'users_file = "{users}"', faults=FAULTS) as st,
        browser_page(st.url) as (page, watched),
    ):
        page.wait_for_selector("#live.live-on")
        login(page, "eve", USERS["eve"][1])
        page.wait_for_selector("#actions:not([hidden])")
        st.start_run("snpb-low-tg", "LOT-FAULT")
        # The chip thermocouple opens 5 s into reflow: the interlocks trip, the run aborts.
        page.wait_for_selector("#alarms li.alarm[data-code]", timeout=60_000)
        codes = page.eval_on_selector_all(
            "#alarms li[data-code]", "els => els.map(e => e.dataset.code)"
        )
        text = page.text_content("#alarms") or ""
        assert "chip" in text, text
        state_is(page, "aborted", timeout=60_000)
        assert page.text_content("#e10") == "UDT"  # the MES books unscheduled downtime
        # The station takes control, acknowledges each alarm, and an engineer resets.
        page.click("#take-control")
        page.wait_for_function("() => document.getElementById('control').textContent === 'local'")
        for code in codes:
            page.click(f'#alarms li[data-code="{code}"] button.ack')
            result_text(page, "ack_alarm: done")
        page.wait_for_selector("#alarms li.none")
        # Maintenance sees the latched trip and the devices' identities in the diagnostics.
        page.click("#logout")
        page.wait_for_selector("#login-form:not([hidden])")
        login(page, "max", USERS["max"][1])
        page.wait_for_selector("#diagnostics:not([hidden])")
        page.wait_for_function(
            "() => document.getElementById('diag-list').textContent.includes('latched trip')"
        )
        diag = page.text_content("#diag-list") or ""
        assert "latched tripnone" not in diag, diag  # <dt>latched trip</dt><dd>code: …</dd>
        assert "control loop" in diag and "overruns" in diag
        page.click("#reset")
        state_is(page, "idle")
        result_text(page, "reset: done")
        errors = list(watched.errors)
    assert errors == [], errors


def test_recipe_library_versions_diff_and_upload_with_field_errors(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    add_users(users)
    snpb = (RECIPES / "snpb-low-tg.toml").read_text()
    with (
        station(tmp_path, speed=20, hmi_extra=f'users_file = "{users}"') as st,
        browser_page(st.url) as (page, watched),
    ):
        st.bonderctl("put-recipe", str(RECIPES / "snpb-low-tg.toml"))
        login(page, "ana", USERS["ana"][1])
        page.wait_for_selector("#actions:not([hidden])")
        page.click("nav a[href='/recipes']")
        page.wait_for_selector("#recipe-list a[data-name='snpb-low-tg']")
        page.wait_for_function(
            "() => document.getElementById('recipe-text').textContent.includes('snpb-low-tg')"
        )
        assert page.is_hidden("#upload-box")  # an operator runs recipes, does not add them

        page.goto(st.url)
        page.click("#logout")
        page.wait_for_selector("#login-form:not([hidden])")
        login(page, "eve", USERS["eve"][1])
        page.wait_for_selector("#actions:not([hidden])")
        page.goto(st.url + "recipes")
        page.wait_for_selector("#upload-box:not([hidden])")

        # A new version: the engineer's edit, validated and added as v2.
        edited = snpb.replace('description = "', 'description = "edited at the station: ', 1)
        assert edited != snpb
        page.fill("#upload-name", "snpb-low-tg")
        page.fill("#upload-text", edited)
        page.click("#upload")
        page.wait_for_function(
            "() => document.getElementById('upload-result').textContent.includes('v2 added')"
        )
        page.select_option("#diff-a", "1")
        page.select_option("#diff-b", "2")
        page.click("#compare")
        page.wait_for_selector("#recipe-diff span.add")
        added = page.text_content("#recipe-diff span.add:not(:first-child)") or ""
        assert "edited at the station" in page.text_content("#recipe-diff")
        assert added.startswith("+")

        # A recipe the validation refuses: each problem on its own line, naming the field.
        broken = snpb.replace("liquidus_c = 183.0", "liquidus_c = -5.0").replace(
            'name = "snpb-low-tg"', 'name = "snpb-broken"'
        )
        assert broken != snpb
        page.fill("#upload-name", "snpb-broken")
        page.fill("#upload-text", broken)
        page.click("#upload")
        page.wait_for_selector("#upload-errors li")
        problems = page.eval_on_selector_all(
            "#upload-errors li", "els => els.map(e => e.textContent)"
        )
        assert len(problems) >= 2, problems  # one line per problem, not one run-on text
        assert any(p.startswith("materials.solder.solidus_c: ") for p in problems), problems
        assert all(": " in p for p in problems), problems
        assert "recipe_invalid" in (page.text_content("#upload-result") or "")
        errors = [e for e in watched.errors if "409 (Conflict)" not in e]
    assert errors == [], errors
