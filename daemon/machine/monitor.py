"""The machine monitor: one periodic loop reads every device, concurrently, with timeouts.

Steps, the controller, guards and the trace all consume the same snapshot, so what the
record shows is exactly what the control decisions were based on.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from drivers.clock import Clock
from drivers.errors import DeviceError
from drivers.machine_read import MachineReadings, ReadsAll
from drivers.protocols import (
    ChillerStatus,
    DispenserStatus,
    Machine,
    PumpStatus,
    StageStatus,
    UvStatus,
)
from drivers.reading import Reading, Status

log = structlog.get_logger(__name__)
_perf_counter = time.perf_counter  # a global, not an attribute, looked up per snapshot


# The real machine's read budget: each cycle publishes its snapshot at most this long (plus
# READ_GRACE_S) after its reads started, whatever a device does. Below half the interlocks'
# staleness limit (1 s), so two cycles cut short in a row still leave a fresh snapshot; above
# one lost Modbus frame's cost (a 0.2 s attempt, then the retry, ADR 0080). docs/adr/0100.
READ_TIMEOUT_S = 0.4
# How long past the budget the cycle waits for the drivers' own timeouts (the same budget) to
# end their reads, so a late device is reported with the driver's own error and the driver
# keeps its link bookkeeping; what still runs after that is cancelled.
READ_GRACE_S = 0.02
CONTROL_PERIOD_S = 0.05  # 20 Hz: the control loop's period
JITTER_WINDOW = 1200  # cycles kept for the lateness figures: one minute at 20 Hz


class LoopJitter:
    """Lateness of the control loop's cycles (actual start − scheduled start), in wall seconds.

    A fixed ring of the last ``size`` cycles: recording is one float store per cycle, the
    percentiles are computed only when somebody asks (the ``status`` reply, the sd_notify
    STATUS line, the bench). Wall seconds, because what the machine feels is the wall: clock
    lateness divided by the clock's speed, and nothing under virtual time (infinite speed),
    where a cycle cannot be late.
    """

    def __init__(self, size: int = JITTER_WINDOW) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._ring = [0.0] * size
        self._n = 0  # cycles recorded since start (the ring holds the last min(n, size))
        self.max_s = 0.0  # worst lateness since start

    def record(self, late_s: float) -> None:
        late = late_s if late_s > 0.0 else 0.0
        self._ring[self._n % len(self._ring)] = late
        self._n += 1
        self.max_s = max(self.max_s, late)

    @property
    def cycles(self) -> int:
        return self._n

    def window(self) -> list[float]:
        """The lateness of the last cycles kept, oldest first."""
        size = len(self._ring)
        if self._n <= size:
            return self._ring[: self._n]
        i = self._n % size
        return self._ring[i:] + self._ring[:i]

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1, nearest rank) of the window, or None before any cycle."""
        values = sorted(self.window())
        if not values:
            return None
        rank = max(1, math.ceil(q * len(values)))
        return values[rank - 1]

    def summary(self) -> dict[str, float | int | None]:
        """Milliseconds, as the maintenance views show them."""

        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000.0, 3)

        return {
            "window_cycles": len(self.window()),
            "cycles": self._n,
            "late_p50_ms": ms(self.percentile(0.50)),
            "late_p99_ms": ms(self.percentile(0.99)),
            "late_max_ms": ms(max(self.window(), default=None)),
            "late_max_since_start_ms": ms(self.max_s) if self._n else None,
        }


