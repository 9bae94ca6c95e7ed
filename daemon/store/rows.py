"""Trace samples as database rows: compact JSON for the channels and zones, every float's
bits kept (NaN and infinities stored as NULL), timestamps in sortable UTC text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from daemon.store.trace import Sample


def utc_iso(ts: datetime | str) -> str:
    """ISO-8601 UTC with a fixed number of digits, so that the text sorts as the time does."""
    if isinstance(ts, str):
        try:
            ts = datetime.fromisoformat(ts)
        except ValueError:
            raise ValueError(f"timestamp {ts!r} is not ISO-8601") from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        # A naive time would be read back as whatever zone the reader assumes.
        raise ValueError(f"timestamp {ts.isoformat()!r} has no time zone")
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# The trace's JSON columns, written compact: one encoder for every sample (json.dumps with
# separators builds a new one per call; two per sample, twenty samples a second).
_COMPACT_JSON: Final = json.JSONEncoder(separators=(",", ":"))
_KEY_JSON: dict[str, str] = {}  # channel name -> its JSON string (a handful of channels)


def _temps_json(temps: Mapping[str, float | None]) -> str:
    """``_COMPACT_JSON.encode(temps)``, byte for byte, without the encoder's per-call set-up
    (a third of its cost for five channels) for the usual case: string keys, finite floats or
    None."""
    parts = []
    for k, v in temps.items():
        if type(v) is float and v - v == 0.0:  # finite: what json writes is float.__repr__
            val = repr(v)
        elif v is None:
            val = "null"
        else:
            return _COMPACT_JSON.encode(temps)
        key = _KEY_JSON.get(k)
        if key is None:
            if type(k) is not str:
                return _COMPACT_JSON.encode(temps)
            key = _KEY_JSON[k] = _COMPACT_JSON.encode(k)
        parts.append(f"{key}:{val}")
    return "{" + ",".join(parts) + "}"


def _floats_json(values: Sequence[float]) -> str:
    """``_COMPACT_JSON.encode(list(values))``, byte for byte, the same way for finite floats."""
    for v in values:
        if type(v) is not float or v - v != 0.0:
            return _COMPACT_JSON.encode(list(values))
    return "[" + ",".join(map(repr, values)) + "]"


def _real(v: float | None) -> float | None:
    # SQLite stores NaN as NULL anyway; making it explicit keeps the two paths identical.
    return None if v is None or math.isnan(v) else float(v)


def sample_rows(run_id: str, samples: Sequence[Sample]) -> list[tuple[Any, ...]]:
    """The samples' rows for the samples table, in its column order (20 a second)."""
    rows: list[tuple[Any, ...]] = []
    append, isnan = rows.append, math.isnan
    for s in samples:
        # _real() inlined for a float that is not NaN (nearly every value): the same value.
        sp, pr, o2, z = s.setpoint_c, s.pressure_mbar, s.o2_ppm, s.z_um
        append(
            (
                run_id,
                s.t_s,
                s.step,
                sp if type(sp) is float and not isnan(sp) else _real(sp),
                pr if type(pr) is float and not isnan(pr) else _real(pr),
                o2 if type(o2) is float and not isnan(o2) else _real(o2),
                s.lamp_pct,
                z if type(z) is float and not isnan(z) else _real(z),
                _temps_json(s.temps_c),
                _floats_json(s.lamp_zones_pct),
                _real(s.z_force_n),
                _real(s.uv_mw_cm2),
                _real(s.uv_dose_mj_cm2),
                _real(s.cure_conversion),
                _real(s.dispensed_ul),
            )
        )
    return rows
