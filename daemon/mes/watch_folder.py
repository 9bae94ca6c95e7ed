"""The recipe watch folder (CONTRACT.md): the only module that imports watchfiles (ADR 0012).

A file is taken once it is complete. watchfiles reports changes, not "closed after writing",
so complete means: renamed into place (writers should write ``.name.toml.tmp`` or
``name.toml.part`` and rename; such names are never taken), or closed: unchanged in size
and modification time for ``settle_s`` *and* open for writing by nobody. Whether anybody
still writes it is asked of the kernel with a read lease (``F_SETLEASE``, refused while the
file is open for writing); where a lease cannot tell (a file of another user, a file system
without leases) the file must instead be unchanged for ``UNKNOWN_WRITER_SETTLE_S``. A valid
recipe goes into the library and the file is removed from the folder; anything else is moved
to ``rejected/`` beside a ``<file>.errors.json`` that names every error. Recipes are parsed
by ``parse`` (the daemon's worker process, ADR 0140), never on the control loop.

Hidden names (``.*``) are never taken and never rejected: writers' temporary files and
editors' swap files. A folder named ``*.toml`` is refused like any file that is not a recipe;
other folders are left alone. A name that is not UTF-8 is refused, the file moved to
``rejected/`` under its name with the undecodable bytes spelt ``\\xNN``.

Everything is done relative to an open descriptor of the folder with ``O_NOFOLLOW``, so a
symlink, a file swapped for a symlink between the check and the open, or a name with a
path in it cannot make the daemon read or write outside the folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import stat
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio._backends._asyncio  # noqa: F401 - see below
import structlog
import watchfiles

from daemon.config import Limits
from daemon.mes.outbox import json_text, utc_now
from daemon.recipe.load import WHOLE_FILE, LoadedRecipe, RecipeInvalid, RecipeIssue, parse_recipe

log = structlog.get_logger(__name__)

# watchfiles.awatch runs its watcher through anyio, which imports its asyncio backend on
# first use: 0.4 s of imports on the event loop, a control cycle that late (ADR 0095).
# Imported here, it is paid at start-up, before the control loop runs.

REJECTED = "rejected"
SETTLE_S = 0.5
# Unchanged this long when the kernel cannot say whether a writer still has the file open.
UNKNOWN_WRITER_SETTLE_S = 5.0
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
# parse(data, file name, limits) -> LoadedRecipe, raising RecipeInvalid
Parse = Callable[[bytes, str, Limits], Awaitable[LoadedRecipe]]


async def _parse_here(data: bytes, source: str, limits: Limits) -> LoadedRecipe:
    return parse_recipe(data, source, limits)


def in_progress(name: str) -> bool:
    return name.startswith(".") or name.endswith(_IN_PROGRESS_SUFFIXES)


def safe_name(name: str) -> str:
    """A file name as ``os`` hands it over (undecodable bytes as surrogates), as text that
    UTF-8, JSON and the logs carry: those bytes spelt ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _leases_usable() -> bool:
    """Leases signal their holder (SIGIO, fatal by default) when a writer opens the file.
    The lease is held for microseconds, but SIGIO must be ignored for it to be safe."""
    if signal.getsignal(signal.SIGIO) == signal.SIG_IGN:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGIO) != signal.SIG_DFL:
        return False  # somebody handles SIGIO: not ours to change
    signal.signal(signal.SIGIO, signal.SIG_IGN)
    return True


def _read_at_most(fd: int, size: int) -> bytes:
    """Up to ``size`` bytes of a regular file (a local file: no wait worth a thread)."""
    with open(fd, "rb", closefd=False) as f:
        return f.read(size)


def open_for_writing(dir_fd: int, name: str) -> bool | None:
    """Whether a process has the file open for writing (True / False), or None: cannot tell."""
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError:
        return None
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        # EAGAIN: open for writing somewhere. EACCES: not our file; EINVAL: no leases here.
        return True if exc.errno in (errno.EAGAIN, errno.EBUSY) else None
    else:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


