"""The safe state: one guaranteed sequence that every abort, fault and stop ends in.

1. At once and independently of each other: lamps 0 %, lamp contactor and SCR enable off,
   UV shutter closed and the UV source's interlock line off, Z stage stopped, dispenser
   stopped. One device failing must not keep
   the others from being made safe, so each action is tried on its own. The lead-lift
   vacuum holds are NOT released: with the support lifted, letting go of either side lets
   the support drop or tilt onto bent leads and tears them (ADR 0057); they stay until an
   operator unloads. A chuck heated by a lead-lift step is set back to handling temperature.
2. Keep vacuum (film pressure) and chuck cooling while the solder solidifies: venting a
   molten joint lets the chips float off their pads.
3. Vent with nitrogen to atmosphere.

Per situation (``SafeStatePlan``): when the fault itself lets air in (a torn film, a leak),
there is no vacuum to keep: holding it would only pull air over the hot joints, so step 2 is
skipped and the space is flooded with N2 at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from daemon.machine.monitor import Monitor
from drivers.clock import Clock
from drivers.errors import DeviceError
from drivers.protocols import (
    OUT_LAMP_CONTACTOR,
    OUT_SCR_ENABLE,
    OUT_UV_ENABLE,
    VALVE_N2_PURGE,
    VALVE_PUMP,
    VALVE_VENT,
    Machine,
)

log = structlog.get_logger(__name__)

ACTION_TIMEOUT_S = 0.5
SOLIDIFY_MARGIN_C = 20.0  # below solidus before venting, against TC lag and gradients
SOLIDIFY_MAX_S = 180.0
SOLIDIFY_BLIND_S = 60.0  # wait this long when the chip temperature cannot be read
VENT_TO_MBAR = 900.0
VENT_MAX_S = 60.0


@dataclass(frozen=True, slots=True)
class SafeStatePlan:
    vent_now: bool = False  # skip the solidification hold: the vacuum cannot be kept
    # A lead-lift step was heating the chuck through the circulator: set it back to this.
    cool_chuck_to_c: float | None = None


@dataclass
class SafeStateReport:
    problems: list[str] = field(default_factory=list)
    vented: bool = False


async def _try(report: SafeStateReport, what: str, action: Callable[[], Awaitable[None]]) -> bool:
    try:
        await asyncio.wait_for(action(), ACTION_TIMEOUT_S * 2)
        return True
    except (DeviceError, TimeoutError) as exc:
        msg = f"{what}: {exc or type(exc).__name__}"
        report.problems.append(msg)
        log.error("safe_state_action_failed", action=what, error=str(exc))
        return False


async def outputs_off(machine: Machine, report: SafeStateReport | None = None) -> SafeStateReport:
    """Step 1 only: everything that emits energy or moves goes off, concurrently."""
    report = report or SafeStateReport()
    t = ACTION_TIMEOUT_S
    m = machine
    await asyncio.gather(
        _try(report, "lamps to 0 %", lambda: m.lamps.set_power([0.0] * m.lamps.zones, t)),
        _try(
            report, "lamp contactor off", lambda: m.dio.write_output(OUT_LAMP_CONTACTOR, False, t)
        ),
        _try(report, "SCR enable off", lambda: m.dio.write_output(OUT_SCR_ENABLE, False, t)),
        _try(report, "UV shutter closed", lambda: m.uv.close_shutter(t)),
        # The hardware path to the same end: a silent source closes on its interlock input.
        _try(report, "UV enable off", lambda: m.dio.write_output(OUT_UV_ENABLE, False, t)),
        _try(report, "Z stage stopped", lambda: m.zstage.stop(t)),
        _try(report, "dispenser stopped", lambda: m.dispenser.stop(t)),
    )
    return report


async def enter_safe_state(
    machine: Machine,
    clock: Clock,
    monitor: Monitor,
    *,
    solidus_c: float,
    plan: SafeStatePlan | None = None,
) -> SafeStateReport:
    """The whole sequence. Cancellation during it is deferred until outputs are off."""
    plan = plan or SafeStatePlan()
    report = await asyncio.shield(outputs_off(machine))
    log.warning("safe_state_outputs_off", problems=report.problems, vent_now=plan.vent_now)
    cool_to = plan.cool_chuck_to_c
    if cool_to is not None:
        # The circulator keeps running: it is what takes the heat out of the chuck.
        await _try(
            report,
            "circulator back to handling temperature",
            lambda: machine.chiller.set_setpoint(cool_to, ACTION_TIMEOUT_S),
        )

    deadline = clock.now() if plan.vent_now else clock.now() + SOLIDIFY_MAX_S
    blind_until: float | None = None
    while clock.now() < deadline:
        snap = await monitor.next()
        chip = snap.temp("chip")
        if chip is None:
            blind_until = blind_until or clock.now() + SOLIDIFY_BLIND_S
            if clock.now() >= blind_until:
                break
            continue
        if chip < solidus_c - SOLIDIFY_MARGIN_C:
            break
    else:
        if not plan.vent_now:
            report.problems.append(
                f"chip did not fall below {solidus_c - SOLIDIFY_MARGIN_C:.0f} °C within "
                f"{SOLIDIFY_MAX_S:.0f} s; venting anyway"
            )

    return await _vent(machine, clock, monitor, report)


async def _vent(
    machine: Machine, clock: Clock, monitor: Monitor, report: SafeStateReport
) -> SafeStateReport:
    t = ACTION_TIMEOUT_S
    await _try(report, "pump isolation closed", lambda: machine.valves.set(VALVE_PUMP, False, t))
    await _try(report, "N2 purge closed", lambda: machine.valves.set(VALVE_N2_PURGE, False, t))
    if await _try(report, "vent opened", lambda: machine.valves.set(VALVE_VENT, True, t)):
        deadline = clock.now() + VENT_MAX_S
        while clock.now() < deadline:
            p = (await monitor.next()).pressure_mbar()
            if p is not None and p >= VENT_TO_MBAR:
                report.vented = True
                break
        await _try(report, "vent closed", lambda: machine.valves.set(VALVE_VENT, False, t))
        if not report.vented:
            report.problems.append(f"working space did not reach {VENT_TO_MBAR:.0f} mbar")
    log.warning("safe_state_reached", vented=report.vented, problems=report.problems)
    return report
