"""Daemon configuration: one TOML file, overridable key by key from the environment.

Precedence, highest first: ``BONDERD_<KEY>`` / ``BONDERD_<SECTION>__<KEY>`` environment
variables, the TOML file, the defaults below. Unknown keys are errors everywhere: a misspelt
limit silently falling back to its default is how a machine ends up running outside the
envelope its owner believes it has.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict, SettingsError

DEFAULT_CONFIG_PATH = Path("/etc/bonderd/bonderd.toml")
ENV_PREFIX = "BONDERD_"
ENV_NESTED_DELIMITER = "__"
# Names that travel in MQTT topics, file names and reports.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

# BONDERD_* variables that are not configuration: read by the tools and the test suite, never
# by the daemon (docs/configuration.md). Every other BONDERD_* variable must name a key.
NOT_CONFIG_VARIABLES: frozenset[str] = frozenset(
    {
        "BONDERD_PYPI_SIMPLE",  # tools/bootstrap_uv.py: the package index to fetch uv from
        "BONDERD_CAMPAIGN",  # tests/test_fault_campaign.py
        "BONDERD_FALSE_TRIP_SEEDS",  # tests/test_false_trips.py
        "BONDERD_FUZZ_EXAMPLES",  # tests/test_mqtt_fuzz.py, tests/test_watch_folder.py
        "BONDERD_HIL_TIMING",  # hil_tests
    }
)

# Values under these keys never appear in error messages: they end up in journald and on
# operator terminals.
_SECRET_KEYS = frozenset({"password"})


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file, the key path and why.

    ``problems`` holds one line per problem, already formatted as ``source: key: reason``.
    """

    def __init__(self, problems: str | Sequence[str]) -> None:
        # A str is a Sequence[str] too; without this a single message splits into characters.
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class MqttSettings(_Section):
    host: Annotated[str, Field(min_length=1)] = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    # SecretStr keeps the password out of reprs, logs and config_hash().
    password: SecretStr | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_id: str | None = None
    # Capped so that a typo cannot flood the line broker with telemetry.
    telemetry_hz: Annotated[float, Field(gt=0.0, le=50.0)] = 2.0

    @model_validator(mode="after")
    def _pairs(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        if self.password is not None and self.username is None:
            raise ValueError("password is set but username is not")
        return self


class HmiSettings(_Section):
    """The operator station: the web page `bonderd serve` offers at the machine (ADR 0150)."""

    enabled: bool = True
    # Loopback by default: the station is for the screen at the machine; serving the plant
    # network is a decision someone takes in the file (with tls_cert / tls_key).
    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    # 0: any free port (the URL the daemon prints and logs names it; the tests use this).
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    anonymous_view: bool = True  # the read-only live view needs no login
    users_file: Path = Path("/etc/bonderd/hmi-users.json")
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @model_validator(mode="after")
    def _pairs(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        return self


class Limits(_Section):
    """The equipment's hard limits. No recipe may exceed them; validation refuses it first."""

    chip_max_c: Annotated[float, Field(gt=0.0, le=600.0)] = 300.0
    ramp_max_c_per_s: Annotated[float, Field(gt=0.0)] = 15.0
    cool_rate_max_c_per_s: Annotated[float, Field(gt=0.0)] = 10.0
    chuck_setpoint_min_c: float = 5.0
    chuck_setpoint_max_c: float = 60.0
    pressure_min_mbar: Annotated[float, Field(gt=0.0)] = 0.1
    purge_cycles_max: Annotated[int, Field(ge=1)] = 10
    step_timeout_max_s: Annotated[float, Field(gt=0.0)] = 3600.0
    # Below a kilobyte no real recipe fits, so a smaller value can only be a mistake.
    recipe_max_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 65536
    run_duration_max_s: Annotated[float, Field(gt=0.0)] = 7200.0
    o2_max_ppm_ceiling: Annotated[float, Field(gt=0.0)] = 1000.0
    # Interlock limits (daemon/safety/interlocks.py, docs/safety.md). Each sits outside what a clean
    # run of a shipped recipe reaches, with the margin measured in tests/test_false_trips.py.
    chip_over_peak_c: Annotated[float, Field(gt=0.0)] = 20.0  # trip above recipe peak max + this
    # Lamps held off (suspended) this close below Tg − margin.
    component_approach_c: Annotated[float, Field(gt=0.0)] = 10.0
    component_hysteresis_c: Annotated[float, Field(gt=0.0)] = 5.0
    chuck_max_c: Annotated[float, Field(gt=0.0)] = 70.0
    tc_min_c: float = -30.0
    tc_max_c: Annotated[float, Field(gt=0.0)] = 450.0
    tc_stale_s: Annotated[float, Field(gt=0.0)] = 0.5
    tc_stuck_s: Annotated[float, Field(gt=0.0)] = 2.0
    tc_disagree_max_c: Annotated[float, Field(gt=0.0)] = 15.0
    pressure_rise_max_mbar: Annotated[float, Field(gt=0.0)] = 5.0
    o2_stale_s: Annotated[float, Field(gt=0.0)] = 6.0
    heat_gain_window_s: Annotated[float, Field(gt=0.0)] = 3.0
    heat_gain_min_pct: Annotated[float, Field(gt=0.0, le=100.0)] = 80.0
    heat_gain_min_rise_c: Annotated[float, Field(gt=0.0)] = 1.0
    lamp_uncommanded_pct: Annotated[float, Field(gt=0.0)] = 10.0
    heat_without_lamps_rise_c: Annotated[float, Field(gt=0.0)] = 5.0
    z_force_max_n: Annotated[float, Field(gt=0.0)] = 5.0
    # Lead lift, release, encapsulation (docs/recipes.md). The stage, UV source, dispenser and
    # heating circulator as installed; recipes are validated against them.
    z_travel_um: Annotated[float, Field(gt=0.0)] = 10_000.0
    z_speed_max_um_s: Annotated[float, Field(gt=0.0)] = 1000.0
    z_accel_max_um_s2: Annotated[float, Field(gt=0.0)] = 20_000.0
    # What the drive uses when a recipe gives no acceleration (the drive's configuration).
    z_accel_default_um_s2: Annotated[float, Field(gt=0.0)] = 2000.0
    # Interlock: measured Z position this far from the commanded motion profile trips.
    z_following_error_max_um: Annotated[float, Field(gt=0.0)] = 50.0
    # Interlock: the stage reports busy with a move outstanding and has not moved this long.
    z_stall_s: Annotated[float, Field(gt=0.0)] = 1.0
    uv_irradiance_max_mw_cm2: Annotated[float, Field(gt=0.0)] = 200.0
    dispense_pressure_max_kpa: Annotated[float, Field(gt=0.0)] = 700.0
    dispense_shot_max_s: Annotated[float, Field(gt=0.0)] = 60.0
    # The temperature-control unit as a heating circulator (heat release, cure): highest
    # setpoint, and the chuck's trip limit while a lead-lift recipe heats it.
    chuck_heat_setpoint_max_c: Annotated[float, Field(gt=0.0)] = 180.0
    chuck_heated_max_c: Annotated[float, Field(gt=0.0)] = 190.0
    snapshot_stale_s: Annotated[float, Field(gt=0.0)] = 1.0

    @model_validator(mode="after")
    def _chuck_range(self) -> Self:
        if self.chuck_setpoint_min_c >= self.chuck_setpoint_max_c:
            raise ValueError(
                f"chuck_setpoint_min_c ({self.chuck_setpoint_min_c:g}) must be below "
                f"chuck_setpoint_max_c ({self.chuck_setpoint_max_c:g})"
            )
        return self


def _transport_value(value: object) -> str | int | float:
    # One check instead of a str|int|float union: a union reports one error per member,
    # which reads as three contradictory complaints about one key.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"must be text or a number, found {_toml_type(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number: nan and inf are not accepted")
    return value


TransportValue = Annotated[str | int | float, PlainValidator(_transport_value)]


class DeviceConfig(_Section):
    """Which driver serves a device, and how to reach it. Drivers validate their transport."""

    driver: Annotated[str, Field(min_length=1)] = "sim"
    transport: dict[str, TransportValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sim_has_no_transport(self) -> Self:
        if self.driver == "sim" and self.transport:
            raise ValueError("a 'sim' device has no transport; remove it or name a real driver")
        return self


class ThermalSection(_Section):
    """The chip's identified thermal model, written by ``bonderd tune --write`` (ADR 0061).

    Absent = not identified: heating steps use the nameplate model and say so (ADR 0062).
    """

    gain_c_s_per_pct: Annotated[float, Field(gt=0.0)]
    loss_per_s: Annotated[float, Field(gt=0.0)]
    molten_loss_per_s: Annotated[float, Field(ge=0.0)]
    latent_heat_k: Annotated[float, Field(ge=0.0)]
    filament_tau_s: Annotated[float, Field(gt=0.0)]
    tc_tau_s: Annotated[float, Field(gt=0.0)]
    radiation_c_s_per_1e10_k4: Annotated[float, Field(ge=0.0)] = 0.0
    identified_at: str = ""  # when and how: "2026-11-22T06:50:00Z bonderd tune --sim"


class ChuckModelSection(_Section):
    """The chuck and its chiller as ``bonderd tune`` saw them in its cold chuck step
    (daemon/thermal/chuck_fit.py, ADR 0175). Optional: without it the twin's chuck and
    chiller are the nominal ones; the machine's own runs never read it."""

    cool_rate_k_s: Annotated[float, Field(gt=0.0)]  # the chuck cooling, chiller at capacity
    lag_s: Annotated[float, Field(gt=0.0)]  # the chuck behind its coolant
    # The component's couplings per its heat capacity, from the chip experiment's phase A
    # (daemon/thermal/component_fit.py, ADR 0176); absent: the twin's component is nominal.
    component_from_chip_per_s: Annotated[float, Field(gt=0.0)] | None = None
    component_to_chuck_per_s: Annotated[float, Field(gt=0.0)] | None = None
    identified_at: str = ""


class PanelGainsSection(_Section):
    """A panel's zone-to-site gain matrix (°C per % of each zone at each instrumented site),
    identified by stepping each zone (docs/panel.md, ADR 0162). With it, a recipe whose
    panel instruments these channels runs on the zone loop; without it, on equal power.
    Identified on a commissioning panel with a thermocouple on every site (``bonderd tune
    --panel RECIPE --commissioning``) it has a row for every site and each site's time
    constant ``tau_s``: the site model whose observer estimates the sites a product panel
    leaves without a thermocouple (ADR 0166)."""

    channels: Annotated[
        list[Annotated[str, Field(pattern=r"^(chip|site_[0-9]{1,3})$")]], Field(min_length=1)
    ]
    gains_c_per_pct: Annotated[list[list[float]], Field(min_length=1)]
    # Each channel's first-order time constant, s (the site model); empty: gains only.
    tau_s: list[Annotated[float, Field(gt=0.0)]] = []
    identified_at: str = ""

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.channels[0] != "chip":
            raise ValueError("channels: the first is the control site's, 'chip'")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels: a channel is listed twice")
        if len(self.gains_c_per_pct) != len(self.channels):
            raise ValueError("gains_c_per_pct: one row per channel")
        if len({len(r) for r in self.gains_c_per_pct}) != 1 or not self.gains_c_per_pct[0]:
            raise ValueError("gains_c_per_pct: every row one gain per lamp zone")
        if self.tau_s and len(self.tau_s) != len(self.channels):
            raise ValueError("tau_s: one time constant per channel")
        return self


class LibrarySettings(_Section):
    """The recipe library's twin gate (docs/predict.md "The twin gate", ADR 0172)."""

    # off: recipes are accepted as validated; warn: every new recipe version is predicted on
    # the twin and accepted with its prediction; refuse: a predicted failure is rejected,
    # and a recipe predicted to fail does not start without an engineer's override.
    twin_gate: Literal["off", "warn", "refuse"] = "warn"
    # Disturbed seeds per gate prediction (the `yield` of RecipeAccepted.prediction; null
    # at 0). Each is about a second of a nice-19 core before the recipe is accepted.
    twin_gate_seeds: Annotated[int, Field(ge=0, le=100)] = 0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
    )

    equipment_id: Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)] = (
        "bonder-01"
    )
    data_dir: Path = Path("/var/lib/bonderd")
    watch_dir: Path = Path("/var/lib/bonderd/watch")
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    hmi: HmiSettings = Field(default_factory=HmiSettings)
    limits: Limits = Field(default_factory=Limits)
    devices: dict[str, DeviceConfig] = Field(default_factory=dict)
    thermal: ThermalSection | None = None
    chuck_model: ChuckModelSection | None = None
    panel_gains: PanelGainsSection | None = None
    library: LibrarySettings = Field(default_factory=LibrarySettings)


