"""Fingerprints of the shipped recipes' run records: a restructuring must leave them equal.

``python -m tests.fingerprint [--write]`` prints (or stores in tests/data/fingerprints.json)
one sha256 per recipe and seed over the result document, every trace sample, the events and
the plant's final true state, with the wall-clock fields (run id, timestamps) taken out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

SEEDS = (0, 1)
STORE = Path(__file__).parent / "data" / "fingerprints.json"
# Fields that hold wall-clock time or a random run id, never the simulated physics.
_WALL_KEYS = frozenset({"run_id", "started_at", "ended_at", "wall_s", "judge_wall_s"})


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in _WALL_KEYS}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, float):
        return value.hex()  # every bit, -0.0 and NaN included
    return value


def _state(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _state(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _state(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_state(v) for v in obj]
    if hasattr(obj, "value") and hasattr(obj, "name"):  # an enum member
        return str(obj)
    return obj


async def fingerprint(recipe: Path, seed: int) -> str:
    from tests.simrun import run_recipe  # noqa: PLC0415 - the harness, only when asked

    with tempfile.TemporaryDirectory() as tmp:
        doc, sim = await run_recipe(recipe, Path(tmp), seed=seed)
        samples = [_state(s) for s in sim.store.samples(doc["run_id"])]
        sim.store.close()
    events = [(t, name, payload) for t, name, payload in sim.events]
    blob = {
        "doc": doc,
        "samples": samples,
        "events": events,
        "plant": _state(sim.plant.state),
    }
    text = json.dumps(_scrub(blob), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def all_fingerprints() -> dict[str, str]:
    from tests.simrun import RECIPES  # noqa: PLC0415

    out: dict[str, str] = {}
    for recipe in RECIPES:
        for seed in SEEDS:
            out[f"{recipe.name}@{seed}"] = await fingerprint(recipe, seed)
    return out


def main(argv: list[str]) -> int:
    from daemon import logs  # noqa: PLC0415

    logs.configure("WARNING")
    prints = asyncio.run(all_fingerprints())
    for key, digest in prints.items():
        print(f"{digest}  {key}")
    if "--write" in argv:
        STORE.write_text(json.dumps(prints, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