class WatchFolder:
    def __init__(
        self,
        folder: Path,
        limits: Limits,
        accept: Accept,
        reject: Reject,
        *,
        settle_s: float = SETTLE_S,
        parse: Parse = _parse_here,
        unknown_writer_settle_s: float = UNKNOWN_WRITER_SETTLE_S,
    ) -> None:
        self.folder = Path(folder)
        self.limits = limits
        self._accept = accept
        self._reject = reject
        self._parse = parse
        self.settle_s = settle_s
        self.unknown_writer_settle_s = max(settle_s, unknown_writer_settle_s)
        self._leases = _leases_usable()
        self._noted: set[str] = set()  # names logged once as left alone / still open
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
            await self.scan(dir_fd)
            self.ready.set()
            while True:
                try:
                    await self._watch(dir_fd)
                except Exception as exc:
                    # The watcher itself gave up: it cannot decode a name that is not UTF-8
                    # ("Unable to decode path"). The scan below refuses that file (moved to
                    # rejected/), then watching starts again; without this the service
                    # restarted every 1.5 s for as long as the file was there.
                    log.warning("watch_watcher_restarted", error=safe_name(repr(exc))[:300])
                await asyncio.sleep(self.settle_s)
                await self.scan(dir_fd)
        finally:
            os.close(dir_fd)
            os.close(self._rej_fd)
            self._rej_fd = -1

    async def _watch(self, dir_fd: int) -> None:
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
        try:
            async for _ in changes:
                # Every wake-up (a change or a quiet settle period) rescans the folder:
                # a file is judged by what is on disk, not by which event announced it.
                await self.scan(dir_fd)
        finally:
            stop.set()

    async def scan(self, dir_fd: int) -> None:
        names = set()
        present = set()
        ready: list[str] = []
        for entry in os.scandir(dir_fd):
            name = entry.name
            present.add(name)
            if name == REJECTED:
                continue
            if in_progress(name):
                if name.endswith(".toml") and name not in self._noted:
                    self._noted.add(name)
                    log.info("watch_hidden_file_left_alone", file=safe_name(name))
                continue
            names.add(name)
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                self._refuse(dir_fd, name, "a symbolic link: only regular files are taken")
                await asyncio.sleep(0)
                continue
            if stat.S_ISDIR(st.st_mode):
                if name.endswith(".toml"):
                    self._refuse(dir_fd, name, "a folder, not a recipe file")
                    await asyncio.sleep(0)
                continue  # other sub-folders are not watched
            key = (st.st_size, st.st_mtime_ns)
            now = asyncio.get_running_loop().time()
            seen = self._seen.get(name)
            if seen is None or seen[0] != key:
                # First sight or still changing: look again once it has settled.
                self._seen[name] = (key, now)
                continue
            if now - seen[1] < self.settle_s:
                continue
            writing = open_for_writing(dir_fd, name) if self._leases else None
            if writing:
                if name not in self._noted:
                    self._noted.add(name)
                    log.info("watch_file_still_open", file=safe_name(name))
                continue  # closed is complete; a paused writer is not done
            if writing is None and now - seen[1] < self.unknown_writer_settle_s:
                continue
            ready.append(name)
        for gone in set(self._seen) - names:
            del self._seen[gone]
        self._noted &= present
        for name in ready:
            # One file at a time, the loop served between them: 400 files dropped at once
            # are 400 short turns, not one long one.
            await self._take(dir_fd, name)
            await asyncio.sleep(0)

    async def _take(self, dir_fd: int, name: str) -> None:
        self._seen.pop(name, None)
        self._noted.discard(name)
        if not _utf8(name):
            self._refuse(
                dir_fd,
                name,
                "the file name is not valid UTF-8 (the bytes that are not are shown as \\xNN): "
                "name recipe files in UTF-8",
            )
            return
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
            data = _read_at_most(fd, self.limits.recipe_max_bytes + 1)
        except OSError as exc:
            self._refuse(dir_fd, name, f"cannot read the file: {exc.strerror}")
            return
        finally:
            os.close(fd)
        try:
            loaded = await self._parse(data, name, self.limits)
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
        shown = safe_name(name)  # what events, logs and the errors file call it
        target = self._free_name(self._rej_fd, shown)
        moved: str | None = f"{REJECTED}/{target}"
        try:
            # rename moves a symlink itself, never what it points to.
            os.rename(name, target, src_dir_fd=dir_fd, dst_dir_fd=self._rej_fd)
        except FileNotFoundError:
            return  # gone meanwhile: nothing to refuse
        except OSError as exc:
            log.error("watch_reject_move_failed", file=name, error=str(exc))
            moved = None
        doc: dict[str, Any] = {"file": shown, "rejected_at": utc_now(), "errors": errors}
        if moved is not None:
            self._write_errors(self._rej_fd, f"{target}.errors.json", doc)
        log.warning("watch_recipe_rejected", file=shown, errors=errors)
        self._reject(Rejection(shown, moved, errors))

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
        # Composed whole before the first byte is written: an errors file is never truncated.
        text = json_text(doc, indent=2)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
