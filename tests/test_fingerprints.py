"""The shipped recipes' run records are bit-identical to the stored fingerprints.

A change that is meant to move no physics and no record (a restructuring, a speed-up) must
leave every fingerprint as it was; a change that is meant to move them regenerates the file
with ``python -m tests.fingerprint --write`` and says why in its commit.
"""

from __future__ import annotations

import json

from tests.fingerprint import STORE, all_fingerprints


async def test_records_match_the_stored_fingerprints() -> None:
    stored = json.loads(STORE.read_text(encoding="utf-8"))
    assert await all_fingerprints() == stored


async def test_a_different_seed_gives_a_different_fingerprint() -> None:
    stored = json.loads(STORE.read_text(encoding="utf-8"))
    for name in {key.split("@")[0] for key in stored}:
        assert stored[f"{name}@0"] != stored[f"{name}@1"], name
