"""The real drivers' transports in the config: bad input names the key and the reason."""

from __future__ import annotations

import pytest

from daemon.config import ConfigError, DeviceConfig, Settings
from daemon.run.rig import build_machine
from drivers.clock import ManualClock
from drivers.gefran.driver import Gfx4Lamps
from drivers.nordson.driver import UltimusDispenser
from drivers.omnicure.driver import OmniCureS2000
from drivers.zaber.driver import ZaberStage

WAGO = DeviceConfig(driver="wago-750-352", transport={"host": "127.0.0.1", "port": 15020})


def settings(**devices: DeviceConfig) -> Settings:
    return Settings(devices=devices)


def problems(s: Settings) -> str:
    with pytest.raises(ConfigError) as exc:
        build_machine(s, ManualClock(), sim=False)
    return str(exc.value)


def test_lift_devices_build_real_drivers() -> None:
    s = settings(
        dio=WAGO,
        zstage=DeviceConfig(
            driver="zaber-ascii",
            transport={"url": "socket://127.0.0.1:1", "um_per_microstep": 0.1905},
        ),
        uv=DeviceConfig(
            driver="omnicure-s2000",
            transport={"url": "socket://127.0.0.1:2", "irradiance_full_mw_cm2": 180.0},
        ),
        dispenser=DeviceConfig(driver="ultimus", transport={"url": "socket://127.0.0.1:3"}),
        lamps=DeviceConfig(driver="gfx4-ir", transport={"host": "127.0.0.1", "node": 3}),
    )
    m = build_machine(s, ManualClock(), sim=False).machine
    assert isinstance(m.zstage, ZaberStage)
    assert isinstance(m.uv, OmniCureS2000)
    assert isinstance(m.dispenser, UltimusDispenser)
    assert isinstance(m.lamps, Gfx4Lamps)


def test_stage_without_its_microstep_or_a_uv_without_calibration_is_refused() -> None:
    text = problems(
        settings(
            dio=WAGO,
            zstage=DeviceConfig(driver="zaber-ascii", transport={"url": "socket://h:1"}),
            uv=DeviceConfig(driver="omnicure-s2000", transport={"url": "socket://h:2"}),
        )
    )
    assert "devices.zstage.transport.um_per_microstep" in text
    assert "devices.uv.transport.irradiance_full_mw_cm2" in text


def test_load_cell_on_the_wago_needs_the_wago() -> None:
    text = problems(
        settings(
            zstage=DeviceConfig(
                driver="zaber-ascii",
                transport={"url": "socket://h:1", "um_per_microstep": 0.1},
            )
        )
    )
    assert "devices.zstage.transport.force_source" in text and "wago-750-352" in text


def test_out_of_range_and_unknown_transport_keys_are_refused() -> None:
    text = problems(
        settings(
            dio=WAGO,
            dispenser=DeviceConfig(
                driver="ultimus", transport={"url": "socket://h:3", "pressure_max_kpa": 900.0}
            ),
            lamps=DeviceConfig(driver="gfx4-ir", transport={"host": "h", "base_node": 1}),
        )
    )
    assert "devices.dispenser.transport.pressure_max_kpa" in text
    assert "devices.lamps.transport.base_node" in text


def test_misspelt_transport_key_gets_a_hint() -> None:
    s = settings(lamps=DeviceConfig(driver="gfx4-ir", transport={"host": "h", "baudrat": 9600}))
    assert "devices.lamps.transport.baudrat: unknown key (did you mean baudrate?)" in problems(s)
