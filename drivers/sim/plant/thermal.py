"""The thermal chain: lamp filaments → chips → component → chuck → chiller fluid.

The chips carry the solder's latent heat (enthalpy method); radiation and gas losses leave
the chips, small losses the chuck and the fluid. The temperature-control unit holds the fluid
on its setpoint (PI, saturating at its capacity); the thermocouples lag their nodes. The
solder paste's coalescence (bump reflow) follows the chips' melt. Every flux is counted once
in the energy counters, so ``energy_in_j − energy_chiller_j − energy_loss_j`` equals the
change of ``stored_energy_j`` to rounding error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence, Set

from drivers.protocols import OUT_FILM_CLAMP, OUT_LAMP_CONTACTOR, OUT_SCR_ENABLE
from drivers.sim.plant.core import PlantCore
from drivers.sim.plant.fault_table import TcFault
from drivers.sim.plant.params import KELVIN, STEFAN_BOLTZMANN, PlantParams


def thermal_constants(p: PlantParams) -> tuple[float, ...]:
    """The parameters ``ThermalChain._integrate_thermal`` uses on every span, and what it
    derives from them, in the order it unpacks them (docs/adr/0120)."""
    g_atm = p.g_chip_comp_atm_w_k
    amb = p.ambient_c
    p_atm = p.p_atm_mbar
    kp = p.c_fluid_j_k / p.chiller_tau_s
    return (
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
        p.coalesce_tau_s,
        p.coalesce_o2_half_mbar,
    )


class ThermalChain(PlantCore):
    """The lamps, the chips and their solder, the component, the chuck, the chiller and the
    thermocouples."""

    # From the parameters, the solder and the substep (``Plant.__init__``, ``set_solder``).
    _k_thermal: tuple[float, ...]
    _k_band: tuple[float, float, float, float, float, float]
    _k_h: float  # the substep ``_k_of_h`` is for
    _k_of_h: tuple[float, float, float]  # filament, chip and other thermocouple factors

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
        the band's enthalpy offset) of the enthalpy method, for ``_integrate_thermal``."""
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

    @property
    def chip_c(self) -> float:
        return self._chip_temp()[0]

    @property
    def component_c(self) -> float:
        return self._t_comp

    @property
    def contactor_energized(self) -> bool:
        return self._contactor_energized()

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

    def _tc_clean(self, channel: str) -> float:
        """The channel's noise-free quantized reading now."""
        res = self._p.tc_resolution_c
        return round(round(self._tc[channel] / res) * res, 6)

    @property
    def coalescence(self) -> float:
        return self._coalescence

    # ------------------------------------------------------------- integration

    def _integrate_thermal(self, h: float, p_means: Sequence[float], p_o2: float) -> list[float]:
        """Integrate the chain over one span of ``len(p_means)`` substeps of ``h``, with the
        working space at ``p_means[i]`` over substep i (its mean pressure) and ``p_o2`` the
        O2 partial pressure at the span's start (the coalescence's, held over the span).

        Returns the component's temperature at the end of each substep (what the connecting
        layer and the encapsulant see).
        """
        (
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
            coal_tau,
            coal_o2_half,
        ) = self._k_thermal
        if h == self._k_h:
            k_fil, k_tc_chip, k_tc_other = self._k_of_h
        else:
            # Every span of a run but its odd ones has the same substep: the same factors.
            k_fil = 1.0 - math.exp(-h / fil_tau)
            k_tc_chip = 1.0 - math.exp(-h / tc_tau_chip)
            k_tc_other = 1.0 - math.exp(-h / tc_tau_other)
            self._k_h, self._k_of_h = h, (k_fil, k_tc_chip, k_tc_other)

        # Piecewise-constant inputs over the span.
        # A loop, not a comprehension: on Python 3.11 that is a function call of its own,
        # 0.13 µs of a span (docs/adr/0135).
        zone_w: list[float] = []
        for pct in self.lamp_output_pct():
            zone_w.append(pct / 100.0 * zone_max_w)
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

        # Solder-paste coalescence while molten, slowed by the O2 partial pressure (mbar).
        coal = self._coalescence
        coal_k = 1.0 / (coal_tau * (1.0 + p_o2 / coal_o2_half))

        hc = self._h_chip
        tm, tk, tf = self._t_comp, self._t_chuck, self._t_fluid
        e_in = e_ch = e_loss = 0.0
        t_comp: list[float] = []

        for p_mean in p_means:
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

            t_comp.append(tm)

        self._filament = fil
        self._h_chip = hc
        self._t_comp, self._t_chuck, self._t_fluid = tm, tk, tf
        self._chiller_i = chill_i
        self._chiller_q = q_ch if flow else 0.0
        tc["chip"], tc["component"], tc["chuck"] = tc_chip, tc_comp, tc_chuck
        self._coalescence = coal
        self._e_in += e_in
        self._e_chiller += e_ch
        self._e_loss += e_loss
        return t_comp
