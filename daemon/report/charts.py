"""The report's charts: temperatures against the recipe's window, pressure and O2, lamp power,
the lead-lift traces; steps, holds and alarms on the timeline (inline SVG, daemon/report/svgplot.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from daemon.recipe.model import (
    O2_PPM_MIN_PRESSURE_MBAR,
    AnyRecipe,
    BumpMaterials,
    Cure,
    LeadLiftRecipe,
    LeadLiftStep,
    Reflow,
    atmosphere_of,
    component_max_c,
)
from daemon.report.colours import (
    BAD,
    CHIP,
    CHUCK,
    COMPONENT,
    HOLD,
    LAMP_ZONES_ALIKE_PCT,
    LIQUIDUS,
    PALETTE,
    PEAK_BAND,
    SETPOINT,
    TAL_SPAN,
    TG,
    Z_MOVING_UM,
)
from daemon.report.svgplot import Chart, HBand, HLine, Marker, Series, VSpan
from daemon.store.records import HoldRecord, RunRecord, StepRecord
from daemon.store.trace import Sample


@dataclass(frozen=True)
class Failure:
    """Where a run that did not complete went wrong, for the box at the top of the report."""

    step: StepRecord | None
    alarms: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    reason: str


def step_at(record: RunRecord, t: float) -> str:
    for s in record.steps:
        end = s.ended_t_s if s.ended_t_s is not None else math.inf
        if s.started_t_s <= t <= end:
            return f"step {s.name}"
    return "the safe state" if record.steps else "no step"


# ---------------------------------------------------------------------------- charts


def _spans_above(
    t: Sequence[float], y: Sequence[float | None], level: float
) -> list[tuple[float, float]]:
    """Intervals where ``y`` was at or above ``level``, crossings interpolated.

    The same rule as the conformance check's time above liquidus (an interval with a missing
    reading at either end does not count), so the shading adds up to the checked value.
    """
    spans: list[tuple[float, float]] = []
    for i in range(1, len(t)):
        a, b = y[i - 1], y[i]
        if a is None or b is None:
            continue
        da, db = a - level, b - level
        if da < 0 and db < 0:
            continue
        t0, t1 = t[i - 1], t[i]
        if da < 0:
            t0 += (t1 - t0) * -da / (db - da)
        elif db < 0:
            t1 = t0 + (t1 - t0) * da / (da - db)
        if spans and abs(spans[-1][1] - t0) < 1e-9:
            spans[-1] = (spans[-1][0], t1)
        else:
            spans.append((t0, t1))
    return spans


def _step_spans(record: RunRecord, failed_step: StepRecord | None, t_end: float) -> list[VSpan]:
    spans: list[VSpan] = []
    last_end = max((s.ended_t_s or 0.0 for s in record.steps), default=t_end)
    if record.state != "completed" and last_end < t_end:
        spans.append(VSpan(last_end, t_end, "#5d6d7e", "safe state", 0.16, "safe-state"))
    for i, s in enumerate(record.steps):
        end = s.ended_t_s if s.ended_t_s is not None else t_end
        if failed_step is not None and s.idx == failed_step.idx:
            spans.append(
                VSpan(s.started_t_s, end, BAD, f"{s.name} ({s.result})", 0.16, "failed-step")
            )
        else:
            spans.append(VSpan(s.started_t_s, end, "#7f8c9a" if i % 2 else "#b8c2cc", s.name, 0.10))
    return spans


def _hold_spans(record: RunRecord, t_end: float) -> list[VSpan]:
    return [
        VSpan(
            h.held_t_s,
            h.ended_t_s if h.ended_t_s is not None else t_end,
            HOLD,
            "hold",
            0.30,
            "hold",
        )
        for h in record.holds
    ]


def hold_text(h: HoldRecord, record: RunRecord) -> str:
    """``held by ana (local operator), asked for at t = 40.1 s, before step pump_down; …``."""
    who = h.requested_by or "unknown (not recorded)"
    text = f"held by {who}, asked for at t = {h.requested_t_s:.1f} s"
    step = next((s for s in record.steps if s.idx == h.before_step), None)
    if step is not None:
        text += f", before step {step.name}"
    if h.result == "resumed":
        text += f"; resumed by {h.ended_by or 'unknown (not recorded)'}"
    elif h.result == "aborted":
        text += "; the run was aborted while held" + (f" ({h.ended_by})" if h.ended_by else "")
    else:
        text += "; still held when the run's record ends"
    return text


def _markers(record: RunRecord) -> list[Marker]:
    return [
        Marker(a.t_s, a.code, BAD if a.severity == "alarm" else "#d68910") for a in record.alarms
    ]


def build_charts(
    record: RunRecord,
    recipe: AnyRecipe | None,
    samples: Sequence[Sample],
    failure: Failure | None,
    *,
    watermark: str = "",
) -> list[str]:
    t = [s.t_s for s in samples]
    t_end = max(t[-1] if t else 0.0, *(a.t_s for a in record.alarms), 1.0)
    x_range = (min(0.0, t[0]) if t else 0.0, t_end)
    steps = _step_spans(record, failure.step if failure else None, t_end)
    steps += _hold_spans(record, t_end)
    markers = _markers(record)
    charts: list[str] = []

    channels: list[str] = []
    for s in samples:
        for ch in s.temps_c:
            if ch not in channels:
                channels.append(ch)
    chip_ch = "chip"
    if recipe is not None:
        reflow = next((s for s in recipe.steps if isinstance(s, Reflow)), None)
        chip_ch = reflow.control_tc if reflow is not None else chip_ch

    def colour(ch: str, i: int) -> str:
        if ch == chip_ch:
            return CHIP
        if ch.startswith("component"):
            return COMPONENT
        if ch.startswith("chuck"):
            return CHUCK
        return PALETTE[i % len(PALETTE)]

    temps = Chart(
        "Temperatures",
        "°C",
        x_range,
        height=380,
        css_id="chart-temperatures",
        vspans=list(steps),
        markers=list(markers),
    )
    channels.sort(key=lambda ch: ch != chip_ch)  # the controlled chip first (and on top)
    for i, ch in enumerate(channels):
        temps.series.append(
            Series(
                ch,
                t,
                [s.temps_c.get(ch) for s in samples],
                colour(ch, i),
                2.0 if ch == chip_ch else 1.6,
            )
        )
    temps.series.append(
        Series("setpoint", t, [s.setpoint_c for s in samples], SETPOINT, 1.2, "4 3")
    )
    if recipe is not None:
        mats = recipe.materials
        solder = mats.solder
        liquidus = solder.liquidus_c
        temps.hlines.append(HLine(liquidus, f"liquidus {liquidus:g} °C ({solder.name})", LIQUIDUS))
        tg_line = component_max_c(recipe)
        what = (
            f"carrier limit {tg_line:g} °C ({mats.carrier.name})"
            if isinstance(mats, BumpMaterials)
            else f"Tg − margin {tg_line:g} °C ({mats.component.polymer})"
        )
        temps.hlines.append(HLine(tg_line, what, TG, "2 3"))
        for r in (s for s in recipe.steps if isinstance(s, Reflow)):
            rec = next((s for s in record.steps if s.name == r.name), None)
            if rec is None:
                continue
            end = rec.ended_t_s if rec.ended_t_s is not None else t_end
            lo, hi = r.peak_window_c.min, r.peak_window_c.max
            temps.hbands.append(HBand(lo, hi, "peak window", PEAK_BAND, rec.started_t_s, end))
            temps.legend_extra.append((f"peak window {lo:g}–{hi:g} °C", PEAK_BAND))
        chip = [s.temps_c.get(chip_ch) for s in samples]
        tal = _spans_above(t, chip, liquidus)
        # Drawn over the step bands, as the time above liquidus is what the eye looks for.
        temps.vspans.extend(VSpan(a, b, TAL_SPAN, "", 0.28, "tal") for a, b in tal)
        total = sum(b - a for a, b in tal)
        temps.legend_extra.append((f"above liquidus ({total:.1f} s)", TAL_SPAN))
    charts.append(temps.render(watermark))

    gas = Chart(
        "Working-space pressure and O2 (log scale)",
        "mbar  /  ppm",
        x_range,
        height=280,
        log_y=True,
        css_id="chart-gas",
        vspans=list(steps),
        markers=list(markers),
    )
    pressure = [s.pressure_mbar for s in samples]
    gas.series.append(Series("pressure (mbar)", t, pressure, "#1f77b4", 1.8))
    # As in the conformance checks: a concentration means something only while the space
    # holds gas; under the film's vacuum the O2 partial pressure is the proof (ADR 0004).
    o2 = [
        s.o2_ppm if p is not None and p >= O2_PPM_MIN_PRESSURE_MBAR else None
        for s, p in zip(samples, pressure, strict=True)
    ]
    gas.series.append(
        Series(f"O2 (ppm, at ≥ {O2_PPM_MIN_PRESSURE_MBAR:g} mbar)", t, o2, "#2ca02c", 1.8)
    )
    gas.series.append(
        Series(
            "O2 partial pressure (mbar)", t, [s.o2_partial_mbar() for s in samples], "#8c564b", 1.6
        )
    )
    atm = atmosphere_of(recipe) if recipe is not None else None
    if atm is not None:
        gas.hlines.append(HLine(atm.o2_max_ppm, f"O2 limit {atm.o2_max_ppm:g} ppm", "#2ca02c"))
        gas.hlines.append(
            HLine(
                atm.o2_max_partial_mbar,
                f"O2 partial limit {atm.o2_max_partial_mbar:g} mbar",
                "#8c564b",
            )
        )
    charts.append(gas.render(watermark))

    zones = max((len(s.lamp_zones_pct) for s in samples), default=0)
    lamps = Chart(
        "Lamp power per zone",
        "%",
        x_range,
        height=240,
        y_range=(0.0, 100.0),
        css_id="chart-lamps",
        vspans=list(steps),
        markers=list(markers),
    )

    def zone(z: int) -> list[float | None]:
        return [s.lamp_zones_pct[z] if z < len(s.lamp_zones_pct) else None for s in samples]

    columns = [zone(z) for z in range(zones)]
    alike = zones > 1 and all(
        all(v is not None for v in row) and max(row) - min(row) <= LAMP_ZONES_ALIKE_PCT
        for row in zip(*columns, strict=True)
    )
    if alike:
        # Zones driven alike are one line, not several drawn over each other.
        lamps.series.append(Series(f"zones 1–{zones} (all equal)", t, columns[0], PALETTE[3], 1.8))
    else:
        for z, col in enumerate(columns):
            lamps.series.append(
                Series(f"zone {z + 1}", t, col, PALETTE[(z + 3) % len(PALETTE)], 1.6)
            )
    if zones == 0:
        lamps.series.append(Series("mean", t, [s.lamp_pct for s in samples], "#9467bd", 1.4))
    charts.append(lamps.render(watermark))

    z_vals = [s.z_um for s in samples if s.z_um is not None]
    if z_vals and max(z_vals) - min(z_vals) >= Z_MOVING_UM:
        zc = Chart(
            "Z stage position",
            "µm",
            x_range,
            height=220,
            css_id="chart-z",
            vspans=list(steps),
            markers=list(markers),
        )
        zc.series.append(Series("Z position", t, [s.z_um for s in samples], "#17becf", 1.6))
        charts.append(zc.render(watermark))
    charts += _lead_lift_charts(
        recipe, samples, t, x_range, steps=steps, markers=markers, watermark=watermark
    )
    return charts


def _lead_lift_charts(
    recipe: AnyRecipe | None,
    samples: Sequence[Sample],
    t: list[float],
    x_range: tuple[float, float],
    *,
    steps: Sequence[VSpan],
    markers: Sequence[Marker],
    watermark: str,
) -> list[str]:
    """Force, UV and the daemon's estimates: drawn only when the trace has them."""

    def chart(title: str, unit: str, css: str) -> Chart:
        return Chart(
            title, unit, x_range, height=220, css_id=css, vspans=list(steps), markers=list(markers)
        )

    out: list[str] = []
    forces = [s.z_force_n for s in samples]
    if any(f is not None and f != 0.0 for f in forces):
        fc = chart("Z stage force", "N", "chart-force")
        fc.series.append(Series("force", t, forces, BAD, 1.6))
        if isinstance(recipe, LeadLiftRecipe):
            for lim in {s.force_limit_n for s in recipe.steps if isinstance(s, LeadLiftStep)}:
                fc.hlines.append(HLine(lim, f"force limit {lim:g} N", BAD, "4 3"))
        out.append(fc.render(watermark))
    doses = [s.uv_dose_mj_cm2 for s in samples]
    if any(d for d in doses):
        uc = chart("UV irradiance and dose", "mW/cm²  /  mJ/cm²", "chart-uv")
        uc.series.append(
            Series("irradiance (mW/cm²)", t, [s.uv_mw_cm2 for s in samples], "#9467bd", 1.4)
        )
        uc.series.append(Series("dose, cumulative (mJ/cm²)", t, doses, "#2ca02c", 1.8))
        out.append(uc.render(watermark))
    alphas = [s.cure_conversion for s in samples]
    if any(a for a in alphas):
        cc = chart("Encapsulant: estimated cure conversion", "fraction", "chart-cure")
        cc.series.append(Series("conversion", t, alphas, "#8c564b", 1.8))
        if isinstance(recipe, LeadLiftRecipe):
            for c in (s for s in recipe.steps if isinstance(s, Cure)):
                cc.hlines.append(
                    HLine(c.conversion_target, f"target {c.conversion_target:g}", TG, "4 3")
                )
        out.append(cc.render(watermark))
    return out


# ---------------------------------------------------------------------------- page