# Not frozen (built 20 times a second, 14 fields): consumers read it, never change it.
@dataclass(slots=True)
class Snapshot:
    t: float  # clock time of the snapshot
    temps: dict[str, Reading]
    pressure: Reading | None
    o2: Reading | None
    lamp_pct: tuple[float, ...]
    pump: PumpStatus | None
    valves: dict[str, bool] | None
    chiller: ChillerStatus | None
    inputs: dict[str, bool] | None
    outputs: dict[str, bool] | None
    stage: StageStatus | None
    uv: UvStatus | None
    dispenser: DispenserStatus | None = None
    errors: dict[str, str] = field(default_factory=dict)  # device -> why it gave no reading
    # (component_avg_c,) once worked out: the interlocks and the chip loop's cap both ask.
    _component_avg: tuple[float | None] | None = field(default=None, init=False, repr=False)

    def temp(self, channel: str) -> float | None:
        r = self.temps.get(channel)
        # Reading.ok, inlined: several channels are asked for on every snapshot.
        return r.value if r is not None and r.status is Status.OK else None

    def component_avg_c(self) -> float | None:
        """Average of the ``component*`` channels that read valid (None: none does).

        The same sum as ``Sample.component_avg_c``, in channel order; worked out once per
        snapshot however many consumers ask.
        """
        done = self._component_avg
        if done is None:
            comp = [
                r.value
                for ch, r in self.temps.items()
                if ch.startswith("component") and r.status is Status.OK
            ]
            done = self._component_avg = (sum(comp) / len(comp) if comp else None,)
        return done[0]

    def pressure_mbar(self) -> float | None:
        return (
            self.pressure.value
            if self.pressure is not None and self.pressure.status is Status.OK
            else None
        )

    def o2_ppm(self) -> float | None:
        return self.o2.value if self.o2 is not None and self.o2.status is Status.OK else None

    def lamp_mean_pct(self) -> float:
        return sum(self.lamp_pct) / len(self.lamp_pct) if self.lamp_pct else 0.0


class _Waiter(Protocol):
    """What a publication wakes: a ``next()`` caller's future, or a ``NextCall``."""

    def done(self) -> bool: ...

    def set_result(self, result: None, /) -> None: ...


class NextCall:
    """A callback asked for with ``Monitor.call_on_next``: ``cancel()`` withdraws it."""

    __slots__ = ("_cancelled", "_fn", "_handle")

    def __init__(self, fn: Callable[[], object]) -> None:
        self._fn = fn
        self._handle: asyncio.Handle | None = None
        self._cancelled = False

    def done(self) -> bool:
        return self._cancelled or self._handle is not None

    def set_result(self, result: None, /) -> None:
        # Where a woken future queues its task's wake-up: the same place in the loop's queue.
        self._handle = asyncio.get_running_loop().call_soon(self._fn)

    def cancel(self) -> None:
        self._cancelled = True
        if self._handle is not None:
            self._handle.cancel()


