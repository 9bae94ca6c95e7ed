"""``bonderd tune``: identify the chip's thermal model on the machine itself (ADR 0061).

The experiment is an ordinary vacuum-film bond run (chuck stabilize, purge, pump down,
reflow, cool, vent) through the executor, the interlocks and the safe state, with one
difference: during the reflow step the lamps are driven by :class:`IdentificationLoop`
instead of the profile controller —

- phase A, open loop: a staircase of lamp power steps well below the solder's solidus, which
  identifies the gain, the loss and the two lags;
- phase B, closed loop on the phase-A model: a ramp through the solder's melting band to
  liquidus + 25 °C, a hold, and a ramp back below solidus, which identifies the latent heat
  and the extra loss through molten joints.

The fit (:func:`fit`) is equation-error least squares on the chip's energy balance over short
windows; the thermocouple lag is undone exactly in integrated form, the filament lag is
applied to the input, and the two lags are found by a grid search.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from daemon.thermal import (
    ChipController,
    ChipLoop,
    Profile,
    ThermalModel,
    melt_fraction,
    radiation_term,
)

# Phase A: (lamp %, seconds). From a chip near room temperature this stays below ~130 °C
# on the bonder's nameplate numbers, far from any solder's solidus, and every step is long
# against the lags and short against the loss time constant, so both are seen.
STAIRCASE: tuple[tuple[float, float], ...] = (
    (10.0, 8.0),
    (2.0, 5.0),
    (14.0, 6.0),
    (4.0, 6.0),
    (12.0, 5.0),
    (0.0, 5.0),
)
PEAK_OVER_LIQUIDUS_C = 25.0
RAMP_C_PER_S = 6.0
PEAK_HOLD_S = 12.0
BELOW_SOLIDUS_C = 15.0
WINDOW_S = 0.5  # energy-balance window of the fit (phase A)
DERIV_HALF_S = 0.25  # local line fit for the reading's slope at window ends
LAG_GRID_S = tuple(round(0.025 + 0.025 * i, 4) for i in range(32))  # 0.025 … 0.8 s
# Phase A's own controller needs lags before they are fitted; any value of the right order
# keeps that loop stable, and phase B is fitted afterwards with the fitted ones.
PRELIMINARY_LAG_S = 0.3


class TuneError(Exception):
    """The identification could not produce a usable model; the message says why."""


@dataclass
class Record:
    t: list[float] = field(default_factory=list)
    u: list[float] = field(default_factory=list)  # lamp % commanded for the period after t
    y: list[float] = field(default_factory=list)  # control thermocouple
    sink: list[float] = field(default_factory=list)  # component thermocouple
    phase: list[str] = field(default_factory=list)


class IdentificationLoop:
    """A ChipLoop that runs the identification experiment instead of following a profile."""

    def __init__(self, melt: tuple[float, float]) -> None:
        self.melt = melt
        self.record = Record()
        self._t0: float | None = None
        self._inner: ChipController | None = None
        self._phase_b: Profile | None = None
        self._tb0 = 0.0
        self._reflow_profile: Profile | None = None
        self.phase_a_model: ThermalModel | None = None
        self.done = False

    @property
    def expected_c(self) -> float | None:
        return None  # the reflow step's clock runs plainly: this is not a profile

    def duration_s(self) -> float:
        """An upper bound of the experiment's length, for sizing the reflow step."""
        solidus, liquidus = self.melt
        span = liquidus + PEAK_OVER_LIQUIDUS_C - 20.0
        down = liquidus + PEAK_OVER_LIQUIDUS_C - (solidus - BELOW_SOLIDUS_C)
        ramps = (span + down) / RAMP_C_PER_S
        return sum(s for _, s in STAIRCASE) + ramps + PEAK_HOLD_S + 10.0

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
        if self._t0 is None:
            self._t0 = t
        elapsed = t - self._t0
        phase = "A"
        u = 0.0
        edge = 0.0
        for pct, seconds in STAIRCASE:
            if elapsed < edge + seconds:
                u = pct
                break
            edge += seconds
        else:
            phase = "B"
            u = self._phase_b_power(t, profile, t_profile, measured_c, sink_c, cap_pct)
        u = max(0.0, min(cap_pct, u))
        rec = self.record
        rec.t.append(t)
        rec.u.append(u)
        rec.y.append(measured_c)
        rec.sink.append(sink_c)
        rec.phase.append(phase)
        return u

    def _phase_b_power(  # noqa: PLR0917 - the loop's own arguments, passed on
        self,
        t: float,
        profile: Profile,
        t_profile: float,
        measured_c: float,
        sink_c: float,
        cap_pct: float,
    ) -> float:
        if self._inner is None:
            a = [i for i, p in enumerate(self.record.phase) if p == "A"]
            rec = self.record
            model = fit_linear(
                [rec.t[i] for i in a],
                [rec.u[i] for i in a],
                [rec.y[i] for i in a],
                [rec.sink[i] for i in a],
                lags=(PRELIMINARY_LAG_S,),
            )
            self.phase_a_model = model
            # The preliminary loop knows nothing of the latent heat: it is what phase B
            # measures. The ramp's own clock pauses while the chip trails (see _follow).
            self._inner = ChipController(model, None)
            solidus, liquidus = self.melt
            from daemon.recipe.model import Segment  # noqa: PLC0415 - avoids a cycle

            self._phase_b = Profile(
                measured_c,
                [
                    Segment(
                        ramp_c_per_s=RAMP_C_PER_S,
                        to_c=liquidus + PEAK_OVER_LIQUIDUS_C,
                        hold_s=PEAK_HOLD_S,
                    ),
                    Segment(ramp_c_per_s=RAMP_C_PER_S, to_c=solidus - BELOW_SOLIDUS_C, hold_s=2.0),
                ],
                # No recipe rate limit here, and the latent heat is not in this loop's
                # model: let the feedback bring the chip through the band.
                catch_up_c_s=5.0,
            )
            self._tb0 = t
        assert self._phase_b is not None
        tb = t - self._tb0
        if self._reflow_profile is None:
            self._reflow_profile = profile
        if tb >= self._phase_b.duration_s:
            self.done = True
            if profile is self._reflow_profile:
                # Past the experiment, still in the reflow step: hold where phase B ended.
                return self._inner.update(
                    t,
                    self._phase_b,
                    self._phase_b.duration_s,
                    measured_c=measured_c,
                    sink_c=sink_c,
                    cap_pct=cap_pct,
                )
            # The cool step that follows: its profile, with the same loop (no gap).
            return self._inner.update(
                t, profile, t_profile, measured_c=measured_c, sink_c=sink_c, cap_pct=cap_pct
            )
        return self._inner.update(
            t, self._phase_b, tb, measured_c=measured_c, sink_c=sink_c, cap_pct=cap_pct
        )


