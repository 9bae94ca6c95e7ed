"""The panel of chips on the simulated plant, checked as a process engineer would check a
real panel: energy, symmetry, the colder rim, the heavier joint, the 1 × 1 panel is today's."""

from __future__ import annotations

import dataclasses

import pytest

from drivers.sim.plant import Plant
from drivers.sim.plant.panel import PanelLayout, PanelPhysics, panel_model
from drivers.sim.plant.params import PlantParams
from tests.test_plant import bond_ready, lamps_on, make, run, run_until

CENTRE, SIDE, CORNER = 4, 1, 0  # on a 3 × 3 panel, row-major


def heated_panel(
    layout: PanelLayout, physics: PanelPhysics | None = None, pct: float = 64.0, s: float = 50.0
) -> Plant:
    plant, clock = make()
    plant.set_panel(layout, physics)
    bond_ready(plant, clock)
    lamps_on(plant, pct)
    run(plant, clock, s)
    return plant


def spread_c(plant: Plant) -> float:
    temps = [site.chip_c for site in plant.sites()]
    return max(temps) - min(temps)


def test_energy_balance_closes_on_a_panel_through_melt_and_cooling() -> None:
    plant, clock = make()
    plant.set_panel(PanelLayout(3, 3))
    e0 = plant.state.stored_energy_j
    bond_ready(plant, clock)
    lamps_on(plant, 64.0)
    run_until(plant, clock, lambda: min(s.melt_fraction for s in plant.sites()) == 1.0, 60.0)
    plant.set_lamp_power([0.0] * 4)
    run(plant, clock, 30.0)
    s = plant.state
    assert s.energy_in_j > 5_000.0
    net_in = s.energy_in_j - s.energy_chiller_j - s.energy_loss_j
    assert net_in == pytest.approx(s.stored_energy_j - e0, abs=1e-6 * s.energy_in_j)


def test_equal_power_leaves_the_rim_colder_and_symmetric_sites_equal() -> None:
    plant = heated_panel(PanelLayout(3, 3))
    t = [site.chip_c for site in plant.sites()]
    assert t[CENTRE] > t[SIDE] > t[CORNER] > 220.0
    # Several degrees at equal power: what the zones' control has to take out.
    assert 3.0 < t[CENTRE] - t[CORNER] < 30.0
    for group in ((0, 2, 6, 8), (1, 3, 5, 7)):
        assert max(t[i] for i in group) - min(t[i] for i in group) < 1e-9
    # The chip thermocouple's site is the centre: chip_c and the chip channel read it.
    assert plant.chip_c == t[CENTRE]
    assert plant.tc_junction("chip") == pytest.approx(t[CENTRE], abs=0.5)


def test_rim_losses_and_lateral_conduction_are_what_spreads_and_evens_the_panel() -> None:
    base = spread_c(heated_panel(PanelLayout(3, 3)))
    no_rim = spread_c(heated_panel(PanelLayout(3, 3), PanelPhysics(g_rim_w_k_per_m=0.0)))
    # A copper plate under the chips instead of a flex: the cells share their heat.
    plate = spread_c(heated_panel(PanelLayout(3, 3), PanelPhysics(g_lateral_w_k=5.0)))
    assert no_rim < base
    assert plate < base


def test_a_site_with_more_solder_melts_later() -> None:
    heavy = PanelLayout(3, 3, solder_mg=(200.0,) + (100.0,) * 8)  # site 0 twice the rest
    plant, clock = make()
    plant.set_panel(heavy)
    bond_ready(plant, clock)
    lamps_on(plant, 64.0)
    melted: dict[int, float] = {}

    def watch() -> bool:
        for site in plant.sites():
            if site.melt_fraction == 1.0:
                melted.setdefault(site.site, clock.t)
        return 0 in melted

    run_until(plant, clock, watch, 60.0)
    # Site 2 is site 0's mirror image: same light, same rim, half the solder.
    assert melted[2] < melted[0] - 0.2


def test_a_site_pressed_less_by_the_film_runs_hotter_and_stays_above_its_cell() -> None:
    uneven = PanelLayout(3, 3, contact=(1.0,) * 4 + (0.3,) + (1.0,) * 4)
    plant = heated_panel(uneven)
    even = heated_panel(PanelLayout(3, 3))
    assert plant.sites()[CENTRE].chip_c > even.sites()[CENTRE].chip_c + 5.0
    for site in plant.sites():
        assert site.chip_c > site.cell_c


def test_view_factors_are_geometry_and_the_film_takes_its_share() -> None:
    physics = PanelPhysics()
    # A zone's irradiance integrates to all of its power over a wide enough plane.
    step = 0.5  # mm
    total = (
        sum(
            physics.irradiance_share_per_m2(0, -100.0 + (a + 0.5) * step, -100.0 + (b + 0.5) * step)
            for a in range(400)
            for b in range(400)
        )
        * (step * 1e-3) ** 2
    )
    assert total == pytest.approx(1.0, abs=0.01)
    model = panel_model(PanelLayout(3, 3), physics, PlantParams())
    for z in range(4):
        chips = sum(model.absorbed[i][z] for i in range(9))
        cells = sum(model.absorbed_cell[i][z] for i in range(9))
        # Never more than the film lets through, most of it outside the panel.
        assert 0.0 < chips + cells < physics.film_transmission
    # A zone lights the sites under its lamps most: the inner zone the centre, the corner
    # zone the corners.
    assert model.absorbed[CENTRE][0] > model.absorbed[CORNER][0]
    assert model.absorbed[CORNER][1] > model.absorbed[CENTRE][1]


def test_the_1x1_panel_is_todays_single_chip_to_the_bit() -> None:
    def trace(with_panel: bool) -> list[tuple[float, ...]]:
        plant, clock = make()
        if with_panel:
            plant.set_panel(PanelLayout(1, 1))
        assert plant.panel is None
        bond_ready(plant, clock)
        lamps_on(plant, 60.0)
        out: list[tuple[float, ...]] = []
        run(plant, clock, 10.0, each=lambda: out.append(dataclasses.astuple(plant.state)))
        return out

    assert trace(True) == trace(False)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rows": 0}, "rows"),
        ({"chip_mm": 14.0}, "chip"),
        ({"rows": 2, "cols": 2, "solder_mg": (1.0, 2.0)}, "solder_mg"),
        ({"rows": 2, "cols": 2, "contact": (1.0, 1.0, 1.0, 1.5)}, "contact[3]"),
        ({"rows": 2, "cols": 2, "chip_tc_site": 4}, "chip_tc_site"),
    ],
)
def test_a_bad_layout_is_refused_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace("[", r"\[")):
        PanelLayout(**kwargs)  # type: ignore[arg-type]


def test_a_head_with_another_zone_count_than_the_plant_is_refused() -> None:
    plant, _ = make()
    three = PanelPhysics(zone_lamps_mm=PanelPhysics().zone_lamps_mm[:3])
    with pytest.raises(ValueError, match="3 zones"):
        plant.set_panel(PanelLayout(2, 2), three)
