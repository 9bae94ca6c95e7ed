"""`bonderd tune`: the identification run recovers the plant, and --write keeps the file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.config import ConfigError, load_settings
from daemon.tune import replace_section
from daemon.tune_cli import write_model
from drivers.sim.plant import PlantParams

CONFIG = """\
# bonder 07, line 3
equipment_id = "bonder-07"   # keep this comment
data_dir = "{data}"

[limits]
chip_max_c = 290.0

# the broker
[mqtt]
host = "broker.local"
"""

SECTION = """\
[thermal]
gain_c_s_per_pct = 0.5
loss_per_s = 0.1
molten_loss_per_s = 0.05
latent_heat_k = 2.0
filament_tau_s = 0.2
tc_tau_s = 0.3
"""


def _plant_truth() -> dict[str, float]:
    """The model's parameters as the simulated plant's physics defines them."""
    p = PlantParams()
    vac = p.g_chip_comp_atm_w_k + (p.g_chip_comp_vac_w_k - p.g_chip_comp_atm_w_k) * (
        1.0 - 2.0 / p.p_atm_mbar  # pumped to 2 mbar
    )
    return {
        "gain_c_s_per_pct": p.zones * p.zone_max_w / 100.0 * p.frac_to_chips / p.c_chip_j_k,
        "loss_per_s": vac / p.c_chip_j_k,
        "molten_loss_per_s": p.g_chip_comp_melt_w_k / p.c_chip_j_k,
        "latent_heat_k": p.solder_latent_j / p.c_chip_j_k,
        "filament_tau_s": p.filament_tau_s,
        "tc_tau_s": p.tc_tau_chip_s,
    }


def test_tune_sim_identifies_the_plant_and_writes_only_its_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bonderd.toml"
    original = CONFIG.format(data=tmp_path / "data")
    cfg.write_text(original, encoding="utf-8")
    code = main(["tune", "--sim", "--speed", "2000", "--config", str(cfg), "--write"])
    assert code == 0
    printed = capsys.readouterr().out
    model = tomllib.loads(printed)["thermal"]
    truth = _plant_truth()
    for key in (
        "gain_c_s_per_pct",
        "loss_per_s",
        "molten_loss_per_s",
        "filament_tau_s",
        "tc_tau_s",
    ):
        assert model[key] == pytest.approx(truth[key], rel=0.10), key
    # The latent heat is the least well conditioned (its energy is small against the molten
    # joints' conduction): 20 % (docs/thermal-control.md).
    assert model["latent_heat_k"] == pytest.approx(truth["latent_heat_k"], rel=0.20)
    written = cfg.read_text(encoding="utf-8")
    assert written.startswith(original)  # every byte of the file as it was
    assert written[len(original) :].strip() == printed.strip()
    settings = load_settings(cfg, required=True)
    assert settings.thermal is not None
    assert settings.thermal.gain_c_s_per_pct == model["gain_c_s_per_pct"]


def test_replacing_the_section_keeps_every_other_byte() -> None:
    text = CONFIG.format(data="/var/lib/bonderd").replace(
        "# the broker\n", SECTION + "\n# the broker\n"
    )
    new = SECTION.replace("0.5", "0.56")
    out = replace_section(text, new)
    assert out == text.replace(SECTION, new)
    # Twice is the same as once; absent, it is appended after a blank line.
    assert replace_section(out, new) == out
    bare = 'data_dir = "/x"\n'
    assert replace_section(bare, new) == bare + "\n" + new


def test_a_section_the_daemon_cannot_read_is_never_written(tmp_path: Path) -> None:
    cfg = tmp_path / "bonderd.toml"
    cfg.write_text('data_dir = "/x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="thermal"):
        write_model(cfg, SECTION.replace("0.5", "-0.5"))
    assert cfg.read_text(encoding="utf-8") == 'data_dir = "/x"\n'
    assert [p.name for p in tmp_path.iterdir()] == ["bonderd.toml"]


def test_tune_without_a_config_file_refuses_to_write(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--sim", "--write"]) == 2
    assert "--write needs --config" in capsys.readouterr().err
