"""Recipe loading and validation: every refusal names the file, the field and a reason."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path
from typing import Any

import pytest

import daemon.recipe.load as load_module
from daemon.config import Limits
from daemon.recipe.load import (
    WHOLE_FILE,
    LoadedRecipe,
    RecipeInvalid,
    RecipeIssue,
    load_recipe_file,
    parse_recipe,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "data" / "recipes"
LIMITS = Limits()

# Independent of the shipped recipes, whose numbers the integrator tunes. Step indices:
# 0 chuck_stabilize, 1 purge, 2 pump_down, 3 reflow, 4 cool, 5 securement_release, 6 vent.
BASE = textwrap.dedent(
    """\
    kind = "vacuum_film_bond"
    name = "base"

    [materials.solder]
    name = "SAC305"
    solidus_c = 217.0
    liquidus_c = 220.0

    [materials.component]
    polymer = "polyimide"
    tg_c = 360.0
    tg_margin_c = 40.0

    [atmosphere]
    o2_max_ppm = 50.0

    [[steps]]
    type = "chuck_stabilize"
    setpoint_c = 25.0

    [[steps]]
    type = "purge"
    cycles = 2
    pump_to_mbar = 1.0
    backfill_to_mbar = 1000.0
    o2_target_ppm = 10.0

    [[steps]]
    type = "pump_down"
    target_mbar = 2.0
    leak_check = { hold_s = 10.0, max_rise_mbar_per_min = 5.0 }

    [[steps]]
    type = "reflow"
    peak_window_c = { min = 238.0, max = 252.0 }
    time_above_liquidus_s = { min = 30.0, max = 75.0 }
    max_ramp_c_per_s = 4.0

    [[steps.segments]]
    ramp_c_per_s = 3.0
    to_c = 150.0
    hold_s = 30.0

    [[steps.segments]]
    ramp_c_per_s = 2.0
    to_c = 245.0
    hold_s = 15.0

    [[steps]]
    type = "cool"
    to_c = 150.0
    max_rate_c_per_s = 3.0

    [[steps]]
    type = "securement_release"
    temperature_c = 120.0
    time_s = 10.0

    [[steps]]
    type = "vent"
    """
)

SOURCE = "recipes/test.toml"


def edited(*replacements: tuple[str, str], base: str = BASE) -> str:
    text = base
    for old, new in replacements:
        assert text.count(old) == 1, f"test set-up: {old!r} is not unique in the base recipe"
        text = text.replace(old, new)
    return text


def issues_of(data: bytes | str, limits: Limits = LIMITS) -> list[RecipeIssue]:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with pytest.raises(RecipeInvalid) as exc:
        parse_recipe(raw, SOURCE, limits)
    assert exc.value.issues, "RecipeInvalid without issues"
    return exc.value.issues


def assert_issue(issues: list[RecipeIssue], field: str, fragment: str) -> None:
    for issue in issues:
        if issue.field == field and fragment in issue.reason:
            assert issue.file == SOURCE
            return
    listed = "\n".join(map(str, issues))
    pytest.fail(f"no issue at {field!r} mentioning {fragment!r}; got:\n{listed}")


# --- valid recipes ---------------------------------------------------------------------------


def test_base_recipe_is_valid() -> None:
    loaded = parse_recipe(BASE.encode(), SOURCE, LIMITS)
    assert loaded.recipe.name == "base"
    assert [s.type for s in loaded.recipe.steps][3] == "reflow"


@pytest.mark.parametrize("name", ["sac305-polyimide.toml", "snpb-low-tg.toml"])
def test_shipped_recipes_are_valid_with_default_limits(name: str) -> None:
    path = REPO / "recipes" / name
    loaded = load_recipe_file(path, Limits())
    assert loaded.recipe.name == path.stem
    assert loaded.source == str(path)
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.text == path.read_text(encoding="utf-8")


def test_loaded_recipe_carries_exact_bytes_hash() -> None:
    data = ("\ufeff" + BASE).encode("utf-8")  # a BOM is accepted but still hashed
    loaded = parse_recipe(data, SOURCE, LIMITS)
    assert isinstance(loaded, LoadedRecipe)
    assert loaded.sha256 == hashlib.sha256(data).hexdigest()
    assert loaded.text.encode("utf-8") == data


# --- the file as a whole ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"  \n\t\n", "empty"),
        (b"# just a comment\n\n", "only comments"),
        (b'kind = "vacuum_film_bond"\nname = \n', "not valid TOML"),
        (b"[materials\n", "line 1, column"),
        (b'kind = "vacuum_film_bond"\nkind = "vacuum_film_bond"\n', "not valid TOML"),
    ],
)
def test_whole_file_problems(data: bytes, fragment: str) -> None:
    [issue] = issues_of(data)
    assert (issue.file, issue.field) == (SOURCE, WHOLE_FILE)
    assert fragment in issue.reason


def test_not_toml_gives_line_and_column() -> None:
    [issue] = issues_of(edited(('name = "base"', "name = base")))
    assert issue.field == WHOLE_FILE
    assert "not valid TOML" in issue.reason
    assert "line 2, column 8" in issue.reason


def test_invalid_utf8_gives_line_and_column() -> None:
    data = edited(('polymer = "polyimide"', 'polymer = "poly@imide"')).encode()
    data = data.replace(b"@", b"\xff")
    [issue] = issues_of(data)
    assert issue.field == WHOLE_FILE
    assert "not valid UTF-8" in issue.reason
    assert "0xFF" in issue.reason
    assert "line 10, column 16" in issue.reason


def test_recipe_over_the_size_limit() -> None:
    limits = Limits(recipe_max_bytes=1024)
    data = (BASE + "# padding\n" * 200).encode()
    [issue] = issues_of(data, limits)
    assert issue.field == WHOLE_FILE
    assert "larger than" in issue.reason
    assert "1024 bytes" in issue.reason


def test_file_size_limit_reads_no_more_than_limit_plus_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = Limits(recipe_max_bytes=1024)
    path = tmp_path / "huge.toml"
    path.write_bytes(b"#" * 1_000_000)
    read_sizes: list[int] = []
    real_open = open

    class Spy:
        def __init__(self, f: Any) -> None:
            self._f = f

        def __enter__(self) -> Spy:
            return self

        def __exit__(self, *exc: object) -> None:
            self._f.close()

        def fileno(self) -> int:
            return int(self._f.fileno())

        def read(self, n: int = -1) -> bytes:
            data: bytes = self._f.read(n)
            read_sizes.append(len(data))
            return data

    monkeypatch.setattr(load_module, "open", lambda *a, **k: Spy(real_open(*a, **k)), raising=False)
    with pytest.raises(RecipeInvalid) as exc:
        load_recipe_file(path, limits)
    [issue] = exc.value.issues
    assert (issue.file, issue.field) == (str(path), WHOLE_FILE)
    assert "larger than" in issue.reason
    assert read_sizes and sum(read_sizes) <= 1025


def test_file_names_the_path_in_every_issue(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(edited(("cycles = 2", "cycles = 2\nfoo = 1")), encoding="utf-8")
    with pytest.raises(RecipeInvalid) as exc:
        load_recipe_file(path, LIMITS)
    assert [str(i) for i in exc.value.issues] == [
        f"{path}: steps[1].foo: unknown key (allowed here: name, timeout_s, type, cycles, "
        "pump_to_mbar, backfill_to_mbar, o2_target_ppm)"
    ]


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(RecipeInvalid) as exc:
        load_recipe_file(tmp_path / "absent.toml", LIMITS)
    assert "cannot open" in exc.value.issues[0].reason
    with pytest.raises(RecipeInvalid) as exc:
        load_recipe_file(tmp_path, LIMITS)
    assert "not a regular file" in exc.value.issues[0].reason


# --- shape: keys, types, values --------------------------------------------------------------


@pytest.mark.parametrize(
    ("replacements", "field", "fragment"),
    [
        # unknown keys, at every depth, with a hint for typos
        ((('name = "base"', 'name = "base"\nauthor = "x"'),), "author", "unknown key"),
        ((("cycles = 2", "cycles = 2\nfoo = 1"),), "steps[1].foo", "unknown key"),
        (
            (("peak_window_c =", "peak_windw_c ="),),
            "steps[3].peak_windw_c",
            "did you mean 'peak_window_c'",
        ),
        (
            (("min = 238.0", "min = 238.0, mid = 245.0"),),
            "steps[3].peak_window_c.mid",
            "unknown key",
        ),
        (
            (("hold_s = 10.0,", "hold_s = 10.0, hold_min = 1,"),),
            "steps[2].leak_check.hold_min",
            "unknown key",
        ),
        (
            (("tg_margin_c = 40.0", "tg_margin_c = 40.0\ncte = 20"),),
            "materials.component.cte",
            "unknown key",
        ),
        # wrong types
        (
            (("tg_c = 360.0", 'tg_c = "360"'),),
            "materials.component.tg_c",
            'expected a number, found text "360"',
        ),
        ((("cycles = 2", "cycles = 2.0"),), "steps[1].cycles", "expected a whole number"),
        ((("to_c = 245.0", "to_c = true"),), "steps[3].segments[1].to_c", "found a boolean"),
        ((('name = "base"', "name = 7"),), "name", "expected text"),
        (
            (("setpoint_c = 25.0", "setpoint_c = 07:32:00"),),
            "steps[0].setpoint_c",
            "found a date/time",
        ),
        (
            (("max_ramp_c_per_s = 4.0", "max_ramp_c_per_s = [4.0]"),),
            "steps[3].max_ramp_c_per_s",
            "found an array",
        ),
        ((("time_s = 10.0", "time_s = { s = 10 }"),), "steps[5].time_s", "found a table"),
        # nan / inf, which TOML allows
        (
            (("to_c = 245.0", "to_c = nan"),),
            "steps[3].segments[1].to_c",
            "nan and inf are not accepted",
        ),
        ((("max = 252.0", "max = inf"),), "steps[3].peak_window_c.max", "finite"),
        ((("liquidus_c = 220.0", "liquidus_c = -inf"),), "materials.solder.liquidus_c", "finite"),
        # negative or zero durations
        (
            (("hold_s = 30.0", "hold_s = -5.0"),),
            "steps[3].segments[0].hold_s",
            "a duration cannot be negative (found -5 s)",
        ),
        ((("time_s = 10.0", "time_s = -1"),), "steps[5].time_s", "a duration cannot be negative"),
        ((("time_s = 10.0", "time_s = 0"),), "steps[5].time_s", "must be greater than 0"),
        (
            (("min = 30.0", "min = -30.0"),),
            "steps[3].time_above_liquidus_s.min",
            "a duration cannot be negative",
        ),
        # other bounds of single fields
        ((("cycles = 2", "cycles = 0"),), "steps[1].cycles", "≥ 1"),
        ((("target_mbar = 2.0", "target_mbar = 0.0"),), "steps[2].target_mbar", "greater than 0"),
        ((('name = "base"', 'name = "my recipe"'),), "name", "letters, digits"),
        # missing required keys
        ((("liquidus_c = 220.0\n", ""),), "materials.solder.liquidus_c", "required key is missing"),
        (
            (("o2_target_ppm = 10.0\n", ""),),
            "steps[1].o2_target_ppm",
            "missing from this 'purge' step",
        ),
        ((("[atmosphere]\no2_max_ppm = 50.0\n", ""),), "atmosphere", "required key is missing"),
        # unknown kind and step type
        (
            (('kind = "vacuum_film_bond"', 'kind = "lead_lfit"'),),
            "kind",
            "unknown recipe kind 'lead_lfit' (did you mean 'lead_lift'?)",
        ),
        ((('kind = "vacuum_film_bond"\n', ""),), "kind", "required key is missing"),
        ((('type = "reflow"', 'type = "reflwo"'),), "steps[3].type", "did you mean 'reflow'"),
        ((('type = "vent"', 'type = "vent_to_air"'),), "steps[6].type", "unknown step type"),
        ((('type = "cool"\n', ""),), "steps[4].type", "required key is missing"),
    ],
)
def test_shape_problems(
    replacements: tuple[tuple[str, str], ...], field: str, fragment: str
) -> None:
    assert_issue(issues_of(edited(*replacements)), field, fragment)


def test_all_shape_problems_reported_at_once() -> None:
    issues = issues_of(
        edited(
            ("tg_c = 360.0", "tg_c = nan"),
            ("cycles = 2", "cycles = 2\nfoo = 1"),
            ("hold_s = 30.0", "hold_s = -1.0"),
            ('type = "vent"', 'type = "vnet"'),
        )
    )
    assert [i.field for i in issues] == [
        "materials.component.tg_c",
        "steps[1].foo",
        "steps[3].segments[0].hold_s",
        "steps[6].type",
    ]


def test_message_lists_every_issue() -> None:
    with pytest.raises(RecipeInvalid) as exc:
        parse_recipe(
            edited(("tg_c = 360.0", "tg_c = nan"), ("cycles = 2", "cycles = 2.5")).encode(),
            SOURCE,
            LIMITS,
        )
    lines = str(exc.value).splitlines()
    assert lines == [str(i) for i in exc.value.issues]
    assert lines[0].startswith(f"{SOURCE}: materials.component.tg_c: ")
    assert lines[1].startswith(f"{SOURCE}: steps[1].cycles: ")


# --- rules: physics, limits, order -----------------------------------------------------------


@pytest.mark.parametrize(
    ("replacements", "field", "fragment"),
    [
        # materials
        (
            (("solidus_c = 217.0", "solidus_c = 225.0"),),
            "materials.solder.solidus_c",
            "above liquidus",
        ),
        # peak window vs. liquidus, chip limit, profile
        (
            (("min = 238.0", "min = 215.0"),),
            "steps[3].peak_window_c.min",
            "not above the liquidus of SAC305 (220 °C)",
        ),
        ((("min = 238.0", "min = 220.0"),), "steps[3].peak_window_c.min", "liquidus"),
        ((("max = 252.0", "max = 310.0"),), "steps[3].peak_window_c.max", "limits.chip_max_c"),
        (
            (("to_c = 245.0", "to_c = 255.0"),),
            "steps[3].segments[1].to_c",
            "outside the peak window 238–252",
        ),
        # inverted windows
        (
            (("{ min = 238.0, max = 252.0 }", "{ min = 252.0, max = 238.0 }"),),
            "steps[3].peak_window_c.min",
            "inverted",
        ),
        (
            (("{ min = 30.0, max = 75.0 }", "{ min = 75.0, max = 30.0 }"),),
            "steps[3].time_above_liquidus_s.min",
            "inverted",
        ),
        # ramps
        (
            (("ramp_c_per_s = 3.0", "ramp_c_per_s = 20.0"),),
            "steps[3].segments[0].ramp_c_per_s",
            "limits.ramp_max_c_per_s",
        ),
        (
            (("max_ramp_c_per_s = 4.0", "max_ramp_c_per_s = 16.0"),),
            "steps[3].max_ramp_c_per_s",
            "equipment's ramp limit 15",
        ),
        (
            (("ramp_c_per_s = 3.0", "ramp_c_per_s = 5.0"),),
            "steps[3].segments[0].ramp_c_per_s",
            "max_ramp_c_per_s (4 °C/s)",
        ),
        # time above liquidus that the profile cannot stay under
        (
            (("hold_s = 15.0", "hold_s = 70.0"),),
            "steps[3].time_above_liquidus_s.max",
            "at least 90.8 s",
        ),
        # chuck vs. Tg and the chiller's range
        (
            (("tg_c = 360.0", "tg_c = 80.0"), ("setpoint_c = 25.0", "setpoint_c = 45.0")),
            "steps[0].setpoint_c",
            "Tg − margin = 80 − 40 = 40 °C",
        ),
        (
            (("setpoint_c = 25.0", "setpoint_c = 65.0"),),
            "steps[0].setpoint_c",
            "outside the chiller's range 5–60 °C",
        ),
        (
            (("setpoint_c = 25.0", "setpoint_c = 2.0"),),
            "steps[0].setpoint_c",
            "limits.chuck_setpoint_min_c",
        ),
        # cooling
        (
            (("to_c = 150.0\nmax_rate", "to_c = 217.0\nmax_rate"),),
            "steps[4].to_c",
            "not below the solidus",
        ),
        (
            (("max_rate_c_per_s = 3.0", "max_rate_c_per_s = 12.0"),),
            "steps[4].max_rate_c_per_s",
            "limits.cool_rate_max_c_per_s",
        ),
        (
            (("to_c = 150.0\nmax_rate", "to_c = 20.0\nmax_rate"),),
            "steps[4].to_c",
            "not above the chuck setpoint",
        ),
        # securement release
        (
            (("temperature_c = 120.0", "temperature_c = 215.0"),),
            "steps[5].temperature_c",
            "solidus",
        ),
        # pressures and purge
        (
            (("pump_to_mbar = 1.0", "pump_to_mbar = 0.05"),),
            "steps[1].pump_to_mbar",
            "limits.pressure_min_mbar",
        ),
        (
            (("target_mbar = 2.0", "target_mbar = 0.01"),),
            "steps[2].target_mbar",
            "what the pump can reach",
        ),
        (
            (("backfill_to_mbar = 1000.0", "backfill_to_mbar = 1.0"),),
            "steps[1].backfill_to_mbar",
            "not above the pump-to pressure",
        ),
        ((("cycles = 2", "cycles = 12"),), "steps[1].cycles", "limits.purge_cycles_max"),
        (
            (('type = "vent"', 'type = "vent"\nto_mbar = 1.5'),),
            "steps[6].to_mbar",
            "not above the pump-down pressure",
        ),
        # oxygen
        (
            (("o2_target_ppm = 10.0", "o2_target_ppm = 60.0"),),
            "steps[1].o2_target_ppm",
            "atmosphere.o2_max_ppm = 50 ppm",
        ),
        (
            (("o2_max_ppm = 50.0", "o2_max_ppm = 5000.0"),),
            "atmosphere.o2_max_ppm",
            "limits.o2_max_ppm_ceiling",
        ),
        (
            (("o2_max_ppm = 50.0", "o2_max_ppm = 50.0\no2_max_partial_mbar = 250.0"),),
            "atmosphere.o2_max_partial_mbar",
            "160 Torr",
        ),
        # timeouts
        (
            (("setpoint_c = 25.0", "setpoint_c = 25.0\ntimeout_s = 4000.0"),),
            "steps[0].timeout_s",
            "limits.step_timeout_max_s",
        ),
        (
            (('type = "reflow"', 'type = "reflow"\ntimeout_s = 100.0'),),
            "steps[3].timeout_s",
            "profile alone takes 134.2 s",
        ),
        (
            (("time_s = 10.0", "time_s = 10.0\ntimeout_s = 10.0"),),
            "steps[5].time_s",
            "within the step timeout",
        ),
        (
            (("hold_s = 10.0,", "hold_s = 700.0,"),),
            "steps[2].leak_check.hold_s",
            "within the step timeout",
        ),
        # names
        (
            (('type = "pump_down"', 'type = "pump_down"\nname = "purge"'),),
            "steps[2].name",
            "already used by steps[1]",
        ),
    ],
)
def test_rule_problems(
    replacements: tuple[tuple[str, str], ...], field: str, fragment: str
) -> None:
    assert_issue(issues_of(edited(*replacements)), field, fragment)


def _steps(text: str) -> list[str]:
    return text.split("[[steps]]\n")


def _reorder(order: list[int]) -> str:
    parts = _steps(BASE)
    head, steps = parts[0], parts[1:]
    # the reflow's segments are part of its chunk, so they move with it
    return head + "".join("[[steps]]\n" + steps[i] for i in order)


def test_steps_in_an_impossible_order() -> None:
    issues = issues_of(_reorder([0, 1, 3, 2, 4, 5, 6]))  # reflow before pump_down
    assert_issue(issues, "steps[3].type", "'pump_down' cannot come after 'reflow' (steps[2])")


def test_vent_must_be_last() -> None:
    issues = issues_of(_reorder([0, 1, 2, 3, 6, 4, 5]))
    assert_issue(issues, "steps[5].type", "'cool' cannot come after 'vent'")


def test_chuck_stabilize_must_be_first() -> None:
    issues = issues_of(_reorder([1, 0, 2, 3, 4, 5, 6]))
    assert_issue(issues, "steps[1].type", "'chuck_stabilize' cannot come after 'purge'")


def test_required_step_missing() -> None:
    issues = issues_of(_reorder([0, 1, 2, 3, 5, 6]))  # no cool
    assert_issue(issues, "steps", "no 'cool' step")


def test_second_reflow_refused() -> None:
    issues = issues_of(_reorder([0, 1, 2, 3, 3, 4, 5, 6]))
    assert_issue(issues, "steps[4].type", "a second 'reflow' step (the first is steps[3])")


def test_repeated_unnamed_steps_collide_and_say_why() -> None:
    issues = issues_of(_reorder([0, 1, 1, 2, 3, 4, 5, 6]))
    assert_issue(issues, "steps[2].name", "no name of its own")


def test_several_named_purges_and_no_securement_release_are_fine() -> None:
    purge = _steps(BASE)[2]
    assert purge.startswith('type = "purge"\n')
    text = _reorder([0, 1, 2, 3, 4, 6]).replace(
        "[[steps]]\n" + purge,
        "".join(f'[[steps]]\nname = "purge-{n}"\n' + purge for n in (1, 2, 3)),
    )
    loaded = parse_recipe(text.encode(), SOURCE, LIMITS)
    assert [s.name for s in loaded.recipe.steps][1:4] == ["purge-1", "purge-2", "purge-3"]
    assert "securement_release" not in [s.type for s in loaded.recipe.steps]


def test_rules_are_judged_against_the_configured_limits() -> None:
    strict = Limits(chip_max_c=250.0, ramp_max_c_per_s=2.5)
    issues = issues_of(BASE, strict)
    assert {i.field for i in issues} == {
        "steps[3].peak_window_c.max",
        "steps[3].segments[0].ramp_c_per_s",
        "steps[3].max_ramp_c_per_s",
    }


def test_all_rule_problems_reported_at_once() -> None:
    issues = issues_of(
        edited(
            ("min = 238.0", "min = 215.0"),
            ("ramp_c_per_s = 3.0", "ramp_c_per_s = 20.0"),
            ("cycles = 2", "cycles = 12"),
        )
    )
    assert len(issues) == 3


# --- fixture files (also used to demonstrate `bonderd check`) --------------------------------


@pytest.mark.parametrize(
    ("name", "field", "fragment"),
    [
        ("bad-order.toml", "steps[2].type", "cannot come after"),
        ("bad-peak-below-liquidus.toml", "steps[3].peak_window_c.min", "liquidus"),
        ("bad-not-toml.toml", WHOLE_FILE, "not valid TOML"),
    ],
)
def test_bad_fixture_files(name: str, field: str, fragment: str) -> None:
    path = FIXTURES / name
    with pytest.raises(RecipeInvalid) as exc:
        load_recipe_file(path, LIMITS)
    assert any(
        i.file == str(path) and i.field == field and fragment in i.reason for i in exc.value.issues
    ), exc.value
