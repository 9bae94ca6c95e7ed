"""The recipe model (pydantic v2). Unknown keys, NaN and infinities are refused.

The model holds the *shape* of a recipe and single-field bounds; rules that relate fields
to each other, to physics or to the equipment limits live in ``daemon.recipe.rules``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Celsius = Annotated[float, Field(ge=-50.0, le=600.0)]
Seconds = Annotated[float, Field(ge=0.0)]
PositiveSeconds = Annotated[float, Field(gt=0.0)]
Mbar = Annotated[float, Field(gt=0.0, le=1200.0)]
Rate = Annotated[float, Field(gt=0.0)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class Window(Strict):
    """An inclusive [min, max] window."""

    min: float
    max: float


class Solder(Strict):
    name: str
    liquidus_c: Celsius
    solidus_c: Celsius


class ComponentPolymer(Strict):
    polymer: str
    tg_c: Celsius
    tg_margin_c: Annotated[float, Field(ge=0.0)] = Field(
        description="keep the component's average at least this far below Tg"
    )


class Materials(Strict):
    solder: Solder
    component: ComponentPolymer


class Atmosphere(Strict):
    """Limits on the working-space atmosphere before and during heating."""

    o2_max_ppm: Annotated[float, Field(gt=0.0)]
    o2_max_partial_mbar: Annotated[float, Field(gt=0.0)] = Field(
        default=200.0,
        description="O2 partial pressure limit; the default sits just under the legal 160 Torr (213 mbar)",
    )


class StepBase(Strict):
    name: str = ""  # defaults to the step type; unique within the recipe
    timeout_s: PositiveSeconds = 600.0

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: object) -> object:
        if isinstance(data, dict) and not data.get("name") and isinstance(data.get("type"), str):
            return {**data, "name": data["type"]}
        return data


class ChuckStabilize(StepBase):
    type: Literal["chuck_stabilize"]
    setpoint_c: Celsius
    tolerance_c: Annotated[float, Field(gt=0.0)] = 1.0
    settle_s: Seconds = 10.0


class Purge(StepBase):
    type: Literal["purge"]
    cycles: Annotated[int, Field(ge=1, le=20)]
    pump_to_mbar: Mbar
    backfill_to_mbar: Mbar
    o2_target_ppm: Annotated[float, Field(gt=0.0)]


class LeakCheck(Strict):
    hold_s: PositiveSeconds
    max_rise_mbar_per_min: Annotated[float, Field(gt=0.0)]


class PumpDown(StepBase):
    type: Literal["pump_down"]
    target_mbar: Mbar
    leak_check: LeakCheck | None = None


class Segment(Strict):
    """Ramp at ``ramp_c_per_s`` to ``to_c``, then hold ``hold_s``."""

    ramp_c_per_s: Rate
    to_c: Celsius
    hold_s: Seconds = 0.0


class Reflow(StepBase):
    type: Literal["reflow"]
    control_tc: str = "chip"
    segments: Annotated[list[Segment], Field(min_length=1)]
    peak_window_c: Window
    time_above_liquidus_s: Window
    max_ramp_c_per_s: Rate = Field(description="measured chip heating rate limit")


class Cool(StepBase):
    type: Literal["cool"]
    to_c: Celsius
    max_rate_c_per_s: Rate
    keep_vacuum: bool = True


class SecurementRelease(StepBase):
    type: Literal["securement_release"]
    temperature_c: Celsius
    time_s: PositiveSeconds
    tolerance_c: Annotated[float, Field(gt=0.0)] = 5.0


class Vent(StepBase):
    type: Literal["vent"]
    to_mbar: Mbar = 950.0


VacuumFilmStep = Annotated[
    ChuckStabilize | Purge | PumpDown | Reflow | Cool | SecurementRelease | Vent,
    Field(discriminator="type"),
]


class VacuumFilmBondRecipe(Strict):
    kind: Literal["vacuum_film_bond"]
    name: Annotated[
        str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    ]
    description: str = ""
    materials: Materials
    atmosphere: Atmosphere
    steps: Annotated[list[VacuumFilmStep], Field(min_length=1)]

    def step(self, name: str) -> VacuumFilmStep:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def steps_of(self, type_: str) -> list[VacuumFilmStep]:
        return [s for s in self.steps if s.type == type_]


# Further recipe kinds (lead_lift, bump_reflow) join this union.
Recipe = Annotated[VacuumFilmBondRecipe, Field(discriminator="kind")]
