"""Every system call the daemon's children make to set themselves up is one the shipped unit's
`SystemCallFilter=` lets through: under the unit, any other call kills the child (SIGSYS).

The calls are traced (strace) from the real set-up code, and the unit's filter is expanded
with systemd's own `systemd-analyze syscall-filter`, merged as systemd merges the lines: the
first names the allowed set, a `~` line takes calls out of it, a later plain line puts them
back. The prediction child's nice 19 / SCHED_IDLE (ADR 0171) was once refused that way.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "bonderd.service"
STRACE = shutil.which("strace")
ANALYZE = shutil.which("systemd-analyze")

pytestmark = pytest.mark.skipif(
    STRACE is None or ANALYZE is None,
    reason="strace or systemd-analyze missing (tools/debian-packages.txt)",
)

# Each child's own set-up, as the daemon starts it (the interpreter's start-up included).
CHILDREN = {
    "prediction child": "from daemon.run.predict_worker import _low_priority; _low_priority()",
    "recipe worker": (
        "import resource; from daemon.recipe import worker; "
        "resource.setrlimit(resource.RLIMIT_AS, resource.getrlimit(resource.RLIMIT_AS))"
    ),
}


@functools.cache
def _expand(name: str) -> frozenset[str]:
    if not name.startswith("@"):
        return frozenset({name})
    assert ANALYZE is not None
    out = subprocess.run(
        [ANALYZE, "syscall-filter", name], capture_output=True, text=True, check=True
    ).stdout
    calls: set[str] = set()
    for line in out.splitlines()[1:]:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            calls |= _expand(entry)
    return frozenset(calls)


def _allowed_by_unit() -> frozenset[str]:
    lines = re.findall(r"^SystemCallFilter=(.*)$", UNIT.read_text(), flags=re.MULTILINE)
    assert lines and not lines[0].startswith("~"), "the unit's filter starts with an allow list"
    allowed: set[str] = set()
    for line in lines:
        deny = line.startswith("~")
        names = set().union(*(_expand(n) for n in line.lstrip("~").split()))
        if deny:
            allowed -= names
        else:
            allowed |= names
    return frozenset(allowed)


def _traced_calls(code: str, tmp: Path) -> set[str]:
    assert STRACE is not None
    log = tmp / "strace.txt"
    subprocess.run(
        [STRACE, "-f", "-qq", "-o", str(log), sys.executable, "-c", code],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    calls = set()
    for line in log.read_text().splitlines():
        m = re.match(r"^\d+\s+([a-z_0-9]+)\(", line)
        if m:
            calls.add(m.group(1))
    return calls


@pytest.mark.parametrize("child", sorted(CHILDREN))
def test_every_call_a_child_makes_to_set_itself_up_is_allowed_by_the_unit(
    child: str, tmp_path: Path
) -> None:
    calls = _traced_calls(CHILDREN[child], tmp_path)
    assert "execve" in calls  # the trace saw the child at all
    refused = sorted(calls - _allowed_by_unit())
    assert not refused, f"{child}: the unit's SystemCallFilter= kills it on {refused}"


def test_the_prediction_child_lowers_its_priority_with_calls_the_unit_lets_through(
    tmp_path: Path,
) -> None:
    calls = _traced_calls(CHILDREN["prediction child"], tmp_path)
    assert {"setpriority", "sched_setscheduler"} <= calls
    # ... while the unit still refuses what only raises a priority or pins a CPU.
    assert not {"sched_setattr", "sched_setaffinity", "ioprio_set"} & _allowed_by_unit()
