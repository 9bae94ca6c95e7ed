"""`bonderd run / check / export` as the line uses them (CONTRACT.md exit codes)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.app.cli import main
from tests.simrun import RECIPES, REPO

SAC = REPO / "recipes" / "sac305-polyimide.toml"
SNPB = REPO / "recipes" / "snpb-low-tg.toml"


def bonderd(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_run_each_shipped_recipe_at_speed_100_exits_0_with_every_check_ok(
    recipe: Path, tmp_path: Path
) -> None:
    proc = bonderd(
        "run", str(recipe), "--sim", "--speed", "100", "--json", "--lot", "L1",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["result"] == "completed"
    assert all(c["ok"] for c in doc["conformance"])
    assert doc["lot_id"] == "L1"
    assert len(doc["recipe"]["sha256"]) == 64
    keys = (
        ("max_force_n", "lift_displacement_um", "cure_conversion", "max_component_c")
        if doc["steps"][0]["type"] in ("uv_release", "heat_release")
        else ("peak_c", "time_above_liquidus_s", "max_component_c", "min_pressure_mbar")
    )
    for key in keys:
        assert doc["metrics"][key] is not None
    # The terminal got the live progress and the verdict.
    assert f"step {doc['steps'][-1]['name']}: completed" in proc.stderr
    assert "result: COMPLETED" in proc.stderr

    # export: the same run's trace, one row per sample, the contract's columns.
    code = main(["export", doc["run_id"], "--data-dir", str(tmp_path)])
    assert code == 0


def test_run_with_a_thermocouple_opening_in_reflow_exits_1_naming_it(tmp_path: Path) -> None:
    faults = REPO / "tests/data/faults/tc-chip-open-in-reflow.toml"  # the README's example
    proc = bonderd(
        "run", str(SAC), "--sim", "--speed", "100", "--json", "--faults", str(faults),
        "--data-dir", str(tmp_path / "data"),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["result"] == "aborted"
    assert "thermocouple 'chip'" in doc["reason"]
    assert "ALARM tc_fault" in proc.stderr


def test_run_with_an_invalid_recipe_exits_2(tmp_path: Path) -> None:
    proc = bonderd("run", str(REPO / "tests/data/recipes/bad-order.toml"), "--sim")
    assert proc.returncode == 2
    assert "bad-order.toml" in proc.stderr and "steps" in proc.stderr


def test_export_writes_the_contract_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = bonderd(
        "run", str(SAC), "--sim", "--speed", "200", "--json", "--data-dir", str(tmp_path)
    )
    run_id = json.loads(proc.stdout)["run_id"]
    capsys.readouterr()
    assert main(["export", run_id, "--data-dir", str(tmp_path), "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    # The contract's columns in the contract's order; the lead-lift columns appended after.
    assert rows[0] == [
        "t_s", "setpoint_c", "chip_c", "component_c", "chuck_c",
        "pressure_mbar", "o2_ppm", "lamp_pct", "z_um", "step",
        "z_force_n", "uv_mw_cm2", "uv_dose_mj_cm2", "cure_conversion", "dispensed_ul",
    ]  # fmt: skip
    steps = {r[9] for r in rows[1:]}
    assert {"chuck_stabilize", "purge", "pump_down", "reflow", "cool", "vent"} <= steps
    assert any(r[1] for r in rows[1:])  # setpoints recorded during reflow


def test_export_of_an_unknown_run_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "no-such-run", "--data-dir", str(tmp_path)]) == 1
    assert "unknown run 'no-such-run'" in capsys.readouterr().err


def test_check_accepts_the_shipped_recipes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", *map(str, RECIPES)]) == 0
    out = capsys.readouterr().out
    assert all(f"{r}: ok" in out for r in RECIPES)


GOOD = SAC.read_text()

CASES = {
    "unknown-key": (
        GOOD.replace("[atmosphere]\n", "[atmosphere]\ncolour = 1\n"),
        "atmosphere.colour",
    ),
    "wrong-type": (GOOD.replace("cycles = 2", 'cycles = "two"'), "steps[1].cycles"),
    "nan": (GOOD.replace("tolerance_c = 1.0", "tolerance_c = nan"), "steps[0].tolerance_c"),
    "negative-duration": (GOOD.replace("settle_s = 10.0", "settle_s = -5.0"), "steps[0].settle_s"),
    "peak-below-liquidus": (
        GOOD.replace(
            "peak_window_c = { min = 238.0, max = 252.0 }",
            "peak_window_c = { min = 200.0, max = 252.0 }",
        ),
        "steps[3].peak_window_c",
    ),
    "chuck-above-tg-margin": (
        GOOD.replace("tg_c = 360.0", "tg_c = 60.0").replace(
            "tg_margin_c = 40.0", "tg_margin_c = 40.0"
        ),
        "steps[0].setpoint_c",
    ),
    "inverted-window": (
        GOOD.replace(
            "time_above_liquidus_s = { min = 30.0, max = 75.0 }",
            "time_above_liquidus_s = { min = 75.0, max = 30.0 }",
        ),
        "steps[3].time_above_liquidus_s",
    ),
    "ramp-above-limit": (
        GOOD.replace("max_ramp_c_per_s = 4.0", "max_ramp_c_per_s = 40.0"),
        "steps[3].max_ramp_c_per_s",
    ),
    "empty": ("", "(file)"),
    "not-toml": ("kind = vacuum_film_bond [[[", "(file)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_exits_2_naming_file_and_field(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, field = CASES[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(text)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: {field}" in err, err


def test_check_exits_2_for_invalid_utf8_a_huge_file_and_impossible_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_utf8 = tmp_path / "latin1.toml"
    bad_utf8.write_bytes(GOOD.encode() + b'\ndescription2 = "\xe9"\n')
    huge = tmp_path / "huge.toml"
    huge.write_text(GOOD + "#" * 70_000)
    order = REPO / "tests/data/recipes/bad-order.toml"
    assert main(["check", str(bad_utf8), str(huge), str(order)]) == 2
    err = capsys.readouterr().err
    assert f"{bad_utf8}: (file)" in err and "UTF-8" in err
    assert f"{huge}: (file)" in err and "65536" in err
    assert f"{order}: steps" in err


def test_run_without_sim_and_without_real_devices_refuses_instead_of_simulating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", str(SAC), "--data-dir", str(tmp_path)])
    assert code == 2
    assert "no real device is configured" in capsys.readouterr().err


def test_runs_lists_the_local_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--data-dir", str(tmp_path)]) == 0
    assert "no runs recorded" in capsys.readouterr().out
    assert not (tmp_path / "bonderd.sqlite").exists()  # listing creates no store
    code = main(
        ["run", str(SNPB), "--sim", "--speed", "200", "--data-dir", str(tmp_path), "--lot", "L9",
         "--operator", "ana", "--json"]
    )  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert main(["runs", "--data-dir", str(tmp_path)]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    assert header.split() == ["RUN", "ID", "RECIPE", "LOT", "RESULT", "OPERATOR", "STARTED"]
    assert row.split()[:6] == [doc["run_id"], "snpb-low-tg", "v1", "L9", "completed", "ana"]
    assert main(["runs", "--data-dir", str(tmp_path), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)["runs"]
    assert listed["operator"] == "ana" and listed["result"] == "completed"
