"""The panel's judge reads each site's signal straight from the samples (``site_columns``) and
shares the trace's other columns between the sites (``Trace.sharing``): every site must be
judged on exactly the numbers the samples with their estimates give (docs/adr/0180)."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from bench.panel import PANEL_RECIPE
from daemon.config import Limits
from daemon.judge.panel import evaluate_panel, site_channels, site_columns, with_estimates
from daemon.judge.reflow import chip_hotter_check, cool_checks, reflow_checks
from daemon.judge.series import Trace
from daemon.recipe.load import load_recipe_file
from daemon.recipe.model import VacuumFilmBondRecipe
from daemon.store.trace import Sample


def _recipe() -> VacuumFilmBondRecipe:
    recipe = load_recipe_file(PANEL_RECIPE, Limits()).recipe
    assert isinstance(recipe, VacuumFilmBondRecipe) and recipe.panel is not None
    return recipe


def _samples(recipe: VacuumFilmBondRecipe) -> list[Sample]:
    """A heat and a cool at 20 Hz over every instrumented site, with lost readings: single
    samples, a run of them on one site, a NaN, the control channel itself, and all at once."""
    assert recipe.panel is not None
    channels = site_channels(recipe.panel)
    rng = random.Random(7)
    out: list[Sample] = []
    for k in range(1200):
        t = k * 0.05
        step = "reflow" if k < 800 else "cool"
        base = 150.0 + 0.15 * k if k < 800 else 270.0 - 0.2 * (k - 800)
        temps: dict[str, float | None] = {"component": base - 40.0, "chuck": 80.0}
        for i in recipe.panel.instrumented_sites:
            r, c = divmod(i, recipe.panel.cols)
            edge = abs(r - 1) + abs(c - 1)
            temps[channels[i]] = round(base - 2.5 * edge + rng.gauss(0.0, 0.1), 1)
        if k % 97 == 0:
            temps["site_0"] = None
        if 300 <= k < 340:
            temps["site_8"] = None
        if k == 500:
            temps["site_2"] = math.nan
        if 600 <= k < 610:
            temps["chip"] = None
        if k == 700:
            temps = dict.fromkeys(temps)
        out.append(Sample(t, step, base, temps, 2.0, None, 50.0))
    return out


def test_each_site_is_judged_on_what_its_channel_holds_with_the_estimates() -> None:
    recipe = _recipe()
    assert recipe.panel is not None
    samples = _samples(recipe)
    channels = site_channels(recipe.panel)
    full = with_estimates(recipe.panel, samples)
    columns = site_columns(recipe.panel, samples)
    base = Trace(recipe, samples)
    for i, column in enumerate(columns):
        expected = Trace(recipe, full, chip_channel=channels[i])
        shared = Trace.sharing(base, channels[i], column)
        # Bit for bit (None where either is None): the verdicts are computed from these.
        assert [None if v is None else v.hex() for v in shared.chip] == [
            None if v is None else v.hex() for v in expected.chip
        ], f"site {i}"
        assert shared.rate == expected.rate, f"site {i}"
        for name in ("t", "phase", "heating", "cooling", "component", "chuck", "pressure", "o2"):
            assert getattr(shared, name) == getattr(expected, name), (i, name)
    # The gaps are really there: an estimate stands in where site 8's reading was lost.
    assert columns[8][310] is not None and samples[310].temps_c["site_8"] is None
    assert all(col[700] is None for col in columns)


def test_the_panel_verdict_is_the_one_judged_on_the_samples_with_estimates() -> None:
    recipe = _recipe()
    assert recipe.panel is not None
    samples = _samples(recipe)
    verdict = evaluate_panel(recipe, samples)
    assert verdict is not None
    channels = site_channels(recipe.panel)
    full = with_estimates(recipe.panel, samples)
    for s in verdict.sites:
        # The judge as it was: a whole trace of the samples with their estimates per site.
        tr = Trace(recipe, full, chip_channel=channels[s.site])
        checks = [*reflow_checks(tr), *cool_checks(tr), chip_hotter_check(tr)]
        assert s.failed_checks == tuple(c.check for c in checks if not c.ok), s.site
        assert [(c.check, c.value, c.detail) for c in checks if c.check.startswith("peak")] == [
            (c.check, s.peak_c, c.detail) for c in checks if c.check.startswith("peak")
        ]


def test_the_run_trace_shared_with_the_sites_gives_the_same_verdict() -> None:
    """judge_run builds one trace for the run's checks and the panel's sites (the reference
    site reuses it when its column is the control channel's): the same verdict as a panel
    judged on traces of its own, with the control channel whole and with gaps in it."""
    recipe = _recipe()
    assert recipe.panel is not None
    # The control channel without its lost readings (where every site's reading is lost,
    # the estimate is lost too): the reference site is judged on the run's own trace.
    whole = [
        replace(s, temps_c={**s.temps_c, "chip": s.temps_c.get("site_0")})
        if s.temps_c.get("chip") is None
        else s
        for s in _samples(recipe)
    ]
    reference = recipe.panel.reference_site
    assert site_channels(recipe.panel)[reference] == "chip"
    assert site_columns(recipe.panel, whole)[reference] == Trace(recipe, whole).chip
    for samples in (_samples(recipe), whole):
        own = evaluate_panel(recipe, samples)
        shared = evaluate_panel(recipe, samples, Trace(recipe, samples))
        assert own is not None and shared is not None
        assert shared.sites == own.sites
        assert shared.uniformity_c == own.uniformity_c and shared.check == own.check
    with pytest.raises(ValueError, match="other samples"):
        evaluate_panel(recipe, whole, Trace(recipe, _samples(recipe)))
