"""The operator station's cost to the daemon: `bonderd serve --sim` at speed 1 with a run
into reflow, the station open in Debian's chromium and 5 more stream clients (issue 16).

Figures:
- ``hmi_loop_jitter_p99_ms``: the 20 Hz control loop's lateness p99 over the window, as
  the ``status`` reply reports it, with 5 SSE clients reading ``/api/stream`` and the page;
- ``hmi_update_p99_ms``: frame built by the daemon (from the latest snapshot, at most one
  control period old) → drawn in the page, p99 over every frame of the window (the page's
  own ``window.hmiUpdateMs``; browser and daemon on the same host clock);
- ``hmi_serve_cpu_pct``: the daemon's CPU % of one core over the window, the station open
  (the browser's own CPU is the browser's, not counted).

The daemon runs at the unit's priority (``Nice=`` and its real-time class,
``CPUSchedulingPolicy=``: ADR 0152) when the bench may give it (root), else at the
ordinary class (``serve_sched`` null); chromium at the bench's own, nice 0, as a kiosk
browser in the operator's session.

    .venv/bin/python -m bench.hmi_bench [--seconds 45] [--clients 5] [--no-browser]
        [--reconnect S] [--sched unit|none|fifo:N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.interlock_reaction import bench_recipe
from bench.serve_bench import (
    EQ,
    QuietServe,
    Sched,
    achievable_nice,
    achievable_sched,
    cpu_seconds,
    rss_mib,
    unit_nice,
    unit_sched,
)
from daemon.config import MqttSettings
from daemon.mes.mqtt import CommandClient
from tests.mqtt_broker import running_broker, write_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _p(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def runqueue_wait_s(pid: int) -> float:
    """How long the daemon's main thread (its event loop) was ready to run but waited for a
    CPU, since it started: the scheduler's share of the loop's lateness, not the loop's."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


async def _stream_client(url: str, stop: asyncio.Event, frames: list[int]) -> None:
    async with aiohttp.ClientSession() as session, session.get(url + "api/stream") as response:
        while not stop.is_set():
            try:
                async with asyncio.timeout(0.5):
                    line = await response.content.readline()
            except TimeoutError:
                continue
            if line.startswith(b"event: frame"):
                frames[0] += 1


def _browser(url: str, ready: threading.Event, stop: threading.Event, out: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - bench-only

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 950})
            page.goto(url)
            page.wait_for_selector("#live.live-on")
            ready.set()
            stop.wait()
            out["update_ms"] = page.evaluate("() => window.hmiUpdateMs.slice()")
            out["points"] = int(page.get_attribute("#chart-temps", "data-points") or 0)
        finally:
            browser.close()


async def _reconnecting_page(url: str, stop: asyncio.Event, every_s: float, got: list[int]) -> None:
    """What a page that loses its connection does, over and over: open the stream, then
    read the run so far from the records (``/api/run``), drop the stream after ``every_s``."""
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            async with session.get(url + "api/stream") as stream:
                async with session.get(url + "api/run") as run:
                    body = await run.read()
                    got[0] += 1
                    got[1] = max(got[1], len(body))
                try:
                    async with asyncio.timeout(every_s):
                        while not stop.is_set():
                            await stream.content.readline()
                except TimeoutError:
                    pass


async def window(
    settings: MqttSettings,
    url: str,
    pid: int,
    seconds: float,
    clients: int,
    *,
    browser: bool = True,
    reconnect_every_s: float | None = None,
) -> dict[str, Any]:
    stop = asyncio.Event()
    frames = [0]
    streams = [asyncio.create_task(_stream_client(url, stop, frames)) for _ in range(clients)]
    page_ready, page_stop, page_out = threading.Event(), threading.Event(), {}
    page = threading.Thread(target=_browser, args=(url, page_ready, page_stop, page_out))
    reloads = [0, 0]
    if browser:
        page.start()
    try:
        if browser:
            await asyncio.to_thread(page_ready.wait, 60.0)
        async with CommandClient.connect(settings, EQ, identifier="bench-hmi") as mes:
            reply = await mes.request(
                "start", {"recipe_toml": bench_recipe().text, "lot_id": "BENCH-HMI"}
            )
            assert reply["ok"], reply
            if reconnect_every_s is not None:
                streams.append(
                    asyncio.create_task(_reconnecting_page(url, stop, reconnect_every_s, reloads))
                )
            c0, w0, t0 = cpu_seconds(pid), runqueue_wait_s(pid), time.monotonic()
            steps: list[str] = []
            status: dict[str, Any] = {}
            while time.monotonic() - t0 < seconds:
                await asyncio.sleep(1.0)
                status = (await mes.request("status"))["result"]
                if status.get("step") and status["step"] not in steps:
                    steps.append(status["step"])
            elapsed = time.monotonic() - t0
            cpu = (cpu_seconds(pid) - c0) / elapsed * 100
            waited = (runqueue_wait_s(pid) - w0) / elapsed * 1000
            rss = rss_mib(pid)
            load = os.getloadavg()[0]
            await mes.request("abort", {"reason": "bench done"})
    finally:
        page_stop.set()
        if browser:
            await asyncio.to_thread(page.join, 60.0)
        stop.set()
        await asyncio.gather(*streams, return_exceptions=True)
    loop = status["control_loop"]
    update = [float(x) for x in page_out.get("update_ms", [])]
    return {
        "hmi_loop_jitter_p99_ms": loop["late_p99_ms"],
        "hmi_loop_jitter_max_ms": loop["late_max_ms"],
        "hmi_loop_overruns": loop["overruns"],
        "hmi_update_p50_ms": _p(update, 0.5),
        "hmi_update_p99_ms": _p(update, 0.99),
        "hmi_update_frames": len(update),
        "hmi_serve_cpu_pct": round(cpu, 2),
        "hmi_serve_rss_mb": round(rss, 1),
        "hmi_loop_thread_runqueue_wait_ms_per_s": round(waited, 2),
        "hmi_stream_clients": clients,
        "hmi_stream_frames_received": frames[0],
        "hmi_page_points": page_out.get("points"),
        "hmi_steps_seen": steps,
        "hmi_browser": browser,
        "hmi_history_reads": reloads[0],
        "hmi_history_bytes_max": reloads[1],
        "host_load_avg_1min": round(load, 2),
    }


