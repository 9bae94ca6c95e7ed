"""Where the chip's thermal model comes from (ADR 0062).

The configuration's ``[thermal]`` section, written by ``bonderd tune --write`` on the machine
itself. The simulated machine (``--sim``) is one known machine: the model ``bonderd tune
--sim`` identified on it ships in ``config/sim.toml`` and is used when the configuration has
none. A real machine without an identified model gets no model: its heating steps refuse.
A panel's zone-to-site gains (``[panel_gains]``, ADR 0162) come the same way (ADR 0163).
"""

from __future__ import annotations

from pathlib import Path

from daemon.config import (
    ChuckModelSection,
    ConfigError,
    PanelGainsSection,
    Settings,
    ThermalSection,
    load_settings,
)
from daemon.thermal.loop import ThermalModel

SIM_CONFIG = Path(__file__).resolve().parents[2] / "config" / "sim.toml"


def model_of(section: ThermalSection) -> ThermalModel:
    return ThermalModel(**section.model_dump(exclude={"identified_at"}))


def shipped_sim_model() -> ThermalModel:
    """The model ``bonderd tune --sim --write`` stored in config/sim.toml."""
    section = load_settings(SIM_CONFIG, required=True).thermal
    if section is None:
        raise ConfigError(f"{SIM_CONFIG}: no [thermal] section: run bonderd tune --sim --write")
    return model_of(section)


def chuck_model_of(section: ChuckModelSection) -> dict[str, float]:
    """The ``[chuck_model]`` values the twin is calibrated by (ADR 0175)."""
    return {k: v for k, v in section.model_dump(exclude={"identified_at"}).items() if v is not None}


def shipped_sim_chuck() -> dict[str, float]:
    """The cold chuck step ``bonderd tune --sim`` measured on the nominal plant, stored in
    config/sim.toml beside its ``[thermal]``: the reference of the twin's chuck and chiller."""
    section = load_settings(SIM_CONFIG, required=True).chuck_model
    if section is None:
        raise ConfigError(f"{SIM_CONFIG}: no [chuck_model] section: run bonderd tune --sim")
    return chuck_model_of(section)


def configured_model(settings: Settings, *, sim: bool) -> ThermalModel | None:
    if settings.thermal is not None:
        return model_of(settings.thermal)
    return shipped_sim_model() if sim else None


def shipped_sim_panel_gains() -> PanelGainsSection | None:
    """The panel gains ``bonderd tune --panel recipes/panel-3x3-sac305.toml --sim --write``
    stored in config/sim.toml: the simulated machine commissioned for its shipped panel."""
    return load_settings(SIM_CONFIG, required=True).panel_gains


def configured_panel_gains(settings: Settings, *, sim: bool) -> PanelGainsSection | None:
    """The configuration's ``[panel_gains]``; under ``sim`` without one, the shipped ones
    (as for the thermal model: the simulated machine is one known machine)."""
    if settings.panel_gains is not None:
        return settings.panel_gains
    return shipped_sim_panel_gains() if sim else None
