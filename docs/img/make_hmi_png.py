"""Regenerate docs/img/hmi.png: the operator station during a real simulated reflow.

    .venv/bin/python docs/img/make_hmi_png.py

`bonderd serve --sim` with a broker, the SnPb recipe started over MQTT with bonderctl, and
Debian's chromium (through Playwright) on the station's page once the reflow is under way:
the picture is what the software shows, not a mock-up. Needs mosquitto and chromium.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.test_hmi_browser import browser_page, station  # noqa: E402

OUT = REPO / "docs" / "img" / "hmi.png"


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        station(Path(tmp), speed=20) as st,
        browser_page(st.url) as (page, _watched),
    ):
        page.wait_for_selector("#live.live-on")
        st.start_run("snpb-low-tg", "LOT-4711")
        page.wait_for_function(
            "() => document.getElementById('step').textContent === 'reflow'", timeout=90_000
        )
        # Into the profile: the chip on its way up to the peak window, above liquidus.
        page.wait_for_function(
            "() => document.getElementById('step-progress').value > 0.8", timeout=90_000
        )
        page.screenshot(path=str(OUT), full_page=True)
    print(OUT)


if __name__ == "__main__":
    main()
