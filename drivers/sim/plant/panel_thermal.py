"""The thermal chain of a panel of chips (docs/panel.md, docs/adr/0160).

With a panel of more than one site set (``set_panel``), each site's chip carries its own
enthalpy and solder, each cell of the component under it its own temperature, and the lamp
zones light every site and cell by the panel's view factors. The chuck, the chiller fluid,
the temperature-control unit and the thermocouple lag are today's. The machine's ``chip``
thermocouple sits on the reference site, its ``component`` thermocouple on that site's cell;
``chip_c`` is the reference site's temperature, ``component_c`` the component's
capacity-weighted mean (what a Tg margin is about). Without a panel (or with a 1 × 1 one)
none of this runs: ``ThermalChain`` integrates as before, to the bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.protocols import OUT_FILM_CLAMP, TC_CHANNELS
from drivers.sim.plant.panel import PanelLayout, PanelModel, PanelPhysics, panel_model
from drivers.sim.plant.panel_substeps import ZoneShares, absorbed, substeps
from drivers.sim.plant.thermal import ThermalChain


@dataclass(frozen=True, slots=True)
class SiteState:
    """One site of the panel now. Temperatures °C."""

    site: int
    row: int
    col: int
    chip_c: float
    cell_c: float  # the component under the chip
    melt_fraction: float
    tc_junction_c: float  # a thermocouple on this chip would be at this (lagged)


def _site_temp(h: float, c: float, lat: float, ts: float, band: float) -> tuple[float, float]:
    """Chip temperature and melt fraction from a site's enthalpy (the enthalpy method)."""
    if h <= c * ts:
        return h / c, 0.0
    if h >= c * (ts + band) + lat:
        return (h - lat) / c, 1.0
    temp = (h + lat * ts / band) / (c + lat / band)
    return temp, (temp - ts) / band


SiteConstants = tuple[float, ...]


def _site_constants(
    model: PanelModel, ts: float, band: float, contact: Sequence[float]
) -> list[SiteConstants]:
    """Per site, what ``_integrate_panel`` reads on every substep, in the order it unpacks:
    c, latent, enthalpy at solidus and liquidus, heat capacity in the band, the band's
    enthalpy offset, the chip-cell conductances (atmosphere, pressed extra, molten), ε·σ·A,
    the gas conductance, the cell's way down clamped and free (with the rim), 1 / C of the
    cell, then the chip's and the cell's absorbed share of each zone."""
    out: list[SiteConstants] = []
    for i in range(model.sites):
        c, lat = model.c_chip_j_k[i], model.latent_j[i]
        out.append(
            (
                c,
                lat,
                c * ts,
                c * (ts + band) + lat,
                c + lat / band,
                lat * ts / band,
                model.g_atm_w_k[i],
                model.g_vac_extra_w_k[i] * contact[i],
                model.g_melt_w_k[i],
                model.rad_w_k4[i],
                model.g_gas_w_k[i],
                model.g_cell_chuck_clamped_w_k[i] + model.g_rim_w_k[i],
                model.g_cell_chuck_free_w_k[i] + model.g_rim_w_k[i],
                1.0 / model.c_cell_j_k[i],
                *model.absorbed[i],
                *model.absorbed_cell[i],
            )
        )
    return out


def _absorbed_at_cmd(zones_k: ZoneShares, cmd: Sequence[float]) -> list[tuple[float, float]]:
    """``absorbed``'s first half: the filaments are at their commands."""
    at_cmd: list[tuple[float, float]] = []
    for chip_f, cell_f in zones_k:
        chip = cell = 0.0
        for a_chip, a_cell, c in zip(chip_f, cell_f, cmd, strict=True):
            chip += a_chip * c
            cell += a_cell * c
        at_cmd.append((chip, cell))
    return at_cmd


