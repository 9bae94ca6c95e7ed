"""``PlantState``: a snapshot of the plant, every state as a field (``Plant.state``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PlantState:
    """A snapshot of the plant at time ``t``. Temperatures °C, pressures mbar."""

    t: float
    chip_c: float
    component_c: float
    chuck_c: float
    fluid_c: float
    melt_fraction: float
    solidus_c: float
    liquidus_c: float
    tc_junction_c: dict[str, float]  # what each thermocouple junction is at (lagged, no noise)
    lamp_cmd_pct: tuple[float, ...]
    lamp_output_pct: tuple[float, ...]  # electrical output each zone delivers now
    filament_w: tuple[float, ...]  # radiant output per zone
    g_chip_component_w_k: float
    pressure_mbar: float
    o2_ppm: float
    o2_partial_mbar: float
    pumping: bool  # pump running and connected
    valves: dict[str, bool]
    pump_running: bool
    pump_tripped: bool
    chiller_running: bool
    chiller_failed: bool
    chiller_flow: bool
    chiller_setpoint_c: float
    chiller_heat_removed_w: float
    outputs: dict[str, bool]
    contactor_energized: bool
    estop_pressed: bool
    door_closed: bool
    z_um: float
    z_velocity_um_s: float
    z_target_um: float
    z_moving: bool
    z_homed: bool
    z_accel_um_s2: float  # acceleration of the current (or last) move
    z_stalled: bool  # following-error fault: busy but not moving
    force_n: float  # what the Z head's load cell reads, N (+ = leads pulling the head back)
    chuck_vacuum_held: bool
    support_vacuum_held: bool
    lead_displacement_um: float  # support away from the chip, as the leads see it
    lead_plastic_set_um: float  # permanent bend of the leads
    tips_attached: bool  # the lead tips are still stuck to the support
    tips_released: bool  # the tips came free without tearing (layer degraded or peeled)
    torn_fraction: float  # share of the leads torn, permanent
    leads_torn: bool  # any lead torn
    uv_shutter_open: bool
    uv_irradiance_mw_cm2: float
    uv_dose_mj_cm2: float
    heat_release_exposure: float  # ∫k_heat dt of the connecting layer, dimensionless
    bonded_fraction: float  # of the connecting layer, UV and heat combined
    adhesive_degradation: float  # 1 − bonded_fraction
    dispenser_pressure_kpa: float
    dispensing: bool
    dispensed_ul: float
    gap_ul: float  # volume of the gap under the support now
    encapsulant_in_gap_ul: float  # of the dispensed volume, what has flowed in
    fill_fraction: float  # of the gap, 0..1
    overfill_ul: float  # dispensed beyond the gap's volume
    cure_conversion: float  # of the dispensed encapsulant (0 while nothing was dispensed)
    coalescence: float  # of the solder-paste strips into masses, 0..1
    energy_in_j: float  # lamp radiation absorbed by chips and component
    energy_chiller_j: float  # heat removed by the chiller (negative = it heated)
    energy_loss_j: float  # radiation, gas, chuck and fluid losses to ambient
    stored_energy_j: float  # Σ C·T (°C) + latent heat of the molten solder

    @property
    def z_force_n(self) -> float:
        """The Z load cell's force (the name the trace uses)."""
        return self.force_n
