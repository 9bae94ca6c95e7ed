"""The control loop's lateness record (`Monitor.jitter`) and where a maintenance tech sees it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from daemon.config import MqttSettings
from daemon.machine.factory import close_all, connect_all
from daemon.machine.monitor import LoopJitter, Monitor
from daemon.mes.mqtt import CommandClient
from drivers.clock import VirtualClock
from drivers.sim.devices import build_sim_machine
from drivers.sim.plant import Plant
from tests.mqtt_broker import Broker, Serve, running_broker, serving_daemon


def test_lateness_ring_keeps_the_last_cycles_and_their_percentiles() -> None:
    jitter = LoopJitter(size=100)
    assert jitter.percentile(0.99) is None
    assert jitter.summary()["late_p99_ms"] is None
    for i in range(250):  # 0.000 .. 0.249 s; the ring keeps the last 100: 0.150 .. 0.249
        jitter.record(i / 1000.0)
    assert jitter.cycles == 250
    window = jitter.window()
    assert len(window) == 100
    assert window[0] == pytest.approx(0.150) and window[-1] == pytest.approx(0.249)
    assert jitter.percentile(0.5) == pytest.approx(0.199)
    assert jitter.percentile(0.99) == pytest.approx(0.248)
    summary = jitter.summary()
    assert summary["late_p99_ms"] == pytest.approx(248.0)
    assert summary["late_max_ms"] == pytest.approx(249.0)
    assert summary["window_cycles"] == 100 and summary["cycles"] == 250


def test_an_early_wake_up_counts_as_on_time() -> None:
    jitter = LoopJitter(size=4)
    jitter.record(-0.002)
    assert jitter.window() == [0.0]
    with pytest.raises(ValueError, match="size"):
        LoopJitter(size=0)


class _StallingClock:
    """Scaled time at ``speed`` whose sleeps overrun by a planned amount of clock time."""

    def __init__(self, speed: float, overrun_s: list[float]) -> None:
        self.t = 0.0
        self._speed = speed
        self._overrun = iter(overrun_s)

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds) + next(self._overrun, 0.0)
        await asyncio.sleep(0)


async def _run_cycles(monitor: Monitor, cycles: int) -> None:
    task = asyncio.create_task(monitor.run())
    while monitor.jitter.cycles < cycles:
        await monitor.next()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_monitor_records_each_cycles_lateness_in_wall_seconds() -> None:
    # Clock time 2x wall: a cycle that starts 20 ms of clock time late is 10 ms of wall late.
    overruns = [0.0, 0.020, 0.0, 0.004]
    clock = _StallingClock(2.0, overruns)
    machine = build_sim_machine(Plant(clock))
    await connect_all(machine)
    monitor = Monitor(machine, clock, concurrent=False)
    await _run_cycles(monitor, 5)
    await close_all(machine)
    late = monitor.jitter.window()[:5]
    assert late == pytest.approx([0.0, 0.0, 0.010, 0.0, 0.002])
    # A late wake-up keeps the absolute schedule: the next cycle is on time again, and no
    # read overran its period.
    assert monitor.overruns == 0
    assert monitor.jitter.summary()["late_max_ms"] == pytest.approx(10.0)


async def test_under_virtual_time_no_cycle_is_late() -> None:
    clock = VirtualClock()
    machine = build_sim_machine(Plant(clock))
    await connect_all(machine)
    monitor = Monitor(machine, clock, concurrent=False)
    task = asyncio.create_task(monitor.run())
    await clock.sleep(2.0)  # 40 periods
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await close_all(machine)
    assert monitor.jitter.cycles >= 40
    assert monitor.jitter.percentile(1.0) == 0.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with running_broker(tmp_path_factory.mktemp("broker")) as b:
        yield b


@pytest.fixture(scope="module")
def daemon(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    with serving_daemon(tmp_path_factory.mktemp("serve"), broker.port, "bonder-jit") as serve:
        yield serve


async def test_status_reply_shows_the_control_loops_lateness(broker: Broker, daemon: Serve) -> None:
    settings = MqttSettings(host="127.0.0.1", port=broker.port)
    async with CommandClient.connect(settings, "bonder-jit") as client:
        reply = await client.request("status")
    assert reply["ok"], reply
    loop = reply["result"]["control_loop"]
    assert loop["period_ms"] == 50.0
    assert loop["cycles"] > 0 and loop["window_cycles"] > 0
    assert isinstance(loop["overruns"], int)
    for key in ("late_p50_ms", "late_p99_ms", "late_max_ms", "late_max_since_start_ms"):
        assert isinstance(loop[key], float) and loop[key] >= 0.0, (key, loop)
    assert loop["late_p50_ms"] <= loop["late_p99_ms"] <= loop["late_max_ms"]
