"""The simulated plant's parameters (``PlantParams``) and the physical constants they use."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Final

from drivers.protocols import TC_CHANNELS  # the machine's channels, which the plant models

__all__ = ["GAS_CONSTANT", "KELVIN", "STEFAN_BOLTZMANN", "TC_CHANNELS", "PlantParams"]

KELVIN: Final = 273.15
STEFAN_BOLTZMANN: Final = 5.670374419e-8  # W/(m²·K⁴)
GAS_CONSTANT: Final = 8.314462618  # J/(mol·K)


@dataclass(frozen=True, slots=True)
class PlantParams:
    """Physical constants of the simulated bonder. Units are in the names."""

    dt_s: float = 0.025  # longest integration substep (docs/adr/0121)
    ambient_c: float = 23.0
    p_atm_mbar: float = 1013.0

    # Lamps
    zones: int = 4
    zone_max_w: float = 1000.0  # electrical, per zone
    filament_tau_s: float = 0.25
    frac_to_chips: float = 0.35  # share of the radiant power absorbed by the chips
    frac_to_component: float = 0.03  # absorbed by the component directly, around the chips

    # Heat capacities
    c_chip_j_k: float = 25.0
    c_component_j_k: float = 40.0
    c_chuck_j_k: float = 1500.0
    c_fluid_j_k: float = 3000.0  # coolant in the loop and bath

    # Conductances
    g_chip_comp_atm_w_k: float = 0.5  # film not pressed (working space at atmosphere)
    g_chip_comp_vac_w_k: float = 3.0  # film pressed by the full atmosphere
    g_chip_comp_melt_w_k: float = 2.0  # added × melt fraction: wetted joints conduct
    g_comp_chuck_clamped_w_k: float = 12.0
    g_comp_chuck_free_w_k: float = 3.0
    g_chuck_fluid_flow_w_k: float = 60.0
    g_chuck_fluid_stagnant_w_k: float = 5.0  # chiller stopped: no forced convection
    g_chuck_ambient_w_k: float = 0.5
    g_fluid_ambient_w_k: float = 3.0
    chip_emissivity: float = 0.9
    chip_area_m2: float = 1e-3
    g_chip_gas_atm_w_k: float = 0.05  # gas conduction/convection at 1 atm, ∝ pressure

    # Solder
    solder_latent_j: float = 60.0
    solidus_c: float = 217.0  # SAC305
    liquidus_c: float = 220.0
    melt_band_min_k: float = 0.5  # eutectics melt over this band below liquidus

    # Temperature-control unit of the chuck (PI on the fluid temperature, saturating at its
    # capacity): a refrigerated/heating circulator of the Julabo FP50-HL class (working range
    # −50..200 °C, 2 kW heater, 0.9 kW cooling at +20 °C; ADR 0050), so the cure step can
    # heat the chuck as well as the bond step can chill it.
    chiller_setpoint_c: float = 20.0
    # The coolant's temperature when the machine is switched on; None = ambient (a bath left
    # standing). A prediction's disturbances vary it (drivers/sim/plant/disturb.py).
    chiller_start_c: float | None = None
    chiller_tau_s: float = 20.0  # closed-loop lag of the fluid toward the setpoint
    chiller_ti_s: float = 60.0  # integral time: no steady offset under load
    chiller_cool_max_w: float = 900.0
    chiller_heat_max_w: float = 2000.0
    chiller_setpoint_min_c: float = -50.0
    chiller_setpoint_max_c: float = 200.0

    # Thermocouples
    tc_tau_chip_s: float = 0.3
    tc_tau_other_s: float = 0.5
    tc_noise_c: float = 0.1  # σ
    tc_resolution_c: float = 0.1
    tc_open_value_c: float = 1372.0  # upscale burnout (type K full scale)

    # Working-space gas
    volume_l: float = 1.0
    pump_speed_l_s: float = 1.5  # effective, at the working space
    pump_ultimate_mbar: float = 0.02
    leak_mbar_l_s: float = 1e-3  # air, at full atmospheric differential
    n2_flow_max_mbar_l_s: float = 300.0  # choked
    n2_supply_mbar: float = 1100.0
    n2_critical_ratio: float = 0.528  # choked below this p/p_supply
    vent_conductance_l_s: float = 5.0
    tear_conductance_l_s: float = 2.0  # torn film: air through the tear
    o2_air_ppm: float = 209_000.0
    # 6.0-grade N2. With 0.5 ppm (5.0 grade) the baseline leak alone keeps two purge cycles
    # just above 1 ppm.
    o2_n2_ppm: float = 0.1
    o2_sample_period_s: float = 2.0  # the analyzer's stream period
    gauge_noise_rel: float = 0.002  # σ, relative

    # Z stage. z_min_um is where the support lies on the flat leads (zero lead displacement).
    z_accel_um_s2: float = 2000.0  # the drive's configured default acceleration
    z_accel_max_um_s2: float = 20_000.0  # the most a move may ask for
    z_speed_max_um_s: float = 1000.0
    z_min_um: float = 0.0
    z_max_um: float = 10_000.0

    # Vacuum holds of the lead lift (chuck: chip side; Z head: support side)
    vacuum_hold_s: float = 0.5  # valve open -> vacuum switch made
    support_capture_um: float = 20.0  # the head must be this close to the support to seal

    # Leads (all leads together; ADR 0050). Released leads bend elastic-perfectly-plastic:
    # stiffness k_lead until the plastic hinges form at lead_yield_force_n, then the force
    # levels off; unloading is elastic, the plastic set stays.
    k_lead_n_um: float = 0.002  # elastic bending stiffness, N/µm
    lead_yield_force_n: float = 0.3  # bending force once the hinges yield, N
    # Tips still stuck to the support: the leads are stretched, not bent: steep.
    k_tip_n_um: float = 0.02  # N/µm
    tip_adhesion_n: float = 10.0  # pull-off force of the intact connecting layer, N
    lead_tear_force_n: float = 3.0  # mean tensile strength of the leads, N
    lead_tear_spread: float = 0.2  # strengths spread uniformly over ±this fraction of the mean

    # Connecting layer (adhesive between lead tips and support). Bonded fraction
    # b = exp(−(dose/D0 + ∫k_heat dt)); degradation 1 − b. UV: reciprocity (dose only).
    # Heat: Arrhenius rate k_heat = k_ref·exp(−Ea/R·(1/T − 1/T_ref)) on the support-side
    # (component node) temperature.
    uv_irradiance_max_mw_cm2: float = 200.0
    adhesive_d0_mj_cm2: float = 400.0  # dose for 1 − 1/e degradation, mJ/cm²
    heat_release_k_ref_per_s: float = 0.05  # degradation rate at heat_release_t_ref_c, 1/s
    heat_release_t_ref_c: float = 150.0
    heat_release_ea_j_mol: float = 150_000.0
    # Degradation at which the layer holds nothing: the tips are released. Below it the
    # pull-off force falls linearly with the bonded fraction to zero here.
    tips_released_at: float = 0.95

    # Encapsulant: Hagen–Poiseuille flow through the needle, Q = Δp·π·r⁴/(8·µ·L); fill of the
    # gap under the support first-order with the Washburn capillary time 2·µ·L²/(γ·h).
    needle_id_mm: float = 0.41  # 22 G
    needle_length_mm: float = 12.7
    encapsulant_viscosity_pa_s: float = 5.0
    encapsulant_wetting_n_m: float = 0.03  # surface tension × cos(contact angle)
    gap_area_mm2: float = 100.0  # area under the support to fill
    gap_flow_length_mm: float = 5.0  # how far the encapsulant flows in from the edge
    gap0_um: float = 50.0  # gap height with the leads flat
    dispense_pressure_max_kpa: float = 700.0
    dispense_shot_max_s: float = 60.0
    # Cure: Kamal–Sourour dα/dt = (k1 + k2·α^m)·(1 − α)^n, k_i = A_i·exp(−E_i/(R·T)), on the
    # component-node temperature. Defaults: a snap-cure encapsulant, 95 % in ~4 min at
    # 150 °C, k1 = 2.5e-3 /s and k2 = 5e-2 /s there; days at room temperature.
    cure_a_per_s: float = 1.1e6
    cure_ea_j_mol: float = 70_000.0
    cure_a2_per_s: float = 2.2e7  # autocatalytic term; 0 = nth-order kinetics
    cure_ea2_j_mol: float = 70_000.0
    cure_m: float = 1.0
    cure_n: float = 1.5

    # Bump reflow: paste strips pull into masses while molten, dc/dt = melt·(1 − c)/τ·f(O2),
    # f = 1/(1 + pO2/p_half): a flux-less melt under an oxide skin does not coalesce.
    coalesce_tau_s: float = 2.0
    coalesce_o2_half_mbar: float = 0.05  # 50 ppm at one atmosphere halves the rate

    # Remote I/O coupler: outputs drop when the daemon has not talked to it for this long.
    # None = watchdog not simulated.
    dio_watchdog_s: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"PlantParams.{f.name} must be finite, got {v}")
        positive = (
            "dt_s",
            "zone_max_w",
            "filament_tau_s",
            "c_chip_j_k",
            "c_component_j_k",
            "c_chuck_j_k",
            "c_fluid_j_k",
            "chiller_tau_s",
            "chiller_ti_s",
            "tc_tau_chip_s",
            "tc_tau_other_s",
            "volume_l",
            "p_atm_mbar",
            "n2_supply_mbar",
            "o2_sample_period_s",
            "z_accel_um_s2",
            "z_accel_max_um_s2",
            "z_speed_max_um_s",
            "adhesive_d0_mj_cm2",
            "vacuum_hold_s",
            "support_capture_um",
            "k_lead_n_um",
            "lead_yield_force_n",
            "k_tip_n_um",
            "tip_adhesion_n",
            "lead_tear_force_n",
            "heat_release_k_ref_per_s",
            "heat_release_ea_j_mol",
            "needle_id_mm",
            "needle_length_mm",
            "encapsulant_viscosity_pa_s",
            "encapsulant_wetting_n_m",
            "gap_area_mm2",
            "gap_flow_length_mm",
            "gap0_um",
            "cure_a_per_s",
            "cure_ea_j_mol",
            "cure_ea2_j_mol",
            "cure_n",
            "coalesce_tau_s",
            "coalesce_o2_half_mbar",
            "melt_band_min_k",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"PlantParams.{name} must be > 0, got {getattr(self, name)}")
        for name in ("frac_to_chips", "frac_to_component", "n2_critical_ratio", "chip_emissivity"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"PlantParams.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.frac_to_chips + self.frac_to_component > 1.0:
            raise ValueError("PlantParams: more than all of the lamp power is absorbed")
        if self.zones < 1:
            raise ValueError(f"PlantParams.zones must be >= 1, got {self.zones}")
        if self.solidus_c > self.liquidus_c:
            raise ValueError("PlantParams.solidus_c must not exceed liquidus_c")
        start = self.chiller_start_c
        if (
            start is not None
            and not self.chiller_setpoint_min_c <= start <= self.chiller_setpoint_max_c
        ):
            raise ValueError(
                "PlantParams.chiller_start_c must be within the chiller's setpoint range"
            )
        if self.dio_watchdog_s is not None and not self.dio_watchdog_s > 0:
            raise ValueError("PlantParams.dio_watchdog_s must be > 0 or None")
        for name in ("cure_a2_per_s", "cure_m"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"PlantParams.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.lead_tear_spread < 1.0:
            raise ValueError(
                f"PlantParams.lead_tear_spread must be in [0, 1), got {self.lead_tear_spread}"
            )
        if not 0.0 < self.tips_released_at < 1.0:
            raise ValueError(
                f"PlantParams.tips_released_at must be in (0, 1), got {self.tips_released_at}"
            )
        if self.z_accel_um_s2 > self.z_accel_max_um_s2:
            raise ValueError("PlantParams.z_accel_um_s2 must not exceed z_accel_max_um_s2")
        if self.heat_release_t_ref_c <= -KELVIN:
            raise ValueError("PlantParams.heat_release_t_ref_c must be above absolute zero")

    @property
    def dispense_ul_per_kpa_s(self) -> float:
        """Flow coefficient of the dispense needle for this encapsulant, µL/(kPa·s)."""
        r_m = self.needle_id_mm * 0.5e-3
        l_m = self.needle_length_mm * 1e-3
        m3_per_pa_s = math.pi * r_m**4 / (8.0 * self.encapsulant_viscosity_pa_s * l_m)
        return m3_per_pa_s * 1e3 * 1e9  # per kPa (×1e3), in µL (×1e9)

    def gap_flow_tau_s(self, gap_um: float) -> float:
        """Washburn time for the encapsulant to flow into a gap of ``gap_um`` height, s."""
        h_m = max(gap_um, 1.0) * 1e-6
        length_m = self.gap_flow_length_mm * 1e-3
        return (
            2.0
            * self.encapsulant_viscosity_pa_s
            * length_m**2
            / (self.encapsulant_wetting_n_m * h_m)
        )
