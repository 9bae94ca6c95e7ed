"""The fit behind ``bonderd tune``: the chip's thermal model from the identification record.

The plant, per chip heat capacity (H = T + L·m(T), the enthalpy in kelvin of chip
temperature; m the molten fraction over the recipe's melting band):

    dH/dt = K·F − (g + g_m·m)·(T − S) − ρ·(T⁴ − T_room⁴)
    F = lamp % through the filament lag τ_f
    y = T through the chip thermocouple's lag τ_tc;  z = S through the component's, σ

y and z are what the record holds. Three stages (ADR 0064):

1. **Equation error, filtered** (phase A, solid solder): the balance is passed through the
   thermocouple's lag instead of the reading being differentiated to undo it, so the windows'
   left side is Δy itself and the sink's lag costs no derivative:
   lag_tc(S) = z + (σ − τ_tc)·d/dt lag_tc(z). Gain, loss and the pair of lags (the lamp to
   thermocouple path is symmetric in them).
2. **Equation error** over phase B for the molten-joint loss, the radiation and a first latent
   heat, windows ending outside the melting band (the molten fraction at their ends is then
   exactly 0 or 1, not a function of a noisy temperature).
3. **Output error over the band crossings**: the model is simulated through each crossing
   from the recorded lamp power and component reading and compared with the chip reading;
   Gauss–Newton on the latent heat, the component thermocouple's lag σ, the split of the lag
   pair and each crossing's initial temperature. During a crossing the molten joints'
   conduction (g_m·(T − S), some 12 K/s) switches on with the melt: 0.02 s of error in when
   the melt happened is 10 % of the latent heat, so the timing must come from the same
   equations that produce the reading, not from a differentiated reading.

Pure Python (no numpy/scipy, ADR 0061); a few seconds for a run's record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from daemon.thermal.loop import (
    EUTECTIC_BAND_K,
    ROOM_K,
    ThermalModel,
    melt_fraction,
    radiation_term,
)

WINDOW_S = 0.5  # energy-balance window of the equation-error fits
DERIV_HALF_S = 0.25  # local line fit for a reading's slope (nonlinear terms only)
LAG_GRID_S = tuple(round(0.025 + 0.025 * i, 4) for i in range(32))  # 0.025 … 0.8 s
BAND_MARGIN_C = 1.5  # phase-B windows end this far outside the melting band (reading)
CROSSING_MARGIN_C = 8.0  # a crossing runs from this far below solidus to above liquidus
SUBSTEPS = 5  # integration substeps per sample in the output-error simulation
MAX_SIGMA_S = 5.0
SPLIT_GRID = (0.2, 0.4, 0.6, 0.8)  # τ_tc as a share of the lag pair's sum
GN_ITERATIONS = 16
ROUNDS = 2  # equation error ⇄ output error alternations


class TuneError(Exception):
    """The identification could not produce a usable model; the message says why."""


@dataclass
class Record:
    t: list[float] = field(default_factory=list)
    u: list[float] = field(default_factory=list)  # lamp % commanded for the period after t
    y: list[float] = field(default_factory=list)  # control thermocouple
    sink: list[float] = field(default_factory=list)  # component thermocouple
    phase: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- signal helpers


def lag_zoh(t: Sequence[float], u: Sequence[float], tau: float, x0: float) -> list[float]:
    """``u`` held constant over each period, through a first-order lag from ``x0``; exact."""
    out = [0.0] * len(u)
    x = x0
    for i in range(len(u)):
        out[i] = x
        if i + 1 < len(u):
            x += (u[i] - x) * (1.0 - math.exp(-(t[i + 1] - t[i]) / tau))
    return out


def lag_foh(t: Sequence[float], v: Sequence[float], tau: float) -> list[float]:
    """``v`` linear between samples, through a first-order lag settled at ``v[0]``; exact."""
    if not v:
        return []
    out = [0.0] * len(v)
    x = out[0] = v[0]
    for i in range(len(v) - 1):
        h = t[i + 1] - t[i]
        e = math.exp(-h / tau)
        x = e * x + (1.0 - e) * v[i] + (v[i + 1] - v[i]) * (1.0 - tau * (1.0 - e) / h)
        out[i + 1] = x
    return out


def slopes(t: Sequence[float], y: Sequence[float]) -> list[float]:
    """A reading's slope at every sample: a least-squares line over ±DERIV_HALF_S."""
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


def _trap(t: Sequence[float], v: Sequence[float], a: int, b: int) -> float:
    return sum((t[i + 1] - t[i]) * (v[i] + v[i + 1]) * 0.5 for i in range(a, b))


