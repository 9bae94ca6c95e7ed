"""The simulated plant: lumped-node physics of the bonder, integrated lazily on a Clock.

There is no background task. ``advance()`` integrates from the last time it ran up to
``clock.now()`` in equal substeps no longer than ``params.dt_s``; every simulated-driver call
and every actuator method calls it first, so the result does not depend on how fast the
clock runs (real, scaled or virtual time). Discrete events (faults, the O2 analyzer's
sample instants, the end of a dispense shot, the I/O watchdog) split the integration so they
happen at their exact time.

Thermal chain: lamp filaments → chips (with the solder's latent heat, enthalpy method) →
component → chuck → chiller fluid, plus radiation and gas losses from the chips and small
losses of the chuck and fluid to ambient. Every flux is counted once in the energy counters,
so ``energy_in_j − energy_chiller_j − energy_loss_j`` equals the change of ``stored_energy_j``
to rounding error.

Working space: one well-mixed gas volume with a pump, a leak, an N2 backfill valve and an N2
vent line; O2 is tracked as a partial pressure so mixing is exact.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field, fields
from typing import Final, Protocol

from drivers.clock import Clock
from drivers.protocols import (
    IN_CHILLER_FLOW,
    IN_CHUCK_VACUUM_OK,
    IN_DOOR_CLOSED,
    IN_ESTOP_OK,
    IN_SUPPORT_VACUUM_OK,
    OUT_CHUCK_VACUUM,
    OUT_FILM_CLAMP,
    OUT_LAMP_CONTACTOR,
    OUT_SCR_ENABLE,
    OUT_SUPPORT_VACUUM,
    OUT_UV_ENABLE,
    OUTPUTS,
    VALVE_N2_PURGE,
    VALVE_PUMP,
    VALVE_VENT,
    VALVES,
)

TC_CHANNELS: Final = ("chip", "component", "chuck")
KELVIN: Final = 273.15
STEFAN_BOLTZMANN: Final = 5.670374419e-8  # W/(m²·K⁴)
GAS_CONSTANT: Final = 8.314462618  # J/(mol·K)

# Which fault kinds each device accepts. "tc.<channel>" stands for every thermocouple channel
# and "lamps.z<n>" for every lamp zone; the plant resolves them against its own channels and
# zones. The scenario loader validates files against this same table.
FAULT_KINDS: Final[dict[str, frozenset[str]]] = {
    "tc.<channel>": frozenset({"open", "stuck", "drift", "no_response"}),
    "tc": frozenset({"no_response"}),
    "gauge": frozenset({"fail", "stuck", "no_response"}),
    "chamber": frozenset({"leak", "tear"}),
    "film": frozenset({"tear"}),
    "chiller": frozenset({"fail", "no_response"}),
    "pump": frozenset({"fail", "no_response"}),
    "lamps": frozenset({"stuck_on", "fail", "no_response"}),
    "lamps.z<n>": frozenset({"stuck_on", "fail", "no_response"}),
    "o2": frozenset({"fail", "stuck", "no_response"}),
    "dio": frozenset({"estop", "door_open", "no_response"}),
    # stall: following error — the stage stops following its command but reports busy.
    "zstage": frozenset({"fail", "stall", "no_response"}),
    # fail: the UV lamp goes out (output 0, shutter closed), also in the middle of an exposure.
    "uv": frozenset({"fail", "no_response"}),
    # fail: the hold loses its vacuum (part not sealing, line leak): the switch opens.
    "chuck_vacuum": frozenset({"fail"}),
    "support_vacuum": frozenset({"fail"}),
    "dispenser": frozenset({"fail", "no_response"}),
    "valves": frozenset({"no_response"}),
}

# What the fault's ``value`` means per kind. "required": must be given; "optional": may be
# given (stuck: the frozen reading instead of the reading when the fault fires; stuck_on: the
# stuck output %, default 100); kinds not listed take no value.
FAULT_VALUE_REQUIRED: Final = frozenset({"drift", "leak"})
FAULT_VALUE_OPTIONAL: Final = frozenset({"stuck", "stuck_on"})


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


@dataclass(frozen=True, slots=True)
class PlantFault:
    """A fault as the plant applies it. ``value`` None = not given (see FAULT_VALUE_*)."""

    device: str
    kind: str
    value: float | None = None


class SupportsPlantFault(Protocol):
    def to_plant_fault(self) -> PlantFault: ...


@dataclass(frozen=True, slots=True)
class TcFault:
    kind: str  # open | stuck | drift | no_response
    since: float  # plant time the fault fired
    value: float  # stuck: the frozen reading; drift: °C/s; else 0
    last_value: float  # the channel's reading when the fault fired (no_response keeps it)


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


@dataclass(slots=True)
class _Faults:
    tc: dict[str, TcFault] = field(default_factory=dict)
    unresponsive: set[str] = field(default_factory=set)
    gauge: str | None = None  # "fail" | "stuck"
    gauge_stuck_mbar: float = 0.0
    o2: str | None = None  # "fail" | "stuck"
    o2_stuck_ppm: float = 0.0
    extra_leak_mbar_l_s: float = 0.0
    torn: bool = False
    chiller_failed: bool = False
    pump_tripped: bool = False
    lamp_stuck_pct: dict[int, float] = field(default_factory=dict)
    lamp_dead: set[int] = field(default_factory=set)
    estop: bool = False
    door_open: bool = False
    zstage_failed: bool = False
    zstage_stalled: bool = False
    uv_failed: bool = False
    dispenser_failed: bool = False
    hold_failed: set[str] = field(default_factory=set)  # OUT_CHUCK_VACUUM / OUT_SUPPORT_VACUUM


def fault_device_key(device: str, zones: int, channels: Sequence[str]) -> str | None:
    """The FAULT_KINDS key a device name falls under, or None if it names nothing known."""
    if device in FAULT_KINDS and "<" not in device:
        return device
    if device.startswith("tc."):
        return "tc.<channel>" if device[3:] in channels else None
    if device.startswith("lamps.z"):
        n = device[7:]
        if n.isdigit() and not n.startswith("0") and 1 <= int(n) <= zones:
            return "lamps.z<n>"
    return None


def _plant_constants(p: PlantParams) -> tuple[float, ...]:
    """The parameters ``Plant._integrate`` uses on every span, and what it derives from them,
    in the order it unpacks them."""
    g_atm = p.g_chip_comp_atm_w_k
    amb = p.ambient_c
    p_atm = p.p_atm_mbar
    kp = p.c_fluid_j_k / p.chiller_tau_s
    n2_b = p.n2_critical_ratio
    return (
        p.dt_s,
        p.zone_max_w,
        p.filament_tau_s,
        p.c_chip_j_k,
        p.solder_latent_j,
        p.frac_to_chips,
        p.frac_to_component,
        1.0 / p.c_component_j_k,
        1.0 / p.c_chuck_j_k,
        1.0 / p.c_fluid_j_k,
        g_atm,
        p.g_chip_comp_vac_w_k - g_atm,
        p.g_chip_comp_melt_w_k,
        p.g_comp_chuck_clamped_w_k,
        p.g_comp_chuck_free_w_k,
        p.g_chuck_fluid_flow_w_k,
        p.g_chuck_fluid_stagnant_w_k,
        p.g_chuck_ambient_w_k,
        p.g_fluid_ambient_w_k,
        p.chip_emissivity * STEFAN_BOLTZMANN * p.chip_area_m2,
        amb,
        (amb + KELVIN) ** 4,
        p_atm,
        1.0 / p_atm,
        p.g_chip_gas_atm_w_k,
        kp,
        kp / p.chiller_ti_s,
        p.chiller_cool_max_w,
        p.chiller_heat_max_w,
        p.tc_tau_chip_s,
        p.tc_tau_other_s,
        1.0 / p.volume_l,
        p.leak_mbar_l_s,
        p.tear_conductance_l_s,
        p.o2_air_ppm * 1e-6,
        p.o2_n2_ppm * 1e-6,
        p.n2_flow_max_mbar_l_s,
        n2_b,
        1.0 / (1.0 - n2_b),
        1.0 / p.n2_supply_mbar,
        p.vent_conductance_l_s,
        p.pump_speed_l_s,
        p.pump_ultimate_mbar,
    )


def _lift_constants(p: PlantParams) -> tuple[float, ...]:
    """The lead-lift and encapsulant parameters ``Plant._integrate`` uses, in its order."""
    return (
        p.k_tip_n_um,
        p.lead_yield_force_n / p.k_lead_n_um,
        p.lead_tear_force_n * (1.0 - p.lead_tear_spread),
        2.0 * p.lead_tear_force_n * p.lead_tear_spread,
        p.heat_release_k_ref_per_s,
        p.heat_release_ea_j_mol / GAS_CONSTANT,
        1.0 / (p.heat_release_t_ref_c + KELVIN),
        p.dispense_ul_per_kpa_s,
        p.cure_a_per_s,
        p.cure_ea_j_mol / GAS_CONSTANT,
        p.cure_a2_per_s,
        p.cure_ea2_j_mol / GAS_CONSTANT,
        p.cure_m,
        p.cure_n,
        p.coalesce_tau_s,
        p.coalesce_o2_half_mbar,
    )


class Plant:
    """The simulated bonder. Actuator methods take effect at ``clock.now()``."""

    def __init__(self, clock: Clock, params: PlantParams | None = None, seed: int = 0) -> None:
        self._clock = clock
        p = params if params is not None else PlantParams()
        self._p = p
        self._seed = seed
        self._t = clock.now()
        amb = p.ambient_c

        self._solidus = p.solidus_c
        self._liquidus = p.liquidus_c
        self._h_chip = p.c_chip_j_k * amb  # enthalpy, J (0 °C solid = 0)
        self._t_comp = amb
        self._t_chuck = amb
        self._t_fluid = amb
        self._tc = dict.fromkeys(TC_CHANNELS, amb)
        self._filament = [0.0] * p.zones
        self._lamp_cmd = [0.0] * p.zones

        self._outputs = dict.fromkeys(OUTPUTS, False)
        self._valves = dict.fromkeys(VALVES, False)
        self._pump_running = False
        self._chiller_running = False
        self._chiller_sp = p.chiller_setpoint_c
        self._chiller_i = 0.0  # integral term, W
        self._chiller_q = 0.0  # heat being removed now, W

        self._p_mbar = p.p_atm_mbar
        self._p_o2 = p.p_atm_mbar * p.o2_air_ppm * 1e-6

        self._z = 0.0
        self._z_v = 0.0
        self._z_target = 0.0
        self._z_speed = 0.0
        self._z_moving = False
        self._z_homed = False
        self._z_acc = p.z_accel_um_s2
        # Vacuum holds: when each engages (None = valve closed), and whether it holds.
        self._hold_due: dict[str, float | None] = {OUT_CHUCK_VACUUM: None, OUT_SUPPORT_VACUUM: None}
        self._held = {OUT_CHUCK_VACUUM: False, OUT_SUPPORT_VACUUM: False}
        # Leads: displacement, plastic set, tips stuck to the support, share torn.
        self._lead_d = 0.0
        self._lead_dp = 0.0
        self._tips_attached = True
        self._torn = 0.0

        self._uv_irr = 0.0
        self._uv_shutter = False
        self._uv_dose = 0.0
        self._heat_exposure = 0.0
        self._disp_kpa = 0.0
        self._disp_end: float | None = None
        self._dispensed = 0.0
        self._encap_in = 0.0
        self._cure = 0.0
        self._coalescence = 0.0

        self._e_in = 0.0
        self._e_chiller = 0.0
        self._e_loss = 0.0
        # Below this component temperature the heat release rate is under 1e-10 /s (a
        # millionth in three hours): the integration skips it.
        inv_t_on = 1.0 / (p.heat_release_t_ref_c + KELVIN) + GAS_CONSTANT / (
            p.heat_release_ea_j_mol
        ) * math.log(p.heat_release_k_ref_per_s / 1e-10)
        self._heat_release_t_on_c = 1.0 / inv_t_on - KELVIN if inv_t_on > 0.0 else -KELVIN

        self._faults = _Faults()
        self._fault_queue: list[tuple[float, int, PlantFault, Callable[[float], None] | None]] = []
        self._seq = itertools.count()
        # Index of the analyzer's last sample instant (it streams at multiples of its period).
        self._o2_n = math.floor(self._t / p.o2_sample_period_s)
        self._o2_sample = (self._p_o2 / self._p_mbar * 1e6, self._t)
        self._dio_deadline: float | None = None
        self._dio_watchdog_s = p.dio_watchdog_s
        if p.dio_watchdog_s is not None:
            self._dio_deadline = self._t + p.dio_watchdog_s
        self._observers: list[Callable[[Plant], None]] = []

        # What ``_integrate`` derives from the parameters (fixed for the plant's life) and
        # from the solder and the substep, worked out once: ~60 attribute reads and the
        # arithmetic on them cost a third of a 0.05 s span (docs/adr/0120).
        self._k_plant = _plant_constants(p)
        self._k_lift = _lift_constants(p)
        self._k_band = self._band_constants()
        self._k_h = math.nan  # the substep the factors below are for (none yet)
        self._k_of_h = (0.0, 0.0, 0.0)
        self._k_inv_d0 = 1.0 / p.adhesive_d0_mj_cm2
        self._k_hold_x = -0.5 * math.log(1.0 - p.tips_released_at)

    # ----------------------------------------------------------------- basics

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def params(self) -> PlantParams:
        return self._p

    @property
    def t(self) -> float:
        """Plant time the state was last integrated to."""
        return self._t

    def rng(self, stream: str) -> random.Random:
        """A random generator for one sensor's noise, reproducible from the plant's seed."""
        return random.Random(f"bonderd-plant:{self._seed}:{stream}")

    @property
    def state(self) -> PlantState:
        """The state now (integrates up to ``clock.now()`` first)."""
        self.advance()
        chip_c, melt = self._chip_temp()
        outs = dict(self._outputs)
        outs[OUT_LAMP_CONTACTOR] = self._contactor_energized()
        return PlantState(
            t=self._t,
            chip_c=chip_c,
            component_c=self._t_comp,
            chuck_c=self._t_chuck,
            fluid_c=self._t_fluid,
            melt_fraction=melt,
            solidus_c=self._solidus,
            liquidus_c=self._liquidus,
            tc_junction_c=dict(self._tc),
            lamp_cmd_pct=tuple(self._lamp_cmd),
            lamp_output_pct=tuple(self.lamp_output_pct()),
            filament_w=tuple(self._filament),
            g_chip_component_w_k=self._g_chip_comp(melt),
            pressure_mbar=self._p_mbar,
            o2_ppm=self.o2_ppm,
            o2_partial_mbar=self._p_o2,
            pumping=self._pumping(),
            valves=dict(self._valves),
            pump_running=self._pump_running,
            pump_tripped=self._faults.pump_tripped,
            chiller_running=self._chiller_running,
            chiller_failed=self._faults.chiller_failed,
            chiller_flow=self.chiller_flow,
            chiller_setpoint_c=self._chiller_sp,
            chiller_heat_removed_w=self._chiller_q,
            outputs=outs,
            contactor_energized=self._contactor_energized(),
            estop_pressed=self._faults.estop,
            door_closed=not self._faults.door_open,
            z_um=self._z,
            z_velocity_um_s=self._z_v,
            z_target_um=self._z_target,
            z_moving=self._z_moving,
            z_homed=self._z_homed,
            z_accel_um_s2=self._z_acc,
            z_stalled=self._faults.zstage_stalled,
            force_n=self.force_n,
            chuck_vacuum_held=self._held[OUT_CHUCK_VACUUM],
            support_vacuum_held=self._held[OUT_SUPPORT_VACUUM],
            lead_displacement_um=self._lead_d,
            lead_plastic_set_um=self._lead_dp,
            tips_attached=self._tips_attached,
            tips_released=self.tips_released,
            torn_fraction=self._torn,
            leads_torn=self._torn > 0.0,
            uv_shutter_open=self._uv_shutter,
            uv_irradiance_mw_cm2=self._uv_irr,
            uv_dose_mj_cm2=self._uv_dose,
            heat_release_exposure=self._heat_exposure,
            bonded_fraction=self.bonded_fraction,
            adhesive_degradation=self.adhesive_degradation,
            dispenser_pressure_kpa=self._disp_kpa,
            dispensing=self._disp_end is not None,
            dispensed_ul=self._dispensed,
            gap_ul=self.gap_ul,
            encapsulant_in_gap_ul=self._encap_in,
            fill_fraction=min(1.0, self._encap_in / self.gap_ul),
            overfill_ul=max(0.0, self._dispensed - self.gap_ul),
            cure_conversion=self._cure,
            coalescence=self._coalescence,
            energy_in_j=self._e_in,
            energy_chiller_j=self._e_chiller,
            energy_loss_j=self._e_loss,
            stored_energy_j=self.stored_energy_j,
        )

    @property
    def stored_energy_j(self) -> float:
        p = self._p
        return (
            self._h_chip
            + p.c_component_j_k * self._t_comp
            + p.c_chuck_j_k * self._t_chuck
            + p.c_fluid_j_k * self._t_fluid
        )

    # ----------------------------------------------------------- solder / chip

    def _band(self) -> tuple[float, float]:
        """(solidus, band width) of the melting range actually modelled."""
        width = self._liquidus - self._solidus
        if width < self._p.melt_band_min_k:
            return self._liquidus - self._p.melt_band_min_k, self._p.melt_band_min_k
        return self._solidus, width

    def _band_constants(self) -> tuple[float, float, float, float, float, float]:
        """(solidus, band, enthalpy at solidus and at liquidus, heat capacity inside the band,
        the band's enthalpy offset) of the enthalpy method, for ``_integrate``."""
        c_chip = self._p.c_chip_j_k
        lat = self._p.solder_latent_j
        ts, band = self._band()
        return (
            ts,
            band,
            c_chip * ts,
            c_chip * (ts + band) + lat,
            c_chip + lat / band,
            lat * ts / band,
        )

    def _chip_temp(self) -> tuple[float, float]:
        """Chip temperature and melt fraction from the chip node's enthalpy."""
        c = self._p.c_chip_j_k
        lat = self._p.solder_latent_j
        ts, band = self._band()
        h = self._h_chip
        if h <= c * ts:
            return h / c, 0.0
        if h >= c * (ts + band) + lat:
            return (h - lat) / c, 1.0
        temp = (h + lat * ts / band) / (c + lat / band)
        return temp, (temp - ts) / band

    def set_solder(self, solidus_c: float, liquidus_c: float) -> None:
        """Use the recipe's solder. Keeps the chip temperature; the melt fraction follows it."""
        if not (math.isfinite(solidus_c) and math.isfinite(liquidus_c)):
            raise ValueError("solidus and liquidus must be finite")
        if solidus_c > liquidus_c:
            raise ValueError(f"solidus {solidus_c} °C above liquidus {liquidus_c} °C")
        self.advance()
        temp, _ = self._chip_temp()
        self._solidus, self._liquidus = solidus_c, liquidus_c
        self._k_band = self._band_constants()
        ts, band = self._band()
        melt = min(1.0, max(0.0, (temp - ts) / band))
        self._h_chip = self._p.c_chip_j_k * temp + self._p.solder_latent_j * melt

    def _g_chip_comp(self, melt: float) -> float:
        p = self._p
        pressed = min(1.0, max(0.0, (p.p_atm_mbar - self._p_mbar) / p.p_atm_mbar))
        return (
            p.g_chip_comp_atm_w_k
            + (p.g_chip_comp_vac_w_k - p.g_chip_comp_atm_w_k) * pressed
            + p.g_chip_comp_melt_w_k * melt
        )

    # ------------------------------------------------------------------ lamps

    def _contactor_energized(self) -> bool:
        return self._outputs[OUT_LAMP_CONTACTOR] and not self._faults.estop

    def lamp_output_pct(self) -> list[float]:
        """Electrical output each zone delivers now, %."""
        if not self._contactor_energized():
            return [0.0] * self._p.zones
        enabled = self._outputs[OUT_SCR_ENABLE]
        faults = self._faults
        if not faults.lamp_dead and not faults.lamp_stuck_pct:
            # No lamp fault (every cycle but a fault test's, three calls per cycle): the
            # commands, as the loop below gives them (max(pct, 0.0) is pct for 0..100).
            return list(self._lamp_cmd) if enabled else [0.0] * len(self._lamp_cmd)
        out: list[float] = []
        for i, cmd in enumerate(self._lamp_cmd):
            if i in self._faults.lamp_dead:
                out.append(0.0)
                continue
            pct = cmd if enabled else 0.0
            # A shorted thyristor conducts whatever the enable or the command says; only the
            # contactor upstream can cut it.
            out.append(max(pct, self._faults.lamp_stuck_pct.get(i, 0.0)))
        return out

    def set_lamp_power(self, pct: Sequence[float]) -> None:
        if len(pct) != self._p.zones:
            raise ValueError(f"expected {self._p.zones} zones, got {len(pct)}")
        for i, v in enumerate(pct):
            if not (math.isfinite(v) and 0.0 <= v <= 100.0):
                raise ValueError(f"pct[{i}] = {v} outside 0..100")
        self.advance()
        self._lamp_cmd = [float(v) for v in pct]

    @property
    def lamp_dead_zones(self) -> frozenset[int]:
        return frozenset(self._faults.lamp_dead)

    @property
    def lamp_dead(self) -> Set[int]:
        """The zones with a dead lamp (a live view of ``lamp_dead_zones``)."""
        return self._faults.lamp_dead

    # -------------------------------------------------------------- digital I/O

    def set_output(self, name: str, on: bool) -> None:
        if name not in self._outputs:
            raise ValueError(f"unknown output {name!r}")
        self.advance()
        # The E-stop chain holds the contactor's output supply off: the bit cannot come on.
        if name == OUT_LAMP_CONTACTOR and self._faults.estop:
            on = False
        self._outputs[name] = on
        if name == OUT_UV_ENABLE and not on:
            self._uv_shutter = False  # the source's remote interlock opened: shutter closes
        self._sync_holds()

    def outputs(self) -> dict[str, bool]:
        self.advance()
        outs = dict(self._outputs)
        outs[OUT_LAMP_CONTACTOR] = self._contactor_energized()
        return outs

    def inputs(self) -> dict[str, bool]:
        self.advance()
        return {
            IN_ESTOP_OK: not self._faults.estop,
            IN_DOOR_CLOSED: not self._faults.door_open,
            IN_CHILLER_FLOW: self.chiller_flow,
            IN_CHUCK_VACUUM_OK: self._held[OUT_CHUCK_VACUUM],
            IN_SUPPORT_VACUUM_OK: self._held[OUT_SUPPORT_VACUUM],
        }

    # ----------------------------------------------------------- vacuum holds

    def _sync_holds(self) -> None:
        """Follow the hold valves: a closed valve (or a failed hold) lets go at once; an
        opened one engages ``vacuum_hold_s`` later (an event, see ``_next_event``)."""
        for name in (OUT_CHUCK_VACUUM, OUT_SUPPORT_VACUUM):
            if not self._outputs[name] or name in self._faults.hold_failed:
                self._held[name] = False
                self._hold_due[name] = None
            elif not self._held[name] and self._hold_due[name] is None:
                self._hold_due[name] = self._t + self._p.vacuum_hold_s

    def _engage_due_holds(self) -> None:
        for name, due in self._hold_due.items():
            if due is None or due > self._t:
                continue
            self._hold_due[name] = None
            if name == OUT_SUPPORT_VACUUM and not self._head_at_support():
                # The head is away from the support: the suction cup cannot seal.
                continue
            self._held[name] = True

    def _head_at_support(self) -> bool:
        support_z = self._p.z_min_um + self._lead_d
        return abs(self._z - support_z) <= self._p.support_capture_um

    @property
    def chuck_vacuum_held(self) -> bool:
        return self._held[OUT_CHUCK_VACUUM]

    @property
    def support_vacuum_held(self) -> bool:
        return self._held[OUT_SUPPORT_VACUUM]

    def dio_contact(self) -> None:
        """The daemon talked to the I/O coupler: re-arm its watchdog."""
        self.advance()
        if self._dio_watchdog_s is not None:
            self._dio_deadline = self._t + self._dio_watchdog_s

    def arm_dio_watchdog(self, seconds: float) -> None:
        """Configure the coupler's output watchdog, as the daemon does at start-up."""
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"watchdog time must be > 0, got {seconds}")
        self.advance()
        self._dio_watchdog_s = seconds
        self._dio_deadline = self._t + seconds

    @property
    def dio_watchdog_s(self) -> float | None:
        return self._dio_watchdog_s

    def add_observer(self, observer: Callable[[Plant], None]) -> None:
        """Call ``observer(plant)`` after every integration that moved time (test invariants)."""
        self._observers.append(observer)

    @property
    def chip_c(self) -> float:
        return self._chip_temp()[0]

    @property
    def component_c(self) -> float:
        return self._t_comp

    @property
    def contactor_energized(self) -> bool:
        return self._contactor_energized()

    # ------------------------------------------------------------- vacuum / gas

    def set_valve(self, name: str, open_: bool) -> None:
        if name not in self._valves:
            raise ValueError(f"unknown valve {name!r}")
        self.advance()
        self._valves[name] = open_

    def valves(self) -> dict[str, bool]:
        self.advance()
        return dict(self._valves)

    def pump_start(self) -> None:
        self.advance()
        if self._faults.pump_tripped:
            raise RuntimeError("pump tripped")
        self._pump_running = True

    def pump_stop(self) -> None:
        self.advance()
        self._pump_running = False

    @property
    def pump_running(self) -> bool:
        return self._pump_running

    @property
    def pump_tripped(self) -> bool:
        return self._faults.pump_tripped

    def _pumping(self) -> bool:
        return self._pump_running and self._valves[VALVE_PUMP]

    @property
    def pressure_mbar(self) -> float:
        return self._p_mbar

    @property
    def o2_ppm(self) -> float:
        return self._p_o2 / self._p_mbar * 1e6

    def gauge_fault(self) -> tuple[str | None, float]:
        """(None | "fail" | "stuck", stuck value mbar)."""
        return self._faults.gauge, self._faults.gauge_stuck_mbar

    def o2_sample(self) -> tuple[float, float]:
        """The analyzer's latest streamed value and the time it was measured."""
        self.advance()
        return self._o2_sample

    @property
    def o2_measuring(self) -> bool:
        return self._faults.o2 != "fail"

    # ---------------------------------------------------------------- chiller

    def chiller_start(self) -> None:
        self.advance()
        if self._faults.chiller_failed:
            raise RuntimeError("chiller failed")
        if not self._chiller_running:
            self._chiller_i = 0.0
        self._chiller_running = True

    def chiller_stop(self) -> None:
        self.advance()
        self._chiller_running = False
        self._chiller_q = 0.0

    def chiller_set_setpoint(self, celsius: float) -> None:
        lo, hi = self._p.chiller_setpoint_min_c, self._p.chiller_setpoint_max_c
        if not (math.isfinite(celsius) and lo <= celsius <= hi):
            raise ValueError(f"setpoint {celsius} °C outside {lo}..{hi}")
        self.advance()
        self._chiller_sp = float(celsius)

    @property
    def chiller_running(self) -> bool:
        return self._chiller_running

    @property
    def chiller_failed(self) -> bool:
        return self._faults.chiller_failed

    @property
    def chiller_setpoint_c(self) -> float:
        return self._chiller_sp

    @property
    def chiller_flow(self) -> bool:
        return self._chiller_running and not self._faults.chiller_failed

    @property
    def fluid_c(self) -> float:
        return self._t_fluid

    # ----------------------------------------------------------- thermocouples

    def tc_junction(self, channel: str) -> float:
        """The junction temperature of a thermocouple (the node, lagged), °C."""
        return self._tc[channel]

    def tc_fault(self, channel: str) -> TcFault | None:
        return self._faults.tc.get(channel)

    @property
    def tc_junctions(self) -> Mapping[str, float]:
        """Every junction temperature, °C (a live view: read it, do not keep it)."""
        return self._tc

    @property
    def tc_faults(self) -> Mapping[str, TcFault]:
        """The thermocouple faults in effect, by channel (a live view)."""
        return self._faults.tc

    # ----------------------------------------------------------------- Z stage

    def z_home(self) -> None:
        self.advance()
        self._z_homed = True
        self._start_move(0.0, self._p.z_speed_max_um_s, self._p.z_accel_um_s2)

    def z_move(
        self, position_um: float, speed_um_s: float, accel_um_s2: float | None = None
    ) -> None:
        """Start a trapezoidal move; ``accel_um_s2`` None = the configured default."""
        p = self._p
        if not (math.isfinite(position_um) and p.z_min_um <= position_um <= p.z_max_um):
            raise ValueError(f"position {position_um} µm outside {p.z_min_um}..{p.z_max_um}")
        if not (math.isfinite(speed_um_s) and 0.0 < speed_um_s <= p.z_speed_max_um_s):
            raise ValueError(f"speed {speed_um_s} µm/s outside (0, {p.z_speed_max_um_s}]")
        acc = p.z_accel_um_s2 if accel_um_s2 is None else accel_um_s2
        if not (math.isfinite(acc) and 0.0 < acc <= p.z_accel_max_um_s2):
            raise ValueError(f"acceleration {acc} µm/s² outside (0, {p.z_accel_max_um_s2}]")
        self.advance()
        self._start_move(float(position_um), float(speed_um_s), float(acc))

    def _start_move(self, target: float, speed: float, accel: float) -> None:
        self._z_target = target
        self._z_speed = speed
        self._z_acc = accel
        self._z_moving = True

    def z_stop(self) -> None:
        """Decelerate to a stop at the move's acceleration."""
        self.advance()
        if not self._z_moving:
            return
        if self._faults.zstage_stalled:
            # The profile generator ends its move; the axis stays where it stuck.
            self._z_moving = False
            self._z_target = self._z
            return
        v = self._z_v
        stop_at = self._z + math.copysign(v * v / (2.0 * self._z_acc), v)
        self._z_target = min(self._p.z_max_um, max(self._p.z_min_um, stop_at))
        self._z_speed = max(abs(v), 1e-9)

    @property
    def z_homed(self) -> bool:
        return self._z_homed

    @property
    def z_moving(self) -> bool:
        return self._z_moving

    @property
    def z_um(self) -> float:
        return self._z

    @property
    def force_n(self) -> float:
        """The Z head's load cell: only the leads pull on it, through the held support."""
        if not (self._held[OUT_SUPPORT_VACUUM] and self._held[OUT_CHUCK_VACUUM]):
            return 0.0
        p = self._p
        if self._tips_attached:
            f = p.k_tip_n_um * max(0.0, self._lead_d)
        else:
            f = p.k_lead_n_um * (self._lead_d - self._lead_dp)
        return (1.0 - self._torn) * f

    @property
    def z_stalled(self) -> bool:
        return self._faults.zstage_stalled

    @property
    def tips_released(self) -> bool:
        """The tips are free of the support without tearing."""
        return not self._tips_attached and self._torn < 1.0

    @property
    def zstage_failed(self) -> bool:
        return self._faults.zstage_failed

    # --------------------------------------------------------- UV / adhesive

    def uv_set_irradiance(self, mw_cm2: float) -> None:
        lim = self._p.uv_irradiance_max_mw_cm2
        if not (math.isfinite(mw_cm2) and 0.0 <= mw_cm2 <= lim):
            raise ValueError(f"irradiance {mw_cm2} mW/cm² outside 0..{lim}")
        self.advance()
        self._uv_irr = float(mw_cm2)

    def uv_shutter(self, open_: bool) -> None:
        self.advance()
        if open_ and self._faults.uv_failed:
            raise RuntimeError("UV source failed")
        if open_ and not self._outputs[OUT_UV_ENABLE]:
            raise RuntimeError("UV remote interlock open: the shutter stays closed")
        self._uv_shutter = open_

    @property
    def uv_shutter_open(self) -> bool:
        return self._uv_shutter

    @property
    def uv_enabled(self) -> bool:
        """The source's remote-interlock circuit is closed (coupler output ``uv_enable``)."""
        return self._outputs[OUT_UV_ENABLE]

    @property
    def uv_irradiance_mw_cm2(self) -> float:
        return self._uv_irr

    @property
    def uv_failed(self) -> bool:
        return self._faults.uv_failed

    @property
    def bonded_fraction(self) -> float:
        """Of the connecting layer: UV and heat degradation combined."""
        return math.exp(-(self._uv_dose / self._p.adhesive_d0_mj_cm2 + self._heat_exposure))

    @property
    def adhesive_degradation(self) -> float:
        return 1.0 - self.bonded_fraction

    def _tip_pull_off_n(self) -> float:
        """Force that pulls the tips off the support now; 0 once the layer is released."""
        p = self._p
        b_rel = 1.0 - p.tips_released_at
        return p.tip_adhesion_n * max(0.0, (self.bonded_fraction - b_rel) / (1.0 - b_rel))

    # ------------------------------------------------------------ encapsulant

    @property
    def gap_ul(self) -> float:
        """Volume between chip and support now (µL = mm³)."""
        p = self._p
        return p.gap_area_mm2 * max(p.gap0_um, p.gap0_um + self._lead_d) * 1e-3

    @property
    def coalescence(self) -> float:
        return self._coalescence

    # --------------------------------------------------------------- dispenser

    def dispenser_set_pressure(self, kpa: float) -> None:
        lim = self._p.dispense_pressure_max_kpa
        if not (math.isfinite(kpa) and 0.0 <= kpa <= lim):
            raise ValueError(f"pressure {kpa} kPa outside 0..{lim}")
        self.advance()
        self._disp_kpa = float(kpa)

    def dispense(self, duration_s: float) -> None:
        lim = self._p.dispense_shot_max_s
        if not (math.isfinite(duration_s) and 0.0 < duration_s <= lim):
            raise ValueError(f"duration {duration_s} s outside (0, {lim}]")
        self.advance()
        if self._faults.dispenser_failed:
            raise RuntimeError("dispenser failed")
        self._disp_end = self._t + duration_s

    def dispense_stop(self) -> None:
        self.advance()
        self._disp_end = None

    @property
    def dispensing(self) -> bool:
        return self._disp_end is not None

    @property
    def dispenser_pressure_kpa(self) -> float:
        return self._disp_kpa

    @property
    def dispenser_failed(self) -> bool:
        return self._faults.dispenser_failed

    # ----------------------------------------------------------------- faults

    def unresponsive(self, device: str) -> bool:
        """Whether the device named like a driver ("tc", "lamps", ...) does not answer."""
        return device in self._faults.unresponsive

    @property
    def unresponsive_devices(self) -> Set[str]:
        """The devices (named like drivers) that do not answer, as of now."""
        return self._faults.unresponsive

    def check_fault(self, fault: PlantFault) -> None:
        """Raise ValueError if this plant cannot apply the fault."""
        key = fault_device_key(fault.device, self._p.zones, TC_CHANNELS)
        if key is None:
            raise ValueError(f"unknown fault device {fault.device!r}")
        if fault.kind not in FAULT_KINDS[key]:
            allowed = ", ".join(sorted(FAULT_KINDS[key]))
            raise ValueError(f"kind {fault.kind!r} not valid for {fault.device!r} ({allowed})")
        if fault.kind in FAULT_VALUE_REQUIRED and fault.value is None:
            raise ValueError(f"kind {fault.kind!r} needs a value")
        if fault.value is not None:
            if not math.isfinite(fault.value):
                raise ValueError("fault value must be finite")
            if fault.kind not in FAULT_VALUE_REQUIRED | FAULT_VALUE_OPTIONAL:
                raise ValueError(f"kind {fault.kind!r} takes no value")

    def schedule_fault(
        self,
        fault: PlantFault | SupportsPlantFault,
        at_t: float,
        on_fire: Callable[[float], None] | None = None,
    ) -> int:
        """Apply ``fault`` when the plant's integration passes ``at_t`` (now, if already past).

        ``on_fire`` is called with the plant time the fault took effect. Returns a handle
        for ``cancel_fault``.
        """
        pf = fault if isinstance(fault, PlantFault) else fault.to_plant_fault()
        self.check_fault(pf)
        if not math.isfinite(at_t):
            raise ValueError(f"fault time must be finite, got {at_t}")
        handle = next(self._seq)
        heapq.heappush(self._fault_queue, (at_t, handle, pf, on_fire))
        return handle

    def cancel_fault(self, handle: int) -> bool:
        """Drop a scheduled fault that has not fired; False if there was none."""
        before = len(self._fault_queue)
        self._fault_queue = [e for e in self._fault_queue if e[1] != handle]
        heapq.heapify(self._fault_queue)
        return len(self._fault_queue) < before

    def clear_faults(self) -> None:
        """Repair everything and drop pending faults. Actuators stay as they are (a tripped
        pump or failed chiller stays stopped until started again)."""
        self.advance()
        self._fault_queue.clear()
        self._faults = _Faults()
        self._sync_holds()  # a repaired hold pulls its vacuum again if its valve is open

    def _apply_fault(self, f: PlantFault) -> None:
        flt = self._faults
        dev, kind, val = f.device, f.kind, f.value
        if kind == "no_response":
            base = dev.split(".", 1)[0]
            if dev.startswith("tc."):
                ch = dev[3:]
                reading = self._tc_clean(ch)
                flt.tc[ch] = TcFault("no_response", self._t, 0.0, reading)
            else:
                # A zone's SCR not answering stalls the whole bank's bus transaction.
                flt.unresponsive.add(base)
            return
        if dev.startswith("tc."):
            ch = dev[3:]
            reading = self._tc_clean(ch)
            if kind == "stuck":
                flt.tc[ch] = TcFault(kind, self._t, reading if val is None else val, reading)
            else:
                flt.tc[ch] = TcFault(kind, self._t, 0.0 if val is None else val, reading)
        elif dev == "gauge":
            flt.gauge = kind
            if kind == "stuck":
                flt.gauge_stuck_mbar = self._p_mbar if val is None else val
        elif dev == "o2":
            flt.o2 = kind
            if kind == "stuck":
                flt.o2_stuck_ppm = self._o2_sample[0] if val is None else val
        elif kind == "leak":
            flt.extra_leak_mbar_l_s += val if val is not None else 0.0
        elif kind == "tear":
            flt.torn = True
        elif dev == "chiller":
            flt.chiller_failed = True
            self._chiller_running = False
            self._chiller_q = 0.0
        elif dev == "pump":
            flt.pump_tripped = True
            self._pump_running = False
        elif dev.startswith("lamps"):
            zones = range(self._p.zones) if dev == "lamps" else [int(dev[7:]) - 1]
            for z in zones:
                if kind == "fail":
                    flt.lamp_dead.add(z)
                else:
                    flt.lamp_stuck_pct[z] = 100.0 if val is None else val
        elif kind == "estop":
            flt.estop = True
            self._outputs[OUT_LAMP_CONTACTOR] = False
        elif kind == "door_open":
            flt.door_open = True
        elif dev == "zstage" and kind == "stall":
            # Following error: the axis stops (jammed, lost motor phase) while the
            # controller still runs its profile and reports busy.
            flt.zstage_stalled = True
            self._z_v = 0.0
        elif dev == "zstage":
            flt.zstage_failed = True
            self._z_moving = False
            self._z_v = 0.0
            self._z_target = self._z
        elif dev in (OUT_CHUCK_VACUUM, OUT_SUPPORT_VACUUM):
            flt.hold_failed.add(dev)
            self._sync_holds()
        elif dev == "uv":
            flt.uv_failed = True
            self._uv_shutter = False
        elif dev == "dispenser":
            flt.dispenser_failed = True
            self._disp_end = None

    def _tc_clean(self, channel: str) -> float:
        """The channel's noise-free quantized reading now."""
        res = self._p.tc_resolution_c
        return round(round(self._tc[channel] / res) * res, 6)

    # --------------------------------------------------------------- advance

    def advance(self) -> None:
        """Integrate the plant up to ``clock.now()``."""
        t_end = self._clock.now()
        if self._t >= t_end:
            # Already integrated to now (every device of a cycle asks at the same instant):
            # only a fault scheduled in the past, which fires even if time did not move.
            if self._fault_queue and self._fault_queue[0][0] <= self._t:
                self._process_events()
            return
        while self._t < t_end:
            t_ev = self._next_event()
            if t_ev > t_end:
                self._integrate(t_end)
                break
            if t_ev > self._t:
                self._integrate(t_ev)
            self._process_events()
        # Faults scheduled in the past fire at the next advance even if time did not move.
        if self._fault_queue and self._fault_queue[0][0] <= self._t:
            self._process_events()
        for observer in self._observers:
            observer(self)

    def _next_event(self) -> float:
        t_ev = (self._o2_n + 1) * self._p.o2_sample_period_s
        if self._fault_queue:
            t_ev = min(t_ev, self._fault_queue[0][0])
        if self._disp_end is not None:
            t_ev = min(t_ev, self._disp_end)
        if self._dio_deadline is not None:
            t_ev = min(t_ev, self._dio_deadline)
        for due in self._hold_due.values():
            if due is not None:
                t_ev = min(t_ev, due)
        return t_ev

    def _process_events(self) -> None:
        t = self._t
        while self._fault_queue and self._fault_queue[0][0] <= t:
            _, _, pf, cb = heapq.heappop(self._fault_queue)
            self._apply_fault(pf)
            if cb is not None:
                cb(t)
        if self._disp_end is not None and self._disp_end <= t:
            self._disp_end = None
        if self._dio_deadline is not None and self._dio_deadline <= t:
            # The coupler's watchdog drops every output; it re-arms on the next contact.
            for name in self._outputs:
                self._outputs[name] = False
            self._uv_shutter = False  # uv_enable dropped with the rest
            self._dio_deadline = None
            self._sync_holds()
        self._engage_due_holds()
        period = self._p.o2_sample_period_s
        n = math.floor(t / period + 1e-9)
        if n > self._o2_n:
            self._o2_n = n
            if self._faults.o2 != "fail":
                val = self._faults.o2_stuck_ppm if self._faults.o2 == "stuck" else self.o2_ppm
                self._o2_sample = (val, n * period)

    def _integrate(self, t1: float) -> None:
        """Integrate from ``self._t`` to ``t1`` with no discrete event in between.

        The loop works on local variables only: attribute access is what makes pure-Python
        integration slow.
        """
        span = t1 - self._t
        if span <= 0.0:
            return
        (
            dt_s,
            zone_max_w,
            fil_tau,
            c_chip,
            lat,
            a_chip,
            a_comp,
            inv_cm,
            inv_ck,
            inv_cf,
            g_atm,
            g_vac_extra,
            g_melt,
            g_mk_clamped,
            g_mk_free,
            g_kf_flow,
            g_kf_stagnant,
            g_ka,
            g_fa,
            rad,
            amb,
            amb_k4,
            p_atm,
            inv_patm,
            g_gas,
            kp,
            ki,
            q_cool,
            q_heat,
            tc_tau_chip,
            tc_tau_other,
            inv_v,
            leak0,
            tear_g,
            x_air,
            x_n2,
            n2_max,
            n2_b,
            n2_inv_span,
            inv_sup,
            vent_g,
            pump_s,
            p_ult,
        ) = self._k_plant
        n = max(1, math.ceil(span / dt_s - 1e-9))
        h = span / n
        if h == self._k_h:
            k_fil, k_tc_chip, k_tc_other = self._k_of_h
        else:
            # Every span of a run but its odd ones has the same substep: the same factors.
            k_fil = 1.0 - math.exp(-h / fil_tau)
            k_tc_chip = 1.0 - math.exp(-h / tc_tau_chip)
            k_tc_other = 1.0 - math.exp(-h / tc_tau_other)
            self._k_h, self._k_of_h = h, (k_fil, k_tc_chip, k_tc_other)

        # Piecewise-constant inputs over the span.
        zone_w = [pct / 100.0 * zone_max_w for pct in self.lamp_output_pct()]
        fil = self._filament
        fil_settled = True
        for f, w in zip(fil, zone_w, strict=True):
            if not abs(f - w) < 1e-9:
                fil_settled = False
                break
        fil_sum = sum(fil)

        ts, band, h_sol, h_liq, c_band, lat_ts_band = self._k_band

        g_mk = g_mk_clamped if self._outputs[OUT_FILM_CLAMP] else g_mk_free
        flow = self._chiller_running and not self._faults.chiller_failed
        g_kf = g_kf_flow if flow else g_kf_stagnant

        sp = self._chiller_sp
        chill_i = self._chiller_i
        q_ch = 0.0

        tc = self._tc
        tc_chip, tc_comp, tc_chuck = tc["chip"], tc["component"], tc["chuck"]

        # Gas
        faults = self._faults
        leak = leak0 + faults.extra_leak_mbar_l_s
        tear_c = tear_g if faults.torn else 0.0
        n2_on = self._valves[VALVE_N2_PURGE]
        vent_c = vent_g if self._valves[VALVE_VENT] else 0.0
        s_pump = pump_s if self._pump_running and self._valves[VALVE_PUMP] else 0.0

        def n2_flow(p_mbar: float) -> float:
            """N2 backfill throughput, ISO 6358: choked up to the critical pressure ratio,
            then an elliptic fall to zero at the supply pressure."""
            ratio = p_mbar * inv_sup
            if ratio <= n2_b:
                return n2_max
            if ratio >= 1.0:
                return 0.0
            r = (ratio - n2_b) * n2_inv_span
            return n2_max * math.sqrt(1.0 - r * r)

        # Conductance to the outside (leak, tear, vent), what it brings in as O2 below the
        # atmosphere, and the pressure's relaxation factors over one substep.
        g_out = leak * inv_patm + tear_c + vent_c
        g_in_o2 = (leak * inv_patm + tear_c) * x_air + vent_c * x_n2
        inv_g_out = 1.0 / g_out if g_out else 0.0
        e_out = math.exp(-g_out * h * inv_v)
        # The mean over the substep of a pressure relaxing with factor e: (1 − e) / (h/τ).
        m_out = (1.0 - e_out) / (g_out * h * inv_v) if g_out else 1.0
        inv_g_pump = 1.0 / (g_out + s_pump) if s_pump else 0.0
        e_pump = math.exp(-(g_out + s_pump) * h * inv_v)
        m_pump = (1.0 - e_pump) / ((g_out + s_pump) * h * inv_v) if s_pump else 1.0

        # Z stage and leads. The leads follow the stage only while both holds hold; without
        # them the support stays behind (or rides along with the chip) and the leads spring
        # back to their plastic set.
        z_moving = self._z_moving and not faults.zstage_stalled
        z, zv = self._z, self._z_v
        z_target, z_speed = self._z_target, self._z_speed
        z_acc = self._z_acc
        held = self._held[OUT_CHUCK_VACUUM] and self._held[OUT_SUPPORT_VACUUM]
        lead_dp = self._lead_dp
        lead_d = self._lead_d if held else lead_dp
        attached = self._tips_attached
        pull_off = 0.0
        if attached and z_moving and held:  # the only case the substeps pull on the tips
            pull_off = self._tip_pull_off_n()
            if pull_off <= 0.0:
                attached = False  # the connecting layer no longer holds the tips
        # Otherwise the check at the end of the span decides alone, as both did: the layer
        # only degrades (UV dose and heat exposure only grow), so one that holds at the end
        # held at the start.
        torn = self._torn
        (
            k_tip,
            d_yield,
            tear_lo,
            tear_span,
            hr_k_ref,
            hr_ea_r,
            hr_inv_tref,
            disp_ul_per_kpa_s,
            cure_a1,
            cure_e1,
            cure_a2,
            cure_e2,
            cure_m,
            cure_n,
            coal_tau,
            coal_o2_half,
        ) = self._k_lift

        # Connecting layer: UV dose and the Arrhenius heat exposure. The rate is linearized
        # around a temperature refreshed every 0.5 K (exp() is the costly part of this loop
        # while the component ramps): error (Ea/RT²·0.5 K)²/2 < 0.1 %.
        uv_rate = self._uv_irr if (self._uv_shutter and not faults.uv_failed) else 0.0
        dose = self._uv_dose
        heat_x = self._heat_exposure
        hr_t_on = self._heat_release_t_on_c
        hr_t0 = -1e9
        hr_kh = hr_ksh = 0.0

        # Encapsulant: dispensing, flow into the gap, cure (only where some was dispensed).
        disp_rate = disp_ul_per_kpa_s * self._disp_kpa if self._disp_end is not None else 0.0
        dispensed = self._dispensed
        encap = dispensed > 0.0 or disp_rate > 0.0
        enc_in = self._encap_in
        cure = self._cure
        if encap:
            p = self._p
            k_flow = 1.0 - math.exp(-h / p.gap_flow_tau_s(p.gap0_um + max(0.0, lead_d)))
        else:
            k_flow = 0.0
        cure_t_last = -1e9
        k1 = k2 = 0.0

        # Solder-paste coalescence while molten, slowed by the O2 partial pressure (mbar).
        coal = self._coalescence
        coal_k = 1.0 / (coal_tau * (1.0 + self._p_o2 / coal_o2_half))

        hc = self._h_chip
        tm, tk, tf = self._t_comp, self._t_chuck, self._t_fluid
        pr, po2 = self._p_mbar, self._p_o2
        e_in = e_ch = e_loss = 0.0

        for _ in range(n):
            if not fil_settled:
                fil_sum = 0.0
                for i, w in enumerate(zone_w):
                    fil[i] += (w - fil[i]) * k_fil
                    fil_sum += fil[i]

            # Working-space gas: throughputs in mbar·L/s; outflows carry the current mixture.
            # The leak, the tear, the vent and the pump are linear in the pressure: over the
            # substep the pressure relaxes exactly toward where they (and the N2 inflow, held
            # at its start value) balance. An explicit step would pump down or vent 2–7 %
            # too fast per time constant (vent τ 0.2 s, pump 0.67 s; docs/adr/0121).
            if n2_on:
                # The N2 inflow falls with the pressure near the supply's: its mean over the
                # substep (Heun: at the start and at the end predicted with the start value).
                q_n2 = n2_flow(pr)
                if s_pump and pr > p_ult:
                    p_pred = pr + (pr - (g_out * p_atm + s_pump * p_ult + q_n2) * inv_g_pump) * (
                        e_pump - 1.0
                    )
                elif g_out:
                    p_pred = pr + (pr - (g_out * p_atm + q_n2) * inv_g_out) * (e_out - 1.0)
                else:
                    p_pred = pr + h * q_n2 * inv_v
                q_n2 = 0.5 * (q_n2 + n2_flow(p_pred))
                # Nor can it fill past the supply pressure, where it stops (its slope is
                # infinite there: a step would overshoot).
                q_fill = (1.0 - pr * inv_sup) / (h * inv_v * inv_sup)
                q_n2 = q_fill if q_n2 > q_fill else q_n2
            else:
                q_n2 = 0.0
            x = po2 / pr
            if s_pump and pr > p_ult:
                p_inf = (g_out * p_atm + s_pump * p_ult + q_n2) * inv_g_pump
                p_mean = p_inf + (pr - p_inf) * m_pump
                pr = p_inf + (pr - p_inf) * e_pump
            elif g_out:
                p_inf = (g_out * p_atm + q_n2) * inv_g_out
                p_mean = p_inf + (pr - p_inf) * m_out
                pr = p_inf + (pr - p_inf) * e_out
            else:
                p_mean = pr + 0.5 * h * q_n2 * inv_v
                pr += h * q_n2 * inv_v
            # O2: what flowed in over the substep brings its own mixture (air through the leak
            # and the tear, N2 through the vent line and the backfill); what left (the pump, the
            # leak and the vent above the atmosphere) took the mixture of the substep's start.
            # po2 = x·(p_end − gas in) + O2 in: mixing is exact, pumping keeps the fraction.
            dp_atm = p_atm - p_mean
            if dp_atm > 0.0:
                gas_in = (g_out * dp_atm + q_n2) * h * inv_v
                po2 = x * (pr - gas_in) + (g_in_o2 * dp_atm + q_n2 * x_n2) * h * inv_v
            else:
                gas_in = q_n2 * h * inv_v
                po2 = x * (pr - gas_in) + q_n2 * x_n2 * h * inv_v
            # max() without the call: the same result (NaN and -0.0 included), 10x a cycle.
            pr = 1e-9 if pr < 1e-9 else pr
            po2 = 0.0 if po2 < 0.0 else po2

            if hc <= h_sol:
                tcp = hc / c_chip
                melt = 0.0
            elif hc >= h_liq:
                tcp = (hc - lat) / c_chip
                melt = 1.0
            else:
                tcp = (hc + lat_ts_band) / c_band
                melt = (tcp - ts) / band
            if melt and coal < 1.0:
                coal += (1.0 - coal) * melt * coal_k * h

            # The film and the gas act on the chip at the substep's mean pressure: a vent
            # releases the film within a few substeps (τ 0.2 s).
            pressed = (p_atm - p_mean) * inv_patm
            pressed = 0.0 if pressed < 0.0 else (1.0 if pressed > 1.0 else pressed)
            q_cc = (g_atm + g_vac_extra * pressed + g_melt * melt) * (tcp - tm)
            tck = tcp + KELVIN
            q_chip_loss = rad * (tck * tck * tck * tck - amb_k4) + g_gas * p_mean * inv_patm * (
                tcp - amb
            )
            q_mk = g_mk * (tm - tk)
            q_kf = g_kf * (tk - tf)
            q_ka = g_ka * (tk - amb)
            q_fa = g_fa * (tf - amb)
            if flow:
                err = tf - sp
                chill_i += ki * err * h
                if chill_i > q_cool:
                    chill_i = q_cool
                elif chill_i < -q_heat:
                    chill_i = -q_heat
                q_ch = kp * err + chill_i
                if q_ch > q_cool:
                    q_ch = q_cool
                elif q_ch < -q_heat:
                    q_ch = -q_heat

            q_in_chip = a_chip * fil_sum
            q_in_comp = a_comp * fil_sum
            hc += h * (q_in_chip - q_cc - q_chip_loss)
            tm += h * (q_in_comp + q_cc - q_mk) * inv_cm
            tk += h * (q_mk - q_kf - q_ka) * inv_ck
            tf += h * (q_kf - q_ch - q_fa) * inv_cf
            e_in += h * (q_in_chip + q_in_comp)
            e_ch += h * q_ch
            e_loss += h * (q_chip_loss + q_ka + q_fa)

            tc_chip += (tcp - tc_chip) * k_tc_chip
            tc_comp += (tm - tc_comp) * k_tc_other
            tc_chuck += (tk - tc_chuck) * k_tc_other

            if z_moving:
                z_prev = z
                # Work along the direction to the target. The velocity at the end of the
                # substep is the one that still allows braking at z_acc onto the target from
                # where the substep ends (v1² = 2·a·(d − (v0 + v1)·h/2)), limited by the speed
                # and by the acceleration; the position moves at the substep's mean velocity.
                dist = z_target - z
                d = abs(dist)
                sgn = 1.0 if dist >= 0.0 else -1.0
                u0 = zv * sgn
                ah = z_acc * h
                if d <= max(u0, 0.0) * h + 1e-6 and u0 <= ah:
                    # Arrives within this substep at crawl speed: the servo settles on target.
                    z, zv, z_moving = z_target, 0.0, False
                else:
                    disc = ah * ah + 8.0 * z_acc * d - 4.0 * ah * u0
                    u1 = 0.5 * (math.sqrt(disc) - ah) if disc > 0.0 else 0.0
                    u1 = max(min(u1, z_speed, u0 + ah), u0 - ah)
                    z += sgn * 0.5 * (u0 + u1) * h
                    zv = sgn * u1
                if held:
                    lead_d += z - z_prev
                    if attached:
                        # Stretched between chip and support: the weaker leads tear as the
                        # force rises (strengths spread uniformly); the rest peel off when
                        # the force reaches the layer's pull-off force.
                        f_tip = k_tip * lead_d
                        if f_tip > tear_lo:
                            f_eff = f_tip if f_tip < pull_off else pull_off
                            if tear_span:
                                frac = (f_eff - tear_lo) / tear_span
                            else:
                                frac = 1.0 if f_eff > tear_lo else 0.0
                            if frac > torn:
                                torn = 1.0 if frac > 1.0 else frac
                        if f_tip >= pull_off:
                            attached = False
                    elif lead_d - lead_dp > d_yield:
                        lead_dp = lead_d - d_yield  # plastic hinges: the force levels off
                    elif lead_dp - lead_d > d_yield:
                        lead_dp = lead_d + d_yield

            if uv_rate:
                dose += uv_rate * h
            if tm > hr_t_on:
                dt_hr = tm - hr_t0
                if dt_hr > 0.5 or dt_hr < -0.5:
                    hr_t0, dt_hr = tm, 0.0
                    inv_t = 1.0 / (tm + KELVIN)
                    hr_kh = hr_k_ref * math.exp(-hr_ea_r * (inv_t - hr_inv_tref)) * h
                    hr_ksh = hr_kh * hr_ea_r * inv_t * inv_t  # d(k·h)/dT
                heat_x += hr_kh + hr_ksh * dt_hr
            if encap:
                if disp_rate:
                    dispensed += disp_rate * h
                    # Fresh, uncured encapsulant mixes into what is there.
                    cure -= cure * disp_rate * h / dispensed
                enc_in += (dispensed - enc_in) * k_flow
                if cure < 1.0:
                    if tm - cure_t_last > 0.02 or cure_t_last - tm > 0.02:
                        cure_t_last = tm
                        inv_t = 1.0 / (tm + KELVIN)
                        k1 = cure_a1 * math.exp(-cure_e1 * inv_t)
                        k2 = cure_a2 * math.exp(-cure_e2 * inv_t)
                    rate = (k1 + k2 * cure**cure_m) * (1.0 - cure) ** cure_n
                    cure = min(cure + h * rate, 1.0)

        self._filament = fil
        self._h_chip = hc
        self._t_comp, self._t_chuck, self._t_fluid = tm, tk, tf
        self._chiller_i = chill_i
        self._chiller_q = q_ch if flow else 0.0
        tc["chip"], tc["component"], tc["chuck"] = tc_chip, tc_comp, tc_chuck
        self._p_mbar, self._p_o2 = pr, po2
        self._z, self._z_v = z, zv
        if not faults.zstage_stalled:
            self._z_moving = z_moving
        self._lead_d, self._lead_dp = lead_d, lead_dp
        self._torn = torn
        self._cure = cure
        self._uv_dose = dose
        self._heat_exposure = heat_x
        self._dispensed = dispensed
        self._encap_in = enc_in
        self._coalescence = coal
        # Far from release (exposure under half of -ln of the released bonded fraction, so the
        # bonded fraction above its square root) the layer holds without working it out.
        self._tips_attached = attached and (
            dose * self._k_inv_d0 + heat_x < self._k_hold_x or self._tip_pull_off_n() > 0.0
        )
        self._e_in += e_in
        self._e_chiller += e_ch
        self._e_loss += e_loss
        self._t = t1
