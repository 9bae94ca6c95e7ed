"""Conformance of every site of a panel of chips (docs/panel.md, docs/adr/0161).

Each site is judged as the single chip is: its peak and its time above liquidus in the
reflow's windows, its heating and cooling rates under the recipe's limits, and hotter than
the component whenever its solder is molten. An instrumented site is judged on its own
thermocouple; a site without one on an estimate (channel ``site_<n>_est``), a quadratic
surface through the instrumented sites' readings at the same instant, and its entry says
so. The run fails if any site fails, and the check names the sites and what they failed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from daemon.judge.reflow import chip_hotter_check, cool_checks, reflow_checks
from daemon.judge.series import Series, Trace
from daemon.judge.types import Check
from daemon.recipe.model import Panel, Reflow, VacuumFilmBondRecipe
from daemon.store.trace import Sample
from drivers.protocols import site_channel

ESTIMATE_SUFFIX: Final = "_est"
ESTIMATE_METHOD: Final = "quadratic surface through the instrumented sites' readings"
MODEL_METHOD: Final = (
    "site model identified on the commissioning panel, driven by the zones' readings and "
    "corrected by the instrumented sites (recorded by the zone loop)"
)
PANEL_CHECK: Final = "every_site_conformed"
# A fit whose normal matrix has a pivot under this (relative) is degenerate for the sites
# that read: the next simpler surface is used.
_SINGULAR: Final = 1e-9


@dataclass(frozen=True)
class SiteVerdict:
    site: int
    row: int
    col: int
    instrumented: bool  # False: judged on the estimate, never a measurement
    channel: str
    peak_c: float | None
    tal_s: float | None
    ok: bool
    failed_checks: tuple[str, ...]
    method: str = ESTIMATE_METHOD  # how an uninstrumented site was estimated

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["failed_checks"] = list(self.failed_checks)
        method = d.pop("method")
        if not self.instrumented:
            d["estimate"] = method
        return d


@dataclass(frozen=True)
class PanelVerdict:
    sites: list[SiteVerdict]
    uniformity_c: float | None  # max − min of the sites' mean temperatures in the peak hold
    check: Check


def site_channels(panel: Panel) -> dict[int, str]:
    """Every site's channel: its thermocouple's, or its estimate's."""
    ref = panel.reference_site
    measured = set(panel.instrumented_sites)
    return {
        i: site_channel(i, ref) if i in measured else f"site_{i}{ESTIMATE_SUFFIX}"
        for i in range(panel.sites)
    }


def unwired_sites(recipe: object, channels: Sequence[str]) -> list[str]:
    """The recipe's instrumented sites' channels the machine has no thermocouple input for
    (a run must not start: its proof would lack them)."""
    if not isinstance(recipe, VacuumFilmBondRecipe) or recipe.panel is None:
        return []
    panel = recipe.panel
    if panel.sites == 1:
        return []
    have = set(channels)
    wanted = site_channels(panel)
    return [wanted[i] for i in panel.instrumented_sites if wanted[i] not in have]


# ------------------------------------------------------------------------------ estimates


def _xy(panel: Panel, site: int) -> tuple[float, float]:
    r, c = divmod(site, panel.cols)
    return c - (panel.cols - 1) / 2.0, r - (panel.rows - 1) / 2.0


def _bases(known: int) -> list[list[str]]:
    """The surfaces to try for ``known`` readings, richest first."""
    full = ["1", "x", "y", "xx", "yy", "xy"]
    radial = ["1", "x", "y", "rr", "xy"]
    plane = ["1", "x", "y"]
    order = [full, radial, plane, ["1", "x"], ["1", "y"], ["1"]]
    return [b for b in order if len(b) <= known]


def _terms(basis: list[str], x: float, y: float) -> list[float]:
    value = {"1": 1.0, "x": x, "y": y, "xx": x * x, "yy": y * y, "xy": x * y, "rr": x * x + y * y}
    return [value[t] for t in basis]


def _solve(a: list[list[float]], b: list[list[float]]) -> list[list[float]] | None:
    """``a⁻¹ b`` by Gauss–Jordan with partial pivoting; None if ``a`` is singular."""
    n = len(a)
    m = [row[:] + rhs[:] for row, rhs in zip(a, b, strict=True)]
    scale = max(abs(v) for row in a for v in row) or 1.0
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[piv][col]) < _SINGULAR * scale:
            return None
        m[col], m[piv] = m[piv], m[col]
        p = m[col][col]
        m[col] = [v / p for v in m[col]]
        for r in range(n):
            if r != col and m[r][col] != 0.0:
                f = m[r][col]
                m[r] = [v - f * w for v, w in zip(m[r], m[col], strict=True)]
    return [row[n:] for row in m]


