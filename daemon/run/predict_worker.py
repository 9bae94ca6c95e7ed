"""Predictions for the daemon, in a child process at the lowest CPU priority (ADR 0171).

A prediction is a second of CPU per bond and per seed: on the event loop, or in a thread
holding the GIL beside it, it would take that second from the control loop and the
interlocks of a run in progress. One spawned child (a fresh interpreter: nothing of the
daemon's loop, threads or locks is inherited) runs the predictions one after the other at
``nice`` 19, so on a busy controller it gets only the CPU nothing else wants; the daemon
awaits the answer without blocking.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import os
from typing import Any, Final

import structlog

from daemon import logs
from daemon.config import Settings
from daemon.recipe.load import parse_recipe
from daemon.run.predict import document, predict

log = structlog.get_logger(__name__)

NICENESS: Final = 19  # the lowest priority a process can ask for


def _low_priority() -> None:
    # os.nice adds to the niceness it inherited; a daemon already at 19 stays there.
    os.nice(max(0, NICENESS - os.nice(0)))
    # Linux's SCHED_IDLE: run only on CPU nobody else wants, and give it up at once when a
    # task of any other class wakes. Nice 19 alone still takes a share of a busy core.
    if hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    logs.configure("WARNING")


def _predict_job(text: str, source: str, settings: Settings, seeds: int) -> dict[str, Any]:
    # The daemon validated the recipe in its recipe worker; the child parses it again
    # because a LoadedRecipe carries its text, and the text is what crosses the pipe.
    loaded = parse_recipe(text.encode("utf-8"), source, settings.limits)
    return document(settings, [predict(loaded, settings, source=source, seeds=seeds)])


class PredictWorker:
    """``await predict(...)`` answers the document of ``bonderd predict --json``."""

    def __init__(self) -> None:
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = asyncio.Lock()  # one prediction at a time: one core at most, ever

    def _ensure(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"), initializer=_low_priority
            )
        return self._pool

    def pids(self) -> list[int]:
        """The child's process id (none before the first prediction), for the curious."""
        procs = getattr(self._pool, "_processes", None) or {}
        return [int(pid) for pid in procs]

    async def predict(
        self, text: str, source: str, settings: Settings, seeds: int
    ) -> dict[str, Any]:
        async with self._lock:
            pool = self._ensure()
            try:
                future = pool.submit(_predict_job, text, source, settings, seeds)
                return await asyncio.wrap_future(future)
            except concurrent.futures.process.BrokenProcessPool:
                # The child died (killed, out of memory): the next prediction gets a new one.
                log.error("predict_worker_died")
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    async def close(self) -> None:
        """Stop the child, a prediction in progress with it (its asker gets no answer)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.terminate()
        await asyncio.to_thread(lambda: [proc.join(5.0) for proc in procs])
