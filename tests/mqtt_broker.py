"""Test helpers: a real Mosquitto broker on a free port, and `bonderd serve` as a process.

Both are real processes, so what the tests see is what the line sees: the MQTT 5 wire
protocol, retained messages, the Last Will, a broker going away, signals.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "recipes"
MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


class Broker:
    """Mosquitto with persistence (sessions and queued QoS 1 messages survive a restart)."""

    def __init__(self, workdir: Path, *, extra_conf: str = "", anonymous: bool = True) -> None:
        if MOSQUITTO is None:
            pytest.fail(
                "mosquitto is not installed: apt-get install mosquitto (tools/debian-packages.txt)"
            )
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.dir / "mosquitto.conf"
        self.log = self.dir / "mosquitto.log"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            "set_tcp_nodelay true\n"
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            "autosave_interval 1\n"
            f"log_dest file {self.log}\n"
            "log_type all\n"
            # Running as root, mosquitto would switch to its own user and lose the tmp dir.
            f"user {getpass.getuser()}\n" + extra_conf
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert MOSQUITTO is not None
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_port(self.port)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None


@contextmanager
def running_broker(workdir: Path, **kw: Any) -> Iterator[Broker]:
    broker = Broker(workdir, **kw)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# The interlocks scale the staleness limit by the clock's speed, so it is wall time at any
# --speed (interlocks.py), and the loop-stall watcher uses it as wall time too. A test daemon
# shares a loaded 2-core CI machine with brokers, browsers and other daemons, where a stall of
# a second is the test machine's, not the simulated machine's. 5 s keeps both rules armed:
# a monitor that stops, or a loop that hangs, still trips.
STALE_S = 5.0


def write_config(
    path: Path,
    *,
    broker_port: int,
    equipment_id: str = "bonder-t",
    extra: str = "",
    mqtt_extra: str = "",
    hmi_extra: str = "",
    twin_gate: str = "off",
) -> Path:
    # The twin gate is off unless a test asks for it: it predicts every new recipe version
    # (seconds of a nice-19 core each) before put_recipe answers, which the tests of other
    # things and the serve bench's watch-folder drops should not wait for or measure.
    base = path.parent
    path.write_text(
        f'equipment_id = "{equipment_id}"\n'
        f'data_dir = "{base / "data"}"\n'
        f'watch_dir = "{base / "watch"}"\n'
        f"{extra}\n"
        "[limits]\n"
        f"snapshot_stale_s = {STALE_S}\n"
        "[mqtt]\n"
        'host = "127.0.0.1"\n'
        f"port = {broker_port}\n"
        "telemetry_hz = 5.0\n"
        f"{mqtt_extra}\n"
        # Any free port: tests run in parallel, and 8080 may be taken on the machine.
        "[hmi]\n"
        "port = 0\n"
        f"{hmi_extra}\n"
        "[library]\n"
        f'twin_gate = "{twin_gate}"\n'
    )
    return path


class Serve:
    """`bonderd serve --sim` as a child process."""

    def __init__(
        self,
        config: Path,
        *,
        speed: float = 100.0,
        env: dict[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.extra_args = list(extra_args)
        self.speed = speed
        self.log_path = config.parent / f"serve-{time.monotonic_ns()}.log"
        self.env = {
            k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")
        }
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    def start(self) -> None:
        self._log_file = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daemon.app.cli",
                "--log-level",
                "DEBUG",
                "serve",
                "--config",
                str(self.config),
                "--sim",
                "--speed",
                str(self.speed),
                *self.extra_args,
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=REPO,
        )

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.log_lines():
                if line.get("event") == "mqtt_online":
                    return
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"bonderd serve exited {self.proc.returncode}:\n{self.log_text()}"
                )
            time.sleep(0.05)
        raise TimeoutError(f"bonderd serve not connected after {timeout_s} s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                out.append(doc)
        return out

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log_file is not None:
            self._log_file.close()
        return self.proc.returncode


@contextmanager
def serving_daemon(workdir: Path, broker_port: int, equipment_id: str) -> Iterator[Serve]:
    """`bonderd serve --sim` on ``broker_port``, ready; stopped cleanly (exit 0) after."""
    serve = Serve(
        write_config(workdir / "bonderd.toml", broker_port=broker_port, equipment_id=equipment_id)
    )
    serve.start()
    try:
        serve.wait_ready()
        yield serve
    finally:
        assert serve.stop() == 0, serve.log_text()
