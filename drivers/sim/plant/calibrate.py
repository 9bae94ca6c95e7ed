"""The twin's plant, calibrated to a machine's identified chip model.

``bonderd tune`` identifies the chip's thermal model per chip heat capacity (gain, losses,
latent heat, lags; daemon/thermal/loop.py ``ThermalModel``). The nominal plant has a model
of its own, identified the same way (config/sim.toml): the reference. Where the machine's
model differs from the reference, the twin's plant is scaled by the same ratios — lamp share
to the chips, chip–component conductances, solder latent heat, chip emissivity, the lamp
filament and thermocouple lags — so the twin's chip answers the lamps as the machine's did
in its identification. Ratios against the reference, not absolute values, so the fit's own
small bias on the nominal plant cancels: the model of the nominal plant gives the nominal
plant back exactly. The chip's heat capacity stays nominal: tuning cannot observe it apart
from the rest, and the chip node's behaviour does not depend on how it is split.

The chuck and its chiller are calibrated the same way from the tune run's cold chuck step
(``[chuck_model]``, daemon/thermal/chuck_fit.py, ADR 0175): the chiller's cooling capacity
by the ratio of the chuck's saturated cooling rates, the chuck–coolant conductance by the
inverse ratio of the chuck's lags. The chuck's and the coolant's heat capacities stay
nominal: a cold step sees them only together with the capacity.

What tuning does not identify (the component, the gas) stays nominal: a twin can only be as
good as what was measured on the machine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Final

from drivers.sim.plant.params import PlantParams

__all__ = ["calibrated", "chuck_calibrated"]

# A share or emissivity scaled past this would be unphysical; the ratio is capped there.
_MAX_FRACTION: Final = 0.99


def _ratio(identified: Mapping[str, float], reference: Mapping[str, float], key: str) -> float:
    ref = reference.get(key, 0.0)
    value = identified.get(key, 0.0)
    return value / ref if ref > 0 and value > 0 else 1.0


def calibrated(
    params: PlantParams | None, identified: Mapping[str, float], reference: Mapping[str, float]
) -> PlantParams:
    """``params`` (default nominal) scaled so its chip matches ``identified``, given the
    ``reference`` model identified on ``params`` itself (keys of ``ThermalModel``)."""
    p = params if params is not None else PlantParams()
    if dict(identified) == dict(reference):
        return p

    def r(key: str) -> float:
        return _ratio(identified, reference, key)

    to_chips = min(p.frac_to_chips * r("gain_c_s_per_pct"), _MAX_FRACTION - p.frac_to_component)
    return dataclasses.replace(
        p,
        frac_to_chips=to_chips,
        g_chip_comp_vac_w_k=p.g_chip_comp_vac_w_k * r("loss_per_s"),
        g_chip_comp_atm_w_k=p.g_chip_comp_atm_w_k * r("loss_per_s"),
        g_chip_comp_melt_w_k=p.g_chip_comp_melt_w_k * r("molten_loss_per_s"),
        solder_latent_j=p.solder_latent_j * r("latent_heat_k"),
        chip_emissivity=min(p.chip_emissivity * r("radiation_c_s_per_1e10_k4"), _MAX_FRACTION),
        filament_tau_s=p.filament_tau_s * r("filament_tau_s"),
        tc_tau_chip_s=p.tc_tau_chip_s * r("tc_tau_s"),
    )


def chuck_calibrated(
    params: PlantParams | None, identified: Mapping[str, float], reference: Mapping[str, float]
) -> PlantParams:
    """``params`` (the nominal plant, or the one ``calibrated`` made of it) with its chiller,
    chuck and component scaled to ``identified``, given the ``reference`` measurement on the
    nominal plant (keys of ``[chuck_model]``: ``cool_rate_k_s``, ``lag_s``, and optionally
    ``component_from_chip_per_s``, ``component_to_chuck_per_s``)."""
    p = params if params is not None else PlantParams()
    if dict(identified) == dict(reference):
        return p

    def r(key: str) -> float:
        return _ratio(identified, reference, key)

    nominal = PlantParams()
    # Per component capacity the chip–component coupling is r(from_chip) × nominal; with the
    # conductance the chip's calibration gave, that fixes the component's capacity, and the
    # component–chuck conductance follows from its own ratio at that capacity. Heat
    # capacities on the twin's scale (its chip is nominal), so temperatures match.
    c_comp = nominal.c_component_j_k * (p.g_chip_comp_vac_w_k / nominal.g_chip_comp_vac_w_k)
    c_comp /= r("component_from_chip_per_s")
    comp_scale = c_comp / nominal.c_component_j_k
    g_mk = r("component_to_chuck_per_s") * comp_scale
    return dataclasses.replace(
        p,
        chiller_cool_max_w=p.chiller_cool_max_w * r("cool_rate_k_s"),
        # A longer lag is a chuck that takes its coolant's temperature more slowly.
        g_chuck_fluid_flow_w_k=p.g_chuck_fluid_flow_w_k / r("lag_s"),
        c_component_j_k=c_comp if "component_from_chip_per_s" in identified else p.c_component_j_k,
        g_comp_chuck_clamped_w_k=nominal.g_comp_chuck_clamped_w_k * g_mk
        if "component_to_chuck_per_s" in identified
        else p.g_comp_chuck_clamped_w_k,
        g_comp_chuck_free_w_k=nominal.g_comp_chuck_free_w_k * g_mk
        if "component_to_chuck_per_s" in identified
        else p.g_comp_chuck_free_w_k,
    )
