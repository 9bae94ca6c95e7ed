"""A panel of chips on the component: the layout, its physics and the constants the panel's
thermal integration uses (``panel_thermal``; docs/panel.md, docs/adr/0160).

The single chip of ``PlantParams`` is the machine's reference site: a site of the panel has
that chip's heat capacity, conductances and radiating area scaled by its own area, and a
cell of the component (one pitch square under it) has the component's capacity and chuck
contact scaled the same way. What a panel adds: the lamps light each site by a view factor
of its own, the cells conduct to their neighbours, the cells on the panel's rim lose heat
to the clamped rim of the component, and each site melts its own solder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from drivers.protocols import panel_reference_site, site_channel
from drivers.sim.plant.params import STEFAN_BOLTZMANN, PlantParams

# Points per side of the midpoint rule that integrates a zone's irradiance over an area:
# 8 × 8 puts the view factors of the default geometry within 0.1 % of a 64 × 64 rule.
_QUAD = 8


@dataclass(frozen=True, slots=True)
class PanelLayout:
    """Where the chips sit and what each carries. Sites are numbered row-major from 0."""

    rows: int = 1
    cols: int = 1
    pitch_mm: float = 12.0  # centre to centre, both directions
    chip_mm: float = 10.0  # chip edge (square chips)
    # Solder mass per site, mg, row-major; empty: every site carries the standard mass
    # (the reference chip's latent heat scaled by area, ``PanelPhysics.solder_latent_j_per_mg``).
    solder_mg: tuple[float, ...] = ()
    # Share of the full film pressure each site's chip is pressed with (1 = full); empty: all 1.
    contact: tuple[float, ...] = ()
    chip_tc_site: int | None = None  # the site the machine's chip thermocouple sits on; centre
    # The sites with a thermocouple of their own (the reference site's is the ``chip``
    # channel, the others ``site_<n>``); empty: the reference site only.
    instrumented: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1:
            raise ValueError(
                f"PanelLayout: rows and cols must be >= 1, got {self.rows}×{self.cols}"
            )
        for name in ("pitch_mm", "chip_mm"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0.0):
                raise ValueError(f"PanelLayout.{name} must be > 0, got {v}")
        if self.chip_mm > self.pitch_mm:
            raise ValueError(
                f"PanelLayout: chip {self.chip_mm} mm wider than the pitch {self.pitch_mm} mm"
            )
        n = self.sites
        for name in ("solder_mg", "contact"):
            values = getattr(self, name)
            if values and len(values) != n:
                raise ValueError(f"PanelLayout.{name}: {len(values)} values for {n} sites")
            for i, v in enumerate(values):
                if not (math.isfinite(v) and v > 0.0):
                    raise ValueError(f"PanelLayout.{name}[{i}] must be > 0, got {v}")
        for i, v in enumerate(self.contact):
            if v > 1.0:
                raise ValueError(f"PanelLayout.contact[{i}] must be <= 1, got {v}")
        if self.chip_tc_site is not None and not 0 <= self.chip_tc_site < n:
            raise ValueError(
                f"PanelLayout.chip_tc_site {self.chip_tc_site} not a site (0..{n - 1})"
            )

    @property
    def sites(self) -> int:
        return self.rows * self.cols

    @property
    def is_single(self) -> bool:
        return self.sites == 1

    def row_col(self, site: int) -> tuple[int, int]:
        return divmod(site, self.cols)

    @property
    def reference_site(self) -> int:
        """The site of the chip thermocouple: the one given, else the centre (row-major
        middle, the upper-left one of the four central sites of an even layout)."""
        if self.chip_tc_site is not None:
            return self.chip_tc_site
        return panel_reference_site(self.rows, self.cols)

    @property
    def site_channels(self) -> dict[int, str]:
        """The thermocouple channel of every instrumented site, by site."""
        ref = self.reference_site
        return {i: site_channel(i, ref) for i in sorted(self.instrumented or (ref,))}

    def centre_mm(self, site: int) -> tuple[float, float]:
        """The site's centre, mm, with the panel's centre at the origin (x along a row)."""
        r, c = self.row_col(site)
        return (
            (c - (self.cols - 1) / 2.0) * self.pitch_mm,
            (r - (self.rows - 1) / 2.0) * self.pitch_mm,
        )

    def exposed_sides(self, site: int) -> int:
        """How many of the site's cell sides are on the panel's rim (corner 2, edge 1)."""
        r, c = self.row_col(site)
        sides = (r == 0) + (r == self.rows - 1) + (c == 0) + (c == self.cols - 1)
        return int(sides)

    def neighbour_pairs(self) -> list[tuple[int, int]]:
        """Every pair of sites whose cells share a side, each once (i < j)."""
        pairs: list[tuple[int, int]] = []
        for i in range(self.sites):
            r, c = self.row_col(i)
            if c + 1 < self.cols:
                pairs.append((i, i + 1))
            if r + 1 < self.rows:
                pairs.append((i, i + self.cols))
        return pairs


@dataclass(frozen=True, slots=True)
class PanelPhysics:
    """The lamp head's geometry and the panel's materials. Units are in the names."""

    # The lamp head: each zone's lamps (their axes' points on the panel's plane, mm, the
    # panel's centre at the origin), every lamp of a zone at the zone's power; each emits
    # ∝ cos^n of the angle off its axis (n = 1 a bare Lambertian emitter; the higher, the
    # tighter the reflector). The default head is a 4 × 4 array of 18 mm pitch, wider than a
    # 3 × 3 panel of 12 mm so that equal power lights it evenly to ~2 %, in four zones of
    # four lamps: the inner four, the corners, and the side lamps left-right and top-bottom.
    zone_lamps_mm: tuple[tuple[tuple[float, float], ...], ...] = (
        ((9.0, 9.0), (-9.0, 9.0), (-9.0, -9.0), (9.0, -9.0)),
        ((27.0, 27.0), (-27.0, 27.0), (-27.0, -27.0), (27.0, -27.0)),
        ((27.0, 9.0), (27.0, -9.0), (-27.0, 9.0), (-27.0, -9.0)),
        ((9.0, 27.0), (-9.0, 27.0), (9.0, -27.0), (-9.0, -27.0)),
    )
    # Electrical, per lamp: a zone of k lamps delivers k × this. 625 W gives the centre site
    # of the default panel the heating per % of lamp power of the single chip under four
    # 1 kW zones, so the chip model identified on one chip holds for the panel's centre.
    lamp_max_w: float = 625.0
    lamp_height_mm: float = 25.0
    reflector_exponent: float = 4.0
    film_transmission: float = 0.9  # of the lamps' spectrum through the vacuum film
    chip_absorptivity: float = 0.85  # silicon backside
    component_absorptivity: float = 0.15  # polyimide and copper between the chips
    solder_latent_j_per_mg: float = 0.06  # SAC305 ~60 J/g; tin-lead ~45 J/g
    # In-plane conductance of the component between two neighbouring cells (square cells:
    # k·t, independent of the pitch): copper-clad polyimide, ~400 W/(m·K) × 35 µm of copper.
    g_lateral_w_k: float = 0.014
    # The component's clamped rim beyond the panel, per metre of panel edge: the polyimide
    # and its copper run 2–3 mm to the film clamp, which sits on the chuck.
    g_rim_w_k_per_m: float = 12.0

    def __post_init__(self) -> None:
        for z, lamps in enumerate(self.zone_lamps_mm):
            if not lamps:
                raise ValueError(f"PanelPhysics.zone_lamps_mm[{z}]: a zone without a lamp")
            for x, y in lamps:
                if not (math.isfinite(x) and math.isfinite(y)):
                    raise ValueError(f"PanelPhysics.zone_lamps_mm[{z}]: ({x}, {y}) not finite")
        for name in (
            "lamp_max_w",
            "lamp_height_mm",
            "reflector_exponent",
            "solder_latent_j_per_mg",
        ):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0.0):
                raise ValueError(f"PanelPhysics.{name} must be > 0, got {v}")
        for name in ("film_transmission", "chip_absorptivity", "component_absorptivity"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0.0 <= v <= 1.0):
                raise ValueError(f"PanelPhysics.{name} must be in [0, 1], got {v}")
        for name in ("g_lateral_w_k", "g_rim_w_k_per_m"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"PanelPhysics.{name} must be >= 0, got {v}")

    @property
    def zones(self) -> int:
        return len(self.zone_lamps_mm)

    def zone_max_w(self, zone: int) -> float:
        return self.lamp_max_w * len(self.zone_lamps_mm[zone])

    def irradiance_share_per_m2(self, zone: int, x_mm: float, y_mm: float) -> float:
        """Of a zone's radiant power, the share falling on a square metre of the panel's
        plane at (x, y), facing the lamps: the mean over the zone's lamps of
        (n + 1)/(2π) · cos^n θ · cos θ / r² (each integrates to 1 over the infinite plane)."""
        h = self.lamp_height_mm * 1e-3
        n = self.reflector_exponent
        lamps = self.zone_lamps_mm[zone]
        total = 0.0
        for lx, ly in lamps:
            r2 = h * h + ((x_mm - lx) ** 2 + (y_mm - ly) ** 2) * 1e-6
            cos_t = h / math.sqrt(r2)
            total += (n + 1.0) / (2.0 * math.pi) * cos_t ** (n + 1.0) / r2
        return total / len(lamps)

    def view_factor(
        self, zone: int, cx_mm: float, cy_mm: float, side_mm: float, hole_mm: float = 0.0
    ) -> float:
        """Share of the zone's radiant power falling on the square of ``side_mm`` centred at
        (cx, cy), less the centred square of ``hole_mm`` (a cell around its chip)."""

        def square(side: float) -> float:
            if side <= 0.0:
                return 0.0
            step = side / _QUAD
            total = 0.0
            for a in range(_QUAD):
                x = cx_mm - side / 2.0 + (a + 0.5) * step
                for b in range(_QUAD):
                    y = cy_mm - side / 2.0 + (b + 0.5) * step
                    total += self.irradiance_share_per_m2(zone, x, y)
            return total * (step * 1e-3) ** 2

        return square(side_mm) - square(hole_mm)


@dataclass(frozen=True, slots=True)
class PanelModel:
    """What the panel's integration needs, worked out once from the layout, the physics and
    the plant's parameters (per site, row-major; per zone, the zone's index)."""

    layout: PanelLayout
    physics: PanelPhysics
    # absorbed[i][z]: share of zone z's radiant power the chip of site i absorbs, after the
    # film; absorbed_cell[i][z]: what the component around it absorbs.
    absorbed: tuple[tuple[float, ...], ...]
    absorbed_cell: tuple[tuple[float, ...], ...]
    zone_max_w: tuple[float, ...]
    c_chip_j_k: tuple[float, ...]
    latent_j: tuple[float, ...]
    g_atm_w_k: tuple[float, ...]  # chip to cell, film not pressed
    g_vac_extra_w_k: tuple[float, ...]  # added by the full film pressure, × the site's contact
    g_melt_w_k: tuple[float, ...]  # added × melt fraction
    rad_w_k4: tuple[float, ...]  # ε·σ·A of the chip
    g_gas_w_k: tuple[float, ...]  # at one atmosphere
    c_cell_j_k: tuple[float, ...]
    g_cell_chuck_clamped_w_k: tuple[float, ...]
    g_cell_chuck_free_w_k: tuple[float, ...]
    g_rim_w_k: tuple[float, ...]  # cell to the clamped rim (chuck), 0 inside the panel
    pairs: tuple[tuple[int, int], ...] = field(default=())

    @property
    def sites(self) -> int:
        return self.layout.sites


def panel_model(layout: PanelLayout, physics: PanelPhysics, p: PlantParams) -> PanelModel:
    """The panel's constants on the plant of ``p`` (raises ValueError on a mismatch)."""
    if physics.zones != p.zones:
        raise ValueError(
            f"PanelPhysics: the lamp head has {physics.zones} zones, the plant {p.zones}"
        )
    n = layout.sites
    chip_m2 = (layout.chip_mm * 1e-3) ** 2
    cell_m2 = (layout.pitch_mm * 1e-3) ** 2
    a = chip_m2 / p.chip_area_m2  # the site's chip against the reference chip
    b = cell_m2 / p.chip_area_m2  # its cell of the component, likewise
    standard_mg = p.solder_latent_j * a / physics.solder_latent_j_per_mg
    solder = layout.solder_mg or (standard_mg,) * n
    contact = layout.contact or (1.0,) * n
    tau = physics.film_transmission
    absorbed: list[tuple[float, ...]] = []
    absorbed_cell: list[tuple[float, ...]] = []
    for i in range(n):
        cx, cy = layout.centre_mm(i)
        absorbed.append(
            tuple(
                tau * physics.chip_absorptivity * physics.view_factor(z, cx, cy, layout.chip_mm)
                for z in range(p.zones)
            )
        )
        absorbed_cell.append(
            tuple(
                tau
                * physics.component_absorptivity
                * physics.view_factor(z, cx, cy, layout.pitch_mm, layout.chip_mm)
                for z in range(p.zones)
            )
        )
    rim = physics.g_rim_w_k_per_m * layout.pitch_mm * 1e-3
    return PanelModel(
        layout=layout,
        physics=physics,
        absorbed=tuple(absorbed),
        absorbed_cell=tuple(absorbed_cell),
        zone_max_w=tuple(physics.zone_max_w(z) for z in range(p.zones)),
        c_chip_j_k=(p.c_chip_j_k * a,) * n,
        latent_j=tuple(m * physics.solder_latent_j_per_mg for m in solder),
        g_atm_w_k=(p.g_chip_comp_atm_w_k * a,) * n,
        g_vac_extra_w_k=tuple(
            (p.g_chip_comp_vac_w_k - p.g_chip_comp_atm_w_k) * a * k for k in contact
        ),
        g_melt_w_k=(p.g_chip_comp_melt_w_k * a,) * n,
        rad_w_k4=(p.chip_emissivity * STEFAN_BOLTZMANN * chip_m2,) * n,
        g_gas_w_k=(p.g_chip_gas_atm_w_k * a,) * n,
        c_cell_j_k=(p.c_component_j_k * b,) * n,
        g_cell_chuck_clamped_w_k=(p.g_comp_chuck_clamped_w_k * b,) * n,
        g_cell_chuck_free_w_k=(p.g_comp_chuck_free_w_k * b,) * n,
        g_rim_w_k=tuple(rim * layout.exposed_sides(i) for i in range(n)),
        pairs=tuple(layout.neighbour_pairs()),
    )
