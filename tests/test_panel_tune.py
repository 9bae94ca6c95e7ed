"""``bonderd tune --panel``: the zone-stepping experiment through the interlocks, its
[panel_gains] written into the configuration, and the next run of that panel recipe on the
zone loop from it."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from bench.panel_gains import identify_gains, identify_model
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


def test_tune_panel_commissioning_identifies_every_sites_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bonderd.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    args = ["tune", "--panel", str(PANEL_RECIPE), "--commissioning", "--sim", "--speed", "2000"]
    assert main([*args, "--config", str(cfg), "--write"]) == 0
    printed = tomllib.loads(capsys.readouterr().out)["panel_gains"]
    assert sorted(printed["channels"]) == sorted(
        ["chip"] + [f"site_{i}" for i in (0, 1, 2, 3, 5, 6, 7, 8)]
    )
    # Against the open-loop identification on the plant itself: the gains to a few per cent
    # of each row's largest, the time constants to 10 % (the run's own chuck and noise).
    truth = identify_model(PanelLayout(3, 3, solder_mg=SOLDER, instrumented=(0, 2, 4, 6, 8)))
    want = dict(zip(truth.channels, zip(truth.gains, truth.tau_s, strict=True), strict=True))
    for ch, row, tau in zip(
        printed["channels"], printed["gains_c_per_pct"], printed["tau_s"], strict=True
    ):
        gains, t = want[ch]
        for g, w in zip(row, gains, strict=True):
            assert g == pytest.approx(w, abs=0.06 * max(gains))
        assert tau == pytest.approx(t, rel=0.1)
    settings = load_settings(cfg, required=True)
    assert settings.panel_gains is not None and len(settings.panel_gains.tau_s) == 9
