"""``loop_jitter_predict_p99_ms``: the control loop of a run in reflow while the daemon predicts.

`bonderd serve --sim` at speed 1 and the unit's niceness runs a recipe into reflow; for a
whole lateness window (60 s; 30 s with ``--quick``) the MES asks ``predict`` with 5 seeds
back to back, so the daemon's nice-19 child (ADR 0171) computes all the time. The figure is
the loop's lateness p99 as the ``status`` reply reports it, to be read beside
``loop_jitter_p99_ms`` (the same daemon without predictions).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.serve_bench import EQ, QuietServe, achievable_nice, bench_recipe, unit_nice
from daemon.config import MqttSettings
from daemon.mes.mqtt import CommandClient
from tests.mqtt_broker import running_broker, write_config

SEEDS = int(__import__("os").environ.get("PREDICT_LOAD_SEEDS", "5"))
SNPB = Path(__file__).resolve().parents[1] / "recipes" / "snpb-low-tg.toml"


async def predict_window(
    settings: MqttSettings, seconds: float, *, predict: bool = True
) -> dict[str, Any]:
    async with CommandClient.connect(settings, EQ, identifier="bench-predict") as mes:
        reply = await mes.request(
            "start", {"recipe_toml": bench_recipe().text, "lot_id": "BENCH-PREDICT"}, timeout_s=30
        )
        assert reply["ok"], reply
        deadline = time.monotonic() + 120.0
        while (await mes.request("status"))["result"]["step"] != "reflow":
            assert time.monotonic() < deadline, "the run never reached reflow"
            await asyncio.sleep(0.2)
        t0 = time.monotonic()
        answered = [0]
        text = SNPB.read_text(encoding="utf-8")

        async def ask() -> None:
            while True:
                got = await mes.request(
                    "predict", {"recipe_toml": text, "seeds": SEEDS}, timeout_s=600.0
                )
                assert got["ok"], got
                answered[0] += 1

        # The MES asks back to back; while the run's lamps control the chip the daemon holds
        # the predictions (ADR 0171), so they are answered only outside that phase.
        asker = asyncio.create_task(ask()) if predict else None
        await asyncio.sleep(seconds)
        status = (await mes.request("status"))["result"]
        if asker is not None:
            asker.cancel()
            await asyncio.gather(asker, return_exceptions=True)
        await mes.request("abort", {"reason": "bench done"})
    loop = status["control_loop"]
    return {
        "loop_jitter_predict_p99_ms": loop["late_p99_ms"],
        "loop_jitter_predict_max_ms": loop["late_max_ms"],
        "predict_window_s": round(time.monotonic() - t0, 1),
        "predictions_answered": answered[0],
        "predict_seeds_each": SEEDS,
        "predict_step_at_end": status.get("step"),
        "predict_trips": [a["code"] for a in status["alarms"] if a.get("severity") == "alarm"],
        "loop_overruns_predict": loop["overruns"],
    }


def measure(
    seconds: float = 60.0, nice: int | None = None, *, predict: bool = True
) -> dict[str, Any]:
    serve_nice = achievable_nice(unit_nice() if nice is None else nice)
    with tempfile.TemporaryDirectory() as tmp, running_broker(Path(tmp) / "broker") as broker:
        config = write_config(Path(tmp) / "b.toml", broker_port=broker.port, equipment_id=EQ)
        text = config.read_text().replace("telemetry_hz = 5.0", "telemetry_hz = 2.0")
        config.write_text(text.replace("snapshot_stale_s = 5.0", "snapshot_stale_s = 1.0"))
        serve = QuietServe(config, speed=1.0, nice=serve_nice)
        serve.start()
        try:
            serve.wait_ready(timeout_s=90.0)
            settings = MqttSettings(host="127.0.0.1", port=broker.port)
            out = asyncio.run(predict_window(settings, seconds, predict=predict))
        finally:
            code = serve.stop()
        if code != 0:
            raise RuntimeError(f"bonderd serve exited {code}:\n{serve.log_text()[-3000:]}")
    return out | {"serve_nice": serve_nice}


if __name__ == "__main__":
    import json
    import logging
    import sys

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    baseline = len(sys.argv) > 2 and sys.argv[2] == "baseline"
    print(json.dumps(measure(seconds, predict=not baseline), indent=2))