# --------------------------------------------------------------------------- the fit


def _filtered(t: Sequence[float], u: Sequence[float], tau: float) -> list[float]:
    """``u`` (held constant over each period) through a first-order lag, sampled at ``t``."""
    out = [0.0] * len(u)
    x = u[0] if u else 0.0  # the phase starts from a settled filament
    for i in range(len(u)):
        out[i] = x
        if i + 1 < len(u):
            x += (u[i] - x) * (1.0 - math.exp(-(t[i + 1] - t[i]) / tau))
    return out


def _slopes(t: Sequence[float], y: Sequence[float]) -> list[float]:
    """The reading's slope at every sample: a least-squares line over ±DERIV_HALF_S."""
    n = len(t)
    out = [0.0] * n
    lo = hi = 0
    for i in range(n):
        while t[lo] < t[i] - DERIV_HALF_S:
            lo += 1
        while hi + 1 < n and t[hi + 1] <= t[i] + DERIV_HALF_S:
            hi += 1
        ts, ys = t[lo : hi + 1], y[lo : hi + 1]
        mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
        den = sum((a - mt) ** 2 for a in ts)
        out[i] = sum((a - mt) * (b - my) for a, b in zip(ts, ys, strict=True)) / den if den else 0.0
    return out


def _windows(t: Sequence[float], width_s: float) -> list[tuple[int, int]]:
    out, start = [], 0
    for i in range(1, len(t)):
        if t[i] - t[start] >= width_s:
            out.append((start, i))
            start = i
    return out


def _integral(t: Sequence[float], v: Sequence[float], a: int, b: int) -> float:
    return sum((t[i + 1] - t[i]) * v[i] for i in range(a, b))


