"""The TLS path of [mqtt] (tls_ca, tls_cert, tls_key), end to end: a throw-away PKI made with
the openssl CLI, Mosquitto with a mutual-TLS listener, `bonderd serve --sim` and a
CommandClient on it, and clients the broker must turn away."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.config import MqttSettings
from daemon.mes.mqtt import CommandClient, CommandTimeout, is_mqtt_error
from tests.mqtt_broker import Serve, free_port, running_broker, wait_port, write_config

EQ = "bonder-tls"
OPENSSL = shutil.which("openssl")


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _openssl(*args: str | Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *map(str, args)], check=True, capture_output=True)


def _key(path: Path) -> Path:
    # P-256: generated in milliseconds, where an RSA key costs up to a second each.
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    return path


def _ca(d: Path, name: str) -> Pair:
    key = _key(d / f"{name}.key")
    cert = d / f"{name}.crt"
    _openssl(
        "req", "-x509", "-new", "-key", key, "-out", cert, "-days", "1", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
    )  # fmt: skip
    return Pair(cert, key)


def _leaf(d: Path, name: str, ca: Pair, *, usage: str, san: str | None = None) -> Pair:
    key = _key(d / f"{name}.key")
    csr = d / f"{name}.csr"
    cert = d / f"{name}.crt"
    _openssl("req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={name}")
    # Key identifiers and key usages spelt out: a verifier in X.509 strict mode (the default
    # of Python 3.13's ssl) rejects certificates without them.
    ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        f"extendedKeyUsage={usage}",
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid",
    ]
    if san is not None:
        ext.append(f"subjectAltName={san}")
    extfile = d / f"{name}.ext"
    extfile.write_text("\n".join(ext) + "\n")
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
        "-out", cert, "-days", "1", "-extfile", extfile,
    )  # fmt: skip
    return Pair(cert, key)


@pytest.mark.skipif(OPENSSL is None, reason="openssl CLI missing (tools/debian-packages.txt)")
def test_mutual_tls_end_to_end(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = _ca(pki, "line-ca")
    server = _leaf(pki, "broker", ca, usage="serverAuth", san="IP:127.0.0.1,DNS:localhost")
    daemon_id = _leaf(pki, "bonderd", ca, usage="clientAuth")
    mes_id = _leaf(pki, "mes", ca, usage="clientAuth")
    # Same names, same shape, signed by a CA the broker does not know.
    rogue_ca = _ca(pki, "rogue-ca")
    rogue_id = _leaf(pki, "rogue-client", rogue_ca, usage="clientAuth")

    tls_port = free_port()
    # Authentication is the client certificate alone: require_certificate makes the TLS
    # handshake fail without one signed by cafile, and use_identity_as_username turns its CN
    # into the MQTT username. allow_anonymous false (below) then proves the CN is what lets
    # the client in: there is no password file, so nothing else could.
    extra = (
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {ca.cert}\n"
        f"certfile {server.cert}\n"
        f"keyfile {server.key}\n"
        "require_certificate true\n"
        "use_identity_as_username true\n"
    )

    def settings(ca_cert: Path, pair: Pair | None, host: str = "127.0.0.1") -> MqttSettings:
        return MqttSettings(
            host=host,
            port=tls_port,
            tls_ca=ca_cert,
            tls_cert=pair.cert if pair is not None else None,
            tls_key=pair.key if pair is not None else None,
        )

    with running_broker(tmp_path / "broker", extra_conf=extra, anonymous=False) as broker:
        # The helper waits for the plain listener only; this one opens right after it.
        wait_port(tls_port)
        mqtt = f'tls_ca = "{ca.cert}"\ntls_cert = "{daemon_id.cert}"\ntls_key = "{daemon_id.key}"\n'
        config = write_config(
            tmp_path / "b.toml", broker_port=tls_port, equipment_id=EQ, mqtt_extra=mqtt
        )
        serve = Serve(config)
        serve.start()
        try:
            serve.wait_ready(timeout_s=10.0)

            async def online_and_status(s: MqttSettings) -> tuple[str, dict[str, object]]:
                async with CommandClient.connect(s, EQ) as c:
                    await c.subscribe("availability")
                    async with asyncio.timeout(3.0):
                        while (msg := await c.received()).topic != f"{c.base}/availability":
                            pass
                    assert msg.retain
                    reply = await c.request("status", command_id="tls-status", timeout_s=3.0)
                    return msg.payload.decode(), reply

            async def turned_away(s: MqttSettings) -> str:
                # A client the broker rejects after a TLS 1.3 handshake (the client's own
                # side of it has already succeeded) only hears the alert while waiting for
                # CONNACK, and aiomqtt then waits out its whole connect timeout (10 s) instead
                # of failing. 2 s is ample on loopback: a connection up by then would have
                # answered, so running out of it means "never connected", like MqttError.
                try:
                    async with asyncio.timeout(2.0), CommandClient.connect(s, EQ) as c:
                        try:
                            await c.request("status", command_id="tls-rogue", timeout_s=1.0)
                        except CommandTimeout:
                            return "no reply"
                        return "reply"
                except TimeoutError:
                    return "refused"
                except Exception as exc:
                    if is_mqtt_error(exc):
                        return "refused"
                    raise

            async def scenario() -> dict[str, object]:
                avail, reply = await online_and_status(settings(ca.cert, mes_id))
                # The SAN's DNS name verifies too, not only its IP address.
                _, by_name = await online_and_status(settings(ca.cert, mes_id, host="localhost"))
                return {
                    "availability": avail,
                    "status_ok": reply["ok"],
                    "status_by_name_ok": by_name["ok"],
                    "no client cert": await turned_away(settings(ca.cert, None)),
                    "cert from another CA": await turned_away(settings(ca.cert, rogue_id)),
                    # The client verifies the broker as well: trusting only the rogue CA, a
                    # valid client certificate must not make it talk to this broker.
                    "broker not trusted": await turned_away(settings(rogue_ca.cert, mes_id)),
                }

            got = asyncio.run(scenario())
        finally:
            assert serve.stop() == 0, serve.log_text()
    assert got == {
        "availability": "online",
        "status_ok": True,
        "status_by_name_ok": True,
        "no client cert": "refused",
        "cert from another CA": "refused",
        "broker not trusted": "refused",
    }
    # The daemon's session ran under its certificate's CN, and the broker turned the others
    # away for the reason each case is about (OpenSSL's wording, Mosquitto's log).
    log = broker.log.read_text(errors="replace")
    assert "as bonderd-bonder-tls (p5, c1, k15, u'bonderd')" in log, log
    assert "u'mes')" in log, log
    assert "peer did not return a certificate" in log, log
    assert "certificate verify failed" in log, log
    assert "alert unknown ca" in log, log
    commands = [line for line in serve.log_lines() if line.get("event") == "command"]
    assert [c.get("command_id") for c in commands].count("tls-rogue") == 0
