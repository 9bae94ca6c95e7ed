"""The simulated instruments' quantisation: the fast forms give the plain ones' numbers."""

from __future__ import annotations

import math
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.clock import ManualClock
from drivers.protocols import OUT_LAMP_CONTACTOR, OUT_SCR_ENABLE
from drivers.sim.device_base import _DECIMAL_STEPS, _quantize
from drivers.sim.devices import build_sim_machine
from drivers.sim.plant import Plant


def _plain(value: float, step: float) -> float:
    """The definition: the nearest step, with the product's binary noise rounded off."""
    return round(round(value / step) * step, 6)


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)  # -0.0 and 0.0 differ here


@pytest.mark.parametrize("d", [1, 10, 100, 1000, 10**4, 10**5, 10**6])
def test_decimal_steps_divide_to_the_same_double(d: int) -> None:
    step = 1.0 / d
    assert step in _DECIMAL_STEPS
    rng = random.Random(d)
    limit = d * 10**6  # |value| < 1e6 in the step's unit
    ks = list(range(-20_000, 20_001))
    ks += [rng.randrange(-limit + 1, limit) for _ in range(100_000)]
    ks += [limit - 1, -limit + 1, limit - d, 10**6, -(10**6)]
    for k in ks:
        assert _bits(_quantize(k * step, step)) == _bits(_plain(k * step, step)), k
        assert _bits(k / d) == _bits(round(k * step, 6)), k


@settings(max_examples=2000, deadline=None)
@given(
    st.floats(-2e6, 2e6, allow_nan=False),
    st.sampled_from([0.1, 0.01, 0.001, 1.0, 1e-6, 0.25, 0.05, 0.2, 0.3]),
)
def test_quantize_is_the_nearest_step_rounded_to_six_decimals(value: float, step: float) -> None:
    assert _bits(_quantize(value, step)) == _bits(_plain(value, step))


def test_quantize_refuses_what_the_plain_form_refuses() -> None:
    for bad in (math.nan, math.inf):
        with pytest.raises((ValueError, OverflowError)):
            _quantize(bad, 0.1)


async def test_readings_rounded_once_per_value_follow_every_change() -> None:
    """Lamp zones, the stage and the analyzer round a value once and reuse it while the
    plant hands back the same value: every reading is still the current value, rounded."""
    clock = ManualClock()
    plant = Plant(clock)
    machine = build_sim_machine(plant)
    for dev in machine.devices():
        await dev.connect()
    await machine.dio.write_output(OUT_LAMP_CONTACTOR, True)
    await machine.dio.write_output(OUT_SCR_ENABLE, True)
    await machine.zstage.home()
    await machine.zstage.move_abs(200.0, 100.0)
    rng = random.Random(3)
    for i in range(200):
        if i % 3 == 0:
            same = rng.uniform(0.0, 100.0)
            await machine.lamps.set_power([same, same, rng.uniform(0.0, 100.0), same])
        clock.t += 0.05
        plant.advance()
        lamps = [r.value for r in await machine.lamps.read_power()]
        assert lamps == [round(x, 2) for x in plant.lamp_output_pct()]
        stage = await machine.zstage.status()
        assert stage.position_um.value == round(plant.z_um, 2)
        assert stage.force_n.value == round(plant.force_n, 4)
        o2 = await machine.o2.read()
        assert o2.value == round(plant.o2_sample()[0], 2)
    assert plant.z_um == 200.0  # the stage moved and stopped meanwhile