def _solve(rows: Sequence[Sequence[float]], rhs: Sequence[float]) -> tuple[list[float], float]:
    """Least squares by the normal equations (2–3 unknowns): (solution, residual sum of squares)."""
    k = len(rows[0])
    ata = [[sum(r[i] * r[j] for r in rows) for j in range(k)] for i in range(k)]
    atb = [sum(r[i] * y for r, y in zip(rows, rhs, strict=True)) for i in range(k)]
    # Gaussian elimination with partial pivoting.
    m = [[*row, b] for row, b in zip(ata, atb, strict=True)]
    for c in range(k):
        p = max(range(c, k), key=lambda r: abs(m[r][c]))
        if abs(m[p][c]) < 1e-12:
            raise TuneError("the experiment does not excite the model (singular fit)")
        m[c], m[p] = m[p], m[c]
        for r in range(c + 1, k):
            f = m[r][c] / m[c][c]
            for j in range(c, k + 1):
                m[r][j] -= f * m[c][j]
    x = [0.0] * k
    for c in reversed(range(k)):
        x[c] = (m[c][k] - sum(m[c][j] * x[j] for j in range(c + 1, k))) / m[c][c]
    rss = sum(
        (sum(a * b for a, b in zip(r, x, strict=True)) - y) ** 2
        for r, y in zip(rows, rhs, strict=True)
    )
    return x, rss


@dataclass(frozen=True, slots=True)
class _Windows:
    """Per energy-balance window, the parts of its terms that do not depend on the lags.

    The chip is the reading with its lag undone, T = y + τ·y′; in integrated form
    ∫T = ∫y + τ·Δy exactly, and ΔT = Δy + τ·Δy′.
    """

    t: Sequence[float]
    u: Sequence[float]
    y: Sequence[float]
    sink: Sequence[float]
    slopes: Sequence[float]
    spans: Sequence[tuple[int, int]]
    dy: Sequence[float]
    dslope: Sequence[float]
    int_y_minus_sink: Sequence[float]

    @classmethod
    def of(
        cls,
        t: Sequence[float],
        u: Sequence[float],
        y: Sequence[float],
        sink: Sequence[float],
        width_s: float = WINDOW_S,
    ) -> _Windows:
        slopes = _slopes(t, y)
        spans = _windows(t, width_s)
        return cls(
            t,
            u,
            y,
            sink,
            slopes,
            spans,
            [y[b] - y[a] for a, b in spans],
            [slopes[b] - slopes[a] for a, b in spans],
            [_integral(t, y, a, b) - _integral(t, sink, a, b) for a, b in spans],
        )

    def int_u(self, tau_f: float) -> list[float]:
        uf = _filtered(self.t, self.u, tau_f)
        return [_integral(self.t, uf, a, b) for a, b in self.spans]

    def chip_terms(self, tau_tc: float) -> tuple[list[float], list[float]]:
        """(ΔT_chip, ∫(T_chip − sink)) per window."""
        d_t = [a + tau_tc * b for a, b in zip(self.dy, self.dslope, strict=True)]
        ex = [a + tau_tc * b for a, b in zip(self.int_y_minus_sink, self.dy, strict=True)]
        return d_t, ex


def _grid(lo: float, hi: float, step: float) -> list[float]:
    n = round((hi - lo) / step)
    return [round(lo + i * step, 6) for i in range(n + 1)]


def fit_linear(
    t: Sequence[float],
    u: Sequence[float],
    y: Sequence[float],
    sink: Sequence[float],
    *,
    lags: Sequence[float] = LAG_GRID_S,
) -> ThermalModel:
    """Gain, loss and lags from solid-solder data: ΔT = K·∫u_f − g·∫(T − sink) per window.

    The lamp-to-thermocouple transfer function is symmetric in the two lags, so these data
    give the pair, not which is which (phase B's melting tells them apart: fit_melt).
    """
    if len(t) < 40:
        raise TuneError(f"too few readings for a fit ({len(t)})")
    w = _Windows.of(t, u, y, sink)
    chip = {tau: w.chip_terms(tau) for tau in lags}
    best: tuple[float, float, float, float, float] | None = None  # rss, K, g, τf, τtc
    for i, tau_f in enumerate(lags):
        int_u = w.int_u(tau_f)
        for tau_tc in lags[i:]:
            d_t, int_ex = chip[tau_tc]
            (k, g), rss = _solve([(a, -b) for a, b in zip(int_u, int_ex, strict=True)], d_t)
            if best is None or rss < best[0]:
                best = (rss, k, g, tau_f, tau_tc)
    assert best is not None
    _, k, g, tau_a, tau_b = best
    if not (k > 0 and g > 0):
        raise TuneError(f"the fit is not physical (gain {k:.4g} °C/s/%, loss {g:.4g} /s)")
    return ThermalModel(
        gain_c_s_per_pct=k,
        loss_per_s=g,
        molten_loss_per_s=0.0,
        latent_heat_k=0.0,
        filament_tau_s=tau_a,
        tc_tau_s=tau_b,
    )