def trapezoid(t: Sequence[float], v: Sequence[float], a: int, b: int) -> float:
    """The integral of ``v`` over ``t[a]..t[b]`` (trapezoids)."""
    return _trap(t, v, a, b)


def windows(t: Sequence[float], width_s: float) -> list[tuple[int, int]]:
    """Consecutive (start, end) index spans of at least ``width_s`` seconds."""
    return _windows(t, width_s)


def _windows(
    t: Sequence[float],
    width_s: float,
    ok_end: Callable[[int], bool] | None = None,
    first: int = 0,
) -> list[tuple[int, int]]:
    out, start = [], first
    for i in range(first + 1, len(t)):
        if t[i] - t[start] >= width_s and (ok_end is None or ok_end(i)):
            out.append((start, i))
            start = i
    return out


def solve(rows: Sequence[Sequence[float]], rhs: Sequence[float]) -> tuple[list[float], float]:
    """Least squares by the normal equations (a few unknowns): (solution, residual SS)."""
    k = len(rows[0])
    ata = [[sum(r[i] * r[j] for r in rows) for j in range(k)] for i in range(k)]
    atb = [sum(r[i] * y for r, y in zip(rows, rhs, strict=True)) for i in range(k)]
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


def _band(melt: tuple[float, float]) -> tuple[float, float]:
    """(start, width) of the melting band as the model spreads it (thermal.melt_fraction)."""
    solidus, liquidus = melt
    if liquidus - solidus < EUTECTIC_BAND_K:
        return liquidus - EUTECTIC_BAND_K, EUTECTIC_BAND_K
    return solidus, liquidus - solidus


# --------------------------------------------------------------------------- the data


@dataclass(frozen=True, slots=True)
class _Series:
    """One phase of the record with what every stage reuses."""

    t: Sequence[float]
    u: Sequence[float]
    y: Sequence[float]
    z: Sequence[float]
    y_slope: Sequence[float]
    z_slope: Sequence[float]

    @classmethod
    def of(cls, rec: Record, idx: Sequence[int]) -> _Series:
        t = [rec.t[i] for i in idx]
        y = [rec.y[i] for i in idx]
        z = [rec.sink[i] for i in idx]
        return cls(t, [rec.u[i] for i in idx], y, z, slopes(t, y), slopes(t, z))


@dataclass(frozen=True, slots=True)
class _Lags:
    filament_s: float
    tc_s: float
    sink_s: float  # the component thermocouple's lag


def _filament(rec: Record, tau_f: float) -> list[float]:
    # The record starts at the reflow step's first command: the lamps were off before it.
    return lag_zoh(rec.t, rec.u, tau_f, 0.0)


def _sink_through_tc(s: _Series, lags: _Lags) -> list[float]:
    """lag_tc(S) from the component reading z = lag_σ(S), no derivative:
    lag_tc(S) = z + (σ − τ_tc)·d/dt lag_tc(z), and d/dt lag_tc(z) = (z − lag_tc(z))/τ_tc."""
    zl = lag_foh(s.t, s.z, lags.tc_s)
    k = (lags.sink_s - lags.tc_s) / lags.tc_s
    return [a + k * (a - b) for a, b in zip(s.z, zl, strict=True)]


# --------------------------------------------------------------------------- stage 1


def _linear_rows(
    s: _Series, f_in: Sequence[float], lags: _Lags
) -> tuple[list[tuple[float, float]], list[float]]:
    u_l = lag_foh(s.t, f_in, lags.tc_s)
    y_minus_s = [a - b for a, b in zip(s.y, _sink_through_tc(s, lags), strict=True)]
    spans = _windows(s.t, WINDOW_S)
    rows = [(_trap(s.t, u_l, a, b), -_trap(s.t, y_minus_s, a, b)) for a, b in spans]
    return rows, [s.y[b] - s.y[a] for a, b in spans]


