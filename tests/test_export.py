"""CSV export of a run's trace."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

from daemon.store.export import write_csv
from daemon.store.records import RunStore
from daemon.store.trace import Sample

NOT_MEASURED = [""] * 5  # the lead-lift columns of a bond run


def row(t: float, **kw: object) -> Sample:
    fields: dict[str, object] = {
        "t_s": t,
        "step": "reflow",
        "setpoint_c": 180.0,
        "temps_c": {"chip": 181.23456, "component": 92.1, "chuck": 19.996},
        "pressure_mbar": 4.56789,
        "o2_ppm": 2.5,
        "lamp_pct": 41.666,
        "z_um": None,
    }
    fields.update(kw)
    return Sample(**fields)  # type: ignore[arg-type]


def test_header_and_rows() -> None:
    out = io.StringIO()
    n = write_csv(
        [
            row(0.1),
            row(
                12.3456,
                step="cool, slow",
                setpoint_c=None,
                temps_c={"chip": None, "component": 90.0, "chuck": 20.0},
                pressure_mbar=1013.25,
                o2_ppm=None,
                z_um=-12.3456,
            ),
            row(13.0, pressure_mbar=0.000012344, o2_ppm=209_460.0, temps_c={"chip": float("nan")}),
        ],
        out,
    )
    assert n == 3
    text = out.getvalue()
    assert text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [
        "t_s",
        "setpoint_c",
        "chip_c",
        "component_c",
        "chuck_c",
        "pressure_mbar",
        "o2_ppm",
        "lamp_pct",
        "z_um",
        "step",
        "z_force_n",
        "uv_mw_cm2",
        "uv_dose_mj_cm2",
        "cure_conversion",
        "dispensed_ul",
    ]
    assert rows[1] == [
        "0.100",
        "180.00",
        "181.23",
        "92.10",
        "20.00",
        "4.568",
        "2.500",
        "41.67",
        "",
        "reflow",
        *NOT_MEASURED,
    ]
    assert rows[2] == [
        "12.346",
        "",
        "",
        "90.00",
        "20.00",
        "1013",
        "",
        "41.67",
        "-12.35",
        "cool, slow",
        *NOT_MEASURED,
    ]
    # a channel missing from a sample, NaN, tiny pressures and large O2 values
    assert rows[3] == [
        "13.000",
        "180.00",
        "",
        "",
        "",
        "1.234e-05",
        "209500",
        "41.67",
        "",
        "reflow",
        *NOT_MEASURED,
    ]
    assert '"cool, slow"' in text  # RFC 4180 quoting


def test_channels_choose_and_order_columns() -> None:
    out = io.StringIO()
    write_csv([row(0.0)], out, channels=["chuck", "chip", "spare"])
    header, first = list(csv.reader(io.StringIO(out.getvalue())))
    assert header[:5] == ["t_s", "setpoint_c", "chuck_c", "chip_c", "spare_c"]
    assert first[2:5] == ["20.00", "181.23", ""]


def test_empty_trace_is_a_header() -> None:
    out = io.StringIO()
    assert write_csv([], out) == 0
    assert out.getvalue() == (
        "t_s,setpoint_c,pressure_mbar,o2_ppm,lamp_pct,z_um,step,"
        "z_force_n,uv_mw_cm2,uv_dose_mj_cm2,cure_conversion,dispensed_ul\r\n"
    )


def test_lead_lift_columns_come_after_the_contract_columns() -> None:
    """CONTRACT.md fixes the columns up to ``step``: a parser reading those by position
    still finds them; the lead-lift values follow (ADR 0051)."""
    out = io.StringIO()
    write_csv(
        [
            row(
                3.0,
                step="lift",
                z_um=412.3456,
                z_force_n=0.29871,
                uv_mw_cm2=0.0,
                uv_dose_mj_cm2=1500.04,
                cure_conversion=None,
                dispensed_ul=12.34567,
            ),
            row(4.0, step="cure", cure_conversion=0.953449),
        ],
        out,
    )
    header, lift, cure = list(csv.reader(io.StringIO(out.getvalue())))
    contract = ["t_s", "setpoint_c", "chip_c", "component_c", "chuck_c"]
    contract += ["pressure_mbar", "o2_ppm", "lamp_pct", "z_um", "step"]
    assert header[: len(contract)] == contract
    cols = dict(zip(header, lift, strict=True))
    assert (cols["z_um"], cols["step"]) == ("412.35", "lift")
    assert cols["z_force_n"] == "0.299"
    assert (cols["uv_mw_cm2"], cols["uv_dose_mj_cm2"]) == ("0.0", "1500.0")
    assert (cols["cure_conversion"], cols["dispensed_ul"]) == ("", "12.346")
    assert dict(zip(header, cure, strict=True))["cure_conversion"] == "0.9534"


def test_export_of_a_10k_sample_run_from_the_store_has_every_row(tmp_path: Path) -> None:
    with RunStore(tmp_path) as store:
        store.create_run(
            "big",
            recipe_name="r",
            recipe_version=1,
            recipe_sha256="0" * 64,
            recipe_text="",
            lot_id="L",
            operator="o",
            equipment_id="e",
            software_version="0",
            config_hash="c",
            started_at=datetime.now(UTC),
        )
        samples = [
            row(i / 10, temps_c={"chip": 25.0 + i / 100, "component": 25.0}) for i in range(10_000)
        ]
        for k in range(0, len(samples), 500):
            store.add_samples("big", samples[k : k + 500])
        out = io.StringIO()
        write_csv(store.samples("big"), out)
    lines = out.getvalue().split("\r\n")
    assert len(lines) == 10_002 and lines[-1] == ""  # header + 10 000 rows, CRLF-terminated
    assert lines[1].startswith("0.000,") and lines[-2].startswith("999.900,")
