"""Issue 19: hostile input is refused with a clear reason and never stalls the control loop."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from daemon.config import Limits, MqttSettings, Settings, serve_path_problems
from daemon.mes.commands import StartArgs
from daemon.mes.commands import surrogate_problem as _surrogate_problem
from daemon.mes.mqtt import _dumps, _response_topic_problem
from daemon.mes.outbox import json_text
from daemon.mes.watch_folder import REJECTED, Rejection, WatchFolder
from daemon.recipe.load import MAX_STEPS, RecipeInvalid, parse_recipe
from daemon.recipe.worker import RecipeWorker
from tests.mqtt_broker import RECIPES, REPO

LIMITS = Limits()
SNPB = (RECIPES / "snpb-low-tg.toml").read_bytes()


def _issues(text: str) -> list[str]:
    with pytest.raises(RecipeInvalid) as exc:
        parse_recipe(text.encode(), "h.toml", LIMITS)
    return [f"{i.file}: {i.field}: {i.reason}" for i in exc.value.issues]


# ---- 1. recipes: bounds, linear de-duplication, the worker -------------------------------


def test_thousands_of_steps_are_refused_at_once_naming_the_bound() -> None:
    text = 'kind = "vacuum_film_bond"\nname = "h"\n' + '[[steps]]\ntype = "reflow"\n' * 2500
    t = time.perf_counter()
    issues = _issues(text)
    assert time.perf_counter() - t < 1.0
    assert len(issues) == 1 and issues[0].startswith("h.toml: steps: ")
    assert f"at most {MAX_STEPS} steps" in issues[0]


def test_many_invalid_steps_within_the_bound_are_named_fast() -> None:
    text = 'kind = "vacuum_film_bond"\nname = "h"\n' + '[[steps]]\ntype = "reflow"\nx = 1\n' * 200
    t = time.perf_counter()
    issues = _issues(text)
    assert time.perf_counter() - t < 2.0  # quadratic de-duplication took seconds
    assert "h.toml: steps[199].x: unknown key" in " | ".join(issues)
    assert len(issues) == len(set(issues))


@pytest.mark.parametrize(
    "text", ["a = " + "[" * 3000 + "]" * 3000, "a = " + "{b = " * 3000 + "1" + "}" * 3000]
)
def test_toml_nested_thousands_deep_is_refused_not_a_recursion_error(text: str) -> None:
    (issue,) = _issues(text)
    assert "nested more than 16 levels deep" in issue


def test_the_worker_parses_refuses_and_survives_a_timeout() -> None:
    async def main() -> None:
        worker = RecipeWorker()
        await worker.start()
        try:
            loaded = await worker.parse(SNPB, "snpb.toml", LIMITS)
            assert loaded.recipe.name == "snpb-low-tg"
            with pytest.raises(RecipeInvalid) as exc:
                await worker.parse(b"a = " + b"[" * 3000 + b"]" * 3000, "deep.toml", LIMITS)
            assert exc.value.issues[0].file == "deep.toml"
            worker.timeout_s = 1e-6  # no answer can come this fast: killed, refused
            with pytest.raises(RecipeInvalid) as exc:
                await worker.parse(SNPB, "slow.toml", LIMITS)
            assert "took longer than" in exc.value.issues[0].reason
            worker.timeout_s = 10.0  # a fresh child answers the next one
            assert (await worker.parse(SNPB, "again.toml", LIMITS)).recipe.name == "snpb-low-tg"
            assert worker.restarts == 1
        finally:
            await worker.close()

    asyncio.run(main())


# ---- 2./3. text and numbers ------------------------------------------------------------


def test_lone_surrogates_are_named_and_serialising_never_raises() -> None:
    assert _surrogate_problem({"command_id": "ok", "args": {"lot_id": "L\ud800"}}) == (
        "args.lot_id: not valid Unicode text: a lone surrogate (U+D800) cannot be carried as UTF-8"
    )
    assert _surrogate_problem({"command_id": "fine 🙂"}) is None
    reply = {"command_id": "\ud800", "ok": False, "result": None, "error": None}
    raw = _dumps(reply)
    raw.decode("utf-8")  # valid UTF-8 on the wire
    assert json.loads(raw)["command_id"] == "\ud800"  # the MES gets back what it sent
    assert json.loads(json_text({"f": "caf\udce9"}))["f"] == "caf\udce9"


def test_start_version_is_bounded_by_sqlite_int64() -> None:
    StartArgs(recipe="r", lot_id="L", version=2**63 - 1)
    with pytest.raises(ValidationError, match="less than or equal to 9223372036854775807"):
        StartArgs(recipe="r", lot_id="L", version=2**63)


# ---- 4. response topics ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "refused"),
    [
        ("bonder/b1/events", True),
        ("bonder/b1/state", True),
        ("bonder/b1/availability", True),
        ("bonder/b1/reply", True),
        ("bonder/b1/reply/a/b", True),
        ("bonder/b2/events", True),
        ("bonder/b2/reply/mes", True),
        ("bonder/b1/reply/mes-1", False),
        ("mes/replies/1", False),
        (None, False),
    ],
)
def test_response_topics_under_the_equipment_base_are_refused(
    topic: str | None, refused: bool
) -> None:
    message: Any = SimpleNamespace(properties=SimpleNamespace(ResponseTopic=topic))
    problem = _response_topic_problem("bonder/b1", message)
    assert (problem is not None) == refused, problem
    if refused:
        assert "bonder/b1/reply/<client id>" in str(problem)


# ---- 5. the watch folder -----------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.rejected: list[Rejection] = []

    def accept(self, _loaded: object, name: str) -> None:
        self.accepted.append(name)

    def reject(self, rejection: Rejection) -> None:
        self.rejected.append(rejection)


async def _until(cond: Any, timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"not within {timeout_s} s")


def test_watch_folder_waits_for_a_paused_writer_and_judges_odd_names(tmp_path: Path) -> None:
    folder = tmp_path / "watch"
    folder.mkdir()
    sink = Sink()

    async def main() -> None:
        watch = WatchFolder(folder, LIMITS, sink.accept, sink.reject, settle_s=0.2)
        task = asyncio.create_task(watch.run())
        try:
            await _until(watch.ready.is_set)
            with (folder / "slow.toml").open("wb") as f:
                f.write(SNPB[:200])
                f.flush()
                await asyncio.sleep(1.5)  # paused, still open: not complete
                assert not sink.accepted and not sink.rejected
                f.write(SNPB[200:])
            os.mkdir(folder / "dir.toml")
            (folder / ".hidden.toml").write_bytes(b"junk")
            (folder / os.fsdecode(b"caf\xe9.toml")).write_bytes(SNPB)
            await _until(lambda: len(sink.accepted) + len(sink.rejected) >= 3)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert sink.accepted == ["slow.toml"]
    by_file = {r.file: r for r in sink.rejected}
    assert set(by_file) == {"dir.toml", "caf\\xe9.toml"}
    assert "not valid UTF-8" in by_file["caf\\xe9.toml"].errors[0]["reason"]
    assert "a folder" in by_file["dir.toml"].errors[0]["reason"]
    rejected = folder / REJECTED
    doc = json.loads((rejected / "caf\\xe9.toml.errors.json").read_text(encoding="utf-8"))
    assert doc["file"] == "caf\\xe9.toml" and doc["errors"]
    assert (rejected / "caf\\xe9.toml").read_bytes() == SNPB
    assert (folder / ".hidden.toml").exists()  # hidden: left alone, no errors file
    assert not list(rejected.glob(".hidden*"))


# ---- 6. configuration --------------------------------------------------------------------


def test_missing_tls_ca_and_a_data_dir_that_is_a_file_are_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    settings = Settings(
        data_dir=tmp_path / "file",
        watch_dir=tmp_path / "watch",
        mqtt=MqttSettings(tls_ca=tmp_path / "nope.pem"),
    )
    problems = serve_path_problems(settings)
    assert any(
        p.startswith("data_dir (BONDERD_DATA_DIR): ") and "not a folder" in p for p in problems
    )
    assert any(
        p.startswith("mqtt.tls_ca (BONDERD_MQTT__TLS_CA): ") and "no such file" in p
        for p in problems
    )


def test_serve_refuses_them_at_start_up_exit_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    config = tmp_path / "b.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "file"}"\nwatch_dir = "{tmp_path / "w"}"\n'
        f'[mqtt]\ntls_ca = "{tmp_path / "ca.pem"}"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "daemon.app.cli", "serve", "--config", str(config), "--sim"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "data_dir" in proc.stderr and str(tmp_path / "file") in proc.stderr
    assert "mqtt.tls_ca" in proc.stderr and str(tmp_path / "ca.pem") in proc.stderr
    assert "Traceback" not in proc.stderr


# ---- 1. a stalled control loop ends in the safe state with an alarm ----------------------


async def test_a_stalled_event_loop_trips_loop_stalled_and_switches_off() -> None:
    from daemon.machine.factory import close_all, connect_all  # noqa: PLC0415
    from daemon.machine.monitor import Monitor  # noqa: PLC0415
    from daemon.safety.interlocks import Interlocks  # noqa: PLC0415
    from drivers.clock import PacedClock  # noqa: PLC0415
    from drivers.sim.devices import build_sim_machine  # noqa: PLC0415
    from drivers.sim.plant import Plant  # noqa: PLC0415

    # The clock of `serve --sim --speed 2`: paced, so a stalled loop does not even advance it.
    clock = PacedClock(2.0)
    plant = Plant(clock)
    machine = build_sim_machine(plant)
    await connect_all(machine)
    monitor = Monitor(machine, clock, concurrent=False)
    interlocks = Interlocks(machine, clock, monitor, LIMITS)  # snapshot_stale_s = 1 s
    events: list[tuple[str, str]] = []
    interlocks.subscribe(lambda e, p: events.append((e, p["code"])))
    mon = asyncio.create_task(monitor.run(), name="monitor")
    interlocks.start()
    try:
        await asyncio.sleep(0.5)
        assert interlocks.trip is None
        time.sleep(1.6)  # noqa: ASYNC251 - the stall under test: a parse on the loop
        for _ in range(40):
            await asyncio.sleep(0.05)
            if interlocks.trip is not None:
                break
        assert interlocks.trip is not None and interlocks.trip.code == "loop_stalled"
        assert "stalled for 1." in interlocks.trip.message
        assert ("AlarmRaised", "loop_stalled") in events
        assert interlocks.lamp_inhibit() is not None
    finally:
        mon.cancel()
        await asyncio.gather(mon, return_exceptions=True)
        await interlocks.stop()
        await close_all(machine)
