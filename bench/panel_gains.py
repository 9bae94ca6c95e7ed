"""Identify a panel's zone-to-site gain matrix by stepping each lamp zone (docs/panel.md).

The experiment ``bonderd tune`` is to run on the machine (issue 17), here on the simulated
plant open loop: the panel under the film's vacuum on the chilled chuck, every zone at a base
power until the sites settle, then each zone in turn ``step_pct`` higher until they settle
again. G[k][z] = (rise of instrumented site k) / step, °C per %, read on the sites'
thermocouple junctions (the thermocouple's lag settles out; its noise would only be
averaged). The base stays under the solder's solidus: the matrix is one of the solid
joints, which is what its ratios need to be right about.
"""

from __future__ import annotations

import dataclasses

from daemon.thermal.panel_model import SiteModel, step_time_constant
from drivers.clock import ManualClock
from drivers.protocols import OUT_FILM_CLAMP, OUT_LAMP_CONTACTOR, OUT_SCR_ENABLE, VALVE_PUMP
from drivers.sim.plant import PanelLayout, Plant

BASE_PCT = 25.0
STEP_PCT = 10.0
SETTLE_S = 60.0  # ~5 of the slowest site–cell time constants (the chuck drifts slower)


def _run(plant: Plant, clock: ManualClock, seconds: float) -> None:
    end = clock.t + seconds
    while clock.t < end - 1e-9:
        clock.t = min(end, clock.t + 0.5)
        plant.advance()


def _sites(plant: Plant, channels: list[str]) -> list[float]:
    return [plant.tc_junction(ch) for ch in channels]


def _settled_at_base(plant: Plant, clock: ManualClock) -> int:
    """The experiment's start, for either identification: the panel under the film's vacuum
    on the chilled chuck, every zone at the base power until the sites settle. Returns the
    number of zones."""
    plant.set_output(OUT_FILM_CLAMP, True)
    plant.chiller_start()
    plant.set_valve(VALVE_PUMP, True)
    plant.pump_start()
    _run(plant, clock, 120.0)
    plant.set_output(OUT_LAMP_CONTACTOR, True)
    plant.set_output(OUT_SCR_ENABLE, True)
    zones = plant.params.zones
    plant.set_lamp_power([BASE_PCT] * zones)
    _run(plant, clock, 2 * SETTLE_S)
    return zones


def identify_gains(layout: PanelLayout) -> tuple[list[list[float]], list[str]]:
    """(G, channels): G[k][z] in °C per %, channels[0] the control site's (chip)."""
    clock = ManualClock()
    plant = Plant(clock)
    plant.set_panel(layout)
    chans = layout.site_channels
    ref = layout.reference_site
    channels = [chans[ref]] + [ch for site, ch in chans.items() if site != ref]
    zones = _settled_at_base(plant, clock)
    gains = [[0.0] * zones for _ in channels]
    for z in range(zones):
        before = _sites(plant, channels)
        chuck0 = plant.state.chuck_c
        pct = [BASE_PCT] * zones
        pct[z] += STEP_PCT
        plant.set_lamp_power(pct)
        _run(plant, clock, SETTLE_S)
        after = _sites(plant, channels)
        # The chuck warms under the step too (for every site alike): its part is the
        # chiller's, not the zone's, and is taken out.
        drift = plant.state.chuck_c - chuck0
        for k in range(len(channels)):
            gains[k][z] = (after[k] - before[k] - drift) / STEP_PCT
        plant.set_lamp_power([BASE_PCT] * zones)
        _run(plant, clock, SETTLE_S)
    plant.set_output(OUT_LAMP_CONTACTOR, False)
    return gains, channels


def identify_model(layout: PanelLayout) -> SiteModel:
    """The site model of every site of ``layout`` (docs/adr/0166), identified as
    ``bonderd tune --panel --commissioning`` does: a thermocouple on every site for the
    experiment, each zone stepped, per site the gains and the time constant of its
    response to the zone that lights it most."""
    full = dataclasses.replace(layout, instrumented=tuple(range(layout.sites)))
    clock = ManualClock()
    plant = Plant(clock)
    plant.set_panel(full)
    chans = full.site_channels
    ref = full.reference_site
    order = [ref] + [i for i in chans if i != ref]
    channels = [chans[i] for i in order]
    zones = _settled_at_base(plant, clock)
    gains = [[0.0] * zones for _ in channels]
    curves: list[list[tuple[list[float], list[float]]]] = [[] for _ in channels]
    for z in range(zones):
        before = _sites(plant, channels)
        chuck0 = plant.state.chuck_c
        t0 = clock.t
        pct = [BASE_PCT] * zones
        pct[z] += STEP_PCT
        plant.set_lamp_power(pct)
        times: list[float] = []
        rises: list[list[float]] = [[] for _ in channels]
        end = clock.t + SETTLE_S
        while clock.t < end - 1e-9:
            clock.t = min(end, clock.t + 0.1)
            plant.advance()
            now = _sites(plant, channels)
            drift = plant.state.chuck_c - chuck0
            times.append(clock.t - t0)
            for k in range(len(channels)):
                rises[k].append(now[k] - before[k] - drift)
        for k in range(len(channels)):
            gains[k][z] = rises[k][-1] / STEP_PCT
            curves[k].append((times, rises[k]))
        plant.set_lamp_power([BASE_PCT] * zones)
        _run(plant, clock, SETTLE_S)
    plant.set_output(OUT_LAMP_CONTACTOR, False)
    taus = []
    for k in range(len(channels)):
        z = max(range(zones), key=lambda zz: abs(gains[k][zz]))
        times, rise = curves[k][z]
        taus.append(step_time_constant([0.0, *times], [0.0, *rise], rise[-1]))
    return SiteModel(
        channels=tuple(channels),
        gains=tuple(tuple(r) for r in gains),
        tau_s=tuple(taus),
        positions=tuple(full.row_col(i) for i in order),
    )
