"""Chip temperature control: the setpoint profile and the lamp-power loop.

The loop (docs/thermal-control.md, ADR 0060) is feedforward from the identified plant model
(``bonderd tune``) plus PID feedback on the control thermocouple:

- feedforward: the lamp power the model says the chip needs to be on the setpoint one filament
  lag from now — its slope, its losses to the component, and the solder's latent heat where
  the setpoint crosses the recipe's melting band;
- feedback: PID on the thermocouple against the reading it should show (the setpoint seen
  through the identified thermocouple lag), derivative on the filtered measurement,
  back-calculation anti-windup, output and slew limits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from daemon.recipe.model import Segment

# A eutectic melts at one temperature; the chip's enthalpy still rises over a narrow band
# (the chip is not isothermal), and spreading the latent heat over it keeps the feedforward
# finite.
EUTECTIC_BAND_K = 0.5
INTEGRAL_LIMIT_PCT = 30.0
INTEGRATE_BAND_C = 3.0
# The profile clock's speed (profile seconds per second), filtered over this time: on a
# cooling ramp, below STALLED_CLOCK_SPEED the chip is stalled by the lamps, not trailing
# (ADR 0110). On clean runs it stays above 0.8 (0.7 with 3x the thermocouple noise): holds
# for noise or the freezing plateau last 0.1-1 s; a clock stopped outright crosses it after 2 s.
CLOCK_FILTER_S = 3.0
STALLED_CLOCK_SPEED = 0.5
# The chamber walls and the film the chip radiates to: ±5 K here is < 1 % of the term at 200 °C.
ROOM_K = 298.15


@dataclass(frozen=True, slots=True)
class ThermalModel:
    """The chip's thermal model as ``bonderd tune`` identifies it (ADR 0061).

    Units are per chip heat capacity: the lamp's absorbed share is not observable from
    temperatures alone, so the gain is °C/s per % and the losses are per second.
    """

    gain_c_s_per_pct: float  # heating rate per % of lamp power (all zones), °C/s
    loss_per_s: float  # chip → component conductance / heat capacity, film pressed
    molten_loss_per_s: float  # added conductance once the solder is molten (wetted joints)
    latent_heat_k: float  # solder latent heat / chip heat capacity: the stall, in kelvin
    filament_tau_s: float  # lamp filament first-order lag
    tc_tau_s: float  # control thermocouple first-order lag
    # Radiation from the chip: °C/s per 1e10 K⁴ of (T⁴ − T_room⁴), room taken as 25 °C.
    radiation_c_s_per_1e10_k4: float = 0.0

    def __post_init__(self) -> None:
        for name in ("gain_c_s_per_pct", "loss_per_s", "filament_tau_s", "tc_tau_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"thermal model: {name} must be a positive number, got {v}")
        for name in ("molten_loss_per_s", "latent_heat_k", "radiation_c_s_per_1e10_k4"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"thermal model: {name} must be ≥ 0, got {v}")


def radiation_term(temp_c: float) -> float:
    """(T⁴ − T_room⁴) / 1e10 in K⁴, the regressor of the radiation loss."""
    return ((temp_c + 273.15) ** 4 - ROOM_K**4) / 1e10


PieceKind = Literal["ramp", "hold"]


@dataclass(frozen=True, slots=True)
class Piece:
    kind: PieceKind
    t0: float
    t1: float
    from_c: float
    to_c: float


class Profile:
    """Setpoint versus time for ramp-then-hold segments, starting from ``start_c``."""

    def __init__(
        self,
        start_c: float,
        segments: Sequence[Segment],
        then: Segment | None = None,
        *,
        catch_up_c_s: float = 1.0,
    ) -> None:
        """``then``: the next step's first ramp, not part of this profile's duration but seen
        by the controller's look-ahead, so the hand-over to that step is announced.
        ``catch_up_c_s``: how much faster than a ramp's own rate a trailing chip may be
        brought back (the room under the recipe's rate limit)."""
        self.catch_up_c_s = catch_up_c_s
        self.pieces: list[Piece] = []
        t, temp = 0.0, start_c
        for seg in segments:
            ramp_s = abs(seg.to_c - temp) / seg.ramp_c_per_s
            if ramp_s > 0:
                self.pieces.append(Piece("ramp", t, t + ramp_s, temp, seg.to_c))
            t += ramp_s
            if seg.hold_s > 0:
                self.pieces.append(Piece("hold", t, t + seg.hold_s, seg.to_c, seg.to_c))
                t += seg.hold_s
            temp = seg.to_c
        self.start_c = start_c
        self.duration_s = t
        self.final_c = temp
        self._then: Piece | None = None
        if then is not None and then.to_c != temp:
            ramp_s = abs(then.to_c - temp) / then.ramp_c_per_s
            self._then = Piece("ramp", t, t + ramp_s, temp, then.to_c)

    def _end_c(self) -> float:
        return self._then.to_c if self._then is not None else self.final_c

    @property
    def then(self) -> Piece | None:
        """The ramp the controller looks ahead into after the last piece (the next step's)."""
        return self._then

    def piece_at(self, t: float) -> Piece | None:
        """The ramp or hold running at ``t``; None past the end."""
        for piece in self.pieces:
            if t < piece.t1:
                return piece
        return None

    def at(self, t: float) -> tuple[float, float]:
        """(setpoint °C, setpoint slope °C/s) at ``t`` seconds into the profile."""
        # piece_at inlined (asked three times a control period), the same arithmetic.
        for piece in self.pieces:
            if t < piece.t1:
                break
        else:
            then = self._then
            if then is None or not t < then.t1:
                return self._end_c(), 0.0
            piece = then
        t0, from_c = piece.t0, piece.from_c
        span = piece.t1 - t0
        rise = piece.to_c - from_c
        frac = (t - t0) / span
        if not frac > 0.0:  # max(0.0, frac), NaN and -0.0 included
            frac = 0.0
        return from_c + rise * frac, rise / span

    def time_above(self, level_c: float, then_rate_c_s: float | None = None) -> float:
        """Seconds the setpoint spends above ``level_c``; ``then_rate_c_s`` adds the tail of a
        ramp down from the final setpoint at that rate (the cool step that follows)."""
        total = 0.0
        for p in self.pieces:
            lo, hi = min(p.from_c, p.to_c), max(p.from_c, p.to_c)
            if lo >= level_c:
                total += p.t1 - p.t0
            elif hi > level_c:
                total += (p.t1 - p.t0) * (hi - level_c) / (hi - lo)
        if then_rate_c_s is not None and self.final_c > level_c:
            total += (self.final_c - level_c) / then_rate_c_s
        return total


class ChipLoop(Protocol):
    """What ``_follow`` drives: one lamp-power decision per control period."""

    @property
    def expected_c(self) -> float | None:
        """What the control thermocouple should read now with the chip on the profile."""
        ...

    def update(
        self,
        t: float,
        profile: Profile,
        t_profile: float,
        *,
        measured_c: float,
        sink_c: float,
        cap_pct: float,
    ) -> float:
        """Lamp power % for this period, within ``[0, cap_pct]``."""
        ...


# (model, solder melting band or None) -> a fresh loop. The executor's default builds a
# ChipController; the bench hands its baseline PID to the rig (Executor.controller_factory).
# A replacement chip loop (tune's identification experiment, the bench's baseline PID); it gets
# the configured model if there is one.
ControllerFactory = Callable[[ThermalModel | None, tuple[float, float] | None], ChipLoop]


@dataclass(frozen=True, slots=True)
class Gains:
    kp_pct_per_k: float
    ti_s: float
    td_s: float
    d_filter_s: float  # first-order filter on the measurement before differentiating
    tt_s: float  # back-calculation tracking time


def simc_gains(model: ThermalModel) -> Gains:
    """Skogestad's SIMC rules on the identified model.

    Seen from the loop the chip is nearly an integrator (its loss time constant, ≈ 8 s, is
    long against the lags) with two small lags: the larger becomes the derivative time, the
    smaller the effective delay θ. The closed-loop time constant is 2θ: twice the
    aggressive setting, because the thermocouple's noise goes through kp and kd.
    """
    tau_big = max(model.filament_tau_s, model.tc_tau_s)
    theta = min(model.filament_tau_s, model.tc_tau_s)
    tc = 2.0 * theta
    kc = 1.0 / (model.gain_c_s_per_pct * (tc + theta))
    ti_series = min(1.0 / model.loss_per_s, 4.0 * (tc + theta))
    td_series = tau_big
    # Series (interacting) form to the parallel form used below.
    factor = 1.0 + td_series / ti_series
    return Gains(
        kp_pct_per_k=kc * factor,
        ti_s=ti_series * factor,
        td_s=td_series / factor,
        d_filter_s=0.1,
        tt_s=math.sqrt(ti_series * td_series),
    )


def melt_fraction(temp_c: float, melt: tuple[float, float] | None) -> tuple[float, float]:
    """(fraction molten, d fraction / dT) of the solder at ``temp_c``."""
    if melt is None:
        return 0.0, 0.0
    solidus, liquidus = melt
    band = liquidus - solidus
    if band < EUTECTIC_BAND_K:
        solidus, band = liquidus - EUTECTIC_BAND_K, EUTECTIC_BAND_K
    if temp_c <= solidus:
        return 0.0, 0.0
    if temp_c >= solidus + band:
        return 1.0, 0.0
    return (temp_c - solidus) / band, 1.0 / band


class ChipController:
    """Model feedforward + PID on the chip thermocouple (module docstring)."""

    def __init__(
        self,
        model: ThermalModel,
        melt: tuple[float, float] | None = None,
        *,
        gains: Gains | None = None,
        max_pct: float = 100.0,
        slew_pct_per_s: float = 400.0,
    ) -> None:
        self.model = model
        self.melt = melt
        self.gains = gains or simc_gains(model)
        self.max_pct = max_pct
        self.slew_pct_per_s = slew_pct_per_s
        self._last_t: float | None = None
        self._integral = 0.0  # %
        self._ref_tc: float | None = None  # the setpoint seen through the thermocouple lag
        self._y_f: float | None = None  # filtered measurement, for the derivative
        self._out = 0.0
        self._profile: Profile | None = None
        self._t_profile = 0.0
        self._clock_speed = 1.0  # filtered profile seconds per second

    @property
    def expected_c(self) -> float | None:
        return self._ref_tc

    @property
    def integral_pct(self) -> float:
        return self._integral

    def _track_clock(self, profile: Profile, t_profile: float, dt: float) -> None:
        """Filter the profile clock's speed; a new profile starts at full speed."""
        if profile is not self._profile:
            self._profile, self._clock_speed = profile, 1.0
        elif dt > 0:
            speed = min(1.0, max(0.0, (t_profile - self._t_profile) / dt))
            self._clock_speed += (speed - self._clock_speed) * (
                1.0 - math.exp(-dt / CLOCK_FILTER_S)
            )
        self._t_profile = t_profile

    def feedforward_pct(self, setpoint_c: float, slope_c_s: float, sink_c: float) -> float:
        m = self.model
        molten, dm_dt = melt_fraction(setpoint_c, self.melt)
        rate = slope_c_s * (1.0 + m.latent_heat_k * dm_dt)
        loss = (m.loss_per_s + m.molten_loss_per_s * molten) * (setpoint_c - sink_c)
        loss += m.radiation_c_s_per_1e10_k4 * radiation_term(setpoint_c)
        return (rate + loss) / m.gain_c_s_per_pct

    def update(
        self,
        t: float,
        profile: Profile,
        t_profile: float,
        *,
        measured_c: float,
        sink_c: float,
        cap_pct: float,
    ) -> float:
        m, g = self.model, self.gains
        dt = 0.0 if self._last_t is None else max(0.0, t - self._last_t)
        self._last_t = t
        self._track_clock(profile, t_profile, dt)
        setpoint, slope = profile.at(t_profile)
        # The lamp's power reaches the chip one filament lag late: ask now for the power the
        # setpoint needs then (the profile carries the next step's ramp as its look-ahead).
        lead_sp, lead_slope = profile.at(t_profile + m.filament_tau_s)
        if self._ref_tc is None or self._y_f is None:
            self._ref_tc, self._y_f = measured_c, measured_c
        prev_ref, prev_y = self._ref_tc, self._y_f
        if dt > 0:
            # Exact discretisation of the first-order lags, whatever the period.
            self._ref_tc += (setpoint - self._ref_tc) * (1.0 - math.exp(-dt / m.tc_tau_s))
            self._y_f += (measured_c - self._y_f) * (1.0 - math.exp(-dt / g.d_filter_s))
        error = self._ref_tc - measured_c
        # On a ramp, a chip that trails (latent heat the lamps could not supply or withdraw
        # fast enough) is brought back gently: a full-gain catch-up would heat or cool it
        # faster than the recipe's rate limit.
        catch_up_c = profile.catch_up_c_s / (m.gain_c_s_per_pct * g.kp_pct_per_k)
        if slope > 0:
            error = min(error, catch_up_c)
        elif slope < 0:
            if self._clock_speed < STALLED_CLOCK_SPEED:
                # The clock has been waiting for the chip most of the last seconds: the chip
                # is not trailing a moving reference but stalled above a (nearly) still one,
                # by lamp power the model and the integrator put there (a dead zone's share
                # made up while heating). Closing the loop on it at up to the ramp's own rate
                # cannot cool it faster than planned (it was not keeping up), and the
                # integrator sheds the surplus (ADR 0110).
                catch_up_c = max(catch_up_c, -slope / (m.gain_c_s_per_pct * g.kp_pct_per_k))
            error = max(error, -catch_up_c)
        # Derivative on the measurement (no kick when the profile turns a corner), less the
        # slope the reference model itself is planned to have: the feedforward owns that.
        d_term = 0.0
        if dt > 0:
            d_term = (
                -g.kp_pct_per_k * g.td_s * ((self._y_f - prev_y) - (self._ref_tc - prev_ref)) / dt
            )
        ff = self.feedforward_pct(lead_sp, lead_slope, sink_c)
        p_term = g.kp_pct_per_k * error
        wanted = ff + p_term + self._integral + d_term
        limit = max(0.0, min(self.max_pct, cap_pct))
        out = min(limit, max(0.0, wanted))
        if dt > 0:
            step = self.slew_pct_per_s * dt
            # The slew limit spares the filaments and SCRs; the cap (the component near its
            # Tg) is the process's limit and wins over it.
            out = min(limit, self._out + step, max(self._out - step, out))
            # Back-calculation: what the actuator could not deliver bleeds the integrator.
            # Anti-windup, twice: back-calculation bleeds what the actuator could not deliver,
            # and the error is integrated only near the reference (conditional integration):
            # a large transient is the feedforward's and the P term's business.
            near = abs(error) <= INTEGRATE_BAND_C
            gain = g.kp_pct_per_k * error / g.ti_s if near else 0.0
            self._integral += gain * dt
            # The bleed takes back the integrator's own windup, toward zero and never past
            # it: a saturation the feedforward causes (the latent heat's step as the setpoint
            # crosses a solder's band, a few periods) is not the integrator's to make up.
            # Pushed the other way it kept a surplus the cool step's clamped error could not
            # shed: lamp power the chip carried down its whole cooling ramp (ADR 0122).
            bleed = (out - wanted) / g.tt_s * dt
            if bleed > 0.0:
                bleed = min(bleed, max(0.0, -self._integral))
            else:
                bleed = max(bleed, min(0.0, -self._integral))
            self._integral += bleed
            # The integrator corrects what the model gets wrong, a few % of full power; beyond
            # this bound it could only be holding windup from a long saturation.
            self._integral = max(-INTEGRAL_LIMIT_PCT, min(INTEGRAL_LIMIT_PCT, self._integral))
        self._out = out
        return out


def chip_controller(model: ThermalModel, melt: tuple[float, float] | None) -> ChipLoop:
    return ChipController(model, melt)
