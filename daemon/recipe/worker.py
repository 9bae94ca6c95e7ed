"""Recipes parsed and validated in a worker process, off the control loop (docs/adr/0140).

Whatever arrives over MQTT or in the watch folder is hostile until validated: TOML parsing
and the schema are pure-Python CPU work, tens of milliseconds for a bounded but nasty file,
and a thread would still hold the GIL the control loop needs. So :class:`RecipeWorker` keeps
one child process (a fresh interpreter, ``python -m daemon.recipe.worker``: nothing of the
daemon's state, threads or sockets is inherited) that runs :func:`daemon.recipe.load.parse_recipe` and sends back the result or
the :class:`RecipeInvalid`. One request at a time; each is bounded in size (before it is
sent), in memory (``RLIMIT_AS`` in the child) and in time: a child that has not answered
within ``timeout_s`` is killed, the recipe refused naming the bound, and a fresh child
started for the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any, Final

import structlog

from daemon.config import Limits
from daemon.recipe.load import WHOLE_FILE, LoadedRecipe, RecipeInvalid, RecipeIssue, parse_recipe

log = structlog.get_logger(__name__)

TIMEOUT_S: Final = 10.0  # a hostile 64 KiB recipe takes ~0.1 s; this is the bound, not a budget
MEMORY_BYTES: Final = 1024 * 1024 * 1024  # address space of the child
START_TIMEOUT_S: Final = 60.0  # the child's imports, on a loaded host
_HEADER = struct.Struct("!Q")
# The tree the daemon's own code is imported from: the child imports exactly the same.
_CODE_ROOT = str(Path(__file__).resolve().parents[2])


def _send(stream: IO[bytes], obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    out = b""
    while len(out) < size:
        chunk = stream.read(size - len(out))
        if not chunk:
            raise EOFError("the recipe worker closed its pipe")
        out += chunk
    return out


def _recv(stream: IO[bytes]) -> Any:
    (size,) = _HEADER.unpack(_read_exact(stream, _HEADER.size))
    return pickle.loads(_read_exact(stream, size))  # our own child's answer, or ours


def _serve(memory_bytes: int) -> None:  # pragma: no cover - in the child
    """The child: parse requests from stdin, answer on stdout, until stdin closes."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource  # noqa: PLC0415 - POSIX only

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the answer stream
    _send(stdout, ("ready", None))  # imports done: the parent's timeouts start from here
    while True:
        try:
            data, source, limits = _recv(stdin)
        except EOFError:
            return
        result: tuple[str, Any]
        try:
            result = ("ok", parse_recipe(data, source, limits))
        except RecipeInvalid as exc:
            result = ("invalid", exc.issues)
        except MemoryError:
            result = ("invalid", [RecipeIssue(source, WHOLE_FILE, _memory_reason(memory_bytes))])
        except Exception as exc:  # a bug in validation: reported, the child lives on
            result = ("error", f"{type(exc).__name__}: {exc}")
        try:
            _send(stdout, result)
        except OSError:
            return


def _memory_reason(memory_bytes: int) -> str:
    return (
        f"validating the recipe needs more than {memory_bytes // (1024 * 1024)} MiB of memory; "
        "it is not a recipe this equipment takes"
    )


class RecipeWorker:
    """Parse recipes in a child process; ``await parse(...)`` never blocks the event loop."""

    def __init__(self, *, timeout_s: float = TIMEOUT_S, memory_bytes: int = MEMORY_BYTES) -> None:
        self.timeout_s = timeout_s
        self.memory_bytes = memory_bytes
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = asyncio.Lock()  # one request at a time, in the order asked
        self._io = threading.Lock()
        self.restarts = 0

    # ---- the child ---------------------------------------------------------------------
    def _ensure(self) -> subprocess.Popen[bytes]:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            return proc
        self._kill()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_CODE_ROOT, env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon.recipe.worker", str(self.memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=_CODE_ROOT,
            close_fds=True,
        )
        self._proc = proc
        assert proc.stdout is not None
        # Its imports are a second or more on a busy host: not counted in a request's time.
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
        if not ready or _recv(proc.stdout)[0] != "ready":
            self._kill()
            raise OSError("the recipe worker did not start")
        return proc

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(2.0)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    async def start(self) -> None:
        """Start the child now (its imports take a second of its own CPU, not the loop's)."""
        await asyncio.to_thread(self._ensure)

    async def close(self) -> None:
        await asyncio.to_thread(self._kill)

    def _roundtrip(self, request: tuple[bytes, str, Limits]) -> tuple[str, Any]:
        with self._io:
            proc = self._ensure()
            assert proc.stdin is not None and proc.stdout is not None
            _send(proc.stdin, request)
            ready, _, _ = select.select([proc.stdout], [], [], self.timeout_s)
            if not ready:
                raise TimeoutError
            # The answer has begun; the rest follows at once (the child writes it whole).
            result: tuple[str, Any] = _recv(proc.stdout)
            return result

    # ---- the request -------------------------------------------------------------------
    async def parse(self, data: bytes, source: str, limits: Limits) -> LoadedRecipe:
        """:func:`parse_recipe` in the child; raises :class:`RecipeInvalid` as it does."""
        if len(data) > limits.recipe_max_bytes:
            parse_recipe(data, source, limits)  # refuses on size at once, parses nothing
        async with self._lock:
            try:
                kind, value = await asyncio.to_thread(self._roundtrip, (data, source, limits))
            except TimeoutError:
                log.error("recipe_worker_timeout", source=source, timeout_s=self.timeout_s)
                await self._restart()
                raise RecipeInvalid(
                    [
                        RecipeIssue(
                            source,
                            WHOLE_FILE,
                            f"validating the recipe took longer than {self.timeout_s:g} s; it "
                            "is not a recipe this equipment takes",
                        )
                    ]
                ) from None
            except (EOFError, OSError) as exc:  # the child died (memory limit, killed)
                log.error("recipe_worker_died", source=source, error=repr(exc))
                await self._restart()
                raise RecipeInvalid(
                    [
                        RecipeIssue(
                            source,
                            WHOLE_FILE,
                            "validating the recipe ended the validator process (memory limit "
                            f"{self.memory_bytes // (1024 * 1024)} MiB); it is not a recipe "
                            "this equipment takes",
                        )
                    ]
                ) from None
        if kind == "ok":
            assert isinstance(value, LoadedRecipe)
            return value
        if kind == "invalid":
            raise RecipeInvalid(value)
        raise RuntimeError(f"recipe validation failed: {value}")

    async def _restart(self) -> None:
        self.restarts += 1
        await asyncio.to_thread(self._kill)


if __name__ == "__main__":  # pragma: no cover - the child
    _serve(int(sys.argv[1]) if len(sys.argv) > 1 else MEMORY_BYTES)
