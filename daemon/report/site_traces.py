"""Each site's trace on demand in a panel's run report (issue 17): one collapsed
``<details>`` per site with its temperature against the control site, the setpoint, the
liquidus and the peak window. A site without a thermocouple is drawn dashed from the same
estimate the judge used (``daemon/judge/panel.py``) and titled as an estimate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from daemon.judge.panel import site_channels, with_estimates
from daemon.recipe.model import AnyRecipe, Reflow, VacuumFilmBondRecipe
from daemon.report.colours import CHIP, LIQUIDUS, PEAK_BAND, SETPOINT
from daemon.report.svgplot import Chart, HBand, HLine, Series
from daemon.store.trace import Sample

SITE_COLOUR = "#1f77b4"
ESTIMATE_DASH = "8 3"  # none of the reference lines uses it: the estimate is told apart


def site_traces(
    doc: Mapping[str, Any], recipe: AnyRecipe | None, samples: Sequence[Sample]
) -> list[str]:
    """The per-site traces of a panel's report, or nothing (a single chip, no samples)."""
    sites: Sequence[Mapping[str, Any]] = doc.get("sites") or []
    if not sites or not samples or not isinstance(recipe, VacuumFilmBondRecipe):
        return []
    panel = recipe.panel
    if panel is None:
        return []
    # The same estimates the judge gave its verdicts on, never a second opinion.
    traced = with_estimates(panel, samples)
    channels = site_channels(panel)
    control = channels[panel.reference_site]
    reflow = next((s for s in recipe.steps if isinstance(s, Reflow)), None)
    t = [s.t_s for s in traced]
    x_range = (min(0.0, t[0]), max(t[-1], 1.0))
    out = [
        '<section id="site-traces"><h2>Site traces</h2><p class="muted">Open a site to see '
        "its temperature over the run. Dashed: an estimate from the measured sites, not a "
        "measurement.</p>"
    ]
    for s in sites:
        i = int(s["site"])
        ch = channels[i]
        measured = bool(s.get("instrumented"))
        what = f"measured ({ch})" if measured else "estimated (no thermocouple)"
        chart = Chart(
            f"Site {i} (row {int(s['row'])}, col {int(s['col'])}), {what}",
            "°C",
            x_range,
            height=240,
            css_id=f"chart-site-{i}",
        )
        chart.series.append(
            Series(
                f"site {i}{'' if measured else ' (estimate)'}",
                t,
                [x.temps_c.get(ch) for x in traced],
                SITE_COLOUR,
                2.0,
                "" if measured else ESTIMATE_DASH,
            )
        )
        if ch != control:
            chart.series.append(
                Series(
                    f"control site ({control})",
                    t,
                    [x.temps_c.get(control) for x in traced],
                    CHIP,
                    1.2,
                )
            )
        chart.series.append(
            Series("setpoint", t, [x.setpoint_c for x in traced], SETPOINT, 1.0, "4 3")
        )
        liquidus = recipe.materials.solder.liquidus_c
        chart.hlines.append(HLine(liquidus, f"liquidus {liquidus:g} °C", LIQUIDUS))
        if reflow is not None:
            lo, hi = reflow.peak_window_c.min, reflow.peak_window_c.max
            chart.hbands.append(HBand(lo, hi, "peak window", PEAK_BAND))
        verdict = "PASS" if s.get("ok") else "FAIL"
        peak = s.get("peak_c")
        summary = (
            f"site {i}: {verdict}, peak {'—' if peak is None else f'{peak:.1f} °C'}, "
            f"{'measured' if measured else 'estimated'}"
        )
        out.append(
            f'<details class="site-trace" id="site-trace-{i}"><summary>{escape(summary)}'
            f"</summary>{chart.render()}</details>"
        )
    out.append("</section>")
    return out
