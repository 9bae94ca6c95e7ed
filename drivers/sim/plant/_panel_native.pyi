# The C twin of drivers/sim/plant/panel_substeps.py (_panel_native.c): the same signatures.
from collections.abc import Sequence

from drivers.sim.plant.panel_substeps import Powers, Result, Scalars, State, ZoneShares

def substeps(
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
    /,
) -> Result: ...
def absorbed(
    zones_k: ZoneShares, cmd: Sequence[float], fil: Sequence[float], /
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]: ...
