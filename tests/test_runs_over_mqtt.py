"""`list_runs` / `get_report` over MQTT and `bonderctl runs` / `report` (issue #8, item 3).

One real Mosquitto and one `bonderd serve --sim` for the module; one run, aborted just
after it started (a whole bond would take most of the time budget and proves nothing more
here: the listing and the report are read from the records either way).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.app import bonderctl
from daemon.config import MqttSettings
from daemon.mes.mqtt import CommandClient
from tests.mqtt_broker import RECIPES, Broker, Serve, running_broker, serving_daemon

EQ = "bonder-r1"
SNPB = (RECIPES / "snpb-low-tg.toml").read_text()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with running_broker(tmp_path_factory.mktemp("broker")) as b:
        yield b


@pytest.fixture(scope="module")
def daemon(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    with serving_daemon(tmp_path_factory.mktemp("serve"), broker.port, EQ) as serve:
        yield serve


@pytest.fixture(scope="module")
def finished_run(broker: Broker, daemon: Serve) -> dict[str, Any]:
    """The `start` reply's result of a run that has ended (aborted), and its RunCompleted."""

    async def scenario() -> dict[str, Any]:
        settings = MqttSettings(host="127.0.0.1", port=broker.port)
        async with CommandClient.connect(settings, EQ) as c:
            await c.subscribe("events")
            put = await c.request("put_recipe", {"name": "snpb-low-tg", "recipe_toml": SNPB})
            assert put["ok"], put
            started = await c.request("start", {"recipe": "snpb-low-tg", "lot_id": "LOT-R1"})
            assert started["ok"], started
            aborted = await c.request("abort", {"reason": "test: stop early"})
            assert aborted["ok"], aborted
            async with asyncio.timeout(30):
                while True:
                    msg = await c.received()
                    if msg.topic.endswith("/events") and msg.json()["event"] == "RunCompleted":
                        completed = msg.json()
                        break
            reset = await c.request("reset")
            assert reset["ok"], reset
            return {**started["result"], "completed": completed}

    return asyncio.run(scenario())


@pytest.fixture
def settings(broker: Broker, daemon: Serve) -> MqttSettings:
    return MqttSettings(host="127.0.0.1", port=broker.port)


def error_code(reply: dict[str, Any]) -> str:
    assert reply["ok"] is False, reply
    assert reply["error"]["message"], reply
    return str(reply["error"]["code"])


async def test_list_runs_lists_the_run_with_its_result(
    settings: MqttSettings, finished_run: dict[str, Any]
) -> None:
    async with CommandClient.connect(settings, EQ) as c:
        reply = await c.request("list_runs", {"limit": 5})
        assert reply["ok"], reply
        runs = reply["result"]["runs"]
        assert runs[0]["run_id"] == finished_run["run_id"]  # newest first
        run = runs[0]
        assert run["recipe"] == finished_run["recipe"]
        assert run["lot_id"] == "LOT-R1"
        assert run["state"] == "aborted"
        assert run["result"] == finished_run["completed"]["result"] == "aborted"
        assert "test: stop early" in run["reason"]
        assert run["started_at"] and run["ended_at"]
        assert set(run) == {
            "run_id",
            "recipe",
            "lot_id",
            "operator",
            "state",
            "result",
            "reason",
            "started_at",
            "ended_at",
        }

        default = await c.request("list_runs")
        assert default["ok"] and default["result"]["runs"] == runs


@pytest.mark.parametrize(
    ("args", "code", "names"),
    [
        ({"limit": 0}, "invalid_field", "args.limit"),
        ({"limit": 501}, "invalid_field", "args.limit"),
        ({"limit": "5"}, "invalid_field", "args.limit"),
        ({"limit": 5, "since": "x"}, "invalid_field", "args.since"),
    ],
)
async def test_list_runs_refuses_bad_args(
    settings: MqttSettings, args: dict[str, Any], code: str, names: str
) -> None:
    async with CommandClient.connect(settings, EQ) as c:
        reply = await c.request("list_runs", args)
        assert error_code(reply) == code
        assert names in reply["error"]["message"]


