"""``bonderd tune``: the identification run on the machine (or --sim), then the fit.

The run is assembled exactly as ``bonderd run`` assembles one (monitor, interlocks, executor,
safe state, the I/O coupler's watchdog, and on the simulated machine the plant invariants);
only the reflow step's lamp loop is the identification experiment (daemon/thermal/tune.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

from daemon.config import ConfigError, load_settings
from daemon.recipe.load import parse_recipe
from daemon.run.rig import assemble
from daemon.thermal.fit import TuneError, identify
from daemon.thermal.loop import ChipLoop, ThermalModel
from daemon.thermal.tune import IdentificationLoop, experiment_recipe, replace_section, section_toml

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
DEFAULT_CONFIG = Path("/etc/bonderd/bonderd.toml")


def parse_solder(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(f"--solder: expected SOLIDUS:LIQUIDUS in °C, got {text!r}") from None
    if not lo <= hi:
        raise ConfigError(f"--solder: solidus {lo:g} °C above liquidus {hi:g} °C")
    return lo, hi


def write_model(path: Path, section: str) -> None:
    """Replace or add the ``[thermal]`` table, every other byte kept; atomic (rename)."""
    original = path.read_text(encoding="utf-8") if path.exists() else ""
    updated = replace_section(original, section)
    tmp = path.with_name(f".{path.name}.tune-{os.getpid()}")
    tmp.write_text(updated, encoding="utf-8")
    try:
        load_settings(tmp, required=True)  # never leave a config the daemon cannot read
    except ConfigError:
        tmp.unlink()
        raise
    os.replace(tmp, path)


async def identification_run(
    args: argparse.Namespace, melt: tuple[float, float]
) -> tuple[dict[str, Any], IdentificationLoop]:
    path = args.config
    settings = load_settings(path or DEFAULT_CONFIG, required=path is not None)
    if args.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": Path(args.data_dir)})
    loop = IdentificationLoop(melt)
    loaded = parse_recipe(
        experiment_recipe(melt, loop.duration_s()).encode(), "bonderd tune", settings.limits
    )

    def factory(_model: ThermalModel | None, _melt: tuple[float, float] | None) -> ChipLoop:
        return loop

    # An ordinary run through the interlocks; only the reflow step's lamp loop is the
    # identification experiment. No model: this run is how the machine gets one.
    rig = assemble(
        settings,
        sim=args.sim,
        speed=args.speed,
        seed=args.seed,
        thermal_model=None,
        controller_factory=factory,
    )
    rig.prepare(loaded.recipe)
    try:
        async with rig.running():
            doc = await rig.executor.run(loaded, lot_id="TUNE", operator="bonderd tune")
    finally:
        rig.close()
    violations = rig.violations(doc)
    if violations:
        raise TuneError(f"simulation invariants violated: {violations}")
    return doc, loop


async def run(args: argparse.Namespace) -> int:
    melt = parse_solder(args.solder)
    if args.write and args.config is None:
        print(
            "bonderd tune: --write needs --config FILE (the file to store it in)", file=sys.stderr
        )
        return EXIT_INVALID
    doc, loop = await identification_run(args, melt)
    if not loop.done or doc["result"] == "aborted":
        print(
            f"bonderd tune: the identification run did not finish: {doc['reason']}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        model = identify(loop.record, melt)
    except TuneError as exc:
        print(f"bonderd tune: {exc}", file=sys.stderr)
        return EXIT_FAILED
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    how = "bonderd tune --sim" if args.sim else "bonderd tune"
    section = section_toml(model, f"{stamp} {how} (run {doc['run_id']})")
    sys.stdout.write(section)
    if args.write:
        write_model(args.config, section)
        print(f"bonderd tune: [thermal] written to {args.config}", file=sys.stderr)
    return EXIT_OK
