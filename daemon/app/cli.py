"""`bonderd`: the command line of CONTRACT.md (run, check, export)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from daemon import __version__, logs
from daemon.app.progress import ProgressView
from daemon.config import ConfigError, Settings, load_settings
from daemon.recipe.load import RecipeInvalid, load_recipe_file
from daemon.report import write_report
from daemon.run.rig import ScenarioError, assemble, load_scenario
from daemon.store.export import write_csv
from daemon.store.records import RunStore, UnknownRun
from drivers.errors import DeviceError

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
DEFAULT_CONFIG = Path("/etc/bonderd/bonderd.toml")

log = structlog.get_logger(__name__)


def _settings(args: argparse.Namespace) -> Settings:
    path = getattr(args, "config", None)
    settings = load_settings(path or DEFAULT_CONFIG, required=path is not None)
    data_dir = getattr(args, "data_dir", None)
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": Path(data_dir)})
    return settings


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bonderd", description="Vacuum-film flip-chip bonder control")
    p.add_argument("--version", action="version", version=f"bonderd {__version__}")
    p.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (default depends)")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run one recipe standalone, progress on the terminal")
    r.add_argument("recipe", type=Path)
    r.add_argument("--config", type=Path)
    r.add_argument("--sim", action="store_true", help="use the simulated machine")
    r.add_argument("--speed", type=_positive, default=1.0, help="simulated time scale")
    r.add_argument("--faults", type=Path, help="fault scenario file (simulation only)")
    r.add_argument("--lot", default="", help="lot id")
    r.add_argument("--operator", default="")
    r.add_argument("--data-dir", type=Path)
    r.add_argument("--seed", type=int, default=0, help="seed of the simulated noise")
    r.add_argument("--json", action="store_true", help="print the result document on stdout")

    c = sub.add_parser("check", help="validate recipe files")
    c.add_argument("recipes", type=Path, nargs="+")
    c.add_argument("--config", type=Path)

    e = sub.add_parser("export", help="a run's trace on stdout")
    e.add_argument("run_id")
    e.add_argument("--data-dir", type=Path)
    e.add_argument("--config", type=Path)
    e.add_argument("--format", choices=["csv"], default="csv")

    sv = sub.add_parser("serve", help="the daemon: MQTT, watch folder, runs (daemon/app/serve.py)")
    sv.add_argument("--config", type=Path)
    sv.add_argument("--sim", action="store_true", help="use the simulated machine")
    sv.add_argument("--speed", type=_positive, default=1.0, help="simulated time scale")

    em = sub.add_parser(
        "emulate", help="protocol emulators of the real devices (daemon/app/emulate.py)"
    )
    em.add_argument("--config", type=Path)
    em.add_argument("--speed", type=_positive, default=1.0, help="simulated time scale")
    em.add_argument(
        "--recipe", type=Path, help="the recipe that will run: its materials are on the chuck"
    )

    tu = sub.add_parser(
        "tune", help="identify the chip's thermal model with the lamps (daemon/thermal/tune.py)"
    )
    tu.add_argument("--config", type=Path)
    tu.add_argument("--sim", action="store_true", help="use the simulated machine")
    tu.add_argument("--speed", type=_positive, default=1.0, help="simulated time scale")
    tu.add_argument("--write", action="store_true", help="store the model in the config file")
    tu.add_argument("--seed", type=int, default=0, help="seed of the simulated noise")
    tu.add_argument(
        "--solder",
        default="217:220",
        help="SOLIDUS:LIQUIDUS °C of the coupon's solder (default SAC305, 217:220)",
    )
    tu.add_argument("--data-dir", type=Path)

    rp = sub.add_parser("report", help="write a run's report (one self-contained HTML file)")
    rp.add_argument("run_id")
    rp.add_argument("--data-dir", type=Path)
    rp.add_argument("--config", type=Path)
    rp.add_argument("--out", type=Path, default=Path("."), help="directory (default: here)")
    return p


def cmd_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    bad = 0
    for path in args.recipes:
        try:
            loaded = load_recipe_file(path, settings.limits)
        except RecipeInvalid as exc:
            bad += 1
            for issue in exc.issues:
                print(str(issue), file=sys.stderr)
            continue
        print(
            f"{path}: ok ({loaded.recipe.kind} '{loaded.recipe.name}', sha256 {loaded.sha256[:12]})"
        )
    return EXIT_INVALID if bad else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = RunStore(settings.data_dir)
    try:
        run = store.get_run(args.run_id)
        if run is None:
            print(
                f"bonderd export: unknown run '{args.run_id}' in {settings.data_dir}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        write_csv(store.samples(args.run_id), sys.stdout)
        return EXIT_OK
    finally:
        store.close()


def cmd_report(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with RunStore(settings.data_dir) as store:
        try:
            path = write_report(store, args.run_id, args.out)
        except UnknownRun:
            print(
                f"bonderd report: unknown run '{args.run_id}' in {settings.data_dir}",
                file=sys.stderr,
            )
            return EXIT_FAILED
    print(path)
    return EXIT_OK


async def _run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        loaded = load_recipe_file(args.recipe, settings.limits)
    except RecipeInvalid as exc:
        for issue in exc.issues:
            print(str(issue), file=sys.stderr)
        return EXIT_INVALID
    scenario = None
    if args.faults is not None:
        if not args.sim:
            print(
                "bonderd run: --faults needs --sim (faults are injected into the plant)",
                file=sys.stderr,
            )
            return EXIT_INVALID
        scenario = load_scenario(args.faults)

    rig = assemble(settings, sim=args.sim, speed=args.speed, seed=args.seed, scenario=scenario)
    rig.prepare(loaded.recipe)
    executor = rig.executor
    view = ProgressView(executor)
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        try:
            executor.abort(f"stopped by {sig.name}", code="signal")
        except Exception as exc:  # not running any more: nothing to abort
            log.info("signal_ignored", signal=sig.name, why=str(exc))

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    view_task: asyncio.Task[None] | None = None
    try:
        async with rig.running():
            view_task = asyncio.create_task(view.run(), name="progress")
            doc = await executor.run(loaded, lot_id=args.lot, operator=args.operator)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if view_task is not None:
            view_task.cancel()
            await asyncio.gather(view_task, return_exceptions=True)
        rig.close()
    view.summary(doc)
    violations = rig.violations(doc)
    for v in violations:
        print(f"bonderd: simulation invariant violated: {v}", file=sys.stderr)
    if violations:
        return EXIT_FAILED
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK if doc["result"] == "completed" else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = args.log_level or ("WARNING" if args.command in ("run", "tune") else "INFO")
    logs.configure(level)
    try:
        if args.command == "check":
            return cmd_check(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "emulate":
            from daemon.app.emulate import run as emulate  # noqa: PLC0415 - servers only when asked

            try:
                return asyncio.run(emulate(_settings(args), args.speed, args.recipe))
            except RecipeInvalid as exc:
                for issue in exc.issues:
                    print(str(issue), file=sys.stderr)
                return EXIT_INVALID
        if args.command == "tune":
            from daemon.app.tune_cli import run as tune  # noqa: PLC0415

            return asyncio.run(tune(args))
        if args.command == "serve":
            from daemon.app.serve import run_serve  # noqa: PLC0415 - keeps MQTT out of the others

            return run_serve(_settings(args), sim=args.sim, speed=args.speed)
        return asyncio.run(_run(args))
    except (ConfigError, ScenarioError) as exc:
        print(f"bonderd: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except DeviceError as exc:
        print(f"bonderd: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
