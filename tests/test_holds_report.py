"""An operator hold in the run record, the report's steps table and its traceability box,
with who held and who resumed (issue 20, item 4)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from daemon.report.html import render_report
from tests.simrun import SimRun, run_recipe

SAC = Path(__file__).parent.parent / "recipes" / "sac305-polyimide.toml"


async def test_a_hold_is_in_the_record_and_the_report_with_its_user(tmp_path: Path) -> None:
    def on_event(sim: SimRun, event: str, payload: dict[str, Any]) -> None:
        if event == "StepStarted" and payload["name"] == "purge":
            sim.executor.request_hold("ana (local operator)")
        if event == "StateChanged" and payload["new"] == "held":

            async def later() -> None:
                await sim.clock.sleep(20.0)
                sim.executor.resume("ben (MES)")

            sim.events.append((0.0, "_task", {"task": asyncio.ensure_future(later())}))

    doc, sim = await run_recipe(SAC, tmp_path, on_event=on_event)
    assert doc["result"] == "completed"
    record = sim.store.get_run(doc["run_id"])
    samples = sim.store.samples(doc["run_id"])
    sim.store.close()
    assert record is not None
    (hold,) = record.holds
    assert (hold.requested_by, hold.ended_by, hold.result) == (
        "ana (local operator)",
        "ben (MES)",
        "resumed",
    )
    assert hold.ended_t_s is not None and hold.ended_t_s - hold.held_t_s >= 19.9
    purge = next(s for s in record.steps if s.name == "purge")
    assert purge.ended_t_s is not None and hold.held_t_s >= purge.ended_t_s
    html = render_report(record, samples)
    steps = html[html.index('id="steps"') : html.index('id="alarms"')]
    assert '<tr class="hold">' in steps
    assert "held by ana (local operator)" in steps and "resumed by ben (MES)" in steps
    # Between purge and pump_down, as it happened.
    assert steps.index("purge") < steps.index("<b>hold</b>") < steps.index("pump_down")
    trace = html[html.index('id="traceability"') : html.index('id="charts"')]
    assert "held by ana (local operator)" in trace
    assert 'class="hold"' in html[html.index('id="chart-temperatures"') :]  # shaded on the chart


async def test_report_charts_lamp_line_axis_and_legend(tmp_path: Path) -> None:
    import re  # noqa: PLC0415

    from daemon.report.svgplot import WIDTH  # noqa: PLC0415

    doc, sim = await run_recipe(SAC, tmp_path)
    record = sim.store.get_run(doc["run_id"])
    samples = sim.store.samples(doc["run_id"])
    sim.store.close()
    assert record is not None
    html = render_report(record, samples)
    temps = html[html.index('id="chart-temperatures"') : html.index('id="chart-gas"')]
    lamps = html[html.index('id="chart-lamps"') :]
    lamps = lamps[: lamps.index("</svg>")]
    # The shipped recipe drives its 4 zones alike: one line, named so.
    assert "zones 1–4 (all equal)" in lamps and "zone 2<" not in lamps
    # The temperature axis starts at 0 °C, not −100 °C.
    ticks = [float(v) for v in re.findall(r'text-anchor="end"[^>]*>(-?\d+)</text>', temps)]
    assert ticks and min(ticks) == 0.0
    # Every legend label starts inside the chart, and ends inside it (wrapped rows).
    for svg in re.findall(r"<svg.*?</svg>", html, re.S):
        for x, label in re.findall(r'<text x="([\d.]+)" y="\d+" fill="#333">([^<]*)</text>', svg):
            assert float(x) + 6.3 * len(label) <= WIDTH, label