class PanelThermal(ThermalChain):
    """``ThermalChain`` with a panel of chip sites in place of the one chip."""

    def set_panel(self, layout: PanelLayout | None, physics: PanelPhysics | None = None) -> None:
        """Put a panel on the chuck (None or 1 × 1: the single chip of today), in place of
        what is there.

        The sites start at the chip's temperature now (the reference site's, if a panel was
        there) and the cells at the component's; the stored energy changes with the heat
        capacity put on the chuck (the energy counters go on).
        """
        self.advance()
        if layout is None or layout.is_single:
            if self._panel is not None:
                # Back to one chip, at the reference site's temperature and melt.
                temp, melt = self._chip_temp()
                self._panel = None
                self._h_chip = self._p.c_chip_j_k * temp + self._p.solder_latent_j * melt
                self._site_h, self._cell_t, self._site_tc = [], [], []
                self._site_channels = ()
                self._drop_site_channels()
            return
        model = panel_model(layout, physics or PanelPhysics(), self._p)
        chip, _ = self._chip_temp()
        ts, band = self._band()
        self._panel = model
        self._panel_k_band = None  # worked out again at the next span
        self._site_contact = [1.0] * model.sites
        self._site_h = []
        for c, lat in zip(model.c_chip_j_k, model.latent_j, strict=True):
            melt = min(1.0, max(0.0, (chip - ts) / band))
            self._site_h.append(c * chip + lat * melt)
        self._cell_t = [self._t_comp] * model.sites
        self._site_tc = [self._tc["chip"]] * model.sites
        # The instrumented sites' own channels (the reference site's is ``chip``).
        self._site_channels = tuple(
            (i, ch) for i, ch in layout.site_channels.items() if ch not in TC_CHANNELS
        )
        self._drop_site_channels()
        for i, ch in self._site_channels:
            self._tc[ch] = self._site_tc[i]
        self._tc_channels = tuple(self._tc)

    def _drop_site_channels(self) -> None:
        # In place: ``tc_junctions`` is a live view of the dict.
        for ch in [ch for ch in self._tc if ch not in TC_CHANNELS]:
            del self._tc[ch]
        self._tc_channels = TC_CHANNELS

    @property
    def tc_channels(self) -> tuple[str, ...]:
        """Every thermocouple channel on the machine now: the machine's, then the panel's
        instrumented sites' (``site_<n>``)."""
        return self._tc_channels

    @property
    def panel(self) -> PanelModel | None:
        return self._panel

    def sites(self) -> list[SiteState]:
        """Every site now (integrates up to now first); empty without a panel."""
        self.advance()
        return self.sites_integrated()

    def sites_integrated(self) -> list[SiteState]:
        """Every site as far as the plant is integrated, without advancing it: what an
        observer of ``advance`` reads (advancing there would call the observer again, each
        time the wall clock has moved on)."""
        model = self._panel
        if model is None:
            return []
        ts, band = self._band()
        out: list[SiteState] = []
        for i in range(model.sites):
            temp, melt = _site_temp(
                self._site_h[i], model.c_chip_j_k[i], model.latent_j[i], ts, band
            )
            r, c = model.layout.row_col(i)
            out.append(SiteState(i, r, c, temp, self._cell_t[i], melt, self._site_tc[i]))
        return out

    # The single chip's views, on the panel: the reference site.

    def _chip_temp(self) -> tuple[float, float]:
        model = self._panel
        if model is None:
            return super()._chip_temp()
        i = model.layout.reference_site
        ts, band = self._band()
        return _site_temp(self._site_h[i], model.c_chip_j_k[i], model.latent_j[i], ts, band)

    @property
    def stored_energy_j(self) -> float:
        model = self._panel
        if model is None:
            return super().stored_energy_j
        p = self._p
        cells = sum(c * t for c, t in zip(model.c_cell_j_k, self._cell_t, strict=True))
        return (
            sum(self._site_h)
            + cells
            + p.c_chuck_j_k * self._t_chuck
            + p.c_fluid_j_k * self._t_fluid
        )

    def set_solder(self, solidus_c: float, liquidus_c: float) -> None:
        model = self._panel
        if model is None:
            super().set_solder(solidus_c, liquidus_c)
            return
        ts0, band0 = self._band()
        temps = [
            _site_temp(h, c, lat, ts0, band0)[0]
            for h, c, lat in zip(self._site_h, model.c_chip_j_k, model.latent_j, strict=True)
        ]
        super().set_solder(solidus_c, liquidus_c)
        ts, band = self._band()
        self._site_h = [
            c * t + lat * min(1.0, max(0.0, (t - ts) / band))
            for t, c, lat in zip(temps, model.c_chip_j_k, model.latent_j, strict=True)
        ]

    # ------------------------------------------------------------- integration

    def _set_panel_constants(self, model: PanelModel, ts: float, band: float) -> None:
        """The sites' constants for this solder band and film contact, and the views of
        them the substeps read (no slicing or choosing per substep)."""
        k_all = _site_constants(model, ts, band, self._site_contact)
        zones = len(model.zone_max_w)
        self._panel_k = k_all
        self._panel_k_band = (ts, band)
        self._panel_k_sub = [k[:11] for k in k_all]
        self._panel_k_zones = [(k[14 : 14 + zones], k[14 + zones : 14 + 2 * zones]) for k in k_all]
        c_cells = model.c_cell_j_k
        self._panel_cells_k = (
            [(k[11], k[13], c) for k, c in zip(k_all, c_cells, strict=True)],
            [(k[12], k[13], c) for k, c in zip(k_all, c_cells, strict=True)],
        )
        self._panel_q_cmd = None
        self._panel_no_gap = [(0.0, 0.0)] * model.sites
        self._panel_c_cells_sum = sum(model.c_cell_j_k)

    def _integrate_panel(self, h: float, p_means: Sequence[float], p_o2: float) -> list[float]:
        """``_integrate_thermal`` for a panel: the same span, substeps and outputs (the
        component's mean temperature at the end of each substep)."""
        model = self._panel
        assert model is not None
        (
            _,
            fil_tau,
            _,
            _,
            _,
            _,
            _,
            inv_ck,
            inv_cf,
            _,
            _,
            _,
            _,
            _,
            g_kf_flow,
            g_kf_stagnant,
            g_ka,
            g_fa,
            _,
            amb,
            amb_k4,
            p_atm,
            inv_patm,
            _,
            kp,
            ki,
            q_cool,
            q_heat,
            tc_tau_chip,
            tc_tau_other,
            coal_tau,
            coal_o2_half,
        ) = self._k_thermal
        # The substep is the same span after span (dt_s, but for a span cut by an event):
        # its lags' factors are worked out once for it, the same numbers each time.
        lags = self._panel_lags
        if lags[0] != h or lags[1] is not self._k_thermal:
            lags = self._panel_lags = (
                h,
                self._k_thermal,
                1.0 - math.exp(-h / fil_tau),
                1.0 - math.exp(-h / tc_tau_chip),
                1.0 - math.exp(-h / tc_tau_other),
            )
        k_fil, k_tc_chip, k_tc_other = lags[2], lags[3], lags[4]

        zone_w = [
            pct / 100.0 * w for pct, w in zip(self.lamp_output_pct(), model.zone_max_w, strict=True)
        ]
        fil = self._filament
        fil_settled = True
        for f, w in zip(fil, zone_w, strict=True):
            if not abs(f - w) < 1e-9:
                fil_settled = False
                break
        ts, band = self._k_band[0], self._k_band[1]
        if self._panel_k_band != (ts, band):
            self._set_panel_constants(model, ts, band)
        flow = self._chiller_running and not self._faults.chiller_failed
        tc = self._tc
        # What each chip and cell absorbs is linear in the filaments, which close on their
        # commands by (1 − k_fil) a substep: the absorbed power closes on its value at the
        # commands the same way, one product a site instead of one sum over the zones.
        # Settled, the gap is within 1e-9 W of nothing and counts × 0.0: a zero gap adds
        # the same (a power ≥ 0 plus ±0.0 is that power), and the power at the commands is
        # worked out again only when they change (lamps off, or held: docs/adr/0180).
        if not fil_settled:
            q_cmd, q_gap = absorbed(self._panel_k_zones, zone_w, fil)
        else:
            cached = self._panel_q_cmd
            if cached is not None and cached[0] == zone_w:
                q_cmd = cached[1]
            else:
                q_cmd = _absorbed_at_cmd(self._panel_k_zones, zone_w)
                self._panel_q_cmd = (zone_w, q_cmd)
            q_gap = self._panel_no_gap
        k = (
            h,
            k_fil,
            k_tc_chip,
            k_tc_other,
            ts,
            band,
            model.physics.g_lateral_w_k,
            self._panel_c_cells_sum,
            g_kf_flow if flow else g_kf_stagnant,
            g_ka,
            g_fa,
            self._chiller_sp,
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
            1.0 / (coal_tau * (1.0 + p_o2 / coal_o2_half)),
        )
        state = (
            self._t_chuck,
            self._t_fluid,
            self._chiller_i,
            tc["chip"],
            tc["component"],
            tc["chuck"],
            self._coalescence,
        )
        t_comp, state, q_ch, e_in, e_ch, e_loss = substeps(
            p_means,
            k,
            state,
            flow,
            model.layout.reference_site,
            fil_settled,
            fil,
            zone_w,
            self._panel_k_sub,
            self._panel_cells_k[0 if self._outputs[OUT_FILM_CLAMP] else 1],
            q_cmd,
            q_gap,
            model.pairs,
            self._site_h,
            self._cell_t,
            self._site_tc,
        )
        tk, tf, chill_i, tc_chip, tc_comp, tc_chuck, coal = state
        self._t_comp = t_comp[-1] if t_comp else self._t_comp
        self._t_chuck, self._t_fluid = tk, tf
        self._chiller_i = chill_i
        self._chiller_q = q_ch if flow else 0.0
        tc["chip"], tc["component"], tc["chuck"] = tc_chip, tc_comp, tc_chuck
        site_tc = self._site_tc
        for i, ch in self._site_channels:
            tc[ch] = site_tc[i]
        self._coalescence = coal
        self._e_in += e_in
        self._e_chiller += e_ch
        self._e_loss += e_loss
        return t_comp
