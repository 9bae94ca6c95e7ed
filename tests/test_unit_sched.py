"""The service unit's real-time class for the event loop (ADR 0152), as the bench applies
it: the loop's thread real time, every thread and child it starts back at the ordinary
class."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.serve_bench import Sched, achievable_sched, unit_sched

# A child that reports its own class, then its thread's and its child's.
PROBE = (
    "import os, threading, subprocess, sys\n"
    "print(os.sched_getscheduler(0))\n"
    "out = []\n"
    "t = threading.Thread(target=lambda: out.append(os.sched_getscheduler(0)))\n"
    "t.start(); t.join(); print(out[0])\n"
    "print(subprocess.run([sys.executable, '-c', 'import os; print(os.sched_getscheduler(0))'],"
    " capture_output=True, text=True).stdout.strip())\n"
)


def test_the_unit_runs_the_loop_real_time_below_the_irq_threads() -> None:
    sched = unit_sched()
    assert sched == Sched("fifo", 10, reset_on_fork=True)
    assert 1 <= sched.priority < 50  # the kernel's IRQ threads run at 50


@pytest.mark.skipif(
    achievable_sched(Sched("fifo", 10, reset_on_fork=True)) is None,
    reason="needs root or CAP_SYS_NICE to give a process the real-time class",
)
def test_only_the_started_thread_is_real_time_its_threads_and_children_are_not() -> None:
    sched = unit_sched()
    assert sched is not None
    # Applied before the interpreter starts its work, as QuietServe does with the daemon.
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.readline(); exec(sys.stdin.read())"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    sched.apply(child.pid)
    out, _ = child.communicate("go\n" + PROBE, timeout=60)
    main, thread, grandchild = (int(x) for x in out.split())
    assert main & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO
    assert thread == os.SCHED_OTHER
    assert grandchild == os.SCHED_OTHER
