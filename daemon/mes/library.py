"""The versioned recipe library.

A recipe is known by its ``name`` (from the recipe itself, not a file name). The same name
with new content becomes a new version; the same content again is the version it already
is. Every version is kept with its exact text and sha256, and the database refuses to
change or delete one (triggers in ``daemon/store/records.py``), because run records refer to
recipes by name, version and sha256.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.config import Limits
from daemon.mes.outbox import ServeDb, utc_now
from daemon.recipe.load import LoadedRecipe, parse_recipe


@dataclass(frozen=True, slots=True)
class LibraryEntry:
    name: str
    version: int
    sha256: str
    source: str
    added_at: str
    new: bool = False  # this call created the version

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "source": self.source,
            "added_at": self.added_at,
        }


class RecipeLibrary:
    def __init__(self, db: ServeDb) -> None:
        self._db = db

    def add(self, loaded: LoadedRecipe, source: str) -> LibraryEntry:
        """Store a validated recipe; returns its version (new or the existing identical one)."""
        name = loaded.recipe.name
        with self._db.tx() as db:
            row = db.execute(
                "SELECT version, source, added_at FROM recipe_library "
                "WHERE name = ? AND sha256 = ?",
                (name, loaded.sha256),
            ).fetchone()
            if row is not None:
                return LibraryEntry(name, row[0], loaded.sha256, row[1], row[2])
            latest = db.execute(
                "SELECT coalesce(max(version), 0) FROM recipe_library WHERE name = ?", (name,)
            ).fetchone()[0]
            version = int(latest) + 1
            added = utc_now()
            db.execute(
                "INSERT INTO recipe_library (name, version, sha256, recipe_text, source, "
                "added_at) VALUES (?, ?, ?, ?, ?, ?)",
                (name, version, loaded.sha256, loaded.text, source, added),
            )
        return LibraryEntry(name, version, loaded.sha256, source, added, new=True)

    def latest(self) -> list[LibraryEntry]:
        """The newest version of every recipe, by name."""
        rows = self._db.db.execute(
            "SELECT name, version, sha256, source, added_at FROM recipe_library r "
            "WHERE version = (SELECT max(version) FROM recipe_library WHERE name = r.name) "
            "ORDER BY name"
        ).fetchall()
        return [LibraryEntry(*row) for row in rows]

    def versions(self, name: str) -> list[LibraryEntry]:
        rows = self._db.db.execute(
            "SELECT name, version, sha256, source, added_at FROM recipe_library "
            "WHERE name = ? ORDER BY version",
            (name,),
        ).fetchall()
        return [LibraryEntry(*row) for row in rows]

    def load(
        self, name: str, limits: Limits, version: int | None = None
    ) -> tuple[LoadedRecipe, int] | None:
        """The recipe (newest version unless given), re-validated against today's limits."""
        found = self.text(name, version)
        if found is None:
            return None
        text, version = found
        # Limits may have been tightened since the recipe was accepted: validate again.
        return parse_recipe(text.encode("utf-8"), library_source(name, version), limits), version

    def text(self, name: str, version: int | None = None) -> tuple[str, int] | None:
        """The stored text of a recipe (newest version unless given) and its version."""
        if version is None:
            row = self._db.db.execute(
                "SELECT recipe_text, version FROM recipe_library WHERE name = ? "
                "ORDER BY version DESC LIMIT 1",
                (name,),
            ).fetchone()
        else:
            row = self._db.db.execute(
                "SELECT recipe_text, version FROM recipe_library WHERE name = ? AND version = ?",
                (name, version),
            ).fetchone()
        if row is None:
            return None
        return str(row[0]), int(row[1])


def library_source(name: str, version: int) -> str:
    """How a library recipe is named in its validation errors."""
    return f"library:{name}@{version}"
