"""The recipe model (pydantic v2). Unknown keys, NaN and infinities are refused.

The model holds the *shape* of a recipe and single-field bounds; rules that relate fields
to each other, to physics or to the equipment limits live in ``daemon.recipe.rules``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.protocols import panel_reference_site

Celsius = Annotated[float, Field(ge=-50.0, le=600.0)]
Seconds = Annotated[float, Field(ge=0.0)]
PositiveSeconds = Annotated[float, Field(gt=0.0)]
Mbar = Annotated[float, Field(gt=0.0, le=1200.0)]
Rate = Annotated[float, Field(gt=0.0)]
Positive = Annotated[float, Field(gt=0.0)]
Fraction = Annotated[float, Field(gt=0.0, le=1.0)]


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


# Below this the working space holds too little gas for a concentration to mean much: an
# ``o2_max_ppm`` limit applies wherever the space holds at least this pressure, the partial
# pressure limit everywhere (conformance, the interlocks and the report read it from here).
O2_PPM_MIN_PRESSURE_MBAR = 100.0


class Atmosphere(Strict):
    """Limits on the working-space atmosphere before and during heating.

    ``o2_max_ppm`` holds wherever the space is at ``O2_PPM_MIN_PRESSURE_MBAR`` or above; under
    the film's vacuum the few mbar left are dominated by what leaks in, and the partial
    pressure limit is the proof (ADR 0004).
    """

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


class Panel(Strict):
    """Several chips on one component, bonded together (docs/panel.md). Without this
    section the recipe bonds one chip: the 1 × 1 panel."""

    rows: Annotated[int, Field(ge=1, le=10)]
    cols: Annotated[int, Field(ge=1, le=10)]
    pitch_mm: Positive = Field(default=12.0, description="chip centre to centre")
    chip_mm: Positive = Field(default=10.0, description="chip edge, at most the pitch")
    solder_mg: list[Positive] | None = Field(
        default=None, description="solder per site, row-major; none: the standard mass"
    )
    instrumented: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        description="the sites with a thermocouple (the centre's is the chip channel); "
        "none: the centre only. The others' temperatures are estimates",
    )

    @property
    def sites(self) -> int:
        return self.rows * self.cols

    @property
    def reference_site(self) -> int:
        return panel_reference_site(self.rows, self.cols)

    @property
    def instrumented_sites(self) -> tuple[int, ...]:
        return tuple(sorted(self.instrumented)) if self.instrumented else (self.reference_site,)

    @model_validator(mode="after")
    def _fits(self) -> Panel:
        if self.chip_mm > self.pitch_mm:
            raise ValueError(f"chip_mm {self.chip_mm:g} is wider than pitch_mm {self.pitch_mm:g}")
        sites = self.rows * self.cols
        if self.solder_mg is not None and len(self.solder_mg) != sites:
            raise ValueError(
                f"solder_mg has {len(self.solder_mg)} values for {self.rows} × {self.cols} = "
                f"{sites} sites"
            )
        for site in self.instrumented or ():
            if site >= sites:
                raise ValueError(f"instrumented site {site} is not on the panel (0..{sites - 1})")
        if self.instrumented is not None:
            if len(set(self.instrumented)) != len(self.instrumented):
                raise ValueError("instrumented lists a site twice")
            if self.reference_site not in self.instrumented:
                raise ValueError(
                    f"instrumented must list the centre site {self.reference_site}: the chip "
                    "thermocouple the reflow controls on sits there"
                )
        return self


class VacuumFilmBondRecipe(Strict):
    kind: Literal["vacuum_film_bond"]
    name: Annotated[
        str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    ]
    description: str = ""
    materials: Materials
    atmosphere: Atmosphere
    steps: Annotated[list[VacuumFilmStep], Field(min_length=1)]
    panel: Panel | None = None

    def step(self, name: str) -> VacuumFilmStep:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)


# ---- lead lift (DESIGN.md "Lead-lift") ---------------------------------------------------------


class Adhesive(Strict):
    """The connecting layer holding the lead tips on the support, from its datasheet.

    A release step must deliver at least what the datasheet asks for: the daemon refuses a
    recipe that cannot release the tips (daemon/recipe/rules.py).
    """

    name: str
    uv_release_dose_mj_cm2: Positive | None = Field(
        default=None, description="UV dose that degrades the layer enough to let go"
    )
    heat_release_c: Celsius | None = Field(
        default=None, description="temperature at which the layer lets go ..."
    )
    heat_release_s: PositiveSeconds | None = Field(default=None, description="... held this long")


class CureKinetics(Strict):
    """nth-order Arrhenius cure: dα/dt = A·exp(−Ea/RT)·(1 − α)^n (datasheet or DSC fit)."""

    a_per_s: Positive
    ea_j_mol: Positive
    n: Annotated[float, Field(gt=0.0, le=5.0)]


class Encapsulant(Strict):
    name: str
    # The dispenser does not measure volume: the daemon estimates it from pressure × time
    # with this coefficient (µL per kPa per second, at the dispensing temperature).
    flow_ul_per_kpa_s: Positive
    cure: CureKinetics
    max_c: Celsius | None = Field(default=None, description="decomposition/ageing limit")


class Leads(Strict):
    length_um: Positive = Field(description="free length of a lead, tip to bond")


class LeadLiftMaterials(Strict):
    solder: Solder  # of the joints made before: heat steps stay below its solidus
    component: ComponentPolymer
    adhesive: Adhesive
    encapsulant: Encapsulant
    leads: Leads


class UvRelease(StepBase):
    """Expose the connecting layer through the transparent support until ``dose_mj_cm2``."""

    type: Literal["uv_release"]
    irradiance_mw_cm2: Positive
    dose_mj_cm2: Positive


class HeatRelease(StepBase):
    """Heat the chuck (circulator) to ``temperature_c`` and hold ``time_s`` within tolerance."""

    type: Literal["heat_release"]
    temperature_c: Celsius
    time_s: PositiveSeconds
    tolerance_c: Annotated[float, Field(gt=0.0)] = 2.0
    cool_to_c: Celsius | None = Field(default=None, description="cool the chuck back after")


class LeadLiftStep(StepBase):
    """Move the support away through ``displacement_um``, bending the leads toward vertical."""

    type: Literal["lead_lift"]
    displacement_um: Positive
    speed_um_s: Positive
    accel_um_s2: Positive | None = None  # None: the stage's configured default
    force_limit_n: Positive
    hold_s: Seconds = 0.0
    tolerance_um: Positive = 5.0


class Encapsulate(StepBase):
    """Dispense encapsulant around the leads: a volume, or pressure × time; then let it flow in."""

    type: Literal["encapsulate"]
    pressure_kpa: Positive
    volume_ul: Positive | None = None
    time_s: PositiveSeconds | None = None
    flow_in_s: Seconds = 0.0


class Cure(StepBase):
    """Chuck temperature profile through the circulator until the estimated conversion."""

    type: Literal["cure"]
    segments: Annotated[list[Segment], Field(min_length=1)]
    conversion_target: Fraction
    tolerance_c: Annotated[float, Field(gt=0.0)] = 3.0
    cool_to_c: Celsius | None = None


class SupportRelease(StepBase):
    """Release the terminal ends from the support: by UV (irradiance, dose) or by heat."""

    type: Literal["support_release"]
    method: Literal["uv", "heat"]
    irradiance_mw_cm2: Positive | None = None
    dose_mj_cm2: Positive | None = None
    temperature_c: Celsius | None = None
    time_s: PositiveSeconds | None = None
    tolerance_c: Annotated[float, Field(gt=0.0)] = 2.0


LeadLiftRecipeStep = Annotated[
    UvRelease | HeatRelease | LeadLiftStep | Encapsulate | Cure | SupportRelease,
    Field(discriminator="type"),
]


class LeadLiftRecipe(Strict):
    kind: Literal["lead_lift"]
    name: Annotated[
        str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    ]
    description: str = ""
    materials: LeadLiftMaterials
    steps: Annotated[list[LeadLiftRecipeStep], Field(min_length=1)]

    def step(self, name: str) -> LeadLiftRecipeStep:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)


# ---- bump reflow (DESIGN.md "Bump reflow") -----------------------------------------------------


class SolderPaste(Strict):
    """The paste printed as strips on the contacts; its alloy is ``materials.solder``."""

    name: str
    metal_fraction: Fraction = 0.88  # by weight, from the datasheet


class Carrier(Strict):
    """What the chip sits on during bump reflow (no component): its temperature limit."""

    name: str
    max_c: Celsius


class BumpMaterials(Strict):
    solder: Solder
    paste: SolderPaste
    carrier: Carrier


BumpReflowStep = Annotated[
    ChuckStabilize | Purge | Reflow | Cool | Vent,
    Field(discriminator="type"),
]


class BumpReflowRecipe(Strict):
    kind: Literal["bump_reflow"]
    name: Annotated[
        str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    ]
    description: str = ""
    materials: BumpMaterials
    atmosphere: Atmosphere
    steps: Annotated[list[BumpReflowStep], Field(min_length=1)]

    def step(self, name: str) -> BumpReflowStep:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)


AnyRecipe = VacuumFilmBondRecipe | LeadLiftRecipe | BumpReflowRecipe
AnyStep = (
    ChuckStabilize
    | Purge
    | PumpDown
    | Reflow
    | Cool
    | SecurementRelease
    | Vent
    | UvRelease
    | HeatRelease
    | LeadLiftStep
    | Encapsulate
    | Cure
    | SupportRelease
)
Recipe = Annotated[AnyRecipe, Field(discriminator="kind")]


def component_max_c(recipe: AnyRecipe) -> float:
    """The highest average temperature the part under the chip may reach.

    The component's Tg − margin; for a bump reflow, the carrier's limit.
    """
    mats = recipe.materials
    if isinstance(mats, BumpMaterials):
        return mats.carrier.max_c
    return mats.component.tg_c - mats.component.tg_margin_c


def component_hard_c(recipe: AnyRecipe) -> float:
    """Where the part under the chip is damaged: the component's Tg, the carrier's limit."""
    mats = recipe.materials
    if isinstance(mats, BumpMaterials):
        return mats.carrier.max_c
    return mats.component.tg_c


def atmosphere_of(recipe: AnyRecipe) -> Atmosphere | None:
    return None if isinstance(recipe, LeadLiftRecipe) else recipe.atmosphere
