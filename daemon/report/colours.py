"""The report's colours and drawing thresholds, shared by the charts and the page."""

from __future__ import annotations

from typing import Final

CHIP, COMPONENT, CHUCK = "#d62728", "#ff7f0e", "#1f77b4"
SETPOINT, LIQUIDUS, TG = "#222222", "#7b3fa0", "#8c564b"
PEAK_BAND, TAL_SPAN, BAD = "#2ca02c", "#e377c2", "#c0392b"
PALETTE: Final = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#bcbd22")
Z_MOVING_UM: Final = 0.5  # a Z trace flatter than this is a stage that stayed put
LAMP_ZONES_ALIKE_PCT: Final = 0.05  # zones closer than this in every sample draw as one line
HOLD: Final = "#f1c40f"  # an operator hold on the timeline
