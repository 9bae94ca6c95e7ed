"""The panel plant's C kernels give the Python reference's numbers to the bit (ADR 0186).

A run on the native kernels is what the benchmarks and the tests run; a machine built
without a C compiler runs the Python ones. Both must be the same simulated machine: the same
doubles from the same inputs, every list moved in place the same way, the same errors.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from drivers.sim.plant import panel_substeps, panel_thermal
from drivers.sim.plant.panel_substeps import absorbed_py, substeps_py
from drivers.sim.plant.params import KELVIN
from tests.fingerprint import STORE, fingerprint

try:
    from drivers.sim.plant import _panel_native
except ImportError:  # pragma: no cover - reported by the first test
    _panel_native = None  # type: ignore[assignment]

needs_native = pytest.mark.skipif(_panel_native is None, reason="the C kernels are not built")
RECIPES = Path(__file__).parents[1] / "recipes"


def test_the_c_kernels_are_built_and_in_use() -> None:
    # ./dev installs gcc and libc6-dev (tools/debian-packages.txt) and uv sync builds them:
    # without them the benchmarks would measure the Python reference.
    assert _panel_native is not None, "drivers/sim/plant/_panel_native.c was not compiled"
    assert panel_substeps.NATIVE
    assert panel_thermal.substeps is _panel_native.substeps
    assert panel_thermal.absorbed is _panel_native.absorbed


@needs_native
def test_the_kernels_share_their_constant() -> None:
    assert _panel_native.KELVIN.hex() == KELVIN.hex()


def _bits(value: Any) -> Any:
    """Every float as its bits (-0.0 and NaN included), through tuples and lists."""
    if isinstance(value, float):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_bits(v) for v in value]
    return value


def _case(rng: random.Random, *, settled: bool, flow: bool) -> list[Any]:
    """A span's arguments with the sites spread over the three branches of the enthalpy
    method and the pressure over both clamps."""
    n = rng.randint(1, 9)
    zones = rng.randint(1, 6)
    c, lat, ts, band = 2e-3, 6e-3, 217.0, 3.0
    sites_k = []
    hs = []
    for _ in range(n):
        ci = c * rng.uniform(0.5, 2.0)
        lati = lat * rng.uniform(0.5, 2.0)
        h_sol = ci * ts
        h_liq = ci * (ts + band) + lati
        sites_k.append(
            (
                ci,
                lati,
                h_sol,
                h_liq,
                ci + lati / band,
                lati * ts / band,
                rng.uniform(1e-3, 1e-2),
                rng.uniform(0.0, 5e-2),
                rng.uniform(0.0, 1e-1),
                rng.uniform(1e-12, 1e-11),
                rng.uniform(1e-4, 1e-3),
            )
        )
        hs.append(rng.choice([h_sol * rng.uniform(0.2, 1.0), h_sol + 0.5 * lati, h_liq * 1.01]))
    cells_k = [
        (rng.uniform(0.0, 0.5), 1.0 / rng.uniform(0.1, 1.0), rng.uniform(0.1, 1.0))
        for _ in range(n)
    ]
    q_cmd = [(rng.uniform(0.0, 5.0), rng.uniform(0.0, 5.0)) for _ in range(n)]
    q_gap = (
        [(0.0, 0.0)] * n
        if settled
        else [(rng.uniform(-2.0, 2.0), rng.uniform(-2.0, 2.0)) for _ in range(n)]
    )
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n) if rng.random() < 0.5]
    k = (
        rng.choice([0.025, 0.0125, 0.02]),
        rng.uniform(0.05, 0.5),
        rng.uniform(0.05, 0.5),
        rng.uniform(0.01, 0.2),
        ts,
        band,
        rng.uniform(0.0, 0.05),
        sum(x[2] for x in cells_k),
        rng.uniform(1.0, 100.0),
        rng.uniform(0.0, 1.0),
        rng.uniform(0.0, 1.0),
        rng.uniform(15.0, 30.0),
        rng.uniform(10.0, 300.0),
        rng.uniform(0.0, 10.0),
        rng.uniform(100.0, 3000.0),
        rng.uniform(100.0, 3000.0),
        25.0,
        (25.0 + KELVIN) ** 4,
        1013.25,
        1.0 / 1013.25,
        1.0 / rng.uniform(100.0, 3000.0),
        1.0 / rng.uniform(100.0, 3000.0),
        rng.uniform(0.0, 1.0),
    )
    state = (
        rng.uniform(15.0, 80.0),
        rng.uniform(15.0, 30.0),
        rng.uniform(-3000.0, 3000.0),
        rng.uniform(20.0, 260.0),
        rng.uniform(20.0, 200.0),
        rng.uniform(15.0, 80.0),
        rng.choice([0.0, rng.uniform(0.0, 1.0), 1.0]),
    )
    p_means = [rng.choice([1013.25, 2000.0, 0.5, rng.uniform(0.0, 1100.0)]) for _ in range(3)]
    p_means = p_means[: rng.randint(1, 3)]
    zone_w = [rng.uniform(0.0, 1000.0) for _ in range(zones)]
    fil = list(zone_w) if settled else [rng.uniform(0.0, 1000.0) for _ in range(zones)]
    args = [
        p_means,
        k,
        state,
        flow,
        rng.randrange(n),
        settled,
        fil,
        zone_w,
        sites_k,
        cells_k,
        q_cmd,
        q_gap,
        pairs,
        hs,
        [rng.uniform(20.0, 250.0) for _ in range(n)],
        [rng.uniform(20.0, 250.0) for _ in range(n)],
    ]
    return args


def _copy(args: list[Any]) -> list[Any]:
    return [list(a) if isinstance(a, list) else a for a in args]


@needs_native
@pytest.mark.parametrize("settled", [True, False])
@pytest.mark.parametrize("flow", [True, False])
def test_a_span_of_substeps_is_the_same_to_the_bit(settled: bool, flow: bool) -> None:
    rng = random.Random(f"substeps-{settled}-{flow}")
    for _ in range(300):
        args = _case(rng, settled=settled, flow=flow)
        a, b = _copy(args), _copy(args)
        got_py = substeps_py(*a)
        got_c = _panel_native.substeps(*b)
        assert _bits(got_c) == _bits(got_py)
        # The lists moved in place: filaments, enthalpies, cells, thermocouples.
        for i in (6, 13, 14, 15):
            assert _bits(b[i]) == _bits(a[i])


@needs_native
def test_the_absorbed_powers_are_the_same_to_the_bit() -> None:
    rng = random.Random("absorbed")
    for _ in range(300):
        n, z = rng.randint(1, 9), rng.randint(1, 6)
        zones_k = [
            (
                tuple(rng.uniform(0.0, 0.1) for _ in range(z)),
                tuple(rng.uniform(0.0, 0.1) for _ in range(z)),
            )
            for _ in range(n)
        ]
        cmd = [rng.uniform(0.0, 1000.0) for _ in range(z)]
        fil = [rng.choice([c, rng.uniform(0.0, 1000.0), -0.0]) for c in cmd]
        assert _bits(_panel_native.absorbed(zones_k, cmd, fil)) == _bits(
            absorbed_py(zones_k, cmd, fil)
        )


@needs_native
def test_bad_arguments_are_refused_as_python_refuses_them() -> None:
    rng = random.Random("refused")
    args = _case(rng, settled=False, flow=True)
    short = _copy(args)
    short[14] = short[14][:-1]  # one cell temperature missing
    short[12] = []  # no pair to index it with first
    with pytest.raises(ValueError):
        substeps_py(*_copy(short))
    with pytest.raises(ValueError):
        _panel_native.substeps(*_copy(short))
    with pytest.raises(ValueError):
        absorbed_py([((0.1, 0.2), (0.1, 0.2))], [1.0], [1.0])
    with pytest.raises(ValueError):
        _panel_native.absorbed([((0.1, 0.2), (0.1, 0.2))], [1.0], [1.0])


@needs_native
async def test_the_panel_recipe_on_the_python_kernels_keeps_its_fingerprint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The C kernels run the stored fingerprints (tests/test_fingerprints.py); the Python
    # reference must record the same run, to the bit.
    monkeypatch.setattr(panel_thermal, "substeps", substeps_py)
    monkeypatch.setattr(panel_thermal, "absorbed", absorbed_py)
    stored = json.loads(STORE.read_text(encoding="utf-8"))
    assert (
        await fingerprint(RECIPES / "panel-3x3-sac305.toml", 0) == stored["panel-3x3-sac305.toml@0"]
    )