def surface_weights(panel: Panel, known: Sequence[int]) -> dict[int, list[float]]:
    """For each site not in ``known``: weights w with estimate = Σ w_k · T(known_k), the
    least-squares surface through the known sites evaluated at the site."""
    pts = [_xy(panel, k) for k in known]
    targets = [i for i in range(panel.sites) if i not in set(known)]
    for basis in _bases(len(known)):
        rows = [_terms(basis, x, y) for x, y in pts]
        p = len(basis)
        ata = [[sum(r[i] * r[j] for r in rows) for j in range(p)] for i in range(p)]
        at = [[r[i] for r in rows] for i in range(p)]  # p × known
        pinv = _solve(ata, at)  # (AᵀA)⁻¹Aᵀ, p × known
        if pinv is None:
            continue
        out: dict[int, list[float]] = {}
        for j in targets:
            phi = _terms(basis, *_xy(panel, j))
            out[j] = [sum(phi[i] * pinv[i][k] for i in range(p)) for k in range(len(known))]
        return out
    return {j: [] for j in targets}  # nothing reads: no estimate


def with_estimates(panel: Panel, samples: Sequence[Sample]) -> list[Sample]:
    """The samples with every uninstrumented site's estimate added as its channel.

    Where the run recorded its site model's estimate (channel ``site_<n>_est``, the zone
    loop's observer, ADR 0166) that is the estimate; elsewhere (before the loop started,
    between its steps, after it) the surface through the measured sites, shifted by the
    model's last (or first) difference from it, so the estimate does not jump where the
    model's record starts and ends (a jump would read as a heating or cooling rate)."""
    channels = site_channels(panel)
    measured = [(i, channels[i]) for i in panel.instrumented_sites]
    cache: dict[tuple[int, ...], dict[int, list[float]]] = {}
    surfaces: list[dict[str, float | None]] = []
    for s in samples:
        temps = s.temps_c
        reading = [(i, v) for i, ch in measured if (v := temps.get(ch)) is not None]
        known = tuple(i for i, _ in reading)
        weights = cache.get(known)
        if weights is None:
            weights = cache[known] = surface_weights(panel, known)
        est: dict[str, float | None] = {}
        for j, w in weights.items():
            est[channels[j]] = (
                sum(wk * v for wk, (_, v) in zip(w, reading, strict=True)) if w else None
            )
        surfaces.append(est)
    est_channels = [
        channels[j] for j in range(panel.sites) if j not in set(panel.instrumented_sites)
    ]
    est_set = set(est_channels)
    # The model's first difference from the surface, carried back to the start.
    offset: dict[str, float] = {}
    for s, surf in zip(samples, surfaces, strict=True):
        for ch in est_channels:
            m, f = s.temps_c.get(ch), surf.get(ch)
            if ch not in offset and m is not None and f is not None:
                offset[ch] = m - f
        if len(offset) == len(est_channels):
            break
    out: list[Sample] = []
    for s, surf in zip(samples, surfaces, strict=True):
        temps = s.temps_c
        # A measured site whose reading was lost: the surface stands in, as it always did.
        est = {ch: f for ch, f in surf.items() if ch not in est_set}
        for ch in est_channels:
            m, f = temps.get(ch), surf.get(ch)
            if m is not None:
                est[ch] = m
                if f is not None:
                    offset[ch] = m - f
            else:
                est[ch] = None if f is None else f + offset.get(ch, 0.0)
        out.append(dataclasses.replace(s, temps_c={**temps, **est}))
    return out


def site_columns(panel: Panel, samples: Sequence[Sample]) -> list[Series]:
    """Per site, the signal it is judged on, sample by sample: what its channel holds in
    ``with_estimates``'s samples (the thermocouple's reading, the surface where it was lost;
    for a site without one the site model's recorded estimate, or the shifted surface where
    the model recorded none),
    None where there is nothing or it is not a number, as ``Trace`` reads a chip channel.

    The same numbers as ``Trace`` of ``with_estimates`` (tests/test_panel_judge_columns.py),
    without a copy of every sample and its temperatures (docs/adr/0180).
    """
    channels = site_channels(panel)
    instrumented = set(panel.instrumented_sites)
    measured = [(i, channels[i]) for i in panel.instrumented_sites]
    estimated = [j for j in range(panel.sites) if j not in instrumented]
    cache: dict[tuple[int, ...], dict[int, list[float]]] = {}
    cols: list[Series] = [[] for _ in range(panel.sites)]
    surface: dict[int, list[float | None]] = {j: [] for j in estimated}
    isnan = math.isnan
    for s in samples:
        temps = s.temps_c
        reading = [(i, v) for i, ch in measured if (v := temps.get(ch)) is not None]
        known = tuple(i for i, _ in reading)
        table = cache.get(known)
        if table is None:
            table = cache[known] = surface_weights(panel, known)
        values = []
        for i, v in reading:
            cols[i].append(None if isnan(v) else v)
            values.append(v)
        for j, w in table.items():
            # with_estimates's sum, term for term: the same number (a plain loop from 0.0
            # adds as ``sum`` does, ADR 0181).
            e: float | None = None
            if w:
                e = 0.0
                for wk, v in zip(w, values, strict=True):
                    e += wk * v
            if j in instrumented:  # a lost reading: the surface stands in
                cols[j].append(None if e is None or isnan(e) else e)
            else:
                surface[j].append(e)
    for j in estimated:
        ch = channels[j]
        model = [s.temps_c.get(ch) for s in samples]
        # with_estimates's offsets: the model's first difference from the surface, carried
        # back to the start, then its latest, carried forward.
        offset: float | None = next(
            (
                m - f
                for m, f in zip(model, surface[j], strict=True)
                if m is not None and f is not None
            ),
            None,
        )
        col = cols[j]
        for m, f in zip(model, surface[j], strict=True):
            if m is not None:
                value: float | None = m
                if f is not None:
                    offset = m - f
            else:
                value = None if f is None else f + (0.0 if offset is None else offset)
            col.append(None if value is None or isnan(value) else value)
    return cols


