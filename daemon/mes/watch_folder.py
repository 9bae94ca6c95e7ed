"""The recipe watch folder (CONTRACT.md): the only module that imports watchfiles (ADR 0012).

A file is taken once it is complete. watchfiles reports changes, not "closed after writing",
so complete means: renamed into place (writers should write ``.name.toml.tmp`` or
``name.toml.part`` and rename; such names are never taken), or unchanged in size and
modification time for ``settle_s`` after the last change. A valid recipe goes into the
library and the file is removed from the folder; anything else is moved to ``rejected/``
beside a ``<file>.errors.json`` that names every error.

Everything is done relative to an open descriptor of the folder with ``O_NOFOLLOW``, so a
symlink, a file swapped for a symlink between the check and the open, or a name with a
path in it cannot make the daemon read or write outside the folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio._backends._asyncio  # noqa: F401 - see below
import structlog
import watchfiles

from daemon.config import Limits
from daemon.mes.outbox import utc_now
from daemon.recipe.load import WHOLE_FILE, LoadedRecipe, RecipeInvalid, RecipeIssue, parse_recipe

log = structlog.get_logger(__name__)

# watchfiles.awatch runs its watcher through anyio, which imports its asyncio backend on
# first use: 0.4 s of imports on the event loop, a control cycle that late (ADR 0095).
# Imported here, it is paid at start-up, before the control loop runs.

REJECTED = "rejected"
SETTLE_S = 0.5
# Names of files still being written by a well-behaved writer: never taken, never rejected.
_IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial", ".swp", "~")


@dataclass(frozen=True)
class Rejection:
    file: str
    moved_to: str | None  # path relative to the watch folder, None when it could not be moved
    errors: list[dict[str, str]]


# accepted(loaded, file name) -> None; rejected(rejection) -> None
Accept = Callable[[LoadedRecipe, str], None]
Reject = Callable[[Rejection], None]


def in_progress(name: str) -> bool:
    return name.startswith(".") or name.endswith(_IN_PROGRESS_SUFFIXES)


class WatchFolder:
    def __init__(
        self,
        folder: Path,
        limits: Limits,
        accept: Accept,
        reject: Reject,
        *,
        settle_s: float = SETTLE_S,
    ) -> None:
        self.folder = Path(folder)
        self.limits = limits
        self._accept = accept
        self._reject = reject
        self.settle_s = settle_s
        # name -> ((size, mtime_ns), loop time it was first seen so): judged when settled
        self._seen: dict[str, tuple[tuple[int, int], float]] = {}
        self._rej_fd = -1
        self.ready = asyncio.Event()  # set once the folder is watched (tests wait for it)

    def _open_dir(self) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.folder, flags)
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(REJECTED, 0o750, dir_fd=fd)
            # O_NOFOLLOW | O_DIRECTORY: a `rejected` that is a symlink or a file is refused.
            self._rej_fd = os.open(REJECTED, flags, dir_fd=fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    async def run(self) -> None:
        """Scan what is already there, then watch forever; cancel to stop."""
        dir_fd = self._open_dir()
        try:
            stop = asyncio.Event()
            changes = watchfiles.awatch(
                self.folder,
                watch_filter=None,
                stop_event=stop,
                recursive=False,
                debounce=200,
                step=50,
                rust_timeout=int(self.settle_s * 1000),
                yield_on_timeout=True,
                ignore_permission_denied=True,
            )
            self.scan(dir_fd)
            self.ready.set()
            try:
                async for _ in changes:
                    # Every wake-up (a change or a quiet settle period) rescans the folder:
                    # a file is judged by what is on disk, not by which event announced it.
                    self.scan(dir_fd)
            finally:
                stop.set()
        finally:
            os.close(dir_fd)
            os.close(self._rej_fd)
            self._rej_fd = -1

    def scan(self, dir_fd: int) -> None:
        names = set()
        for entry in os.scandir(dir_fd):
            name = entry.name
            if name == REJECTED or in_progress(name):
                continue
            names.add(name)
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                self._refuse(dir_fd, name, "a symbolic link: only regular files are taken")
                continue
            if stat.S_ISDIR(st.st_mode):
                continue  # sub-folders are not watched
            key = (st.st_size, st.st_mtime_ns)
            now = asyncio.get_running_loop().time()
            seen = self._seen.get(name)
            if seen is None or seen[0] != key:
                # First sight or still changing: look again once it has settled.
                self._seen[name] = (key, now)
                continue
            if now - seen[1] < self.settle_s:
                continue
            self._take(dir_fd, name)
        for gone in set(self._seen) - names:
            del self._seen[gone]

    def _take(self, dir_fd: int, name: str) -> None:
        self._seen.pop(name, None)
        if not name.endswith(".toml"):
            self._refuse(dir_fd, name, "not a recipe: recipe files end in .toml")
            return
        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
            )
        except OSError as exc:
            self._refuse(dir_fd, name, f"cannot open the file: {exc.strerror}")
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self._refuse(dir_fd, name, "not a regular file")
                return
            if st.st_nlink > 1:
                # A hard link could be the only name of a file elsewhere; taking it would
                # remove that name. Refuse rather than guess.
                self._refuse(dir_fd, name, "a hard-linked file: copy the recipe in instead")
                return
            with open(fd, "rb", closefd=False) as f:
                data = f.read(self.limits.recipe_max_bytes + 1)
        except OSError as exc:
            self._refuse(dir_fd, name, f"cannot read the file: {exc.strerror}")
            return
        finally:
            os.close(fd)
        try:
            loaded = parse_recipe(data, name, self.limits)
        except RecipeInvalid as exc:
            self._move_rejected(dir_fd, name, exc.issues)
            return
        try:
            self._accept(loaded, name)
        except Exception as exc:  # the library could not store it: keep the file for a retry
            log.exception("watch_accept_failed", file=name)
            self._seen[name] = ((-1, -1), 0.0)
            raise RuntimeError(f"could not store recipe {name}: {exc}") from exc
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)
        log.info("watch_recipe_accepted", file=name, recipe=loaded.recipe.name)

    def _refuse(self, dir_fd: int, name: str, reason: str) -> None:
        self._seen.pop(name, None)
        self._move_rejected(dir_fd, name, [RecipeIssue(name, WHOLE_FILE, reason)])

    def _move_rejected(self, dir_fd: int, name: str, issues: list[RecipeIssue]) -> None:
        errors = [{"field": i.field, "reason": i.reason} for i in issues]
        target = self._free_name(self._rej_fd, name)
        moved: str | None = f"{REJECTED}/{target}"
        try:
            # rename moves a symlink itself, never what it points to.
            os.rename(name, target, src_dir_fd=dir_fd, dst_dir_fd=self._rej_fd)
        except FileNotFoundError:
            return  # gone meanwhile: nothing to refuse
        except OSError as exc:
            log.error("watch_reject_move_failed", file=name, error=str(exc))
            moved = None
        doc: dict[str, Any] = {"file": name, "rejected_at": utc_now(), "errors": errors}
        if moved is not None:
            self._write_errors(self._rej_fd, f"{target}.errors.json", doc)
        log.warning("watch_recipe_rejected", file=name, errors=errors)
        self._reject(Rejection(name, moved, errors))

    @staticmethod
    def _free_name(rej_fd: int, name: str) -> str:
        candidate, n = name, 1
        while True:
            try:
                os.stat(candidate, dir_fd=rej_fd, follow_symlinks=False)
            except FileNotFoundError:
                try:
                    os.stat(f"{candidate}.errors.json", dir_fd=rej_fd, follow_symlinks=False)
                except FileNotFoundError:
                    return candidate
            n += 1
            stem, dot, ext = name.rpartition(".")
            candidate = f"{stem}.{n}.{ext}" if dot and stem else f"{name}.{n}"

    @staticmethod
    def _write_errors(dir_fd: int, rel: str, doc: dict[str, Any]) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(rel, flags, 0o640, dir_fd=dir_fd)
        except OSError as exc:
            log.error("watch_errors_file_failed", file=rel, error=str(exc))
            return
        with open(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, ensure_ascii=False)
            f.write("\n")
