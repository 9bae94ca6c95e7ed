"""A panel machine's thermocouple channel map in the config: which input carries which
site, a second module for more, and a run refused when a measured site has no input."""

from __future__ import annotations

import asyncio
import dataclasses
import tomllib
from pathlib import Path

import pytest

from daemon.config import ConfigError, DeviceConfig, Limits, Settings
from daemon.errors import CommandRefused
from daemon.recipe.load import load_recipe_file
from daemon.run.rig import ScenarioError, assemble, build_machine, load_scenario
from daemon.run.virtual import REPO, run_recipe
from drivers.adam.driver import Adam6018
from drivers.clock import ManualClock, VirtualClock
from drivers.protocols import DEFAULT_TIMEOUT_S
from drivers.reading import Reading
from drivers.tc_pair import ThermocouplePair

EXAMPLE = REPO / "config" / "panel-machine.example.toml"
PANEL_RECIPE = REPO / "recipes" / "panel-3x3-sac305.toml"


def _adam(**inputs: str) -> DeviceConfig:
    return DeviceConfig(driver="adam-6018", transport={"host": "127.0.0.1", **inputs})


def _problems(**devices: DeviceConfig) -> str:
    with pytest.raises(ConfigError) as exc:
        build_machine(Settings(devices=devices), ManualClock(), sim=False)
    return str(exc.value)


def test_the_example_maps_the_panel_recipes_sites_on_one_module() -> None:
    doc = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    devices = {k: DeviceConfig(**v) for k, v in doc["devices"].items()}
    m = build_machine(Settings(devices=devices), ManualClock(), sim=False).machine
    assert isinstance(m.thermocouples, Adam6018)
    assert m.thermocouples.channels == (
        "chip", "component", "chuck", "site_0", "site_2", "site_6", "site_8",
    )  # fmt: skip


def test_a_second_module_adds_its_sites_after_the_first() -> None:
    m = build_machine(
        Settings(
            devices={
                "thermocouples": _adam(),
                "site_thermocouples": _adam(input_0="site_1", input_3="site_7"),
            }
        ),
        ManualClock(),
        sim=False,
    ).machine
    assert isinstance(m.thermocouples, ThermocouplePair)
    assert m.thermocouples.channels == ("chip", "component", "chuck", "site_1", "site_7")


@pytest.mark.parametrize(
    ("devices", "reason"),
    [
        ({"thermocouples": _adam(input_0="chip", input_1="chip")}, "'chip' on input_0 and input_1"),
        ({"thermocouples": _adam(input_0="chip", input_1="site_1")}, "no input carries component"),
        ({"thermocouples": _adam(input_0="tip")}, "devices.thermocouples.transport.input_0"),
        ({"thermocouples": _adam(), "site_thermocouples": _adam()}, "name the site channel"),
        (
            {"thermocouples": _adam(), "site_thermocouples": _adam(input_0="chip")},
            "chip already on devices.thermocouples",
        ),
        ({"site_thermocouples": _adam(input_0="site_1")}, "needs devices.thermocouples"),
    ],
)
def test_a_bad_channel_map_is_refused_naming_the_key(
    devices: dict[str, DeviceConfig], reason: str
) -> None:
    assert reason in _problems(**devices)


class _Module:
    def __init__(self, name: str, channels: tuple[str, ...]) -> None:
        self.name, self.channels, self.reads = name, channels, 0

    async def connect(self, timeout: float = DEFAULT_TIMEOUT_S) -> None: ...

    async def close(self) -> None: ...

    async def read(self, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Reading]:
        self.reads += 1
        return {ch: Reading(20.0 + i, 0.0) for i, ch in enumerate(self.channels)}


def test_the_pair_reads_both_modules_into_one_reading() -> None:
    a, b = _Module("tc", ("chip", "component", "chuck")), _Module("tc2", ("site_1",))
    pair = ThermocouplePair(a, b)
    out = asyncio.run(pair.read())
    assert list(out) == ["chip", "component", "chuck", "site_1"] and out["site_1"].value == 20.0
    assert (a.reads, b.reads) == (1, 1)
    with pytest.raises(ValueError, match="chip"):
        ThermocouplePair(a, _Module("tc2", ("chip",)))