def estimate_method(samples: Sequence[Sample], channel: str) -> str:
    """How ``channel`` (an uninstrumented site's) was estimated in this run."""
    if any(s.temps_c.get(channel) is not None for s in samples):
        return MODEL_METHOD
    return ESTIMATE_METHOD


# ------------------------------------------------------------------------------- verdicts


def _peak_hold(recipe: VacuumFilmBondRecipe, samples: Sequence[Sample]) -> list[int]:
    """The samples of each reflow's last hold: the setpoint on the last segment's target."""
    idx: list[int] = []
    for r in (s for s in recipe.steps if isinstance(s, Reflow)):
        top = r.segments[-1].to_c
        idx += [
            i
            for i, s in enumerate(samples)
            if s.step == r.name and s.setpoint_c is not None and abs(s.setpoint_c - top) < 1e-6
        ]
    return idx


def evaluate_panel(
    recipe: object, samples: Sequence[Sample], base: Trace | None = None
) -> PanelVerdict | None:
    """Every site's verdict, the panel's uniformity and the check that every site held;
    None for a recipe without a panel of more than one site. ``base``: the samples' trace
    if the caller built one (the whole run's, judged on the reflow's control channel)."""
    if not isinstance(recipe, VacuumFilmBondRecipe) or recipe.panel is None:
        return None
    panel = recipe.panel
    if panel.sites == 1:
        return None
    channels = site_channels(panel)
    measured = set(panel.instrumented_sites)
    hold = _peak_hold(recipe, samples)
    verdicts: list[SiteVerdict] = []
    means: list[float] = []
    if base is not None and base.samples is not samples:
        raise ValueError("base: a trace of other samples than the ones judged")
    for i, column in enumerate(site_columns(panel, samples)):
        if base is None:
            base = Trace(recipe, samples, chip_channel=channels[i])
        if base.chip_channel == channels[i] and base.chip == column:
            tr = base  # the site the base was judged on (the reference site, as a rule)
        else:
            # Another site, or the base's own channel is not what the site is judged on
            # (its estimate stands in for a missing reading).
            tr = Trace.sharing(base, channels[i], column)
        checks = [*reflow_checks(tr), *cool_checks(tr), chip_hotter_check(tr)]
        peak = next((c.value for c in checks if c.check.startswith("peak_in_window")), None)
        tal = next((c.value for c in checks if c.check.startswith("time_above_liquidus")), None)
        failed = tuple(c.check for c in checks if not c.ok)
        r, c = divmod(i, panel.cols)
        verdicts.append(
            SiteVerdict(
                i,
                r,
                c,
                i in measured,
                channels[i],
                peak,
                tal,
                not failed,
                failed,
                ESTIMATE_METHOD if i in measured else estimate_method(samples, channels[i]),
            )
        )
        held = [v for k in hold if (v := tr.chip[k]) is not None]
        if held:
            means.append(sum(held) / len(held))
    uniformity = max(means) - min(means) if hold and len(means) == panel.sites else None
    return PanelVerdict(verdicts, uniformity, _panel_check(panel, verdicts, uniformity))


def _panel_check(panel: Panel, sites: list[SiteVerdict], uniformity: float | None) -> Check:
    n_est = sum(not s.instrumented for s in sites)
    condition = (
        f"every chip of the {panel.rows} × {panel.cols} panel met the reflow's peak window, "
        "time above liquidus, ramp and cooling limits and was hotter than the component "
        f"while molten ({len(sites) - n_est} sites measured, {n_est} judged on estimates)"
    )
    bad = [s for s in sites if not s.ok]
    spread = "" if uniformity is None else f"; uniformity {uniformity:.2f} °C at the peak hold"
    if not bad:
        detail = f"all {len(sites)} sites held{spread}"
    else:
        detail = (
            "; ".join(
                f"site {s.site} (row {s.row}, col {s.col}, "
                f"{'measured' if s.instrumented else 'estimated'}): {', '.join(s.failed_checks)}"
                for s in bad
            )
            + spread
        )
    return Check(PANEL_CHECK, not bad, float(len(bad)), 0.0, detail, condition)
