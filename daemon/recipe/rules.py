"""Rules a recipe must satisfy beyond its shape: physics, process order, equipment limits.

Run only on a recipe that parsed. Every problem is reported as (field path in TOML terms,
reason), and every rule runs even when an earlier one failed, so an engineer fixes a recipe
in one pass. Where a rule depends on a comparison with another field, the path names the
field the engineer most likely has to change and the reason names the other one.

A rule here refuses only what is certain to fail or to exceed the equipment: estimates from
the programmed profile are used as bounds (a controller never beats the programmed rate),
never as predictions of the measured result.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.config import Limits
from daemon.recipe.catalogue import STEP_TYPES
from daemon.recipe.model import (
    AnyRecipe,
    BumpMaterials,
    BumpReflowRecipe,
    ChuckStabilize,
    Cool,
    LeadLiftRecipe,
    PumpDown,
    Purge,
    Reflow,
    SecurementRelease,
    VacuumFilmBondRecipe,
    Vent,
)
from daemon.recipe.rules_common import Problem, at_step, num
from daemon.recipe.rules_lead_lift import check_lead_lift

# The legal ceiling on O2 partial pressure in the working space: 160 Torr.
O2_PARTIAL_LEGAL_MBAR = 160 * 1.333224

# Chip temperature assumed at the start of the reflow when the recipe has no chuck step to
# tell (the order rule reports that recipe anyway).
_AMBIENT_C = 25.0


@dataclass(frozen=True)
class _Order:
    """The process order of a recipe kind."""

    kind_text: str  # "a vacuum-film bond"
    types: tuple[str, ...]
    optional: frozenset[str]
    text: str

    @property
    def rank(self) -> dict[str, int]:
        return {t: r for r, t in enumerate(self.types)}

    @property
    def repeatable(self) -> frozenset[str]:
        """The types that may appear more than once (the step catalogue's ``repeatable``)."""
        return frozenset(t for t in self.types if STEP_TYPES[t].repeatable)


_VACUUM_FILM_ORDER = _Order(
    "a vacuum-film bond",
    ("chuck_stabilize", "purge", "pump_down", "reflow", "cool", "securement_release", "vent"),
    frozenset({"securement_release"}),
    "chuck_stabilize → purge (one or more) → pump_down → reflow → cool → "
    "securement_release (optional) → vent",
)
# Bump reflow melts the paste under nitrogen at about atmospheric pressure: no film is pumped
# down onto a component, so there is no pump-down.
_BUMP_ORDER = _Order(
    "a bump reflow",
    ("chuck_stabilize", "purge", "reflow", "cool", "vent"),
    frozenset(),
    "chuck_stabilize → purge (one or more) → reflow → cool → vent",
)
# Bump reflow: the last backfill leaves the working space at this pressure or above, so the
# paste melts in nitrogen at about atmospheric pressure (no film pressing on the paste).
BUMP_N2_MIN_MBAR = 800.0


def check_rules(recipe: AnyRecipe, limits: Limits) -> list[Problem]:
    """Every rule violation of ``recipe`` against physics, process order and ``limits``."""
    if isinstance(recipe, LeadLiftRecipe):
        return check_lead_lift(recipe, limits)
    order = _BUMP_ORDER if isinstance(recipe, BumpReflowRecipe) else _VACUUM_FILM_ORDER
    ctx = _Context(recipe)
    problems = [
        *_materials(recipe),
        *_atmosphere(recipe, limits),
        *_order(recipe, order),
        *_names(recipe, order),
    ]
    if isinstance(recipe, BumpReflowRecipe):
        problems += _bump(recipe, ctx)
    for i, step in enumerate(recipe.steps):
        if step.timeout_s > limits.step_timeout_max_s:
            problems.append(
                (
                    _at(i, "timeout_s"),
                    f"{_n(step.timeout_s)} s is above the equipment's longest step timeout "
                    f"{_n(limits.step_timeout_max_s)} s (limits.step_timeout_max_s)",
                )
            )
        if isinstance(step, ChuckStabilize):
            problems += _chuck(i, step, ctx, limits)
        elif isinstance(step, Purge):
            problems += _purge(i, step, ctx, limits)
        elif isinstance(step, PumpDown):
            problems += _pump_down(i, step, limits)
        elif isinstance(step, Reflow):
            problems += _reflow(i, step, ctx, limits)
        elif isinstance(step, Cool):
            problems += _cool(i, step, ctx, limits)
        elif isinstance(step, SecurementRelease):
            problems += _securement(i, step, ctx)
        elif isinstance(step, Vent):
            problems += _vent(i, step, ctx)
    problems += _run_duration(recipe, ctx, limits)
    return problems


class _Context:
    """The values several rules compare against, taken once from the recipe."""

    def __init__(self, recipe: VacuumFilmBondRecipe | BumpReflowRecipe) -> None:
        solder = recipe.materials.solder
        self.solder = solder.name
        self.solidus_c = solder.solidus_c
        self.liquidus_c = solder.liquidus_c
        mats = recipe.materials
        if isinstance(mats, BumpMaterials):
            self.component_max_c = mats.carrier.max_c
            self.part_limit_text = (
                f"the {mats.carrier.name} carrier's limit {_n(mats.carrier.max_c)} °C"
            )
        else:
            comp = mats.component
            self.component_max_c = comp.tg_c - comp.tg_margin_c
            self.part_limit_text = (
                f"Tg − margin = {_n(comp.tg_c)} − {_n(comp.tg_margin_c)} = "
                f"{_n(self.component_max_c)} °C of the {comp.polymer} component"
            )
        self.o2_max_ppm = recipe.atmosphere.o2_max_ppm
        chucks = [s for s in recipe.steps if isinstance(s, ChuckStabilize)]
        self.chuck_c: float | None = chucks[0].setpoint_c if chucks else None
        reflows = [s for s in recipe.steps if isinstance(s, Reflow)]
        self.reflow = reflows[0] if reflows else None
        cools = [s for s in recipe.steps if isinstance(s, Cool)]
        self.cool = cools[0] if cools else None
        pumps = [s for s in recipe.steps if isinstance(s, PumpDown)]
        self.pump_down_mbar = pumps[0].target_mbar if pumps else None

    @property
    def start_c(self) -> float:
        return self.chuck_c if self.chuck_c is not None else _AMBIENT_C


def _materials(recipe: VacuumFilmBondRecipe | BumpReflowRecipe) -> list[Problem]:
    solder = recipe.materials.solder
    if solder.solidus_c > solder.liquidus_c:
        return [
            (
                "materials.solder.solidus_c",
                f"solidus {_n(solder.solidus_c)} °C is above liquidus {_n(solder.liquidus_c)} °C: "
                "an alloy starts melting at its solidus, so the solidus cannot be the higher one",
            )
        ]
    return []


def _atmosphere(recipe: VacuumFilmBondRecipe | BumpReflowRecipe, limits: Limits) -> list[Problem]:
    atm = recipe.atmosphere
    problems: list[Problem] = []
    if atm.o2_max_ppm > limits.o2_max_ppm_ceiling:
        problems.append(
            (
                "atmosphere.o2_max_ppm",
                f"{_n(atm.o2_max_ppm)} ppm is above the equipment's O2 ceiling "
                f"{_n(limits.o2_max_ppm_ceiling)} ppm (limits.o2_max_ppm_ceiling)",
            )
        )
    if atm.o2_max_partial_mbar >= O2_PARTIAL_LEGAL_MBAR:
        problems.append(
            (
                "atmosphere.o2_max_partial_mbar",
                f"{_n(atm.o2_max_partial_mbar)} mbar is not below the legal limit of the "
                f"process, 160 Torr ({O2_PARTIAL_LEGAL_MBAR:.1f} mbar) of O2",
            )
        )
    return problems


def _order(recipe: VacuumFilmBondRecipe | BumpReflowRecipe, order: _Order) -> list[Problem]:
    problems: list[Problem] = []
    first_at: dict[str, int] = {}
    latest: tuple[int, int] | None = None  # (rank, index) of the furthest step so far
    ranks = order.rank
    for i, step in enumerate(recipe.steps):
        rank = ranks[step.type]
        if step.type in first_at and step.type not in order.repeatable:
            how_many = "at most one" if step.type in order.optional else "exactly one"
            problems.append(
                (
                    _at(i, "type"),
                    f"a second '{step.type}' step (the first is steps[{first_at[step.type]}]); "
                    f"{order.kind_text} has {how_many}",
                )
            )
        elif latest is not None and rank < latest[0]:
            before = recipe.steps[latest[1]].type
            problems.append(
                (
                    _at(i, "type"),
                    f"'{step.type}' cannot come after '{before}' (steps[{latest[1]}]); "
                    f"the process order is {order.text}",
                )
            )
        first_at.setdefault(step.type, i)
        if latest is None or rank >= latest[0]:
            latest = (rank, i)
    for type_ in order.types:
        if type_ not in first_at and type_ not in order.optional:
            problems.append(("steps", f"no '{type_}' step; {order.kind_text} runs {order.text}"))
    return problems


def _names(recipe: VacuumFilmBondRecipe | BumpReflowRecipe, order: _Order) -> list[Problem]:
    problems: list[Problem] = []
    first_at: dict[str, int] = {}
    for i, step in enumerate(recipe.steps):
        if step.name not in first_at:
            first_at[step.name] = i
            continue
        # A step without a name is named after its type, so repeated purges collide unless
        # the engineer names them; say so rather than leave them puzzling over a name
        # they never wrote. An unnamed repeat of a once-only step is the order rule's to
        # report, twice would be noise.
        unnamed = step.name == step.type  # the model names an unnamed step after its type
        if unnamed and step.type not in order.repeatable:
            continue
        hint = (
            f"; this step has no name of its own, so it is called '{step.type}': give repeated "
            f'steps distinct names, e.g. name = "{step.type}-{i}"'
            if unnamed
            else ""
        )
        problems.append(
            (
                _at(i, "name"),
                f"step name '{step.name}' is already used by steps[{first_at[step.name]}]; "
                f"names identify steps in records and reports and must be unique{hint}",
            )
        )
    return problems


def _chuck(i: int, step: ChuckStabilize, ctx: _Context, limits: Limits) -> list[Problem]:
    problems: list[Problem] = []
    lo, hi = limits.chuck_setpoint_min_c, limits.chuck_setpoint_max_c
    if not lo <= step.setpoint_c <= hi:
        problems.append(
            (
                _at(i, "setpoint_c"),
                f"{_n(step.setpoint_c)} °C is outside the chiller's range {_n(lo)}–{_n(hi)} °C "
                "(limits.chuck_setpoint_min_c / limits.chuck_setpoint_max_c)",
            )
        )
    warmest = step.setpoint_c + step.tolerance_c
    if warmest >= ctx.component_max_c:
        problems.append(
            (
                _at(i, "setpoint_c"),
                f"the chuck may run at up to {_n(warmest)} °C (setpoint + tolerance), not below "
                f"{ctx.part_limit_text}; the chuck is the heat sink of the part on it and "
                "must stay clearly colder",
            )
        )
    if step.settle_s >= step.timeout_s:
        problems.append(
            (
                _at(i, "settle_s"),
                f"settling for {_n(step.settle_s)} s cannot finish within the step timeout "
                f"{_n(step.timeout_s)} s",
            )
        )
    return problems


def _purge(i: int, step: Purge, ctx: _Context, limits: Limits) -> list[Problem]:
    problems: list[Problem] = []
    if step.cycles > limits.purge_cycles_max:
        problems.append(
            (
                _at(i, "cycles"),
                f"{step.cycles} cycles is more than the equipment allows, "
                f"{limits.purge_cycles_max} (limits.purge_cycles_max)",
            )
        )
    if step.pump_to_mbar < limits.pressure_min_mbar:
        problems.append(
            (
                _at(i, "pump_to_mbar"),
                f"{_n(step.pump_to_mbar)} mbar is below what the pump can reach, "
                f"{_n(limits.pressure_min_mbar)} mbar (limits.pressure_min_mbar)",
            )
        )
    if step.backfill_to_mbar <= step.pump_to_mbar:
        problems.append(
            (
                _at(i, "backfill_to_mbar"),
                f"backfill to {_n(step.backfill_to_mbar)} mbar is not above the pump-to pressure "
                f"{_n(step.pump_to_mbar)} mbar: no nitrogen would be let in, so the cycle "
                "would not dilute the oxygen",
            )
        )
    if step.o2_target_ppm > ctx.o2_max_ppm:
        problems.append(
            (
                _at(i, "o2_target_ppm"),
                f"target {_n(step.o2_target_ppm)} ppm is above the recipe's O2 limit "
                f"atmosphere.o2_max_ppm = {_n(ctx.o2_max_ppm)} ppm: the purge would end with "
                "the atmosphere already out of limit",
            )
        )
    return problems


def _pump_down(i: int, step: PumpDown, limits: Limits) -> list[Problem]:
    problems: list[Problem] = []
    if step.target_mbar < limits.pressure_min_mbar:
        problems.append(
            (
                _at(i, "target_mbar"),
                f"{_n(step.target_mbar)} mbar is below what the pump can reach, "
                f"{_n(limits.pressure_min_mbar)} mbar (limits.pressure_min_mbar)",
            )
        )
    if step.leak_check is not None and step.leak_check.hold_s >= step.timeout_s:
        problems.append(
            (
                _at(i, "leak_check", "hold_s"),
                f"the leak-check hold of {_n(step.leak_check.hold_s)} s cannot finish within "
                f"the step timeout {_n(step.timeout_s)} s",
            )
        )
    return problems


def _reflow(i: int, step: Reflow, ctx: _Context, limits: Limits) -> list[Problem]:
    problems: list[Problem] = []
    peak, tal = step.peak_window_c, step.time_above_liquidus_s
    peak_ok = peak.min <= peak.max
    if not peak_ok:
        problems.append((_at(i, "peak_window_c", "min"), _inverted(peak.min, peak.max, "°C")))
    if tal.min > tal.max:
        problems.append((_at(i, "time_above_liquidus_s", "min"), _inverted(tal.min, tal.max, "s")))
    if tal.min < 0:
        problems.append(
            (
                _at(i, "time_above_liquidus_s", "min"),
                f"a duration cannot be negative: {_n(tal.min)} s",
            )
        )
    if tal.max <= 0:
        problems.append(
            (
                _at(i, "time_above_liquidus_s", "max"),
                f"must be above 0 s ({_n(tal.max)} s): the solder has to be molten to bond",
            )
        )
    if peak.min <= ctx.liquidus_c:
        problems.append(
            (
                _at(i, "peak_window_c", "min"),
                f"the peak window starts at {_n(peak.min)} °C, not above the liquidus of "
                f"{ctx.solder} ({_n(ctx.liquidus_c)} °C): the solder might never melt fully",
            )
        )
    if peak.max > limits.chip_max_c:
        problems.append(
            (
                _at(i, "peak_window_c", "max"),
                f"{_n(peak.max)} °C is above the equipment's chip temperature limit "
                f"{_n(limits.chip_max_c)} °C (limits.chip_max_c)",
            )
        )

    top = max(range(len(step.segments)), key=lambda j: step.segments[j].to_c)
    top_c = step.segments[top].to_c
    if peak_ok and not peak.min <= top_c <= peak.max:
        problems.append(
            (
                _at(i, "segments", top, "to_c"),
                f"the profile's highest setpoint {_n(top_c)} °C is outside the peak window "
                f"{_n(peak.min)}–{_n(peak.max)} °C",
            )
        )

    for j, seg in enumerate(step.segments):
        if seg.ramp_c_per_s > limits.ramp_max_c_per_s:
            problems.append(
                (
                    _at(i, "segments", j, "ramp_c_per_s"),
                    f"{_n(seg.ramp_c_per_s)} °C/s is above the equipment's ramp limit "
                    f"{_n(limits.ramp_max_c_per_s)} °C/s (limits.ramp_max_c_per_s)",
                )
            )
        elif seg.ramp_c_per_s > step.max_ramp_c_per_s:
            problems.append(
                (
                    _at(i, "segments", j, "ramp_c_per_s"),
                    f"{_n(seg.ramp_c_per_s)} °C/s is faster than this step's own "
                    f"max_ramp_c_per_s ({_n(step.max_ramp_c_per_s)} °C/s): the measured ramp "
                    "would break the recipe's limit by following the recipe's own profile",
                )
            )
    if step.max_ramp_c_per_s > limits.ramp_max_c_per_s:
        problems.append(
            (
                _at(i, "max_ramp_c_per_s"),
                f"{_n(step.max_ramp_c_per_s)} °C/s is above the equipment's ramp limit "
                f"{_n(limits.ramp_max_c_per_s)} °C/s (limits.ramp_max_c_per_s)",
            )
        )

    duration, tal_shortest = _profile_bounds(step, ctx)
    if duration >= step.timeout_s:
        problems.append(
            (
                _at(i, "timeout_s"),
                f"the programmed profile alone takes {_n(round(duration, 1))} s (ramps from the "
                f"chuck setpoint {_n(ctx.start_c)} °C plus holds), not less than the step "
                f"timeout {_n(step.timeout_s)} s",
            )
        )
    if tal_shortest > tal.max:
        problems.append(
            (
                _at(i, "time_above_liquidus_s", "max"),
                f"the programmed profile keeps the solder above liquidus for at least "
                f"{_n(round(tal_shortest, 1))} s (ramps, holds, and cooling to "
                f"{_n(ctx.liquidus_c)} °C at the cool step's maximum rate), more than the "
                f"window's max {_n(tal.max)} s",
            )
        )
    return problems


def _profile_bounds(step: Reflow, ctx: _Context) -> tuple[float, float]:
    """(programmed duration, shortest possible time above liquidus) of a reflow profile.

    Both are lower bounds: a real chip lags its setpoint, it never leads it, and it cannot
    cool faster than the cool step allows.
    """
    liq = ctx.liquidus_c
    temp = ctx.start_c
    duration = 0.0
    above = 0.0
    for seg in step.segments:
        hi, lo = max(temp, seg.to_c), min(temp, seg.to_c)
        duration += (hi - lo) / seg.ramp_c_per_s + seg.hold_s
        if hi > liq:
            above += (hi - max(lo, liq)) / seg.ramp_c_per_s
        if seg.to_c > liq:
            above += seg.hold_s
        temp = seg.to_c
    if ctx.cool is not None and temp > liq:
        above += (temp - liq) / ctx.cool.max_rate_c_per_s
    return duration, above


def _cool(i: int, step: Cool, ctx: _Context, limits: Limits) -> list[Problem]:
    problems: list[Problem] = []
    if step.max_rate_c_per_s > limits.cool_rate_max_c_per_s:
        problems.append(
            (
                _at(i, "max_rate_c_per_s"),
                f"{_n(step.max_rate_c_per_s)} °C/s is above the equipment's cooling-rate limit "
                f"{_n(limits.cool_rate_max_c_per_s)} °C/s (limits.cool_rate_max_c_per_s)",
            )
        )
    if step.to_c >= ctx.solidus_c:
        problems.append(
            (
                _at(i, "to_c"),
                f"{_n(step.to_c)} °C is not below the solidus of {ctx.solder} "
                f"({_n(ctx.solidus_c)} °C): the joints would still be partly molten when the "
                "cool step ends",
            )
        )
    problems += _above_chuck(i, "to_c", step.to_c, ctx)
    if ctx.reflow is not None:
        peak_c = max(s.to_c for s in ctx.reflow.segments)
        if peak_c > step.to_c:
            shortest = (peak_c - step.to_c) / step.max_rate_c_per_s
            if shortest >= step.timeout_s:
                problems.append(
                    (
                        _at(i, "timeout_s"),
                        f"cooling from {_n(peak_c)} °C to {_n(step.to_c)} °C at "
                        f"{_n(step.max_rate_c_per_s)} °C/s takes at least "
                        f"{_n(round(shortest, 1))} s, not less than the step timeout "
                        f"{_n(step.timeout_s)} s",
                    )
                )
    return problems


def _securement(i: int, step: SecurementRelease, ctx: _Context) -> list[Problem]:
    problems: list[Problem] = []
    hottest = step.temperature_c + step.tolerance_c
    if hottest >= ctx.solidus_c:
        problems.append(
            (
                _at(i, "temperature_c"),
                f"the release may reach {_n(hottest)} °C (temperature + tolerance), not below "
                f"the solidus of {ctx.solder} ({_n(ctx.solidus_c)} °C): the joints would "
                "start to remelt",
            )
        )
    problems += _above_chuck(i, "temperature_c", step.temperature_c, ctx)
    if step.time_s >= step.timeout_s:
        problems.append(
            (
                _at(i, "time_s"),
                f"holding {_n(step.time_s)} s cannot finish within the step timeout "
                f"{_n(step.timeout_s)} s",
            )
        )
    return problems


def _vent(i: int, step: Vent, ctx: _Context) -> list[Problem]:
    if ctx.pump_down_mbar is not None and step.to_mbar <= ctx.pump_down_mbar:
        return [
            (
                _at(i, "to_mbar"),
                f"venting to {_n(step.to_mbar)} mbar is not above the pump-down pressure "
                f"{_n(ctx.pump_down_mbar)} mbar: the film would stay clamped",
            )
        ]
    return []


def _run_duration(
    recipe: VacuumFilmBondRecipe | BumpReflowRecipe, ctx: _Context, limits: Limits
) -> list[Problem]:
    # Only the parts whose length the recipe fixes: the rest depends on the plant.
    least = 0.0
    for step in recipe.steps:
        if isinstance(step, ChuckStabilize):
            least += step.settle_s
        elif isinstance(step, PumpDown) and step.leak_check is not None:
            least += step.leak_check.hold_s
        elif isinstance(step, Reflow):
            least += _profile_bounds(step, ctx)[0]
        elif isinstance(step, SecurementRelease):
            least += step.time_s
    if least > limits.run_duration_max_s:
        return [
            (
                "steps",
                f"the programmed holds, settles and profile alone take {_n(round(least))} s, "
                f"longer than the equipment's longest run {_n(limits.run_duration_max_s)} s "
                "(limits.run_duration_max_s)",
            )
        ]
    return []


def _bump(recipe: BumpReflowRecipe, ctx: _Context) -> list[Problem]:
    problems: list[Problem] = []
    purges = [(i, s) for i, s in enumerate(recipe.steps) if isinstance(s, Purge)]
    if purges:
        i, last = purges[-1]
        if last.backfill_to_mbar < BUMP_N2_MIN_MBAR:
            problems.append(
                (
                    _at(i, "backfill_to_mbar"),
                    f"the last purge leaves {_n(last.backfill_to_mbar)} mbar of nitrogen; a bump "
                    f"reflow melts the paste in nitrogen at ≥ {_n(BUMP_N2_MIN_MBAR)} mbar "
                    "(the reflow follows the purge without pumping down)",
                )
            )
    for i, step in enumerate(recipe.steps):
        if isinstance(step, Reflow) and step.time_above_liquidus_s.min <= 0:
            problems.append(
                (
                    _at(i, "time_above_liquidus_s", "min"),
                    f"must be above 0 s ({_n(step.time_above_liquidus_s.min)} s): the paste "
                    "strips pull into masses only while molten, so a bump reflow needs a "
                    "minimum time above liquidus",
                )
            )
    return problems


def _above_chuck(i: int, field: str, temp_c: float, ctx: _Context) -> list[Problem]:
    if ctx.chuck_c is not None and temp_c <= ctx.chuck_c:
        return [
            (
                _at(i, field),
                f"{_n(temp_c)} °C is not above the chuck setpoint {_n(ctx.chuck_c)} °C: the "
                "chuck is the coldest part of the stack, the chips cannot get below it",
            )
        ]
    return []


def _inverted(lo: float, hi: float, unit: str) -> str:
    return f"the window is inverted: min {_n(lo)} {unit} is above max {_n(hi)} {unit}"


_at = at_step
_n = num
