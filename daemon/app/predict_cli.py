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

from daemon.app.predict_text import prediction_text
from daemon.config import load_settings
from daemon.recipe.load import RecipeInvalid, load_recipe_file
from daemon.report import write_report
from daemon.run.predict import MAX_SEEDS, Reporter, default_workers, document, predict
from daemon.store.records import RunStore

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
DEFAULT_CONFIG = Path("/etc/bonderd/bonderd.toml")


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
            sys.stdout.write(prediction_text(p))
    doc = document(settings, predictions)
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK if doc["verdict"] == "pass" else EXIT_FAILED
