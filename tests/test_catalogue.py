"""The step catalogue (daemon/recipe/catalogue.py): complete, and what each reader needs."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from daemon.judge.series import COOLING_TYPES, HEATING_TYPES
from daemon.machine.monitor import Monitor
from daemon.recipe.catalogue import KIND_DEVICES, STEP_TYPES, Guard, holdable, step_types
from daemon.recipe.model import (
    AnyRecipe,
    AnyStep,
    BumpReflowRecipe,
    LeadLiftRecipe,
    VacuumFilmBondRecipe,
)
from daemon.recipe.rules import _BUMP_ORDER, _VACUUM_FILM_ORDER
from daemon.recipe.rules_lead_lift import RELEASE_TYPES
from daemon.safety.run_view import HEAT_STEPS, O2_STEPS, PRE_HEAT_STEPS, STEP_DEVICES


def _literal(model: type[Any], field: str) -> str:
    (value,) = typing.get_args(model.model_fields[field].annotation)
    return str(value)


def _step_types_of(recipe: type[Any]) -> set[str]:
    union = typing.get_args(recipe.model_fields["steps"].annotation)[0]
    members = typing.get_args(typing.get_args(union)[0])
    return {_literal(m, "type") for m in members}


MODEL_TYPES = {_literal(m, "type") for m in typing.get_args(AnyStep)}
KINDS = {_literal(r, "kind"): r for r in typing.get_args(AnyRecipe)}


class _AnyMachine:
    def __getattr__(self, name: str) -> None:
        return None


MONITORED = {name for name, _, _ in Monitor._read_table(_AnyMachine())}  # type: ignore[arg-type]


def test_every_step_type_of_the_model_has_an_entry_and_no_other() -> None:
    assert set(STEP_TYPES) == MODEL_TYPES
    assert set().union(*map(_step_types_of, KINDS.values())) == MODEL_TYPES


def test_every_kind_has_its_devices_and_every_device_is_one_the_monitor_reads() -> None:
    assert set(KIND_DEVICES) == set(KINDS)
    for devices in [*KIND_DEVICES.values(), *(s.devices for s in STEP_TYPES.values())]:
        assert devices <= MONITORED


@pytest.mark.parametrize("name", sorted(STEP_TYPES))
def test_properties_agree_with_each_other(name: str) -> None:
    s = STEP_TYPES[name]
    if s.heats or s.cools:
        # Lamps on, or solder solidifying under them: the interlocks guard the vacuum and O2.
        assert s.hot and Guard.ATMOSPHERE in s.guards
    if s.hot:
        assert not s.holdable  # a hold would leave solder molten or a profile half-run
        assert Guard.TC_AGREE not in s.guards  # "before any heat"
    if s.melts:
        assert s.heats
    if s.releases_tips or s.devices:
        assert not s.holdable  # an exposure, a shot or a lift half done


def test_a_melting_step_is_followed_by_a_cooling_step_in_each_order() -> None:
    # The executor's heat phase opens at a ``melts`` step and closes at the next ``cools``.
    for order in (_VACUUM_FILM_ORDER, _BUMP_ORDER):
        melts = [i for i, t in enumerate(order.types) if STEP_TYPES[t].melts]
        assert melts
        assert any(STEP_TYPES[t].cools for t in order.types[melts[0] :])


def test_the_readers_sets_are_the_catalogues() -> None:
    # Conformance: heating and cooling phases; the interlocks: a heating or cooling step is
    # one of their heat steps, and the atmosphere is guarded in every heat step.
    assert step_types(lambda s: s.heats) == HEATING_TYPES
    assert step_types(lambda s: s.cools) == COOLING_TYPES
    assert HEATING_TYPES | COOLING_TYPES <= HEAT_STEPS
    assert HEAT_STEPS <= O2_STEPS
    assert not PRE_HEAT_STEPS & HEAT_STEPS
    assert {t: s.devices for t, s in STEP_TYPES.items() if s.devices} == STEP_DEVICES
    assert RELEASE_TYPES and _step_types_of(LeadLiftRecipe) >= RELEASE_TYPES
    assert _VACUUM_FILM_ORDER.repeatable == {"purge"} == _BUMP_ORDER.repeatable


def test_lamp_heat_belongs_to_the_lamp_heated_kinds() -> None:
    # A lead lift heats with the circulator: none of its steps is a lamp step or guarded as one.
    assert not {t for t in _step_types_of(LeadLiftRecipe) if STEP_TYPES[t].guards}
    for recipe in (VacuumFilmBondRecipe, BumpReflowRecipe):
        assert {t for t in _step_types_of(recipe) if STEP_TYPES[t].heats}
        assert "lamps" in KIND_DEVICES[_literal(recipe, "kind")]
    assert "lamps" not in KIND_DEVICES["lead_lift"]


def test_holdable() -> None:
    assert holdable(None) and holdable("safe_state")
    assert holdable("purge") and not holdable("reflow") and not holdable("lead_lift")
