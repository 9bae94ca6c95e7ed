"""Configuration: defaults, the TOML file, environment overrides and the errors they name."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from daemon.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    Limits,
    Settings,
    config_hash,
    load_settings,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The developer's or CI's own BONDERD_* variables must not leak into these tests.
    for name in list(os.environ):
        if name.upper().startswith("BONDERD_"):
            monkeypatch.delenv(name)
    yield


def write(tmp_path: Path, text: str, name: str = "bonderd.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problem_lines(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return exc.value.problems


def test_missing_optional_file_gives_the_machine_defaults(tmp_path: Path) -> None:
    s = load_settings(tmp_path / "absent.toml", required=False)
    assert s.equipment_id == "bonder-01"
    assert s.data_dir == Path("/var/lib/bonderd")
    assert s.watch_dir == Path("/var/lib/bonderd/watch")
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.telemetry_hz) == ("localhost", 1883, 2.0)
    assert s.devices == {}
    assert s.limits == Limits(
        chip_max_c=300,
        ramp_max_c_per_s=15,
        cool_rate_max_c_per_s=10,
        chuck_setpoint_min_c=5,
        chuck_setpoint_max_c=60,
        pressure_min_mbar=0.1,
        purge_cycles_max=10,
        step_timeout_max_s=3600,
        recipe_max_bytes=65536,
        run_duration_max_s=7200,
        o2_max_ppm_ceiling=1000,
    )


def test_missing_required_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as exc:
        load_settings(path, required=True)
    assert str(path) in str(exc.value)
    assert "not found" in str(exc.value)


def test_default_path_is_etc() -> None:
    assert Path("/etc/bonderd/bonderd.toml") == DEFAULT_CONFIG_PATH


def test_a_full_file_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        equipment_id = "bonder-07"
        data_dir = "/srv/bonderd"
        watch_dir = "/srv/bonderd/in"
        [mqtt]
        host = "mes-broker.line3"
        port = 8883
        username = "bonder-07"
        password = "s3cret"
        tls_ca = "/etc/bonderd/ca.pem"
        tls_cert = "/etc/bonderd/cert.pem"
        tls_key = "/etc/bonderd/key.pem"
        client_id = "bonder-07-daemon"
        telemetry_hz = 5
        [limits]
        chip_max_c = 280.0
        purge_cycles_max = 6
        [devices.lamps]
        driver = "modbus"
        transport = { host = "10.0.0.20", port = 502, unit = 1, timeout_s = 0.5 }
        [devices.chiller]
        """,
    )
    s = load_settings(path, required=True)
    assert s.equipment_id == "bonder-07"
    assert s.data_dir == Path("/srv/bonderd")
    assert s.mqtt.port == 8883
    assert s.mqtt.telemetry_hz == 5.0
    assert s.mqtt.password is not None and s.mqtt.password.get_secret_value() == "s3cret"
    assert s.limits.chip_max_c == 280.0
    assert s.limits.ramp_max_c_per_s == 15.0  # untouched keys keep their defaults
    assert s.devices["lamps"].driver == "modbus"
    assert s.devices["lamps"].transport == {
        "host": "10.0.0.20",
        "port": 502,
        "unit": 1,
        "timeout_s": 0.5,
    }
    assert s.devices["chiller"].driver == "sim"


