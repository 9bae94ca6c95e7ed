"""``bonderd tune --panel``: the zone-stepping experiment through the interlocks, its
[panel_gains] written into the configuration, and the next run of that panel recipe on the
zone loop from it."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from bench.panel_gains import identify_gains
from daemon.app.cli import main
from daemon.config import load_settings
from daemon.run.virtual import REPO
from drivers.sim.plant import PanelLayout

PANEL_RECIPE = REPO / "recipes" / "panel-3x3-sac305.toml"
SOLDER = (100.0,) * 4 + (130.0,) + (100.0,) * 4


def test_tune_panel_identifies_the_gains_writes_them_and_the_next_run_uses_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bonderd.toml"
    original = f'data_dir = "{tmp_path / "data"}"\n'
    cfg.write_text(original, encoding="utf-8")
    args = ["tune", "--panel", str(PANEL_RECIPE), "--sim", "--speed", "2000", "--config", str(cfg)]
    assert main([*args, "--write"]) == 0
    printed = tomllib.loads(capsys.readouterr().out)["panel_gains"]
    assert printed["channels"] == ["chip", "site_0", "site_2", "site_6", "site_8"]
    # The same matrix as the open-loop experiment on the plant itself, to a few per cent:
    # through the thermocouples' noise and the run's own chuck.
    truth, _ = identify_gains(PanelLayout(3, 3, solder_mg=SOLDER, instrumented=(0, 2, 4, 6, 8)))
    for got, want in zip(printed["gains_c_per_pct"], truth, strict=True):
        for g, w in zip(got, want, strict=True):
            assert g == pytest.approx(w, abs=0.06 * max(want))
    written = cfg.read_text(encoding="utf-8")
    assert written.startswith(original)
    settings = load_settings(cfg, required=True)
    assert settings.panel_gains is not None and settings.panel_gains.channels == printed["channels"]

    run = ["run", str(PANEL_RECIPE), "--sim", "--speed", "2000", "--config", str(cfg), "--json"]
    assert main(run) == 0  # every site in its window: the zone loop, from the written gains
    doc = json.loads(capsys.readouterr().out)
    assert doc["result"] == "completed" and all(s["ok"] for s in doc["sites"])


def test_tune_panel_refuses_a_recipe_without_a_panel(tmp_path: Path) -> None:
    single = REPO / "recipes" / "sac305-polyimide.toml"
    cfg = tmp_path / "bonderd.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    assert main(["tune", "--panel", str(single), "--sim", "--config", str(cfg)]) == 2
