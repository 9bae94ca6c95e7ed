"""Run reports (`bonderd report`) and the traceability they rest on.

Real simulated runs (virtual time) of every shipped recipe and of a run aborted by an open
chip thermocouple in reflow are recorded once per module; the reports are then written with
the command line and read the way a process engineer would, and finally rendered in headless
Chromium (tests/test_report_browser.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import sqlite3
import struct
import subprocess
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import pytest

from daemon.app.cli import main
from daemon.config import Limits
from daemon.machine.identity import NOT_REPORTED, identify_machine
from daemon.recipe.load import load_recipe_file
from daemon.report import write_report
from daemon.report.colours import BAD, CHIP, COMPONENT
from daemon.report.svgplot import Chart, Series, linear_ticks, log_ticks, thin
from daemon.store.records import DB_NAME, RunStore
from daemon.store.schema import MIGRATIONS
from daemon.store.trace import Sample
from drivers.clock import VirtualClock
from drivers.errors import DeviceTimeout
from drivers.sim.devices import build_sim_machine
from drivers.sim.faults import parse_scenario
from drivers.sim.plant import Plant, PlantFault
from tests.simrun import RECIPES, run_recipe

SAC = next(r for r in RECIPES if r.name.startswith("sac305"))
TC_OPEN_IN_REFLOW = (
    '[[fault]]\nat_step = "reflow"\nafter_s = 40.0\ndevice = "tc.chip"\nkind = "open"\n'
)
DEVICES = {"lamps", "tc", "gauge", "pump", "valves", "chiller", "o2", "zstage", "uv"}


@dataclass(frozen=True)
class RecordedRun:
    data_dir: Path
    doc: dict[str, Any]
    recipe_path: Path

    @property
    def run_id(self) -> str:
        return str(self.doc["run_id"])


def _record(data_dir: Path, recipe: Path, scenario: str | None = None) -> RecordedRun:
    async def go() -> dict[str, Any]:
        sc = parse_scenario(scenario) if scenario else None
        doc, sim = await run_recipe(recipe, data_dir, scenario=sc)
        sim.store.close()
        return doc

    return RecordedRun(data_dir, asyncio.run(go()), recipe)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RecordedRun]:
    """One completed run per shipped recipe and one aborted run, in one store."""
    data = tmp_path_factory.mktemp("runs")
    out = {r.stem: _record(data, r) for r in RECIPES}
    out["aborted"] = _record(data, SAC, TC_OPEN_IN_REFLOW)
    return out


def report_html(run: RecordedRun, out: Path) -> str:
    assert main(["report", run.run_id, "--data-dir", str(run.data_dir), "--out", str(out)]) == 0
    return (out / f"{run.run_id}.html").read_text(encoding="utf-8")


def rows_of(html: str, section: str) -> list[str]:
    body = html.split(f'<section id="{section}"', 1)[1].split("</section>", 1)[0]
    return re.findall(r"<tr(?: class=\"bad\")?><td.*?</tr>", body, flags=re.S)


def external_references(html: str) -> list[str]:
    """Anything a browser would fetch: src/href attributes, CSS url() and @import."""
    refs = re.findall(r"""(?:src|href|xlink:href)\s*=\s*["']([^"']*)["']""", html)
    refs += re.findall(r"url\(\s*['\"]?([^)'\"]*)", html)
    refs += re.findall(r"@import", html)
    # The clip-path references are to the document itself.
    return [r for r in refs if not r.startswith("#")]


# ---------------------------------------------------------------------------- command line


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_report_of_each_shipped_recipe_shows_trace_conformance_and_recipe(
    recipe: Path, runs: dict[str, RecordedRun], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = runs[recipe.stem]
    assert run.doc["result"] == "completed"
    html = report_html(run, tmp_path)
    assert capsys.readouterr().out.strip() == str(tmp_path / f"{run.run_id}.html")

    # Opens offline: nothing to fetch, and the page forbids fetching anyway.
    assert external_references(html) == []
    assert "<script" not in html and "<link" not in html
    assert "default-src 'none'" in html

    # The recipe as run: name, version, sha256 (checked against the text) and full text.
    sha = hashlib.sha256(recipe.read_bytes()).hexdigest()
    assert run.doc["recipe"]["sha256"] == sha
    assert f'<code id="recipe-sha256">{sha}</code>' in html
    assert "matches the stored recipe text" in html
    assert f"<pre>{escape(recipe.read_text(encoding='utf-8'))}</pre>" in html  # verbatim
    assert 'id="verdict">COMPLETED' in html
    assert 'id="failure"' not in html

    # Every conformance check, with value, limit, verdict and the condition it proves.
    rows = rows_of(html, "conformance")
    checks = run.doc["conformance"]
    assert len(rows) == len(checks) > 5
    for row, check in zip(rows, checks, strict=True):
        assert f"<code>{check['check']}</code>" in row
        assert check["condition"] in row.replace("&#x27;", "'")
        assert "PASS" in row and 'class="bad"' not in row
    # Steps with durations, in order.
    steps = rows_of(html, "steps")
    assert len(steps) == len(run.doc["steps"])
    for row, step in zip(steps, run.doc["steps"], strict=True):
        assert f"<b>{step['name']}</b>" in row
        # The table shows end − start of the stored step times, to 0.1 s.
        cells = re.findall(r'<td class="num">([0-9.]+) s</td>', row)
        assert abs(float(cells[-1]) - step["duration_s"]) <= 0.051, (cells, step)

    # The charts: temperatures with the recipe's lines, gas on a log axis, lamp zones.
    for chart in ("chart-temperatures", "chart-gas", "chart-lamps"):
        assert f'id="{chart}"' in html
    temps = html.split('id="chart-temperatures"', 1)[1].split("</svg>", 1)[0]
    for label in ("chip", "component", "chuck", "setpoint"):
        assert f'data-label="{label}"' in temps
    kind = load_recipe_file(recipe, Limits()).recipe.kind
    part_line = "carrier limit" if kind == "bump_reflow" else "Tg − margin"
    assert part_line in temps
    if kind == "lead_lift":
        # No reflow: the stage, its force, the UV dose and the cure are what is plotted.
        for chart in ("chart-z", "chart-force", "chart-cure"):
            assert f'id="{chart}"' in html, chart
        return
    liquidus = run.doc["metrics"]["time_above_liquidus_s"]
    assert "liquidus" in temps and "peak window" in temps
    assert f"above liquidus ({liquidus:.1f} s)" in temps
    assert 'class="tal"' in temps  # the time above liquidus is shaded
    gas = html.split('id="chart-gas"', 1)[1].split("</svg>", 1)[0]
    assert "1e5" in gas or "100000" in gas  # decades on the log axis
    assert 'id="chart-z"' not in html  # the stage never moved in a bond or bump reflow


def test_report_of_unknown_run_exits_1(
    runs: dict[str, RecordedRun], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = runs["aborted"].data_dir
    code = main(["report", "no-such-run", "--data-dir", str(data), "--out", str(tmp_path)])
    assert code == 1
    assert "unknown run 'no-such-run'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    code = main(["report", "../escape", "--data-dir", str(data), "--out", str(tmp_path)])
    assert code == 1


def test_report_of_aborted_run_names_the_step_the_alarm_and_the_checks(
    runs: dict[str, RecordedRun], tmp_path: Path
) -> None:
    run = runs["aborted"]
    assert run.doc["result"] == "aborted"
    html = report_html(run, tmp_path)
    assert 'id="verdict">ABORTED' in html

    failure = html.split('<section class="failure" id="failure">', 1)[1].split("</section>")[0]
    step = re.search(r'id="failure-step">(.*?)</dd>', failure, flags=re.S)
    assert step is not None and "<b>reflow</b>" in step.group(1)
    alarms = re.search(r'id="failure-alarms">(.*?)</dd>', failure, flags=re.S)
    assert alarms is not None
    assert "<b>tc_fault</b>" in alarms.group(1) and "in step reflow" in alarms.group(1)
    failed = [c["check"] for c in run.doc["conformance"] if not c["ok"]]
    assert "peak_in_window" in failed and "time_above_liquidus" in failed
    listed = re.search(r'id="failure-checks">(.*?)</dd>', failure, flags=re.S)
    assert listed is not None
    assert re.findall(r"<b>(\w+)</b>", listed.group(1)) == failed

    # The same three are highlighted where they stand in the tables.
    bad_checks = [r for r in rows_of(html, "conformance") if r.startswith('<tr class="bad">')]
    assert [re.search(r"<code>(\w+)</code>", r).group(1) for r in bad_checks] == failed  # type: ignore[union-attr]
    bad_steps = [r for r in rows_of(html, "steps") if r.startswith('<tr class="bad">')]
    assert len(bad_steps) == 1 and "<b>reflow</b>" in bad_steps[0]
    steps_after = [r for r in rows_of(html, "steps") if "not run" in r]
    assert len(steps_after) == 3  # cool, securement_release, vent never ran
    bad_alarms = [r for r in rows_of(html, "alarms") if r.startswith('<tr class="bad">')]
    assert any("tc_fault" in r for r in bad_alarms)
    # ... and on the charts: the failed step's column and the alarm's marker.
    temps = html.split('id="chart-temperatures"', 1)[1].split("</svg>", 1)[0]
    assert 'class="failed-step"' in temps and "reflow (failed)" in temps
    assert 'class="safe-state"' in temps
    assert re.search(r'<g class="marker">.*?>tc_fault</text>', temps)


# ---------------------------------------------------------------------------- traceability


def test_each_run_records_device_identities_and_the_report_shows_them(
    runs: dict[str, RecordedRun], tmp_path: Path
) -> None:
    run = runs[SAC.stem]
    with RunStore(run.data_dir) as store:
        record = store.get_run(run.run_id)
    assert record is not None
    assert set(record.devices) >= DEVICES
    for name, identity in record.devices.items():
        assert identity.startswith("simulated Sim") and f"({name})" in identity
    assert record.software_version and record.recipe_text == SAC.read_text(encoding="utf-8")
    html = report_html(run, tmp_path)
    devices = html.split('id="devices"', 1)[1].split("</section>", 1)[0]
    for name, identity in record.devices.items():
        assert f"<th>{name}</th><td>{identity}</td>" in devices


def test_device_identities_of_a_finished_run_cannot_be_changed(
    runs: dict[str, RecordedRun],
) -> None:
    run = runs[SAC.stem]
    db = sqlite3.connect(run.data_dir / DB_NAME)
    try:
        for sql in (
            "UPDATE run_devices SET identity = 'forged' WHERE run_id = ?",
            "DELETE FROM run_devices WHERE run_id = ?",
            "INSERT INTO run_devices (run_id, device, identity) VALUES (?, 'extra', 'x')",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="run is finished"):
                db.execute(sql, (run.run_id,))
    finally:
        db.close()
    with RunStore(run.data_dir) as store:
        record = store.get_run(run.run_id)
    assert record is not None and "forged" not in record.devices.values()


def test_a_store_without_the_device_table_is_migrated_and_old_runs_read_empty(
    tmp_path: Path,
) -> None:
    with RunStore(tmp_path) as store:
        store.create_run(
            "old",
            recipe_name="r",
            recipe_version=1,
            recipe_sha256="0" * 64,
            recipe_text="",
            lot_id="L",
            operator="",
            equipment_id="e",
            software_version="0",
            config_hash="",
            started_at=datetime(2024, 1, 1, tzinfo=UTC),
        )
    db = sqlite3.connect(tmp_path / DB_NAME)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    # As a database written before the table existed: undo its migration and every later one.
    device_migration = next(
        i for i, m in enumerate(MIGRATIONS) if any("CREATE TABLE run_devices" in st for st in m)
    )
    for migration in MIGRATIONS[device_migration + 1 :]:
        for statement in migration:
            added = re.match(r"\s*ALTER TABLE (\w+) ADD COLUMN (\w+)", statement)
            table = re.match(r"\s*CREATE TABLE (\w+)", statement)
            if table is not None:
                db.execute(f"DROP TABLE {table[1]}")  # its triggers go with it
                continue
            if re.match(r"\s*CREATE TRIGGER", statement):
                continue
            assert added is not None, f"undo this migration in the test: {statement}"
            db.execute(f"ALTER TABLE {added[1]} DROP COLUMN {added[2]}")
    db.execute("DROP TABLE run_devices")
    assert version == len(MIGRATIONS)
    db.execute(f"PRAGMA user_version = {device_migration}")
    db.commit()
    db.close()
    with RunStore(tmp_path) as store:
        record = store.get_run("old")
    assert record is not None and record.devices == {}


async def test_identify_machine_reports_gaps_instead_of_failing() -> None:
    clock = VirtualClock()
    plant = Plant(clock, seed=1)
    machine = build_sim_machine(plant)
    for dev in machine.devices():
        await dev.connect()

    class Anonymous:  # a driver without identify()
        name = "dispenser"

    async def broken(timeout: float = 1.0) -> str:
        raise DeviceTimeout("chiller", f"no response within {timeout:g} s")

    machine.dispenser = Anonymous()  # type: ignore[assignment]
    machine.chiller.identify = broken  # type: ignore[attr-defined]
    plant.schedule_fault(PlantFault("gauge", "no_response"), at_t=0.0)
    ids = await identify_machine(machine, timeout=0.5)
    assert ids["dispenser"] == NOT_REPORTED
    assert ids["chiller"] == "unavailable: chiller: no response within 0.5 s"
    assert ids["gauge"] == "unavailable: gauge: no response within 0.5 s"
    assert ids["lamps"].startswith("simulated SimLampBank")


# ---------------------------------------------------------------------------- robustness


def test_report_of_a_run_interrupted_by_a_crash_judges_the_trace(tmp_path: Path) -> None:
    """No result document (the daemon died): the checks come from the trace, and say so."""
    text = SAC.read_text(encoding="utf-8")
    with RunStore(tmp_path) as store:
        store.create_run(
            "crashed",
            recipe_name="sac305-polyimide",
            recipe_version=3,
            recipe_sha256=hashlib.sha256(text.encode()).hexdigest(),
            recipe_text=text,
            lot_id="L9",
            operator="ana",
            equipment_id="bonder-07",
            software_version="0.1.0",
            config_hash="abc",
            started_at=datetime(2024, 5, 1, 8, tzinfo=UTC),
            devices={"lamps": "ACME SCR-4 fw 2.1"},
        )
        store.step_started("crashed", 0, "chuck_stabilize", "chuck_stabilize", 0.0)
        store.add_samples(
            "crashed",
            [
                Sample(
                    t / 10,
                    "chuck_stabilize",
                    None,
                    {"chip": 25.0, "component": 25.0, "chuck": 25.0 if t != 5 else None},
                    1000.0,
                    209000.0,
                    0.0,
                )
                for t in range(50)
            ],
        )
    with RunStore(tmp_path) as store:  # reopening recovers the dead run as aborted
        path = write_report(store, "crashed", tmp_path / "out")
    html = path.read_text(encoding="utf-8")
    assert 'id="verdict">ABORTED' in html
    assert "judged from the recorded trace" in html
    assert "ACME SCR-4 fw 2.1" in html and "bonder-07" in html and "L9" in html
    assert "<b>chuck_stabilize</b>" in html.split('id="failure-step">', 1)[1][:200]
    assert len(rows_of(html, "conformance")) > 5


def test_a_recipe_text_this_version_cannot_read_still_gives_a_report(tmp_path: Path) -> None:
    text = 'kind = "lead_lift"\nname = "future"\n'
    with RunStore(tmp_path) as store:
        store.create_run(
            "future",
            recipe_name="future",
            recipe_version=1,
            recipe_sha256="f" * 64,  # deliberately wrong: the report must say so
            recipe_text=text,
            lot_id="",
            operator="",
            equipment_id="e",
            software_version="9",
            config_hash="",
            started_at=datetime(2030, 1, 1, tzinfo=UTC),
        )
        store.add_samples("future", [Sample(0.0, "", None, {"chip": 20.0}, 1000.0, None, 0.0)])
        store.finish_run(
            "future",
            state="failed",
            reason="r",
            ended_at=datetime(2030, 1, 1, 0, 1, tzinfo=UTC),
            result={"conformance": []},
        )
        html = write_report(store, "future", tmp_path).read_text(encoding="utf-8")
    assert "cannot be read by this software version" in html
    assert "DOES NOT match the stored recipe text" in html
    assert 'id="chart-temperatures"' in html


# ---------------------------------------------------------------------------- svg charts


def test_thinning_keeps_every_peak_and_the_gaps() -> None:
    x = [i * 0.01 for i in range(100_000)]
    y: list[float | None] = [0.0] * len(x)
    y[12_345] = 99.0  # a one-sample spike
    y[70_001] = -5.0
    y[50_000] = None
    pts = thin(x, y, 0.0, 1000.0, 500)
    assert len(pts) < 4 * 500 + 10
    values = [v for _, v in pts]
    assert 99.0 in values and -5.0 in values and None in values
    assert [p[0] for p in pts] == sorted(p[0] for p in pts)


def test_ticks_are_round_numbers() -> None:
    assert linear_ticks(0.0, 400.0) == [0, 100, 200, 300, 400]
    assert linear_ticks(17.0, 263.0)[:2] == [50, 100]
    assert log_ticks(0.01, 1e6) == [10.0**e for e in range(-2, 7)]


def test_a_missing_reading_breaks_the_line() -> None:
    chart = Chart("t", "°C", (0.0, 3.0))
    chart.series.append(Series("chip", [0.0, 1.0, 2.0, 3.0], [1.0, 2.0, None, 4.0], "#000"))
    svg = chart.render()
    d = re.search(r'data-label="chip" d="([^"]*)"', svg)
    assert d is not None and d.group(1).count("M") == 2 and d.group(1).count("L") == 1


# ---------------------------------------------------------------------------- in a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian package chromium not installed (tools/debian-packages.txt)"
)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium(page: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}", *args, page.as_uri()],
        capture_output=True,
        timeout=90,
        check=True,
    )


def png_rows(data: bytes, max_rows: int) -> list[bytes]:
    """The first ``max_rows`` rows of an 8-bit RGB PNG (what Chromium writes), as RGB bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, [], 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (8, 2), "expected 8-bit RGB"
        elif kind == b"IDAT":
            idat.append(body)
    raw, px, stride = zlib.decompress(b"".join(idat)), 3, width * 3
    rows: list[bytes] = []
    prev = bytes(stride)
    for r in range(min(height, max_rows)):
        start = r * (stride + 1)
        kind_ = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        if kind_ == 1:  # Sub
            for i in range(px, stride):
                line[i] = (line[i] + line[i - px]) & 255
        elif kind_ == 2:  # Up
            line = bytearray((x + y) & 255 for x, y in zip(line, prev, strict=True))
        elif kind_ == 3:  # Average
            for i in range(stride):
                left = line[i - px] if i >= px else 0
                line[i] = (line[i] + (left + prev[i]) // 2) & 255
        elif kind_ == 4:  # Paeth
            for i in range(px):
                line[i] = (line[i] + prev[i]) & 255
            for i in range(px, stride):
                a, b, c = line[i - px], prev[i], prev[i - px]
                pa, pb = abs(b - c), abs(a - c)
                pc = abs(a + b - 2 * c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        prev = bytes(line)
        rows.append(prev)
    return rows


def count_colour(rows: list[bytes], hex_colour: str) -> int:
    """Pixels of exactly this colour (the cores of lines and fills, not their soft edges)."""
    want = bytes.fromhex(hex_colour.lstrip("#"))
    return sum(row.count(want) for row in rows)


@needs_chromium
@pytest.mark.parametrize("which", ["sac305-polyimide", "snpb-low-tg", "aborted"])
def test_report_renders_in_chromium_with_its_charts_and_table(
    which: str, runs: dict[str, RecordedRun], tmp_path: Path
) -> None:
    run = runs[which]
    report_html(run, tmp_path)
    page = tmp_path / f"{run.run_id}.html"
    dom = chromium(page, tmp_path, "--dump-dom").stdout.decode("utf-8")
    # Chromium parsed the charts as SVG with their drawn series, and the whole table.
    assert len(re.findall(r"<svg[^>]*class=\"chart\"", dom)) == 3
    # Temperatures and setpoint, pressure, O2 and its partial pressure, one line for the lamp
    # zones driven alike.
    assert len(re.findall(r'<path class="series"', dom)) >= 8
    assert len(rows_of(dom, "conformance")) == len(run.doc["conformance"])
    assert run.doc["recipe"]["sha256"] in dom


@needs_chromium
@pytest.mark.parametrize("which", ["sac305-polyimide", "aborted"])
def test_report_screenshot_shows_the_verdict_and_the_temperature_traces(
    which: str, runs: dict[str, RecordedRun], tmp_path: Path
) -> None:
    run = runs[which]
    report_html(run, tmp_path)
    shot = tmp_path / "shot.png"
    chromium(
        tmp_path / f"{run.run_id}.html", tmp_path, "--window-size=1200,1300", f"--screenshot={shot}"
    )
    data = shot.read_bytes()
    rows = png_rows(data, 1300)  # header, (failure box,) traceability, temperature chart
    assert len(rows) == 1300 and len(rows[0]) == 1200 * 3
    white = count_colour(rows, "#ffffff")
    assert white < 0.8 * 1200 * 1300  # a page with content, not a blank one
    # The traces are drawn: each a line across most of the 1010 px wide plot.
    assert count_colour(rows, CHIP) > 600
    assert count_colour(rows, COMPONENT) > 300
    badge = BAD if which == "aborted" else "#1e8449"
    assert count_colour(rows[:90], badge) > 1500  # the verdict badge, in its colour
