"""The map of a panel in the run report: one cell per site, coloured by its peak against
the recipe's peak window, with its verdict; estimated sites drawn dashed and marked "est."
(docs/panel.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any, Final

from daemon.recipe.model import AnyRecipe, Reflow, VacuumFilmBondRecipe

_CELL: Final = 92  # px
_GAP: Final = 6
# Peak colour scale: blue well under the window, green in its middle, red well over it.
_COLD: Final = (46, 134, 193)
_GOOD: Final = (30, 132, 73)
_HOT: Final = (192, 57, 43)
_NONE: Final = "#9aa5b1"


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], f: float) -> str:
    f = min(1.0, max(0.0, f))
    r, g, bl = (round(x + (y - x) * f) for x, y in zip(a, b, strict=True))
    return f"#{r:02x}{g:02x}{bl:02x}"


def peak_colour(peak: float | None, lo: float, hi: float) -> str:
    """The colour of a peak on the window's scale (the window's own width beyond each edge
    runs to full blue or red)."""
    if peak is None:
        return _NONE
    mid, half = (lo + hi) / 2.0, max((hi - lo) / 2.0, 0.5)
    if peak <= mid:
        return _mix(_GOOD, _COLD, (mid - peak) / (2.0 * half))
    return _mix(_GOOD, _HOT, (peak - mid) / (2.0 * half))


def _window(recipe: AnyRecipe | None) -> tuple[float, float] | None:
    if not isinstance(recipe, VacuumFilmBondRecipe):
        return None
    reflow = next((s for s in recipe.steps if isinstance(s, Reflow)), None)
    return None if reflow is None else (reflow.peak_window_c.min, reflow.peak_window_c.max)


def panel_section(doc: Mapping[str, Any], recipe: AnyRecipe | None) -> list[str]:
    """The report's panel section, or nothing for a single chip's run."""
    sites: Sequence[Mapping[str, Any]] = doc.get("sites") or []
    if not sites:
        return []
    e = escape
    rows = 1 + max(int(s["row"]) for s in sites)
    cols = 1 + max(int(s["col"]) for s in sites)
    window = _window(recipe)
    lo, hi = window if window is not None else (0.0, 0.0)
    w, h = cols * (_CELL + _GAP) + _GAP, rows * (_CELL + _GAP) + _GAP
    svg = [
        f'<svg id="panel-map" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="panel map">'
    ]
    for s in sites:
        x = _GAP + int(s["col"]) * (_CELL + _GAP)
        y = _GAP + int(s["row"]) * (_CELL + _GAP)
        peak = s.get("peak_c")
        fill = peak_colour(peak, lo, hi) if window is not None else _NONE
        measured = bool(s.get("instrumented"))
        dash = "" if measured else ' stroke-dasharray="6 4"'
        ok = bool(s.get("ok"))
        peak_text = "—" if peak is None else f"{peak:.1f} °C"
        tal = s.get("tal_s")
        tal_text = "—" if tal is None else f"TAL {tal:.1f} s"
        svg.append(
            f'<g class="site" data-site="{int(s["site"])}">'
            f'<rect x="{x}" y="{y}" width="{_CELL}" height="{_CELL}" rx="6" fill="{fill}" '
            f'stroke="{"#1b2733" if ok else "#c0392b"}" stroke-width="{2 if ok else 4}"{dash}/>'
            f'<text x="{x + 8}" y="{y + 18}" font-size="12" fill="#fff">site {int(s["site"])}'
            f"{'' if measured else ' · est.'}</text>"
            f'<text x="{x + 8}" y="{y + 44}" font-size="16" font-weight="700" fill="#fff">'
            f"{e(peak_text)}</text>"
            f'<text x="{x + 8}" y="{y + 62}" font-size="12" fill="#fff">{e(tal_text)}</text>'
            f'<text x="{x + 8}" y="{y + 82}" font-size="13" font-weight="700" fill="#fff">'
            f"{'PASS' if ok else 'FAIL'}</text></g>"
        )
    svg.append("</svg>")
    uniformity = (doc.get("metrics") or {}).get("uniformity_c")
    head = (
        f"{rows} × {cols} panel; peak window {lo:g}–{hi:g} °C"
        if window is not None
        else f"{rows} × {cols} panel"
    )
    out = [
        '<section id="panel"><h2>Panel</h2>',
        f'<p class="muted">{e(head)}; uniformity at the peak hold '
        f"{'—' if uniformity is None else f'{uniformity:.2f} °C'}. Colour: the site's peak "
        "(blue under the window, green in it, red over it); a red border: the site failed. "
        "Dashed, “est.”: no thermocouple on that site, its temperatures are estimates "
        "(not measurements).</p>",
        "".join(svg),
        '<table id="panel-sites"><thead><tr><th>site</th><th>row</th><th>col</th>'
        '<th>measured</th><th class="num">peak °C</th><th class="num">TAL s</th>'
        "<th>verdict</th><th>failed checks</th></tr></thead><tbody>",
    ]
    for s in sites:
        ok = bool(s.get("ok"))
        measured = bool(s.get("instrumented"))
        cls = ' class="bad"' if not ok else ""
        peak, tal = s.get("peak_c"), s.get("tal_s")
        verdict = '<span class="ok">PASS</span>' if ok else '<span class="nok">FAIL</span>'
        where = f"yes ({e(str(s.get('channel')))})" if measured else "no: estimate"
        out.append(
            f"<tr{cls}><td>{int(s['site'])}</td><td>{int(s['row'])}</td><td>{int(s['col'])}</td>"
            f"<td>{where}</td>"
            f'<td class="num">{"—" if peak is None else f"{peak:.1f}"}</td>'
            f'<td class="num">{"—" if tal is None else f"{tal:.1f}"}</td>'
            f"<td>{verdict}</td>"
            f"<td>{e(', '.join(s.get('failed_checks') or [])) or '—'}</td></tr>"
        )
    out.append("</tbody></table></section>")
    return out
