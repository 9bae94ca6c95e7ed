"""CONTRACT.md "MQTT", row by row, against `bonderd serve --sim` and a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from daemon.app import bonderctl
from daemon.config import MqttSettings
from daemon.mes.mqtt import CommandClient, Received
from tests.mqtt_broker import RECIPES, Broker, Serve, running_broker, serving_daemon

EQ = "bonder-c1"
SNPB = (RECIPES / "snpb-low-tg.toml").read_text()


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
    # A context manager in the test body, not an async fixture: the suite's leaked-task check
    # runs before async fixtures are torn down.
    return CommandClient.connect(settings, EQ)


async def next_on(client: CommandClient, suffix: str, timeout_s: float = 5.0) -> Received:
    async with asyncio.timeout(timeout_s):
        while True:
            msg = await client.received()
            if msg.topic.endswith("/" + suffix):
                return msg


async def events_until(
    client: CommandClient, pred: Any, timeout_s: float = 10.0
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        while True:
            msg = await next_on(client, "events", timeout_s)
            got.append(msg.json())
            if pred(got[-1]):
                return got


def error_code(reply: dict[str, Any]) -> str:
    assert reply["ok"] is False, reply
    assert reply["error"]["message"], reply
    return str(reply["error"]["code"])


async def test_availability_and_state_are_retained(settings: MqttSettings) -> None:
    async with connect(settings) as client:
        await client.subscribe("availability", "state")
        avail = await next_on(client, "availability")
        assert avail.retain and avail.payload == b"online"
        state = await next_on(client, "state")
        assert state.retain
        doc = state.json()
        assert set(doc) == {"state", "control", "e10", "run_id", "recipe", "step", "alarms", "ts"}
        assert (doc["state"], doc["control"], doc["e10"]) == ("idle", "remote", "SBY")


async def test_reply_goes_to_the_response_topic_with_the_correlation_data(
    settings: MqttSettings,
) -> None:
    async with connect(settings) as client:
        reply = await client.request("status", command_id="c-status-1")
        assert reply["ok"] is True and reply["command_id"] == "c-status-1"
        assert reply["error"] is None
        assert reply["result"]["state"] == "idle"


async def test_without_response_topic_the_reply_goes_to_reply_topic(
    settings: MqttSettings,
) -> None:
    async with connect(settings) as client:
        await client.subscribe("reply")
        cid = uuid.uuid4().hex
        payload = json.dumps({"command": "status", "command_id": cid, "args": {}}).encode()
        await client._client.publish(f"{client.base}/cmd", payload, qos=1)
        msg = await next_on(client, "reply")
        assert msg.json()["command_id"] == cid and msg.json()["ok"] is True


@pytest.mark.parametrize(
    ("payload", "code", "names"),
    [
        (b"{not json", "malformed_json", "JSON"),
        (b"\xff\xfe", "malformed_json", "UTF-8"),
        (b"[1, 2]", "invalid_payload", "object"),
        (b'{"command": "status"}', "missing_field", "command_id"),
        (b'{"command_id": "m-1"}', "missing_field", "command"),
        (b'{"command": "fly", "command_id": "m-2"}', "unknown_command", "fly"),
        (b'{"command": "status", "command_id": "m-3", "extra": 1}', "invalid_payload", "extra"),
        (
            b'{"command": "start", "command_id": "m-4", "args": {"recipe": "x"}}',
            "missing_field",
            "lot_id",
        ),
        (
            b'{"command": "start", "command_id": "m-5", "args": {"recipe": "x", "lot_id": "L", "speed": 2}}',
            "invalid_field",
            "speed",
        ),
        (
            b'{"command": "start", "command_id": "m-6", "args": {"lot_id": "L"}}',
            "invalid_field",
            "recipe",
        ),
        (
            b'{"command": "start", "command_id": "m-7", "args": {"recipe": "nope", "lot_id": "L"}}',
            "unknown_recipe",
            "nope",
        ),
        (
            b'{"command": "abort", "command_id": "m-8", "args": {"reason": 5}}',
            "invalid_field",
            "reason",
        ),
        (b'{"command": "status", "command_id": 17}', "invalid_field", "command_id"),
    ],
)
async def test_bad_payloads_are_refused_naming_the_problem(
    settings: MqttSettings, payload: bytes, code: str, names: str
) -> None:
    async with connect(settings) as client:
        reply = await client.request_raw(payload)
        assert error_code(reply) == code
        assert names.lower() in reply["error"]["message"].lower()
        status = await client.request("status")
        assert status["result"]["state"] == "idle"


@pytest.mark.parametrize("command", ["hold", "resume", "abort"])
async def test_commands_not_allowed_in_idle_are_refused(
    settings: MqttSettings, command: str
) -> None:
    async with connect(settings) as client:
        reply = await client.request(command)
        assert error_code(reply) == "not_allowed"
        assert "idle" in reply["error"]["message"]
        assert (await client.request("status"))["result"]["state"] == "idle"


async def test_put_recipe_list_and_repeated_command_id_runs_once(settings: MqttSettings) -> None:
    async with connect(settings) as client:
        await client.subscribe("events")
        cid = f"put-{uuid.uuid4().hex}"
        first = await client.request(
            "put_recipe", {"name": "snpb-low-tg", "recipe_toml": SNPB}, command_id=cid
        )
        assert first["ok"] is True, first
        version = first["result"]["version"]
        accepted = await events_until(client, lambda e: e["event"] == "RecipeAccepted")
        assert accepted[-1]["name"] == "snpb-low-tg" and accepted[-1]["version"] == version
        assert accepted[-1]["sha256"] == first["result"]["sha256"]

        # Same command_id, different content: the first reply again, nothing executed.
        changed = SNPB.replace('description = "', 'description = "changed ')
        again = await client.request(
            "put_recipe", {"name": "snpb-low-tg", "recipe_toml": changed}, command_id=cid
        )
        assert again == first
        listed = await client.request("list_recipes")
        entry = next(r for r in listed["result"]["recipes"] if r["name"] == "snpb-low-tg")
        assert entry["version"] == version

        # A new command_id with the changed content is a new version.
        newer = await client.request("put_recipe", {"name": "snpb-low-tg", "recipe_toml": changed})
        assert newer["ok"] and newer["result"]["version"] == version + 1
        events = await events_until(client, lambda e: e["event"] == "RecipeAccepted")
        assert [e["event"] for e in events].count("RecipeAccepted") == 1


async def test_put_recipe_invalid_is_rejected_with_every_error(settings: MqttSettings) -> None:
    async with connect(settings) as client:
        await client.subscribe("events")
        bad = SNPB.replace("tg_c = 150.0", "tg_c = -500.0")
        reply = await client.request("put_recipe", {"name": "snpb-low-tg", "recipe_toml": bad})
        assert error_code(reply) == "recipe_invalid"
        assert "tg_c" in reply["error"]["message"]
        ev = (await events_until(client, lambda e: e["event"] == "RecipeRejected"))[-1]
        assert any("tg_c" in e["field"] for e in ev["errors"])

        renamed = await client.request("put_recipe", {"name": "other-name", "recipe_toml": SNPB})
        assert (
            error_code(renamed) == "recipe_invalid" and "other-name" in renamed["error"]["message"]
        )


async def test_local_control_refuses_the_mes_but_not_the_local_operator(
    settings: MqttSettings,
) -> None:
    async with connect(settings) as client:
        refused = await client.request("take_control")
        assert error_code(refused) == "not_allowed"
        taken = await client.request("take_control", local=True)
        assert taken["ok"] and taken["result"]["control"] == "local"
        try:
            start = await client.request("start", {"recipe": "snpb-low-tg", "lot_id": "L1"})
            assert error_code(start) == "local_control"
            status = await client.request("status")
            assert status["ok"] and status["result"]["control"] == "local"
            assert status["result"]["e10"] == "ENG" and status["result"]["state"] == "idle"
        finally:
            released = await client.request("release_control", local=True)
            assert released["ok"] and released["result"]["control"] == "remote"


async def test_ack_of_an_unknown_alarm_is_refused(settings: MqttSettings) -> None:
    async with connect(settings) as client:
        reply = await client.request("ack_alarm", {"code": "no_such_alarm"})
        assert error_code(reply) == "unknown_alarm"


async def test_telemetry_is_periodic_and_not_retained(settings: MqttSettings) -> None:
    async with connect(settings) as client:
        await client.subscribe("telemetry")
        first = await next_on(client, "telemetry")
        second = await next_on(client, "telemetry")
        assert not first.retain
        doc = second.json()
        assert {"ts", "run_id", "temps_c", "pressure_mbar", "o2_ppm", "lamp_pct", "z_um"} <= set(
            doc
        )
        assert doc["lamp_pct"] == 0.0 and "chip" in doc["temps_c"]


def test_bonderctl_exit_codes(
    broker: Broker, daemon: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    def ctl(*args: str, equipment: str = EQ) -> tuple[int, str, str]:
        code = bonderctl.main(
            [
                "--broker",
                f"mqtt://127.0.0.1:{broker.port}",
                "--equipment",
                equipment,
                "--timeout",
                "2",
                *args,
            ]
        )
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, err = ctl("status")
    assert code == 0, err
    assert "state idle" in out and "control remote" in out
    code, out, err = ctl("hold")
    assert code == 1 and "not_allowed" in err and "idle" in err
    code, out, err = ctl("alarms")
    assert code == 0 and "no active alarms" in out
    code, out, err = ctl("status", equipment="no-such-bonder")
    assert code == 3 and "no reply" in err
    # Human output everywhere, JSON on request.
    code, out, err = ctl("recipes")
    assert code == 0 and not out.lstrip().startswith("{")
    code = bonderctl.main(
        ["--broker", f"mqtt://127.0.0.1:{broker.port}", "--equipment", EQ, "--json", "status"]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["ok"] and doc["result"]["state"] == "idle"
    # No broker: its own exit code, distinct from an error reply (1) and no reply (3).
    code = bonderctl.main(["--broker", "mqtt://127.0.0.1:1", "--timeout", "2", "status"])
    err = capsys.readouterr().err
    assert code == 4 and "cannot reach the broker at 127.0.0.1:1" in err


def test_help_has_every_option_and_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    from daemon.app import cli  # noqa: PLC0415

    for prog, parser in (("bonderctl", bonderctl._parser()), ("bonderd", cli._parser())):
        actions = [parser, *parser._subparsers._group_actions[0].choices.values()]  # type: ignore[union-attr]
        for cmd in actions:
            text = cmd.format_help()
            assert "exit codes:" in text, (prog, cmd.prog)
            for action in cmd._actions:
                if action.dest not in ("help", "command"):
                    assert action.help, (cmd.prog, action.dest)
        for sub in parser._subparsers._group_actions[0]._choices_actions:  # type: ignore[union-attr]
            assert sub.help, (prog, sub.dest)
    assert "4  the broker cannot be reached" in bonderctl._parser().format_help()


async def test_watch_folder_events_over_mqtt(settings: MqttSettings, daemon: Serve) -> None:
    watch = daemon.config.parent / "watch"
    async with connect(settings) as client:
        await client.subscribe("events")
        tmp = watch / ".drop.toml.tmp"
        tmp.write_text(SNPB.replace('description = "', 'description = "watched '))
        tmp.rename(watch / "drop.toml")
        (watch / "broken.toml").write_text("kind = 'vacuum_film_bond'\n")
        wanted = {"RecipeAccepted", "RecipeRejected"}
        got: list[dict[str, Any]] = []
        while not wanted <= {e["event"] for e in got}:
            got += await events_until(client, lambda e: e["event"] in wanted, timeout_s=10)
    accepted = next(e for e in got if e["event"] == "RecipeAccepted")
    rejected = next(e for e in got if e["event"] == "RecipeRejected")
    assert accepted["source"] == "watch:drop.toml" and accepted["name"] == "snpb-low-tg"
    assert (
        rejected["source"] == "watch:broken.toml" and rejected["moved_to"] == "rejected/broken.toml"
    )
    assert any(e["field"] == "name" for e in rejected["errors"])
    assert (watch / "rejected" / "broken.toml.errors.json").is_file()
