"""Live progress of a run on the terminal: the step, key temperatures, pressure, a bar.

Written to stderr so that ``--json`` keeps stdout for the result document. On a terminal
one line is redrawn in place; otherwise (a log file, CI) a line per step and a status
line every few seconds.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, TextIO

from daemon.machine.monitor import Snapshot
from daemon.recipe.model import LeadLiftRecipe
from daemon.run.executor import Executor

BAR_WIDTH = 24


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "—" if v is None else format(v, spec)


def _o2_partial(snap: Snapshot) -> float | None:
    """Under vacuum the ppm figure is mostly leaked-in air; the partial pressure is what acts."""
    ppm, p = snap.o2_ppm(), snap.pressure_mbar()
    return None if ppm is None or p is None else ppm * 1e-6 * p


class ProgressView:
    def __init__(self, executor: Executor, stream: TextIO | None = None) -> None:
        self.ex = executor
        self.out = stream or sys.stderr
        self.tty = self.out.isatty()
        executor.subscribe(self._on_event)
        self._last_plain = 0.0

    def _line(self) -> str:
        ex, snap = self.ex, self.ex.monitor.latest
        n = max(1, ex.step_count)
        frac = ex.ctx.progress if ex.ctx is not None else 0.0
        overall = min(1.0, (ex.step_index + frac) / n) if ex.current_step else 0.0
        filled = int(overall * BAR_WIDTH)
        bar = "█" * filled + "░" * (BAR_WIDTH - filled)
        step = f"{ex.current_step or '—'} {ex.step_index + 1}/{n}"
        if snap is None:
            return f"[{step}] {bar}"
        sp = ex.ctx.setpoint_c if ex.ctx is not None else None
        return (
            f"[{step}] {bar} {overall * 100:3.0f}%  t {ex.t_run():6.1f} s  "
            f"chip {_fmt(snap.temp('chip'))} (sp {_fmt(sp)})  comp {_fmt(snap.temp('component'))}  "
            f"chuck {_fmt(snap.temp('chuck'))} °C  p {_fmt(snap.pressure_mbar(), '.3g')} mbar  "
            f"O2 {_fmt(snap.o2_ppm(), '.3g')} ppm ({_fmt(_o2_partial(snap), '.2g')} mbar)  "
            f"lamps {snap.lamp_mean_pct():4.1f}%  " + self._lift_part(snap) + f"[{ex.state}]"
        )

    def _lift_part(self, snap: Snapshot) -> str:
        """Z, force and the estimates, for a lead-lift recipe."""
        ctx = self.ex.ctx
        if ctx is None or not isinstance(ctx.recipe, LeadLiftRecipe):
            return ""
        st, est = snap.stage, ctx.estimates
        z = st.position_um.value if st is not None and st.position_um.ok else None
        f = st.force_n.value if st is not None and st.force_n.ok else None
        return (
            f"z {_fmt(z)} µm  F {_fmt(f, '.2f')} N  dose {est.uv_dose_mj_cm2:.0f} mJ/cm²  "
            f"disp {est.dispensed_ul:.1f} µL  α {est.cure_conversion:.2f}  "
        )

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
                self._write(self._line(), False)
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
                "mbar".format(
                    _fmt(m.get("peak_c")),
                    _fmt(m.get("time_above_liquidus_s")),
                    _fmt(m.get("max_component_c")),
                    _fmt(m.get("min_pressure_mbar"), ".3g"),
                )
            )
        for c in doc.get("conformance", []):
            mark = "ok  " if c["ok"] else "FAIL"
            lines.append(f"  {mark} {c['check']}: {c['detail']}")
        lines.append(f"run id: {doc['run_id']}")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
