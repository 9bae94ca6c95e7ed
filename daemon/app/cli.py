"""`bonderd`: the command line of CONTRACT.md (run, check, export, report, runs, serve, ...)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from daemon import __version__, logs
from daemon.app.progress import ProgressView
from daemon.app.tables import print_runs
from daemon.config import ConfigError, Settings, load_settings
from daemon.recipe.load import RecipeInvalid, load_recipe_file
from daemon.report import write_report
from daemon.run.rig import ScenarioError, assemble, load_scenario
from daemon.store.export import write_csv
from daemon.store.records import DB_NAME, RunStore, UnknownRun
from daemon.store.summary import run_summary
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


EXIT_CODES = """\
exit codes:
  run      0 completed and every process condition held; 1 aborted, or a condition failed;
           2 recipe, fault scenario or configuration invalid
  check    0 every recipe valid; 2 otherwise (each error names file, field and reason)
  report, export
           0 written; 1 unknown run
  runs     0 (an empty store lists nothing)
  serve    0 stopped by SIGTERM/SIGINT after the safe state; 1 a device did not answer, or
           a safety task failed; 2 configuration invalid (systemd does not restart it)
  emulate  0 stopped; 2 configuration or recipe invalid
  tune     0 model identified; 1 the identification failed; 2 configuration invalid
  predict  0 every recipe predicted to pass; 1 a predicted failure; 2 a recipe or the
           configuration invalid
  any      2 usage error (a bad option) or an invalid configuration, naming the key"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse types it NoReturn
        self.print_usage(sys.stderr)
        self.exit(EXIT_INVALID, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return ""


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(
        prog="bonderd",
        description="Vacuum-film flip-chip bonder control: run and check recipes, the daemon, "
        "records and reports.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument("--version", action="version", version=f"bonderd {__version__}")
    p.add_argument(
        "--log-level",
        default=None,
        metavar="LEVEL",
        help="DEBUG, INFO, WARNING or ERROR (default: WARNING for run and tune, else INFO)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=text, description=text, epilog=EXIT_CODES, formatter_class=fmt
        )

    def config(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument(
            "--config",
            type=Path,
            metavar="FILE",
            help=f"configuration file (default {DEFAULT_CONFIG}, if present; "
            "docs/configuration.md)",
        )

    def data_dir(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument(
            "--data-dir",
            type=Path,
            metavar="DIR",
            help="the run store's folder (default: data_dir of the configuration)",
        )

    def sim(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--sim", action="store_true", help="use the simulated machine")
        cmd.add_argument(
            "--speed",
            type=_positive,
            default=1.0,
            metavar="X",
            help="simulated time scale (default 1 = real time; --sim only)",
        )

    def seed(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument(
            "--seed", type=int, default=0, metavar="N", help="seed of the simulated noise"
        )

    r = add("run", "run one recipe standalone, progress on the terminal")
    r.add_argument("recipe", type=Path, metavar="RECIPE", help="the recipe file (.toml)")
    config(r)
    sim(r)
    r.add_argument(
        "--faults", type=Path, metavar="FILE", help="fault scenario file (with --sim only)"
    )
    r.add_argument("--lot", default="", metavar="ID", help="lot id, for the record and report")
    r.add_argument(
        "--operator",
        default=_login(),
        metavar="NAME",
        help="who runs it, for the record and report (default: your login name)",
    )
    data_dir(r)
    seed(r)
    r.add_argument("--json", action="store_true", help="print the result document on stdout")

    c = add("check", "validate recipe files against the schema, physics and equipment limits")
    c.add_argument("recipes", type=Path, nargs="+", metavar="RECIPE", help="recipe files")
    config(c)

    e = add("export", "a run's trace on stdout, one row per sample")
    e.add_argument("run_id", metavar="RUN_ID", help="the run (bonderd runs lists them)")
    data_dir(e)
    config(e)
    e.add_argument("--format", choices=["csv"], default="csv", help="output format (csv)")

    ru = add("runs", "the recorded runs in the local store, newest first")
    data_dir(ru)
    config(ru)
    ru.add_argument("--limit", type=int, default=20, metavar="N", help="how many (default 20)")
    ru.add_argument("--json", action="store_true", help="one JSON document (scripts)")

    sv = add("serve", "the daemon: MQTT, recipe watch folder, runs (docs/mqtt.md, systemd/)")
    config(sv)
    sim(sv)
    sv.add_argument(
        "--faults",
        type=Path,
        metavar="FILE",
        help="fault scenario injected into every run (with --sim only: demonstrations, tests)",
    )

    em = add("emulate", "protocol emulators of the configured real devices on the simulated plant")
    config(em)
    em.add_argument(
        "--speed", type=_positive, default=1.0, metavar="X", help="simulated time scale"
    )
    em.add_argument(
        "--recipe",
        type=Path,
        metavar="FILE",
        help="the recipe that will run: its materials are on the chuck",
    )

    tu = add("tune", "identify the chip's thermal model with the lamps (docs/thermal-control.md)")
    config(tu)
    sim(tu)
    tu.add_argument(
        "--write", action="store_true", help="store the model as [thermal] in the --config file"
    )
    seed(tu)
    tu.add_argument(
        "--solder",
        default="217:220",
        metavar="SOLIDUS:LIQUIDUS",
        help="°C of the coupon's solder (default SAC305, 217:220)",
    )
    tu.add_argument(
        "--panel",
        metavar="RECIPE",
        type=Path,
        help="instead: identify the zone-to-site gains of this panel recipe's panel by "
        "stepping each lamp zone; print (--write: store) them as [panel_gains] (docs/panel.md)",
    )
    tu.add_argument(
        "--commissioning",
        action="store_true",
        help="with --panel: a commissioning panel with a thermocouple on every site; "
        "identify every site's gains and time constant, the site model that estimates the "
        "sites the product panel leaves without one (docs/panel.md)",
    )
    data_dir(tu)

    us = add("user", "accounts of the operator station (docs/hmi.md)")
    us_sub = us.add_subparsers(
        dest="user_command", required=True, metavar="ACTION", help="add: create an account"
    )
    ua = us_sub.add_parser(
        "add",
        help="create or replace an account; the password is read from stdin",
        description="create or replace an account; the password is read from stdin "
        "(typed twice at a terminal, else the first line)",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    ua.add_argument("name", metavar="NAME", help="the user name")
    ua.add_argument(
        "--role", required=True, choices=["operator", "engineer", "maintenance"], help="role"
    )
    ua.add_argument(
        "--users-file", type=Path, metavar="FILE", help="default: hmi.users_file of the config"
    )
    config(ua)
    pr = add("predict", "predict recipes on the machine's twin, before they run (docs/predict.md)")
    pr.add_argument("recipes", type=Path, nargs="+", metavar="RECIPE", help="recipe files")
    config(pr)
    pr.add_argument(
        "--seeds",
        type=int,
        default=0,
        metavar="N",
        help="also run on N disturbed machines (noise, chiller, leak, lamps, solder): "
        "worst margin, Cpk, yield",
    )
    pr.add_argument("--json", action="store_true", help="the prediction document on stdout")
    pr.add_argument(
        "--report", type=Path, metavar="DIR", help="write the predicted run report(s) into DIR"
    )

    rp = add("report", "write a run's report: one self-contained HTML file with plots")
    rp.add_argument("run_id", metavar="RUN_ID", help="the run (bonderd runs lists them)")
    data_dir(rp)
    config(rp)
    rp.add_argument(
        "--out", type=Path, default=Path("."), metavar="DIR", help="directory (default: here)"
    )
    return p


def cmd_runs(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not (settings.data_dir / DB_NAME).is_file():
        runs: list[dict[str, Any]] = []
    else:
        with RunStore(settings.data_dir) as store:
            runs = [
                {**run_summary(r), "holds": len(r.holds)}
                for r in store.list_runs(max(1, args.limit))
            ]
    if args.json:
        sys.stdout.write(json.dumps({"runs": runs}, indent=2, ensure_ascii=False) + "\n")
    elif runs:
        print_runs(runs)
    else:
        print(f"no runs recorded in {settings.data_dir}")
    return EXIT_OK


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
    quiet = ("run", "tune", "predict")
    level = args.log_level or ("WARNING" if args.command in quiet else "INFO")
    logs.configure(level)
    try:
        if args.command == "check":
            return cmd_check(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "runs":
            return cmd_runs(args)
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
        if args.command == "user":
            from daemon.app.hmi.user_cli import run as user_cli  # noqa: PLC0415 - argon2 when asked

            return user_cli(args, _settings(args))
        if args.command == "predict":
            from daemon.app.predict_cli import run as predict  # noqa: PLC0415

            return predict(args)
        if args.command == "serve":
            from daemon.app.serve import run_serve  # noqa: PLC0415 - keeps MQTT out of the others

            if args.faults is not None and not args.sim:
                print("bonderd serve: --faults needs --sim", file=sys.stderr)
                return EXIT_INVALID
            faults = None if args.faults is None else load_scenario(args.faults)
            return run_serve(_settings(args), sim=args.sim, speed=args.speed, scenario=faults)
        return asyncio.run(_run(args))
    except (ConfigError, ScenarioError) as exc:
        print(f"bonderd: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except DeviceError as exc:
        print(f"bonderd: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
