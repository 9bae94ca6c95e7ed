"""The substeps of a panel's span: every site, cell and the chuck below them, step by step
(docs/adr/0186).

Two kernels do the same operations on the same doubles in the same order: ``substeps_py``
here, the reference, and ``_panel_native.substeps``, its C twin, built with the project when
the machine has a C compiler (``hatch_build.py``) and compiled without contraction of
multiply-adds or any fast-math, so it rounds every step as Python does and gives the same
bits (tests/test_panel_native.py holds them together). ``substeps`` and ``absorbed`` are the
native ones where built, else these; ``NATIVE`` says which.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from drivers.sim.plant.params import KELVIN

# The constants a span reads, in the order both kernels unpack them.
Scalars = tuple[float, ...]
# The chuck's and the thermocouples' state carried from span to span:
# chuck, fluid, chiller integral, chip, component and chuck thermocouples, coalescence.
State = tuple[float, float, float, float, float, float, float]
# What a span gives back: the component's mean at the end of each substep, the new state,
# the chiller's last power, then the energy in, to the chiller and lost, J.
Result = tuple[list[float], State, float, float, float, float]
ZoneShares = list[tuple[tuple[float, ...], tuple[float, ...]]]  # per site: chip's, cell's
Powers = Sequence[tuple[float, float]]  # per site: chip's, cell's, W


def substeps_py(  # noqa: PLR0917 (positional, as the C twin takes them)
    p_means: Sequence[float],
    k: Scalars,
    state: State,
    flow: bool,
    ref: int,
    fil_settled: bool,
    fil: list[float],
    zone_w: Sequence[float],
    sites_k: Sequence[tuple[float, ...]],
    cells_k: Sequence[tuple[float, float, float]],
    q_cmd: Powers,
    q_gap: Powers,
    pairs: Sequence[tuple[int, int]],
    hs: list[float],
    tm: list[float],
    site_tc: list[float],
) -> Result:
    """One span of substeps, a substep per mean pressure in ``p_means``; ``fil``, ``hs``,
    ``tm`` and ``site_tc`` (filaments, sites' enthalpies, cells', sites' thermocouples) are
    moved in place."""
    (
        h,
        k_fil,
        k_tc_chip,
        k_tc_other,
        ts,
        band,
        g_lat,
        c_cells_sum,
        g_kf,
        g_ka,
        g_fa,
        sp,
        kp,
        ki,
        q_cool,
        q_heat,
        amb,
        amb_k4,
        p_atm,
        inv_patm,
        inv_ck,
        inv_cf,
        coal_k,
    ) = k
    tk, tf, chill_i, tc_chip, tc_comp, tc_chuck, coal = state
    n = len(hs)
    q_ch = 0.0
    e_in = e_ch = e_loss = 0.0
    t_comp: list[float] = []
    decay = 1.0 - k_fil
    left = 0.0 if fil_settled else 1.0  # of the gap at the span's start, still open
    for p_mean in p_means:
        if not fil_settled:
            for z, w in enumerate(zone_w):
                fil[z] += (w - fil[z]) * k_fil
            left *= decay
        pressed = (p_atm - p_mean) * inv_patm
        pressed = 0.0 if pressed < 0.0 else (1.0 if pressed > 1.0 else pressed)
        gas = p_mean * inv_patm

        # Every flux from the state at the substep's start, then every node moves.
        dq_cell = [0.0] * n
        for a, b in pairs:
            q = g_lat * (tm[a] - tm[b])
            dq_cell[a] -= q
            dq_cell[b] += q
        q_mk_sum = 0.0
        melt_ref = 0.0
        t_ref = 0.0
        mean = 0.0
        # Each node moves as soon as its own fluxes are in: the cell's lateral share was
        # summed above from the substep's start, and nothing after a site reads it.
        for i, (
            (c, lat, h_sol, h_liq, c_band, lat_ts_band, g_atm, g_vac, g_melt, rad, g_gas),
            (g_d, inv_c_cell, c_cell),
            (q_chip, q_cell),
            (gap_chip, gap_cell),
            hc,
            t_cell,
            tc_site,
        ) in enumerate(zip(sites_k, cells_k, q_cmd, q_gap, hs, tm, site_tc, strict=True)):
            # zip has read hs[i], tm[i] and site_tc[i] before they are written below.
            if hc <= h_sol:
                t_i, melt = hc / c, 0.0
            elif hc >= h_liq:
                t_i, melt = (hc - lat) / c, 1.0
            else:
                t_i = (hc + lat_ts_band) / c_band
                melt = (t_i - ts) / band
            if i == ref:
                melt_ref, t_ref = melt, t_i
            q_in_chip = q_chip + gap_chip * left
            q_in_cell = q_cell + gap_cell * left
            q_cc = (g_atm + g_vac * pressed + g_melt * melt) * (t_i - t_cell)
            tck = t_i + KELVIN
            q_loss = rad * (tck * tck * tck * tck - amb_k4) + g_gas * gas * (t_i - amb)
            # The cell's way down: the chuck under it and, on the rim, the clamped
            # component beyond the panel, which sits on the chuck too.
            q_mk = g_d * (t_cell - tk)
            q_mk_sum += q_mk
            hs[i] = hc + h * (q_in_chip - q_cc - q_loss)
            t_moved = t_cell + h * (dq_cell[i] + (q_in_cell + q_cc - q_mk)) * inv_c_cell
            tm[i] = t_moved
            mean += c_cell * t_moved
            site_tc[i] = tc_site + (t_i - tc_site) * k_tc_chip
            e_in += h * (q_in_chip + q_in_cell)
            e_loss += h * q_loss
        if melt_ref and coal < 1.0:
            coal += (1.0 - coal) * melt_ref * coal_k * h
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
        tk += h * (q_mk_sum - q_kf - q_ka) * inv_ck
        tf += h * (q_kf - q_ch - q_fa) * inv_cf
        e_ch += h * q_ch
        e_loss += h * (q_ka + q_fa)
        tc_chip += (t_ref - tc_chip) * k_tc_chip
        tc_comp += (tm[ref] - tc_comp) * k_tc_other
        tc_chuck += (tk - tc_chuck) * k_tc_other
        t_comp.append(mean / c_cells_sum)
    return t_comp, (tk, tf, chill_i, tc_chip, tc_comp, tc_chuck, coal), q_ch, e_in, e_ch, e_loss


def absorbed_py(
    zones_k: ZoneShares, cmd: Sequence[float], fil: Sequence[float]
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Per site, the power its chip and its cell would absorb with the filaments at their
    commands, W, and what they absorb now less that."""
    at_cmd: list[tuple[float, float]] = []
    gap: list[tuple[float, float]] = []
    for chip_f, cell_f in zones_k:
        chip = cell = chip0 = cell0 = 0.0
        for a_chip, a_cell, c, f in zip(chip_f, cell_f, cmd, fil, strict=True):
            chip += a_chip * c
            cell += a_cell * c
            chip0 += a_chip * f
            cell0 += a_cell * f
        at_cmd.append((chip, cell))
        gap.append((chip0 - chip, cell0 - cell))
    return at_cmd, gap


SubstepsFn = Callable[..., Result]
AbsorbedFn = Callable[
    [ZoneShares, Sequence[float], Sequence[float]],
    tuple[list[tuple[float, float]], list[tuple[float, float]]],
]

substeps: SubstepsFn = substeps_py
absorbed: AbsorbedFn = absorbed_py
NATIVE = False
try:
    from drivers.sim.plant import _panel_native
except ImportError:  # no C compiler where it was installed: the reference, slower
    pass
else:
    substeps = _panel_native.substeps
    absorbed = _panel_native.absorbed
    NATIVE = True
