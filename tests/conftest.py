"""Suite-wide fixtures."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """`bonderd` entry points configure logging globally; no test may leak that to the next."""
    yield
    structlog.reset_defaults()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.fixturenames.append("_no_leaked_tasks")


@pytest.fixture
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """A test that leaves an asyncio task running fails (DESIGN.md conventions)."""
    yield
    me = asyncio.current_task()
    for _ in range(50):  # cancelled tasks need a few loop turns to finish
        leaked = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not leaked:
            return
        await asyncio.sleep(0)
    for task in leaked:
        task.cancel()
    pytest.fail(f"test leaked asyncio tasks: {[t.get_name() for t in leaked]}")
