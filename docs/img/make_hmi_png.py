"""Regenerate docs/img/hmi.png: the operator station during a real simulated reflow.

    .venv/bin/python docs/img/make_hmi_png.py

`bonderd serve --sim` with a broker, an operator logged in at the station, the SnPb recipe
started by the "MES" over MQTT with bonderctl, and Debian's chromium (through Playwright)
on the station's page once the reflow is under way:
the picture is what the software shows, not a mock-up. Needs mosquitto and chromium.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.test_hmi_browser import USERS, add_users, browser_page, login, station  # noqa: E402

OUT = REPO / "docs" / "img" / "hmi.png"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        users = Path(tmp) / "users.json"
        add_users(users)
        shoot(Path(tmp), users)
    print(OUT)


def shoot(tmp: Path, users: Path) -> None:
    with (
        station(tmp, speed=20, hmi_extra=f'users_file = "{users}"') as st,
        browser_page(st.url) as (page, _watched),
    ):
        page.wait_for_selector("#live.live-on")
        # An operator logged in while the MES runs the lot: the station may abort, not hold.
        login(page, "ana", USERS["ana"][1])
        page.wait_for_selector("#actions:not([hidden])")
        st.start_run("snpb-low-tg", "LOT-4711")
        page.wait_for_function(
            "() => document.getElementById('step').textContent === 'reflow'", timeout=90_000
        )
        # Into the profile: the chip on its way up to the peak window, above liquidus.
        page.wait_for_function(
            "() => document.getElementById('step-progress').value > 0.8", timeout=90_000
        )
        page.screenshot(path=str(OUT), full_page=True)


if __name__ == "__main__":
    main()