# A plain-model mirror of Settings for checking the file alone: validating a BaseSettings goes
# through its __init__, which drops `strict` and mixes the environment in.
_MIRRORED_FIELDS: dict[str, Any] = {n: (f.annotation, f) for n, f in Settings.model_fields.items()}
_FILE_SCHEMA: type[BaseModel] = create_model(
    "BonderdConfigFile",
    __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
    **_MIRRORED_FIELDS,
)


def load_settings(path: Path | None, *, required: bool) -> Settings:
    """Read the configuration file (``path`` or the default) and apply environment overrides.

    With ``required`` False a missing file means "defaults plus environment"; a file that
    exists but cannot be read or parsed is an error either way, never a silent fallback.
    """
    file = path if path is not None else DEFAULT_CONFIG_PATH
    file_data = _read_toml(file, required=required)
    # A misspelt section (BONDERD_LIMTS__CHIP_MAX_C) matches no field, and pydantic-settings
    # would pass over it in silence: refused here, as an unknown key in the file is.
    unknown_env = unknown_environment(os.environ)
    if unknown_env:
        raise ConfigError(unknown_env)
    try:
        env_data: dict[str, Any] = EnvSettingsSource(Settings)()
    except SettingsError as exc:
        raise ConfigError([f"environment ({ENV_PREFIX}*): {exc}"]) from exc

    # The file is checked on its own and strictly, in JSON mode so that paths may be TOML
    # strings: TOML values are typed, so `port = "1883"` or `telemetry_hz = true` are mistakes
    # worth stopping for. Environment values are strings by nature and are coerced below.
    # Cross-field rules wait for the merge: the environment may supply the other half.
    try:
        _FILE_SCHEMA.model_validate_json(json.dumps(file_data), strict=True)
    except ValidationError as exc:
        type_errors = [e for e in exc.errors(include_url=False) if e["type"] != "value_error"]
        if type_errors:
            raise ConfigError(_problems(type_errors, lambda _loc: str(file))) from exc

    def origin(loc: tuple[int | str, ...]) -> str:
        var = ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(p) for p in loc).upper()
        covered = _covers(env_data, loc)
        if covered == "value":
            return f"environment {var}"
        if covered == "table":
            return f"{file} with environment overrides {var}{ENV_NESTED_DELIMITER}*"
        return str(file)

    # Passing the merged values as init arguments keeps "environment beats file" without
    # changing the source order for anyone constructing Settings directly.
    try:
        return Settings(**_deep_merge(file_data, env_data))
    except ValidationError as exc:
        raise ConfigError(_problems(exc.errors(include_url=False), origin)) from exc


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """One problem line per ``BONDERD_*`` variable whose section or key does not exist.

    Keys inside a known section (``BONDERD_MQTT__PROT``) are left to the model, which names
    them as unknown keys with the same hint. Names are matched without regard to case, as
    pydantic-settings reads them.
    """
    problems = []
    top = _keys_at(())
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in NOT_CONFIG_VARIABLES:
            continue
        parts = upper.removeprefix(ENV_PREFIX).lower().split(ENV_NESTED_DELIMITER)
        if parts[0] in top:
            continue
        hint = ""
        close = did_you_mean(parts[0], top)
        if close is not None:
            rest = parts[1:]
            below = _keys_at((close,))
            if rest and below:
                rest = [did_you_mean(rest[0], below) or rest[0], *rest[1:]]
            hint = f" (did you mean {_env_name((close, *rest))}?)"
        problems.append(
            f"environment {name}: unknown variable: no configuration key "
            f"'{toml_key_path(parts)}'{hint}"
        )
    return problems


