"""O2 under vacuum (issue 20, item 3): the concentration is not meaningful below 100 mbar,
so the progress line, `bonderctl watch` and `metrics.max_o2_ppm` do not show it there."""

from __future__ import annotations

from pathlib import Path

from daemon.app.bonderctl import watch_line
from daemon.app.o2 import O2_PPM_MIN_PRESSURE_MBAR, o2_text
from daemon.app.progress import fit
from tests.simrun import run_recipe

SAC = Path(__file__).parent.parent / "recipes" / "sac305-polyimide.toml"


def test_o2_text_marks_the_reading_under_vacuum() -> None:
    assert O2_PPM_MIN_PRESSURE_MBAR == 100.0
    assert o2_text(3.2, 1000.0) == "O2 3.2 ppm (pO2 0.0032 mbar)"
    under = o2_text(202834.0, 0.02)
    assert "202834" not in under and "2.03e+05" not in under
    assert under.startswith("O2 — ppm (< 100 mbar)") and "pO2 0.0041 mbar" in under
    assert o2_text(None, 0.02) == "O2 — ppm"


def test_watch_shows_no_ppm_under_vacuum() -> None:
    line = watch_line(
        "telemetry",
        '{"temps_c": {"chip": 200.0}, "pressure_mbar": 0.02, "o2_ppm": 202834.0, "lamp_pct": 40}',
    )
    assert "O2 — ppm (< 100 mbar)" in line and "202834" not in line
    assert "O2 5 ppm" in watch_line(
        "telemetry", '{"temps_c": {}, "pressure_mbar": 1000, "o2_ppm": 5.0, "lamp_pct": 0}'
    )


def test_progress_line_fits_the_terminal() -> None:
    parts = [(0, "[reflow 4/7]"), (3, "█" * 24 + "  43%"), (1, "chip 245.0 °C"), (7, "x" * 60)]
    for width in (40, 60, 200):
        assert len(fit(parts, width)) <= width
    assert fit(parts, 40).startswith("[reflow 4/7]")  # the step always stays
    assert "x" * 60 in fit(parts, 200)  # nothing dropped when it fits
    assert fit([(0, "y" * 80)], 20) == "y" * 19 + "…"


async def test_max_o2_ppm_is_the_reading_the_check_judged(tmp_path: Path) -> None:
    doc, sim = await run_recipe(SAC, tmp_path)
    sim.store.close()
    check = next(c for c in doc["conformance"] if c["check"] == "o2_ppm")
    metrics = doc["metrics"]
    # Before: 202834 "ppm" of leaked-in air under vacuum while the check said 0.79 ppm.
    assert metrics["max_o2_ppm"] == check["value"] < 50.0
    partial = next(c for c in doc["conformance"] if c["check"] == "o2_partial_pressure")
    assert metrics["max_o2_partial_mbar"] == partial["value"]