def measure_hmi(
    seconds: float = 45.0,
    clients: int = 5,
    nice: int | None = None,
    *,
    browser: bool = True,
    reconnect_every_s: float | None = None,
    sched: Sched | str | None = "unit",
) -> dict[str, Any]:
    if browser and CHROMIUM is None:
        raise RuntimeError("the station bench needs Debian's chromium")
    serve_nice = achievable_nice(unit_nice() if nice is None else nice)
    serve_sched = achievable_sched(unit_sched() if sched == "unit" else sched)
    with tempfile.TemporaryDirectory() as tmp, running_broker(Path(tmp) / "broker") as broker:
        config = write_config(Path(tmp) / "b.toml", broker_port=broker.port, equipment_id=EQ)
        # As on the line: 2 Hz telemetry (the station's rate too), the real staleness limit.
        text = config.read_text().replace("telemetry_hz = 5.0", "telemetry_hz = 2.0")
        config.write_text(text.replace("snapshot_stale_s = 5.0", "snapshot_stale_s = 1.0"))
        serve = QuietServe(config, speed=1.0, nice=serve_nice, sched=serve_sched)
        serve.start()
        try:
            serve.wait_ready(timeout_s=90.0)
            assert serve.proc is not None
            deadline = time.monotonic() + 20.0
            urls: list[str] = []
            while not urls and time.monotonic() < deadline:
                urls = [x["url"] for x in serve.log_lines() if x.get("event") == "hmi_listening"]
                time.sleep(0.1)
            if not urls:
                raise RuntimeError(f"no station URL in the log:\n{serve.log_text()[-3000:]}")
            settings = MqttSettings(host="127.0.0.1", port=broker.port)
            out = asyncio.run(
                window(
                    settings,
                    urls[0],
                    serve.proc.pid,
                    seconds,
                    clients,
                    browser=browser,
                    reconnect_every_s=reconnect_every_s,
                )
            )
        finally:
            code = serve.stop()
        if code != 0:
            raise RuntimeError(f"bonderd serve exited {code}:\n{serve.log_text()[-3000:]}")
    return out | {
        "hmi_window_s": seconds,
        "serve_nice": serve_nice,
        "serve_sched": None if serve_sched is None else str(serve_sched),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=45.0)
    ap.add_argument("--clients", type=int, default=5)
    ap.add_argument("--nice", type=int, default=None, help="default: the unit's Nice=")
    ap.add_argument("--no-browser", action="store_true", help="the stream clients only")
    ap.add_argument(
        "--reconnect",
        type=float,
        default=None,
        metavar="S",
        help="one more page that drops its stream every S s and re-reads the run (/api/run)",
    )
    ap.add_argument(
        "--sched",
        default="unit",
        help="the daemon's loop thread: 'unit' (the unit's CPUScheduling*), 'none', or fifo:N",
    )
    args = ap.parse_args()
    sched: Sched | str | None = args.sched
    if args.sched == "none":
        sched = None
    elif args.sched != "unit":
        policy, _, prio = args.sched.partition(":")
        sched = Sched(policy, int(prio or 1), reset_on_fork=True)
    out = measure_hmi(
        args.seconds,
        args.clients,
        nice=args.nice,
        browser=not args.no_browser,
        reconnect_every_s=args.reconnect,
        sched=sched,
    )
    print(json.dumps(out, indent=2))
    sys.exit(0)