class Monitor:
    def __init__(
        self,
        machine: Machine,
        clock: Clock,
        period_s: float = CONTROL_PERIOD_S,
        *,
        concurrent: bool = True,
    ) -> None:
        self._m = machine
        self._clock = clock
        self.period_s = period_s
        self.latest: Snapshot | None = None
        # Real devices sit on separate buses and are read concurrently; simulated ones answer
        # without waiting, so one after the other is the same and cheaper.
        self.concurrent = concurrent
        self.overruns = 0  # cycles that started late: the loop is not keeping its period
        self.jitter = LoopJitter()
        # When ``latest`` was published, in clock time and in perf_counter() wall time: its
        # ``t`` is when its reads started, and a device that did not answer delays the
        # publication by its timeout. How long consumers take to act on a snapshot is
        # measured against these (bench/interlock_reaction.py).
        self.latest_published_t = 0.0
        self.latest_wall = 0.0
        # next() callers and call_on_next() callbacks, woken on publish in the order they asked.
        self._waiters: list[_Waiter] = []
        self._reads = self._read_table(machine)
        # Concurrent path: a device's read that outlived its cycle and ignored cancellation.
        # At most one outstanding read per device: the next cycles report it missing rather
        # than queue a second request behind it.
        self._stuck: dict[str, asyncio.Task[Any]] = {}
        self.cut_reads = 0  # reads cancelled at the budget (a maintenance figure)
        # A simulated machine answers a whole cycle from one integration of its plant.
        self._read_all = machine.read_all if isinstance(machine, ReadsAll) else None

    @staticmethod
    def _read_table(m: Machine) -> tuple[tuple[str, object, str], ...]:
        # (device name in `errors`, driver, method): built once, the loop runs twenty times
        # a second. The method is looked up at each call, so a wrapper installed on a driver
        # after the monitor exists (a test's spy) is still seen.
        return (
            ("tc", m.thermocouples, "read"),
            ("gauge", m.gauge, "read"),
            ("o2", m.o2, "read"),
            ("lamps", m.lamps, "read_power"),
            ("pump", m.pump, "status"),
            ("valves", m.valves, "states"),
            ("chiller", m.chiller, "status"),
            ("dio", m.dio, "read_inputs"),
            ("dio.outputs", m.dio, "read_outputs"),
            ("zstage", m.zstage, "status"),
            ("uv", m.uv, "status"),
            ("dispenser", m.dispenser, "status"),
        )

    @property
    def read_budget_s(self) -> float:
        """How long one cycle waits for a device that does not answer.

        Device by device (the real buses): ``READ_TIMEOUT_S``, each driver's own timeout and
        the time at which the snapshot is published with the devices that have not answered
        marked missing (docs/adr/0100).
        A simulated machine read whole (``read_all``, sequential mode): one control period
        at most, once per cycle however many devices are silent. A simulated device
        answers at once or not at all, so waiting longer only blinds the interlocks to
        every other device: a silent coupler showed as lost a whole second late
        (docs/adr/0086).
        """
        if self.concurrent or self._read_all is None:
            return READ_TIMEOUT_S
        return min(READ_TIMEOUT_S, self.period_s)

    async def read_once(self) -> Snapshot:
        # Stamped when the reads start: they run concurrently, and what a reading means for
        # rates and lags is when it was asked for, not when the slowest device answered.
        started = self._clock.now()
        if not self.concurrent and self._read_all is not None:
            snap = self._snapshot(started, await self._read_all(self.read_budget_s))
        else:
            snap = await self._read_each(started)
        self._publish(snap)
        return snap

    @staticmethod
    def _snapshot(started: float, r: MachineReadings) -> Snapshot:
        lamps = r.lamps
        return Snapshot(
            t=started,
            temps=r.temps or {},
            pressure=r.pressure,
            o2=r.o2,
            lamp_pct=tuple([x.value for x in lamps]) if lamps else (),
            pump=r.pump,
            valves=r.valves,
            chiller=r.chiller,
            inputs=r.inputs,
            outputs=r.outputs,
            stage=r.stage,
            uv=r.uv,
            dispenser=r.dispenser,
            errors=r.errors,
        )

    async def _read_each(self, started: float) -> Snapshot:
        """Every device through its own read call (real drivers, or a machine without
        ``read_all``)."""
        t = self.read_budget_s
        errs: dict[str, str] = {}
        values: list[Any]
        if self.concurrent:
            values = await self._read_concurrently(t, errs)
        else:
            # Simulated devices answer without waiting: awaited in line, one coroutine each,
            # no wrapper (the reads are most of a virtual-time run's CPU).
            values = []
            for name, dev, method in self._reads:
                try:
                    values.append(await getattr(dev, method)(t))
                except DeviceError as exc:
                    errs[name] = str(exc) or type(exc).__name__
                    values.append(None)
        # The record read_all returns (self._reads is in its field order): one place turns
        # readings into a snapshot.
        return self._snapshot(started, MachineReadings.of(values, errs))

    async def _read_concurrently(self, budget: float, errs: dict[str, str]) -> list[Any]:
        """Every device at once; the readings in by the budget, the others missing.

        Each driver gets the budget as its own timeout and normally ends by itself (its
        DeviceTimeout is the reported error). A read still running ``READ_GRACE_S`` later (a
        driver whose steps overran, an answer held up by a starved host) is cancelled: one
        slow device never holds back the other devices' readings, and no snapshot is older
        than the budget when it is published. The drivers are safe to cancel mid-request
        (ModbusBus, SerialLine: a link that may still carry the abandoned answer is re-opened
        before the next request, docs/adr/0100).
        """
        tasks: dict[asyncio.Task[Any], int] = {}
        values: list[Any] = [None] * len(self._reads)
        try:
            for i, (name, dev, method) in enumerate(self._reads):
                stuck = self._stuck.get(name)
                if stuck is not None:
                    if not stuck.done():
                        errs[name] = f"{name}: an earlier read has not ended"
                        continue
                    del self._stuck[name]
                    if not stuck.cancelled():
                        stuck.exception()  # retrieved: it belonged to an earlier cycle
                tasks[asyncio.create_task(getattr(dev, method)(budget), name=f"read-{name}")] = i
            if not tasks:
                return values
            _, late = await asyncio.wait(tasks, timeout=budget + READ_GRACE_S)
            for _ in range(3):
                if not late:
                    break
                # An answer that arrived in the loop pass that ran the timer (after a stall of
                # this process) is still on its way up the driver's awaits: let it in.
                await asyncio.sleep(0)
                late = {task for task in late if not task.done()}
            for task in late:
                task.cancel()
            if late:
                self.cut_reads += len(late)
                # Cancellation only unwinds the drivers (no I/O): a short wait. A read that
                # ignores it is left running, and its device reported missing until it ends.
                await asyncio.wait(late, timeout=READ_GRACE_S)
            for task, i in tasks.items():
                name = self._reads[i][0]
                if not task.done():
                    self._stuck[name] = task
                    errs[name] = f"{name}: no answer within {budget:g} s (read not ended)"
                elif task.cancelled():
                    errs[name] = f"{name}: no answer within {budget:g} s (read cancelled)"
                elif (exc := task.exception()) is not None:
                    if not isinstance(exc, DeviceError):
                        raise exc
                    errs[name] = str(exc) or type(exc).__name__
                else:
                    values[i] = task.result()
            return values
        except BaseException:
            # Cancelled (the monitor stops) or a driver bug: no read outlives the cycle, and
            # one that ignores its cancellation is left to run() to wait for, boundedly.
            for task in tasks:
                task.cancel()
            if tasks:
                done, left = await asyncio.wait(tasks, timeout=READ_GRACE_S)
                for task in done:
                    if not task.cancelled():
                        task.exception()  # retrieved: the cycle that asked is over
                for task in left:
                    self._stuck[self._reads[tasks[task]][0]] = task
            raise

    def _publish(self, snap: Snapshot) -> None:
        self.latest = snap
        self.latest_published_t = self._clock.now()
        self.latest_wall = _perf_counter()
        waiters = self._waiters
        if waiters:
            self._waiters = []
            for fut in waiters:
                if not fut.done():  # a cancelled next()
                    fut.set_result(None)

    async def run(self) -> None:
        """Read forever every ``period_s`` of clock time; cancel to stop.

        Scheduled on absolute deadlines, so the time the consumers of a snapshot take does
        not stretch the period; a late cycle is not made up for by a burst. Each cycle's
        lateness goes into ``jitter``.
        """
        speed = self._clock.speed
        to_wall = 1.0 / speed if math.isfinite(speed) and speed > 0 else 0.0
        due = self._clock.now()
        try:
            while True:
                self.jitter.record((self._clock.now() - due) * to_wall)
                await self.read_once()
                due += self.period_s
                now = self._clock.now()
                if due < now:
                    self.overruns += 1
                    due = now
                await self._clock.sleep(due - now)
        finally:
            stuck, self._stuck = list(self._stuck.values()), {}
            for task in stuck:
                task.cancel()
            if stuck:
                # A read that ignored one cancellation gets a second and a bounded wait: a
                # broken driver must not keep the daemon from stopping.
                _, left = await asyncio.wait(stuck, timeout=1.0)
                for task in left:
                    log.error("monitor_read_not_ended", read=task.get_name())

    async def next(self) -> Snapshot:
        """Wait for the next fresh snapshot (the latest one when this caller runs again)."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        await fut
        assert self.latest is not None
        return self.latest

    def call_on_next(self, fn: Callable[[], object]) -> NextCall:
        """Have the event loop call ``fn()`` once the next snapshot is published.

        ``next()`` for a consumer that does not await: ``fn`` is queued where a ``next()``
        caller's wake-up would be, in the order of asking, and reads ``latest`` as a woken
        caller does; it runs when the loop gets to it, as the task would. One loop callback
        where a task costs a future, a wake-up and a step (docs/adr/0125). Once: ask again
        from ``fn`` to follow every snapshot.
        """
        call = NextCall(fn)
        self._waiters.append(call)
        return call
