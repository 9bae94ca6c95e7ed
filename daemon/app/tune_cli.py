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

from daemon.config import ConfigError, Settings, load_settings
from daemon.recipe.load import LoadedRecipe, load_recipe_file, parse_recipe
from daemon.recipe.model import Panel, VacuumFilmBondRecipe
from daemon.run.rig import assemble
from daemon.thermal.chuck_fit import CHUCK_SETPOINT_C, ChuckTap, identify_chuck
from daemon.thermal.component_fit import identify_component
from daemon.thermal.fit import TuneError, identify
from daemon.thermal.loop import ChipLoop, ControllerFactory, ThermalModel
from daemon.thermal.panel_tune import TuneError as PanelTuneError
from daemon.thermal.panel_tune import ZoneStepLoop, gains_section_toml
from daemon.thermal.tune import (
    CHUCK_STEP_INDEX,
    EXPERIMENT_CHUCK_C,
    IdentificationLoop,
    chuck_recipe,
    chuck_section_toml,
    experiment_recipe,
    replace_section,
    section_toml,
)
from drivers.protocols import site_channel

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


def write_model(path: Path, section: str, header: str = "[thermal]") -> None:
    """Replace or add the ``header`` table, every other byte kept; atomic (rename)."""
    original = path.read_text(encoding="utf-8") if path.exists() else ""
    updated = replace_section(original, section, header)
    tmp = path.with_name(f".{path.name}.tune-{os.getpid()}")
    tmp.write_text(updated, encoding="utf-8")
    try:
        load_settings(tmp, required=True)  # never leave a config the daemon cannot read
    except ConfigError:
        tmp.unlink()
        raise
    os.replace(tmp, path)


def _settings(args: argparse.Namespace) -> Settings:
    path = args.config
    settings = load_settings(path or DEFAULT_CONFIG, required=path is not None)
    if args.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": Path(args.data_dir)})
    return settings


async def _run_on_rig(
    args: argparse.Namespace,
    loaded: LoadedRecipe,
    *,
    thermal_model: ThermalModel | None,
    factory: ControllerFactory | None = None,
    tap_step: int | None = None,
) -> tuple[dict[str, Any], ChuckTap | None]:
    """One run through the interlocks, assembled as ``bonderd run`` assembles one."""
    settings = _settings(args)
    rig = assemble(
        settings,
        sim=args.sim,
        speed=args.speed,
        seed=args.seed,
        thermal_model=thermal_model,
        controller_factory=factory,
    )
    rig.prepare(loaded.recipe)
    tap = None
    if tap_step is not None:
        # The chuck step's snapshots, for the chuck and chiller (daemon/thermal/chuck_fit.py).
        tap = ChuckTap(rig.monitor, tap_step, CHUCK_SETPOINT_C)
        rig.executor.subscribe(tap.on_event)
    try:
        async with rig.running():
            doc = await rig.executor.run(loaded, lot_id="TUNE", operator="bonderd tune")
    finally:
        rig.close()
    violations = rig.violations(doc)
    if violations:
        raise TuneError(f"simulation invariants violated: {violations}")
    return doc, tap


async def identification_run(
    args: argparse.Namespace, melt: tuple[float, float]
) -> tuple[dict[str, Any], IdentificationLoop]:
    loop = IdentificationLoop(melt)
    loaded = parse_recipe(
        experiment_recipe(melt, loop.duration_s()).encode(), "bonderd tune", _settings(args).limits
    )

    def factory(_model: ThermalModel | None, _melt: tuple[float, float] | None) -> ChipLoop:
        return loop

    # An ordinary run through the interlocks; only the reflow step's lamp loop is the
    # identification experiment. No model: this run is how the machine gets one.
    doc, _ = await _run_on_rig(args, loaded, thermal_model=None, factory=factory)
    return doc, loop


async def chuck_run(
    args: argparse.Namespace, melt: tuple[float, float], model: ThermalModel
) -> tuple[dict[str, Any], ChuckTap]:
    """The second run: the cold chuck step, then a short bond on the model just identified
    (a run of its own: the chip's experiment stays on the chuck it was established on)."""
    loaded = parse_recipe(
        chuck_recipe(melt).encode(), "bonderd tune (chuck)", _settings(args).limits
    )
    doc, tap = await _run_on_rig(args, loaded, thermal_model=model, tap_step=CHUCK_STEP_INDEX)
    assert tap is not None
    return doc, tap


