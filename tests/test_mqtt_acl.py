"""The example broker ACL (systemd/mosquitto/bonderd.acl): only the MES may command the machine."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from pydantic import SecretStr

from daemon.config import MqttSettings
from daemon.mes.mqtt import CommandClient, CommandTimeout, is_mqtt_error
from tests.mqtt_broker import REPO, Serve, running_broker, write_config

ACL = REPO / "systemd" / "mosquitto" / "bonderd.acl"
EQ = "bonder-acl"
USERS = {"bonderd": "pw-daemon", "mes": "pw-mes", "operator": "pw-op", "intruder": "pw-x"}


def _passwd(path: Path) -> Path:
    path.write_text("")
    for user, password in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True)
    return path


def _as(port: int, user: str | None) -> MqttSettings:
    if user is None:
        return MqttSettings(host="127.0.0.1", port=port)
    return MqttSettings(host="127.0.0.1", port=port, username=user, password=SecretStr(USERS[user]))


def test_only_the_mes_commands_the_machine(tmp_path: Path) -> None:
    passwd = _passwd(tmp_path / "passwd")
    extra = f"password_file {passwd}\nacl_file {ACL}\n"
    with running_broker(tmp_path / "broker", extra_conf=extra, anonymous=False) as broker:
        mqtt = f'username = "bonderd"\npassword = "{USERS["bonderd"]}"\n'
        serve = Serve(
            write_config(
                tmp_path / "b.toml", broker_port=broker.port, equipment_id=EQ, mqtt_extra=mqtt
            )
        )
        serve.start()
        try:
            serve.wait_ready()

            async def ask(user: str | None, local: bool = False) -> str:
                try:
                    async with CommandClient.connect(_as(broker.port, user), EQ) as c:
                        reply = await c.request(
                            "take_control" if local else "status",
                            command_id=f"acl-{user}-{local}",
                            timeout_s=1.5,
                            local=local,
                        )
                        return "ok" if reply["ok"] else str(reply["error"]["code"])
                except CommandTimeout:
                    return "no reply"
                except Exception as exc:
                    if is_mqtt_error(exc):
                        return "refused"
                    raise

            async def scenario() -> dict[str, str]:
                return {
                    "mes": await ask("mes"),
                    "operator-remote": await ask("operator"),
                    "operator-local": await ask("operator", local=True),
                    "intruder": await ask("intruder"),
                    "intruder-local": await ask("intruder", local=True),
                    "anonymous": await ask(None),
                }

            got = asyncio.run(scenario())
        finally:
            assert serve.stop() == 0
    assert got == {
        "mes": "ok",
        "operator-remote": "no reply",
        "operator-local": "ok",
        "intruder": "no reply",
        "intruder-local": "no reply",
        "anonymous": "refused",
    }
    seen = {line.get("command_id") for line in serve.log_lines() if line.get("event") == "command"}
    assert "acl-mes-False" in seen and "acl-operator-True" in seen
    assert not {"acl-intruder-False", "acl-intruder-True", "acl-operator-False"} & seen
