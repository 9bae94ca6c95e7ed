"""Suite-wide fixtures."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog

from tests.leaks import fail_on_leaked_tasks


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
    await fail_on_leaked_tasks()