async def test_get_report_returns_the_html_and_writes_it_under_data_dir(
    settings: MqttSettings, finished_run: dict[str, Any], daemon: Serve
) -> None:
    run_id = finished_run["run_id"]
    async with CommandClient.connect(settings, EQ) as c:
        cid = f"rep-{uuid.uuid4().hex}"
        reply = await c.request("get_report", {"run_id": run_id}, command_id=cid)
        assert reply["ok"], reply
        result = reply["result"]
        assert result["run_id"] == run_id
        html = result["html"]
        assert html.lstrip().lower().startswith("<!doctype html")
        assert run_id in html and finished_run["recipe"]["sha256"] in html
        path = Path(result["path"])
        assert path == daemon.config.parent / "data" / "reports" / f"{run_id}.html"
        assert await asyncio.to_thread(path.read_text, encoding="utf-8") == html

        # The repeated command_id gets the first reply again.
        assert await c.request("get_report", {"run_id": run_id}, command_id=cid) == reply


@pytest.mark.parametrize("run_id", ["20000101T000000Z-000000", "../../etc/passwd", ".hidden"])
async def test_get_report_of_an_unknown_run_is_refused_naming_it(
    settings: MqttSettings, run_id: str
) -> None:
    async with CommandClient.connect(settings, EQ) as c:
        reply = await c.request("get_report", {"run_id": run_id})
        assert error_code(reply) == "unknown_run"
        assert run_id in reply["error"]["message"]
        missing = await c.request("get_report", {})
        assert error_code(missing) == "missing_field"
        assert "args.run_id" in missing["error"]["message"]


async def test_read_only_run_commands_are_answered_in_local_control(
    settings: MqttSettings, finished_run: dict[str, Any]
) -> None:
    async with CommandClient.connect(settings, EQ) as c:
        assert (await c.request("take_control", local=True))["ok"]
        try:
            runs = await c.request("list_runs", {"limit": 1})
            assert runs["ok"], runs
            report = await c.request("get_report", {"run_id": finished_run["run_id"]})
            assert report["ok"], report
        finally:
            assert (await c.request("release_control", local=True))["ok"]


def test_bonderctl_runs_and_report(
    broker: Broker,
    finished_run: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def ctl(*args: str, equipment: str = EQ, timeout: str = "5") -> tuple[int, str, str]:
        code = bonderctl.main(
            [
                "--broker",
                f"mqtt://127.0.0.1:{broker.port}",
                "--equipment",
                equipment,
                "--timeout",
                timeout,
                *args,
            ]
        )
        out = capsys.readouterr()
        return code, out.out, out.err

    run_id = finished_run["run_id"]
    code, out, err = ctl("runs", "--limit", "3")
    assert code == 0, err
    header, first = out.splitlines()[:2]
    assert header.split() == ["RUN", "ID", "RECIPE", "LOT", "RESULT", "OPERATOR", "STARTED"]
    assert first.split()[:5] == [
        run_id,
        "snpb-low-tg",
        f"v{finished_run['recipe']['version']}",
        "LOT-R1",
        "aborted",
    ]

    code, out, err = ctl("runs", "--limit", "0")
    assert code == 1 and "invalid_field" in err and "args.limit" in err

    code, out, err = ctl("report", run_id, "--out", str(tmp_path / "out"))
    assert code == 0, err
    written = tmp_path / "out" / f"{run_id}.html"
    assert out.strip() == str(written)
    html = written.read_text(encoding="utf-8")
    assert run_id in html and finished_run["recipe"]["sha256"] in html

    code, out, err = ctl("report", "no-such-run", "--out", str(tmp_path / "none"))
    assert code == 1 and "unknown_run" in err and "no-such-run" in err
    assert not (tmp_path / "none").exists()

    code, out, err = ctl("runs", equipment="no-such-bonder", timeout="0.5")
    assert code == 3 and "no reply" in err
