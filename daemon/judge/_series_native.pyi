# The C twin of daemon/judge/series.py rates_py (_series_native.c): the same signature, with
# the window's constants passed in.
from collections.abc import Sequence

def rates(
    t: Sequence[float],
    values: Sequence[float | None],
    window_s: float,
    min_points: int,
    min_span_s: float,
    resum: int,
    /,
) -> list[float | None]: ...
