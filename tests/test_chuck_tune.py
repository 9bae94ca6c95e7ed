"""bonderd tune identifies the chuck side: chuck and chiller from its chuck run (ADR 0175),
the component's couplings from the chip experiment's phase A (ADR 0176).

On the unit under test (bench/data/unit-under-test.toml: chiller capacity −20 %, component
+20 % heavier and 15 % looser on the chuck, chuck and coolant as nominal) the twin
calibrated by what tune identified gets the unit's chiller and, on the twin's own heat
scale, its component, within stated tolerances.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.predict_error import identify_unit, load_unit
from daemon.config import ChuckModelSection, ConfigError, Settings, load_settings
from daemon.run.predict import twin_of, twin_params
from daemon.run.rig_sim import chuck_calibrated
from daemon.thermal.chuck_fit import ChuckRecord, identify_chuck
from daemon.thermal.component_fit import identify_component
from daemon.thermal.fit import Record, TuneError
from daemon.thermal.source import shipped_sim_chuck
from drivers.sim.plant import PlantParams

# The ratio of saturated cooling rates stands for the ratio of chiller capacities; the
# coolant's ambient gain and the hold's last seconds off the limit bias it by a few percent.
CAPACITY_TOLERANCE = 0.06
LAG_TOLERANCE = 0.05
# The component's couplings per its capacity: the equation-error fit over phase A.
COMPONENT_TOLERANCE = 0.03


def test_the_shipped_reference_is_what_tune_measures_on_the_nominal_plant() -> None:
    _, chuck = identify_unit(PlantParams())
    ref = shipped_sim_chuck()
    assert chuck.keys() == ref.keys()
    for key, value in chuck.items():
        assert value == pytest.approx(ref[key], rel=1e-4), key
    # The nominal chuck gives the nominal plant back: runs without a [chuck_model] unchanged.
    assert chuck_calibrated(None, ref, ref) == PlantParams()


def test_a_tune_on_the_unit_recovers_its_chiller_and_chuck() -> None:
    unit = load_unit()
    _, chuck = identify_unit(unit)
    settings = Settings.model_construct(
        chuck_model=ChuckModelSection(**chuck, identified_at="test")
    )
    twin = twin_params(settings)
    assert twin is not None
    assert twin.chiller_cool_max_w == pytest.approx(unit.chiller_cool_max_w, rel=CAPACITY_TOLERANCE)
    assert twin.g_chuck_fluid_flow_w_k == pytest.approx(
        unit.g_chuck_fluid_flow_w_k, rel=LAG_TOLERANCE
    )
    assert twin_of(settings)["plant"] == "calibrated to [chuck_model]"
    # The component per its capacity, as the unit's: its couplings to chip and chuck.
    for g_twin, g_unit in (
        (twin.g_chip_comp_vac_w_k, unit.g_chip_comp_vac_w_k),
        (twin.g_comp_chuck_clamped_w_k, unit.g_comp_chuck_clamped_w_k),
    ):
        assert g_twin / twin.c_component_j_k == pytest.approx(
            g_unit / unit.c_component_j_k, rel=COMPONENT_TOLERANCE
        )


def test_a_chuck_step_too_short_to_tell_is_refused_saying_why() -> None:
    rec = ChuckRecord(setpoint_c=15.0, t=[0.0, 1.0], chuck=[16.0, 15.5], fluid=[14.0, 14.0])
    with pytest.raises(TuneError, match="chuck step: 0 samples with the chiller at full"):
        identify_chuck(rec)
    with pytest.raises(TuneError, match="no samples"):
        identify_chuck(ChuckRecord())


def test_a_component_reading_that_ignores_the_lamps_is_refused_saying_why() -> None:
    # A "component" thermocouple stuck at the chuck's temperature while the chip heats.
    rec = Record()
    for i in range(600):
        t = i * 0.05
        rec.t.append(t)
        rec.u.append(10.0 if (i // 100) % 2 else 0.0)
        rec.y.append(25.0 + 0.2 * i if (i // 100) % 2 else 25.0)
        rec.sink.append(25.0)
        rec.phase.append("A")
    with pytest.raises(TuneError, match=r"component: .*thermocouple read the component"):
        identify_component(rec, 25.0)


def test_a_bad_chuck_model_value_is_refused_naming_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "bonderd.toml"
    cfg.write_text("[chuck_model]\ncool_rate_k_s = -0.1\nlag_s = 26.0\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, required=True)
    assert "chuck_model.cool_rate_k_s" in str(err.value)
    assert str(cfg) in str(err.value)