def fit_melt(rec: Record, linear: ThermalModel, melt: tuple[float, float]) -> ThermalModel:
    """Latent heat, molten-joint loss, radiation, and which lag is which, from phase B.

    With the gain and loss of phase A, per window
    ΔT − K·∫u_f + g·∫(T − sink) = −g_m·∫m(T)(T − sink) − L·Δm − ρ·∫(T⁴ − T_room⁴).
    The melting happens in the chip, between the two lags, so the split of their sum that
    leaves the least residual tells the thermocouple's from the filament's. The component's
    reading (the sink) has its lag undone with the thermocouple's: the same kind of sensor.
    """
    idx = [i for i, p in enumerate(rec.phase) if p == "B"]
    if len(idx) < 40:
        raise TuneError("phase B (through the melting band) did not run")
    t = [rec.t[i] for i in idx]
    y = [rec.y[i] for i in idx]
    raw_sink = [rec.sink[i] for i in idx]
    sink_slopes = _slopes(t, raw_sink)
    u = [rec.u[i] for i in idx]
    total = linear.filament_tau_s + linear.tc_tau_s
    best: tuple[float, float, float, float, float] | None = None  # rss, g_m, L, ρ, τf
    for tau_f in _grid(0.02, total - 0.02, 0.01):
        tau_tc = total - tau_f
        sink = [a + tau_tc * b for a, b in zip(raw_sink, sink_slopes, strict=True)]
        w = _Windows.of(t, u, y, sink)
        int_u = w.int_u(tau_f)
        d_t, int_ex = w.chip_terms(tau_tc)
        chip = [yy + tau_tc * d for yy, d in zip(y, w.slopes, strict=True)]
        molten = [melt_fraction(c, melt)[0] for c in chip]
        if not any(m > 0 for m in molten):
            raise TuneError("the chip never reached the solder's melting band")
        excess_m = [m * (c - k) for m, c, k in zip(molten, chip, sink, strict=True)]
        rad = [radiation_term(c) for c in chip]
        rows, rhs = [], []
        for (a, b), dt_, iu, ie in zip(w.spans, d_t, int_u, int_ex, strict=True):
            rows.append(
                (
                    -_integral(t, excess_m, a, b),
                    -(molten[b] - molten[a]),
                    -_integral(t, rad, a, b),
                )
            )
            rhs.append(dt_ - linear.gain_c_s_per_pct * iu + linear.loss_per_s * ie)
        (g_m, latent, rho), rss = _solve(rows, rhs)
        if best is None or rss < best[0]:
            best = (rss, g_m, latent, rho, tau_f)
    assert best is not None
    _, g_m, latent, rho, tau_f = best
    return ThermalModel(
        gain_c_s_per_pct=linear.gain_c_s_per_pct,
        loss_per_s=linear.loss_per_s,
        molten_loss_per_s=max(0.0, g_m),
        latent_heat_k=max(0.0, latent),
        filament_tau_s=tau_f,
        tc_tau_s=total - tau_f,
        radiation_c_s_per_1e10_k4=max(0.0, rho),
    )


def identify(rec: Record, melt: tuple[float, float]) -> ThermalModel:
    a = [i for i, p in enumerate(rec.phase) if p == "A"]
    linear = fit_linear(
        [rec.t[i] for i in a],
        [rec.u[i] for i in a],
        [rec.y[i] for i in a],
        [rec.sink[i] for i in a],
    )
    return fit_melt(rec, linear, melt)


def loop_factory(melt: tuple[float, float]) -> tuple[IdentificationLoop, object]:
    """The loop, and a ControllerFactory that hands it to the run's reflow step."""
    loop = IdentificationLoop(melt)

    def factory(model: ThermalModel | None, _melt: tuple[float, float] | None) -> ChipLoop:
        return loop

    return loop, factory


# ----------------------------------------------------------------- the run around it

