"""The run report: one self-contained HTML page built from the run's record (ADR 0040).

Everything comes from the record (the run row, its steps, alarms, device identities, trace
and stored result document), never from the recipe library or the current configuration:
a report written years later shows what was true of the run, and the recipe lines drawn on
the charts come from the recipe text stored with the run.

No scripts, stylesheets, fonts or images are fetched: the charts are inline SVG and the style
is inline CSS, so the file opens offline and can be archived as it is.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from daemon import __version__
from daemon.judge.evaluate import evaluate
from daemon.judge.types import StepOutcome
from daemon.recipe.model import (
    AnyRecipe,
    Recipe,
)
from daemon.report.charts import Failure, build_charts, hold_text, step_at
from daemon.report.panel_map import panel_section
from daemon.report.site_traces import site_traces
from daemon.store.records import RunRecord
from daemon.store.trace import Sample

_RECIPE: TypeAdapter[AnyRecipe] = TypeAdapter(Recipe)


def parse_recorded_recipe(text: str) -> AnyRecipe | None:
    """The recipe as stored with the run, or None if this software cannot read it."""
    try:
        return _RECIPE.validate_python(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError):
        return None


def _num(v: object) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        f = float(v)
        if not math.isfinite(f):
            return "—"
        if f != 0 and (abs(f) >= 1e5 or abs(f) < 1e-3):
            return f"{f:.3g}"
        return f"{f:.4g}" if abs(f) < 1000 else f"{f:.0f}"
    return str(v)


def _dur(s: float | None) -> str:
    return "—" if s is None else f"{s:.1f} s"


def _time(ts: datetime | None) -> str:
    return "—" if ts is None else ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ---------------------------------------------------------------------------- content


def _checks(
    record: RunRecord, recipe: AnyRecipe | None, samples: Sequence[Sample]
) -> tuple[list[dict[str, Any]], str]:
    """The conformance entries and where they came from."""
    if record.result is not None:
        return list(record.result.get("conformance", [])), "as judged when the run ended"
    if recipe is None:
        return [], "not available: the run never closed and its recipe cannot be read"
    # A run interrupted by a crash has no result document: judge its trace now, and say so.
    outcomes = [
        StepOutcome(s.type, s.name, s.result, s.started_t_s, s.ended_t_s, s.detail)
        for s in record.steps
    ]
    checks, _ = evaluate(recipe, samples, outcomes)
    entries = [
        {
            "check": c.check,
            "ok": c.ok,
            "value": c.value,
            "limit": c.limit,
            "detail": c.detail,
            "condition": c.condition,
        }
        for c in checks
    ]
    return (
        entries,
        "judged from the recorded trace when this report was written (the run never closed)",
    )


def find_failure(record: RunRecord, checks: Sequence[dict[str, Any]]) -> Failure | None:
    if record.state == "completed":
        return None
    step = next((s for s in record.steps if s.result != "completed"), None)
    alarms = [
        {"t_s": a.t_s, "code": a.code, "severity": a.severity, "message": a.message}
        for a in record.alarms
    ]
    return Failure(step, alarms, [c for c in checks if not c.get("ok")], record.reason)


_CSS: Final = """
*{box-sizing:border-box}
body{margin:0;background:#eef1f4;color:#1b2733;font:14px/1.45 'DejaVu Sans',Helvetica,Arial,sans-serif}
main{max-width:1160px;margin:0 auto;padding:0 16px 40px}
header{background:#1b2733;color:#fff;padding:18px 0 16px;margin-bottom:18px}
header .in{max-width:1160px;margin:0 auto;padding:0 16px;display:flex;align-items:center;gap:18px}
header h1{font-size:21px;margin:0;font-weight:600}
header .sub{color:#b8c4d0;font-size:13px;margin-top:3px}
.badge{font-weight:700;letter-spacing:.06em;padding:7px 14px;border-radius:4px;font-size:15px}
.badge.completed{background:#1e8449;color:#fff}.badge.aborted,.badge.failed,.badge.running{background:#c0392b;color:#fff}
section{background:#fff;border:1px solid #d5dbe1;border-radius:6px;padding:14px 18px;margin-bottom:16px;page-break-inside:avoid}
h2{font-size:16px;margin:0 0 10px;color:#1b2733}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:0 28px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e3e7eb;vertical-align:top}
th{background:#f4f6f8;font-weight:600;color:#3d4b59}
table.kv th{width:36%;background:none;color:#5b6875;font-weight:normal}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.bad td{background:#fdecea}
tr.hold td{background:#fef9e7}
table.checks{table-layout:fixed}
table.checks td:first-child code{word-break:normal;overflow-wrap:anywhere}
table.checks td.num{white-space:normal}
th.num{text-align:right}
.ok{color:#1e8449;font-weight:700}.nok{color:#c0392b;font-weight:700}
code,.mono{font-family:'DejaVu Sans Mono',monospace;font-size:12px;word-break:break-all}
.failure{border:2px solid #c0392b;background:#fff6f5}
.failure h2{color:#c0392b}
.failure dl{display:grid;grid-template-columns:130px 1fr;gap:4px 12px;margin:0}
.failure dt{font-weight:600;color:#7b241c}
.chart{display:block;margin:0 auto 8px;max-width:100%;height:auto}
pre{background:#f7f8fa;border:1px solid #e3e7eb;padding:10px;font-size:12px;overflow:auto;max-height:none}
.muted{color:#6b7785;font-size:12px}
footer{color:#6b7785;font-size:12px;text-align:center;margin-top:10px}
"""


def _row(cells: Sequence[str], bad: bool = False, num: Sequence[int] = ()) -> str:
    tds = "".join(
        f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>" for i, c in enumerate(cells)
    )
    return f'<tr class="bad">{tds}</tr>' if bad else f"<tr>{tds}</tr>"


def _kv(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


PREDICTION_MARK: Final = "PREDICTION"


def render_report(
    record: RunRecord,
    samples: Sequence[Sample],
    *,
    generated_at: datetime | None = None,
    prediction: bool = False,
) -> str:
    """The whole report page for one run; ``prediction`` marks a run of the machine's twin
    (``bonderd predict``) in the title, the heading and on every chart, so that a page
    printed or archived on its own cannot be taken for a record of parts."""
    recipe = parse_recorded_recipe(record.recipe_text)
    checks, checks_source = _checks(record, recipe, samples)
    failure = find_failure(record, checks)
    doc = record.result or {}
    generated = generated_at or datetime.now(UTC)
    e = escape

    sha_ok = hashlib.sha256(record.recipe_text.encode("utf-8")).hexdigest() == record.recipe_sha256
    sha_note = (
        '<span class="ok">matches the stored recipe text</span>'
        if sha_ok
        else '<span class="nok">DOES NOT match the stored recipe text</span>'
    )
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Nothing may be fetched: the report must open offline and be archived as one file.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{PREDICTION_MARK + ' — ' if prediction else ''}Run report "
        f"{e(record.run_id)} — {e(record.recipe_name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        '<header><div class="in">',
        f'<span class="badge {e(record.state)}" id="verdict">{e(record.state.upper())}</span>',
        f"<div><h1>{PREDICTION_MARK + ' — ' if prediction else ''}"
        f"{e(record.recipe_name)} v{record.recipe_version} — run {e(record.run_id)}</h1>",
        f'<div class="sub">lot {e(record.lot_id or "—")} · equipment {e(record.equipment_id)} · '
        f"started {e(_time(record.started_at))} · {e(record.reason)}</div></div>",
        "</div></header><main>",
    ]

    if failure is not None:
        step_text = (
            f"<b>{e(failure.step.name)}</b> ({e(failure.step.type)}) {e(failure.step.result)} at "
            f"t = {_num(failure.step.ended_t_s)} s"
            + (f": {e(failure.step.detail)}" if failure.step.detail else "")
            if failure.step is not None
            else "every step completed"
        )
        alarm_text = (
            "<br>".join(
                f"<b>{e(a['code'])}</b> ({e(a['severity'])}) at t = {_num(a['t_s'])} s in "
                f"{e(step_at(record, a['t_s']))}: {e(a['message'])}"
                for a in failure.alarms
            )
            or "none raised"
        )
        check_text = (
            "<br>".join(
                f"<b>{e(c['check'])}</b>: {e(str(c.get('detail', '')))}" for c in failure.checks
            )
            or "every check held"
        )
        out.append(
            '<section class="failure" id="failure"><h2>Where this run failed</h2><dl>'
            f"<dt>Reason</dt><dd>{e(failure.reason or '—')}</dd>"
            f'<dt>Step</dt><dd id="failure-step">{step_text}</dd>'
            f'<dt>Alarms</dt><dd id="failure-alarms">{alarm_text}</dd>'
            f'<dt>Failed checks</dt><dd id="failure-checks">{check_text}</dd>'
            "</dl></section>"
        )

    devices = record.devices
    out.append('<section id="traceability"><h2>Traceability</h2><div class="grid">')
    out.append(
        _kv(
            [
                ("Run", f"<code>{e(record.run_id)}</code>"),
                ("Result", f"<b>{e(record.state)}</b>"),
                ("Reason", e(record.reason or "—")),
                ("Lot", e(record.lot_id or "—")),
                ("Operator", e(record.operator or "— (not given when the run started)")),
                (
                    "Holds",
                    "<br>".join(
                        f"{h.held_t_s:.1f}–{_dur(h.ended_t_s)}: {e(hold_text(h, record))}"
                        for h in record.holds
                    )
                    or "none",
                ),
                ("Started", e(_time(record.started_at))),
                ("Ended", e(_time(record.ended_at))),
            ]
        )
    )
    out.append(
        _kv(
            [
                ("Recipe", f"{e(record.recipe_name)}, version {record.recipe_version}"),
                (
                    "Recipe sha256",
                    f'<code id="recipe-sha256">{e(record.recipe_sha256)}</code><br>{sha_note}',
                ),
                ("Equipment", e(record.equipment_id)),
                ("Software", f"bonderd {e(record.software_version)}"),
                ("Config hash", f"<code>{e(record.config_hash or '—')}</code>"),
                (
                    "Samples",
                    f"{len(samples)} over {_dur(samples[-1].t_s - samples[0].t_s if samples else None)}",
                ),
            ]
        )
    )
    out.append("</div></section>")

    out.append('<section id="charts"><h2>Process trace</h2>')
    if recipe is None:
        out.append(
            '<p class="muted">The stored recipe text cannot be read by this software version: '
            "the charts show the trace without the recipe's limits.</p>"
        )
    out.extend(
        build_charts(
            record, recipe, samples, failure, watermark=PREDICTION_MARK if prediction else ""
        )
    )
    out.append(
        '<p class="muted">Shaded columns are the steps (red: the step that failed; yellow: '
        "an operator hold); pink columns the chip at or above the liquidus; green band the recipe's peak window "
        "during reflow; triangles and vertical lines are alarms.</p></section>"
    )

    out.append(
        f'<section id="conformance"><h2>Process conformance</h2><p class="muted">{e(checks_source)}</p>'
    )
    out.append(
        '<table class="checks"><colgroup><col style="width:18%"><col style="width:8%">'
        '<col style="width:12%"><col style="width:7%"><col style="width:29%"><col></colgroup>'
        '<thead><tr><th>check</th><th class="num">value</th><th class="num">limit</th>'
        "<th>verdict</th>"
        "<th>process condition it proves</th><th>detail</th></tr></thead><tbody>"
    )
    for c in checks:
        ok = bool(c.get("ok"))
        verdict = '<span class="ok">PASS</span>' if ok else '<span class="nok">FAIL</span>'
        out.append(
            _row(
                [
                    f"<code>{e(str(c.get('check')))}</code>",
                    e(_num(c.get("value"))),
                    e(_num(c.get("limit"))),
                    verdict,
                    e(str(c.get("condition", ""))),
                    e(str(c.get("detail", ""))),
                ],
                bad=not ok,
                num=(1, 2),
            )
        )
    if not checks:
        out.append('<tr><td colspan="6">no checks recorded</td></tr>')
    out.append("</tbody></table></section>")
    out.extend(panel_section(doc, recipe))
    out.extend(site_traces(doc, recipe, samples))

    out.append(
        '<section id="steps"><h2>Steps</h2><table><thead><tr><th>#</th><th>step</th>'
        "<th>type</th><th>result</th><th>start</th><th>end</th><th>duration</th>"
        "<th>detail</th></tr></thead><tbody>"
    )
    ran = {s.name for s in record.steps}
    holds = sorted(record.holds, key=lambda h: h.held_t_s)

    def hold_rows(before: float) -> None:
        while holds and holds[0].held_t_s <= before:
            h = holds.pop(0)
            end = h.ended_t_s
            out.append(
                f'<tr class="hold">{"".join(f"<td>{c}</td>" for c in ["", "<b>hold</b>", "operator hold", e(h.result)])}'
                f'<td class="num">{h.held_t_s:.1f} s</td><td class="num">{_dur(end)}</td>'
                f'<td class="num">{_dur(None if end is None else end - h.held_t_s)}</td>'
                f"<td>{e(hold_text(h, record))}</td></tr>"
            )

    for s in record.steps:
        hold_rows(s.started_t_s)
        dur = None if s.ended_t_s is None else s.ended_t_s - s.started_t_s
        bad = failure is not None and failure.step is not None and s.idx == failure.step.idx
        out.append(
            _row(
                [
                    str(s.idx + 1),
                    f"<b>{e(s.name)}</b>",
                    e(s.type),
                    e(s.result),
                    f"{s.started_t_s:.1f} s",
                    _dur(s.ended_t_s),
                    _dur(dur),
                    e(s.detail),
                ],
                bad=bad,
                num=(4, 5, 6),
            )
        )
    hold_rows(math.inf)
    if recipe is not None:
        for i, rs in enumerate(recipe.steps):
            if rs.name not in ran:
                out.append(_row([str(i + 1), e(rs.name), e(rs.type), "not run", "—", "—", "—", ""]))
    out.append("</tbody></table></section>")

    out.append('<section id="alarms"><h2>Alarms</h2>')
    if record.alarms:
        out.append(
            "<table><thead><tr><th>time</th><th>step</th><th>code</th><th>severity</th>"
            "<th>message</th></tr></thead><tbody>"
        )
        for a in record.alarms:
            out.append(
                _row(
                    [
                        f"{a.t_s:.1f} s",
                        e(step_at(record, a.t_s)),
                        f"<code>{e(a.code)}</code>",
                        e(a.severity),
                        e(a.message),
                    ],
                    bad=a.severity == "alarm",
                    num=(0,),
                )
            )
        out.append("</tbody></table>")
    else:
        out.append("<p>No alarm was raised during this run.</p>")
    out.append("</section>")

    metrics = doc.get("metrics") or {}
    out.append('<section id="metrics-devices"><div class="grid"><div><h2>Metrics</h2>')
    out.append(_kv([(k, e(_num(v))) for k, v in metrics.items()]) if metrics else "<p>—</p>")
    out.append('</div><div id="devices"><h2>Devices</h2>')
    out.append(
        _kv([(k, e(v)) for k, v in sorted(devices.items())])
        if devices
        else "<p>No device identities were recorded for this run.</p>"
    )
    out.append("</div></div></section>")

    out.append(
        f'<section id="recipe"><h2>Recipe as run: {e(record.recipe_name)} v{record.recipe_version}</h2>'
        f'<p class="muted">sha256 <code>{e(record.recipe_sha256)}</code></p>'
        f"<pre>{e(record.recipe_text)}</pre></section>"
    )
    out.append(
        f"<footer>Written by bonderd {e(__version__)} on {e(_time(generated))} from the run "
        "record. Self-contained: this file loads nothing from anywhere.</footer>"
    )
    out.append("</main></body></html>")
    return "\n".join(out)
