"""``bonderd predict``: what each recipe will do on this machine, before the first panel.

Runs on the machine's twin (daemon/run/predict.py): nothing of the machine is touched, no
device connected, nothing recorded in the run store. Prints per recipe the verdict, every
check with its margin, the cycle and step times and the interlocks that would trip; with
``--json`` the document of docs/predict.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from daemon.config import load_settings
from daemon.recipe.load import RecipeInvalid, load_recipe_file
from daemon.report import write_report
from daemon.run.predict import MAX_SEEDS, Reporter, default_workers, document, predict
from daemon.store.records import RunStore

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
DEFAULT_CONFIG = Path("/etc/bonderd/bonderd.toml")


def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return (
            f"{v:.{digits}g}"
            if abs(v) < 1e-2 and v != 0
            else f"{v:.{digits}f}".rstrip("0").rstrip(".")
        )
    return str(v)


def _print(p: dict[str, Any]) -> None:
    out = sys.stdout.write
    verdict = p["verdict"].upper()
    out(f"{p['source']}: predicted {verdict} ({p['recipe']['kind']} '{p['recipe']['name']}')\n")
    if p["verdict"] != "pass":
        out(f"  {p['result']}: {p['reason']}\n")
    out(f"  cycle {_num(p['cycle_s'], 1)} s:")
    out(", ".join(f" {s['name']} {_num(s['duration_s'], 1)} s" for s in p["steps"]) + "\n")
    out(f"  {'check':32} {'ok':4} {'value':>10} {'limit':>14} {'margin':>10} {'of window':>9}\n")
    for c in p["checks"]:
        unit = f" {c['unit']}" if c["unit"] else ""
        frac = "—" if c["margin_fraction"] is None else f"{c['margin_fraction']:.0%}"
        # A rule of order ("purge completed before pump_down started") has no number.
        limit = c["limit"] if len(str(c["limit"])) <= 14 else "(order)"
        out(
            f"  {c['check']:32} {'ok' if c['ok'] else 'FAIL':4} {_num(c['value']):>10} "
            f"{limit!s:>14} {_num(c['margin']) + unit:>10} {frac:>9}\n"
        )
    for i in p["interlocks"]:
        out(f"  interlock {i['code']} at t={_num(i['t_s'], 1)} s: {i['message']}\n")
    seeds = p["seeds"]
    if seeds:
        out(
            f"  over {seeds['n']} disturbed seeds: yield {seeds['yield']:.0%} "
            f"({seeds['passed']}/{seeds['n']}), cycle mean {_num(seeds['cycle_s']['mean'], 1)} s "
            f"max {_num(seeds['cycle_s']['max'], 1)} s\n"
        )
        out(f"  {'check':32} {'worst margin':>12} {'mean':>10} {'Cpk':>6} {'pass':>6}\n")
        for c in seeds["checks"]:
            out(
                f"  {c['check']:32} {_num(c['worst_margin']):>12} {_num(c['mean']):>10} "
                f"{_num(c['cpk'], 2):>6} {c['pass_share']:>6.0%}\n"
            )
    if "report" in p:
        out(f"  report (prediction): {p['report']}\n")


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.seeds <= MAX_SEEDS:
        print(
            f"bonderd predict: --seeds: must be 0..{MAX_SEEDS}, got {args.seeds}", file=sys.stderr
        )
        return EXIT_INVALID
    path = args.config
    settings = load_settings(path or DEFAULT_CONFIG, required=path is not None)
    loaded = []
    bad = False
    for recipe in args.recipes:
        try:
            loaded.append((recipe, load_recipe_file(recipe, settings.limits)))
        except RecipeInvalid as exc:
            bad = True
            for issue in exc.issues:
                print(str(issue), file=sys.stderr)
    if bad:
        return EXIT_INVALID
    reporter: Reporter | None = None
    if args.report is not None:
        out_dir: Path = args.report

        def reporter(store: RunStore, run_id: str) -> Path:
            return write_report(store, run_id, out_dir, prediction=True)

    predictions = []
    for recipe, one in loaded:
        p = predict(
            one,
            settings,
            source=str(recipe),
            seeds=args.seeds,
            workers=default_workers(),
            reporter=reporter,
        )
        predictions.append(p)
        if not args.json:
            _print(p)
    doc = document(settings, predictions)
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK if doc["verdict"] == "pass" else EXIT_FAILED
