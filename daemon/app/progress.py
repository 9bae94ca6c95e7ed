"""Live progress of a run on the terminal: the step, key temperatures, pressure, a bar.

Written to stderr so that ``--json`` keeps stdout for the result document. On a terminal
one line is redrawn in place, cut to the terminal's width (the least important fields go
first, so the line never wraps and the redraw stays on one line); otherwise (a log file,
CI) a line per step and a full status line every few seconds.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from typing import Any, TextIO

from daemon.app.o2 import O2_PPM_MIN_PRESSURE_MBAR, o2_text
from daemon.machine.monitor import Snapshot
from daemon.recipe.model import LeadLiftRecipe
from daemon.run.executor import Executor

BAR_WIDTH = 24
MIN_BAR_WIDTH = 8


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "—" if v is None else format(v, spec)


def terminal_width(stream: TextIO) -> int:
    """Columns of the terminal ``stream`` writes to (``COLUMNS`` first, as shutil reads it)."""
    fallback = shutil.get_terminal_size()
    if os.environ.get("COLUMNS", "").isdigit():
        return fallback.columns
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return fallback.columns


def fit(parts: list[tuple[int, str]], width: int) -> str:
    """Join ``(rank, text)`` parts with two spaces, dropping the highest ranks until the line
    fits ``width`` columns; the last resort cuts it with an ellipsis."""
    kept = list(parts)
    line = "  ".join(t for _, t in kept)
    while len(line) > width and len(kept) > 1:
        worst = max(range(len(kept)), key=lambda i: (kept[i][0], i))
        del kept[worst]
        line = "  ".join(t for _, t in kept)
    return line if len(line) <= width else line[: max(0, width - 1)] + "…"


class ProgressView:
    def __init__(self, executor: Executor, stream: TextIO | None = None) -> None:
        self.ex = executor
        self.out = stream or sys.stderr
        self.tty = self.out.isatty()
        executor.subscribe(self._on_event)
        self._last_plain = 0.0

    def _line(self, width: int | None = None) -> str:
        """The status line; cut to ``width`` columns when given."""
        ex, snap = self.ex, self.ex.monitor.latest
        n = max(1, ex.step_count)
        frac = ex.ctx.progress if ex.ctx is not None else 0.0
        overall = min(1.0, (ex.step_index + frac) / n) if ex.current_step else 0.0
        step = f"[{ex.current_step or '—'} {ex.step_index + 1}/{n}]"
        bar_width = BAR_WIDTH
        if width is not None and width < 100:
            bar_width = max(MIN_BAR_WIDTH, BAR_WIDTH - (100 - width) // 2)
        filled = int(overall * bar_width)
        bar = "█" * filled + "░" * (bar_width - filled) + f" {overall * 100:3.0f}%"
        # Rank: what stays when the terminal is narrow (0 always, higher goes first).
        parts: list[tuple[int, str]] = [(0, step), (3, bar)]
        if snap is not None:
            sp = ex.ctx.setpoint_c if ex.ctx is not None else None
            p = snap.pressure_mbar()
            parts += [
                (6, f"t {ex.t_run():6.1f} s"),
                (1, f"chip {_fmt(snap.temp('chip'))} °C (sp {_fmt(sp)})"),
                (5, f"comp {_fmt(snap.temp('component'))}"),
                (7, f"chuck {_fmt(snap.temp('chuck'))} °C"),
                (2, f"p {_fmt(p, '.3g')} mbar"),
                (4, o2_text(snap.o2_ppm(), p)),
                (5, f"lamps {snap.lamp_mean_pct():4.1f}%"),
                *self._lift_part(snap),
            ]
        parts.append((1, f"[{ex.state}]"))
        if width is None:
            return "  ".join(t for _, t in parts)
        return fit(parts, width)

    def _lift_part(self, snap: Snapshot) -> list[tuple[int, str]]:
        """Z, force and the estimates, for a lead-lift recipe."""
        ctx = self.ex.ctx
        if ctx is None or not isinstance(ctx.recipe, LeadLiftRecipe):
            return []
        st, est = snap.stage, ctx.estimates
        z = st.position_um.value if st is not None and st.position_um.ok else None
        f = st.force_n.value if st is not None and st.force_n.ok else None
        return [
            (2, f"z {_fmt(z)} µm"),
            (2, f"F {_fmt(f, '.2f')} N"),
            (6, f"dose {est.uv_dose_mj_cm2:.0f} mJ/cm²"),
            (6, f"disp {est.dispensed_ul:.1f} µL"),
            (6, f"α {est.cure_conversion:.2f}"),
        ]

    def _write(self, text: str, newline: bool) -> None:
        if self.tty:
            self.out.write("\r\x1b[K" + text + ("\n" if newline else ""))
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def _on_event(self, event: str, payload: dict[str, Any]) -> None:
        if event == "StepCompleted":
            self._write(
                f"step {payload['name']}: {payload['result']} in {payload['duration_s']:.1f} s"
                + (f" — {payload['detail']}" if payload.get("detail") else ""),
                True,
            )
        elif event == "AlarmRaised":
            self._write(f"ALARM {payload['code']}: {payload['message']}", True)
        elif event == "RunStarted":
            self._write(
                f"run {payload['run_id']} started: recipe {payload['recipe']['name']}", True
            )

    async def run(self, period_s: float = 0.2) -> None:
        while True:
            now = time.monotonic()
            if self.tty:
                # One column spare: a line exactly as wide as the terminal wraps on some.
                self._write(self._line(terminal_width(self.out) - 1), False)
            elif now - self._last_plain >= 5.0 and self.ex.current_step:
                self._last_plain = now
                self._write(self._line(), False)
            await asyncio.sleep(period_s)

    def summary(self, doc: dict[str, Any]) -> None:
        self._write("", False)
        lines = [
            f"result: {doc['result'].upper()}" + (f" — {doc['reason']}" if doc["reason"] else "")
        ]
        m = doc.get("metrics", {})
        if "max_force_n" in m:
            lines.append(
                "max force {} N, lift {} µm, UV dose at lift {} mJ/cm², dispensed {} µL, "
                "conversion {}, max component {} °C".format(
                    _fmt(m.get("max_force_n"), ".3f"),
                    _fmt(m.get("lift_displacement_um")),
                    _fmt(m.get("uv_dose_at_lift_mj_cm2"), ".0f"),
                    _fmt(m.get("dispensed_ul")),
                    _fmt(m.get("cure_conversion"), ".3f"),
                    _fmt(m.get("max_component_c")),
                )
            )
        else:
            lines.append(
                "peak {} °C, time above liquidus {} s, max component {} °C, min pressure {} "
                "mbar, max O2 {} ppm (at ≥ {:g} mbar), max O2 partial pressure {} mbar".format(
                    _fmt(m.get("peak_c")),
                    _fmt(m.get("time_above_liquidus_s")),
                    _fmt(m.get("max_component_c")),
                    _fmt(m.get("min_pressure_mbar"), ".3g"),
                    _fmt(m.get("max_o2_ppm"), ".3g"),
                    O2_PPM_MIN_PRESSURE_MBAR,
                    _fmt(m.get("max_o2_partial_mbar"), ".2g"),
                )
            )
        for c in doc.get("conformance", []):
            mark = "ok  " if c["ok"] else "FAIL"
            lines.append(f"  {mark} {c['check']}: {c['detail']}")
        lines.append(f"run id: {doc['run_id']}")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
