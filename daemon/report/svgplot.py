"""A small, dependency-free SVG chart: time series on a shared time axis (ADR 0040).

Enough for run reports: line series with gaps, linear or log y axes with readable ticks,
horizontal reference lines and bands, shaded time spans and labelled time markers. Every
chart of a report uses the same width and left margin, so step boundaries and alarms line up
from one chart to the next.

Long traces are thinned per pixel column to the first, minimum, maximum and last point of
the column, in time order: the drawn line keeps every peak and dip of the recorded trace,
which plain every-n-th decimation would not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Final

WIDTH: Final = 1100
LEFT: Final = 70  # room for the y tick labels and the axis title
RIGHT: Final = 20
TOP: Final = 46  # room for the title and the legend
BOTTOM: Final = 40  # room for the x tick labels and the axis title
LEGEND_ROW: Final = 18  # height of each further row of the legend
FONT: Final = "DejaVu Sans, Helvetica, Arial, sans-serif"


@dataclass(frozen=True)
class Series:
    label: str
    x: Sequence[float]
    y: Sequence[float | None]  # None = no valid reading: the line is broken there
    color: str
    width: float = 1.6
    dash: str = ""


@dataclass(frozen=True)
class HLine:
    y: float
    label: str
    color: str
    dash: str = "6 4"


@dataclass(frozen=True)
class HBand:
    """A horizontal band, over the whole time axis or only from ``x0`` to ``x1``."""

    lo: float
    hi: float
    label: str
    color: str
    x0: float | None = None
    x1: float | None = None
    opacity: float = 0.18


@dataclass(frozen=True)
class VSpan:
    x0: float
    x1: float
    color: str
    label: str = ""  # written at the top of the span when it is wide enough
    opacity: float = 0.12
    css_class: str = ""


@dataclass(frozen=True)
class Marker:
    """A labelled moment on the time axis (an alarm, a fault)."""

    x: float
    label: str
    color: str


@dataclass
class Chart:
    title: str
    y_label: str
    x_range: tuple[float, float]
    height: int = 260
    log_y: bool = False
    y_range: tuple[float, float] | None = None  # default: from the data and reference lines
    series: list[Series] = field(default_factory=list)
    hlines: list[HLine] = field(default_factory=list)
    hbands: list[HBand] = field(default_factory=list)
    vspans: list[VSpan] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    legend_extra: list[tuple[str, str]] = field(default_factory=list)  # (label, colour) swatches
    css_id: str = ""

    def render(self, watermark: str = "") -> str:
        """The SVG; ``watermark`` is written across the plot and after the title (a
        prediction's report marks every chart, since a chart can be copied on its own)."""
        return _render(self, watermark)


# ---------------------------------------------------------------------------- ticks


def nice_step(span: float, target: int) -> float:
    """A 1-2-5 step that cuts ``span`` into about ``target`` intervals."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(target, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= m * mag:
            return m * mag
    return 10.0 * mag


def linear_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    step = nice_step(hi - lo, target)
    first = math.ceil(lo / step - 1e-9) * step
    ticks: list[float] = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Decades between ``lo`` and ``hi`` (both > 0)."""
    return [
        10.0**e
        for e in range(math.ceil(math.log10(lo) - 1e-9), math.floor(math.log10(hi) + 1e-9) + 1)
    ]


def fmt_tick(v: float, log: bool = False) -> str:
    if log:
        e = round(math.log10(v))
        if -2 <= e <= 4:
            return f"{v:g}"
        return f"1e{e}"
    if v == 0:
        return "0"
    if abs(v) >= 1000 or float(v).is_integer():
        return f"{v:.0f}"
    return f"{v:g}"


# ---------------------------------------------------------------------------- thinning


def thin(
    x: Sequence[float], y: Sequence[float | None], x0: float, x1: float, columns: int
) -> list[tuple[float, float | None]]:
    """First, min, max and last point of each pixel column (in time order); gaps kept.

    A None in ``y`` is kept as a point of its own, so the line breaks where the reading was
    missing however dense the trace is.
    """
    if len(x) <= 4 * columns or x1 <= x0:
        return list(zip(x, y, strict=True))
    out: list[tuple[float, float | None]] = []
    scale = columns / (x1 - x0)
    bucket: list[tuple[float, float]] = []
    current: int | None = None

    def flush() -> None:
        if not bucket:
            return
        lo = min(range(len(bucket)), key=lambda i: bucket[i][1])
        hi = max(range(len(bucket)), key=lambda i: bucket[i][1])
        out.extend(bucket[i] for i in sorted({0, lo, hi, len(bucket) - 1}))
        bucket.clear()

    for xi, yi in zip(x, y, strict=True):
        col = int((xi - x0) * scale)
        if yi is None:
            flush()
            out.append((xi, None))
            current = None
            continue
        if col != current:
            flush()
            current = col
        bucket.append((xi, yi))
    flush()
    return out


# ---------------------------------------------------------------------------- rendering


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def _y_extent(chart: Chart) -> tuple[float, float]:
    if chart.y_range is not None:
        return chart.y_range
    vals = [v for s in chart.series for v in s.y if v is not None and math.isfinite(v)]
    if chart.log_y:
        vals = [v for v in vals if v > 0]
    refs = [h.y for h in chart.hlines] + [v for b in chart.hbands for v in (b.lo, b.hi)]
    vals += [r for r in refs if not chart.log_y or r > 0]
    if not vals:
        return (0.1, 1000.0) if chart.log_y else (0.0, 1.0)
    lo, hi = min(vals), max(vals)
    if chart.log_y:
        return 10.0 ** math.floor(math.log10(lo)), 10.0 ** math.ceil(math.log10(hi) + 1e-9)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    pad = 0.06 * (hi - lo)
    step = nice_step(hi - lo + 2 * pad, 6)
    # The margin below must not take a positive quantity (temperatures of ~20 °C) a whole
    # step below zero: the temperature axis started at −100 °C.
    lo_axis = math.floor((lo - pad) / step) * step
    if lo >= 0 > lo_axis:
        lo_axis = 0.0
    hi = math.ceil((hi + pad) / step) * step
    return lo_axis, hi


def _legend_rows(chart: Chart) -> list[list[tuple[float, str, str, str]]]:
    """The legend's entries (x, label, colour, dash), wrapped into rows that fit the width."""
    legend = [(s.label, s.color, s.dash) for s in chart.series]
    legend += [(h_.label, h_.color, h_.dash) for h_ in chart.hlines]
    legend += [(label, color, "") for label, color in chart.legend_extra]
    rows: list[list[tuple[float, str, str, str]]] = [[]]
    x = float(LEFT)
    for label, color, dash in legend:
        width = 34 + 6.3 * len(label)
        if rows[-1] and x + width - 12 > WIDTH - RIGHT:
            rows.append([])
            x = float(LEFT)
        rows[-1].append((x, label, color, dash))
        x += width
    return rows


def _render(chart: Chart, watermark: str = "") -> str:
    title = f"{chart.title} — {watermark}" if watermark else chart.title
    rows = _legend_rows(chart)
    # Each further legend row moves the plot down and makes the chart taller by as much.
    extra = LEGEND_ROW * (len(rows) - 1)
    top = TOP + extra
    w, h = WIDTH, chart.height + extra
    pw, ph = w - LEFT - RIGHT, h - top - BOTTOM
    x0, x1 = chart.x_range
    if x1 <= x0:
        x1 = x0 + 1.0
    y0, y1 = _y_extent(chart)
    log = chart.log_y

    def tx(x: float) -> float:
        return LEFT + (min(max(x, x0), x1) - x0) / (x1 - x0) * pw

    def ty(y: float) -> float:
        if log:
            yy = math.log10(max(y, y0 * 1e-3))
            frac = (yy - math.log10(y0)) / (math.log10(y1) - math.log10(y0))
        else:
            frac = (y - y0) / (y1 - y0)
        return top + ph - min(max(frac, -0.02), 1.02) * ph

    parts: list[str] = []
    ident = f' id="{escape(chart.css_id)}"' if chart.css_id else ""
    parts.append(
        f'<svg xmlns="http://www.w3.org/2000/svg"{ident} class="chart" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="{escape(title)}" '
        f'font-family="{FONT}" font-size="11">'
    )
    parts.append(f"<title>{escape(title)}</title>")
    clip = f"clip-{chart.css_id or abs(hash(chart.title))}"
    parts.append(
        f'<defs><clipPath id="{clip}"><rect x="{LEFT}" y="{top}" width="{pw}" height="{ph}"/>'
        "</clipPath></defs>"
    )
    parts.append(f'<rect x="{LEFT}" y="{top}" width="{pw}" height="{ph}" fill="#fff"/>')

    # Spans (steps, time above liquidus) under everything else.
    for span in chart.vspans:
        a, b = tx(span.x0), tx(span.x1)
        if b - a <= 0:
            continue
        cls = f' class="{escape(span.css_class)}"' if span.css_class else ""
        parts.append(
            f'<rect{cls} x="{_fmt(a)}" y="{top}" width="{_fmt(b - a)}" height="{ph}" '
            f'fill="{span.color}" fill-opacity="{span.opacity}"/>'
        )
        if span.label and b - a > 7 * len(span.label) * 0.62:
            parts.append(
                f'<text x="{_fmt((a + b) / 2)}" y="{top + 12}" text-anchor="middle" '
                f'fill="#445" font-size="10">{escape(span.label)}</text>'
            )
    for band in chart.hbands:
        a = tx(band.x0 if band.x0 is not None else x0)
        b = tx(band.x1 if band.x1 is not None else x1)
        band_top, bottom = ty(band.hi), ty(band.lo)
        parts.append(
            f'<rect x="{_fmt(a)}" y="{_fmt(band_top)}" width="{_fmt(b - a)}" '
            f'height="{_fmt(max(bottom - band_top, 1.0))}" fill="{band.color}" '
            f'fill-opacity="{band.opacity}" stroke="{band.color}" stroke-opacity="0.5"/>'
        )

    # Grid and y ticks.
    yticks = log_ticks(y0, y1) if log else linear_ticks(y0, y1)
    for v in yticks:
        y = ty(v)
        parts.append(
            f'<line x1="{LEFT}" y1="{_fmt(y)}" x2="{LEFT + pw}" y2="{_fmt(y)}" stroke="#dde1e6"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{_fmt(y + 4)}" text-anchor="end" fill="#333">'
            f"{escape(fmt_tick(v, log))}</text>"
        )
    if log:  # minor ticks at 2..9 of each decade
        e = math.floor(math.log10(y0))
        while 10.0**e < y1:
            for mult in range(2, 10):
                v = mult * 10.0**e
                if y0 < v < y1:
                    y = ty(v)
                    parts.append(
                        f'<line x1="{LEFT}" y1="{_fmt(y)}" x2="{LEFT + 4}" y2="{_fmt(y)}" '
                        'stroke="#999"/>'
                    )
            e += 1
    for v in linear_ticks(x0, x1, 10):
        x = tx(v)
        parts.append(
            f'<line x1="{_fmt(x)}" y1="{top}" x2="{_fmt(x)}" y2="{top + ph}" stroke="#eef0f3"/>'
        )
        parts.append(
            f'<text x="{_fmt(x)}" y="{top + ph + 15}" text-anchor="middle" fill="#333">'
            f"{escape(fmt_tick(v))}</text>"
        )
    parts.append(
        f'<text x="{LEFT + pw / 2}" y="{h - 6}" text-anchor="middle" fill="#333">'
        "run time (s)</text>"
    )
    parts.append(
        f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" text-anchor="middle" '
        f'fill="#333">{escape(chart.y_label)}</text>'
    )

    # Reference lines, then the data, clipped to the plot area.
    parts.append(f'<g clip-path="url(#{clip})">')
    for line in chart.hlines:
        y = ty(line.y)
        parts.append(
            f'<line x1="{LEFT}" y1="{_fmt(y)}" x2="{LEFT + pw}" y2="{_fmt(y)}" '
            f'stroke="{line.color}" stroke-width="1.2" stroke-dasharray="{line.dash}"/>'
        )
        parts.append(
            f'<text x="{LEFT + pw - 4}" y="{_fmt(y - 4)}" text-anchor="end" '
            f'fill="{line.color}" font-size="10">{escape(line.label)}</text>'
        )
    columns = max(pw, 1)
    # The first series is the one that matters most: drawn last, so nothing hides it.
    for s in reversed(chart.series):
        d = _path(thin(s.x, s.y, x0, x1, columns), tx, ty, log)
        if not d:
            continue
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        parts.append(
            f'<path class="series" data-label="{escape(s.label)}" d="{d}" fill="none" '
            f'stroke="{s.color}" stroke-width="{s.width}" stroke-linejoin="round"{dash}/>'
        )
    parts.append("</g>")
    for m in chart.markers:
        x = tx(m.x)
        parts.append(
            f'<g class="marker"><line x1="{_fmt(x)}" y1="{top}" x2="{_fmt(x)}" y2="{top + ph}" '
            f'stroke="{m.color}" stroke-width="1.5"/>'
            f'<path d="M{_fmt(x - 5)} {top - 1} L{_fmt(x + 5)} {top - 1} L{_fmt(x)} {top + 7} Z" '
            f'fill="{m.color}"/>'
            f'<text x="{_fmt(x - 4)}" y="{top + ph - 6}" text-anchor="end" fill="{m.color}" '
            f'font-size="10" font-weight="bold">{escape(m.label)}</text></g>'
        )
    parts.append(
        f'<rect x="{LEFT}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#8a94a0"/>'
    )
    if watermark:
        parts.append(
            f'<text class="watermark" x="{LEFT + pw / 2:.1f}" y="{top + ph / 2:.1f}" '
            'text-anchor="middle" dominant-baseline="middle" font-size="40" '
            f'font-weight="bold" fill="#c0392b" fill-opacity="0.18">{escape(watermark)}</text>'
        )

    # Title and legend along the top.
    parts.append(
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold" fill="#1b2733">'
        f"{escape(title)}</text>"
    )
    for r, row in enumerate(rows):
        y = LEGEND_ROW * r
        for x, label, color, dash in row:
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(
                f'<line x1="{_fmt(x)}" y1="{33 + y}" x2="{_fmt(x + 18)}" y2="{33 + y}" '
                f'stroke="{color}" stroke-width="3"{dash_attr}/>'
            )
            parts.append(
                f'<text x="{_fmt(x + 22)}" y="{37 + y}" fill="#333">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _path(
    points: Sequence[tuple[float, float | None]],
    tx: Callable[[float], float],
    ty: Callable[[float], float],
    log: bool,
) -> str:
    out: list[str] = []
    pen_down = False
    for x, y in points:
        if y is None or not math.isfinite(y) or (log and y <= 0):
            pen_down = False
            continue
        out.append(f"{'L' if pen_down else 'M'}{_fmt(tx(x))} {_fmt(ty(y))}")
        pen_down = True
    return "".join(out)
