"""CONTRACT.md "Watch folder", and the versioned recipe library behind it."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.config import Limits
from daemon.mes.library import RecipeLibrary
from daemon.mes.outbox import ServeDb
from daemon.mes.watch_folder import REJECTED, Rejection, WatchFolder
from daemon.recipe.load import LoadedRecipe, parse_recipe
from daemon.store.records import RunStore
from tests.mqtt_broker import RECIPES

SNPB = (RECIPES / "snpb-low-tg.toml").read_bytes()
LIMITS = Limits()


class Sink:
    def __init__(self) -> None:
        self.accepted: list[tuple[LoadedRecipe, str]] = []
        self.rejected: list[Rejection] = []
        self.changed = asyncio.Event()

    def accept(self, loaded: LoadedRecipe, name: str) -> None:
        self.accepted.append((loaded, name))
        self.changed.set()

    def reject(self, rejection: Rejection) -> None:
        self.rejected.append(rejection)
        self.changed.set()

    async def wait(self, n: int, timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.accepted) + len(self.rejected) < n:
                self.changed.clear()
                await self.changed.wait()


async def watching(folder: Path, sink: Sink) -> tuple[WatchFolder, asyncio.Task[None]]:
    watch = WatchFolder(folder, LIMITS, sink.accept, sink.reject, settle_s=0.2)
    task = asyncio.create_task(watch.run())
    async with asyncio.timeout(10):
        await watch.ready.wait()
    return watch, task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def rejected_errors(folder: Path, name: str) -> list[dict[str, str]]:
    doc = json.loads((folder / REJECTED / f"{name}.errors.json").read_text())
    assert doc["file"] == name
    return list(doc["errors"])


async def test_valid_recipe_renamed_into_place_is_taken_once(tmp_path: Path) -> None:
    sink = Sink()
    _, task = await watching(tmp_path, sink)
    try:
        (tmp_path / ".bond.toml.tmp").write_bytes(SNPB)
        await asyncio.sleep(0.5)
        assert not sink.accepted and not sink.rejected  # in progress: not touched
        os.rename(tmp_path / ".bond.toml.tmp", tmp_path / "bond.toml")
        await sink.wait(1)
        await asyncio.sleep(0.5)  # and only once
    finally:
        await stop(task)
    assert [name for _, name in sink.accepted] == ["bond.toml"] and not sink.rejected
    assert sink.accepted[0][0].recipe.name == "snpb-low-tg"
    assert not (tmp_path / "bond.toml").exists()


async def test_file_written_slowly_is_taken_only_when_complete(tmp_path: Path) -> None:
    sink = Sink()
    _, task = await watching(tmp_path, sink)
    try:
        with (tmp_path / "slow.toml").open("wb") as f:
            half = len(SNPB) // 2
            f.write(SNPB[:half])
            f.flush()
            await asyncio.sleep(0.1)  # shorter than the settle time: still being written
            f.write(SNPB[half:])
        await sink.wait(1)
    finally:
        await stop(task)
    assert [name for _, name in sink.accepted] == ["slow.toml"] and not sink.rejected


async def test_invalid_recipe_is_moved_to_rejected_with_every_error(tmp_path: Path) -> None:
    bad = SNPB.replace(b"tg_c = 150.0", b"tg_c = -500.0").replace(
        b'name = "snpb-low-tg"', b'name = "has space"'
    )
    (tmp_path / "bad.toml").write_bytes(bad)
    sink = Sink()
    _, task = await watching(tmp_path, sink)
    try:
        await sink.wait(1)
    finally:
        await stop(task)
    assert not sink.accepted and len(sink.rejected) == 1
    assert sink.rejected[0].moved_to == f"{REJECTED}/bad.toml"
    assert (tmp_path / REJECTED / "bad.toml").read_bytes() == bad
    fields = {e["field"] for e in rejected_errors(tmp_path, "bad.toml")}
    assert "name" in fields and any("tg_c" in f for f in fields)


async def test_not_recipes_symlinks_and_oversized_files_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.toml"
    secret.write_bytes(SNPB)
    folder = tmp_path / "watch"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    (folder / "link.toml").symlink_to(secret)
    (folder / "huge.toml").write_bytes(b"#" * (LIMITS.recipe_max_bytes + 1))
    sink = Sink()
    _, task = await watching(folder, sink)
    try:
        await sink.wait(3)
    finally:
        await stop(task)
    assert not sink.accepted
    reasons = {r.file: r.errors[0]["reason"] for r in sink.rejected}
    assert "not a recipe" in reasons["notes.txt"]
    assert "symbolic link" in reasons["link.toml"]
    assert "larger" in reasons["huge.toml"] or "bytes" in reasons["huge.toml"]
    # The symlink itself was moved; what it pointed to is untouched and still in place.
    assert (folder / REJECTED / "link.toml").is_symlink()
    assert secret.read_bytes() == SNPB
    assert sorted(p.name for p in folder.iterdir()) == [REJECTED]


async def test_a_rejected_folder_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "watch"
    folder.mkdir()
    (folder / REJECTED).symlink_to(elsewhere)
    watch = WatchFolder(folder, LIMITS, Sink().accept, Sink().reject)
    with pytest.raises(OSError):
        await watch.run()
    assert list(elsewhere.iterdir()) == []


@pytest.fixture
def library(tmp_path: Path) -> Iterator[RecipeLibrary]:
    store = RunStore(tmp_path)
    db = ServeDb(tmp_path)
    try:
        yield RecipeLibrary(db)
    finally:
        db.close()
        store.close()


def test_library_versions_by_name_and_content(library: RecipeLibrary) -> None:
    v1 = library.add(parse_recipe(SNPB, "a", LIMITS), "a")
    same = library.add(parse_recipe(SNPB, "b", LIMITS), "b")
    changed = SNPB.replace(b'description = "', b'description = "v2 ')
    v2 = library.add(parse_recipe(changed, "c", LIMITS), "c")
    assert (v1.version, v1.new) == (1, True)
    assert (same.version, same.new) == (1, False)
    assert (v2.version, v2.new) == (2, True) and v2.sha256 != v1.sha256
    assert [e.version for e in library.versions("snpb-low-tg")] == [1, 2]
    assert [(e.name, e.version) for e in library.latest()] == [("snpb-low-tg", 2)]
    found = library.load("snpb-low-tg", LIMITS, 1)
    assert found is not None and found[0].sha256 == v1.sha256 and found[1] == 1
    assert library.load("unknown", LIMITS) is None


def test_library_versions_cannot_be_changed(library: RecipeLibrary, tmp_path: Path) -> None:
    library.add(parse_recipe(SNPB, "a", LIMITS), "a")
    db = sqlite3.connect(tmp_path / "bonderd.sqlite")
    try:
        with pytest.raises(sqlite3.DatabaseError, match="cannot be changed"):
            db.execute("UPDATE recipe_library SET recipe_text = 'x'")
        with pytest.raises(sqlite3.DatabaseError, match="cannot be deleted"):
            db.execute("DELETE FROM recipe_library")
    finally:
        db.close()


# ---- property-based: whatever lands in the folder is taken or refused with a reason --------

_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"),
    min_size=1,
    max_size=40,
).filter(lambda n: n not in (".", "..", REJECTED) and len(n.encode()) < 200)
_contents = st.one_of(
    st.binary(max_size=2048),
    st.just(SNPB),
    st.builds(lambda cut: SNPB[:cut], st.integers(0, len(SNPB))),
    st.builds(
        SNPB.replace,
        st.sampled_from([b"183.0", b"snpb-low-tg", b"vent", b"=", b"[[steps]]"]),
        st.binary(max_size=12),
    ),
)


# 300 examples of 1–4 files each: some 750 files in a few seconds (more: BONDERD_FUZZ_EXAMPLES).
@settings(
    max_examples=int(os.environ.get("BONDERD_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(files=st.lists(st.tuples(_names, _contents), min_size=1, max_size=4))
def test_fuzz_every_file_is_taken_or_refused_with_a_reason(
    files: list[tuple[str, bytes]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "watch"
        folder.mkdir()
        written: dict[str, bytes] = {}
        for name, data in files:
            (folder / name).write_bytes(data)
            written[name] = data
        accepted: list[str] = []
        rejected: list[Rejection] = []
        watch = WatchFolder(
            folder, LIMITS, lambda _l, n: accepted.append(n), rejected.append, settle_s=0.0
        )

        async def scan_twice() -> None:
            fd = watch._open_dir()
            try:
                await watch.scan(fd)  # first sight
                await watch.scan(fd)  # settled: judged
            finally:
                os.close(fd)
                os.close(watch._rej_fd)

        asyncio.run(scan_twice())
        expected = {
            n
            for n in written
            if not n.startswith(".") and not n.endswith(("~", ".tmp", ".part", ".partial", ".swp"))
        }
        assert set(accepted) | {r.file for r in rejected} == expected
        assert not set(accepted) & {r.file for r in rejected}
        for r in rejected:
            assert r.errors and all(e["reason"] for e in r.errors)
            assert r.moved_to is not None
            assert (folder / r.moved_to).read_bytes() == written[r.file]
            assert (folder / f"{r.moved_to}.errors.json").is_file()
        for name in accepted:
            assert not (folder / name).exists()
            assert name.endswith(".toml")
        # Nothing was written outside the folder.
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["watch"]
