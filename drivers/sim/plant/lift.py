"""The lead lift: the Z stage, the vacuum holds, the leads, the connecting layer between the
lead tips and the support (UV and heat release), the dispenser and the encapsulant (flow
into the gap, cure).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from drivers.protocols import OUT_CHUCK_VACUUM, OUT_SUPPORT_VACUUM, OUT_UV_ENABLE
from drivers.sim.plant.core import PlantCore
from drivers.sim.plant.params import GAS_CONSTANT, KELVIN, PlantParams


def lift_constants(p: PlantParams) -> tuple[float, ...]:
    """The lead-lift and encapsulant parameters ``LeadLift._integrate_lift`` uses, in its
    order (docs/adr/0120)."""
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
    )


class LeadLift(PlantCore):
    """Z stage, vacuum holds, leads, connecting layer, UV source, dispenser, encapsulant."""

    # From the parameters (``Plant.__init__``).
    _k_lift: tuple[float, ...]
    _k_inv_d0: float  # 1 / adhesive_d0_mj_cm2
    _k_hold_x: float  # the layer's exposure under which it holds without working it out

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

    # ------------------------------------------------------------- integration

    def _integrate_lift(self, n: int, h: float, t_comp: Sequence[float]) -> None:
        """Integrate the lift over one span of ``n`` substeps of ``h``, the component at
        ``t_comp[i]`` at the end of substep i (the connecting layer's and the encapsulant's
        temperature).

        Its parts do not act on each other within a span (the Z stage pulls the tips against
        the layer's pull-off force at the span's start, the encapsulant flows into the gap as
        it is at the span's start), so each runs in its own loop, and only while it moves.
        """
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
        ) = self._k_lift
        faults = self._faults

        # The leads follow the stage only while both holds hold; without them the support
        # stays behind (or rides along with the chip) and the leads spring back to their
        # plastic set.
        held = self._held[OUT_CHUCK_VACUUM] and self._held[OUT_SUPPORT_VACUUM]
        lead_dp = self._lead_dp
        lead_d = self._lead_d if held else lead_dp

        # Encapsulant: dispensing, flow into the gap, cure (only where some was dispensed).
        disp_rate = disp_ul_per_kpa_s * self._disp_kpa if self._disp_end is not None else 0.0
        dispensed = self._dispensed
        if dispensed > 0.0 or disp_rate > 0.0:
            enc_in = self._encap_in
            cure = self._cure
            p = self._p
            k_flow = 1.0 - math.exp(-h / p.gap_flow_tau_s(p.gap0_um + max(0.0, lead_d)))
            cure_t_last = -1e9
            k1 = k2 = 0.0
            for tm in t_comp:
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
            self._dispensed = dispensed
            self._encap_in = enc_in
            self._cure = cure

        # Z stage and leads.
        z_moving = self._z_moving and not faults.zstage_stalled
        attached = self._tips_attached
        if z_moving:  # else the stage, the leads' set and the tear stay as they are
            pull_off = 0.0
            if attached and held:  # the only case the substeps pull on the tips
                pull_off = self._tip_pull_off_n()
                if pull_off <= 0.0:
                    attached = False  # the connecting layer no longer holds the tips
            # Otherwise the check at the end of the span decides alone, as both did: the layer
            # only degrades (UV dose and heat exposure only grow), so one that holds at the
            # end held at the start.
            z, zv = self._z, self._z_v
            z_target, z_speed = self._z_target, self._z_speed
            z_acc = self._z_acc
            torn = self._torn
            for _ in range(n):
                if not z_moving:
                    break  # arrived: the servo holds the target
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
            self._z, self._z_v = z, zv
            self._z_moving = z_moving
            self._lead_dp = lead_dp
            self._torn = torn
        self._lead_d = lead_d

        # Connecting layer: UV dose and the Arrhenius heat exposure. The rate is linearized
        # around a temperature refreshed every 0.5 K (exp() is the costly part of this loop
        # while the component ramps): error (Ea/RT²·0.5 K)²/2 < 0.1 %.
        dose = self._uv_dose
        if self._uv_shutter and not faults.uv_failed:
            uv_rate = self._uv_irr
            if uv_rate:
                for _ in range(n):
                    dose += uv_rate * h
        heat_x = self._heat_exposure
        hr_t_on = self._heat_release_t_on_c
        hr_t0 = -1e9
        hr_kh = hr_ksh = 0.0
        for tm in t_comp:
            if tm > hr_t_on:
                dt_hr = tm - hr_t0
                if dt_hr > 0.5 or dt_hr < -0.5:
                    hr_t0, dt_hr = tm, 0.0
                    inv_t = 1.0 / (tm + KELVIN)
                    hr_kh = hr_k_ref * math.exp(-hr_ea_r * (inv_t - hr_inv_tref)) * h
                    hr_ksh = hr_kh * hr_ea_r * inv_t * inv_t  # d(k·h)/dT
                heat_x += hr_kh + hr_ksh * dt_hr
        self._uv_dose = dose
        self._heat_exposure = heat_x
        # Far from release (exposure under half of -ln of the released bonded fraction, so the
        # bonded fraction above its square root) the layer holds without working it out.
        self._tips_attached = attached and (
            dose * self._k_inv_d0 + heat_x < self._k_hold_x or self._tip_pull_off_n() > 0.0
        )
