"""Whole runs commanded over MQTT: event order, a broker outage mid-run, SIGTERM and SIGKILL."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.config import MqttSettings
from daemon.mes.mqtt import CommandClient
from daemon.store.records import DB_NAME, INTERRUPTED_REASON, RunStore
from tests.mqtt_broker import RECIPES, Serve, running_broker, write_config

SNPB = (RECIPES / "snpb-low-tg.toml").read_text()
RUN_EVENTS = {"RunStarted", "StepStarted", "StepCompleted", "RunCompleted", "StateChanged"}


async def collect_events(
    client: CommandClient, until: Any, timeout_s: float
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        while True:
            msg = await client.received()
            if msg.topic.endswith("/events"):
                got.append(msg.json())
                if until(got[-1]):
                    return got


def assert_run_sequence(events: list[dict[str, Any]]) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"gaps or repeats: {seqs}"
    names = [e["event"] for e in events if e["event"] in RUN_EVENTS - {"StateChanged"}]
    assert names[0] == "RunStarted" and names[-1] == "RunCompleted"
    steps = [e for e in events if e["event"] in ("StepStarted", "StepCompleted")]
    # Every step starts, then completes, in recipe order.
    for started, completed in zip(steps[::2], steps[1::2], strict=True):
        assert (started["event"], completed["event"]) == ("StepStarted", "StepCompleted")
        assert started["name"] == completed["name"]
    assert [e["index"] for e in steps[::2]] == list(range(len(steps) // 2))


async def start_run(client: CommandClient, lot: str) -> dict[str, Any]:
    put = await client.request("put_recipe", {"name": "snpb-low-tg", "recipe_toml": SNPB})
    assert put["ok"], put
    reply = await client.request("start", {"recipe": "snpb-low-tg", "lot_id": lot})
    assert reply["ok"], reply
    return reply


def test_full_run_over_mqtt_events_in_seq_order(tmp_path: Path) -> None:
    with running_broker(tmp_path / "broker") as broker:
        serve = Serve(write_config(tmp_path / "b.toml", broker_port=broker.port), speed=100)
        serve.start()
        try:
            serve.wait_ready()
            settings = MqttSettings(host="127.0.0.1", port=broker.port)

            async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
                async with CommandClient.connect(settings, "bonder-t") as c:
                    await c.subscribe("events")
                    started = await start_run(c, "LOT-FULL")
                    busy = await c.request("start", {"recipe": "snpb-low-tg", "lot_id": "X"})
                    assert busy["ok"] is False and busy["error"]["code"] == "not_allowed"
                    events = await collect_events(
                        c, lambda e: e["event"] == "RunCompleted", timeout_s=60
                    )
                    status = await c.request("status")
                    return started, events, status

            started, events, status = asyncio.run(scenario())
        finally:
            assert serve.stop() == 0
    run_id = started["result"]["run_id"]
    events = [e for e in events if e.get("run_id") in (run_id, None) or e["event"] != "StepStarted"]
    first = next(i for i, e in enumerate(events) if e["event"] == "RunStarted")
    assert_run_sequence(events[first:])
    done = events[-1]
    assert done["run_id"] == run_id and done["lot_id"] == "LOT-FULL"
    assert done["recipe"]["name"] == "snpb-low-tg"
    assert done["result"] in ("completed", "failed"), done["reason"]
    assert [s["name"] for s in done["steps"]] == [
        "chuck_stabilize",
        "purge",
        "pump_down",
        "reflow",
        "cool",
        "vent",
    ]
    assert status["result"]["state"] == "idle" and status["result"]["run_id"] is None


def test_broker_outage_mid_run_every_event_once_in_order(tmp_path: Path) -> None:
    with running_broker(tmp_path / "broker") as broker:
        serve = Serve(write_config(tmp_path / "b.toml", broker_port=broker.port), speed=60)
        serve.start()
        try:
            serve.wait_ready()
            settings = MqttSettings(host="127.0.0.1", port=broker.port)
            events: list[dict[str, Any]] = []

            async def subscriber_session(until: Any, timeout_s: float) -> None:
                # An MES-like subscriber: persistent session, so the broker queues for it.
                async with CommandClient.connect(
                    settings, "bonder-t", identifier="mes-test", session_expiry_s=600
                ) as c:
                    await c.subscribe("events")
                    events.extend(await collect_events(c, until, timeout_s))

            async def phase1() -> dict[str, Any]:
                async with CommandClient.connect(settings, "bonder-t") as c:
                    reply = await start_run(c, "LOT-OUTAGE")
                # Leave at the start of reflow, which stays quiet for seconds: a message the
                # client library has already acknowledged but the test not yet read would be
                # lost with the connection (a test artefact, not a lost event).
                await subscriber_session(
                    lambda e: e["event"] == "StepStarted" and e.get("name") == "reflow", 30
                )
                return reply

            # Subscribe first (creates the persistent session), then start the run.
            async def subscribe_only() -> None:
                async with CommandClient.connect(
                    settings, "bonder-t", identifier="mes-test", session_expiry_s=600
                ) as c:
                    await c.subscribe("events")

            asyncio.run(subscribe_only())
            started = asyncio.run(phase1())
            broker.stop()
            outage_from = datetime.now(UTC)
            asyncio.run(
                asyncio.sleep(4.0)
            )  # reflow ends and cooling starts with no broker (≈ 240 s sim)
            outage_to = datetime.now(UTC)
            broker.start()
            asyncio.run(subscriber_session(lambda e: e["event"] == "RunCompleted", 60))
        finally:
            assert serve.stop() == 0
    run_id = started["result"]["run_id"]
    run_events = [e for e in events if e["event"] != "RecipeAccepted"]
    first = next(i for i, e in enumerate(run_events) if e["event"] == "RunStarted")
    assert run_events[first]["run_id"] == run_id
    assert_run_sequence(run_events[first:])
    # Events were produced while the broker was down, and arrived all the same.
    during = [e for e in run_events if outage_from <= datetime.fromisoformat(e["ts"]) <= outage_to]
    assert during, "no event was produced during the outage: the test proves nothing"
    logs = serve.log_lines()
    assert any(line.get("event") == "mqtt_disconnected" for line in logs)
    assert sum(1 for line in logs if line.get("event") == "mqtt_online") >= 2


def test_sigterm_during_a_run_safe_state_offline_exit_0(tmp_path: Path) -> None:
    with running_broker(tmp_path / "broker") as broker:
        serve = Serve(write_config(tmp_path / "b.toml", broker_port=broker.port), speed=100)
        serve.start()
        settings = MqttSettings(host="127.0.0.1", port=broker.port)
        try:
            serve.wait_ready()

            async def scenario() -> tuple[str, list[dict[str, Any]], dict[str, str]]:
                async with CommandClient.connect(settings, "bonder-t") as c:
                    await c.subscribe("events")
                    reply = await start_run(c, "LOT-TERM")
                    # Stop in the middle of reflow: lamps on, solder molten, vacuum held.
                    await collect_events(
                        c,
                        lambda e: e["event"] == "StepStarted" and e["name"] == "reflow",
                        timeout_s=30,
                    )
                    await asyncio.sleep(0.3)
                    serve.signal(signal.SIGTERM)
                    events = await collect_events(
                        c, lambda e: e["event"] == "RunCompleted", timeout_s=60
                    )
                    code = await asyncio.to_thread(serve.wait, 60)
                    assert code == 0, serve.log_text()
                    await c.subscribe("availability", "state")
                    retained: dict[str, str] = {}
                    async with asyncio.timeout(10):
                        while len(retained) < 2:
                            msg = await c.received()
                            kind = msg.topic.rsplit("/", 1)[-1]
                            if kind in ("availability", "state") and msg.retain:
                                retained[kind] = msg.payload.decode()
                    return reply["result"]["run_id"], events, retained

            run_id, events, retained = asyncio.run(scenario())
        finally:
            serve.stop()
    done = events[-1]
    assert done["result"] == "aborted" and "SIGTERM" in done["reason"]
    assert retained["availability"] == "offline"
    assert '"state": "aborted"' in retained["state"]
    with RunStore(tmp_path / "data") as store:
        record = store.get_run(run_id)
        samples = store.samples(run_id)
    assert record is not None and record.state == "aborted"
    last = samples[-1]
    assert last.lamp_pct == 0.0 and last.step == "safe_state"
    assert last.pressure_mbar is not None and last.pressure_mbar >= 900.0  # vented after cooling


def test_sigkill_mid_run_then_restart_records_abort_and_outputs_off_first(tmp_path: Path) -> None:
    with running_broker(tmp_path / "broker") as broker:
        config = write_config(tmp_path / "b.toml", broker_port=broker.port)
        settings = MqttSettings(host="127.0.0.1", port=broker.port)
        replies: list[dict[str, Any]] = []
        first = Serve(config, speed=100)
        first.start()
        try:
            first.wait_ready()

            async def start_and_wait() -> str:
                async with CommandClient.connect(settings, "bonder-t") as c:
                    await c.subscribe("events")
                    reply = await start_run(c, "LOT-KILL")
                    first_reply = await c.request("status", command_id="kill-repeat")
                    replies.append(first_reply)
                    await collect_events(
                        c,
                        lambda e: e["event"] == "StepStarted" and e["name"] == "pump_down",
                        timeout_s=30,
                    )
                    return str(reply["result"]["run_id"])

            run_id = asyncio.run(start_and_wait())
            first.signal(signal.SIGKILL)
            assert first.wait(10) == -signal.SIGKILL
        finally:
            first.stop()

        second = Serve(config, speed=100)
        second.start()
        try:
            second.wait_ready()

            async def status() -> dict[str, Any]:
                async with CommandClient.connect(settings, "bonder-t") as c:
                    # The same command_id after the restart: the first reply, not executed.
                    replies.append(await c.request("status", command_id="kill-repeat"))
                    return await c.request("status")

            state = asyncio.run(status())["result"]
        finally:
            assert second.stop() == 0
    events = [line.get("event") for line in second.log_lines()]
    assert events[0] == "startup_outputs_off", events[:5]
    assert events.index("startup_outputs_off") < events.index("interrupted_run_found")
    assert state["e10"] == "UDT"
    # The repeat is answered from the store: the first reply, from before the kill.
    assert replies[0]["result"]["state"] == "running" and replies[1] == replies[0]
    assert any(a["code"] == "run_interrupted" and a["run_id"] == run_id for a in state["alarms"])
    with RunStore(tmp_path / "data") as store:
        record = store.get_run(run_id)
    assert record is not None and record.state == "aborted" and record.reason == INTERRUPTED_REASON
    # The MES books the run too: one RunCompleted (aborted, interrupted) after the restart.
    db = sqlite3.connect(tmp_path / "data" / DB_NAME)
    try:
        rows = db.execute(
            "SELECT payload_json FROM event_outbox WHERE event = 'RunCompleted'"
        ).fetchall()
    finally:
        db.close()
    done = [json.loads(r[0]) for r in rows]
    done = [d for d in done if d["run_id"] == run_id]
    assert len(done) == 1, done
    assert done[0]["result"] == "aborted" and done[0]["reason"].startswith("interrupted")
    assert done[0]["interrupted"] is True and done[0]["recipe"]["name"] == "snpb-low-tg"
    assert done[0]["steps"] and done[0]["steps"][-1]["result"] == "aborted"
    db = sqlite3.connect(tmp_path / "data" / "bonderd.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