def fit_linear(
    t: Sequence[float],
    u: Sequence[float],
    y: Sequence[float],
    sink: Sequence[float],
    *,
    lags: Sequence[float] = LAG_GRID_S,
) -> ThermalModel:
    """Gain, loss and the lag pair from solid-solder data starting from lamps off:
    Δy = K·∫lag_tc(lag_f(u)) − g·∫(y − z) per window (the component's lag taken as the
    chip's until the crossings tell it). The two lags enter the lamp path symmetrically, so
    the smaller is reported as the filament's; ``identify`` splits the pair."""
    if len(t) < 40:
        raise TuneError(f"too few readings for a fit ({len(t)})")
    rec = Record(list(t), list(u), list(y), list(sink), ["A"] * len(t))
    s = _Series.of(rec, range(len(t)))
    best: tuple[float, float, float, float, float] | None = None  # rss, K, g, τf, τtc
    for i, tau_f in enumerate(lags):
        f_in = lag_zoh(s.t, s.u, tau_f, 0.0)
        for tau_tc in lags[i:]:
            rows, rhs = _linear_rows(s, f_in, _Lags(tau_f, tau_tc, tau_tc))
            (k, g), rss = solve(rows, rhs)
            if best is None or rss < best[0]:
                best = (rss, k, g, tau_f, tau_tc)
    assert best is not None
    _, k, g, tau_a, tau_b = best
    _check_physical(k, g)
    return ThermalModel(
        gain_c_s_per_pct=k,
        loss_per_s=g,
        molten_loss_per_s=0.0,
        latent_heat_k=0.0,
        filament_tau_s=tau_a,
        tc_tau_s=tau_b,
    )


def _check_physical(k: float, g: float) -> None:
    if not (k > 0 and g > 0):
        raise TuneError(f"the fit is not physical (gain {k:.4g} °C/s/%, loss {g:.4g} /s)")


# --------------------------------------------------------------------------- stage 2


def _equation_fit(  # noqa: PLR0917 - the stage's inputs
    rec: Record,
    w: _Series,
    b_start: int,
    melt: tuple[float, float],
    lags: _Lags,
    latent: float | None,
    k_g: tuple[float, float] | None = None,
) -> tuple[float, float, float, float, float]:
    """(K, g, g_m, L, ρ) by the filtered equation error over the whole record ``w`` (phase B
    from ``b_start``); ``latent`` or ``k_g`` given are held, the rest fitted.

    Radiation is fitted with the loss over both phases: at phase A's temperatures it is a few
    ‰ of the loss, but a loss fitted without it is that much too high, and ρ·(T⁴ − T_room⁴)
    is so nearly proportional to the loss over phase B that ρ takes the whole error.
    """
    tau = lags.tc_s
    u_l = lag_foh(w.t, _filament(rec, lags.filament_s), tau)
    y_minus_s = [a - c for a, c in zip(w.y, _sink_through_tc(w, lags), strict=True)]
    chip = [a + tau * d for a, d in zip(w.y, w.y_slope, strict=True)]
    sink = [a + lags.sink_s * d for a, d in zip(w.z, w.z_slope, strict=True)]
    molten = [melt_fraction(c, melt)[0] for c in chip]
    if not any(m > 0 for m in molten[b_start:]):
        raise TuneError("the chip never reached the solder's melting band")
    m_l = lag_foh(w.t, molten, tau)
    ex_l = lag_foh(w.t, [m * (c - s) for m, c, s in zip(molten, chip, sink, strict=True)], tau)
    rad_l = lag_foh(w.t, [radiation_term(c) for c in chip], tau)
    lo, hi = melt[0] - BAND_MARGIN_C, melt[1] + BAND_MARGIN_C
    spans = _windows(w.t, WINDOW_S, lambda i: i < b_start or not lo < w.y[i] < hi)
    rows: list[list[float]] = []
    rhs = []
    for i0, i1 in spans:
        d_y = w.y[i1] - w.y[i0]
        d_m = m_l[i1] - m_l[i0]
        row = [-_trap(w.t, ex_l, i0, i1), -_trap(w.t, rad_l, i0, i1)]
        if k_g is None:
            row = [_trap(w.t, u_l, i0, i1), -_trap(w.t, y_minus_s, i0, i1), *row]
        else:
            d_y -= k_g[0] * _trap(w.t, u_l, i0, i1) - k_g[1] * _trap(w.t, y_minus_s, i0, i1)
        if latent is None:
            row.append(-d_m)
        else:
            d_y += latent * d_m
        rows.append(row)
        rhs.append(d_y)
    x, _ = solve(rows, rhs)
    k, g = (x.pop(0), x.pop(0)) if k_g is None else k_g
    g_m, rho = x[0], x[1]
    lat = x[2] if latent is None else latent
    _check_physical(k, g)
    return k, g, g_m, lat, rho


# --------------------------------------------------------------------------- stage 3


def _crossings(b: _Series, b_start: int, melt: tuple[float, float]) -> list[tuple[int, int]]:
    """Index spans of phase B over which the reading passes through the band, either way:
    from the last sample on one side of [solidus − margin, liquidus + margin] to the first
    on the other (a stay inside that leaves on the side it entered is not a crossing)."""
    lo, hi = melt[0] - CROSSING_MARGIN_C, melt[1] + CROSSING_MARGIN_C
    out, n = [], len(b.t)
    i = b_start
    while i < n:
        if lo < b.y[i] < hi:
            j = i
            while j < n and lo < b.y[j] < hi:
                j += 1
            if i > b_start and j < n and (b.y[i - 1] <= lo) != (b.y[j] <= lo):
                out.append((i - 1, j))
            i = j
        else:
            i += 1
    return out


