"""sd_notify: the datagrams systemd sees from `bonderd serve` (ADR 0011)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from daemon.app.sdnotify import Notifier
from tests.mqtt_broker import Serve, running_broker, write_config


def test_notifier_sends_to_a_path_and_to_an_abstract_socket(tmp_path: Path) -> None:
    for address in (str(tmp_path / "notify"), f"@bonderd-test-{os.getpid()}"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind("\0" + address[1:] if address.startswith("@") else address)
            sock.settimeout(2)
            n = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000"})
            try:
                assert n.enabled and n.watchdog_s == 4.0
                assert n.ready("up")
                assert sock.recv(256) == b"READY=1\nSTATUS=up"
                assert n.watchdog()
                assert sock.recv(256) == b"WATCHDOG=1"
            finally:
                n.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    n = Notifier({})
    assert not n.enabled and n.watchdog_s is None
    assert not n.ready("x") and not n.watchdog()
    # WATCHDOG_PID of another process: the watchdog is not ours to ping.
    assert Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_s is None


def test_serve_ready_watchdog_status_stopping(tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
        running_broker(tmp_path / "broker") as broker,
    ):
        sock.bind(str(sock_path))
        sock.settimeout(0.2)
        serve = Serve(
            write_config(tmp_path / "b.toml", broker_port=broker.port),
            speed=1,
            env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"},
        )
        serve.start()
        messages: list[str] = []
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and messages.count("WATCHDOG=1") < 3:
                try:
                    messages.append(sock.recv(4096).decode())
                except TimeoutError:
                    continue
            serve.signal(signal.SIGTERM)
            assert serve.wait(30) == 0
            while True:
                try:
                    messages.append(sock.recv(4096).decode())
                except TimeoutError:
                    break
        finally:
            serve.stop()
    ready = next(i for i, m in enumerate(messages) if m.startswith("READY=1"))
    first_ping = messages.index("WATCHDOG=1")
    assert ready < first_ping
    assert any(m.startswith("STATUS=state=idle control=remote e10=SBY") for m in messages)
    stopping = [i for i, m in enumerate(messages) if m.startswith("STOPPING=1")]
    assert len(stopping) == 1 and stopping[0] > first_ping