def did_you_mean(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate closest to a misspelt ``word``, if one is close enough."""
    close = difflib.get_close_matches(word.lower(), list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def _env_name(loc: Sequence[int | str]) -> str:
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(p) for p in loc).upper()


def _model_of(annotation: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _keys_at(loc: Sequence[int | str]) -> list[str]:
    """The keys the configuration allows in the table at ``loc`` (empty: not a fixed table).

    ``devices.<name>`` is a table of any name, so ``devices.lamps`` has DeviceConfig's keys.
    """
    node: Any = Settings
    for part in loc:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field_info = node.model_fields.get(str(part))
            if field_info is None:
                return []
            node = _model_of(field_info.annotation)
        elif typing.get_origin(node) is dict:
            node = _model_of(typing.get_args(node)[1])
        else:
            return []
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    return []


def serve_path_problems(settings: Settings) -> list[str]:
    """What `bonderd serve` cannot start with, one ``key (env var): path: reason`` each:
    folders that are files, TLS files that are missing, not files or unreadable."""
    problems: list[str] = []
    for key in ("data_dir", "watch_dir"):
        path: Path = getattr(settings, key)
        if path.exists() and not path.is_dir():
            problems.append(
                f"{key} ({_env_name(key.split('.'))}): {path}: is not a folder (a file is there); "
                "set it to a folder the daemon may create or write"
            )
    tls_keys = [("mqtt", k) for k in ("tls_ca", "tls_cert", "tls_key")]
    if settings.hmi.enabled:
        tls_keys += [("hmi", "tls_cert"), ("hmi", "tls_key")]
    for section, key in tls_keys:
        tls: Path | None = getattr(getattr(settings, section), key)
        if tls is None:
            continue
        name = f"{section}.{key}"
        if not tls.exists():
            problems.append(f"{name} ({_env_name(name.split('.'))}): {tls}: no such file")
        elif not tls.is_file():
            problems.append(f"{name} ({_env_name(name.split('.'))}): {tls}: not a regular file")
        else:
            try:
                with tls.open("rb"):
                    pass
            except OSError as exc:
                problems.append(
                    f"{name} ({_env_name(name.split('.'))}): {tls}: cannot be read: {exc.strerror}"
                )
    return problems


def config_hash(settings: Settings) -> str:
    """sha256 of a canonical JSON dump, recorded with every run for traceability.

    Secrets are masked by their type, so changing the broker password does not change the
    hash; everything that can influence a process does. The operator station's section
    cannot (where a page is served, who may look), so it is left out: runs recorded before
    and after it existed keep comparable hashes (ADR 0150).
    """
    canonical = json.dumps(
        settings.model_dump(mode="json", exclude={"hmi"}),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def describe_pydantic_error(err: ErrorDetails, *, redact: bool = False) -> str:
    """A pydantic error as a sentence a process or line engineer understands.

    Shared by configuration and recipe loading so both speak the same language; ``redact``
    keeps the offending value out of the text.
    """
    kind = err["type"]
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    value = err["input"]
    found = "" if redact else f" (found {_show(value)})"
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "finite_number":
        return "must be a finite number: nan and inf are not accepted"
    if kind in _EXPECTED:
        shown = "" if redact or isinstance(value, dict | list) else f" {_show(value)}"
        reason = f"wrong type: expected {_EXPECTED[kind]}, found {_toml_type(value)}{shown}"
        if kind.startswith("int") and isinstance(value, float) and value.is_integer():
            reason += "; write whole numbers without a decimal point"
        return reason
    if kind in _BOUNDS:
        word, key = _BOUNDS[kind]
        limit = ctx.get(key)
        if kind == "greater_than_equal" and limit == 0:
            return f"cannot be negative{found}"
        return f"must be {word} {_show(limit)}{found}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"needs at least {n} entr{'y' if n == 1 else 'ies'}"
    if kind == "too_long":
        return f"has more than {ctx.get('max_length')} entries"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else str(err["msg"])
    if kind == "string_too_long":
        return f"is longer than {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == NAME_PATTERN:
            return (
                "may contain only letters, digits, '_', '.' and '-', "
                f"starting with a letter or digit{found}"
            )
        return f"does not have the required form {ctx.get('pattern')}{found}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}{found}"
    if kind in {"value_error", "assertion_error"}:
        return str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return str(err["msg"])


_EXPECTED = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "string_type": "text (a quoted string)",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "path_type": "a path (a quoted string)",
}

_BOUNDS = {
    "greater_than": ("greater than", "gt"),
    "greater_than_equal": ("≥", "ge"),
    "less_than": ("less than", "lt"),
    "less_than_equal": ("≤", "le"),
}


def _toml_type(value: object) -> str:
    """The TOML name of a parsed value's type, as an engineer editing the file sees it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, dt.date | dt.time):
        return "a date/time"
    return type(value).__name__


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # 3.0 must stay visibly a float when the complaint is that it is one.
        return f"{value:.1f}" if value.is_integer() and abs(value) < 1e15 else f"{value:g}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return json.dumps(shown, ensure_ascii=False)
    if isinstance(value, dict | list):
        return _toml_type(value)
    return str(value)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key_path(parts: Sequence[int | str]) -> str:
    """``("steps", 3, "peak_window_c", "max")`` -> ``steps[3].peak_window_c.max``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if _BARE_KEY.match(part) else json.dumps(part, ensure_ascii=False)
            out += f".{key}" if out else key
    return out


def _read_toml(file: Path, *, required: bool) -> dict[str, Any]:
    try:
        data = file.read_bytes()
    except FileNotFoundError as exc:
        if not required:
            return {}
        raise ConfigError([f"{file}: configuration file not found"]) from exc
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read the configuration file: {exc.strerror}"]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(data, exc.start)
        raise ConfigError(
            [f"{file}: not valid UTF-8 at line {line}, column {col}; save it as UTF-8"]
        ) from exc
    try:
        doc = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{file}: not valid TOML: {exc}"]) from exc
    dates = list(_date_values(doc, ()))
    if dates:
        raise ConfigError(
            [
                f"{file}: {toml_key_path(loc)}: wrong type: dates and times are not used in the "
                "configuration (quote the value if it is text)"
                for loc in dates
            ]
        )
    return doc


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a byte offset."""
    start = data.rfind(b"\n", 0, offset) + 1
    line = data.count(b"\n", 0, offset) + 1
    col = len(data[start:offset].decode("utf-8", errors="replace")) + 1
    return line, col


def _date_values(node: object, loc: tuple[int | str, ...]) -> list[tuple[int | str, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _date_values(v, (*loc, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _date_values(v, (*loc, i))]
    if isinstance(node, dt.date | dt.time):
        return [loc]
    return []


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = _deep_merge(below, value)
        else:
            merged[key] = value
    return merged


def _covers(data: Mapping[str, Any], loc: tuple[int | str, ...]) -> Literal["value", "table", ""]:
    """Whether ``data`` set the value at ``loc`` (or a value containing it), or part of it."""
    node: object = data
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return ""
        node = node[part]
        if not isinstance(node, Mapping):
            return "value"
    return "table" if loc else ""


def _problems(
    errors: Sequence[ErrorDetails], origin: Callable[[tuple[int | str, ...]], str]
) -> list[str]:
    problems = []
    for err in errors:
        loc = tuple(err["loc"])
        redact = any(isinstance(p, str) and p in _SECRET_KEYS for p in loc)
        path = toml_key_path(loc) or "(top level)"
        where = origin(loc)
        reason = describe_pydantic_error(err, redact=redact)
        if err["type"] == "extra_forbidden" and loc:
            close = did_you_mean(str(loc[-1]), _keys_at(loc[:-1]))
            if close is not None:
                near = (*loc[:-1], close)
                shown = _env_name(near) if where.startswith("environment") else toml_key_path(near)
                reason += f" (did you mean {shown}?)"
        problems.append(f"{where}: {path}: {reason}")
    return problems