@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        ("bogus = 1\n", "bogus", ""),
        ("[mqtt]\nprot = 1884\n", "mqtt.prot", " (did you mean mqtt.port?)"),
        (
            "[limits]\nchip_max_cc = 250.0\n",
            "limits.chip_max_cc",
            " (did you mean limits.chip_max_c?)",
        ),
        (
            '[devices.lamps]\ndriver = "modbus"\ntransprt = {}\n',
            "devices.lamps.transprt",
            " (did you mean devices.lamps.transport?)",
        ),
        # BaseSettings treats _-prefixed init arguments as its own options; never from a file.
        ('_env_file = "/etc/passwd"\n', "_env_file", ""),
    ],
)
def test_unknown_key_is_named(tmp_path: Path, text: str, key: str, hint: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_settings(path, required=True)
    assert problem_lines(exc) == [f"{path}: {key}: unknown key{hint}"]


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ('[mqtt]\nport = "1884"\n', "mqtt.port", "expected a whole number"),
        ("[limits]\nchip_max_c = true\n", "limits.chip_max_c", "expected a number"),
        ("[limits]\npurge_cycles_max = 3.0\n", "limits.purge_cycles_max", "decimal point"),
        ("equipment_id = 7\n", "equipment_id", "expected text"),
        ("data_dir = 1979-05-27\n", "data_dir", "dates and times"),
        ("[mqtt]\ntelemetry_hz = nan\n", "mqtt.telemetry_hz", "finite"),
        ("[mqtt]\nport = 0\n", "mqtt.port", "≥ 1"),
        (
            '[devices.lamps]\ndriver = "x"\ntransport = { a = [1] }\n',
            "devices.lamps.transport.a",
            "text or a number",
        ),
        ('[devices."tc.chip"]\ntransport = { host = "h" }\n', 'devices."tc.chip"', "'sim' device"),
        ("[limits]\nchuck_setpoint_min_c = 70.0\n", "limits", "chuck_setpoint_min_c (70)"),
    ],
)
def test_bad_value_names_file_key_and_reason(
    tmp_path: Path, text: str, key: str, fragment: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_settings(path, required=True)
    [line] = problem_lines(exc)
    assert line.startswith(f"{path}: {key}: ")
    assert fragment in line


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, 'bogus = 1\n[mqtt]\nport = "x"\n[limits]\nchip_max_c = "hot"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(path, required=True)
    assert len(problem_lines(exc)) == 3


def test_password_value_never_appears_in_errors(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nusername = "u"\npassword = 918273645\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(path, required=True)
    assert "mqtt.password" in str(exc.value)
    assert "918273645" not in str(exc.value)


def test_password_is_hidden_in_repr(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nusername = "u"\npassword = "hunter2"\n')
    assert "hunter2" not in repr(load_settings(path, required=True))


def test_not_toml_names_file_and_position(tmp_path: Path) -> None:
    path = write(tmp_path, "[mqtt]\nport 1884\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, required=True)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: not valid TOML")
    assert "line 2" in msg


def test_not_utf8_names_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "bonderd.toml"
    path.write_bytes(b'equipment_id = "b"\n[mqtt]\nhost = "caf\xe9"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(path, required=False)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: not valid UTF-8")
    assert "line 3, column 12" in msg


def test_unreadable_file_is_an_error_even_when_optional(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(tmp_path, required=False)  # a directory
    assert str(tmp_path) in str(exc.value)


def test_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, 'equipment_id = "from-file"\n[mqtt]\nport = 1885\nhost = "broker"\n')
    monkeypatch.setenv("BONDERD_MQTT__PORT", "1884")
    monkeypatch.setenv("BONDERD_EQUIPMENT_ID", "from-env")
    monkeypatch.setenv("BONDERD_LIMITS__CHIP_MAX_C", "250")
    s = load_settings(path, required=True)
    assert s.mqtt.port == 1884
    assert s.mqtt.host == "broker"  # the rest of the section still comes from the file
    assert s.equipment_id == "from-env"
    assert s.limits.chip_max_c == 250.0


def test_environment_alone_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BONDERD_DEVICES__LAMPS__DRIVER", "modbus")
    monkeypatch.setenv("BONDERD_DEVICES__LAMPS__TRANSPORT__HOST", "10.0.0.20")
    s = load_settings(tmp_path / "absent.toml", required=False)
    assert s.devices["lamps"].driver == "modbus"
    assert s.devices["lamps"].transport == {"host": "10.0.0.20"}


def test_environment_completes_a_pair_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[mqtt]\ntls_cert = "/etc/bonderd/cert.pem"\n')
    monkeypatch.setenv("BONDERD_MQTT__TLS_KEY", "/run/secrets/key.pem")
    assert load_settings(path, required=True).mqtt.tls_key == Path("/run/secrets/key.pem")


def test_bad_environment_value_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "[mqtt]\nport = 1885\n")
    monkeypatch.setenv("BONDERD_MQTT__PORT", "eighteen")
    monkeypatch.setenv("BONDERD_MQTT__PROT", "1884")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, required=True)
    assert problem_lines(exc) == [
        "environment BONDERD_MQTT__PORT: mqtt.port: wrong type: expected a whole number, "
        'found text "eighteen"',
        "environment BONDERD_MQTT__PROT: mqtt.prot: unknown key (did you mean BONDERD_MQTT__PORT?)",
    ]


def test_misspelt_environment_section_is_refused_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BONDERD_LIMTS__CHIP_MAX_C=1 must not leave the limit silently as it was."""
    path = write(tmp_path, "[limits]\nchip_max_c = 280.0\n")
    monkeypatch.setenv("BONDERD_LIMTS__CHIP_MAX_C", "1")
    monkeypatch.setenv("BONDERD_EQUIPMNT_ID", "b2")
    monkeypatch.setenv("BONDERD_NOTHING_LIKE_IT", "x")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, required=True)
    assert problem_lines(exc) == [
        "environment BONDERD_EQUIPMNT_ID: unknown variable: no configuration key "
        "'equipmnt_id' (did you mean BONDERD_EQUIPMENT_ID?)",
        "environment BONDERD_LIMTS__CHIP_MAX_C: unknown variable: no configuration key "
        "'limts.chip_max_c' (did you mean BONDERD_LIMITS__CHIP_MAX_C?)",
        "environment BONDERD_NOTHING_LIKE_IT: unknown variable: no configuration key "
        "'nothing_like_it'",
    ]
    # The same through the command line: exit 2 naming the variable.
    from daemon.app.cli import main  # noqa: PLC0415

    monkeypatch.delenv("BONDERD_EQUIPMNT_ID")
    monkeypatch.delenv("BONDERD_NOTHING_LIKE_IT")
    assert main(["check", "--config", str(path), "recipes/sac305-polyimide.toml"]) == 2


def test_tool_and_test_variables_are_not_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BONDERD_FALSE_TRIP_SEEDS", "200")
    monkeypatch.setenv("BONDERD_PYPI_SIMPLE", "https://pypi.example/simple")
    monkeypatch.setenv("bonderd_mqtt__port", "1999")  # read without regard to case
    assert load_settings(None, required=False).mqtt.port == 1999


def test_file_key_typos_get_a_hint(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        equipment_idd = "b1"
        [limits]
        chip_mx_c = 250.0
        [devices.lamps]
        drivr = "sim"
        """,
    )
    with pytest.raises(ConfigError) as exc:
        load_settings(path, required=True)
    assert sorted(problem_lines(exc)) == [
        f"{path}: devices.lamps.drivr: unknown key (did you mean devices.lamps.driver?)",
        f"{path}: equipment_idd: unknown key (did you mean equipment_id?)",
        f"{path}: limits.chip_mx_c: unknown key (did you mean limits.chip_max_c?)",
    ]


def test_tls_cert_without_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\ntls_cert = "/etc/bonderd/cert.pem"\n')
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        load_settings(path, required=True)


def test_settings_are_immutable() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.equipment_id = "other"


def test_config_hash_is_stable_and_tracks_limits(tmp_path: Path) -> None:
    a = load_settings(write(tmp_path, "[limits]\nchip_max_c = 280.0\n", "a.toml"), required=True)
    b = load_settings(write(tmp_path, "[limits]\nchip_max_c = 280\n", "b.toml"), required=True)
    c = load_settings(write(tmp_path, "[limits]\nchip_max_c = 281.0\n", "c.toml"), required=True)
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(c)
    assert len(config_hash(a)) == 64


def test_config_hash_ignores_the_password_value(tmp_path: Path) -> None:
    a = write(tmp_path, '[mqtt]\nusername = "u"\npassword = "one"\n', "a.toml")
    b = write(tmp_path, '[mqtt]\nusername = "u"\npassword = "two"\n', "b.toml")
    assert config_hash(load_settings(a, required=True)) == config_hash(
        load_settings(b, required=True)
    )


def test_config_error_takes_one_message_or_many() -> None:
    assert ConfigError("devices: no such driver").problems == ["devices: no such driver"]
    assert str(ConfigError(["a: x", "b: y"])) == "a: x\nb: y"
