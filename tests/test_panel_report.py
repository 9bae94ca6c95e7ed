"""The run report of a panel: a map of the sites coloured by their peak, the verdict of
each, estimated sites marked as estimates; a single chip's report has no panel section."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from daemon.report import write_report
from daemon.report.panel_map import peak_colour
from daemon.run.virtual import REPO, run_recipe
from daemon.store.records import RunStore

PANEL_RECIPE = REPO / "recipes" / "panel-3x3-sac305.toml"


async def _report(
    recipe: Path, tmp_path: Path, *, panel_gains: Literal["shipped", "none"] = "shipped"
) -> str:
    doc, sim = await run_recipe(recipe, tmp_path / "data", panel_gains=panel_gains)
    sim.store.close()
    with RunStore(tmp_path / "data") as store:
        path = write_report(store, doc["run_id"], tmp_path / "out")
    return path.read_text(encoding="utf-8")


def test_a_peak_is_coloured_on_the_windows_scale() -> None:
    lo, hi = 238.0, 252.0
    blue, green, red = (
        peak_colour(224.0, lo, hi),
        peak_colour(245.0, lo, hi),
        peak_colour(266.0, lo, hi),
    )
    assert (blue, green, red) == ("#2e86c1", "#1e8449", "#c0392b")
    assert peak_colour(None, lo, hi) == "#9aa5b1"


async def test_the_panel_map_shows_each_sites_peak_verdict_and_whether_it_was_measured(
    tmp_path: Path,
) -> None:
    # Equal power on every zone: the corners fail, so the map has both verdicts to show.
    page = await _report(PANEL_RECIPE, tmp_path, panel_gains="none")
    html = _section(page, "panel")
    cells = re.findall(r'<g class="site" data-site="(\d)">(.*?)</g>', html, flags=re.S)
    assert [int(site) for site, _ in cells] == list(range(9))
    by_site = dict((int(site), body) for site, body in cells)
    for corner in (0, 2, 6, 8):
        assert "FAIL" in by_site[corner] and "est." not in by_site[corner]
        assert "stroke-dasharray" not in by_site[corner]
    for side in (1, 3, 5, 7):  # no thermocouple: drawn dashed, marked as an estimate
        assert "est." in by_site[side] and "stroke-dasharray" in by_site[side]
    assert "PASS" in by_site[4]
    # The corners peaked under the window: bluer than the centre, which peaked in it.
    blue = lambda body: int(re.search(r'fill="#(\w\w)(\w\w)(\w\w)"', body).group(3), 16)  # noqa: E731
    assert blue(by_site[0]) > blue(by_site[4])
    rows = re.findall(r"<tr(?: class=\"bad\")?><td>(\d)</td>.*?</tr>", html, flags=re.S)
    assert rows == [str(i) for i in range(9)]
    assert "no: estimate" in html and "yes (site_0)" in html and "yes (chip)" in html
    assert "uniformity at the peak hold" in html
    # Each site's trace on demand: collapsed, its own line drawn, dashed where estimated.
    traces = _section(page, "site-traces")
    blocks = re.findall(
        r'<details class="site-trace" id="site-trace-(\d)">(.*?)</details>', traces, flags=re.S
    )
    assert [int(i) for i, _ in blocks] == list(range(9))
    body = dict((int(i), b) for i, b in blocks)
    assert "site 0: FAIL" in body[0] and "measured (site_0)" in body[0]
    assert "site 4: PASS" in body[4] and "measured (chip)" in body[4]
    for side in (1, 3, 5, 7):
        assert "estimated (no thermocouple)" in body[side] and "(estimate)" in body[side]
        assert 'stroke-dasharray="8 3"' in body[side]
    assert 'stroke-dasharray="8 3"' not in body[0]
    assert body[0].count("<polyline") + body[0].count("<path") >= 2  # the site and the centre


async def test_a_single_chip_report_has_no_panel_section(tmp_path: Path) -> None:
    html = await _report(REPO / "recipes" / "sac305-polyimide.toml", tmp_path)
    assert 'id="panel"' not in html
    assert 'id="site-traces"' not in html


def _section(html: str, name: str) -> str:
    return html.split(f'<section id="{name}"', 1)[1].split("</section>", 1)[0]
