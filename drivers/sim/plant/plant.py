"""``Plant``: the simulated bonder, its parts put together (see the package's docstring).

Here: the constants the integration works out once, the I/O coupler (outputs, inputs and
its watchdog), the state snapshot, and ``advance``, which integrates up to ``clock.now()``
span by span between the discrete events (``events``), each span in substeps through the
gas, the thermal chain and the lift in turn.
"""

from __future__ import annotations

import math

from drivers.clock import Clock
from drivers.protocols import (
    IN_CHILLER_FLOW,
    IN_CHUCK_VACUUM_OK,
    IN_DOOR_CLOSED,
    IN_ESTOP_OK,
    IN_SUPPORT_VACUUM_OK,
    OUT_CHUCK_VACUUM,
    OUT_LAMP_CONTACTOR,
    OUT_SUPPORT_VACUUM,
    OUT_UV_ENABLE,
)
from drivers.sim.plant.events import PlantEvents
from drivers.sim.plant.gas import gas_constants
from drivers.sim.plant.lift import lift_constants
from drivers.sim.plant.params import PlantParams
from drivers.sim.plant.state import PlantState
from drivers.sim.plant.thermal import thermal_constants


class Plant(PlantEvents):
    """The simulated bonder. Actuator methods take effect at ``clock.now()``."""

    def __init__(self, clock: Clock, params: PlantParams | None = None, seed: int = 0) -> None:
        super().__init__(clock, params, seed)
        p = self._p
        # What each part's integration derives from the parameters (fixed for the plant's
        # life) and from the solder and the substep, worked out once: ~60 attribute reads and
        # the arithmetic on them cost a third of a 0.05 s span (docs/adr/0120).
        self._k_thermal = thermal_constants(p)
        self._k_gas = gas_constants(p)
        self._k_lift = lift_constants(p)
        self._k_band = self._band_constants()
        self._k_h = math.nan  # the substep the factors below are for (none yet)
        self._k_of_h = (0.0, 0.0, 0.0)
        self._k_inv_d0 = 1.0 / p.adhesive_d0_mj_cm2
        self._k_hold_x = -0.5 * math.log(1.0 - p.tips_released_at)

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

    def _integrate(self, t1: float) -> None:
        """Integrate from ``self._t`` to ``t1`` with no discrete event in between.

        The span is cut into equal substeps no longer than ``dt_s``; the inputs (actuators,
        faults) hold over it. Within a substep the parts couple one way only: the gas gives
        the chips the substep's mean pressure, the thermal chain gives the connecting layer
        and the encapsulant the component's temperature, and nothing comes back. So each part
        runs all the span's substeps in a loop of its own, in that order, on local variables
        (attribute access is what makes pure-Python integration slow): the same operations on
        the same numbers as one loop over the parts would do (docs/adr/0135).
        """
        span = t1 - self._t
        if span <= 0.0:
            return
        n = max(1, math.ceil(span / self._p.dt_s - 1e-9))
        h = span / n
        p_o2 = self._p_o2  # at the span's start: the solder paste's, held over the span
        p_means = self._integrate_gas(n, h)
        if self._panel is None:
            t_comp = self._integrate_thermal(h, p_means, p_o2)
        else:
            t_comp = self._integrate_panel(h, p_means, p_o2)
        self._integrate_lift(n, h, t_comp)
        self._t = t1
