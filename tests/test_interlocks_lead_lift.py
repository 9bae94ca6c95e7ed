"""Interlock rules for the lead lift: Z following error and stall, force at the recipe's
limit, the UV shutter outside an exposure, devices needed per step, vacuum holds."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from daemon.config import Limits
from daemon.machine.monitor import Snapshot
from daemon.machine.motion import ZCommand
from daemon.recipe.load import load_recipe_file
from daemon.safety.findings import Action
from daemon.safety.rules import RuleEngine
from daemon.safety.run_view import RunLimits, RunView
from drivers.protocols import (
    IN_CHILLER_FLOW,
    IN_CHUCK_VACUUM_OK,
    IN_DOOR_CLOSED,
    IN_ESTOP_OK,
    IN_SUPPORT_VACUUM_OK,
    ChillerStatus,
    PumpStatus,
    StageStatus,
    UvStatus,
)
from drivers.reading import Reading
from tests.simrun import REPO

LIMITS = Limits()
LIFT = load_recipe_file(REPO / "recipes/lead-lift-uv.toml", LIMITS).recipe
RUN_LIMITS = RunLimits.of(LIFT, LIMITS)
# 0 → 500 µm at 50 µm/s, 1000 µm/s²: 10.05 s.
MOVE = ZCommand(t0=0.0, start_um=0.0, target_um=500.0, speed_um_s=50.0, accel_um_s2=1000.0)


def stage(z: float, force: float = 0.2, *, busy: bool = True, t: float = 0.0) -> StageStatus:
    return StageStatus(Reading(z, t), Reading(force, t), busy=busy, homed=True, fault=False)


def snap(t: float, **kw: Any) -> Snapshot:
    temps = {
        "chip": Reading(25.0 + (t * 7.3 % 0.3), t),
        "component": Reading(25.0 + (t * 5.1 % 0.3), t),
        "chuck": Reading(25.0 + (t * 3.7 % 0.3), t),
    }
    base = Snapshot(
        t=t,
        temps=temps,
        pressure=Reading(1000.0 + (t * 1.3 % 1.0), t),
        o2=Reading(200_000.0, t),
        lamp_pct=(0.0, 0.0, 0.0, 0.0),
        pump=PumpStatus(running=False, fault=False),
        valves={},
        chiller=ChillerStatus(Reading(20.0, t), 20.0, running=True, fault=False),
        inputs={
            IN_ESTOP_OK: True,
            IN_DOOR_CLOSED: True,
            IN_CHILLER_FLOW: True,
            IN_CHUCK_VACUUM_OK: True,
            IN_SUPPORT_VACUUM_OK: True,
        },
        outputs={},
        stage=stage(MOVE.position_at(t), t=t),
        uv=UvStatus(shutter_open=False, irradiance_mw_cm2=100.0, lamp_ready=True, fault=False),
    )
    return replace(base, **kw)


class Run:
    def __init__(self, step: str = "lead_lift") -> None:
        self.step = step
        self.exposing = False
        self.cmd: ZCommand | None = MOVE
        self.eng = RuleEngine(LIMITS)
        self.eng.arm(
            RunView(
                RUN_LIMITS,
                lambda: self.step,
                lambda: False,
                lambda _t: (0.0, 0.0),
                uv_exposing=lambda: self.exposing,
                z_command=lambda: self.cmd,
            )
        )

    def codes(self, s: Snapshot) -> dict[str, Action]:
        return {f.code: f.action for f in self.eng.evaluate(s)}


def test_a_stage_following_its_command_raises_nothing() -> None:
    run = Run()
    for i in range(0, 240):  # 12 s at 20 Hz: the move and the rest at the target
        assert run.codes(snap(i * 0.05)) == {}, i


def test_following_error_trips() -> None:
    run = Run()
    t = 5.0  # the profile is at ~225 µm
    found = run.codes(snap(t, stage=stage(MOVE.position_at(t) - 80.0, t=t)))
    assert found.get("z_following_error") is Action.TRIP


def test_a_stage_busy_and_not_moving_trips_as_a_stall() -> None:
    run = Run()
    # A stage that stops at 100 µm while reporting busy; the profile runs on.
    found: dict[str, Action] = {}
    t = 0.0
    while t < 3.5 and "z_stall" not in found:
        z = min(MOVE.position_at(t), 100.0)
        found = run.codes(snap(t, stage=stage(z, t=t)))
        t += 0.05
    assert found.get("z_stall") is Action.TRIP
    # Stalled at 100 µm from t≈2.1 s: the stall rule answers within z_stall_s of it.
    assert t < 2.1 + LIMITS.z_stall_s + 0.2


def test_force_trips_at_the_recipes_limit_not_only_the_equipments() -> None:
    assert RUN_LIMITS.z_force_max_n == 1.0  # the recipe's lift limit, under 5 N
    run = Run()
    t = 2.0
    assert "z_force" not in run.codes(snap(t, stage=stage(MOVE.position_at(t), 0.9, t=t)))
    found = run.codes(snap(t, stage=stage(MOVE.position_at(t), 1.2, t=t)))
    assert found.get("z_force") is Action.TRIP


def test_uv_shutter_open_trips_only_outside_an_exposure() -> None:
    run = Run("uv_release")
    run.cmd = None
    open_ = UvStatus(shutter_open=True, irradiance_mw_cm2=100.0, lamp_ready=True, fault=False)
    run.exposing = True
    assert "uv_shutter_open" not in run.codes(snap(1.0, uv=open_))
    run.exposing = False
    assert run.codes(snap(1.05, uv=open_)).get("uv_shutter_open") is Action.TRIP


def test_devices_are_needed_in_the_steps_that_use_them() -> None:
    run = Run("uv_release")
    run.cmd = None
    lost = {"dispenser": "timeout"}
    assert run.codes(snap(1.0, errors=lost)).get("device_lost") is Action.WARN
    run.step = "encapsulate"
    assert run.codes(snap(1.05, errors=lost)).get("device_lost") is Action.TRIP
    # The lamps and the pump are not used by a lead lift: their loss only warns.
    run.step = "cure"
    assert run.codes(snap(1.1, errors={"lamps": "timeout"})).get("device_lost") is Action.WARN
    faulty_pump = PumpStatus(running=False, fault=True, detail="overload")
    assert run.codes(snap(1.15, pump=faulty_pump)).get("pump_fault") is Action.WARN


def test_a_vacuum_hold_lost_after_the_lift_trips() -> None:
    run = Run("cure")
    inputs = snap(20.0).inputs
    assert inputs is not None
    lost = {**inputs, IN_SUPPORT_VACUUM_OK: False}
    found = run.codes(snap(20.0, inputs=lost, stage=stage(500.0, busy=False, t=20.0)))
    assert found.get("vacuum_hold_lost") is Action.TRIP


def test_lead_lift_run_limits() -> None:
    assert RUN_LIMITS.chip_max_c == 217.0  # the joints' solidus
    assert RUN_LIMITS.chuck_max_c == 190.0  # the heating circulator's trip limit
    assert "gauge" not in RUN_LIMITS.used_devices and "lamps" not in RUN_LIMITS.used_devices
