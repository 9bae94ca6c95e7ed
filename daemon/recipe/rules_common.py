"""Helpers shared by the recipe rules of every kind: problems as (field path, reason)."""

from __future__ import annotations

Problem = tuple[str, str]


def at_step(index: int, *parts: str | int) -> str:
    """The TOML path of a field of ``steps[index]``."""
    path = f"steps[{index}]"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def num(value: float) -> str:
    return f"{value:g}"
