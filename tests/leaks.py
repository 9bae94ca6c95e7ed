"""The leaked-task check shared by tests/ and hil_tests/ (DESIGN.md: a leaked task fails)."""

from __future__ import annotations

import asyncio

import pytest


async def fail_on_leaked_tasks() -> None:
    me = asyncio.current_task()
    leaked: list[asyncio.Task[object]] = []
    for _ in range(50):  # cancelled tasks need a few loop turns to finish
        leaked = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not leaked:
            return
        await asyncio.sleep(0)
    for task in leaked:
        task.cancel()
    pytest.fail(f"test leaked asyncio tasks: {[t.get_name() for t in leaked]}")
