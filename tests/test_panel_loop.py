"""The zone loop of a panel: feed-forward weights from the identified gains, PI trims on
the instrumented sites, every zone within its limits; on the 3 × 3 recipe it brings the
corners into the window that equal power leaves them under."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bench.panel import PANEL_RECIPE, measure, zone_loop_factory
from bench.panel_gains import identify_gains
from daemon.config import Limits, PanelGainsSection
from daemon.recipe.load import load_recipe_file
from daemon.run.virtual import run_recipe
from daemon.thermal.loop import Profile
from daemon.thermal.panel_loop import PanelLoop, feedforward_weights, pinv
from drivers.sim.plant import PanelLayout

# Centre and one corner of a 3 × 3 panel under the default head (bench/panel_gains.py).
GAINS = [[4.2, 0.12, 0.55, 0.54], [2.8, 0.39, 1.01, 1.01]]


class _Common:
    """A chip loop that asks for a fixed common power."""

    def __init__(self, pct: float) -> None:
        self.pct = pct

    @property
    def expected_c(self) -> float | None:
        return None

    def update(self, t: float, profile: Profile, t_profile: float, **_: Any) -> float:
        return self.pct


def test_the_pseudo_inverse_of_an_invertible_matrix_is_its_inverse() -> None:
    a = [[2.0, 1.0], [1.0, 3.0]]
    p = pinv(a)
    for i in range(2):
        for j in range(2):
            # To the ridge's share (RIDGE of GᵀG, the identification's own error): ~0.5 %.
            assert sum(p[i][k] * a[k][j] for k in range(2)) == pytest.approx(
                float(i == j), abs=1e-2
            )


def test_feedforward_weights_light_every_site_alike_and_keep_the_control_sites_gain() -> None:
    w = feedforward_weights(GAINS)
    seen = [sum(g * x for g, x in zip(row, w, strict=True)) for row in GAINS]
    assert seen[0] == pytest.approx(seen[1], rel=2e-2)  # alike, to the ridge's share
    assert seen[0] == pytest.approx(sum(GAINS[0]), rel=1e-9)  # the chip model still holds
    assert all(x >= 0.0 for x in w)
    # The inner zone turned down, the side zones (which light the rim) up.
    assert w[0] < 1.0 < min(w[2], w[3])


def test_a_cold_corner_gets_more_corner_zone_and_no_zone_passes_its_cap() -> None:
    loop = PanelLoop(_Common(40.0), GAINS, ["chip", "site_0"])
    temps = {"chip": 245.0, "site_0": 240.0}
    first = loop.zones(0.0, temps.get, 40.0, 100.0)
    later = first
    for k in range(1, 200):
        later = loop.zones(k * 0.05, temps.get, 40.0, 100.0)
    assert later[1] > first[1]  # the integral keeps pushing the corner zone
    # Capped: the component's suspension fades every zone with the common power.
    capped = loop.zones(10.05, temps.get, 40.0, 30.0)
    assert max(capped) <= 30.0 and min(capped) >= 0.0


def test_the_integrators_hold_while_a_zone_is_at_its_limit() -> None:
    loop = PanelLoop(_Common(100.0), GAINS, ["chip", "site_0"])
    temps = {"chip": 245.0, "site_0": 240.0}
    for k in range(400):
        out = loop.zones(k * 0.05, temps.get, 100.0, 100.0)
        assert max(out) <= 100.0
    held = loop._i[1]
    # Saturated at 100 % the corner zone can do no more: the integral did not wind up
    # for 20 s of a 5 °C error.
    assert held < 5.0 * 20.0 * 0.5


@pytest.fixture(scope="module")
def runs() -> dict[str, dict[str, Any]]:
    return {c: asyncio.run(measure(PANEL_RECIPE, control=c)) for c in ("equal", "zones")}


def test_the_zone_loop_passes_every_site_that_equal_power_fails(
    runs: dict[str, dict[str, Any]],
) -> None:
    equal, zones = runs["equal"], runs["zones"]
    assert equal["result"] == "failed" and equal["failed_sites"]
    assert zones["result"] == "completed" and zones["failed_sites"] == []
    peaks = {s["site"]: s["peak_c"] for s in zones["sites"]}
    assert all(238.0 <= p <= 252.0 for p in peaks.values())
    # Several times more even than equal power, on the plant's true chips.
    assert zones["uniformity_c"] < equal["uniformity_c"] / 3.0
    assert zones["tal_spread_s"] < 1.0


def test_the_zone_loop_never_commands_a_zone_past_its_limits(tmp_path: Path) -> None:
    import asyncio  # noqa: PLC0415 - the run below is awaited by pytest-asyncio

    # Every command the run gave is recorded per zone in the trace.

    loaded = load_recipe_file(PANEL_RECIPE, Limits())
    panel = loaded.recipe.panel  # type: ignore[union-attr]
    assert panel is not None

    async def go() -> list[tuple[float, ...]]:
        doc, sim = await run_recipe(loaded, tmp_path, controller_factory=zone_loop_factory(panel))
        samples = sim.store.samples(doc["run_id"])
        sim.store.close()
        return [s.lamp_zones_pct for s in samples if s.lamp_zones_pct]

    zones = asyncio.run(go())
    assert zones and all(0.0 <= v <= 100.0 for z in zones for v in z)
    assert any(max(z) - min(z) > 5.0 for z in zones)  # the zones did get their own powers


def _gains(channels: list[str] | None = None) -> PanelGainsSection:
    panel = load_recipe_file(PANEL_RECIPE, Limits()).recipe.panel  # type: ignore[union-attr]
    assert panel is not None
    layout = PanelLayout(
        rows=3,
        cols=3,
        solder_mg=tuple(panel.solder_mg or ()),
        instrumented=panel.instrumented_sites,
    )
    gains, chans = identify_gains(layout)
    if channels is not None:
        gains, chans = [gains[chans.index(c)] for c in channels], channels
    return PanelGainsSection(channels=chans, gains_c_per_pct=gains)


def test_configured_gains_put_a_panel_recipe_on_the_zone_loop(tmp_path: Path) -> None:
    doc, sim = asyncio.run(run_recipe(PANEL_RECIPE, tmp_path, panel_gains=_gains()))
    sim.store.close()
    assert doc["result"] == "completed", doc["reason"]
    assert all(s["ok"] for s in doc["sites"])


def test_gains_for_other_sites_leave_the_panel_on_equal_power(tmp_path: Path) -> None:
    # Identified with only the centre and one corner measured: not this recipe's panel.
    doc, sim = asyncio.run(
        run_recipe(PANEL_RECIPE, tmp_path, panel_gains=_gains(["chip", "site_0"]))
    )
    sim.store.close()
    assert doc["result"] == "failed" and "every_site_conformed" in doc["reason"]


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        ({"channels": ["site_0", "chip"], "gains_c_per_pct": [[1.0], [1.0]]}, "'chip'"),
        ({"channels": ["chip", "site_0"], "gains_c_per_pct": [[1.0, 2.0]]}, "one row per channel"),
        ({"channels": ["chip", "site_0"], "gains_c_per_pct": [[1.0], [1.0, 2.0]]}, "every row"),
        ({"channels": ["chip", "chip"], "gains_c_per_pct": [[1.0], [1.0]]}, "twice"),
    ],
)
def test_a_bad_gains_section_is_refused_saying_why(section: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        PanelGainsSection(**section)
