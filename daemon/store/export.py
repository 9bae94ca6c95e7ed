"""CSV export of a run's trace (``bonderd export``): one row per sample, RFC 4180.

Columns: ``t_s, setpoint_c, <channel>_c..., pressure_mbar, o2_ppm, lamp_pct, z_um, step``
(CONTRACT.md, in that order), then the lead-lift columns appended after ``step`` so that
parsers of the contract's columns keep working (ADR 0051): ``z_force_n, uv_mw_cm2,
uv_dose_mj_cm2, cure_conversion, dispensed_ul``. An empty field means no valid reading (or
not part of the run). Precision matches what the instruments can say: time to 1 ms,
temperatures to 0.01 °C, pressure and O2 to 4 significant digits, force to 1 mN, irradiance
to 0.1 mW/cm², dose to 0.1 mJ/cm², conversion to 0.0001, volume to 0.001 µL.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from typing import TextIO

from daemon.store.trace import Sample


def channels_of(samples: Iterable[Sample]) -> list[str]:
    """Every thermocouple channel in the trace, in order of first appearance."""
    seen: dict[str, None] = {}
    for s in samples:
        for k in s.temps_c:
            if k not in seen:
                seen[k] = None
    return list(seen)


# After the contract's columns, never between them (ADR 0051).
APPENDED_COLUMNS = ("z_force_n", "uv_mw_cm2", "uv_dose_mj_cm2", "cure_conversion", "dispensed_ul")


def header(channels: Sequence[str]) -> list[str]:
    return [
        "t_s",
        "setpoint_c",
        *(f"{ch}_c" for ch in channels),
        "pressure_mbar",
        "o2_ppm",
        "lamp_pct",
        "z_um",
        "step",
        *APPENDED_COLUMNS,
    ]


def _fixed(v: float | None, decimals: int) -> str:
    if v is None or not math.isfinite(v):
        return ""
    return f"{v:.{decimals}f}"


def _sig4(v: float | None) -> str:
    """Four significant digits, in plain notation for the range a gauge reads."""
    if v is None or not math.isfinite(v):
        return ""
    # Rounded to 4 digits first, so that 9.99996 reads "10.00" and not "10.000".
    v = float(f"{v:.3e}")
    if v == 0:
        return "0"
    exponent = math.floor(math.log10(abs(v)))
    if exponent < -4:
        # Below 1e-4 plain notation would be mostly zeros; spreadsheets read exponents.
        return f"{v:.3e}"
    if exponent >= 4:
        return str(round(round(v, 3 - exponent)))
    return f"{v:.{3 - exponent}f}"


def write_csv(samples: Sequence[Sample], out: TextIO, channels: Sequence[str] | None = None) -> int:
    """Write the trace to ``out``; returns the number of data rows.

    ``channels`` picks and orders the thermocouple columns; by default every channel found
    in the trace, in order of first appearance. ``out`` should be opened with
    ``newline=""`` (as the csv module requires) when it is a file.
    """
    chans = list(channels) if channels is not None else channels_of(samples)
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(header(chans))
    for s in samples:
        temps = s.temps_c
        w.writerow(
            [
                _fixed(s.t_s, 3),
                _fixed(s.setpoint_c, 2),
                *(_fixed(temps.get(ch), 2) for ch in chans),
                _sig4(s.pressure_mbar),
                _sig4(s.o2_ppm),
                _fixed(s.lamp_pct, 2),
                _fixed(s.z_um, 2),
                s.step,
                _fixed(s.z_force_n, 3),
                _fixed(s.uv_mw_cm2, 1),
                _fixed(s.uv_dose_mj_cm2, 1),
                _fixed(s.cure_conversion, 4),
                _fixed(s.dispensed_ul, 3),
            ]
        )
    return len(samples)
