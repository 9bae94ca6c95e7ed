"""Benchmark of `bonderd serve --sim` over a real Mosquitto on loopback (prints figures).

    .venv/bin/python bench/serve_bench.py [--seconds 20] [--requests 500]

1. command → reply latency (`status`, QoS 1, MQTT 5 response topic), p50 / p99 / max;
2. the daemon's CPU % and RSS at 20 Hz control (monitor + interlocks at 10 Hz of clock
   time, run at --speed 2), 2 Hz telemetry, with 4 clients subscribed to everything.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon.config import MqttSettings
from daemon.mqtt import CommandClient
from tests.mqtt_broker import Serve, running_broker, write_config

EQ = "bonder-bench"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def latency(settings: MqttSettings, n: int) -> list[float]:
    async with CommandClient.connect(settings, EQ) as c:
        for _ in range(20):  # warm-up
            await c.request("status")
        out = []
        for _ in range(n):
            t = time.perf_counter()
            reply = await c.request("status")
            out.append((time.perf_counter() - t) * 1000)
            assert reply["ok"]
        return out


async def load(settings: MqttSettings, pid: int, seconds: float) -> tuple[float, float, int]:
    received = 0

    async def subscriber(i: int, stop: asyncio.Event) -> None:
        nonlocal received
        async with CommandClient.connect(settings, EQ, identifier=f"bench-sub-{i}") as c:
            await c.subscribe("availability", "state", "events", "telemetry")
            while not stop.is_set():
                try:
                    async with asyncio.timeout(0.5):
                        await c.received()
                        received += 1
                except TimeoutError:
                    continue

    stop = asyncio.Event()
    subs = [asyncio.create_task(subscriber(i, stop)) for i in range(4)]
    await asyncio.sleep(2.0)
    c0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = (cpu_seconds(pid) - c0) / (time.monotonic() - t0) * 100
    rss = rss_mib(pid)
    stop.set()
    await asyncio.gather(*subs)
    return cpu, rss, received


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--requests", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_broker(Path(tmp) / "broker") as broker:
        config = write_config(Path(tmp) / "b.toml", broker_port=broker.port, equipment_id=EQ)
        text = config.read_text().replace("telemetry_hz = 5.0", "telemetry_hz = 2.0")
        text = text.replace("snapshot_stale_s = 5.0", "snapshot_stale_s = 1.0")
        config.write_text(text)
        serve = Serve(config, speed=2.0)
        serve.start()
        try:
            serve.wait_ready()
            assert serve.proc is not None
            settings = MqttSettings(host="127.0.0.1", port=broker.port)
            lat = sorted(asyncio.run(latency(settings, args.requests)))
            cpu, rss, received = asyncio.run(load(settings, serve.proc.pid, args.seconds))
        finally:
            serve.stop()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    print(
        f"command→reply latency (status, n={len(lat)}): p50 {p(0.5):.2f} ms, "
        f"p99 {p(0.99):.2f} ms, max {lat[-1]:.2f} ms"
    )
    print(
        f"serve --sim at 20 Hz control, 2 Hz telemetry, 4 subscribers: "
        f"CPU {cpu:.1f} % of one core, RSS {rss:.0f} MiB ({received} messages received)"
    )


if __name__ == "__main__":
    main()