async def test_a_panel_run_whose_measured_sites_have_no_input_is_refused(tmp_path: Path) -> None:
    # The simulated machine puts the sites' channels on when the recipe is prepared: a rig
    # that was not prepared for the panel has only the machine's three.
    loaded = load_recipe_file(PANEL_RECIPE, Limits())
    rig = assemble(
        Settings.model_construct(data_dir=tmp_path),
        sim=True,
        clock=VirtualClock(),
        record_config_hash="",
    )
    try:
        with pytest.raises(CommandRefused, match="site_0, site_2, site_6, site_8"):
            await rig.executor.run(loaded, lot_id="L1")
    finally:
        rig.close()


FAULTS = REPO / "tests" / "data" / "faults" / "tc-site-corner-open-in-reflow.toml"


async def test_a_corner_thermocouple_open_in_reflow_trips_the_run(tmp_path: Path) -> None:
    scenario = load_scenario(FAULTS)
    doc, sim = await run_recipe(PANEL_RECIPE, tmp_path, scenario=scenario)
    sim.store.close()
    assert doc["result"] == "aborted"
    codes = {a["code"] for a in doc["alarms"]}
    assert "tc_open" in codes
    assert any("site_0" in a["message"] for a in doc["alarms"] if a["code"] == "tc_open")
    # The lamps went off: nothing emits at the end, and the plant's referee saw no breach.
    assert max(sim.plant.lamp_output_pct()) == 0.0
    assert sim.invariants.violations == []


async def test_a_fault_on_a_site_the_recipe_does_not_instrument_is_refused(
    tmp_path: Path,
) -> None:
    scenario = load_scenario(FAULTS)
    single = REPO / "recipes" / "sac305-polyimide.toml"
    with pytest.raises(ScenarioError, match=r"fault\[0\]\.device"):
        await run_recipe(single, tmp_path, scenario=scenario)


UNEVEN = REPO / "tests" / "data" / "faults" / "film-uneven-corner.toml"


async def test_uneven_film_pressure_on_a_corner_shows_in_that_sites_verdict(
    tmp_path: Path,
) -> None:
    doc, sim = await run_recipe(PANEL_RECIPE, tmp_path, scenario=load_scenario(UNEVEN))
    sim.store.close()
    sites = {s["site"]: s for s in doc["sites"]}
    # Pressed less, the corner keeps more of its heat: hotter than its mirror image, and
    # measured (site 0 carries a thermocouple), so the record shows it as it was.
    assert sites[0]["peak_c"] > sites[2]["peak_c"] + 3.0
    assert sites[0]["instrumented"]
    assert sim.injector is not None and [f.fault.device for f in sim.injector.fired] == [
        "film.site_0"
    ]


def test_an_uneven_film_fault_needs_a_share_and_a_site_on_the_chuck(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[fault]]\nat_s = 1.0\ndevice = "film.site_0"\nkind = "uneven"\n')
    with pytest.raises(ScenarioError, match="value"):
        load_scenario(bad)


def test_every_measured_site_is_held_to_the_chips_hard_limit() -> None:
    from tests.test_interlocks import engine, snap  # noqa: PLC0415 - the rule tests' helpers

    s = snap(1.0, chip=245.0)
    hot = dict(s.temps) | {"site_0": Reading(281.0, 1.0), "site_2": Reading(240.0, 1.0)}
    found = {f.code: f for f in engine().evaluate(dataclasses.replace(s, temps=hot))}
    assert "chip_overtemp" in found and "site_0" in found["chip_overtemp"].message
    cool = dict(s.temps) | {"site_0": Reading(250.0, 1.0)}
    assert "chip_overtemp" not in {
        f.code for f in engine().evaluate(dataclasses.replace(s, temps=cool))
    }
