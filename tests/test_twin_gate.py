"""The twin gate (`[library] twin_gate`): every new recipe version is predicted on the twin
before it enters the library; "refuse" keeps predicted failures out (docs/predict.md)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.config import MqttSettings
from daemon.mes.mqtt import CommandClient, Received
from tests.mqtt_broker import REPO, Broker, Serve, running_broker, write_config

DATA = REPO / "tests" / "data" / "recipes"
SHORT_HOLD = (DATA / "twin-short-peak-hold.toml").read_text()
FAST_COOL = (DATA / "twin-cool-too-fast-for-chiller.toml").read_text()
SNPB = (REPO / "recipes" / "snpb-low-tg.toml").read_text()
# The prediction child runs at SCHED_IDLE: beside a busy test worker it may never get a
# core, so these run after the parallel part of the suite, alone (ADR 0185).
pytestmark = pytest.mark.serial

TIMEOUT_S = 120.0  # predictions at nice 19 on a loaded 2-core test machine


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with running_broker(tmp_path_factory.mktemp("broker")) as b:
        yield b


def _daemon(base: Path, port: int, eq: str, gate: str) -> Iterator[Serve]:
    serve = Serve(write_config(base / "b.toml", broker_port=port, equipment_id=eq, twin_gate=gate))
    serve.start()
    try:
        serve.wait_ready()
        yield serve
    finally:
        assert serve.stop() == 0, serve.log_text()


@pytest.fixture(scope="module")
def refusing(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    yield from _daemon(tmp_path_factory.mktemp("refuse"), broker.port, "bonder-g1", "refuse")


@pytest.fixture(scope="module")
def warning(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    yield from _daemon(tmp_path_factory.mktemp("warn"), broker.port, "bonder-g2", "warn")


async def events_until(client: CommandClient, pred: Any) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            msg: Received = await client.received()
            if msg.topic.endswith("/events"):
                got.append(msg.json())
                if pred(got[-1]):
                    return got


def named(text: str, name: str) -> str:
    """The same recipe under another name: a new recipe, so a new prediction."""
    first = text.split('name = "', 1)[1].split('"', 1)[0]
    return text.replace(f'name = "{first}"', f'name = "{name}"', 1)


async def test_refuse_answers_put_recipe_of_a_predicted_failure_naming_the_check(
    broker: Broker, refusing: Serve
) -> None:
    settings = MqttSettings(host="127.0.0.1", port=broker.port)
    async with CommandClient.connect(settings, "bonder-g1") as client:
        await client.subscribe("events")
        name = f"short-{uuid.uuid4().hex[:8]}"
        reply = await client.request(
            "put_recipe",
            {"name": name, "recipe_toml": named(SHORT_HOLD, name)},
            timeout_s=TIMEOUT_S,
        )
        assert reply["ok"] is False, reply
        assert reply["error"]["code"] == "predicted_failure"
        assert "time_above_liquidus" in reply["error"]["message"]
        rejected = (await events_until(client, lambda e: e["event"] == "RecipeRejected"))[-1]
        fields = [e["field"] for e in rejected["errors"]]
        assert fields == ["prediction", "prediction.time_above_liquidus"]
        assert "at or above 220 °C" in rejected["errors"][1]["reason"]  # the twin's value
        listed = await client.request("list_recipes")
        assert name not in {r["name"] for r in listed["result"]["recipes"]}


async def test_a_recipe_predicted_to_pass_is_accepted_with_its_prediction(
    broker: Broker, refusing: Serve
) -> None:
    settings = MqttSettings(host="127.0.0.1", port=broker.port)
    async with CommandClient.connect(settings, "bonder-g1") as client:
        await client.subscribe("events")
        reply = await client.request(
            "put_recipe", {"name": "snpb-low-tg", "recipe_toml": SNPB}, timeout_s=TIMEOUT_S
        )
        assert reply["ok"] is True, reply
        prediction = reply["result"]["prediction"]
        assert prediction["verdict"] == "pass" and prediction["failed_checks"] == []
        assert 0 < prediction["min_margin"] < 1
        assert prediction["cycle_s"] == pytest.approx(212.6, abs=1.0)
        assert prediction["yield"] is None  # twin_gate_seeds = 0
        accepted = (await events_until(client, lambda e: e["event"] == "RecipeAccepted"))[-1]
        assert accepted["name"] == "snpb-low-tg" and accepted["prediction"] == prediction


async def test_refuse_moves_a_watched_predicted_failure_to_rejected_with_the_reason(
    broker: Broker, refusing: Serve
) -> None:
    watch = refusing.config.parent / "watch"
    settings = MqttSettings(host="127.0.0.1", port=broker.port)
    async with CommandClient.connect(settings, "bonder-g1") as client:
        await client.subscribe("events")
        tmp = watch / ".cool.toml.tmp"
        tmp.write_text(FAST_COOL)
        tmp.rename(watch / "cool.toml")
        rejected = (await events_until(client, lambda e: e["event"] == "RecipeRejected"))[-1]
    assert rejected["source"] == "watch:cool.toml"
    assert rejected["moved_to"] == "rejected/cool.toml"
    errors = json.loads((watch / "rejected" / "cool.toml.errors.json").read_text())["errors"]
    assert errors[0]["field"] == "prediction"
    assert "step 'cool' did not reach its goal within 45 s" in errors[0]["reason"]
    assert not (watch / "cool.toml").exists()


async def test_warn_accepts_a_predicted_failure_and_says_so(broker: Broker, warning: Serve) -> None:
    settings = MqttSettings(host="127.0.0.1", port=broker.port)
    async with CommandClient.connect(settings, "bonder-g2") as client:
        await client.subscribe("events")
        reply = await client.request(
            "put_recipe",
            {"name": "twin-short-peak-hold", "recipe_toml": SHORT_HOLD},
            timeout_s=TIMEOUT_S,
        )
        assert reply["ok"] is True, reply
        prediction = reply["result"]["prediction"]
        assert prediction["verdict"] == "fail"
        assert prediction["failed_checks"] == ["time_above_liquidus"]
        assert prediction["min_margin"] < 0
        accepted = (await events_until(client, lambda e: e["event"] == "RecipeAccepted"))[-1]
        assert accepted["prediction"] == prediction
        # The same content again is not predicted again: the kept prediction answers.
        again = await client.request(
            "put_recipe",
            {"name": "twin-short-peak-hold", "recipe_toml": SHORT_HOLD},
            timeout_s=10.0,
        )
        assert again["ok"] and again["result"]["prediction"] == prediction
        assert again["result"]["new_version"] is False


async def test_refuse_starts_a_predicted_failure_only_on_an_engineers_override(
    broker: Broker, refusing: Serve
) -> None:
    settings = MqttSettings(host="127.0.0.1", port=broker.port)
    async with CommandClient.connect(settings, "bonder-g1") as client:
        await client.subscribe("events")
        refused = await client.request(
            "start", {"recipe_toml": SHORT_HOLD, "lot_id": "G1"}, timeout_s=TIMEOUT_S
        )
        assert refused["ok"] is False and refused["error"]["code"] == "predicted_failure"
        assert "override_prediction" in refused["error"]["message"]
        assert "time_above_liquidus" in refused["error"]["message"]

        who = "Dana Reyes (process engineer): TAL study on scrap parts"
        started = await client.request(
            "start",
            {"recipe_toml": SHORT_HOLD, "lot_id": "G1", "override_prediction": who},
            timeout_s=TIMEOUT_S,
        )
        assert started["ok"] is True, started
        run_id = started["result"]["run_id"]
        done = (
            await events_until(
                client, lambda e: e["event"] == "RunCompleted" and e["run_id"] == run_id
            )
        )[-1]
        ack = await client.request("ack_alarm", {"code": "prediction_overridden"})
    # Recorded with the run: its alarms (and so its report) name who overrode and why.
    (note,) = [a for a in done["alarms"] if a["code"] == "prediction_overridden"]
    assert note["severity"] == "warning" and who in note["message"]
    assert "time_above_liquidus" in note["message"]
    # And the twin was right: the run fails the check it named.
    assert done["result"] == "failed"
    assert [c["check"] for c in done["conformance"] if not c["ok"]] == ["time_above_liquidus"]
    assert ack["ok"], ack


async def test_an_abort_is_not_kept_waiting_behind_a_recipe_the_gate_is_predicting(
    broker: Broker, warning: Serve
) -> None:
    settings = MqttSettings(host="127.0.0.1", port=broker.port)
    async with CommandClient.connect(settings, "bonder-g2") as client:
        await client.subscribe("events")
        name = f"snpb-{uuid.uuid4().hex[:8]}"
        reply = await client.request(
            "put_recipe", {"name": name, "recipe_toml": named(SNPB, name)}, timeout_s=TIMEOUT_S
        )
        assert reply["ok"], reply
        started = await client.request("start", {"recipe": name, "lot_id": "L-ABORT"})
        assert started["ok"], started
        run_id = started["result"]["run_id"]

        # A new recipe version while the run goes on: the gate predicts it on the twin, for a
        # second or more, before put_recipe answers. The abort sent after it must not wait.
        other = f"snpb-{uuid.uuid4().hex[:8]}"
        put = asyncio.create_task(
            client.request(
                "put_recipe",
                {"name": other, "recipe_toml": named(SNPB, other)},
                timeout_s=TIMEOUT_S,
            )
        )
        await asyncio.sleep(0.2)  # so that put_recipe is on the wire first
        aborted = await client.request("abort", {"reason": "wrong lot"})
        assert aborted["ok"], aborted
        assert aborted["result"]["run_id"] == run_id
        assert not put.done(), "the abort was answered only after the slow put_recipe"
        events = await events_until(
            client, lambda e: e["event"] == "RunCompleted" and e.get("run_id") == run_id
        )
        assert events[-1]["result"] == "aborted", events[-1]
        assert (await put)["ok"]
        reset = await client.request("reset")
        assert reset["ok"], reset


async def test_an_abort_during_a_start_being_predicted_stops_it_before_it_runs(
    broker: Broker, warning: Serve
) -> None:
    settings = MqttSettings(host="127.0.0.1", port=broker.port)
    async with CommandClient.connect(settings, "bonder-g2") as client:
        name = f"snpb-{uuid.uuid4().hex[:8]}"
        # An inline recipe is new: the gate predicts it before the start can go on.
        start = asyncio.create_task(
            client.request(
                "start",
                {"recipe_toml": named(SNPB, name), "lot_id": "L-OVERTAKEN"},
                timeout_s=TIMEOUT_S,
            )
        )
        await asyncio.sleep(0.2)
        aborted = await client.request("abort", {"reason": "wrong lot"})
        assert aborted["ok"], aborted
        assert aborted["result"]["overtook"] == "start"
        refused = await start
        assert not refused["ok"]
        assert refused["error"]["code"] == "not_allowed"
        assert "overtaken" in refused["error"]["message"]
        assert "wrong lot" in refused["error"]["message"]
        status = await client.request("status")
        assert status["result"]["state"] == "idle", status