@dataclass(frozen=True, slots=True)
class _Fixed:
    k: float
    g: float
    g_m: float
    rho: float
    lag_sum_s: float


def _simulate(  # noqa: PLR0917 - one crossing's inputs
    b: _Series,
    span: tuple[int, int],
    f_in: Sequence[float],
    fixed: _Fixed,
    melt: tuple[float, float],
    latent: float,
    sigma: float,
    tau_tc: float,
    t0_offset: float,
) -> list[float]:
    """The chip reading the model predicts over ``span`` (enthalpy form, as the solder melts)."""
    i0, i1 = span
    ts, band = _band(melt)
    tau_f = fixed.lag_sum_s - tau_tc
    temp = b.y[i0] + tau_tc * b.y_slope[i0] + t0_offset
    h_en = temp + latent * min(1.0, max(0.0, (temp - ts) / band))
    fil, y = f_in[i0], b.y[i0]
    c_band = 1.0 + latent / band
    k, g, g_m, rho = fixed.k, fixed.g, fixed.g_m, fixed.rho
    room4 = ROOM_K**4
    t, u, z, z_slope = b.t, b.u, b.z, b.z_slope
    out = [y]
    dt_last = k_f = k_tc = 0.0
    for i in range(i0, i1):
        dt = (t[i + 1] - t[i]) / SUBSTEPS
        if dt != dt_last:  # a steady monitor period: the exponentials once
            k_f = 1.0 - math.exp(-dt / tau_f)
            k_tc = 1.0 - math.exp(-dt / tau_tc)
            dt_last = dt
        s0 = z[i] + sigma * z_slope[i]
        ds = (z[i + 1] + sigma * z_slope[i + 1] - s0) / SUBSTEPS
        sink = s0 + 0.5 * ds
        ui = u[i]
        for _ in range(SUBSTEPS):
            if h_en <= ts:
                temp, m = h_en, 0.0
            elif h_en >= ts + band + latent:
                temp, m = h_en - latent, 1.0
            else:
                temp = (h_en + latent * ts / band) / c_band
                m = (temp - ts) / band
            fil += (ui - fil) * k_f
            tk2 = (temp + 273.15) ** 2
            h_en += dt * (
                k * fil - (g + g_m * m) * (temp - sink) - rho * (tk2 * tk2 - room4) * 1e-10
            )
            y += (temp - y) * k_tc
            sink += ds
        out.append(y)
    return out


