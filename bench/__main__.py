"""`python -m bench`: every performance figure of bonderd, measured in one run.

    .venv/bin/python -m bench            # human table
    .venv/bin/python -m bench --json     # one JSON object on stdout, nothing else
    .venv/bin/python -m bench --quick    # fewer repeats, shorter windows (same keys)

Progress goes to stderr. Figures that cannot be measured are null, with the reason under
``reasons``. docs/adr/0070-benchmark-suite.md says what each figure means.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

import structlog

from bench.interlock_reaction import print_table as print_reaction
from bench.suite import FIGURES, TARGETS, Suite, read_cpu_steal, steal_pct


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def print_human(out: dict[str, Any]) -> None:
    m = out["machine"]
    print(
        f"bonderd bench — {m['cpu_model']}, {m['cores']} cores, Python {m['python']}, "
        f"load {m['load_avg_at_start']}, hypervisor steal {_fmt(m.get('steal_pct_during'))} % "
        f"during the run{' (quick)' if out['quick'] else ''}"
    )
    print()
    print(f"{'figure':28s} {'value':>10s}  {'target':>10s}  met")
    for f in (*FIGURES, *(k for k in TARGETS if k not in FIGURES)):
        target = out["targets"].get(f)
        met = "" if target is None or target["met"] is None else ("yes" if target["met"] else "NO")
        print(f"{f:28s} {_fmt(out.get(f)):>10s}  {target['target'] if target else '':>10s}  {met}")
    for name, rec in out["recipes"].items():
        steps = rec.get("steps")
        if not steps:
            continue
        print()
        print(
            f"{name}: cycle {rec['cycle_time_s']:.1f} s vs bound "
            f"{rec['cycle_time_lower_bound_s']:.1f} s (×{rec['cycle_time_ratio']:.2f}); "
            f"simulation {rec['sim_speedup']:.0f}× real time ({rec['sim_speedup_cpu']:.0f}× per "
            "CPU second)"
        )
        print(f"  {'step':20s} {'actual s':>9s} {'bound s':>8s} {'lost s':>7s}  bound model")
        for s in steps:
            print(
                f"  {s['name']:20s} {s['actual_s']:9.1f} {s['bound_s']:8.1f} {s['lost_s']:7.1f}  "
                f"{s['model']}"
            )
        tracking = {k: rec.get(k) for k in ("tracking_rms_c", "overshoot_c", "tal_error_s")}
        if any(v is not None for v in tracking.values()):
            print("  tracking: " + ", ".join(f"{k} {_fmt(v)}" for k, v in tracking.items()))
    if "interlock_reaction_per_fault" in out:
        print()
        print_reaction(
            {
                "per_fault": out["interlock_reaction_per_fault"],
                "interlock_reaction_p50_ms": out["interlock_reaction_p50_ms"],
                "interlock_reaction_p99_ms": out["interlock_reaction_p99_ms"],
            }
        )
    serve = out.get("serve")
    if serve:
        print()
        print(
            f"serve --sim speed 1, run in progress ({', '.join(serve['run_steps_seen'])}), "
            "4 subscribers, "
            f"{serve['watch_drops']} watch-folder drops in {serve['busy_window_s']:g} s: "
            f"CPU {serve['serve_cpu_pct']:.1f} % (idle {serve['serve_cpu_idle_pct']:.1f} %), "
            f"RSS {serve['serve_rss_mb']:.0f} MiB; loop lateness p50 "
            f"{serve['loop_jitter_p50_ms']} / p99 {serve['loop_jitter_p99_ms']} / max "
            f"{serve['loop_jitter_max_ms']} ms over {serve['loop_window_cycles']} cycles; "
            f"status latency p50 {serve['command_latency_p50_ms']} / p99 "
            f"{serve['command_latency_p99_ms']} ms"
        )
    hmi = out.get("hmi")
    if hmi:
        print(
            f"operator station open (chromium + {hmi['hmi_stream_clients']} stream clients), "
            f"run in {', '.join(hmi['hmi_steps_seen'])}: loop lateness p99 "
            f"{hmi['hmi_loop_jitter_p99_ms']} ms, frame → drawn p50 {hmi['hmi_update_p50_ms']} "
            f"/ p99 {hmi['hmi_update_p99_ms']} ms over {hmi['hmi_update_frames']} frames, "
            f"CPU {hmi['hmi_serve_cpu_pct']:.1f} %, RSS {hmi['hmi_serve_rss_mb']:.0f} MiB"
        )
    poll = out.get("device_poll")
    if poll:
        print(
            f"device poll over the real drivers: median {poll['device_poll_ms']} ms, p95 "
            f"{poll['device_poll_p95_ms']} ms; with the GFX4 lamp command p95 "
            f"{poll['poll_and_lamp_command_p95_ms']} ms, max "
            f"{poll['poll_and_lamp_command_max_ms']} ms vs the "
            f"{poll['control_period_ms']:g} ms period"
        )
    if out["reasons"]:
        print()
        for f, why in out["reasons"].items():
            print(f"{f}: null — {why}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--quick", action="store_true", help="fewer repeats, shorter windows")
    args = ap.parse_args(argv)
    # The daemon's code logs through structlog; on stderr, and only what is serious.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    t0, steal0 = time.monotonic(), read_cpu_steal()
    out = Suite(quick=args.quick, progress=lambda s: print(s, file=sys.stderr, flush=True)).run()
    out["bench_wall_s"] = round(time.monotonic() - t0, 1)
    # How quiet the shared host was: its neighbours' bursts, not this code, swing the timed
    # figures (sim_speedup 170-320x for the same tree within an hour).
    out["machine"]["steal_pct_during"] = steal_pct(steal0, read_cpu_steal())
    if args.json:
        print(json.dumps(out, allow_nan=False, default=str))
    else:
        print_human(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
