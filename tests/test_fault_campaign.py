"""Fault campaign: every fault kind of CONTRACT.md on every step of each shipped recipe.

Each cell runs the recipe on the simulated machine in virtual time with one fault fired
shortly after the step starts. tests/simrun.py checks the plant invariants on every run; here
each cell must also end in the safe state, name the fault in the run's reason, and keep every
record. Cells where the fault legitimately does not stop the run are listed in MAY_COMPLETE
with the reason why.

Every recipe kind is covered: vacuum-film bond, bump reflow and lead lift (UV and heat
release). Which faults may let a run finish depends on what the kind uses: a lead lift has
no lamps, pump, gauge or O2 analyzer in use, a vacuum-film bond no stage, UV or dispenser.

Sizes (one core, virtual time, ~1-2 s per vacuum-film run; a lead lift that is not stopped
early runs ~10-20 s of wall time):
- default: DEFAULT_PAIRS on the single-chip vacuum-film recipes (18 cells, every fault kind,
  device and step at least once) plus DEFAULT_EXTRA on the bump-reflow and lead-lift recipes
  (14 cells) and DEFAULT_PANEL on each panel recipe (10 cells: each kind of a panel's own
  faults, PANEL_FAULTS, and the usual devices in its reflow and cool);
- ``BONDERD_CAMPAIGN=pairs``: every device/kind pair once, rotating over recipes and steps;
- ``BONDERD_CAMPAIGN=full``: the whole matrix, every pair on every step of every shipped
  recipe (the panel faults on the panel recipes only).

A panel's run must also judge every site when it is not stopped, and a dead zone must be
named in the reason or an alarm (which of the two depends on the zone loop, ADR 0165).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from daemon.config import Limits
from daemon.recipe.load import load_recipe_file
from daemon.recipe.model import AnyRecipe, LeadLiftRecipe, SupportRelease
from drivers.sim.faults import parse_scenario
from tests.simrun import RECIPES, SimRun, run_recipe

MODE = os.environ.get("BONDERD_CAMPAIGN", "default")

# (device, kind, value, words of which the reason must contain one)
FAULTS: list[tuple[str, str, float | None, tuple[str, ...]]] = [
    *[
        (f"tc.{ch}", kind, 5.0 if kind == "drift" else None, (ch,))
        for ch in ("chip", "component", "chuck")
        for kind in ("open", "stuck", "drift", "no_response")
    ],
    ("tc", "no_response", None, ("thermocouple", "tc")),
    ("gauge", "fail", None, ("gauge",)),
    ("gauge", "stuck", None, ("gauge",)),
    ("gauge", "no_response", None, ("gauge",)),
    # Under N2 at atmosphere (bump reflow) air coming in shows as O2, not pressure.
    ("chamber", "leak", 50.0, ("leak", "vacuum_lost", "o2_high")),
    ("chamber", "tear", None, ("torn film", "vacuum_lost", "o2_high")),
    ("film", "tear", None, ("torn film", "vacuum_lost", "o2_high")),
    ("chiller", "fail", None, ("chiller",)),
    ("chiller", "no_response", None, ("chiller",)),
    ("pump", "fail", None, ("pump",)),
    ("pump", "no_response", None, ("pump",)),
    ("lamps", "stuck_on", None, ("lamp",)),
    ("lamps", "fail", None, ("lamp",)),
    ("lamps", "no_response", None, ("lamp",)),
    ("lamps.z1", "stuck_on", None, ("lamp",)),
    ("lamps.z1", "fail", None, ("lamp",)),
    ("lamps.z1", "no_response", None, ("lamp",)),
    ("o2", "fail", None, ("O2", "o2")),
    ("o2", "stuck", None, ("O2", "o2")),
    ("o2", "no_response", None, ("O2", "o2")),
    ("dio", "estop", None, ("E-stop",)),
    ("dio", "door_open", None, ("door",)),
    ("dio", "no_response", None, ("dio",)),
    ("zstage", "fail", None, ("zstage", "Z stage")),
    ("zstage", "stall", None, ("z_stall", "z_following_error", "Z stage")),
    ("zstage", "no_response", None, ("zstage", "Z stage")),
    ("uv", "fail", None, ("uv", "UV")),
    ("uv", "no_response", None, ("uv", "UV")),
    ("dispenser", "fail", None, ("dispenser", "dispense")),
    ("dispenser", "no_response", None, ("dispenser",)),
    ("chuck_vacuum", "fail", None, ("vacuum hold", "vacuum_hold")),
    ("support_vacuum", "fail", None, ("vacuum hold", "vacuum_hold")),
    ("valves", "no_response", None, ("valves",)),
]
# A panel of chips' own devices (docs/panel.md, "Faults on a panel"): only a panel recipe has
# them (a site without a thermocouple, or not on the chuck, is refused by the scenario).
PANEL_FAULTS: list[tuple[str, str, float | None, tuple[str, ...]]] = [
    *[
        (f"tc.site_{n}", kind, 5.0 if kind == "drift" else None, (f"site_{n}",))
        for n in (0, 2, 6, 8)
        for kind in ("open", "stuck", "drift", "no_response")
    ],
    ("lamps.z2", "fail", None, ("lamp",)),
    ("lamps.z3", "fail", None, ("lamp",)),
    ("lamps.z4", "fail", None, ("lamp",)),
    # Half the pressure on a corner chip: it conducts less to the component, runs hotter.
    ("film.site_0", "uneven", 0.5, ("site_0",)),
    ("film.site_8", "uneven", 0.5, ("site_8",)),
]
PANEL_ONLY = len(FAULTS)  # FAULTS[PANEL_ONLY:] are PANEL_FAULTS
FAULTS += PANEL_FAULTS

# Faults that may let the run finish, and why (docs/safety.md, "What is not detected").
MAY_COMPLETE: dict[tuple[str, str], str] = {
    # A vacuum-film bond does not use the stage, the UV source or the dispenser: their faults
    # raise a warning alarm. A silent one slows the simulated monitor (sequential reads wait
    # its timeout), which can fail a process check: "failed", never a silent pass.
    ("zstage", "fail"): "device not used by this recipe kind",
    ("zstage", "stall"): "device not used by this recipe kind",
    ("zstage", "no_response"): "device not used by this recipe kind",
    ("chuck_vacuum", "fail"): "the holds are not used by this recipe kind",
    ("support_vacuum", "fail"): "the holds are not used by this recipe kind",
    ("uv", "fail"): "device not used; a failed UV source closes its shutter",
    ("uv", "no_response"): "device not used by this recipe kind",
    ("dispenser", "fail"): "device not used by this recipe kind",
    ("dispenser", "no_response"): "device not used by this recipe kind",
    # One dead zone of four: the controller makes up for it; every process check still holds,
    # and a warning names the zone.
    ("lamps.z1", "fail"): "the other zones carry the profile; the checks prove the result",
    # On a panel the zone loop decides from the gains whether the other zones can still bring
    # every site to its window (ADR 0165): completed, every site judged, or stopped naming it.
    ("lamps.z2", "fail"): "the other zones carry the profile; every site is judged",
    ("lamps.z3", "fail"): "the other zones carry the profile; every site is judged",
    ("lamps.z4", "fail"): "the other zones carry the profile; every site is judged",
    # Uneven film pressure is no device failing: the site's chip runs hotter, and its own
    # conformance (or the chip limit on its thermocouple) says whether the bond held.
    ("film.site_0", "uneven"): "no device fault; the site's own checks prove the result",
    ("film.site_8", "uneven"): "no device fault; the site's own checks prove the result",
    # A frozen analyzer at the good value it had is indistinguishable from a good atmosphere
    # for a single analyzer; the purge step catches it when frozen at a bad value.
    ("o2", "stuck"): "single analyzer frozen at a good value",
}
# Steps after which the lamps never come on again: a fault that only matters for heating (a
# lamp failure, a stuck SCR behind an open contactor) cannot show any more.
LATE_STEPS = {"cool", "securement_release", "vent"}
LATENT_WHEN_LATE = {"lamps", "lamps.z1", "lamps.z2", "lamps.z3", "lamps.z4", "o2"}
# Thermocouple drifts and stuck values late in the run: after heating the TC rules that catch
# them (disagreement before heat, heat without lamps) may not see them before the run ends.
LATE_TC_KINDS = {"drift", "stuck"}


# Lead lift: which devices each step type needs. A fault of a device that this step and no
# later one needs may let the run finish (its loss is a warning, ADR 0058).
LEAD_LIFT_NEEDS: dict[str, set[str]] = {
    "uv_release": {"uv"},
    "heat_release": set(),
    "lead_lift": {"zstage", "chuck_vacuum", "support_vacuum"},
    "encapsulate": {"dispenser", "zstage", "chuck_vacuum", "support_vacuum"},
    "cure": {"zstage", "chuck_vacuum", "support_vacuum"},
    "support_release": {"zstage", "chuck_vacuum", "support_vacuum"},  # + uv if by UV
}
# A lead lift heats with the circulator: lamps, pump, gauge, O2 analyzer, valves and the
# working space are not used, and their faults are warnings at most.
LEAD_LIFT_UNUSED = {"lamps", "lamps.z1", "pump", "gauge", "o2", "valves", "chamber", "film"}


def _recipe(path: Path) -> AnyRecipe:
    return load_recipe_file(path, Limits()).recipe


def _steps(path: Path) -> list[str]:
    return [s.name for s in _recipe(path).steps]


def _lift_index(recipe: LeadLiftRecipe) -> int:
    return next(i for i, s in enumerate(recipe.steps) if s.type == "lead_lift")


def _lead_lift_may_complete(recipe: LeadLiftRecipe, device: str, kind: str, step: str) -> bool:
    if device in LEAD_LIFT_UNUSED:
        return True
    names = [s.name for s in recipe.steps]
    later = recipe.steps[names.index(step) :]
    needed: set[str] = set()
    for s in later:
        needed |= LEAD_LIFT_NEEDS[s.type]
        if isinstance(s, SupportRelease) and s.method == "uv":
            needed.add("uv")
    if device == "zstage" and kind == "stall" and names.index(step) > _lift_index(recipe):
        # The stage is at rest at the end of its move: a stall moves nothing and shows
        # nothing (not busy, no following error).
        return True
    if device.startswith("tc.") and kind in LATE_TC_KINDS:
        # No lamp-heating plausibility rule applies without lamps: a drifting or frozen
        # component or chuck thermocouple is caught by the absolute limits only, which a
        # short remaining run may not reach (docs/safety.md, "What is not detected").
        return device != "tc.chip" or step == names[-1]
    return device in ("zstage", "uv", "dispenser", "chuck_vacuum", "support_vacuum") and (
        device not in needed
    )


# The default subset: (device, kind) of FAULTS, spread over both recipes' steps below.
DEFAULT_PAIRS = [
    ("tc.chip", "open"),
    ("tc.component", "stuck"),
    ("tc.chuck", "drift"),
    ("tc.chip", "no_response"),
    ("gauge", "fail"),
    ("chamber", "leak"),
    ("film", "tear"),
    ("chiller", "fail"),
    ("pump", "fail"),
    ("lamps", "stuck_on"),
    ("lamps", "fail"),
    ("o2", "fail"),
    ("dio", "estop"),
    ("dio", "door_open"),
    ("zstage", "fail"),
    ("uv", "no_response"),
    ("dispenser", "fail"),
    ("valves", "no_response"),
]


def _is_panel(path: Path) -> bool:
    recipe = _recipe(path)
    return getattr(recipe, "panel", None) is not None and recipe.panel.sites > 1  # type: ignore[attr-defined]


PANELS = [r for r in RECIPES if _is_panel(r)]
# The single-chip bond recipes: their 13 steps take DEFAULT_PAIRS at a stride of 5, which
# visits each of them (5 and 13 are coprime). A panel recipe has its own cells below.
VACUUM_FILM = [r for r in RECIPES if _recipe(r).kind == "vacuum_film_bond" and r not in PANELS]
# (step, device, kind) on the shipped 3 × 3 panel: each kind of its own fault, and the usual
# devices in its reflow and cool (~0.3-1.5 s each: most stop within seconds of the fault).
DEFAULT_PANEL = [
    ("reflow", "tc.site_0", "open"),
    ("reflow", "tc.site_8", "stuck"),
    ("reflow", "tc.site_2", "drift"),
    ("reflow", "tc.site_6", "no_response"),
    ("reflow", "lamps.z1", "fail"),  # the inner zone: stopped before the reflow is lost
    # A measured corner hot under its film: its zones pulled down, then stopped naming it
    # under the chip limit (ADR 0169; it once rode to chip_overtemp at 272.1 °C).
    ("reflow", "film.site_0", "uneven"),
    ("reflow", "tc.chip", "no_response"),
    ("reflow", "lamps", "stuck_on"),
    ("pump_down", "chamber", "leak"),
    ("cool", "chiller", "fail"),
]
# (recipe file stem, step name, device, kind): the other kinds' steps in the default run.
DEFAULT_EXTRA = [
    ("bump-sac305", "reflow", "o2", "fail"),
    ("bump-sac305", "purge", "film", "tear"),
    # A dead zone before heating once stalled the cool at the solidus (issue 5, ADR 0110).
    ("bump-sac305", "purge", "lamps.z1", "fail"),
    ("lead-lift-uv", "uv_release", "uv", "fail"),
    ("lead-lift-uv", "uv_release", "uv", "no_response"),  # closed by its line (ADR 0115)
    ("lead-lift-uv", "lead_lift", "zstage", "stall"),
    ("lead-lift-uv", "lead_lift", "zstage", "no_response"),
    ("lead-lift-uv", "encapsulate", "dispenser", "fail"),
    ("lead-lift-uv", "encapsulate", "dispenser", "no_response"),  # its shot is waited for
    ("lead-lift-uv", "encapsulate", "zstage", "fail"),  # the lifted support's drive: a trip
    ("lead-lift-uv", "cure", "support_vacuum", "fail"),
    ("lead-lift-heat", "heat_release", "chiller", "fail"),
    ("lead-lift-heat", "heat_release", "zstage", "stall"),  # jammed before homing (ADR 0099)
    ("lead-lift-heat", "lead_lift", "dio", "no_response"),  # holds unknown, not lost
]


def _cells() -> list[tuple[Path, str, int]]:
    cells: list[tuple[Path, str, int]] = []
    index = {(d, k): i for i, (d, k, _, _) in enumerate(FAULTS)}
    if MODE == "default":
        slots = [(r, s) for r in VACUUM_FILM for s in _steps(r)]  # 13 (recipe, step) slots
        cells = [
            (*slots[(n * 5) % len(slots)], index[pair]) for n, pair in enumerate(DEFAULT_PAIRS)
        ]
        by_stem = {r.stem: r for r in RECIPES}
        cells += [(by_stem[r], step, index[(d, k)]) for r, step, d, k in DEFAULT_EXTRA]
        return cells + [(p, step, index[(d, k)]) for p in PANELS for step, d, k in DEFAULT_PANEL]
    if MODE == "full":
        for recipe in RECIPES:
            faults = range(len(FAULTS)) if recipe in PANELS else range(PANEL_ONLY)
            cells += [(recipe, step, i) for step in _steps(recipe) for i in faults]
        return cells
    for r, recipe in enumerate(RECIPES):
        steps = _steps(recipe)
        # A share of the pairs on each recipe, rotating through its steps.
        for i in range(r, PANEL_ONLY, len(RECIPES)):
            cells.append((recipe, steps[(i // len(RECIPES)) % len(steps)], i))
    for p in PANELS:
        # Every panel fault on every panel, rotating through its steps.
        steps = _steps(p)
        cells += [
            (p, steps[n % len(steps)], i) for n, i in enumerate(range(PANEL_ONLY, len(FAULTS)))
        ]
    return cells


def _may_complete(recipe: Path, device: str, kind: str, step: str) -> bool:
    parsed = _recipe(recipe)
    if isinstance(parsed, LeadLiftRecipe):
        return _lead_lift_may_complete(parsed, device, kind, step)
    if (device, kind) in MAY_COMPLETE:
        return True
    if step in LATE_STEPS and (device in LATENT_WHEN_LATE or device in ("chamber", "film")):
        return True
    if parsed.kind == "bump_reflow" and device == "chamber" and kind == "leak":
        return True  # at atmosphere a leak has no pressure difference to let air in
    if parsed.kind == "bump_reflow" and step == "vent":
        # At atmosphere the vent has nothing to do: it ends on the first snapshot, before a
        # device can be missed twice or a frozen value can look wrong: the run is over
        # before the fault can show in it. It still ends in the safe state with its record.
        return True
    return step in LATE_STEPS and device.startswith("tc.") and kind in LATE_TC_KINDS


def _assert_safe(sim: SimRun) -> None:
    s = sim.plant.state
    assert max(s.lamp_output_pct) == 0.0 and not s.contactor_energized
    assert not s.outputs["scr_enable"] and not s.uv_shutter_open


def _assert_panel_record(doc: dict[str, Any], device: str, kind: str) -> None:
    """A panel's run, however it ended: every site in the document if it was judged, and a
    dead zone named where the operator reads it (the reason or an alarm)."""
    if doc["result"] != "aborted":
        assert sorted(s["site"] for s in doc["sites"]) == list(range(9)), "a site not judged"
    if device.startswith("lamps.z") and kind == "fail":
        zone = f"lamp zone {device.removeprefix('lamps.z')}"
        said = [doc["reason"], *(a["message"] for a in doc["alarms"])]
        assert any(zone in text for text in said), f"{zone} not named: {said}"


@pytest.mark.parametrize(
    ("recipe", "step", "index"),
    _cells(),
    ids=lambda v: v.stem if isinstance(v, Path) else str(v),
)
async def test_fault_cell(recipe: Path, step: str, index: int, tmp_path: Path) -> None:
    device, kind, value, names = FAULTS[index]
    # Vent is short (~1 s from vacuum, nothing at all at atmosphere): fire as it starts.
    after = 0.0 if step == "vent" else 1.0
    text = (
        f'[[fault]]\nat_step = "{step}"\nafter_s = {after}\ndevice = "{device}"\nkind = "{kind}"\n'
    )
    if value is not None:
        text += f"value = {value}\n"
    doc, sim = await run_recipe(recipe, tmp_path, scenario=parse_scenario(text))
    _assert_safe(sim)
    # A fault that would only fire after the run ended tests nothing: the cell must move it.
    assert sim.injector is not None and sim.injector.fired, (
        f"{device} {kind} in {step}: the fault never fired during the run"
    )
    # No record lost: the store holds the same verdict, every step that ran and the trace.
    record = sim.store.get_run(doc["run_id"])
    assert record is not None and record.state == doc["result"]
    assert sim.store.samples(doc["run_id"]), "trace lost"
    started = [p["name"] for _, e, p in sim.events if e == "StepStarted"]
    assert [s["name"] for s in doc["steps"]] == started
    if recipe in PANELS:
        _assert_panel_record(doc, device, kind)
    if doc["result"] != "aborted":
        assert _may_complete(recipe, device, kind, step), (
            f"{device} {kind} in {step}: run {doc['result']} ({doc['reason']})"
        )
        return
    assert any(n in doc["reason"] for n in names), (
        f"{device} {kind} in {step}: reason does not name the fault: {doc['reason']!r}"
    )
    assert sim.plant.state.pressure_mbar > 850.0 or any(
        a["code"] == "safe_state_incomplete" for a in doc["alarms"]
    )