def _panel_text(panel: Panel, *, every_site: bool = False) -> str:
    """The recipe's ``[panel]`` table again, for the experiment recipe; ``every_site``:
    with a thermocouple on every site (the commissioning panel)."""
    instrumented = list(range(panel.sites)) if every_site else list(panel.instrumented_sites)
    lines = [
        "[panel]",
        f"rows = {panel.rows}",
        f"cols = {panel.cols}",
        f"pitch_mm = {panel.pitch_mm!r}",
        f"chip_mm = {panel.chip_mm!r}",
        f"instrumented = {instrumented!r}",
    ]
    if panel.solder_mg is not None:
        lines.append(f"solder_mg = {list(panel.solder_mg)!r}")
    return "\n".join(lines) + "\n"


async def panel_run(args: argparse.Namespace) -> int:
    """``bonderd tune --panel RECIPE``: the zone-stepping experiment on that recipe's panel."""
    path = args.config
    settings = load_settings(path or DEFAULT_CONFIG, required=path is not None)
    if args.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": Path(args.data_dir)})
    product = load_recipe_file(args.panel, settings.limits).recipe
    panel = product.panel if isinstance(product, VacuumFilmBondRecipe) else None
    if panel is None or panel.sites == 1:
        print(f"bonderd tune: {args.panel}: no [panel] of more than one site", file=sys.stderr)
        return EXIT_INVALID
    solder = product.materials.solder
    melt = (solder.solidus_c, solder.liquidus_c)
    commissioning = bool(getattr(args, "commissioning", False))
    sites = range(panel.sites) if commissioning else panel.instrumented_sites
    ref = panel.reference_site
    channels = [site_channel(i, ref) for i in sites]
    channels.sort(key=lambda ch: ch != "chip")  # the control site's first
    loops: list[ZoneStepLoop] = []

    def factory(_model: ThermalModel | None, _melt: tuple[float, float] | None) -> ChipLoop:
        return loops[0]

    rig = assemble(
        settings, sim=args.sim, speed=args.speed, seed=args.seed, controller_factory=factory
    )
    loops.append(ZoneStepLoop(channels, rig.machine.lamps.zones))
    text = (
        experiment_recipe(melt, loops[0].duration_s())
        + "\n"
        + _panel_text(panel, every_site=commissioning)
    )
    loaded = parse_recipe(text.encode(), "bonderd tune --panel", settings.limits)
    rig.prepare(loaded.recipe)
    try:
        async with rig.running():
            doc = await rig.executor.run(loaded, lot_id="TUNE", operator="bonderd tune")
    finally:
        rig.close()
    loop = loops[0]
    violations = rig.violations(doc)
    if violations or not loop.done or doc["result"] == "aborted":
        why = f"simulation invariants violated: {violations}" if violations else doc["reason"]
        print(f"bonderd tune: the panel experiment did not finish: {why}", file=sys.stderr)
        return EXIT_FAILED
    try:
        gains = loop.gains()
        taus = loop.time_constants() if commissioning else []
    except PanelTuneError as exc:
        print(f"bonderd tune: {exc}", file=sys.stderr)
        return EXIT_FAILED
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    how = "bonderd tune --panel" + (" --commissioning" if commissioning else "")
    how += " --sim" if args.sim else ""
    section = gains_section_toml(channels, gains, f"{stamp} {how} (run {doc['run_id']})", taus)
    sys.stdout.write(section)
    if args.write:
        write_model(args.config, section, "[panel_gains]")
        print(f"bonderd tune: [panel_gains] written to {args.config}", file=sys.stderr)
    return EXIT_OK


async def run(args: argparse.Namespace) -> int:
    if args.write and args.config is None:
        print(
            "bonderd tune: --write needs --config FILE (the file to store it in)", file=sys.stderr
        )
        return EXIT_INVALID
    if getattr(args, "panel", None) is not None:
        return await panel_run(args)
    melt = parse_solder(args.solder)
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
    chuck_doc, tap = await chuck_run(args, melt, model)
    if chuck_doc["result"] == "aborted":
        print(f"bonderd tune: the chuck run did not finish: {chuck_doc['reason']}", file=sys.stderr)
        return EXIT_FAILED
    try:
        chuck = identify_chuck(tap.record)
        component = identify_component(loop.record, EXPERIMENT_CHUCK_C)
    except TuneError as exc:
        print(f"bonderd tune: {exc}", file=sys.stderr)
        return EXIT_FAILED
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    how = "bonderd tune --sim" if args.sim else "bonderd tune"
    section = section_toml(model, f"{stamp} {how} (run {doc['run_id']})")
    chuck_section = chuck_section_toml(
        chuck, component, f"{stamp} {how} (run {chuck_doc['run_id']})"
    )
    sys.stdout.write(section + "\n" + chuck_section)
    if args.write:
        write_model(args.config, section)
        write_model(args.config, chuck_section, "[chuck_model]")
        print(f"bonderd tune: [thermal], [chuck_model] written to {args.config}", file=sys.stderr)
    return EXIT_OK
