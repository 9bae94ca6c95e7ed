"""``PlantCore``: the plant's live state variables, and what every part of it reads.

The parts of the plant are mixins on this class, one module each (``thermal``, ``gas``,
``lift``, ``events``), and ``plant.Plant`` puts them together. Every state variable is set
here, in one place, so each part sees all of them typed; a part changes only its own.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from drivers.clock import Clock
from drivers.protocols import OUT_CHUCK_VACUUM, OUT_SUPPORT_VACUUM, OUTPUTS, VALVES
from drivers.sim.plant.fault_table import ActiveFaults, PlantFault
from drivers.sim.plant.panel import PanelModel
from drivers.sim.plant.params import GAS_CONSTANT, KELVIN, TC_CHANNELS, PlantParams

if TYPE_CHECKING:
    from drivers.sim.plant.plant import Plant


class PlantCore:
    """The state of the simulated bonder (see ``Plant``)."""

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
        self._t_fluid = amb if p.chiller_start_c is None else p.chiller_start_c
        self._tc = dict.fromkeys(TC_CHANNELS, amb)
        self._filament = [0.0] * p.zones
        # A panel of chip sites (panel_thermal.py), None: the single chip above. Per site,
        # row-major: the chip's enthalpy (J), its cell of the component (°C) and what a
        # thermocouple on the chip would read (°C, lagged).
        self._panel: PanelModel | None = None
        self._site_h: list[float] = []
        self._cell_t: list[float] = []
        self._site_tc: list[float] = []
        self._site_channels: tuple[tuple[int, str], ...] = ()  # (site, channel) with a TC
        self._tc_channels: tuple[str, ...] = TC_CHANNELS  # every channel of ``_tc``
        # The panel's per-site constants and the (solidus, band) they are for.
        self._panel_k: list[tuple[float, ...]] = []
        self._panel_k_band: tuple[float, float] | None = None
        # Views of ``_panel_k`` the substeps read (panel_thermal.py, docs/adr/0180): each
        # site's first eleven constants, its chip's and its cell's share of each zone, its
        # cell's (way down, 1 / C, C) clamped and free; and the absorbed power at the
        # last zone powers it was worked out for.
        self._panel_k_sub: list[tuple[float, ...]] = []
        self._panel_k_zones: list[tuple[tuple[float, ...], tuple[float, ...]]] = []
        self._panel_cells_k: tuple[list[tuple[float, float, float]], ...] = ([], [])
        self._panel_q_cmd: tuple[list[float], list[tuple[float, float]]] | None = None
        self._panel_no_gap: list[tuple[float, float]] = []
        self._panel_c_cells_sum = 0.0
        # (substep, the thermal constants, the filaments', the chip's and the other
        # thermocouples' lag factors for it): panel_thermal.py.
        self._panel_lags: tuple[float, object, float, float, float] = (
            math.nan,
            None,
            0.0,
            0.0,
            0.0,
        )
        self._site_contact: list[float] = []  # film pressure per site now, × the layout's
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

        self._faults = ActiveFaults()
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

    if TYPE_CHECKING:
        # Plant's (plant.py): every actuator integrates up to now before it acts.
        def advance(self) -> None: ...

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

    def add_observer(self, observer: Callable[[Plant], None]) -> None:
        """Call ``observer(plant)`` after every integration that moved time (test invariants)."""
        self._observers.append(observer)
