"""A seeded, bounded generator of hostile command payloads and watch-folder files (issue 19).

Shared by tests/test_mqtt_fuzz.py (during a run in reflow) and bench/serve_bench.py (loop
lateness under the same fuzz). Bounded: every payload ≤ 128 KiB, every file ≤ 70 KiB.
Commands that would change a running machine when valid (`abort`, `hold`) are left out:
the point is that nothing *hostile* disturbs the run.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator

SAFE_COMMANDS = (
    "status",
    "list_recipes",
    "put_recipe",
    "start",  # refused while a run is in progress
    "resume",
    "reset",
    "ack_alarm",
    "list_runs",
    "take_control",  # refused from the MES
    "release_control",
    "fly",
    "",
)

_JUNK_TEXT = ["\ud800", "\udfff", "a\ud83dz", "\x00", "é" * 200, "x" * 5000, "", " ", "🙂"]


def _many_steps(n: int) -> str:
    return 'kind = "vacuum_film_bond"\nname = "h"\n' + '[[steps]]\ntype = "reflow"\n' * n


def _deep(n: int) -> str:
    return "a = " + "[" * n + "]" * n


def _dotted(n: int) -> str:
    return "a" + ".a" * n + " = 1\n"


def hostile_recipes(rng: random.Random) -> str:
    return rng.choice(
        [
            _many_steps(rng.choice([201, 2000, 6000]))[:65000],
            _many_steps(rng.randint(1, 150)),
            _deep(rng.choice([20, 500, 3000])),
            "a = " + "{b = " * 3000 + "1" + "}" * 3000,
            _dotted(3000)[:65000],
            "x = [" + ",".join(["1"] * 12000) + "]",
            'kind = "vacuum_film_bond"\nname = "h"\n[materials]\n' + "k = 1\n" * 10,
            "\ufeff",
            "= = =",
        ]
    )


def payloads(seed: int, n: int) -> Iterator[tuple[str | None, bytes]]:
    """(command_id if the payload carries a usable one, else None, payload bytes)."""
    rng = random.Random(seed)
    for i in range(n):
        cid = f"fz-{seed}-{i}-{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}"
        kind = rng.randrange(8)
        command = rng.choice(SAFE_COMMANDS)
        args: object = {}
        if kind == 0:  # a lone surrogate somewhere: in the command_id itself, or an argument
            if rng.random() < 0.5:
                cid += rng.choice(["\ud800", "\udc00"])
            else:
                args = {"lot_id": "L\ud800", "recipe": "x", "code": "\udfff"}
        elif kind == 1:  # hostile recipe text
            command = rng.choice(["put_recipe", "start"])
            args = {"name": "h", "recipe_toml": hostile_recipes(rng), "lot_id": "L1"}
            if command == "start":
                del args["name"]
        elif kind == 2:  # numbers out of every range
            command = "start"
            args = {
                "recipe": "nope",
                "lot_id": "L",
                "version": rng.choice([2**63, 2**63 - 1, -1, 0, 10**30, 1.5]),
            }
        elif kind == 3:
            args = {rng.choice(["lot_id", "code", "reason", "x", "\ud800"]): rng.choice(_JUNK_TEXT)}
        elif kind == 4:  # deep JSON
            depth = rng.choice([50, 5000])
            args = json.loads("[" * depth + "]" * depth) if depth < 900 else {}
            if depth >= 900:
                raw = (
                    '{"command": "status", "command_id": "'
                    + cid
                    + '", "args": '
                    + "[" * depth
                    + "]" * depth
                    + "}"
                )
                # Deeper than any JSON parser here takes: malformed_json, command_id null.
                yield None, raw.encode()
                continue
        elif kind == 5:
            command = rng.choice(["list_runs", "ack_alarm"])
            args = {"limit": rng.choice([0, 501, 2**64, "x"]), "code": "nope"}
        elif kind == 6:  # envelope damage
            doc = {"command": command, "command_id": cid, "args": args, "extra": 1}
            yield cid, json.dumps(doc).encode()
            continue
        else:  # garbage bytes: no command_id to answer to
            yield None, bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
            continue
        doc = {"command": command, "command_id": cid, "args": args}
        # Answered either way; a command_id with a lone surrogate comes back as a JSON escape.
        yield cid, json.dumps(doc).encode()


def files(seed: int, n: int) -> Iterator[tuple[bytes, bytes]]:
    """(file name as bytes, content) for the watch folder."""
    rng = random.Random(seed + 1_000_003)
    for i in range(n):
        stem = f"fz{seed}-{i}".encode()
        name = rng.choice(
            [stem + b".toml", stem + b"\xff\xfe.toml", stem + b".txt", b"." + stem + b".toml"]
        )
        yield name, hostile_recipes(rng).encode("utf-8", "surrogatepass")[:70000]
