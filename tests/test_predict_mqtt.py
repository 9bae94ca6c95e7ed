"""The MES `predict` command against `bonderd serve --sim` and a real Mosquitto (docs/mqtt.md).

It answers the document of `bonderd predict --json`, is read-only (answered during a run),
and runs in a child process of the daemon at the lowest CPU priority.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from daemon.app import bonderctl
from daemon.config import MqttSettings, Settings
from daemon.mes.mqtt import CommandClient
from daemon.run.predict_worker import NICENESS, PredictWorker
from daemon.run.virtual import RECIPES
from tests.mqtt_broker import Broker, Serve, running_broker, serving_daemon

# The prediction child runs at SCHED_IDLE: beside a busy test worker it may never get a
# core, so these run after the parallel part of the suite, alone (ADR 0185).
pytestmark = pytest.mark.serial

EQ = "bonder-p1"
REPO = Path(__file__).resolve().parents[1]
SHORT_HOLD = REPO / "tests" / "data" / "recipes" / "twin-short-peak-hold.toml"
SNPB = next(p for p in RECIPES if p.stem == "snpb-low-tg")
TIMEOUT_S = 120.0  # a prediction at nice 19 on a loaded 2-core test machine


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with running_broker(tmp_path_factory.mktemp("broker")) as b:
        yield b


@pytest.fixture(scope="module")
def daemon(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    with serving_daemon(tmp_path_factory.mktemp("serve"), broker.port, EQ) as serve:
        yield serve


@pytest.fixture
def settings(broker: Broker, daemon: Serve) -> MqttSettings:
    return MqttSettings(host="127.0.0.1", port=broker.port)


def connect(settings: MqttSettings) -> AbstractAsyncContextManager[CommandClient]:
    return CommandClient.connect(settings, EQ)


def cli_prediction(config: Path, recipe: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "daemon.app.cli", "predict", str(recipe), "--config", str(config),
         "--json"],
        capture_output=True, text=True, timeout=300, cwd=REPO, check=False,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def without_source(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "recipes": [{**r, "source": None} for r in doc["recipes"]]}


async def test_predict_answers_the_document_of_bonderd_predict_json(
    settings: MqttSettings, daemon: Serve
) -> None:
    async with connect(settings) as client:
        reply = await client.request(
            "predict", {"recipe_toml": SHORT_HOLD.read_text()}, timeout_s=TIMEOUT_S
        )
    assert reply["ok"] is True, reply
    doc = reply["result"]
    assert doc["recipes"][0]["source"] == "recipe_toml"
    assert doc["twin"]["equipment_id"] == EQ  # the daemon's machine, from its configuration
    assert doc["verdict"] == "fail"
    assert doc["recipes"][0]["failed_checks"] == ["time_above_liquidus"]
    expected = await asyncio.to_thread(cli_prediction, daemon.config, SHORT_HOLD)
    assert without_source(doc) == without_source(expected)


async def test_predict_a_library_recipe_with_seeds_during_a_run(settings: MqttSettings) -> None:
    async with connect(settings) as client:
        put = await client.request(
            "put_recipe", {"name": "snpb-low-tg", "recipe_toml": SNPB.read_text()}
        )
        assert put["ok"], put
        version = put["result"]["version"]
        started = await client.request("start", {"recipe": "snpb-low-tg", "lot_id": "P1"})
        assert started["ok"], started
        # Read-only: answered while the machine runs.
        reply = await client.request(
            "predict", {"recipe": "snpb-low-tg", "seeds": 2}, timeout_s=TIMEOUT_S
        )
        assert reply["ok"] is True, reply
        p = reply["result"]["recipes"][0]
        assert p["source"] == f"library:snpb-low-tg@{version}"
        assert p["verdict"] == "pass" and p["seeds"]["n"] == 2 and p["seeds"]["yield"] == 1.0
        # The run beside it was not disturbed: it completes with every check held.
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                status = await client.request("status")
                last = status["result"]["last_result"]
                if (
                    status["result"]["state"] == "idle"
                    and last
                    and last["run_id"] == (started["result"]["run_id"])
                ):
                    break
                await asyncio.sleep(0.2)
        assert last["result"] == "completed", last


async def test_predict_refuses_what_it_cannot_predict(settings: MqttSettings) -> None:
    async with connect(settings) as client:
        both = await client.request("predict", {"recipe": "x", "recipe_toml": "kind = 1"})
        unknown = await client.request("predict", {"recipe": "no-such-recipe"})
        invalid = await client.request("predict", {"recipe_toml": 'kind = "vacuum_film_bond"'})
        many = await client.request("predict", {"recipe": "snpb-low-tg", "seeds": 101})
    assert both["error"]["code"] == "invalid_field", both
    assert unknown["error"]["code"] == "unknown_recipe", unknown
    assert invalid["error"]["code"] == "recipe_invalid", invalid
    assert "name" in invalid["error"]["message"]
    assert many["error"]["code"] == "invalid_field" and "seeds" in many["error"]["message"]


async def test_the_prediction_runs_in_a_child_at_the_lowest_priority() -> None:
    worker = PredictWorker()
    try:
        doc = await worker.predict(SNPB.read_text(), "snpb", Settings.model_construct(), 0)
        (pid,) = worker.pids()
        assert pid != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, pid) == NICENESS
        assert os.getpriority(os.PRIO_PROCESS, 0) < NICENESS  # and not this process
    finally:
        await worker.close()
    assert doc["verdict"] == "pass"
    assert worker.pids() == []


def test_bonderctl_predict_prints_the_prediction(
    broker: Broker, daemon: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    code = bonderctl.main(
        ["--broker", f"mqtt://127.0.0.1:{broker.port}", "--equipment", EQ,
         "--timeout", str(TIMEOUT_S), "predict", str(SHORT_HOLD)]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err  # the command was answered; the verdict is in the text
    assert "recipe_toml: predicted FAIL (vacuum_film_bond 'twin-short-peak-hold')" in out.out
    assert "time_above_liquidus              FAIL" in out.out


async def test_commands_are_answered_while_a_prediction_runs(settings: MqttSettings) -> None:
    async with connect(settings) as client:
        slow = asyncio.ensure_future(
            client.request(
                "predict", {"recipe_toml": SNPB.read_text(), "seeds": 10}, timeout_s=TIMEOUT_S
            )
        )
        await asyncio.sleep(0.5)  # the prediction is under way in the daemon's child
        status = await client.request("status", timeout_s=5.0)
        assert status["ok"] and not slow.done()  # not queued behind the prediction
        reply = await slow
    assert reply["ok"] and reply["result"]["recipes"][0]["seeds"]["n"] == 10
