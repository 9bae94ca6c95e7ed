"""Process conformance: did the recorded trace prove that each process condition held?

Every check is judged on the recorded samples, never on what the controllers intended. A
sample that lacks the reading a check needs, inside the span the check covers, fails that
check: not measured is not proof. A check whose span never occurred (the run stopped before
it) fails with "not reached"; the caller decides what that means for the run's result.

Phases come from each sample's ``step`` via the recipe and the step catalogue
(daemon/recipe/catalogue.py): heating is a step that ``heats`` (``reflow``,
``securement_release``); cooling one that ``cools`` (``cool``).

``evaluate_reflow`` (a vacuum-film bond or a bump reflow; every kind through
daemon/judge/evaluate.py) is pure and takes ~0.1-0.2 s for a 10 000-sample run: call it through
``asyncio.to_thread`` rather than on the event loop that runs the controllers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from daemon.judge.series import (
    RATE_WINDOW_S,
    Mask,
    Series,
    Trace,
    extreme,
    missing_text,
    time_above,
    window_text,
)
from daemon.judge.types import Check, Metrics, StepOutcome
from daemon.recipe.model import (
    O2_PPM_MIN_PRESSURE_MBAR,
    BumpMaterials,
    BumpReflowRecipe,
    Cool,
    Reflow,
    VacuumFilmBondRecipe,
    Window,
    component_hard_c,
    component_max_c,
)
from daemon.store.trace import Sample

# "Below atmospheric" as a number. The film is pressed onto the chips by the difference to
# ambient, and a torn film lets the space rise to ambient; so the limit must sit below any
# sea-level barometric pressure (storms reach ~950 mbar) less the gauge's error near
# atmosphere (a few % of reading), so that a tear always fails. A sealed, pumped space reads
# a few mbar, so the margin costs no false failure. Sites far above sea level (ambient below
# ~950 mbar) must lower it: see ``evaluate_reflow(vacuum_limit_mbar=...)``.
VACUUM_LIMIT_MBAR: Final = 900.0


def _max_limit_check(
    tr: Trace,
    name: str,
    condition: str,
    span: Mask,
    values: Series,
    *,
    limit: float,
    inclusive: bool,
    what: str,
    unit: str,
    span_text: str,
) -> Check:
    """A check that a series stays under a limit over a span, judged on its maximum."""
    ext = extreme(span, values)
    if ext.seen == 0:
        return Check(name, False, None, limit, f"not reached: no sample {span_text}", condition)
    missing = missing_text(tr, ext.missing, ext.first_missing, what) if ext.missing else ""
    if ext.value is None:
        return Check(name, False, None, limit, missing, condition)
    held = ext.value <= limit if inclusive else ext.value < limit
    rel = "≤" if inclusive else "<"
    detail = (
        f"max {what} {ext.value:.4g} {unit} at {tr.where(ext.at)} "
        f"(must stay {rel} {limit:.4g} {unit})"
    )
    if not held:
        detail += ": limit exceeded"
    if missing:
        detail += f"; {missing}"
    return Check(name, held and not ext.missing, ext.value, limit, detail, condition)


def _component_check(tr: Trace) -> Check:
    mats = tr.recipe.materials
    limit = component_max_c(tr.recipe)
    if isinstance(mats, BumpMaterials):
        name = "carrier_below_limit"
        condition = (
            f"the {mats.carrier.name} carrier under the chip stayed ≤ {limit:g} °C while "
            "heating and cooling"
        )
    else:
        comp = mats.component
        name = "component_below_tg"
        condition = (
            f"the component's average temperature stayed at least {comp.tg_margin_c:g} °C "
            f"below the {comp.polymer} glass transition ({comp.tg_c:g} °C) while heating and "
            "cooling"
        )
    return _max_limit_check(
        tr,
        name,
        condition,
        tr.mask(lambda i: tr.heating[i] or tr.cooling[i]),
        tr.component,
        limit=limit,
        inclusive=True,
        what="component average",
        unit="°C",
        span_text="in a heating or cooling step",
    )


def _chuck_check(tr: Trace) -> Check:
    tg = component_hard_c(tr.recipe)
    return _max_limit_check(
        tr,
        "chuck_below_tg",
        f"the chuck under the part stayed below the part's limit ({tg:g} °C: the polymer's "
        "Tg, or the carrier's limit) all run",
        [True] * len(tr.samples),
        tr.chuck,
        limit=tg,
        inclusive=False,
        what="chuck",
        unit="°C",
        span_text="recorded",
    )


def chip_hotter_check(tr: Trace) -> Check:
    solidus = tr.recipe.materials.solder.solidus_c
    name = "chip_hotter_than_component"
    condition = (
        f"the chips were hotter than the component whenever the solder was molten "
        f"(chip ≥ solidus {solidus:g} °C), so the bonds formed from the chip side"
    )
    worst: float | None = None
    worst_at = -1
    molten = missing = 0
    first_missing = -1
    for i, chip in enumerate(tr.chip):
        if chip is None:
            # Without the chip reading nobody knows whether the solder was molten; only where
            # molten solder is possible (heating and cooling) is that a gap in the proof.
            gap = tr.heating[i] or tr.cooling[i]
        elif chip < solidus:
            continue
        else:
            molten += 1
            comp = tr.component[i]
            gap = comp is None
            if comp is not None and (worst is None or chip - comp < worst):
                worst, worst_at = chip - comp, i
        if gap:
            missing += 1
            first_missing = first_missing if first_missing >= 0 else i
    if molten == 0 and missing == 0:
        detail = f"not reached: the chip never reached solidus ({solidus:g} °C)"
        return Check(name, False, None, 0.0, detail, condition)
    parts: list[str] = []
    if worst is not None:
        parts.append(
            f"min chip − component {worst:.2f} °C at {tr.where(worst_at)}"
            + ("" if worst > 0.0 else ": the component was as hot as or hotter than the chip")
        )
    if missing:
        parts.append(missing_text(tr, missing, first_missing, "chip or component"))
    ok = worst is not None and worst > 0.0 and missing == 0
    return Check(name, ok, worst, 0.0, "; ".join(parts), condition)


def _vacuum_check(tr: Trace, limit: float) -> Check:
    vacuum_cools = {s.name for s in tr.recipe.steps if isinstance(s, Cool) and s.keep_vacuum}
    in_vacuum_cool = tr.in_steps(vacuum_cools)
    also = " and while cooling" if vacuum_cools else ""
    return _max_limit_check(
        tr,
        "vacuum_held",
        "the working space stayed below atmospheric pressure, so the film pressed the chips "
        f"onto the component, while heating{also}",
        tr.mask(lambda i: tr.heating[i] or in_vacuum_cool[i]),
        tr.pressure,
        limit=limit,
        inclusive=False,
        what="pressure",
        unit="mbar",
        span_text="in a heating step" + (" or a vacuum cool step" if vacuum_cools else ""),
    )


def _o2_span(tr: Trace, values: Series, *, ppm: bool) -> Mask:
    """Where an O2 series is judged: from the start of pump-down to the end of heating.

    ``ppm``: the concentration, only where the space held ≥ O2_PPM_MIN_PRESSURE_MBAR.
    """
    heat_ts = [t for t, h in zip(tr.t, tr.heating, strict=True) if h]
    pump_ts = [t for t, p in zip(tr.t, tr.phase, strict=True) if p == "pump_down"]
    # Nothing heated: the atmosphere never mattered for a bond, and the checks say "not
    # reached" rather than judging pump-down alone.
    start = min(pump_ts or heat_ts) if heat_ts else math.inf
    end = max(heat_ts) if heat_ts else -math.inf
    # Before heating the analyzer may legitimately not read (it settles while the space
    # is pumped), so a gap there is skipped; during heating a gap fails the check.
    span = [
        start <= t <= end and (heating or v is not None)
        for t, heating, v in zip(tr.t, tr.heating, values, strict=True)
    ]
    if ppm:
        # A concentration describes the purged gas only while there is some: under the
        # film's vacuum the few mbar left are dominated by whatever leaks in, and the
        # partial-pressure check is the proof there (ADR 0004).
        span = [
            inside and p is not None and p >= O2_PPM_MIN_PRESSURE_MBAR
            for inside, p in zip(span, tr.pressure, strict=True)
        ]
    return span


def _o2_checks(tr: Trace) -> list[Check]:
    """O2 from the start of pump-down to the end of the last heating step."""
    atm = tr.recipe.atmosphere
    checks = []
    for name, what, unit, limit, values, condition in (
        (
            "o2_ppm",
            "O2",
            "ppm",
            atm.o2_max_ppm,
            tr.o2,
            f"oxygen in the working space stayed ≤ {atm.o2_max_ppm:g} ppm from pump-down "
            f"through the end of heating, wherever the space held ≥ {O2_PPM_MIN_PRESSURE_MBAR:g} "
            "mbar of gas, so the fluxless solder could wet",
        ),
        (
            "o2_partial_pressure",
            "O2 partial pressure",
            "mbar",
            atm.o2_max_partial_mbar,
            tr.o2_partial,
            f"the O2 partial pressure stayed ≤ {atm.o2_max_partial_mbar:g} mbar from "
            "pump-down through the end of heating",
        ),
    ):
        checks.append(
            _max_limit_check(
                tr,
                name,
                condition,
                _o2_span(tr, values, ppm=name == "o2_ppm"),
                values,
                limit=limit,
                inclusive=True,
                what=what,
                unit=unit,
                span_text="in a heating step",
            )
        )
    return checks


def _purge_check(tr: Trace, steps: Sequence[StepOutcome]) -> Check:
    name = "purge_before_pump_down"
    condition = "the working space was purged with nitrogen before it was pumped down"
    limit = "purge completed before pump_down started"

    def fail(detail: str) -> Check:
        return Check(name, False, None, limit, detail, condition)

    if not any(s.type == "purge" for s in tr.recipe.steps):
        return fail("the recipe has no purge step")
    pump = next((o for o in steps if o.type == "pump_down"), None)
    if pump is None:
        return fail("not reached: pump_down never started")
    at = f"pump_down {pump.name!r} started at t={pump.started_t_s:.1f} s"
    before = [o for o in steps if o.type == "purge" and o.started_t_s <= pump.started_t_s]
    if not before:
        return fail(f"no purge ran before {at}")
    for o in before:
        if o.result != "completed":
            because = f" ({o.detail})" if o.detail else ""
            return fail(f"purge {o.name!r} ended {o.result}{because}; {at}")
        if o.ended_t_s is None or o.ended_t_s > pump.started_t_s:
            return fail(f"purge {o.name!r} had not ended when {at}")
    last = max(before, key=lambda o: o.ended_t_s or 0.0)
    detail = f"purge {last.name!r} completed at t={last.ended_t_s or 0.0:.1f} s; {at}"
    return Check(name, True, None, limit, detail, condition)


def _reflow_spans(tr: Trace) -> list[tuple[Reflow, Mask, str]]:
    """Each reflow step's excursion: from its start until the next reflow step starts.

    The excursion goes on past the step itself (the chip is still above liquidus early in
    cooling), so peak and time above liquidus are measured over it. With one reflow step the
    check names are plain; with several each carries ``@<step name>``.
    """
    reflows = [s for s in tr.recipe.steps if isinstance(s, Reflow)]
    starts = [
        next((t for t, s in zip(tr.t, tr.samples, strict=True) if s.step == r.name), None)
        for r in reflows
    ]
    out = []
    for i, r in enumerate(reflows):
        start = starts[i]
        end = min((t for t in starts[i + 1 :] if t is not None), default=math.inf)
        span = [start is not None and start <= t < end for t in tr.t]
        out.append((r, span, f"@{r.name}" if len(reflows) > 1 else ""))
    return out


def _window_check(
    name: str,
    condition: str,
    value: float,
    *,
    window: Window,
    text: str,
    missing: str,
    below: str,
    above: str,
) -> Check:
    lo, hi = window.min, window.max
    held = lo <= value <= hi
    detail = text
    if value < lo:
        detail += f": {below}"
    elif value > hi:
        detail += f": {above}"
    if missing:
        detail += f"; {missing}"
    return Check(name, held and not missing, value, window_text(lo, hi), detail, condition)


def reflow_checks(tr: Trace) -> list[Check]:
    liquidus = tr.recipe.materials.solder.liquidus_c
    checks: list[Check] = []
    for r, span, suffix in _reflow_spans(tr):
        ext = extreme(span, tr.chip)
        missing = (
            missing_text(tr, ext.missing, ext.first_missing, tr.chip_channel) if ext.missing else ""
        )
        peak, tal = r.peak_window_c, r.time_above_liquidus_s
        peak_cond = (
            f"the chip's peak temperature in reflow {r.name!r} was within "
            f"{window_text(peak.min, peak.max)} °C"
        )
        tal_cond = (
            f"the chip spent {window_text(tal.min, tal.max)} s at or above the solder liquidus "
            f"({liquidus:g} °C) in reflow {r.name!r}"
        )
        if ext.value is None:
            why = missing or f"not reached: reflow {r.name!r} never ran"
            checks.append(
                Check(
                    f"peak_in_window{suffix}",
                    False,
                    None,
                    window_text(peak.min, peak.max),
                    why,
                    peak_cond,
                )
            )
            checks.append(
                Check(
                    f"time_above_liquidus{suffix}",
                    False,
                    None,
                    window_text(tal.min, tal.max),
                    why,
                    tal_cond,
                )
            )
        else:
            checks.append(
                _window_check(
                    f"peak_in_window{suffix}",
                    peak_cond,
                    ext.value,
                    window=peak,
                    text=f"peak {ext.value:.1f} °C at {tr.where(ext.at)} "
                    f"(window {window_text(peak.min, peak.max)} °C)",
                    missing=missing,
                    below="below the window",
                    above="above the window",
                )
            )
            above_s = time_above(tr.t, tr.chip, span, liquidus)
            checks.append(
                _window_check(
                    f"time_above_liquidus{suffix}",
                    tal_cond,
                    above_s,
                    window=tal,
                    text=f"{above_s:.1f} s at or above {liquidus:g} °C "
                    f"(window {window_text(tal.min, tal.max)} s)",
                    missing=missing,
                    below="too short",
                    above="too long",
                )
            )
        checks.append(
            _rate_check(
                tr,
                f"heating_ramp_rate{suffix}",
                f"the chip heated no faster than {r.max_ramp_c_per_s:g} °C/s in reflow {r.name!r}",
                tr.in_steps({r.name}),
                r.max_ramp_c_per_s,
                heating=True,
                step_text=f"reflow {r.name!r}",
            )
        )
    return checks


def cool_checks(tr: Trace) -> list[Check]:
    cools = [s for s in tr.recipe.steps if isinstance(s, Cool)]
    return [
        _rate_check(
            tr,
            "cooling_rate" + (f"@{k.name}" if len(cools) > 1 else ""),
            f"the chip cooled no faster than {k.max_rate_c_per_s:g} °C/s in cool step {k.name!r}",
            tr.in_steps({k.name}),
            k.max_rate_c_per_s,
            heating=False,
            step_text=f"cool step {k.name!r}",
        )
        for k in cools
    ]


def _rate_check(
    tr: Trace,
    name: str,
    condition: str,
    span: Mask,
    limit: float,
    *,
    heating: bool,
    step_text: str,
) -> Check:
    sign = 1.0 if heating else -1.0
    signed: Series = [None if r is None else sign * r for r in tr.rate]
    ext = extreme(span, signed)
    verb = "heating" if heating else "cooling"
    if ext.seen == 0:
        return Check(name, False, None, limit, f"not reached: {step_text} never ran", condition)
    if ext.value is None:
        detail = (
            f"no {verb} rate measurable in {step_text}: too few valid "
            f"{tr.chip_channel} readings in {ext.seen} sample(s)"
        )
        return Check(name, False, None, limit, detail, condition)
    # A step that only ever moved the other way has a worst rate ≤ 0: reported as 0.
    worst = max(ext.value, 0.0)
    held = worst <= limit
    detail = (
        f"max {verb} rate {worst:.2f} °C/s (least-squares over {RATE_WINDOW_S:g} s) at "
        f"{tr.where(ext.at)} (max allowed {limit:g} °C/s)"
    ) + ("" if held else ": too fast")
    return Check(name, held, worst, limit, detail, condition)


# ---------------------------------------------------------------------------- entry point


def _metrics(tr: Trace, steps: Sequence[StepOutcome]) -> Metrics:
    everywhere = [True] * len(tr.samples)

    def max_rate(span: Mask, sign: float) -> float | None:
        vals = [
            sign * r for r, inside in zip(tr.rate, span, strict=True) if inside and r is not None
        ]
        return max(0.0, *vals) if vals else None

    starts = tr.t[:1] + [o.started_t_s for o in steps]
    ends = tr.t[-1:] + [o.ended_t_s for o in steps if o.ended_t_s is not None]
    liquidus = tr.recipe.materials.solder.liquidus_c
    return {
        "peak_c": extreme(everywhere, tr.chip).value,
        "time_above_liquidus_s": (
            time_above(tr.t, tr.chip, everywhere, liquidus) if tr.samples else None
        ),
        "max_component_c": extreme(everywhere, tr.component).value,
        "max_chuck_c": extreme(everywhere, tr.chuck).value,
        "min_pressure_mbar": extreme(everywhere, tr.pressure, highest=False).value,
        # As judged by the o2_ppm check: under vacuum (< O2_PPM_MIN_PRESSURE_MBAR) a
        # concentration is not meaningful (202834 "ppm" of a few mbar of leaked-in air), and
        # the partial pressure is what acts on the solder.
        "max_o2_ppm": extreme(_o2_span(tr, tr.o2, ppm=True), tr.o2).value,
        "max_o2_partial_mbar": extreme(_o2_span(tr, tr.o2_partial, ppm=False), tr.o2_partial).value,
        "max_ramp_c_per_s": max_rate(tr.heating, 1.0),
        "max_cool_rate_c_per_s": max_rate(tr.cooling, -1.0),
        "cycle_time_s": max(ends) - min(starts) if starts and ends else None,
    }


def evaluate_reflow(
    recipe: VacuumFilmBondRecipe | BumpReflowRecipe,
    samples: Sequence[Sample],
    steps: Sequence[StepOutcome],
    *,
    vacuum_limit_mbar: float = VACUUM_LIMIT_MBAR,
    trace: Trace | None = None,
) -> tuple[list[Check], Metrics]:
    """Judge the recorded run against the recipe's process conditions.

    ``samples`` are the run's trace in time order (as recorded); ``steps`` the outcomes of
    the steps that started, in order. Returns every check, passed or not, and the metrics.
    ``trace``: the samples' ``Trace`` when the caller has built it (a panel's judgement
    shares it with its sites).
    """
    if trace is not None and trace.samples is not samples:
        raise ValueError("trace: built from other samples than the ones judged")
    tr = Trace(recipe, samples) if trace is None else trace
    if isinstance(recipe, BumpReflowRecipe):
        # No component and no film: the chip sits on a carrier in N2 at about atmosphere.
        bump = [
            _component_check(tr),
            _chuck_check(tr),
            *_o2_checks(tr),
            *reflow_checks(tr),
            *cool_checks(tr),
        ]
        return bump, _metrics(tr, steps)
    checks = [
        _component_check(tr),
        _chuck_check(tr),
        chip_hotter_check(tr),
        _vacuum_check(tr, vacuum_limit_mbar),
        *_o2_checks(tr),
        _purge_check(tr, steps),
        *reflow_checks(tr),
        *cool_checks(tr),
    ]
    return checks, _metrics(tr, steps)