# SAC305: the solder on the simulated plant and on the tuning coupon (docs/thermal-control.md).
DEFAULT_MELT = (217.0, 220.0)


def experiment_recipe(melt: tuple[float, float], hold: float) -> str:
    """A lamp experiment of ``hold`` seconds as a vacuum-film bond recipe (TOML text)."""
    solidus, liquidus = melt
    peak = liquidus + PEAK_OVER_LIQUIDUS_C
    return f"""\
# bonderd tune: identification of the chip's thermal model (daemon/tune.py). The reflow
# step's lamps follow the identification experiment, not this profile.
kind = "vacuum_film_bond"
name = "bonderd-tune"
description = "thermal model identification"

[materials.solder]
name = "tuning coupon"
solidus_c = {solidus!r}
liquidus_c = {liquidus!r}

[materials.component]
polymer = "polyimide"
tg_c = 360.0
tg_margin_c = 40.0

[atmosphere]
o2_max_ppm = 50.0
o2_max_partial_mbar = 0.05

[[steps]]
type = "chuck_stabilize"
setpoint_c = 25.0
tolerance_c = 1.0
settle_s = 5.0
timeout_s = 300.0

[[steps]]
type = "purge"
cycles = 2
pump_to_mbar = 1.0
backfill_to_mbar = 1000.0
o2_target_ppm = 10.0
timeout_s = 180.0

[[steps]]
type = "pump_down"
target_mbar = 2.0
timeout_s = 120.0

[[steps]]
type = "reflow"
control_tc = "chip"
peak_window_c = {{ min = {peak - 10.0!r}, max = {peak + 10.0!r} }}
time_above_liquidus_s = {{ min = 1.0, max = 600.0 }}
max_ramp_c_per_s = 10.0
timeout_s = {hold + 120.0!r}

[[steps.segments]]
ramp_c_per_s = {RAMP_C_PER_S!r}
to_c = {peak!r}
hold_s = {hold!r}

[[steps]]
type = "cool"
to_c = 100.0
max_rate_c_per_s = 3.0
keep_vacuum = true
timeout_s = 300.0

[[steps]]
type = "vent"
to_mbar = 950.0
timeout_s = 60.0
"""


def section_toml(model: ThermalModel, identified_at: str) -> str:
    """The ``[thermal]`` section of the configuration file, as bonderd tune prints it."""
    return (
        "[thermal]\n"
        "# The chip's thermal model, identified by bonderd tune (docs/thermal-control.md).\n"
        "# Per chip heat capacity: °C/s per % of lamp power, losses per second, latent heat\n"
        "# in kelvin of chip temperature.\n"
        f"gain_c_s_per_pct = {model.gain_c_s_per_pct:.5g}\n"
        f"loss_per_s = {model.loss_per_s:.5g}\n"
        f"molten_loss_per_s = {model.molten_loss_per_s:.5g}\n"
        f"latent_heat_k = {model.latent_heat_k:.5g}\n"
        f"filament_tau_s = {model.filament_tau_s:.4g}\n"
        f"tc_tau_s = {model.tc_tau_s:.4g}\n"
        f"radiation_c_s_per_1e10_k4 = {model.radiation_c_s_per_1e10_k4:.4g}\n"
        f'identified_at = "{identified_at}"\n'
    )


def replace_section(original: str, section: str) -> str:
    """``original`` with its ``[thermal]`` table replaced by ``section`` (or ``section``
    appended); every other byte stays as it was (ADR 0061).

    The table runs from its header line to the next table header at the start of a line, or
    the end of the file; comments just above the next header stay with that header.
    """
    lines = original.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.strip() == "[thermal]"), None)
    if start is None:
        sep = (
            ""
            if not original or original.endswith("\n\n")
            else ("\n" if original.endswith("\n") else "\n\n")
        )
        return original + sep + section
    end = start + 1
    while end < len(lines) and not lines[end].lstrip().startswith("["):
        end += 1
    # Leave the comment block (and blank lines) that introduces the next table in place.
    keep = end
    while keep > start + 1 and (
        lines[keep - 1].strip() == "" or lines[keep - 1].lstrip().startswith("#")
    ):
        keep -= 1
    tail = lines[keep:]
    if end < len(lines) and tail and tail[0].strip() != "":
        tail = ["\n", *tail]
    return "".join(lines[:start]) + section + "".join(tail)