def _crossing_fit(  # noqa: PLR0917 - the stage's inputs
    rec: Record,
    b: _Series,
    spans: Sequence[tuple[int, int]],
    fixed: _Fixed,
    melt: tuple[float, float],
    start: tuple[float, float, float],
    *,
    free_tau: bool = True,
) -> tuple[float, float, float, float]:
    """(L, σ, τ_tc, cost) minimising the reading's output error over the crossings; τ_tc held
    at its start unless ``free_tau``."""
    lo_tau, hi_tau = 0.01, fixed.lag_sum_s - 0.01
    filaments: dict[float, list[float]] = {}

    def crossing(x: Sequence[float], c: int) -> list[float]:
        latent, sigma, tau_tc = x[0], x[1], x[2]
        tau_f = round(fixed.lag_sum_s - tau_tc, 9)
        if tau_f not in filaments:
            filaments[tau_f] = _filament(rec, tau_f)
        i0, i1 = spans[c]
        sim = _simulate(b, spans[c], filaments[tau_f], fixed, melt, latent, sigma, tau_tc, x[3 + c])
        return [p - m for p, m in zip(sim, b.y[i0 : i1 + 1], strict=True)]

    def residuals(x: Sequence[float]) -> list[float]:
        return [v for c in range(len(spans)) for v in crossing(x, c)]

    def column(x: Sequence[float], r: Sequence[float], p: int) -> list[float]:
        step = 1e-4
        xp = list(x)
        xp[p] += step
        if p < 3:
            return [(a - c) / step for a, c in zip(residuals(xp), r, strict=True)]
        # A crossing's initial offset moves only that crossing's residuals.
        c = p - 3
        lo = sum(spans[j][1] - spans[j][0] + 1 for j in range(c))
        own = crossing(xp, c)
        col = [0.0] * len(r)
        col[lo : lo + len(own)] = [(a - r[lo + i]) / step for i, a in enumerate(own)]
        return col

    def clamp(x: list[float]) -> list[float]:
        x[0] = max(0.0, x[0])
        x[1] = min(MAX_SIGMA_S, max(0.0, x[1]))
        x[2] = min(hi_tau, max(lo_tau, x[2]))
        return x

    x = clamp([*start, *([0.0] * len(spans))])
    r = residuals(x)
    cost = sum(v * v for v in r)
    for _ in range(GN_ITERATIONS if free_tau else GN_ITERATIONS // 2):
        cols = [column(x, r, p) for p in range(len(x)) if free_tau or p != 2]
        rows = [[col[i] for col in cols] for i in range(len(r))]
        dx, _ = solve(rows, [-v for v in r])
        if not free_tau:
            dx.insert(2, 0.0)
        scale = 1.0
        for _ in range(12):  # halve the step until the cost falls (a damped Gauss–Newton)
            trial = clamp([a + scale * d for a, d in zip(x, dx, strict=True)])
            r_trial = residuals(trial)
            cost_trial = sum(v * v for v in r_trial)
            if cost_trial <= cost:
                break
            scale *= 0.5
        else:
            break
        moved = max(abs(a - c) for a, c in zip(trial[:3], x[:3], strict=True))
        x, r, cost = trial, r_trial, cost_trial
        if moved < 1e-5:
            break
    return x[0], x[1], x[2], cost


# --------------------------------------------------------------------------- all together


def identify(rec: Record, melt: tuple[float, float]) -> ThermalModel:
    """The chip's thermal model from a whole identification record (module docstring)."""
    idx_a = [i for i, p in enumerate(rec.phase) if p == "A"]
    idx_b = [i for i, p in enumerate(rec.phase) if p == "B"]
    if len(idx_a) < 40:
        raise TuneError(f"too few readings for a fit ({len(idx_a)})")
    if len(idx_b) < 40:
        raise TuneError("phase B (through the melting band) did not run")
    if idx_a != list(range(len(idx_a))) or idx_b != list(range(len(idx_a), len(rec.t))):
        raise TuneError("the record is not phase A followed by phase B")
    # Phase B's fits run over the whole record (the lags' states carry over from phase A).
    a, b, b_start = _Series.of(rec, idx_a), _Series.of(rec, range(len(rec.t))), len(idx_a)
    linear = fit_linear(a.t, a.u, a.y, a.z)
    spans = _crossings(b, b_start, melt)
    if not spans:
        raise TuneError("the chip reading never passed through the solder's melting band")
    lag_sum = linear.filament_tau_s + linear.tc_tau_s
    k_g = (linear.gain_c_s_per_pct, linear.loss_per_s)
    # The component's lag starts as the chip's (stage 1's assumption), the split in the middle.
    lags = _Lags(lag_sum / 2.0, lag_sum / 2.0, lag_sum / 2.0)
    k, g, g_m, latent, rho = _equation_fit(rec, b, b_start, melt, lags, None, k_g)
    fixed = _Fixed(k, g, max(0.0, g_m), max(0.0, rho), lag_sum)
    # Which share of the pair is the thermocouple's: the crossings' cost has local minima, so
    # the split is first searched on a coarse grid.
    start = min(
        (
            _crossing_fit(
                rec,
                b,
                spans,
                fixed,
                melt,
                (max(latent, 0.0), lag_sum / 2.0, frac * lag_sum),
                free_tau=False,
            )
            for frac in SPLIT_GRID
        ),
        key=lambda r: r[3],
    )
    lags = _Lags(lag_sum - start[2], start[2], start[1])
    latent = start[0]
    for _ in range(ROUNDS):
        fixed = _Fixed(k, g, max(0.0, g_m), max(0.0, rho), lag_sum)
        latent, sigma, tau_tc, _ = _crossing_fit(
            rec, b, spans, fixed, melt, (max(latent, 0.0), lags.sink_s, lags.tc_s)
        )
        lags = _Lags(lag_sum - tau_tc, tau_tc, sigma)
        k, g, g_m, _, rho = _equation_fit(rec, b, b_start, melt, lags, latent)
    return ThermalModel(
        gain_c_s_per_pct=k,
        loss_per_s=g,
        molten_loss_per_s=max(0.0, g_m),
        latent_heat_k=max(0.0, latent),
        filament_tau_s=lags.filament_s,
        tc_tau_s=lags.tc_s,
        radiation_c_s_per_1e10_k4=max(0.0, rho),
    )
