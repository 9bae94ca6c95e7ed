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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Final, Protocol

from drivers.clock import Clock
from drivers.protocols import (
    IN_CHILLER_FLOW,
    IN_DOOR_CLOSED,
    IN_ESTOP_OK,
    OUT_FILM_CLAMP,
    OUT_LAMP_CONTACTOR,
    OUT_SCR_ENABLE,
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
    "zstage": frozenset({"fail", "no_response"}),
    "uv": frozenset({"fail", "no_response"}),
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

    dt_s: float = 0.01  # longest integration substep
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

    # Chiller (PI on the fluid temperature, saturating at its capacity)
    chiller_setpoint_c: float = 20.0
    chiller_tau_s: float = 20.0  # closed-loop lag of the fluid toward the setpoint
    chiller_ti_s: float = 60.0  # integral time: no steady offset under load
    chiller_cool_max_w: float = 600.0
    chiller_heat_max_w: float = 300.0
    chiller_setpoint_min_c: float = -10.0
    chiller_setpoint_max_c: float = 60.0

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

    # Z stage and leads
    z_accel_um_s2: float = 2000.0
    z_speed_max_um_s: float = 1000.0
    z_min_um: float = 0.0
    z_max_um: float = 10_000.0
    k_lead_n_um: float = 0.002  # bending stiffness of the released leads
    k_tip_n_um: float = 0.02  # tips still bonded to the support: steep
    tip_tear_force_n: float = 2.0

    # UV, adhesive, encapsulant
    uv_irradiance_max_mw_cm2: float = 200.0
    adhesive_d0_mj_cm2: float = 400.0  # degradation 1 − exp(−dose/D0)
    tips_released_at: float = 0.95  # degradation above which the tips count as released
    cure_a_per_s: float = 2.0e6
    cure_ea_j_mol: float = 70_000.0
    cure_n: float = 1.5
    dispense_ul_per_kpa_s: float = 0.01
    dispense_pressure_max_kpa: float = 700.0
    dispense_shot_max_s: float = 60.0

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
            "z_speed_max_um_s",
            "adhesive_d0_mj_cm2",
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
    force_n: float
    leads_torn: bool
    tips_released: bool
    uv_shutter_open: bool
    uv_irradiance_mw_cm2: float
    uv_dose_mj_cm2: float
    adhesive_degradation: float
    dispenser_pressure_kpa: float
    dispensing: bool
    dispensed_ul: float
    cure_conversion: float
    energy_in_j: float  # lamp radiation absorbed by chips and component
    energy_chiller_j: float  # heat removed by the chiller (negative = it heated)
    energy_loss_j: float  # radiation, gas, chuck and fluid losses to ambient
    stored_energy_j: float  # Σ C·T (°C) + latent heat of the molten solder


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
    uv_failed: bool = False
    dispenser_failed: bool = False


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
        self._leads_torn = False

        self._uv_irr = 0.0
        self._uv_shutter = False
        self._uv_dose = 0.0
        self._disp_kpa = 0.0
        self._disp_end: float | None = None
        self._dispensed = 0.0
        self._cure = 0.0

        self._e_in = 0.0
        self._e_chiller = 0.0
        self._e_loss = 0.0

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
        p = self._p
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
            force_n=self.force_n,
            leads_torn=self._leads_torn,
            tips_released=self.adhesive_degradation >= p.tips_released_at,
            uv_shutter_open=self._uv_shutter,
            uv_irradiance_mw_cm2=self._uv_irr,
            uv_dose_mj_cm2=self._uv_dose,
            adhesive_degradation=self.adhesive_degradation,
            dispenser_pressure_kpa=self._disp_kpa,
            dispensing=self._disp_end is not None,
            dispensed_ul=self._dispensed,
            cure_conversion=self._cure,
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

    # -------------------------------------------------------------- digital I/O

    def set_output(self, name: str, on: bool) -> None:
        if name not in self._outputs:
            raise ValueError(f"unknown output {name!r}")
        self.advance()
        # The E-stop chain holds the contactor's output supply off: the bit cannot come on.
        if name == OUT_LAMP_CONTACTOR and self._faults.estop:
            on = False
        self._outputs[name] = on

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
        }

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

    # ----------------------------------------------------------------- Z stage

    def z_home(self) -> None:
        self.advance()
        self._z_homed = True
        self._start_move(0.0, self._p.z_speed_max_um_s)

    def z_move(self, position_um: float, speed_um_s: float) -> None:
        p = self._p
        if not (math.isfinite(position_um) and p.z_min_um <= position_um <= p.z_max_um):
            raise ValueError(f"position {position_um} µm outside {p.z_min_um}..{p.z_max_um}")
        if not (math.isfinite(speed_um_s) and 0.0 < speed_um_s <= p.z_speed_max_um_s):
            raise ValueError(f"speed {speed_um_s} µm/s outside (0, {p.z_speed_max_um_s}]")
        self.advance()
        self._start_move(float(position_um), float(speed_um_s))

    def _start_move(self, target: float, speed: float) -> None:
        self._z_target = target
        self._z_speed = speed
        self._z_moving = True

    def z_stop(self) -> None:
        """Decelerate to a stop at the stage's acceleration."""
        self.advance()
        if not self._z_moving:
            return
        v = self._z_v
        stop_at = self._z + math.copysign(v * v / (2.0 * self._p.z_accel_um_s2), v)
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
        if self._leads_torn:
            return 0.0
        disp = max(0.0, self._z - self._p.z_min_um)
        bonded = 1.0 - self.adhesive_degradation
        return (self._p.k_lead_n_um + self._p.k_tip_n_um * bonded) * disp

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
        self._uv_shutter = open_

    @property
    def uv_shutter_open(self) -> bool:
        return self._uv_shutter

    @property
    def uv_irradiance_mw_cm2(self) -> float:
        return self._uv_irr

    @property
    def uv_failed(self) -> bool:
        return self._faults.uv_failed

    @property
    def adhesive_degradation(self) -> float:
        return 1.0 - math.exp(-self._uv_dose / self._p.adhesive_d0_mj_cm2)

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
        elif dev == "zstage":
            flt.zstage_failed = True
            self._z_moving = False
            self._z_v = 0.0
            self._z_target = self._z
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
        moved = self._t < t_end
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
        if moved:
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
            self._dio_deadline = None
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
        p = self._p
        n = max(1, math.ceil(span / p.dt_s - 1e-9))
        h = span / n

        # Piecewise-constant inputs over the span.
        zone_w = [pct / 100.0 * p.zone_max_w for pct in self.lamp_output_pct()]
        k_fil = 1.0 - math.exp(-h / p.filament_tau_s)
        fil = self._filament
        fil_settled = all(abs(f - w) < 1e-9 for f, w in zip(fil, zone_w, strict=True))
        fil_sum = sum(fil)

        c_chip = p.c_chip_j_k
        lat = p.solder_latent_j
        ts, band = self._band()
        h_sol = c_chip * ts
        h_liq = c_chip * (ts + band) + lat
        c_band = c_chip + lat / band
        lat_ts_band = lat * ts / band

        a_chip = p.frac_to_chips
        a_comp = p.frac_to_component
        inv_cm = 1.0 / p.c_component_j_k
        inv_ck = 1.0 / p.c_chuck_j_k
        inv_cf = 1.0 / p.c_fluid_j_k
        g_atm = p.g_chip_comp_atm_w_k
        g_vac_extra = p.g_chip_comp_vac_w_k - g_atm
        g_melt = p.g_chip_comp_melt_w_k
        g_mk = (
            p.g_comp_chuck_clamped_w_k if self._outputs[OUT_FILM_CLAMP] else p.g_comp_chuck_free_w_k
        )
        flow = self.chiller_flow
        g_kf = p.g_chuck_fluid_flow_w_k if flow else p.g_chuck_fluid_stagnant_w_k
        g_ka = p.g_chuck_ambient_w_k
        g_fa = p.g_fluid_ambient_w_k
        rad = p.chip_emissivity * STEFAN_BOLTZMANN * p.chip_area_m2
        amb = p.ambient_c
        amb_k4 = (amb + KELVIN) ** 4
        p_atm = p.p_atm_mbar
        inv_patm = 1.0 / p_atm
        g_gas = p.g_chip_gas_atm_w_k

        kp = p.c_fluid_j_k / p.chiller_tau_s
        ki = kp / p.chiller_ti_s
        q_cool = p.chiller_cool_max_w
        q_heat = p.chiller_heat_max_w
        sp = self._chiller_sp
        chill_i = self._chiller_i
        q_ch = 0.0

        k_tc_chip = 1.0 - math.exp(-h / p.tc_tau_chip_s)
        k_tc_other = 1.0 - math.exp(-h / p.tc_tau_other_s)
        tc = self._tc
        tc_chip, tc_comp, tc_chuck = tc["chip"], tc["component"], tc["chuck"]

        # Gas
        inv_v = 1.0 / p.volume_l
        leak = p.leak_mbar_l_s + self._faults.extra_leak_mbar_l_s
        tear_c = p.tear_conductance_l_s if self._faults.torn else 0.0
        x_air = p.o2_air_ppm * 1e-6
        x_n2 = p.o2_n2_ppm * 1e-6
        n2_on = self._valves[VALVE_N2_PURGE]
        n2_max = p.n2_flow_max_mbar_l_s
        p_sup = p.n2_supply_mbar
        n2_b = p.n2_critical_ratio
        n2_inv_span = 1.0 / (1.0 - n2_b)
        inv_sup = 1.0 / p_sup
        vent_c = p.vent_conductance_l_s if self._valves[VALVE_VENT] else 0.0
        s_pump = p.pump_speed_l_s if self._pumping() else 0.0
        p_ult = p.pump_ultimate_mbar

        # Z stage
        z_moving = self._z_moving
        z, zv = self._z, self._z_v
        z_target, z_speed = self._z_target, self._z_speed
        z_acc = p.z_accel_um_s2
        torn_leads = self._leads_torn
        dose = self._uv_dose
        inv_d0 = 1.0 / p.adhesive_d0_mj_cm2
        k_tip = p.k_tip_n_um
        tip_k = k_tip * math.exp(-dose * inv_d0)
        tip_tear = p.tip_tear_force_n
        z0 = p.z_min_um

        uv_rate = self._uv_irr if (self._uv_shutter and not self._faults.uv_failed) else 0.0
        disp_rate = p.dispense_ul_per_kpa_s * self._disp_kpa if self._disp_end is not None else 0.0
        dispensed = self._dispensed
        curing = dispensed > 0.0 or disp_rate > 0.0
        cure = self._cure
        cure_a, cure_ea_r, cure_n = p.cure_a_per_s, p.cure_ea_j_mol / GAS_CONSTANT, p.cure_n

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

            if hc <= h_sol:
                tcp = hc / c_chip
                melt = 0.0
            elif hc >= h_liq:
                tcp = (hc - lat) / c_chip
                melt = 1.0
            else:
                tcp = (hc + lat_ts_band) / c_band
                melt = (tcp - ts) / band

            pressed = (p_atm - pr) * inv_patm
            pressed = 0.0 if pressed < 0.0 else (1.0 if pressed > 1.0 else pressed)
            q_cc = (g_atm + g_vac_extra * pressed + g_melt * melt) * (tcp - tm)
            tck = tcp + KELVIN
            q_chip_loss = rad * (tck * tck * tck * tck - amb_k4) + g_gas * pr * inv_patm * (
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

            # Working-space gas: throughputs in mbar·L/s; outflows carry the current mixture.
            x = po2 / pr
            dp_atm = p_atm - pr
            q_leak = leak * dp_atm * inv_patm + tear_c * dp_atm
            q_o2 = q_leak * (x_air if q_leak > 0.0 else x)
            q_gas = q_leak
            if n2_on:
                # ISO 6358: choked up to the critical ratio, then an elliptic fall to zero.
                ratio = pr * inv_sup
                if ratio <= n2_b:
                    q_n2 = n2_max
                elif ratio >= 1.0:
                    q_n2 = 0.0
                else:
                    r = (ratio - n2_b) * n2_inv_span
                    q_n2 = n2_max * math.sqrt(1.0 - r * r)
                q_gas += q_n2
                q_o2 += q_n2 * x_n2
            if vent_c:
                q_vent = vent_c * dp_atm
                q_gas += q_vent
                q_o2 += q_vent * (x_n2 if q_vent > 0.0 else x)
            if s_pump and pr > p_ult:
                q_pump = s_pump * (pr - p_ult)
                q_gas -= q_pump
                q_o2 -= q_pump * x
            pr += h * q_gas * inv_v
            pr = max(pr, 1e-9)
            po2 += h * q_o2 * inv_v
            po2 = max(po2, 0.0)

            if z_moving:
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
                if not torn_leads and tip_k * max(0.0, z - z0) > tip_tear:
                    torn_leads = True

            if uv_rate:
                dose += uv_rate * h
                tip_k = k_tip * math.exp(-dose * inv_d0)
            if curing:
                dispensed += disp_rate * h
                if cure < 1.0:
                    rate = cure_a * math.exp(-cure_ea_r / (tm + KELVIN)) * (1.0 - cure) ** cure_n
                    cure = min(1.0, cure + h * rate)

        self._filament = fil
        self._h_chip = hc
        self._t_comp, self._t_chuck, self._t_fluid = tm, tk, tf
        self._chiller_i = chill_i
        self._chiller_q = q_ch if flow else 0.0
        tc["chip"], tc["component"], tc["chuck"] = tc_chip, tc_comp, tc_chuck
        self._p_mbar, self._p_o2 = pr, po2
        self._z, self._z_v, self._z_moving = z, zv, z_moving
        self._leads_torn = torn_leads
        self._cure = cure
        self._uv_dose = dose
        self._dispensed = dispensed
        self._e_in += e_in
        self._e_chiller += e_ch
        self._e_loss += e_loss
        self._t = t1
